//! The `load-balance` family: the load-balancing algorithm and the consistent-hash key.
//!
//! Precedence, as ingress-nginx's balancer.lua: cookie affinity (the `affinity`
//! family) first, then `upstream-hash-by`, then `load-balance`, then the gateway's
//! default (round robin). `upstream-hash-by` is parsed into a small template of a
//! fixed set of variables ([`super::template`]); nothing is ever expanded as text.

use std::borrow::Cow;

use crate::diagnostics::Code;

use super::spec::{Prefixes, Risk, Scope, Support};
use super::template::{self, Template, Var};
use super::values::{self, Invalid};
use super::{AnnotationFamily, Cx, Family, IngressPolicy, KeySpec};

/// A load-balancing algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LoadBalance {
    /// `round_robin`: endpoints in turn.
    RoundRobin,
    /// `ewma`: of two random endpoints, the one with the lower moving average of
    /// response time weighted by its in-flight requests.
    Ewma,
    /// Higress `least_conn` / `least_request`: of two random endpoints, the one with
    /// fewer in-flight requests.
    LeastRequest,
    /// Higress `random`: a uniformly random endpoint.
    Random,
    /// `chash`: consistent hashing of [`LoadBalancePolicy::hash`] (set exactly when
    /// the hash key is).
    ConsistentHash,
}

impl LoadBalance {
    /// The stable name (ingress-nginx spelling where one exists).
    pub fn as_str(self) -> &'static str {
        match self {
            LoadBalance::RoundRobin => "round_robin",
            LoadBalance::Ewma => "ewma",
            LoadBalance::LeastRequest => "least_request",
            LoadBalance::Random => "random",
            LoadBalance::ConsistentHash => "chash",
        }
    }
}

/// The consistent-hash key of `upstream-hash-by`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HashKey {
    /// Literal text and variables, evaluated per request.
    pub template: Template,
    /// `upstream-hash-by-subset`: the key picks a subset of this many endpoints and
    /// one of them is chosen at random per request (`None`: the key picks one
    /// endpoint).
    pub subset: Option<usize>,
}

impl HashKey {
    /// The hash input for one request: the template with each variable replaced by
    /// `vars`'s value (a missing variable is empty, as in nginx). `$remote_addr` and
    /// `$binary_remote_addr` both stand for the client address as text.
    pub fn key_for<'v>(&self, vars: impl Fn(&Var) -> Option<Cow<'v, str>>) -> String {
        self.template.render(vars)
    }
}

/// The load-balancing policy of one Ingress's routes.
///
/// Cookie affinity ([`super::AffinityPolicy`]), when set, takes precedence over both
/// fields: its cookie picks the endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct LoadBalancePolicy {
    /// The algorithm; `None` is the gateway's default (round robin, as ingress-nginx's
    /// ConfigMap default). `Some(ConsistentHash)` exactly when `hash` is set.
    pub algorithm: Option<LoadBalance>,
    /// `upstream-hash-by` (with its subset settings); wins over `load-balance`.
    pub hash: Option<HashKey>,
}

impl LoadBalancePolicy {
    /// The hash input for one request, when the routes hash (see [`HashKey::key_for`]).
    pub fn key_for<'v>(&self, vars: impl Fn(&Var) -> Option<Cow<'v, str>>) -> Option<String> {
        self.hash.as_ref().map(|h| h.key_for(vars))
    }
}

/// `upstream-hash-by-subset-size` when not written.
pub const DEFAULT_SUBSET_SIZE: usize = 3;

/// The largest accepted `upstream-hash-by-subset-size`.
pub const MAX_SUBSET_SIZE: u64 = 1024;

const LOAD_BALANCE: KeySpec = KeySpec::new("load-balance", Family::LoadBalance)
    .grammar("`round_robin`, `ewma`, `chash`, `chashsubset`, `sticky_balanced`, `sticky_persistent`; Higress: `least_conn`, `least_request`, `random`, `mcp-sse` (case-insensitive)")
    .default("the gateway default (round_robin)")
    .doc("The algorithm: round_robin; ewma (of two random endpoints, the lower latency average); least_conn/least_request (of two random endpoints, the fewer in-flight requests); random. upstream-hash-by and cookie affinity take precedence. `chash`/`chashsubset` without upstream-hash-by, `sticky_balanced`/`sticky_persistent` (ingress-nginx's internal names for cookie affinity: use `affinity: cookie` and `affinity-mode`) and Higress `mcp-sse` (not carried out) are warned and the default is used. Higress applies it to every route of the Service.");
