//! Annotations: the ingress-nginx, Higress and MSE annotation set as typed policy.
//!
//! One module per family behind one trait ([`AnnotationFamily`]), in one ordered
//! [`REGISTRY`]. Every key declares its family, scope, grammar, default, docs, risk
//! and support status ([`KeySpec`]); docs/annotations.md is generated from it.
//!
//! [`parse`] reads one object's annotations into an [`IngressPolicy`] and
//! diagnostics. The rules:
//! - Prefixes: an ingress-nginx key is read under the custom prefix (if configured),
//!   `nginx.ingress.kubernetes.io/`, `higress.io/`, `mse.ingress.kubernetes.io/` and
//!   `higress.ingress.kubernetes.io/`, first present wins; a different value under a
//!   later prefix is reported (`annotation-shadowed`). Higress-only keys are read
//!   under the extension prefixes, MSE-only keys under `mse.ingress.kubernetes.io/`,
//!   this project's own keys (no ingress-nginx or Higress key exists for them) under
//!   `ingress-rs.io/` (and the custom prefix).
//! - Every value is one line without control characters (header-control lists may
//!   span lines) and at most [`MAX_VALUE_LEN`] bytes, then parses into a type. An
//!   invalid value is an error (`annotation-invalid-value`), never "unset": the
//!   routes of that Ingress answer 503 until it is fixed ([`FailClosed`]).
//! - Snippets and other raw-configuration keys are refused (`annotation-refused`),
//!   and the routes fail closed too. A security key the gateway cannot enforce fails
//!   closed; other keys it cannot enforce are warnings.
//! - Unknown keys under our prefixes are warnings with a "did you mean"; retired
//!   ingress-nginx names are warnings that name their replacement.
//!
//! Nothing is ever rendered into configuration text.

pub mod access;
pub mod affinity;
pub mod auth;
pub mod backend;
pub mod body;
pub mod canary;
pub mod client_tls;
pub mod cors;
pub mod docs;
pub mod fallback;
pub mod headers;
pub mod load_balance;
pub mod mirror;
mod observability;
pub mod rate_limit;
pub mod redirect;
pub mod resilience;
pub mod retries;
pub mod routing;
pub mod snippets;
mod spec;
pub mod template;
pub mod timeouts;
pub mod values;

#[cfg(test)]
pub(crate) mod test_util;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;

use crate::compile::Profile;
use crate::diagnostics::{Code, Diagnostic};
use crate::model::ObjectRef;

pub use access::AccessPolicy;
pub use affinity::AffinityPolicy;
pub use auth::AuthPolicy;
pub use backend::BackendPolicy;
pub use body::BodyPolicy;
pub use canary::CanaryPolicy;
pub use client_tls::ClientTlsPolicy;
pub use cors::CorsPolicy;
pub use fallback::FallbackPolicy;
pub use headers::HeaderPolicy;
pub use load_balance::LoadBalancePolicy;
pub use mirror::MirrorPolicy;
pub use rate_limit::RateLimitPolicy;
pub use redirect::RedirectPolicy;
pub use resilience::ResiliencePolicy;
pub use retries::RetryPolicy;
pub use routing::{RegexMode, RewriteTarget, RoutingPolicy};
pub use spec::{Family, KeySpec, Prefix, Prefixes, Retired, Risk, Scope, Support, UnknownRisk};
pub use timeouts::TimeoutPolicy;

/// The longest single annotation value read, in bytes (the API server allows 256 KiB
/// for all annotations together, far too much for one value).
pub const MAX_VALUE_LEN: usize = 4096;
/// The longest multi-line value (header-control lists), in bytes.
pub const MAX_MULTILINE_LEN: usize = 16 * 1024;

