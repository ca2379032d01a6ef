//! The `canary` family: which requests a canary Ingress takes from its primary.
//!
//! Per request, in order (ingress-nginx's balancer.lua): session affinity (decided by
//! the routing code), header, cookie, query (MSE), weight. See
//! [`CanaryPolicy::decide_by_request`].

use http::{HeaderMap, HeaderName};

use crate::compile::Profile;
use crate::diagnostics::Code;

use super::spec::{Prefixes, Risk};
use super::values::{self, Pattern};
use super::{AnnotationFamily, Cx, Family, IngressPolicy, KeySpec};

/// How the canary header's value selects.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HeaderMatch {
    /// `always` → canary, `never` → primary, anything else falls through.
    Keywords,
    /// Exactly this value → canary; anything else falls through.
    Value(String),
    /// A regex search (unanchored) on the value → canary; otherwise falls through.
    Pattern(Pattern),
}

/// `canary-by-header` with its value rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HeaderRule {
    /// The header (matched case-insensitively).
    pub name: HeaderName,
    /// How its value selects.
    pub matcher: HeaderMatch,
}

/// MSE `canary-by-query`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QueryRule {
    /// The query parameter.
    pub name: String,
    /// The value that selects the canary; `None` means `always`/`never` keywords.
    pub value: Option<String>,
}

/// The canary rules of a canary Ingress.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct CanaryPolicy {
    /// `canary-by-header` (+ `-value` / `-pattern`).
    pub header: Option<HeaderRule>,
    /// `canary-by-cookie`.
    pub cookie: Option<String>,
    /// MSE `canary-by-query` (+ `-value`).
    pub query: Option<QueryRule>,
    /// `canary-weight`.
    pub weight: u32,
    /// `canary-weight-total` as written (default 100).
    pub weight_total: u32,
}

/// Why a request went to (or stayed away from) a canary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CanaryReason {
    /// The session-affinity cookie pins the request.
    Affinity,
    /// The canary header.
    Header,
    /// The canary cookie.
    Cookie,
    /// The canary query parameter.
    Query,
    /// The weighted roll.
    Weight,
}

/// The outcome of one canary's rules for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CanaryVerdict {
    /// Go to this canary.
    Canary(CanaryReason),
    /// Go to the primary, and stop looking at other canaries (`never`).
    Primary(CanaryReason),
    /// This canary's rules did not decide.
    FallThrough,
}

impl CanaryPolicy {
    /// The weight denominator: ingress-nginx treats totals up to 100 as 100.
    pub fn total(&self, profile: Profile) -> u32 {
        match profile {
            Profile::IngressNginx => self.weight_total.max(100),
            Profile::Standard => self.weight_total.max(1),
        }
    }

    /// Header, cookie and query rules, in that order (weight is decided by the caller,
    /// because several canaries share one roll).
    pub fn decide_by_request(&self, headers: &HeaderMap, query: Option<&str>) -> CanaryVerdict {
        if let Some(rule) = &self.header
            && let Some(v) = headers.get(&rule.name).and_then(|v| v.to_str().ok())
        {
            match &rule.matcher {
                HeaderMatch::Value(want) if v == want => {
                    return CanaryVerdict::Canary(CanaryReason::Header);
                }
                HeaderMatch::Pattern(p) if p.0.is_match(v) => {
                    return CanaryVerdict::Canary(CanaryReason::Header);
                }
                HeaderMatch::Keywords if v == "always" => {
                    return CanaryVerdict::Canary(CanaryReason::Header);
                }
                HeaderMatch::Keywords if v == "never" => {
                    return CanaryVerdict::Primary(CanaryReason::Header);
                }
                _ => {}
            }
        }
        if let Some(name) = &self.cookie {
            match cookie(headers, name) {
                Some("always") => return CanaryVerdict::Canary(CanaryReason::Cookie),
                Some("never") => return CanaryVerdict::Primary(CanaryReason::Cookie),
                _ => {}
            }
        }
        if let Some(rule) = &self.query
            && let Some(v) = query_param(query, &rule.name)
        {
            match &rule.value {
                Some(want) if v == want => return CanaryVerdict::Canary(CanaryReason::Query),
                None if v == "always" => return CanaryVerdict::Canary(CanaryReason::Query),
                None if v == "never" => return CanaryVerdict::Primary(CanaryReason::Query),
                _ => {}
            }
        }
        CanaryVerdict::FallThrough
    }
}