const HASH_BY: KeySpec = KeySpec::new("upstream-hash-by", Family::LoadBalance)
    .grammar("text of `[A-Za-z0-9_-]` and variables `$request_uri`, `$escaped_request_uri`, `$uri`, `$host`, `$scheme`, `$request_method`, `$remote_addr`, `$binary_remote_addr`, `$http_<header>`, `$arg_<name>`, `$cookie_<name>` (also `${var}`)")
    .doc("Consistent hashing: the evaluated key picks the endpoint on a hash ring, so a key keeps reaching the same endpoint while the endpoints do not change. Wins over load-balance; cookie affinity wins over it. Any other variable is invalid (Higress reads one variable only).")
    .risk(Risk::High);
const SUBSET: KeySpec = KeySpec::new("upstream-hash-by-subset", Family::LoadBalance)
    .grammar("boolean")
    .default("false")
    .doc("With upstream-hash-by: the key picks a subset of upstream-hash-by-subset-size endpoints, and each request goes to a random one of them.");
const SUBSET_SIZE: KeySpec = KeySpec::new("upstream-hash-by-subset-size", Family::LoadBalance)
    .grammar("whole number from 1 to 1024")
    .default("3")
    .doc("The subset size of upstream-hash-by-subset.");
const MCP_SSE_PARAM: KeySpec = KeySpec::new("mcp-sse-stateful-param-name", Family::LoadBalance)
    .grammar("query parameter name")
    .default("sessionId")
    .doc("Higress: with `load-balance: mcp-sse`, the query parameter that carries the MCP SSE session.")
    .prefixes(Prefixes::ExtensionAndNginx)
    .scope(Scope::Backend)
    .support(Support::NotEnforced("MCP SSE stateful sessions are not implemented"));

static KEYS: &[KeySpec] = &[LOAD_BALANCE, HASH_BY, SUBSET, SUBSET_SIZE, MCP_SSE_PARAM];

/// What a `load-balance` value asks for.
enum Choice {
    Algorithm(LoadBalance),
    /// `chash` / `chashsubset`: the hash key comes from upstream-hash-by.
    Hash,
    /// `sticky_balanced` / `sticky_persistent`.
    Sticky,
    /// Higress `mcp-sse`.
    McpSse,
}

const CHOICES: [&str; 10] = [
    "round_robin",
    "ewma",
    "least_conn",
    "least_request",
    "random",
    "chash",
    "chashsubset",
    "sticky_balanced",
    "sticky_persistent",
    "mcp-sse",
];

fn choice(s: &str) -> Result<Choice, Invalid> {
    Ok(match values::one_of(s, &CHOICES)? {
        0 => Choice::Algorithm(LoadBalance::RoundRobin),
        1 => Choice::Algorithm(LoadBalance::Ewma),
        2 | 3 => Choice::Algorithm(LoadBalance::LeastRequest),
        4 => Choice::Algorithm(LoadBalance::Random),
        5 | 6 => Choice::Hash,
        7 | 8 => Choice::Sticky,
        _ => Choice::McpSse,
    })
}

/// Parse an `upstream-hash-by` value (ingress-nginx's charset `[A-Za-z0-9-_${}]`).
pub fn hash_template(s: &str) -> Result<Template, Invalid> {
    if s.is_empty() {
        return Err("expected a hash key such as `$request_uri`".into());
    }
    template::parse(s, |c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn param_name(s: &str) -> Result<String, Invalid> {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b))
    {
        Ok(s.to_string())
    } else {
        Err("expected a query parameter name of letters, digits and `-_.~`".into())
    }
}

/// Take `spec` and parse it, keeping the key as written (`None` inside when invalid,
/// which is reported).
fn keyed<'a, T>(
    cx: &mut Cx<'a>,
    spec: &'static KeySpec,
    f: impl FnOnce(&str) -> Result<T, Invalid>,
) -> Option<(&'a str, Option<T>)> {
    let raw = cx.take(spec)?;
    match f(raw.value) {
        Ok(v) => Some((raw.key, Some(v))),
        Err(why) => {
            cx.invalid(&raw, &why);
            Some((raw.key, None))
        }
    }
}

/// The family.
#[derive(Debug)]
pub(crate) struct LoadBalanceFamily;