/// One annotation family: its keys and how it reads them into the policy.
///
/// Implementations are stateless; the registry is an ordered slice of them, so the
/// order of diagnostics and docs never depends on hashing.
pub trait AnnotationFamily: fmt::Debug + Sync {
    /// The family.
    fn family(&self) -> Family;
    /// Every key it reads.
    fn keys(&self) -> &'static [KeySpec];
    /// Read this family's keys from `cx` into `policy`.
    fn parse(&self, cx: &mut Cx<'_>, policy: &mut IngressPolicy);
}

/// The families, in the order they parse and are documented.
pub static REGISTRY: &[&dyn AnnotationFamily] = &[
    &routing::Routing,
    &redirect::Redirect,
    &canary::Canary,
    &cors::Cors,
    &access::Access,
    &auth::Auth,
    &client_tls::ClientTls,
    &load_balance::LoadBalanceFamily,
    &affinity::Affinity,
    &timeouts::Timeouts,
    &retries::Retries,
    &resilience::Resilience,
    &rate_limit::RateLimitFamily,
    &backend::Backend,
    &headers::Headers,
    &body::Body,
    &mirror::Mirror,
    &fallback::Fallback,
    &snippets::Snippets,
    &observability::Observability,
];

/// Every key of the registry, in registry order.
pub fn all_keys() -> impl Iterator<Item = &'static KeySpec> {
    REGISTRY.iter().flat_map(|f| f.keys().iter())
}

/// The key with this name (without prefix), if registered.
pub fn key(name: &str) -> Option<&'static KeySpec> {
    all_keys().find(|k| k.name == name)
}

/// Retired ingress-nginx names still found in manifests, and their replacements.
pub static RETIRED: &[Retired] = &[
    Retired {
        name: "secure-backends",
        replacement: "backend-protocol: HTTPS",
    },
    Retired {
        name: "grpc-backend",
        replacement: "backend-protocol: GRPC",
    },
    Retired {
        name: "upstream-max-fails",
        replacement: "proxy-next-upstream-tries",
    },
    Retired {
        name: "upstream-fail-timeout",
        replacement: "proxy-next-upstream-timeout",
    },
    Retired {
        name: "add-base-url",
        replacement: "rewrite-target",
    },
    Retired {
        name: "base-url-scheme",
        replacement: "rewrite-target",
    },
    Retired {
        name: "session-cookie-hash",
        replacement: "nothing: the cookie value is chosen by the gateway",
    },
    Retired {
        name: "lua-resty-waf",
        replacement: "a WAF in front of the gateway",
    },
    Retired {
        name: "lua-resty-waf-debug",
        replacement: "a WAF in front of the gateway",
    },
    Retired {
        name: "lua-resty-waf-ignore-rulesets",
        replacement: "a WAF in front of the gateway",
    },
    Retired {
        name: "lua-resty-waf-extra-rules",
        replacement: "a WAF in front of the gateway",
    },
    Retired {
        name: "lua-resty-waf-allow-unknown-content-types",
        replacement: "a WAF in front of the gateway",
    },
    Retired {
        name: "lua-resty-waf-score-threshold",
        replacement: "a WAF in front of the gateway",
    },
    Retired {
        name: "lua-resty-waf-process-multipart-body",
        replacement: "a WAF in front of the gateway",
    },
    Retired {
        name: "mirror-uri",
        replacement: "mirror-target",
    },
    Retired {
        name: "enable-influxdb",
        replacement: "the /metrics endpoint",
    },
    Retired {
        name: "influxdb-measurement",
        replacement: "the /metrics endpoint",
    },
    Retired {
        name: "influxdb-port",
        replacement: "the /metrics endpoint",
    },
    Retired {
        name: "influxdb-host",
        replacement: "the /metrics endpoint",
    },
    Retired {
        name: "influxdb-server-name",
        replacement: "the /metrics endpoint",
    },
    Retired {
        name: "secure-verify-ca-secret",
        replacement: "proxy-ssl-secret",
    },
    Retired {
        name: "enable-opentracing",
        replacement: "enable-opentelemetry",
    },
    Retired {
        name: "opentracing-trust-incoming-span",
        replacement: "opentelemetry-trust-incoming-span",
    },
    Retired {
        name: "global-rate-limit",
        replacement: "limit-rps with the gateway's global limit store",
    },
    Retired {
        name: "global-rate-limit-window",
        replacement: "limit-rps / limit-rpm",
    },
    Retired {
        name: "global-rate-limit-key",
        replacement: "limit-rps (keyed by client address)",
    },
    Retired {
        name: "global-rate-limit-ignored-cidrs",
        replacement: "limit-allowlist",
    },
];

/// Options for reading annotations (part of `CompileOptions`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnnotationOptions {
    /// The profile: some defaults differ.
    pub profile: Profile,
    /// An operator's custom prefix (e.g. `example.com/`), read before all others.
    pub custom_prefix: Option<String>,
    /// The highest risk level an annotation may have (ingress-nginx's
    /// `annotations-risk-level`, `High` by default): a key above it is refused and
    /// the Ingress's routes fail closed.
    pub max_risk: Risk,
}