/// The value of cookie `name` in the request's Cookie headers.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k.trim() == name).then(|| v.trim().trim_matches('"'))
        })
}

/// The raw value of query parameter `name` (not percent-decoded).
pub fn query_param<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}

const CANARY: KeySpec = KeySpec::new("canary", Family::Canary)
    .grammar("boolean")
    .default("false")
    .doc("This Ingress is the canary of the non-canary Ingress with the same host, path and path type; it adds no route of its own. ingress-nginx profile: one canary per route; standard: several, weights summed.");
const BY_HEADER: KeySpec = KeySpec::new("canary-by-header", Family::Canary)
    .grammar("header name")
    .doc("Header value `always` → canary, `never` → primary, anything else falls through to cookie and weight.")
    .risk(Risk::Medium);
const BY_HEADER_VALUE: KeySpec = KeySpec::new("canary-by-header-value", Family::Canary)
    .grammar("string")
    .doc("The exact header value that selects the canary (replaces always/never); needs canary-by-header.")
    .risk(Risk::Medium);
const BY_HEADER_PATTERN: KeySpec = KeySpec::new("canary-by-header-pattern", Family::Canary)
    .grammar("regex (linear-time engine)")
    .doc("A regex searched in the header value selects the canary; ignored when canary-by-header-value is set.")
    .risk(Risk::Medium);
const BY_COOKIE: KeySpec = KeySpec::new("canary-by-cookie", Family::Canary)
    .grammar("cookie name")
    .doc(
        "Cookie value `always` → canary, `never` → primary, anything else falls through to weight.",
    )
    .risk(Risk::Medium);
const WEIGHT: KeySpec = KeySpec::new("canary-weight", Family::Canary)
    .grammar("whole number from 0")
    .default("0")
    .doc("Requests sent to the canary out of canary-weight-total, by a uniform roll.");
const WEIGHT_TOTAL: KeySpec = KeySpec::new("canary-weight-total", Family::Canary)
    .grammar("whole number from 1")
    .default("100")
    .doc("The weight denominator (ingress-nginx profile: totals below 100 count as 100).");
const BY_QUERY: KeySpec = KeySpec::new("canary-by-query", Family::Canary)
    .grammar("query parameter name")
    .doc("MSE: query parameter value `always` → canary, `never` → primary; checked after the cookie.")
    .prefixes(Prefixes::Mse)
    .risk(Risk::Medium);
const BY_QUERY_VALUE: KeySpec = KeySpec::new("canary-by-query-value", Family::Canary)
    .grammar("string")
    .doc("MSE: the exact query value that selects the canary; needs canary-by-query.")
    .prefixes(Prefixes::Mse)
    .risk(Risk::Medium);
const AFFINITY_BEHAVIOR: KeySpec = KeySpec::new("affinity-canary-behavior", Family::Canary)
    .grammar("`sticky` or `legacy`")
    .default("sticky")
    .doc("sticky: a request whose affinity cookie pins it to the canary or the primary stays there; legacy: affinity is ignored for the canary decision.");

static KEYS: &[KeySpec] = &[
    CANARY,
    BY_HEADER,
    BY_HEADER_VALUE,
    BY_HEADER_PATTERN,
    BY_COOKIE,
    WEIGHT,
    WEIGHT_TOTAL,
    BY_QUERY,
    BY_QUERY_VALUE,
    AFFINITY_BEHAVIOR,
];

/// The family.
#[derive(Debug)]
pub(crate) struct Canary;

fn token(s: &str) -> Result<String, values::Invalid> {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~!*'()".contains(&b))
    {
        Ok(s.to_string())
    } else {
        Err("expected a name of letters, digits and `-_.~`".into())
    }
}

