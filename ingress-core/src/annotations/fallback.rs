//! The `fallback` family: the default backend of an Ingress and custom error pages.
//!
//! `default-backend` names the Service that answers when the rule's Service has no
//! endpoints, and that serves the pages of `custom-http-errors`. ingress-nginx reads
//! a Service name in the Ingress's namespace; Higress also reads `namespace/name`,
//! which the compile step accepts only when cross-namespace references are allowed.
//!
//! Custom error pages: an upstream answer whose status is in `custom-http-errors` is
//! replaced by the default backend's answer to the same request with its path
//! rewritten to `/` and the `X-Code`, `X-Format` (the client's `Accept`),
//! `X-Original-URI`, `X-Namespace`, `X-Ingress-Name`, `X-Service-Name`,
//! `X-Service-Port` and `X-Request-ID` headers ingress-nginx sends.
//! The client always gets the **original status code**, whatever the error backend
//! answers: a 401 or 403 (from the upstream or from external auth) can never be
//! turned into a success by an error page (CVE-2026-24513). When the error backend
//! itself fails, the original answer is sent unchanged.

use http::StatusCode;

use super::values::{self, ObjectName};
use super::{AnnotationFamily, Cx, Family, IngressPolicy, KeySpec};

/// Default backend and custom error pages of one Ingress.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct FallbackPolicy {
    /// `default-backend`: the Service (first port) that answers when the rule's
    /// Service has no endpoints and serves custom error pages. `None`: the
    /// gateway's global default backend. A written namespace must be checked by the
    /// compile step (same namespace unless cross-namespace references are allowed).
    pub default_backend: Option<ObjectName>,
    /// `custom-http-errors`: upstream status codes (4xx/5xx, sorted, deduplicated)
    /// answered from the default backend. Empty: the global list applies. The
    /// answer keeps the original status code.
    pub custom_http_errors: Vec<StatusCode>,
    /// `false` when `disable-proxy-intercept-errors: "true"`: the list stays defined
    /// but upstream answers are passed through unchanged.
    pub intercept_errors: bool,
}

impl Default for FallbackPolicy {
    fn default() -> Self {
        FallbackPolicy {
            default_backend: None,
            custom_http_errors: Vec::new(),
            intercept_errors: true,
        }
    }
}

impl FallbackPolicy {
    /// Whether an upstream answer with `status` is replaced by an error page, given
    /// the effective list (this policy's, or the global one when it has none).
    pub fn intercepts(&self, status: StatusCode, global: &[StatusCode]) -> bool {
        let list = if self.custom_http_errors.is_empty() {
            global
        } else {
            &self.custom_http_errors
        };
        self.intercept_errors && list.contains(&status)
    }
}

const DEFAULT_BACKEND: KeySpec = KeySpec::new("default-backend", Family::Fallback)
    .grammar("Service `name` (same namespace) or `namespace/name` (Higress)")
    .default("the gateway's global default backend")
    .doc("Service (first port) that answers when the rule's Service has no endpoints, and that serves custom-http-errors pages. `namespace/name` needs cross-namespace references allowed.");
const CUSTOM_HTTP_ERRORS: KeySpec = KeySpec::new("custom-http-errors", Family::Fallback)
    .grammar("comma-separated 4xx/5xx status codes")
    .default("the global list")
    .doc("Upstream answers with these codes are replaced by the default backend's answer to the request for `/` with X-Code, X-Original-URI and related headers. The client always gets the original status code: a 401/403 never becomes a success (CVE-2026-24513).");
const DISABLE_INTERCEPT: KeySpec = KeySpec::new("disable-proxy-intercept-errors", Family::Fallback)
    .grammar("boolean")
    .default("false")
    .doc("Keep custom-http-errors defined but pass upstream error answers through unchanged.");

static KEYS: &[KeySpec] = &[DEFAULT_BACKEND, CUSTOM_HTTP_ERRORS, DISABLE_INTERCEPT];

/// The family.
#[derive(Debug)]
pub(crate) struct Fallback;

