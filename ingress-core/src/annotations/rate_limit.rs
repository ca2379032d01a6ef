//! The `rate-limit` family: request rate and connection limits.
//!
//! ingress-nginx's `limit-rps` / `limit-rpm` / `limit-connections` limit each client
//! address (per gateway replica, as nginx's zones are per controller pod): rates use
//! nginx's `limit_req ... burst=<rate x multiplier> nodelay` (a leaky bucket whose
//! excess up to the burst is served at once) and answer 503; all of them apply.
//! Addresses in `limit-allowlist` are not limited. Higress's `route-limit-*` limit
//! the route as a whole (not per client) with a token bucket and answer 429.
//!
//! These are security controls: the data plane enforces them, and a value that does
//! not parse fails the routes closed.

use std::net::IpAddr;
use std::time::Duration;

use http::StatusCode;
use ipnet::IpNet;

use crate::diagnostics::Code;

use super::spec::Prefixes;
use super::values::{self, Invalid};
use super::{AnnotationFamily, Cx, Family, IngressPolicy, KeySpec};

/// How a rate is enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitAlgorithm {
    /// nginx `limit_req` with `nodelay`: a bucket that drains at `rate` per `per`;
    /// a request that would take it above `burst` waiting requests is rejected,
    /// others are served at once.
    LeakyBucketNoDelay,
    /// Envoy's local token bucket (Higress): `burst` tokens, full at start, `rate`
    /// tokens added every `per`; a request takes one token or is rejected.
    TokenBucket,
}

/// One rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateLimit {
    /// Requests per `per` (at least 1).
    pub rate: u32,
    /// One second (`*-rps`) or one minute (`*-rpm`).
    pub per: Duration,
    /// `rate` x the burst multiplier (saturating).
    pub burst: u32,
    /// How it is enforced.
    pub algorithm: LimitAlgorithm,
    /// The status of a rejected request: 503 (ingress-nginx's `limit-req-status-code`
    /// default) or 429 (Higress).
    pub status: StatusCode,
}

impl RateLimit {
    /// The time one request's share of the rate takes (`per / rate`).
    pub fn emission_interval(&self) -> Duration {
        self.per / self.rate.max(1)
    }
}

/// The rate and connection limits of one Ingress's routes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct RateLimitPolicy {
    /// Per client address: `limit-rps` then `limit-rpm` (both apply when both are set).
    pub per_client: Vec<RateLimit>,
    /// `limit-connections`: concurrent requests per client address; excess answers 503.
    pub connections: Option<u32>,
    /// `limit-allowlist`: client addresses that no per-client limit applies to.
    pub allowlist: Vec<IpNet>,
    /// Higress `route-limit-rpm` (wins) or `route-limit-rps`: the whole route, every
    /// client together, per gateway replica.
    pub route: Option<RateLimit>,
}

impl RateLimitPolicy {
    /// Whether any limit is set.
    pub fn is_set(&self) -> bool {
        !self.per_client.is_empty() || self.connections.is_some() || self.route.is_some()
    }

    /// Whether a client is exempt from the per-client limits (`limit-allowlist`); an
    /// unknown address is not.
    pub fn exempt(&self, client: Option<IpAddr>) -> bool {
        client.is_some_and(|ip| values::ip_in(&self.allowlist, ip))
    }
}

/// The burst multiplier when none is written (ingress-nginx and Higress).
pub const DEFAULT_BURST_MULTIPLIER: u32 = 5;

const NGINX_STATUS: StatusCode = StatusCode::SERVICE_UNAVAILABLE;
const HIGRESS_STATUS: StatusCode = StatusCode::TOO_MANY_REQUESTS;
const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);

const RPS: KeySpec = KeySpec::new("limit-rps", Family::RateLimit)
    .grammar("whole requests per second (`0`: off)")
    .default("off")
    .doc("Requests per second from one client address (per gateway replica); up to rate x limit-burst-multiplier excess requests are served at once, further ones answer 503 until the rate allows again.")
    .security();
const RPM: KeySpec = KeySpec::new("limit-rpm", Family::RateLimit)
    .grammar("whole requests per minute (`0`: off)")
    .default("off")
    .doc("Requests per minute from one client address, as limit-rps; both apply when both are set.")
    .security();
