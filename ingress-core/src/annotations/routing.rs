//! The `routing` family: regex paths, rewrites, upstream Host, path case.

use crate::compile::Profile;

use super::spec::{Prefixes, Risk, Scope, Support};
use super::{AnnotationFamily, Cx, Family, IngressPolicy, KeySpec, values};

/// How the paths of an Ingress match, as its annotations decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegexMode {
    /// Paths match as their path type says.
    Off,
    /// Regex anchored at the start only (`^<path>`): nginx `~*` locations and Higress
    /// prefix regex.
    Prefix,
    /// Regex anchored at both ends (`^<path>$`): Higress `full-path-regex`.
    Full,
}

/// One piece of a rewrite target.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RewritePart {
    /// Literal text.
    Literal(String),
    /// `$1`..`$9`: a capture group of the path regex (empty when it did not match).
    Group(usize),
}

/// A parsed `rewrite-target`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RewriteTarget {
    /// The value as written.
    pub raw: String,
    /// Literal text and capture references.
    pub parts: Vec<RewritePart>,
    /// The target is an absolute `http(s)://` URL: nginx answers 302 to it instead
    /// of rewriting.
    pub redirect: bool,
    /// The target has its own `?query`: the request's query is not appended.
    pub has_query: bool,
}

impl RewriteTarget {
    /// Whether the target refers to capture groups.
    pub fn has_groups(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, RewritePart::Group(_)))
    }

    /// Substitute capture groups (`group(n)` gives group `n`, `None` when it did not
    /// participate).
    pub fn expand<'s>(&self, group: impl Fn(usize) -> Option<&'s str>) -> String {
        let mut out = String::with_capacity(self.raw.len() + 16);
        for p in &self.parts {
            match p {
                RewritePart::Literal(s) => out.push_str(s),
                RewritePart::Group(n) => out.push_str(group(*n).unwrap_or("")),
            }
        }
        out
    }
}

/// Parse a rewrite target: a path (or absolute http(s) URL) with `$1`..`$9`.
pub fn rewrite_target(s: &str) -> Result<RewriteTarget, values::Invalid> {
    let redirect = s.starts_with("http://") || s.starts_with("https://");
    if !redirect && !s.starts_with('/') {
        return Err("expected a path starting with `/` or an absolute http(s) URL".into());
    }
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' => {
                let braced = chars.peek() == Some(&'{');
                if braced {
                    chars.next();
                }
                let d = chars
                    .next()
                    .and_then(|d| d.to_digit(10))
                    .filter(|d| *d >= 1);
                if braced && chars.next() != Some('}') {
                    return Err("expected `${1}`..`${9}`".into());
                }
                let Some(d) = d else {
                    return Err(
                        "only capture references `$1`..`$9` may follow `$`; nginx variables are not supported".into(),
                    );
                };
                if !lit.is_empty() {
                    parts.push(RewritePart::Literal(std::mem::take(&mut lit)));
                }
                parts.push(RewritePart::Group(d as usize));
            }
            c if c.is_ascii_alphanumeric() || "-._~/:@!&'()*+,;=%?".contains(c) => lit.push(c),
            c => return Err(format!("`{c}` is not allowed in a rewrite target")),
        }
    }
    if !lit.is_empty() {
        parts.push(RewritePart::Literal(lit));
    }
    if redirect {
        let probe: String = s.replace('$', "");
        values::url(&probe)?;
    }
    Ok(RewriteTarget {
        raw: s.to_string(),
        has_query: s.contains('?'),
        parts,
        redirect,
    })
}

/// Regex paths, rewrites, upstream Host and path case for one Ingress.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RoutingPolicy {
    /// `use-regex`.
    pub use_regex: bool,
    /// Higress `full-path-regex`.
    pub full_path_regex: bool,
    /// Higress `ignore-path-case`.
    pub ignore_path_case: bool,
    /// `rewrite-target`.
    pub rewrite: Option<RewriteTarget>,
    /// Higress `rewrite-path`: plain prefix replacement (wins over `rewrite-target`).
    pub rewrite_path: Option<String>,
    /// `upstream-vhost`: the Host header sent upstream.
    pub upstream_vhost: Option<String>,
    /// `x-forwarded-prefix` (only with a rewrite).
    pub x_forwarded_prefix: Option<String>,
}