/// Why an Ingress's routes answer 503 instead of serving.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FailClosed {
    /// The annotation keys (with prefix) that caused it.
    pub keys: Vec<String>,
}

/// Everything one Ingress's annotations ask for, typed.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct IngressPolicy {
    /// Regex paths, rewrites, upstream Host.
    pub routing: RoutingPolicy,
    /// Redirects.
    pub redirect: RedirectPolicy,
    /// Canary rules (this Ingress is a canary when set).
    pub canary: Option<CanaryPolicy>,
    /// CORS.
    pub cors: Option<CorsPolicy>,
    /// IP allow and deny lists.
    pub access: AccessPolicy,
    /// Authentication.
    pub auth: AuthPolicy,
    /// Client certificates and downstream TLS (host scope).
    pub client_tls: ClientTlsPolicy,
    /// Load balancing.
    pub load_balance: LoadBalancePolicy,
    /// Session affinity.
    pub affinity: Option<AffinityPolicy>,
    /// Timeouts.
    pub timeouts: TimeoutPolicy,
    /// Retries.
    pub retries: RetryPolicy,
    /// Per-route outlier detection and circuit breaking (`ingress-rs.io/` keys).
    pub resilience: ResiliencePolicy,
    /// Rate and connection limits.
    pub rate_limit: RateLimitPolicy,
    /// Upstream protocol and TLS.
    pub backend: BackendPolicy,
    /// Header control.
    pub headers: HeaderPolicy,
    /// Body size and buffering.
    pub body: BodyPolicy,
    /// Mirroring.
    pub mirror: Option<MirrorPolicy>,
    /// Default backend and custom error pages.
    pub fallback: FallbackPolicy,
    /// `enable-access-log` (default true).
    pub access_log: bool,
    /// `affinity-canary-behavior: legacy`: affinity cookies do not pin canary decisions.
    pub canary_affinity_legacy: bool,
    /// Set when a value was invalid, refused or unenforceable: the routes answer 503.
    pub fail_closed: Option<FailClosed>,
    /// The host- and backend-scoped keys this object sets, with their values, for
    /// cross-Ingress conflict checks.
    pub scoped: Vec<ScopedValue>,
}

impl Default for IngressPolicy {
    fn default() -> Self {
        IngressPolicy {
            routing: RoutingPolicy::default(),
            redirect: RedirectPolicy::default(),
            canary: None,
            cors: None,
            access: AccessPolicy::default(),
            auth: AuthPolicy::default(),
            client_tls: ClientTlsPolicy::default(),
            load_balance: LoadBalancePolicy::default(),
            affinity: None,
            timeouts: TimeoutPolicy::default(),
            retries: RetryPolicy::default(),
            resilience: ResiliencePolicy::default(),
            rate_limit: RateLimitPolicy::default(),
            backend: BackendPolicy::default(),
            headers: HeaderPolicy::default(),
            body: BodyPolicy::default(),
            mirror: None,
            fallback: FallbackPolicy::default(),
            access_log: true,
            canary_affinity_legacy: false,
            fail_closed: None,
            scoped: Vec::new(),
        }
    }
}

/// A security control a route's policy asks the data plane to enforce. The core
/// decides IP lists, redirects and CORS itself; these need the data plane's IO. A data
/// plane that cannot carry one out must answer 503 rather than serve without it
/// (fail closed): compare [`IngressPolicy::requirements`] with what it supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Requirement {
    /// `auth-type: basic` with `auth-secret`.
    BasicAuth,
    /// `auth-type: digest` with `auth-secret`.
    DigestAuth,
    /// `auth-url`: an external authorization call per request.
    ExternalAuth,
    /// `auth-tls-*`: a verified client certificate.
    ClientCertificate,
    /// `limit-rps` / `limit-rpm` / `route-limit-*`.
    RateLimit,
    /// `limit-connections`.
    ConnectionLimit,
}

impl Requirement {
    /// The stable kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Requirement::BasicAuth => "basic-auth",
            Requirement::DigestAuth => "digest-auth",
            Requirement::ExternalAuth => "external-auth",
            Requirement::ClientCertificate => "client-certificate",
            Requirement::RateLimit => "rate-limit",
            Requirement::ConnectionLimit => "connection-limit",
        }
    }
}

