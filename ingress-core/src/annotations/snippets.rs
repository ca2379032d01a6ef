//! The `snippets` family: raw nginx configuration, refused.
//!
//! Nothing is ever rendered into configuration text, so these keys cannot be carried
//! out; an Ingress that sets one fails closed rather than serve without what the
//! snippet was meant to do. `ingressctl compat` triages a snippet's directives.

use super::spec::{Prefixes, Risk, Scope, Support};
use super::{AnnotationFamily, Cx, Family, IngressPolicy, KeySpec};

const WHY: &str = "raw nginx configuration is never executed; use the typed annotations (`ingressctl compat` maps each directive)";

static KEYS: &[KeySpec] = &[
    KeySpec::new("configuration-snippet", Family::Snippets)
        .grammar("nginx directives")
        .doc("Raw directives for the location block.")
        .risk(Risk::Critical)
        .support(Support::Refused(WHY))
        .multiline(),
    KeySpec::new("server-snippet", Family::Snippets)
        .grammar("nginx directives")
        .doc("Raw directives for the server block.")
        .scope(Scope::Host)
        .risk(Risk::Critical)
        .support(Support::Refused(WHY))
        .multiline(),
    KeySpec::new("auth-snippet", Family::Snippets)
        .grammar("nginx directives")
        .doc("Raw directives for the auth subrequest location.")
        .risk(Risk::Critical)
        .support(Support::Refused(WHY))
        .multiline(),
    KeySpec::new("stream-snippet", Family::Snippets)
        .grammar("nginx directives")
        .doc("Raw directives for the stream context.")
        .risk(Risk::Critical)
        .support(Support::Refused(WHY))
        .multiline(),
    KeySpec::new("modsecurity-snippet", Family::Snippets)
        .grammar("ModSecurity rules")
        .doc("Raw ModSecurity configuration.")
        .risk(Risk::Critical)
        .support(Support::Refused(WHY))
        .multiline()
        .prefixes(Prefixes::Nginx),
];

/// The family.
#[derive(Debug)]
pub(crate) struct Snippets;

impl AnnotationFamily for Snippets {
    fn family(&self) -> Family {
        Family::Snippets
    }
    fn keys(&self) -> &'static [KeySpec] {
        KEYS
    }
    fn parse(&self, cx: &mut Cx<'_>, _policy: &mut IngressPolicy) {
        for k in KEYS {
            cx.take(k);
        }
    }
}
