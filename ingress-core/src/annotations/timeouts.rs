//! The `timeouts` family (not written yet).

use super::{AnnotationFamily, Cx, Family, IngressPolicy, KeySpec};

/// The typed policy of this family.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct TimeoutPolicy {}

/// The family.
#[derive(Debug)]
pub(crate) struct Timeouts;

impl AnnotationFamily for Timeouts {
    fn family(&self) -> Family {
        Family::Timeouts
    }
    fn keys(&self) -> &'static [KeySpec] {
        &[]
    }
    fn parse(&self, _cx: &mut Cx<'_>, _policy: &mut IngressPolicy) {}
}