impl RoutingPolicy {
    /// How this Ingress's own paths match. The ingress-nginx profile turns on regex
    /// for `use-regex` or any `rewrite-target`, and then for the whole host (compile
    /// does that); the standard profile for `use-regex`, `full-path-regex`, or a
    /// rewrite target with capture references, for this Ingress only.
    pub fn regex_mode(&self, profile: Profile) -> RegexMode {
        match profile {
            Profile::IngressNginx if self.use_regex || self.rewrite.is_some() => RegexMode::Prefix,
            Profile::IngressNginx => RegexMode::Off,
            Profile::Standard if self.full_path_regex => RegexMode::Full,
            Profile::Standard
                if self.use_regex || self.rewrite.as_ref().is_some_and(|r| r.has_groups()) =>
            {
                RegexMode::Prefix
            }
            Profile::Standard => RegexMode::Off,
        }
    }
}

const REWRITE_TARGET: KeySpec = KeySpec::new("rewrite-target", Family::Routing)
    .grammar("path starting with `/` (or an absolute http(s) URL) with `$1`..`$9` capture references")
    .doc("Replaces the whole request path with the target, capture groups of the path regex substituted; the query is appended unless the target has one. An absolute URL answers 302. ingress-nginx profile: turns every path of the host into a case-insensitive regex. Standard: without `$n`, replaces the matched prefix.")
    .risk(Risk::Medium);
const USE_REGEX: KeySpec = KeySpec::new("use-regex", Family::Routing)
    .grammar("boolean")
    .default("false")
    .doc("Paths of this Ingress are regexes anchored at the start (linear-time engine; no look-around or backreferences). ingress-nginx profile: case-insensitive, and every path of the host becomes a regex ordered by path length. Standard: ImplementationSpecific paths of this Ingress only, case-sensitive, after Exact and Prefix.");
const UPSTREAM_VHOST: KeySpec = KeySpec::new("upstream-vhost", Family::Routing)
    .grammar("host name, optional `:port`")
    .default("the request's Host")
    .doc("The Host header sent upstream.")
    .risk(Risk::Low);
const X_FORWARDED_PREFIX: KeySpec = KeySpec::new("x-forwarded-prefix", Family::Routing)
    .grammar("path starting with `/`")
    .doc("Adds `X-Forwarded-Prefix` to the upstream request, only when the path is rewritten.")
    .risk(Risk::Medium);
const REWRITE_PATH: KeySpec = KeySpec::new("rewrite-path", Family::Routing)
    .grammar("path starting with `/`")
    .doc("Higress: replaces the matched prefix (or the whole Exact path) with this path, without regex; wins over rewrite-target.")
    .prefixes(Prefixes::Extension)
    .risk(Risk::Medium);
const FULL_PATH_REGEX: KeySpec = KeySpec::new("full-path-regex", Family::Routing)
    .grammar("boolean")
    .default("false")
    .doc("Higress: regex paths are anchored at both ends; turns regex on.")
    .prefixes(Prefixes::Extension);
const IGNORE_PATH_CASE: KeySpec = KeySpec::new("ignore-path-case", Family::Routing)
    .grammar("boolean")
    .default("false")
    .doc("Higress: paths of this Ingress match case-insensitively (they match as regexes, ranked after Exact and Prefix paths).")
    .prefixes(Prefixes::ExtensionAndNginx)
    .support(Support::Partial("case-insensitive paths rank with regex paths, after case-sensitive Exact and Prefix paths"));
const MATCH_METHOD: KeySpec = KeySpec::new("match-method", Family::Routing)
    .grammar("space-separated HTTP methods")
    .doc("Higress: the route matches only these methods.")
    .prefixes(Prefixes::Extension)
    .support(Support::Refused(
        "method conditions are not supported yet; the route would match more requests than asked",
    ));
const MATCH_HEADER: KeySpec = KeySpec::new("*-match-header-*", Family::Routing)
    .grammar("exact value, prefix or regex")
    .doc("Higress: extra header (and `-query-`, `-pseudo-header-`) match conditions.")
    .prefixes(Prefixes::Extension)
    .support(Support::Refused("header and query match conditions are not supported yet; the route would match more requests than asked"));
const MATCH_QUERY: KeySpec = KeySpec::new("*-match-query-*", Family::Routing)
    .grammar("exact value, prefix or regex")
    .doc("Higress: extra query-parameter match conditions.")
    .prefixes(Prefixes::Extension)
    .support(Support::Refused("query match conditions are not supported yet; the route would match more requests than asked"));
