//! The `mirror` family (not written yet).

use super::{AnnotationFamily, Cx, Family, IngressPolicy, KeySpec};

/// The typed policy of this family.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct MirrorPolicy {}

/// The family.
#[derive(Debug)]
pub(crate) struct Mirror;

impl AnnotationFamily for Mirror {
    fn family(&self) -> Family {
        Family::Mirror
    }
    fn keys(&self) -> &'static [KeySpec] {
        &[]
    }
    fn parse(&self, _cx: &mut Cx<'_>, _policy: &mut IngressPolicy) {}
}
