//! What the registry knows about each annotation key: [`KeySpec`] and its parts.

use std::fmt;

use serde::Serialize;

/// The annotation families, in registry order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Family {
    /// Regex paths, rewrites, upstream Host, path case and extra match conditions.
    Routing,
    /// HTTPS, permanent, temporal, app-root and www redirects.
    Redirect,
    /// Canary releases.
    Canary,
    /// Cross-origin resource sharing.
    Cors,
    /// Client IP allow and deny lists.
    Access,
    /// Basic and external authentication.
    Auth,
    /// Client certificate (mutual TLS) authentication and downstream TLS settings.
    ClientTls,
    /// Load-balancing algorithm and hash key.
    LoadBalance,
    /// Cookie session affinity.
    Affinity,
    /// Upstream timeouts.
    Timeouts,
    /// Retries on the next endpoint.
    Retries,
    /// Per-route outlier detection and circuit breaking (this project's keys).
    Resilience,
    /// Request rate and connection limits.
    RateLimit,
    /// Upstream protocol and TLS to the upstream.
    Backend,
    /// Request and response header control.
    Headers,
    /// Request body size and buffering.
    Body,
    /// Traffic mirroring.
    Mirror,
    /// Default backend and custom error pages.
    Fallback,
    /// Raw nginx configuration: refused.
    Snippets,
    /// Logging, tracing, WAF and other knobs of the nginx runtime.
    Observability,
}

impl Family {
    /// The stable kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Routing => "routing",
            Family::Redirect => "redirect",
            Family::Canary => "canary",
            Family::Cors => "cors",
            Family::Access => "access",
            Family::Auth => "auth",
            Family::ClientTls => "client-tls",
            Family::LoadBalance => "load-balance",
            Family::Affinity => "affinity",
            Family::Timeouts => "timeouts",
            Family::Retries => "retries",
            Family::Resilience => "resilience",
            Family::RateLimit => "rate-limit",
            Family::Backend => "backend",
            Family::Headers => "headers",
            Family::Body => "body",
            Family::Mirror => "mirror",
            Family::Fallback => "fallback",
            Family::Snippets => "snippets",
            Family::Observability => "observability",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How far an annotation's effect reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// Every path of the Ingress that carries it.
    Route,
    /// Every path of the host, across Ingresses: conflicting values are diagnosed and
    /// the oldest Ingress wins.
    Host,
    /// Every route to the same Service port (Higress's DestinationRule scope): the
    /// same conflict rule as host scope.
    Backend,
}

impl Scope {
    /// `route`, `host` or `backend`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Route => "route",
            Scope::Host => "host",
            Scope::Backend => "backend",
        }
    }
}

/// ingress-nginx's risk level for the key (annotations-risk.md). As the highest level
/// an operator allows (ingress-nginx's `annotations-risk-level`), the default is
/// `High`, as there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    /// Cosmetic.
    Low,
    /// Takes a URL, list, reference or regex.
    Medium,
    /// Free-form strings that reach identity, redirects or hashing.
    #[default]
    High,
    /// Raw configuration.
    Critical,
}

/// A risk level that is not `low`, `medium`, `high` or `critical`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown risk level {0:?}: expected low, medium, high or critical")]
pub struct UnknownRisk(pub String);

impl std::str::FromStr for Risk {
    type Err = UnknownRisk;
    fn from_str(s: &str) -> Result<Self, UnknownRisk> {
        match s.to_ascii_lowercase().as_str() {
            "low" => Ok(Risk::Low),
            "medium" => Ok(Risk::Medium),
            "high" => Ok(Risk::High),
            "critical" => Ok(Risk::Critical),
            _ => Err(UnknownRisk(s.to_owned())),
        }
    }
}

impl Risk {
    /// `low`, `medium`, `high` or `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Low => "low",
            Risk::Medium => "medium",
            Risk::High => "high",
            Risk::Critical => "critical",
        }
    }
}

/// What this gateway does with the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Support {
    /// Parsed and carried out as the reference implementation does.
    Supported,
    /// Parsed and carried out, with the stated difference.
    Partial(&'static str),
    /// Recognised and validated, but has no effect here (the reason says why); a
    /// warning says so wherever it is used.
    NotEnforced(&'static str),
    /// Refused: an error diagnostic, and the routes of the Ingress fail closed.
    Refused(&'static str),
}

impl Support {
    /// `supported`, `partial`, `not-enforced` or `refused`.
    pub fn as_str(self) -> &'static str {
        match self {
            Support::Supported => "supported",
            Support::Partial(_) => "partial",
            Support::NotEnforced(_) => "not-enforced",
            Support::Refused(_) => "refused",
        }
    }

    /// The note that comes with a non-full status.
    pub fn note(self) -> Option<&'static str> {
        match self {
            Support::Supported => None,
            Support::Partial(n) | Support::NotEnforced(n) | Support::Refused(n) => Some(n),
        }
    }
}