const MATCH_PSEUDO: KeySpec = KeySpec::new("*-match-pseudo-header-*", Family::Routing)
    .grammar("exact value, prefix or regex")
    .doc("Higress: HTTP/2 pseudo-header match conditions.")
    .prefixes(Prefixes::Extension)
    .support(Support::Refused("pseudo-header match conditions are not supported yet; the route would match more requests than asked"));
const SERVER_ALIAS: KeySpec = KeySpec::new("server-alias", Family::Routing)
    .grammar("comma-separated host names")
    .doc("Extra host names for the host.")
    .scope(Scope::Host)
    .risk(Risk::High)
    .support(Support::NotEnforced(
        "write the extra hosts as rules of the Ingress instead",
    ));

static KEYS: &[KeySpec] = &[
    REWRITE_TARGET,
    USE_REGEX,
    UPSTREAM_VHOST,
    X_FORWARDED_PREFIX,
    REWRITE_PATH,
    FULL_PATH_REGEX,
    IGNORE_PATH_CASE,
    MATCH_METHOD,
    MATCH_HEADER,
    MATCH_QUERY,
    MATCH_PSEUDO,
    SERVER_ALIAS,
];

/// The family.
#[derive(Debug)]
pub(crate) struct Routing;

impl AnnotationFamily for Routing {
    fn family(&self) -> Family {
        Family::Routing
    }
    fn keys(&self) -> &'static [KeySpec] {
        KEYS
    }
    fn parse(&self, cx: &mut Cx<'_>, policy: &mut IngressPolicy) {
        let p = &mut policy.routing;
        p.rewrite = cx.parse(&KEYS[0], rewrite_target);
        p.use_regex = cx.boolean(&KEYS[1]).unwrap_or(false);
        p.upstream_vhost = cx.parse(&KEYS[2], |s| values::host(s, true));
        let prefix = cx.take(&KEYS[3]);
        p.rewrite_path = cx.parse(&KEYS[4], |s| values::path(s, false));
        p.full_path_regex = cx.boolean(&KEYS[5]).unwrap_or(false);
        p.ignore_path_case = cx.boolean(&KEYS[6]).unwrap_or(false);
        for k in &KEYS[7..] {
            cx.take(k);
        }
        if let Some(raw) = prefix {
            if p.rewrite.is_none() && p.rewrite_path.is_none() {
                cx.report(
                    crate::diagnostics::Code::AnnotationIgnored,
                    raw.key,
                    format!(
                        "`{}` has no effect without rewrite-target (as in ingress-nginx)",
                        raw.key
                    ),
                );
            } else {
                match values::path(raw.value, false) {
                    Ok(v) => p.x_forwarded_prefix = Some(v),
                    Err(why) => cx.invalid(&raw, &why),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrite_targets_parse_into_parts() {
        let t = rewrite_target("/v2/$1/x${2}").expect("valid");
        assert_eq!(
            t.parts,
            vec![
                RewritePart::Literal("/v2/".into()),
                RewritePart::Group(1),
                RewritePart::Literal("/x".into()),
                RewritePart::Group(2)
            ]
        );
        assert!(!t.redirect && t.has_groups());
        let caps = ["", "a", "b"];
        assert_eq!(t.expand(|n| caps.get(n).copied()), "/v2/a/xb");
        assert_eq!(t.expand(|_| None), "/v2//x");
        let r = rewrite_target("https://bar.example.org/$1").expect("valid");
        assert!(r.redirect);
        for bad in [
            "api",
            "/$request_uri",
            "/$0",
            "/a b",
            "/a\"b",
            "/a{b",
            "/${1",
            "ftp://x/",
            "https:///nohost",
        ] {
            assert!(rewrite_target(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn regex_mode_per_profile() {
        let mut p = RoutingPolicy::default();
        assert_eq!(p.regex_mode(Profile::Standard), RegexMode::Off);
        p.rewrite = rewrite_target("/").ok();
        assert_eq!(p.regex_mode(Profile::IngressNginx), RegexMode::Prefix);
        assert_eq!(p.regex_mode(Profile::Standard), RegexMode::Off);
        p.rewrite = rewrite_target("/$2").ok();
        assert_eq!(p.regex_mode(Profile::Standard), RegexMode::Prefix);
        p.full_path_regex = true;
        assert_eq!(p.regex_mode(Profile::Standard), RegexMode::Full);
    }
}