impl IngressPolicy {
    /// The first security control this policy asks for that is not in `supported`
    /// (no allocation: data planes call this per request and fail closed on `Some`).
    pub fn unmet(&self, supported: &[Requirement]) -> Option<Requirement> {
        let needs = [
            (Requirement::BasicAuth, self.auth.basic.is_some()),
            (Requirement::DigestAuth, self.auth.digest.is_some()),
            (Requirement::ExternalAuth, self.auth.external.is_some()),
            (
                Requirement::ClientCertificate,
                self.client_tls.ca_secret.is_some(),
            ),
            (
                Requirement::RateLimit,
                !self.rate_limit.per_client.is_empty() || self.rate_limit.route.is_some(),
            ),
            (
                Requirement::ConnectionLimit,
                self.rate_limit.connections.is_some_and(|c| c > 0),
            ),
        ];
        needs
            .into_iter()
            .find(|(r, needed)| *needed && !supported.contains(r))
            .map(|(r, _)| r)
    }

    /// The security controls this policy asks the data plane to enforce.
    pub fn requirements(&self) -> Vec<Requirement> {
        let mut out = Vec::new();
        if self.auth.basic.is_some() {
            out.push(Requirement::BasicAuth);
        }
        if self.auth.digest.is_some() {
            out.push(Requirement::DigestAuth);
        }
        if self.auth.external.is_some() {
            out.push(Requirement::ExternalAuth);
        }
        if self.client_tls.ca_secret.is_some() {
            out.push(Requirement::ClientCertificate);
        }
        if !self.rate_limit.per_client.is_empty() || self.rate_limit.route.is_some() {
            out.push(Requirement::RateLimit);
        }
        if self.rate_limit.connections.is_some_and(|c| c > 0) {
            out.push(Requirement::ConnectionLimit);
        }
        out
    }
}

/// A host- or backend-scoped key as one Ingress set it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ScopedValue {
    /// The key name (without prefix).
    pub name: &'static str,
    /// The scope.
    pub scope: Scope,
    /// The full key as written.
    pub key: String,
    /// The value as written.
    pub value: String,
}

/// The result of [`parse`].
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    /// The typed policy.
    pub policy: IngressPolicy,
    /// Problems, each naming the annotation key.
    pub diagnostics: Vec<Diagnostic>,
}

/// Read one object's annotations into a typed policy. Never panics on input.
pub fn parse(
    annotations: &BTreeMap<String, String>,
    object: &ObjectRef,
    options: &AnnotationOptions,
) -> Parsed {
    let mut cx = Cx::new(annotations, object, options);
    let mut policy = IngressPolicy::default();
    if cx.entries.is_empty() {
        return Parsed {
            policy,
            diagnostics: Vec::new(),
        };
    }
    for family in REGISTRY {
        family.parse(&mut cx, &mut policy);
    }
    cx.finish(&mut policy);
    Parsed {
        policy,
        diagnostics: cx.diags,
    }
}

/// [`parse`], with the policy in an `Arc`; objects without any annotation under our
/// prefixes (most of them) share one default policy instead of allocating their own.
pub fn parse_shared(
    annotations: &BTreeMap<String, String>,
    object: &ObjectRef,
    options: &AnnotationOptions,
) -> (std::sync::Arc<IngressPolicy>, Vec<Diagnostic>) {
    static DEFAULT: std::sync::OnceLock<std::sync::Arc<IngressPolicy>> = std::sync::OnceLock::new();
    let custom = options.custom_prefix.as_deref();
    if !annotations.keys().any(|k| split_key(k, custom).is_some()) {
        let d = DEFAULT.get_or_init(|| std::sync::Arc::new(IngressPolicy::default()));
        return (d.clone(), Vec::new());
    }
    let parsed = parse(annotations, object, options);
    (std::sync::Arc::new(parsed.policy), parsed.diagnostics)
}

/// One annotation under one of our prefixes.
#[derive(Debug)]
struct Entry<'a> {
    key: &'a str,
    prefix: Prefix,
    name: &'a str,
    value: &'a str,
    used: bool,
}

/// A value taken from the annotations, with where it came from.
#[derive(Debug, Clone, Copy)]
pub struct Raw<'a> {
    /// The full key as written (with prefix).
    pub key: &'a str,
    /// The value, trimmed of surrounding whitespace.
    pub value: &'a str,
    /// The key's spec.
    pub spec: &'static KeySpec,
}

