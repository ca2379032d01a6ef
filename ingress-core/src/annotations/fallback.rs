//! The `fallback` family (not written yet).

use super::{AnnotationFamily, Cx, Family, IngressPolicy, KeySpec};

/// The typed policy of this family.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct FallbackPolicy {}

/// The family.
#[derive(Debug)]
pub(crate) struct Fallback;

impl AnnotationFamily for Fallback {
    fn family(&self) -> Family {
        Family::Fallback
    }
    fn keys(&self) -> &'static [KeySpec] {
        &[]
    }
    fn parse(&self, _cx: &mut Cx<'_>, _policy: &mut IngressPolicy) {}
}
