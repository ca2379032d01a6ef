//! The `loadbalance` family (not written yet).

use super::{AnnotationFamily, Cx, Family, IngressPolicy, KeySpec};

/// The typed policy of this family.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct LoadBalancePolicy {}

/// The family.
#[derive(Debug)]
pub(crate) struct LoadBalanceFamily;

impl AnnotationFamily for LoadBalanceFamily {
    fn family(&self) -> Family {
        Family::LoadBalance
    }
    fn keys(&self) -> &'static [KeySpec] {
        &[]
    }
    fn parse(&self, _cx: &mut Cx<'_>, _policy: &mut IngressPolicy) {}
}