/// The parsing context a family reads from: resolves prefixes, checks values, keeps
/// track of what was read and collects diagnostics.
#[derive(Debug)]
pub struct Cx<'a> {
    entries: Vec<Entry<'a>>,
    object: &'a ObjectRef,
    options: &'a AnnotationOptions,
    diags: Vec<Diagnostic>,
    failed: Vec<String>,
    scoped: Vec<ScopedValue>,
}

impl<'a> Cx<'a> {
    fn new(
        annotations: &'a BTreeMap<String, String>,
        object: &'a ObjectRef,
        options: &'a AnnotationOptions,
    ) -> Self {
        let custom = options.custom_prefix.as_deref();
        let mut entries = Vec::new();
        for (key, value) in annotations {
            if let Some((prefix, name)) = split_key(key, custom) {
                entries.push(Entry {
                    key,
                    prefix,
                    name,
                    value,
                    used: false,
                });
            }
        }
        Cx {
            entries,
            object,
            options,
            diags: Vec::new(),
            failed: Vec::new(),
            scoped: Vec::new(),
        }
    }

    /// The profile being compiled for.
    pub fn profile(&self) -> Profile {
        self.options.profile
    }

    /// Whether any key of `keys` is present (under an accepted prefix).
    pub fn any_present(&self, keys: &[KeySpec]) -> bool {
        keys.iter().any(|k| {
            self.entries
                .iter()
                .any(|e| name_matches(e.name, k.name) && e.prefix.accepts(k.prefixes))
        })
    }

