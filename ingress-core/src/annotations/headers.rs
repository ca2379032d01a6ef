//! The `headers` family (not written yet).

use super::{AnnotationFamily, Cx, Family, IngressPolicy, KeySpec};

/// The typed policy of this family.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct HeaderPolicy {}

/// The family.
#[derive(Debug)]
pub(crate) struct Headers;

impl AnnotationFamily for Headers {
    fn family(&self) -> Family {
        Family::Headers
    }
    fn keys(&self) -> &'static [KeySpec] {
        &[]
    }
    fn parse(&self, _cx: &mut Cx<'_>, _policy: &mut IngressPolicy) {}
}
