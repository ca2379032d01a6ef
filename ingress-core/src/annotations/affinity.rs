//! The `affinity` family (not written yet).

use super::{AnnotationFamily, Cx, Family, IngressPolicy, KeySpec};

/// The typed policy of this family.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct AffinityPolicy {}

/// The family.
#[derive(Debug)]
pub(crate) struct Affinity;

impl AnnotationFamily for Affinity {
    fn family(&self) -> Family {
        Family::Affinity
    }
    fn keys(&self) -> &'static [KeySpec] {
        &[]
    }
    fn parse(&self, _cx: &mut Cx<'_>, _policy: &mut IngressPolicy) {}
}