    /// Take the value of `spec`: the first accepted prefix wins, later ones with a
    /// different value are reported. Values with control characters or too long are
    /// invalid; refused keys fail closed; keys not enforced are reported. Returns
    /// `None` when absent or unusable.
    pub fn take(&mut self, spec: &'static KeySpec) -> Option<Raw<'a>> {
        let mut winner: Option<usize> = None;
        for i in 0..self.entries.len() {
            let e = &self.entries[i];
            if !name_matches(e.name, spec.name) || !e.prefix.accepts(spec.prefixes) {
                continue;
            }
            match winner {
                Some(w) if self.entries[w].prefix <= e.prefix => {
                    if self.entries[w].value.trim() != e.value.trim() {
                        let (wk, ek) = (self.entries[w].key, e.key);
                        let d = self.diag(
                            Code::AnnotationShadowed,
                            ek,
                            format!("`{ek}` is not used: `{wk}` is set too and is read first"),
                        );
                        self.diags.push(d);
                    }
                }
                Some(w) => {
                    if self.entries[w].value.trim() != e.value.trim() {
                        let (wk, ek) = (self.entries[w].key, e.key);
                        let d = self.diag(
                            Code::AnnotationShadowed,
                            wk,
                            format!("`{wk}` is not used: `{ek}` is set too and is read first"),
                        );
                        self.diags.push(d);
                    }
                    winner = Some(i);
                }
                None => winner = Some(i),
            }
            self.entries[i].used = true;
        }
        let e = &self.entries[winner?];
        let (key, raw_value) = (e.key, e.value);
        let value = raw_value.trim();
        let limit = if spec.multiline {
            MAX_MULTILINE_LEN
        } else {
            MAX_VALUE_LEN
        };
        if value.len() > limit {
            self.invalid_raw(key, "", &format!("the value is longer than {limit} bytes"));
            return None;
        }
        let bad_control = |c: char| {
            (c.is_control() && !(spec.multiline && (c == '\n' || c == '\t')))
                || c == '\u{2028}'
                || c == '\u{2029}'
        };
        // Check the value as written (trimming would hide a trailing CR); a final
        // newline from a YAML block scalar is allowed.
        if raw_value.trim_end_matches('\n').contains(bad_control) {
            self.invalid_raw(
                key,
                "",
                if spec.multiline {
                    "the value holds control characters other than newlines and tabs"
                } else {
                    "the value holds a newline or another control character"
                },
            );
            return None;
        }
        // Refused keys (snippets) say why below; any other key above the allowed
        // level is refused here.
        if spec.risk > self.options.max_risk && !matches!(spec.support, Support::Refused(_)) {
            let d = self.diag(
                Code::AnnotationRefused,
                key,
                format!(
                    "`{key}` is refused: its risk level ({}) is above the allowed annotations risk level ({})",
                    spec.risk.as_str(),
                    self.options.max_risk.as_str()
                ),
            );
            self.diags.push(d);
            self.failed.push(key.to_string());
            return None;
        }
        if spec.scope != Scope::Route {
            self.scoped.push(ScopedValue {
                name: spec.name,
                scope: spec.scope,
                key: key.to_string(),
                value: value.to_string(),
            });
        }
        match spec.support {
            Support::Refused(why) => {
                let d = self.diag(
                    Code::AnnotationRefused,
                    key,
                    format!("`{key}` is refused: {why}"),
                );
                self.diags.push(d);
                self.failed.push(key.to_string());
                return None;
            }
            Support::NotEnforced(why) if spec.security => {
                let d = self.diag(
                    Code::AnnotationUnenforceable,
                    key,
                    format!("`{key}` cannot be enforced ({why}); the routes answer 503 rather than serve without it"),
                );
                self.diags.push(d);
                self.failed.push(key.to_string());
            }
            Support::NotEnforced(why) => {
                let d = self.diag(
                    Code::AnnotationNotEnforced,
                    key,
                    format!("`{key}` has no effect here: {why}"),
                );
                self.diags.push(d);
            }
            Support::Partial(what) => {
                let d = self.diag(Code::AnnotationPartial, key, format!("`{key}`: {what}"));
                self.diags.push(d);
            }
            Support::Supported => {}
        }
        Some(Raw { key, value, spec })
    }

    /// Take `spec` and parse it with `f`; an error becomes `annotation-invalid-value`
    /// and fails the routes closed.
    pub fn parse<T>(
        &mut self,
        spec: &'static KeySpec,
        f: impl FnOnce(&str) -> Result<T, values::Invalid>,
    ) -> Option<T> {
        let raw = self.take(spec)?;
        match f(raw.value) {
            Ok(v) => Some(v),
            Err(why) => {
                self.invalid(&raw, &why);
                None
            }
        }
    }

    /// Take a boolean key.
    pub fn boolean(&mut self, spec: &'static KeySpec) -> Option<bool> {
        self.parse(spec, values::boolean)
    }

    /// Report `raw` as invalid for `why`; the routes fail closed.
    pub fn invalid(&mut self, raw: &Raw<'_>, why: &str) {
        self.invalid_raw(raw.key, raw.value, why);
    }

    fn invalid_raw(&mut self, key: &str, value: &str, why: &str) {
        let shown = if value.is_empty() || value.len() > 120 {
            String::new()
        } else {
            format!(" `{value}`")
        };
        let d = self.diag(
            Code::AnnotationInvalidValue,
            key,
            format!(
                "`{key}`{shown}: {why}; the routes of this Ingress answer 503 until it is fixed"
            ),
        );
        self.diags.push(d);
        self.failed.push(key.to_string());
    }

    /// Report a problem with `key` under `code` (the family's own judgement, e.g.
    /// "has no effect without rewrite-target").
    /// `key` may be the full key or a registry name; a name is resolved to the key
    /// as written, so the diagnostic points at the right line.
    pub fn report(&mut self, code: Code, key: &str, message: impl Into<String>) {
        let full = self.full_key(key);
        let d = self.diag(code, &full, message.into());
        self.diags.push(d);
    }

    /// The key as written for a registry name (or `key` itself when it is already a
    /// full key); the nginx spelling when the name is not present.
    fn full_key(&self, key: &str) -> String {
        if key.contains('/') {
            return key.to_owned();
        }
        self.entries
            .iter()
            .find(|e| name_matches(e.name, key))
            .map_or_else(
                || format!("nginx.ingress.kubernetes.io/{key}"),
                |e| e.key.to_owned(),
            )
    }

    /// Fail the routes closed because of `key` (after reporting it).
    pub fn fail_closed(&mut self, key: &str) {
        let full = self.full_key(key);
        self.failed.push(full);
    }

    fn diag(&self, code: Code, key: &str, message: String) -> Diagnostic {
        Diagnostic::new(
            code,
            Some(self.object.clone()),
            Some(annotation_field(key)),
            message,
        )
    }

    /// Unknown and retired keys; the fail-closed verdict.
    fn finish(&mut self, policy: &mut IngressPolicy) {
        let mut found = Vec::new();
        for e in self.entries.iter().filter(|e| !e.used) {
            if let Some(r) = RETIRED.iter().find(|r| r.name == e.name) {
                found.push((
                    Code::AnnotationRetired,
                    e.key,
                    format!(
                        "`{}` was removed from ingress-nginx and has no effect; use {}",
                        e.key, r.replacement
                    ),
                ));
                continue;
            }
            let registered = key(e.name);
            let message = match registered {
                Some(spec) => format!(
                    "`{}` is not read under this prefix; `{}` is a {} key",
                    e.key,
                    spec.name,
                    match spec.prefixes {
                        Prefixes::Extension => "higress.io/ or mse.ingress.kubernetes.io/",
                        Prefixes::Mse => "mse.ingress.kubernetes.io/",
                        Prefixes::Project => "ingress-rs.io/",
                        _ => "nginx.ingress.kubernetes.io/",
                    }
                ),
                None => match suggest(e.name) {
                    Some(s) => format!("unknown annotation `{}`; did you mean `{s}`?", e.key),
                    None => format!("unknown annotation `{}`; it has no effect", e.key),
                },
            };
            found.push((Code::AnnotationUnknown, e.key, message));
        }
        for (code, key, message) in found {
            self.report(code, key, message);
        }
        if !self.failed.is_empty() {
            self.failed.sort();
            self.failed.dedup();
            policy.fail_closed = Some(FailClosed {
                keys: std::mem::take(&mut self.failed),
            });
        }
        policy.scoped = std::mem::take(&mut self.scoped);
    }
}

/// Whether an annotation name matches a registry name (`*` matches any run of
/// characters, for families of keys such as `*-match-header-*`).
fn name_matches(name: &str, pattern: &str) -> bool {
    let Some((head, tail)) = pattern.split_once('*') else {
        return name == pattern;
    };
    if head.is_empty() {
        // `*<mid>*`: something, the middle, something.
        let mid = tail.trim_end_matches('*');
        name.find(mid)
            .is_some_and(|at| at > 0 && name.len() > at + mid.len())
    } else {
        name.len() > head.len() && name.starts_with(head)
    }
}

/// What one annotation key (with prefix) is to this gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyClass {
    /// Not under any of our prefixes: not ours to judge.
    Foreign,
    /// A registered key under a prefix it is read under.
    Known(Prefix, &'static KeySpec),
    /// A registered key under a prefix it is not read under.
    WrongPrefix(Prefix, &'static KeySpec),
    /// A retired ingress-nginx name.
    Retired(&'static Retired),
    /// Under our prefix but unknown, with the closest registered name.
    Unknown(Option<&'static str>),
}

/// Which of our prefixes `key` is under (the custom one first, when configured and
/// not empty), and the name after it; `None` for keys that are not ours.
fn split_key<'k>(key: &'k str, custom: Option<&str>) -> Option<(Prefix, &'k str)> {
    custom
        .filter(|c| !c.is_empty())
        .and_then(|c| key.strip_prefix(c).map(|n| (Prefix::Custom, n)))
        .or_else(|| {
            Prefix::FIXED
                .iter()
                .find_map(|(p, text)| key.strip_prefix(text).map(|n| (*p, n)))
        })
}

/// Classify an annotation key, as [`parse`] would read it.
pub fn classify_key(key: &str, custom_prefix: Option<&str>) -> KeyClass {
    let Some((prefix, name)) = split_key(key, custom_prefix) else {
        return KeyClass::Foreign;
    };
    if let Some(spec) = all_keys().find(|k| name_matches(name, k.name)) {
        return if prefix.accepts(spec.prefixes) {
            KeyClass::Known(prefix, spec)
        } else {
            KeyClass::WrongPrefix(prefix, spec)
        };
    }
    if let Some(r) = RETIRED.iter().find(|r| r.name == name) {
        return KeyClass::Retired(r);
    }
    KeyClass::Unknown(suggest(name))
}

/// The field path of an annotation key, as diagnostics and source maps use it.
pub fn annotation_field(key: &str) -> String {
    format!("metadata.annotations[\"{key}\"]")
}

/// The registered key name closest to `name`, if close enough to be a typo.
pub fn suggest(name: &str) -> Option<&'static str> {
    let limit = (name.len() / 4).clamp(1, 3);
    all_keys()
        .map(|k| (values::edit_distance(name, k.name), k.name))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, n)| n)
}