impl AnnotationFamily for Fallback {
    fn family(&self) -> Family {
        Family::Fallback
    }
    fn keys(&self) -> &'static [KeySpec] {
        KEYS
    }
    fn parse(&self, cx: &mut Cx<'_>, policy: &mut IngressPolicy) {
        let p = &mut policy.fallback;
        p.default_backend = cx.parse(&KEYS[0], values::object_ref);
        p.custom_http_errors = cx.parse(&KEYS[1], values::error_codes).unwrap_or_default();
        p.intercept_errors = !cx.boolean(&KEYS[2]).unwrap_or(false);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::annotations::AnnotationOptions;
    use crate::annotations::test_util::{codes, run};
    use crate::diagnostics::Code;
    use crate::model::{ObjectKind, ObjectRef};

    fn sc(n: u16) -> StatusCode {
        StatusCode::from_u16(n).expect("status")
    }

    #[test]
    fn defaults() {
        let p = run(&[]).policy.fallback;
        assert_eq!(p, FallbackPolicy::default());
        assert!(p.intercept_errors);
        assert!(p.default_backend.is_none());
        assert!(!p.intercepts(sc(404), &[]));
        assert!(p.intercepts(sc(404), &[sc(404)]));
    }

    #[test]
    fn valid_values() {
        let p = run(&[
            ("nginx.ingress.kubernetes.io/default-backend", "errors"),
            (
                "nginx.ingress.kubernetes.io/custom-http-errors",
                "503, 401,404,401",
            ),
        ]);
        assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
        let f = p.policy.fallback;
        assert_eq!(
            f.default_backend,
            Some(ObjectName {
                namespace: None,
                name: "errors".into()
            })
        );
        assert_eq!(f.custom_http_errors, vec![sc(401), sc(404), sc(503)]);
        assert!(f.intercepts(sc(401), &[]));
        assert!(
            !f.intercepts(sc(500), &[sc(500)]),
            "the annotation replaces the global list"
        );

        let p = run(&[
            ("higress.io/default-backend", "other/errors"),
            ("nginx.ingress.kubernetes.io/custom-http-errors", "404"),
            (
                "nginx.ingress.kubernetes.io/disable-proxy-intercept-errors",
                "true",
            ),
        ]);
        assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
        let f = p.policy.fallback;
        assert_eq!(
            f.default_backend
                .as_ref()
                .and_then(|d| d.namespace.as_deref()),
            Some("other")
        );
        assert!(!f.intercept_errors);
        assert!(!f.intercepts(sc(404), &[]));
    }

    #[test]
    fn invalid_values_fail_closed() {
        for (key, value) in [
            ("default-backend", "Errors"),
            ("default-backend", "a/b/c"),
            ("default-backend", ""),
            ("custom-http-errors", "200"),
            ("custom-http-errors", "404;503"),
            ("custom-http-errors", ""),
            ("custom-http-errors", "600"),
            ("disable-proxy-intercept-errors", "yes"),
        ] {
            let p = run(&[(&format!("nginx.ingress.kubernetes.io/{key}"), value)]);
            assert_eq!(
                codes(&p),
                vec![Code::AnnotationInvalidValue],
                "{key}: {value:?}"
            );
            assert!(p.policy.fail_closed.is_some(), "{key}: {value:?}");
        }
    }

    /// Arbitrary values for the keys of the auth, client-tls, backend, headers,
    /// mirror and fallback families never panic, and anything reported as an error
    /// fails the routes closed (and nothing else does).
    #[test]
    fn arbitrary_values_never_panic_and_errors_fail_closed() {
        use crate::annotations::Family;
        use crate::diagnostics::Severity;
        use proptest::prelude::*;
        let families = [
            Family::Auth,
            Family::ClientTls,
            Family::Backend,
            Family::Headers,
            Family::Mirror,
            Family::Fallback,
        ];
        let keys: Vec<&'static str> = crate::annotations::all_keys()
            .filter(|k| families.contains(&k.family))
            .map(|k| k.name)
            .collect();
        let prefixes = ["nginx.ingress.kubernetes.io/", "higress.io/"];
        let strategy = prop::collection::vec(
            (
                0..keys.len(),
                0..prefixes.len(),
                "[ -~\\n]{0,48}|(https?://|CN=|\\$host|on|off|TLSv1\\.[0-3]|[a-z]{1,6}/[a-z]{1,6})[ -~]{0,16}",
            ),
            1..6,
        );
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        runner
            .run(&strategy, |items| {
                let map: BTreeMap<String, String> = items
                    .iter()
                    .map(|(k, p, v)| (format!("{}{}", prefixes[*p], keys[*k]), v.clone()))
                    .collect();
                let obj = ObjectRef::namespaced(ObjectKind::Ingress, "ns", "name");
                let p = crate::annotations::parse(&map, &obj, &AnnotationOptions::default());
                let errors = p.diagnostics.iter().any(|d| d.severity == Severity::Error);
                prop_assert_eq!(
                    errors,
                    p.policy.fail_closed.is_some(),
                    "{:?}",
                    p.diagnostics
                );
                Ok(())
            })
            .expect("no counterexample");
    }
}