impl AnnotationFamily for LoadBalanceFamily {
    fn family(&self) -> Family {
        Family::LoadBalance
    }
    fn keys(&self) -> &'static [KeySpec] {
        KEYS
    }
    fn parse(&self, cx: &mut Cx<'_>, policy: &mut IngressPolicy) {
        let template = cx.parse(&HASH_BY, hash_template);
        let hash_present = cx.any_present(std::slice::from_ref(&HASH_BY));
        let subset = keyed(cx, &SUBSET, values::boolean);
        let size = keyed(cx, &SUBSET_SIZE, |s| {
            let n = values::uint_max(s, MAX_SUBSET_SIZE)?;
            if n == 0 {
                return Err(format!(
                    "expected a whole number from 1 to {MAX_SUBSET_SIZE}"
                ));
            }
            Ok(n as usize)
        });
        let subset_on = matches!(subset, Some((_, Some(true))));
        if let (Some((key, _)), false) = (subset, hash_present) {
            cx.report(
                Code::AnnotationIgnored,
                key,
                format!("`{key}` has no effect without upstream-hash-by"),
            );
        } else if let (Some((key, _)), false) = (size, subset_on) {
            cx.report(
                Code::AnnotationIgnored,
                key,
                format!("`{key}` has no effect without upstream-hash-by-subset: \"true\""),
            );
        }
        let mut mcp_sse = false;
        let mut algorithm = None;
        if let Some(raw) = cx.take(&LOAD_BALANCE) {
            match choice(raw.value) {
                Err(why) => cx.invalid(&raw, &why),
                Ok(_) if hash_present && !raw.value.eq_ignore_ascii_case("chash") => cx.report(
                    Code::AnnotationIgnored,
                    raw.key,
                    format!("`{}` is not used: upstream-hash-by takes precedence (subsets come from upstream-hash-by-subset)", raw.key),
                ),
                Ok(Choice::Algorithm(a)) => algorithm = Some(a),
                Ok(Choice::Hash) if !hash_present => cx.report(
                    Code::AnnotationIgnored,
                    raw.key,
                    format!("`{}: {}` needs upstream-hash-by for its key; the default algorithm is used", raw.key, raw.value),
                ),
                Ok(Choice::Hash) => {}
                Ok(Choice::Sticky) => cx.report(
                    Code::AnnotationIgnored,
                    raw.key,
                    format!("`{}: {}` is ingress-nginx's internal name for cookie affinity and has no effect of its own; use `affinity: cookie` with `affinity-mode`", raw.key, raw.value),
                ),
                Ok(Choice::McpSse) => {
                    mcp_sse = true;
                    cx.report(
                        Code::AnnotationNotEnforced,
                        raw.key,
                        format!("`{}: mcp-sse` has no effect here: MCP SSE stateful sessions are not implemented; the default algorithm is used", raw.key),
                    );
                }
            }
        }
        if let Some((key, _)) = keyed(cx, &MCP_SSE_PARAM, param_name)
            && !mcp_sse
        {
            cx.report(
                Code::AnnotationIgnored,
                key,
                format!("`{key}` has no effect without `load-balance: mcp-sse`"),
            );
        }
        let p = &mut policy.load_balance;
        p.hash = template.map(|template| HashKey {
            template,
            subset: subset_on.then(|| size.and_then(|(_, n)| n).unwrap_or(DEFAULT_SUBSET_SIZE)),
        });
        p.algorithm = if p.hash.is_some() {
            Some(LoadBalance::ConsistentHash)
        } else {
            algorithm
        };
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::annotations::test_util::{N, codes, run};

    #[test]
    fn algorithms_parse_case_insensitively() {
        for (value, want) in [
            ("round_robin", Some(LoadBalance::RoundRobin)),
            ("EWMA", Some(LoadBalance::Ewma)),
            ("least_conn", Some(LoadBalance::LeastRequest)),
            ("LEAST_REQUEST", Some(LoadBalance::LeastRequest)),
            ("random", Some(LoadBalance::Random)),
        ] {
            let p = run(&[(&format!("{N}load-balance"), value)]);
            assert_eq!(p.policy.load_balance.algorithm, want, "{value}");
            assert!(p.diagnostics.is_empty(), "{value}: {:?}", p.diagnostics);
        }
        let p = run(&[("higress.io/load-balance", "random")]);
        assert_eq!(p.policy.load_balance.algorithm, Some(LoadBalance::Random));
    }

    #[test]
    fn defaults_are_unset() {
        let p = run(&[(&format!("{N}use-regex"), "true")]);
        assert_eq!(p.policy.load_balance, LoadBalancePolicy::default());
        assert_eq!(p.policy.load_balance.key_for(|_| None), None);
    }

    #[test]
    fn warned_values_use_the_default() {
        for (value, code) in [
            ("chash", Code::AnnotationIgnored),
            ("chashsubset", Code::AnnotationIgnored),
            ("sticky_balanced", Code::AnnotationIgnored),
            ("Sticky_Persistent", Code::AnnotationIgnored),
            ("mcp-sse", Code::AnnotationNotEnforced),
        ] {
            let p = run(&[(&format!("{N}load-balance"), value)]);
            assert_eq!(p.policy.load_balance.algorithm, None, "{value}");
            assert_eq!(codes(&p), vec![code], "{value}");
            assert!(p.policy.fail_closed.is_none());
        }
    }

    #[test]
    fn invalid_values_fail_closed() {
        for (key, value) in [
            ("load-balance", "least_time"),
            ("load-balance", "passthrough"),
            ("upstream-hash-by", ""),
            ("upstream-hash-by", "$document_root"),
            ("upstream-hash-by", "$request_uri;"),
            ("upstream-hash-by", "a b"),
            ("upstream-hash-by", "${host"),
            ("upstream-hash-by-subset", "yes"),
        ] {
            let p = run(&[(&format!("{N}{key}"), value)]);
            assert!(
                codes(&p).contains(&Code::AnnotationInvalidValue),
                "{key}: {value}"
            );
            assert!(p.policy.fail_closed.is_some(), "{key}: {value}");
        }
        let p = run(&[
            (&format!("{N}upstream-hash-by"), "$host"),
            (&format!("{N}upstream-hash-by-subset"), "true"),
            (&format!("{N}upstream-hash-by-subset-size"), "0"),
        ]);
        assert_eq!(codes(&p), vec![Code::AnnotationInvalidValue]);
        assert!(p.policy.fail_closed.is_some());
    }

    #[test]
    fn hash_key_wins_and_evaluates() {
        let p = run(&[
            (
                &format!("{N}upstream-hash-by"),
                "${request_uri}-x$http_x_user_id",
            ),
            (&format!("{N}load-balance"), "ewma"),
        ]);
        let lb = &p.policy.load_balance;
        assert_eq!(lb.algorithm, Some(LoadBalance::ConsistentHash));
        assert_eq!(codes(&p), vec![Code::AnnotationIgnored]);
        let key = lb.key_for(|v| match v {
            Var::RequestUri => Some("/a?b".into()),
            Var::Header(h) if h.as_str() == "x-user-id" => Some("42".into()),
            _ => None,
        });
        assert_eq!(key.as_deref(), Some("/a?b-x42"));
        assert_eq!(lb.hash.as_ref().and_then(|h| h.subset), None);
        // `chash` agrees with the hash key: no warning.
        let p = run(&[
            (&format!("{N}upstream-hash-by"), "$binary_remote_addr"),
            (&format!("{N}load-balance"), "chash"),
        ]);
        assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
    }

    #[test]
    fn subsets() {
        let p = run(&[
            (&format!("{N}upstream-hash-by"), "$arg_user"),
            (&format!("{N}upstream-hash-by-subset"), "true"),
        ]);
        assert_eq!(
            p.policy.load_balance.hash.as_ref().and_then(|h| h.subset),
            Some(3)
        );
        let p = run(&[
            (&format!("{N}upstream-hash-by"), "$arg_user"),
            (&format!("{N}upstream-hash-by-subset"), "true"),
            (&format!("{N}upstream-hash-by-subset-size"), "5"),
        ]);
        assert_eq!(
            p.policy.load_balance.hash.as_ref().and_then(|h| h.subset),
            Some(5)
        );
        assert!(p.diagnostics.is_empty());
        // Ignored combinations.
        let p = run(&[(&format!("{N}upstream-hash-by-subset"), "true")]);
        assert_eq!(codes(&p), vec![Code::AnnotationIgnored]);
        assert_eq!(p.policy.load_balance.hash, None);
        let p = run(&[
            (&format!("{N}upstream-hash-by"), "$host"),
            (&format!("{N}upstream-hash-by-subset-size"), "5"),
        ]);
        assert_eq!(codes(&p), vec![Code::AnnotationIgnored]);
        assert_eq!(
            p.policy.load_balance.hash.as_ref().and_then(|h| h.subset),
            None
        );
    }

    #[test]
    fn mcp_sse_param_is_not_enforced() {
        let p = run(&[
            ("higress.io/load-balance", "mcp-sse"),
            ("higress.io/mcp-sse-stateful-param-name", "sid"),
        ]);
        assert_eq!(
            codes(&p),
            vec![Code::AnnotationNotEnforced, Code::AnnotationNotEnforced]
        );
        assert!(p.policy.fail_closed.is_none());
        let p = run(&[(&format!("{N}mcp-sse-stateful-param-name"), "sid")]);
        assert_eq!(
            codes(&p),
            vec![Code::AnnotationNotEnforced, Code::AnnotationIgnored]
        );
        assert_eq!(p.policy.scoped.len(), 1);
    }
}