impl Serialize for Support {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The prefixes a key is read under, in the order they are looked up.
///
/// Resolution order, fixed: the configured custom prefix, `nginx.ingress.kubernetes.io/`,
/// `higress.io/`, `mse.ingress.kubernetes.io/`, `higress.ingress.kubernetes.io/`. The
/// first present one wins; a different value under a later prefix is reported
/// (`annotation-shadowed`), never silently merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Prefixes {
    /// An ingress-nginx key, also read under the extension prefixes (Higress/MSE do).
    Nginx,
    /// A Higress/MSE extension key, also accepted under the nginx prefix (Higress reads a
    /// few of its own keys there: `ignore-path-case`, `mirror-*`, `ssl-cipher`...).
    ExtensionAndNginx,
    /// A Higress/MSE extension key: `higress.io/`, `mse.ingress.kubernetes.io/` and
    /// `higress.ingress.kubernetes.io/` only.
    Extension,
    /// An MSE-only key: `mse.ingress.kubernetes.io/` (and the extension aliases).
    Mse,
    /// This project's own key (no ingress-nginx or Higress key exists for it):
    /// `ingress-rs.io/` only (and the custom prefix, as every key).
    Project,
}

/// One of the annotation prefixes the gateway reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Prefix {
    /// The operator's custom prefix (`CompileOptions::annotation_prefix`).
    Custom,
    /// `nginx.ingress.kubernetes.io/`.
    Nginx,
    /// `higress.io/`.
    Higress,
    /// `mse.ingress.kubernetes.io/`.
    Mse,
    /// `higress.ingress.kubernetes.io/` (Alibaba Cloud APIG spelling).
    HigressIngress,
    /// `ingress-rs.io/`: this project's own keys (the domain of the CRD group
    /// `gateway.ingress-rs.io`).
    Project,
}

impl Prefix {
    /// The fixed prefixes with their text, in lookup order (the custom one comes first
    /// when configured).
    pub const FIXED: [(Prefix, &'static str); 5] = [
        (Prefix::Nginx, "nginx.ingress.kubernetes.io/"),
        (Prefix::Higress, "higress.io/"),
        (Prefix::Mse, "mse.ingress.kubernetes.io/"),
        (Prefix::HigressIngress, "higress.ingress.kubernetes.io/"),
        (Prefix::Project, "ingress-rs.io/"),
    ];

    /// Whether a key declared with `prefixes` is read under this prefix.
    pub fn accepts(self, prefixes: Prefixes) -> bool {
        match (self, prefixes) {
            (Prefix::Custom, _) => true,
            (Prefix::Project, p) => p == Prefixes::Project,
            (_, Prefixes::Project) => false,
            (Prefix::Nginx, Prefixes::Nginx | Prefixes::ExtensionAndNginx) => true,
            (Prefix::Nginx, _) => false,
            (Prefix::Higress | Prefix::HigressIngress, Prefixes::Mse) => false,
            (_, _) => true,
        }
    }
}

/// Everything the registry declares about one key. Docs that list annotations are
/// generated from these, so they cannot drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct KeySpec {
    /// The name after the prefix, e.g. `rewrite-target`.
    pub name: &'static str,
    /// The family that parses it.
    pub family: Family,
    /// How far its effect reaches.
    pub scope: Scope,
    /// The accepted values, in words.
    pub grammar: &'static str,
    /// The value when absent, in words.
    pub default: &'static str,
    /// One line on what it does here.
    pub doc: &'static str,
    /// ingress-nginx's risk level.
    pub risk: Risk,
    /// What this gateway does with it.
    pub support: Support,
    /// Under which prefixes it is read.
    pub prefixes: Prefixes,
    /// A security control: if it cannot be enforced the route fails closed.
    pub security: bool,
    /// The value may span lines (header-control lists); every other value must be one
    /// line without control characters.
    pub multiline: bool,
}

impl KeySpec {
    /// A supported, route-scoped, single-line, non-security key of `family`, read
    /// under the nginx and extension prefixes; adjust with the builder methods.
    pub const fn new(name: &'static str, family: Family) -> Self {
        KeySpec {
            name,
            family,
            scope: Scope::Route,
            grammar: "",
            default: "unset",
            doc: "",
            risk: Risk::Low,
            support: Support::Supported,
            prefixes: Prefixes::Nginx,
            security: false,
            multiline: false,
        }
    }
    /// With this grammar text.
    pub const fn grammar(mut self, grammar: &'static str) -> Self {
        self.grammar = grammar;
        self
    }
    /// With this default text.
    pub const fn default(mut self, default: &'static str) -> Self {
        self.default = default;
        self
    }
    /// With this documentation line.
    pub const fn doc(mut self, doc: &'static str) -> Self {
        self.doc = doc;
        self
    }
    /// With this risk.
    pub const fn risk(mut self, risk: Risk) -> Self {
        self.risk = risk;
        self
    }
    /// With this scope.
    pub const fn scope(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }
    /// With this support status.
    pub const fn support(mut self, support: Support) -> Self {
        self.support = support;
        self
    }
    /// Read under these prefixes.
    pub const fn prefixes(mut self, prefixes: Prefixes) -> Self {
        self.prefixes = prefixes;
        self
    }
    /// A security control (fails closed when it cannot be enforced).
    pub const fn security(mut self) -> Self {
        self.security = true;
        self
    }
    /// May span lines.
    pub const fn multiline(mut self) -> Self {
        self.multiline = true;
        self
    }
}

/// A retired ingress-nginx annotation name that still appears in manifests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Retired {
    /// The old name, without prefix.
    pub name: &'static str,
    /// What replaces it.
    pub replacement: &'static str,
}
