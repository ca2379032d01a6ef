//! The `clienttls` family (not written yet).

use super::{AnnotationFamily, Cx, Family, IngressPolicy, KeySpec};

/// The typed policy of this family.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct ClientTlsPolicy {}

/// The family.
#[derive(Debug)]
pub(crate) struct ClientTls;

impl AnnotationFamily for ClientTls {
    fn family(&self) -> Family {
        Family::ClientTls
    }
    fn keys(&self) -> &'static [KeySpec] {
        &[]
    }
    fn parse(&self, _cx: &mut Cx<'_>, _policy: &mut IngressPolicy) {}
}
