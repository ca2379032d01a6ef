//! The `ratelimit` family (not written yet).

use super::{AnnotationFamily, Cx, Family, IngressPolicy, KeySpec};

/// The typed policy of this family.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct RateLimitPolicy {}

/// The family.
#[derive(Debug)]
pub(crate) struct RateLimitFamily;

impl AnnotationFamily for RateLimitFamily {
    fn family(&self) -> Family {
        Family::RateLimit
    }
    fn keys(&self) -> &'static [KeySpec] {
        &[]
    }
    fn parse(&self, _cx: &mut Cx<'_>, _policy: &mut IngressPolicy) {}
}