impl AnnotationFamily for Canary {
    fn family(&self) -> Family {
        Family::Canary
    }
    fn keys(&self) -> &'static [KeySpec] {
        KEYS
    }
    fn parse(&self, cx: &mut Cx<'_>, policy: &mut IngressPolicy) {
        policy.canary_affinity_legacy =
            cx.parse(&KEYS[9], |s| values::one_of(s, &["sticky", "legacy"])) == Some(1);
        let enabled = cx.boolean(&KEYS[0]);
        if enabled != Some(true) {
            // Canary annotations without `canary: "true"` make the Ingress invalid.
            let stray: Vec<&'static KeySpec> = KEYS[1..9]
                .iter()
                .filter(|k| cx.any_present(std::slice::from_ref(*k)))
                .collect();
            for k in stray {
                if let Some(raw) = cx.take(k) {
                    cx.report(
                        Code::CanaryNotEnabled,
                        raw.key,
                        format!("`{}` is set but `canary` is not \"true\"; the routes of this Ingress answer 503 until it is fixed", raw.key),
                    );
                    cx.fail_closed(raw.key);
                }
            }
            return;
        }
        let header = cx.parse(&KEYS[1], values::header_name);
        let value = cx.take(&KEYS[2]);
        let pattern = cx.take(&KEYS[3]);
        let mut matcher = HeaderMatch::Keywords;
        if let Some(raw) = value {
            if header.is_none() {
                cx.report(
                    Code::AnnotationIgnored,
                    raw.key,
                    format!("`{}` has no effect without canary-by-header", raw.key),
                );
            }
            matcher = HeaderMatch::Value(raw.value.to_string());
            if let Some(p) = pattern {
                cx.report(
                    Code::AnnotationIgnored,
                    p.key,
                    format!(
                        "`{}` is ignored because canary-by-header-value is set",
                        p.key
                    ),
                );
            }
        } else if let Some(raw) = pattern {
            match values::regex(raw.value, false) {
                Ok(re) => matcher = HeaderMatch::Pattern(Pattern(re)),
                Err(why) => cx.invalid(&raw, &why),
            }
            if header.is_none() {
                cx.report(
                    Code::AnnotationIgnored,
                    raw.key,
                    format!("`{}` has no effect without canary-by-header", raw.key),
                );
            }
        }
        let cookie = cx.parse(&KEYS[4], token);
        let weight = cx
            .parse(&KEYS[5], |s| values::uint_max(s, 1_000_000))
            .unwrap_or(0);
        let weight_total = cx
            .parse(&KEYS[6], |s| {
                let n = values::uint_max(s, 1_000_000)?;
                if n == 0 {
                    return Err("expected a whole number from 1".into());
                }
                Ok(n)
            })
            .unwrap_or(100);
        let query_name = cx.parse(&KEYS[7], token);
        let query_value = cx.take(&KEYS[8]);
        if query_name.is_none()
            && let Some(raw) = &query_value
        {
            cx.report(
                Code::AnnotationIgnored,
                raw.key,
                format!("`{}` has no effect without canary-by-query", raw.key),
            );
        }
        policy.canary = Some(CanaryPolicy {
            header: header.map(|name| HeaderRule { name, matcher }),
            cookie,
            query: query_name.map(|name| QueryRule {
                name,
                value: query_value.map(|r| r.value.to_string()),
            }),
            weight: weight as u32,
            weight_total: weight_total as u32,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_cookie_query_order() {
        let p = CanaryPolicy {
            header: Some(HeaderRule {
                name: HeaderName::from_static("x-canary"),
                matcher: HeaderMatch::Keywords,
            }),
            cookie: Some("canary".into()),
            query: Some(QueryRule {
                name: "c".into(),
                value: Some("yes".into()),
            }),
            weight: 0,
            weight_total: 100,
        };
        let mut h = HeaderMap::new();
        assert_eq!(p.decide_by_request(&h, None), CanaryVerdict::FallThrough);
        h.insert("cookie", "a=b; canary=always".parse().expect("v"));
        assert_eq!(
            p.decide_by_request(&h, None),
            CanaryVerdict::Canary(CanaryReason::Cookie)
        );
        h.insert("x-canary", "never".parse().expect("v"));
        assert_eq!(
            p.decide_by_request(&h, None),
            CanaryVerdict::Primary(CanaryReason::Header)
        );
        h.insert("x-canary", "other".parse().expect("v"));
        assert_eq!(
            p.decide_by_request(&h, None),
            CanaryVerdict::Canary(CanaryReason::Cookie)
        );
        h.remove("cookie");
        assert_eq!(
            p.decide_by_request(&h, Some("x=1&c=yes")),
            CanaryVerdict::Canary(CanaryReason::Query)
        );
        assert_eq!(
            p.decide_by_request(&h, Some("c=no")),
            CanaryVerdict::FallThrough
        );
    }

    #[test]
    fn totals_per_profile() {
        let mut p = CanaryPolicy {
            header: None,
            cookie: None,
            query: None,
            weight: 5,
            weight_total: 10,
        };
        assert_eq!(p.total(Profile::IngressNginx), 100);
        assert_eq!(p.total(Profile::Standard), 10);
        p.weight_total = 1000;
        assert_eq!(p.total(Profile::IngressNginx), 1000);
    }
}