const CONNECTIONS: KeySpec = KeySpec::new("limit-connections", Family::RateLimit)
    .grammar("whole number (`0`: off)")
    .default("off")
    .doc("Concurrent requests from one client address (per gateway replica); excess answers 503.")
    .security();
const BURST: KeySpec = KeySpec::new("limit-burst-multiplier", Family::RateLimit)
    .grammar("whole number")
    .default("5")
    .doc("The burst of limit-rps and limit-rpm, as a multiple of the rate.")
    .security();
const ALLOWLIST: KeySpec = KeySpec::new("limit-allowlist", Family::RateLimit)
    .grammar("comma-separated IP addresses and CIDRs")
    .default("none")
    .doc("Client addresses exempt from limit-rps, limit-rpm and limit-connections; wins over limit-whitelist.")
    .security();
const WHITELIST: KeySpec = KeySpec::new("limit-whitelist", Family::RateLimit)
    .grammar("comma-separated IP addresses and CIDRs")
    .default("none")
    .doc("The older name of limit-allowlist.")
    .security();
const ROUTE_RPS: KeySpec = KeySpec::new("route-limit-rps", Family::RateLimit)
    .grammar("whole requests per second, from 1")
    .default("off")
    .doc("Higress: requests per second for the route as a whole (all clients, per gateway replica), a token bucket of rate x route-limit-burst-multiplier; excess answers 429. Ignored when route-limit-rpm is set.")
    .prefixes(Prefixes::Extension)
    .security();
const ROUTE_RPM: KeySpec = KeySpec::new("route-limit-rpm", Family::RateLimit)
    .grammar("whole requests per minute, from 1")
    .default("off")
    .doc("Higress: requests per minute for the route as a whole, as route-limit-rps; wins over it.")
    .prefixes(Prefixes::Extension)
    .security();
const ROUTE_BURST: KeySpec = KeySpec::new("route-limit-burst-multiplier", Family::RateLimit)
    .grammar("whole number from 1")
    .default("5")
    .doc("Higress: the token bucket size of route-limit-rps/-rpm, as a multiple of the rate.")
    .prefixes(Prefixes::Extension)
    .security();

static KEYS: &[KeySpec] = &[
    RPS,
    RPM,
    CONNECTIONS,
    BURST,
    ALLOWLIST,
    WHITELIST,
    ROUTE_RPS,
    ROUTE_RPM,
    ROUTE_BURST,
];

fn count(s: &str) -> Result<u32, Invalid> {
    values::uint_max(s, u64::from(u32::MAX)).map(|n| n as u32)
}

