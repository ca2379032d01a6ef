//! The `retries` family (not written yet).

use super::{AnnotationFamily, Cx, Family, IngressPolicy, KeySpec};

/// The typed policy of this family.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct RetryPolicy {}

/// The family.
#[derive(Debug)]
pub(crate) struct Retries;

impl AnnotationFamily for Retries {
    fn family(&self) -> Family {
        Family::Retries
    }
    fn keys(&self) -> &'static [KeySpec] {
        &[]
    }
    fn parse(&self, _cx: &mut Cx<'_>, _policy: &mut IngressPolicy) {}
}
