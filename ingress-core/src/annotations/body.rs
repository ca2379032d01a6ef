//! The `body` family (not written yet).

use super::{AnnotationFamily, Cx, Family, IngressPolicy, KeySpec};

/// The typed policy of this family.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct BodyPolicy {}

/// The family.
#[derive(Debug)]
pub(crate) struct Body;

impl AnnotationFamily for Body {
    fn family(&self) -> Family {
        Family::Body
    }
    fn keys(&self) -> &'static [KeySpec] {
        &[]
    }
    fn parse(&self, _cx: &mut Cx<'_>, _policy: &mut IngressPolicy) {}
}