fn positive(s: &str) -> Result<u32, Invalid> {
    match count(s)? {
        0 => Err("expected a whole number from 1".into()),
        n => Ok(n),
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

fn ignored(cx: &mut Cx<'_>, key: &str, why: &str) {
    cx.report(
        Code::AnnotationIgnored,
        key,
        format!("`{key}` has no effect {why}"),
    );
}

/// The family.
#[derive(Debug)]
pub(crate) struct RateLimitFamily;

impl AnnotationFamily for RateLimitFamily {
    fn family(&self) -> Family {
        Family::RateLimit
    }
    fn keys(&self) -> &'static [KeySpec] {
        KEYS
    }
    fn parse(&self, cx: &mut Cx<'_>, policy: &mut IngressPolicy) {
        let mut p = RateLimitPolicy::default();
        // ingress-nginx: per client address.
        let rps = cx.parse(&RPS, count).filter(|n| *n > 0);
        let rpm = cx.parse(&RPM, count).filter(|n| *n > 0);
        p.connections = cx.parse(&CONNECTIONS, count).filter(|n| *n > 0);
        let burst = keyed(cx, &BURST, count);
        let multiplier = burst
            .and_then(|(_, m)| m)
            .unwrap_or(DEFAULT_BURST_MULTIPLIER);
        for (rate, per) in [(rps, SECOND), (rpm, MINUTE)] {
            if let Some(rate) = rate {
                p.per_client.push(RateLimit {
                    rate,
                    per,
                    burst: rate.saturating_mul(multiplier),
                    algorithm: LimitAlgorithm::LeakyBucketNoDelay,
                    status: NGINX_STATUS,
                });
            }
        }
        if let (Some((key, _)), true) = (burst, p.per_client.is_empty()) {
            ignored(cx, key, "without limit-rps or limit-rpm");
        }
        let old = keyed(cx, &WHITELIST, values::cidrs);
        let new = keyed(cx, &ALLOWLIST, values::cidrs);
        if let (Some((old_key, _)), Some((new_key, _))) = (&old, &new) {
            ignored(cx, old_key, &format!("because `{new_key}` is set"));
        }
        if let Some((key, list)) = new.or(old) {
            p.allowlist = list.unwrap_or_default();
            if p.per_client.is_empty() && p.connections.is_none() {
                ignored(cx, key, "without limit-rps, limit-rpm or limit-connections");
            }
        }
        // Higress: the route as a whole.
        let route_rps = keyed(cx, &ROUTE_RPS, positive);
        let route_rpm = keyed(cx, &ROUTE_RPM, positive);
        let route_burst = keyed(cx, &ROUTE_BURST, positive);
        if let (Some((key, _)), Some(_)) = (route_rps, route_rpm) {
            ignored(cx, key, "because route-limit-rpm is set and wins");
        }
        let route = match (route_rpm, route_rps) {
            (Some((_, rate)), _) => rate.map(|r| (r, MINUTE)),
            (None, Some((_, rate))) => rate.map(|r| (r, SECOND)),
            (None, None) => {
                if let Some((key, _)) = route_burst {
                    ignored(cx, key, "without route-limit-rps or route-limit-rpm");
                }
                None
            }
        };
        let route_multiplier = route_burst
            .and_then(|(_, m)| m)
            .unwrap_or(DEFAULT_BURST_MULTIPLIER);
        p.route = route.map(|(rate, per)| RateLimit {
            rate,
            per,
            burst: rate.saturating_mul(route_multiplier),
            algorithm: LimitAlgorithm::TokenBucket,
            status: HIGRESS_STATUS,
        });
        policy.rate_limit = p;
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::annotations::test_util::{N, codes, run};

    const H: &str = "higress.io/";

    fn nginx(rate: u32, per: Duration, burst: u32) -> RateLimit {
        RateLimit {
            rate,
            per,
            burst,
            algorithm: LimitAlgorithm::LeakyBucketNoDelay,
            status: StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    #[test]
    fn per_client_limits() {
        let p = run(&[
            (&format!("{N}limit-rps"), "10"),
            (&format!("{N}limit-rpm"), "300"),
            (&format!("{N}limit-connections"), "4"),
            (&format!("{N}limit-allowlist"), "10.0.0.0/8, 192.168.1.1"),
        ]);
        assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
        let r = &p.policy.rate_limit;
        assert_eq!(
            r.per_client,
            vec![nginx(10, SECOND, 50), nginx(300, MINUTE, 1500)]
        );
        assert_eq!(r.connections, Some(4));
        assert_eq!(r.allowlist.len(), 2);
        assert!(r.exempt("10.1.2.3".parse().ok()));
        assert!(!r.exempt("11.1.2.3".parse().ok()));
        assert!(!r.exempt(None));
        assert_eq!(
            r.per_client[0].emission_interval(),
            Duration::from_millis(100)
        );
        assert_eq!(r.route, None);
        // The multiplier, and 0 = off.
        let p = run(&[
            (&format!("{N}limit-rps"), "3"),
            (&format!("{N}limit-burst-multiplier"), "0"),
            (&format!("{N}limit-rpm"), "0"),
        ]);
        assert_eq!(p.policy.rate_limit.per_client, vec![nginx(3, SECOND, 0)]);
        let p = run(&[(&format!("{N}limit-rps"), "0")]);
        assert!(!p.policy.rate_limit.is_set());
        assert!(p.diagnostics.is_empty());
        // The old allowlist name, and the new one winning.
        let p = run(&[
            (&format!("{N}limit-rps"), "1"),
            (&format!("{N}limit-whitelist"), "::1"),
        ]);
        assert_eq!(p.policy.rate_limit.allowlist.len(), 1);
        let p = run(&[
            (&format!("{N}limit-rps"), "1"),
            (&format!("{N}limit-whitelist"), "::1"),
            (&format!("{N}limit-allowlist"), "10.0.0.0/8,::2"),
        ]);
        assert_eq!(p.policy.rate_limit.allowlist.len(), 2);
        assert_eq!(codes(&p), vec![Code::AnnotationIgnored]);
    }

    #[test]
    fn defaults_and_ignored_combinations() {
        let p = run(&[(&format!("{N}use-regex"), "true")]);
        assert_eq!(p.policy.rate_limit, RateLimitPolicy::default());
        for pairs in [
            vec![(format!("{N}limit-burst-multiplier"), "3")],
            vec![(format!("{N}limit-allowlist"), "10.0.0.0/8")],
            vec![
                (format!("{N}limit-connections"), "2"),
                (format!("{N}limit-burst-multiplier"), "3"),
            ],
            vec![(format!("{H}route-limit-burst-multiplier"), "3")],
            vec![
                (format!("{H}route-limit-rps"), "3"),
                (format!("{H}route-limit-rpm"), "60"),
            ],
        ] {
            let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), *v)).collect();
            let p = run(&refs);
            assert_eq!(codes(&p), vec![Code::AnnotationIgnored], "{pairs:?}");
            assert!(p.policy.fail_closed.is_none());
        }
    }

    #[test]
    fn route_limits() {
        let p = run(&[(&format!("{H}route-limit-rps"), "100")]);
        let want = RateLimit {
            rate: 100,
            per: SECOND,
            burst: 500,
            algorithm: LimitAlgorithm::TokenBucket,
            status: StatusCode::TOO_MANY_REQUESTS,
        };
        assert_eq!(p.policy.rate_limit.route, Some(want));
        assert!(p.policy.rate_limit.per_client.is_empty());
        let p = run(&[
            ("mse.ingress.kubernetes.io/route-limit-rps", "100"),
            ("mse.ingress.kubernetes.io/route-limit-rpm", "60"),
            (
                "mse.ingress.kubernetes.io/route-limit-burst-multiplier",
                "2",
            ),
        ]);
        let r = p.policy.rate_limit.route.expect("route limit");
        assert_eq!((r.rate, r.per, r.burst), (60, MINUTE, 120));
        // Extension keys are not read under the nginx prefix.
        let p = run(&[(&format!("{N}route-limit-rps"), "100")]);
        assert_eq!(p.policy.rate_limit.route, None);
        assert_eq!(codes(&p), vec![Code::AnnotationUnknown]);
    }

    #[test]
    fn invalid_values_fail_closed() {
        for (key, value) in [
            (format!("{N}limit-rps"), "-1"),
            (format!("{N}limit-rps"), "ten"),
            (format!("{N}limit-rpm"), "1.5"),
            (format!("{N}limit-connections"), "4294967296"),
            (format!("{N}limit-burst-multiplier"), "x"),
            (format!("{N}limit-allowlist"), "10.0.0.0/8,nope"),
            (format!("{N}limit-whitelist"), ""),
            (format!("{H}route-limit-rps"), "0"),
            (format!("{H}route-limit-rpm"), "-5"),
            (format!("{H}route-limit-burst-multiplier"), "0"),
        ] {
            // With limits set, so that no key is merely ignored.
            let mut pairs = vec![
                (format!("{N}limit-rps"), "5"),
                (format!("{H}route-limit-rps"), "5"),
            ];
            pairs.retain(|(k, _)| *k != key);
            pairs.push((key.clone(), value));
            let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), *v)).collect();
            let p = run(&refs);
            assert!(
                codes(&p).contains(&Code::AnnotationInvalidValue),
                "{key}: {value}"
            );
            assert!(p.policy.fail_closed.is_some(), "{key}: {value}");
        }
    }

    #[test]
    fn burst_saturates() {
        let p = run(&[
            (&format!("{N}limit-rps"), "4294967295"),
            (&format!("{N}limit-burst-multiplier"), "7"),
        ]);
        assert_eq!(p.policy.rate_limit.per_client[0].burst, u32::MAX);
    }
}
