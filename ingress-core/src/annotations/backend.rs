//! The `backend` family (not written yet).

use super::{AnnotationFamily, Cx, Family, IngressPolicy, KeySpec};

/// The typed policy of this family.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct BackendPolicy {}

/// The family.
#[derive(Debug)]
pub(crate) struct Backend;

impl AnnotationFamily for Backend {
    fn family(&self) -> Family {
        Family::Backend
    }
    fn keys(&self) -> &'static [KeySpec] {
        &[]
    }
    fn parse(&self, _cx: &mut Cx<'_>, _policy: &mut IngressPolicy) {}
}
