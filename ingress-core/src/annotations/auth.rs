//! The `auth` family (not written yet).

use super::{AnnotationFamily, Cx, Family, IngressPolicy, KeySpec};

/// The typed policy of this family.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct AuthPolicy {}

/// The family.
#[derive(Debug)]
pub(crate) struct Auth;

impl AnnotationFamily for Auth {
    fn family(&self) -> Family {
        Family::Auth
    }
    fn keys(&self) -> &'static [KeySpec] {
        &[]
    }
    fn parse(&self, _cx: &mut Cx<'_>, _policy: &mut IngressPolicy) {}
}
