//! The `observability` family: logging, tracing, WAF and nginx-runtime knobs that
//! have no counterpart here. Validated, then reported as having no effect.

use super::spec::{Risk, Support};
use super::{AnnotationFamily, Cx, Family, IngressPolicy, KeySpec, values};

const fn boolean(name: &'static str, doc: &'static str, why: &'static str) -> KeySpec {
    KeySpec::new(name, Family::Observability)
        .grammar("boolean")
        .doc(doc)
        .support(Support::NotEnforced(why))
}

static KEYS: &[KeySpec] = &[
    KeySpec::new("enable-access-log", Family::Observability)
        .grammar("boolean")
        .default("true")
        .doc(
            "Per-route access log switch: `false` turns off the access log line for these routes.",
        ),
    boolean(
        "enable-rewrite-log",
        "nginx rewrite debug log.",
        "there is no nginx rewrite log; `ingressctl explain` shows rewrites",
    ),
    boolean(
        "enable-opentelemetry",
        "Per-location tracing switch.",
        "tracing is configured for the whole gateway",
    ),
    boolean(
        "opentelemetry-trust-incoming-span",
        "Continue incoming trace context.",
        "tracing is configured for the whole gateway",
    ),
    KeySpec::new("opentelemetry-operation-name", Family::Observability)
        .grammar("`[A-Za-z0-9_-]*`")
        .doc("Span name.")
        .support(Support::NotEnforced(
            "tracing is configured for the whole gateway",
        )),
    boolean(
        "enable-modsecurity",
        "ModSecurity WAF.",
        "there is no embedded WAF; put one in front or use a plugin",
    ),
    boolean(
        "enable-owasp-core-rules",
        "OWASP core rule set.",
        "there is no embedded WAF; put one in front or use a plugin",
    ),
    KeySpec::new("modsecurity-transaction-id", Family::Observability)
        .grammar("nginx variable")
        .doc("ModSecurity transaction id.")
        .risk(Risk::High)
        .support(Support::NotEnforced("there is no embedded WAF")),
    KeySpec::new("fastcgi-index", Family::Observability)
        .grammar("file name")
        .doc("FastCGI index (backend-protocol FCGI).")
        .support(Support::NotEnforced("FastCGI upstreams are not supported")),
    KeySpec::new("fastcgi-params-configmap", Family::Observability)
        .grammar("`name` or `namespace/name`")
        .doc("ConfigMap of FastCGI params.")
        .risk(Risk::Medium)
        .support(Support::NotEnforced("FastCGI upstreams are not supported")),
    boolean(
        "http2-push-preload",
        "HTTP/2 server push of preload links.",
        "HTTP/2 server push is obsolete and not offered",
    ),
    KeySpec::new("limit-rate", Family::Observability)
        .grammar("whole KB/s")
        .default("0")
        .doc("Per-connection response bandwidth cap.")
        .support(Support::NotEnforced("response bandwidth is not capped")),
    KeySpec::new("limit-rate-after", Family::Observability)
        .grammar("whole KB")
        .default("0")
        .doc("Bytes sent before limit-rate applies.")
        .support(Support::NotEnforced("response bandwidth is not capped")),
];

/// The family.
#[derive(Debug)]
pub(crate) struct Observability;

impl AnnotationFamily for Observability {
    fn family(&self) -> Family {
        Family::Observability
    }
    fn keys(&self) -> &'static [KeySpec] {
        KEYS
    }
    fn parse(&self, cx: &mut Cx<'_>, policy: &mut IngressPolicy) {
        policy.access_log = cx.boolean(&KEYS[0]).unwrap_or(true);
        for k in &KEYS[1..] {
            match k.grammar {
                "boolean" => {
                    cx.boolean(k);
                }
                "whole KB/s" | "whole KB" => {
                    cx.parse(k, values::uint);
                }
                "`name` or `namespace/name`" => {
                    cx.parse(k, values::object_ref);
                }
                _ => {
                    cx.take(k);
                }
            }
        }
    }
}
