//! [`Limits`]: one Ingress's rate-limit policy, applied as nginx and Higress apply it.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::StatusCode;

use crate::annotations::rate_limit::{RateLimit, RateLimitPolicy};

use super::keyed::Checked;
use super::{
    Bucket, ConnectionGuard, ConnectionLimiter, KeyedLimiter, LimitsError, Rate, StoreConfig,
    Verdict,
};

/// The status of a request over `limit-connections`: ingress-nginx's
/// `limit-conn-status-code` default, 503.
pub const CONNECTIONS_STATUS: StatusCode = StatusCode::SERVICE_UNAVAILABLE;

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LimitKind {
    /// `limit-connections`: the client already has `limit` requests in flight, or the
    /// connection store is full ([`ConnectionRejected::Full`](super::ConnectionRejected::Full)).
    Connections {
        /// The configured limit.
        limit: u32,
    },
    /// A per-client rate (`limit-rps` or `limit-rpm`): `index` into
    /// [`RateLimitPolicy::per_client`], the first in order that rejected.
    ClientRate {
        /// Its position in `per_client` (0: `limit-rps` when set).
        index: usize,
        /// The limit.
        limit: RateLimit,
    },
    /// Higress's `route-limit-*`: the route as a whole.
    RouteRate(RateLimit),
}

/// A refused request: answer `status`, do not contact the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    /// The limit that refused it (the first in the order of [`Limits::check`]).
    pub by: LimitKind,
    /// The status to answer: the limit's [`RateLimit::status`] (503 for the nginx
    /// keys, 429 for Higress's), [`CONNECTIONS_STATUS`] for connections.
    pub status: StatusCode,
    /// For rates, when the same client's request would pass again if nothing else is
    /// counted meanwhile (a `Retry-After` a proxy may send; ingress-nginx sends none).
    /// `None` for connections, which free up when a request ends.
    pub retry_after: Option<Duration>,
}

/// A request let through. Keep it until the response is finished: it holds the
/// client's `limit-connections` slot.
#[derive(Debug)]
#[must_use = "dropping it ends the request's connection slot"]
pub struct Admitted {
    /// The connection slot, when `limit-connections` applies to the client.
    pub guard: Option<ConnectionGuard<IpAddr>>,
    /// The least of the rates' `remaining` (`None` when no rate applied).
    pub remaining: Option<u32>,
}

/// The route-wide bucket of Higress's `route-limit-*`.
#[derive(Debug)]
struct RouteBucket {
    limit: RateLimit,
    rate: Rate,
    state: Mutex<Bucket>,
}

impl RouteBucket {
    fn check(&self, now: Duration) -> Verdict {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.check(&self.rate, now)
    }
}

/// One Ingress's [`RateLimitPolicy`] with its state, applied to each request:
///
/// 1. `limit-connections` (nginx `limit_conn`), per client;
/// 2. the per-client rates in order, `limit-rps` then `limit-rpm` (nginx `limit_req`;
///    all must pass, and a request one rejects is counted by none);
/// 3. Higress's `route-limit-*` token bucket, shared by every client of the route.
///
/// Clients in `limit-allowlist` skip 1 and 2, not 3. A request is counted by a rate
/// only when it passes every rate (the route bucket is taken under the client's shard
/// lock, after the client's rates accepted, and they are counted only if it does);
/// a connection slot is given back when a later limit refuses.
///
/// State is per gateway replica, as nginx's zones are per controller pod, and per
/// `Limits` value: ingress-nginx gives each Ingress one zone that all its paths
/// share, so a data plane shares one `Limits` (in an `Arc`) among the routes of one
/// Ingress, found by the forwarded route's Ingress and
/// [`Forward::policy`](crate::routing::Forward)`.rate_limit`, and keeps it while
/// that pair is unchanged across route table swaps. See the [module docs](super) for
/// an example.
#[derive(Debug)]
pub struct Limits {
    policy: RateLimitPolicy,
    connections: Option<Arc<ConnectionLimiter<IpAddr>>>,
    per_client: Option<KeyedLimiter<IpAddr>>,
    route: Option<RouteBucket>,
}

impl Limits {
    /// The limits of `policy`, each per-client store bounded by `config`.
    ///
    /// Errors: more per-client rates than [`MAX_RATES`](super::MAX_RATES) (the
    /// annotation parser makes at most two).
    pub fn new(policy: &RateLimitPolicy, config: StoreConfig) -> Result<Limits, LimitsError> {
        Ok(Limits {
            policy: policy.clone(),
            connections: policy
                .connections
                .map(|n| Arc::new(ConnectionLimiter::new(n, config))),
            per_client: (!policy.per_client.is_empty())
                .then(|| KeyedLimiter::new(&policy.per_client, config))
                .transpose()?,
            route: policy.route.map(|limit| RouteBucket {
                limit,
                rate: Rate::from(&limit),
                state: Mutex::new(Bucket::new(limit.algorithm)),
            }),
        })
    }

    /// The policy these limits enforce.
    pub fn policy(&self) -> &RateLimitPolicy {
        &self.policy
    }

    /// Whether any limit applies (when not, [`check`](Self::check) always admits).
    pub fn is_set(&self) -> bool {
        self.policy.is_set()
    }

    /// Only the `limit-connections` part of [`check`](Self::check), for a data plane
    /// that counts the rates elsewhere (cluster-wide, in a store every replica
    /// shares: [`global`](super::global)); `remaining` is `None`.
    pub fn admit_connection(&self, client: IpAddr) -> Result<Admitted, Rejected> {
        let guard = match &self.connections {
            Some(c) if !self.policy.exempt(Some(client)) => {
                Some(c.acquire(client).map_err(|_| Rejected {
                    by: LimitKind::Connections { limit: c.limit() },
                    status: CONNECTIONS_STATUS,
                    retry_after: None,
                })?)
            }
            _ => None,
        };
        Ok(Admitted {
            guard,
            remaining: None,
        })
    }

    /// The request from `client` at `now` (see the type docs for the order).
    pub fn check(&self, client: IpAddr, now: Duration) -> Result<Admitted, Rejected> {
        let exempt = self.policy.exempt(Some(client));
        let guard = match (&self.connections, exempt) {
            // Over the limit or a full store ([`ConnectionRejected`]): refused alike.
            (Some(c), false) => Some(c.acquire(client).map_err(|_| Rejected {
                by: LimitKind::Connections { limit: c.limit() },
                status: CONNECTIONS_STATUS,
                retry_after: None,
            })?),
            _ => None,
        };
        let route_rejected = |v: Verdict, limit: RateLimit| Rejected {
            by: LimitKind::RouteRate(limit),
            status: limit.status,
            retry_after: v.retry_after,
        };
        let mut route_verdict = None;
        let client_verdict = match (&self.per_client, exempt) {
            (Some(l), false) => {
                let checked = l.check_gated(&client, now, || match &self.route {
                    Some(r) => {
                        let v = r.check(now);
                        route_verdict = Some(v);
                        v.allowed
                    }
                    None => true,
                });
                match checked {
                    Checked::Allowed(v) => Some(v),
                    Checked::Rejected(index, v) => {
                        let limit = self.policy.per_client[index];
                        return Err(Rejected {
                            by: LimitKind::ClientRate { index, limit },
                            status: limit.status,
                            retry_after: v.retry_after,
                        });
                    }
                    Checked::Gated => None,
                }
            }
            _ => None,
        };
        if let (Some(r), None) = (&self.route, route_verdict) {
            route_verdict = Some(r.check(now));
        }
        let mut remaining = client_verdict.map(|v| v.remaining);
        if let (Some(r), Some(v)) = (&self.route, route_verdict) {
            if !v.allowed {
                return Err(route_rejected(v, r.limit));
            }
            remaining = Some(remaining.map_or(v.remaining, |n| n.min(v.remaining)));
        }
        Ok(Admitted { guard, remaining })
    }
}

#[cfg(test)]
mod tests {
    use http::StatusCode;

    use super::*;
    use crate::annotations::rate_limit::LimitAlgorithm;

    const S: Duration = Duration::from_secs(1);

    fn policy(
        rps: Option<u32>,
        connections: Option<u32>,
        route_rps: Option<u32>,
    ) -> RateLimitPolicy {
        let mut p = RateLimitPolicy::default();
        p.per_client.extend(rps.map(|rate| RateLimit {
            rate,
            per: S,
            burst: rate * 5,
            algorithm: LimitAlgorithm::LeakyBucketNoDelay,
            status: StatusCode::SERVICE_UNAVAILABLE,
        }));
        p.connections = connections;
        p.route = route_rps.map(|rate| RateLimit {
            rate,
            per: S,
            burst: rate * 5,
            algorithm: LimitAlgorithm::TokenBucket,
            status: StatusCode::TOO_MANY_REQUESTS,
        });
        p
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[test]
    fn shareable_across_threads_and_tasks() {
        fn send_sync<T: Send + Sync + 'static>() {}
        fn send<T: Send + 'static>() {}
        send_sync::<Limits>();
        send::<Admitted>();
        send::<Rejected>();
    }

    #[test]
    fn nothing_set_admits_everything() {
        let l = Limits::new(&RateLimitPolicy::default(), StoreConfig::default()).expect("limits");
        assert!(!l.is_set());
        let a = l.check(ip("10.0.0.1"), S).expect("admitted");
        assert!(a.guard.is_none() && a.remaining.is_none());
    }

    #[test]
    fn connections_first_then_rates() {
        let l =
            Limits::new(&policy(Some(1), Some(1), None), StoreConfig::default()).expect("limits");
        let c = ip("10.0.0.1");
        let held = l.check(c, S).expect("first");
        assert_eq!(held.remaining, Some(5));
        let r = l.check(c, S).expect_err("second in flight");
        assert_eq!(r.by, LimitKind::Connections { limit: 1 });
        assert_eq!(
            (r.status, r.retry_after),
            (StatusCode::SERVICE_UNAVAILABLE, None)
        );
        drop(held);
        // The refused request took nothing from the rate: five more pass.
        for _ in 0..5 {
            let _ = l.check(c, S).expect("within the burst");
        }
        let r = l.check(c, S).expect_err("over the rate");
        assert!(matches!(r.by, LimitKind::ClientRate { index: 0, .. }));
        assert_eq!(r.retry_after, Some(S));
        // ... and gave its connection slot back.
        assert_eq!(l.connections.as_ref().map(|c| c.keys()), Some(0));
    }

    #[test]
    fn admit_connection_counts_connections_and_no_rate() {
        let l =
            Limits::new(&policy(Some(1), Some(2), None), StoreConfig::default()).expect("limits");
        let c = ip("10.0.0.1");
        let a = l.admit_connection(c).expect("first");
        let b = l.admit_connection(c).expect("second");
        assert!(a.remaining.is_none());
        let r = l.admit_connection(c).expect_err("third in flight");
        assert_eq!(r.by, LimitKind::Connections { limit: 2 });
        drop((a, b));
        // Twenty in a row: the rate (1 r/s, burst 5) is not counted here.
        for _ in 0..20 {
            let _ = l.admit_connection(c).expect("no rate applies");
        }
    }

    #[test]
    fn route_bucket_is_shared_and_answers_429() {
        let l =
            Limits::new(&policy(Some(100), None, Some(1)), StoreConfig::default()).expect("limits");
        // Route burst 5: five requests from five clients, then 429 for anyone.
        for n in 1..=5 {
            let a = l.check(ip(&format!("10.0.0.{n}")), S).expect("route burst");
            assert_eq!(a.remaining, Some(5 - n));
        }
        let r = l.check(ip("10.0.0.9"), S).expect_err("route empty");
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(matches!(r.by, LimitKind::RouteRate(_)));
        assert_eq!(r.retry_after, Some(S));
        // The route refused it, so the client's own bucket was not charged.
        let state = l
            .per_client
            .as_ref()
            .and_then(|k| k.store().get(&ip("10.0.0.9")));
        assert!(matches!(state, Some([Bucket::Leaky(b), _]) if b.last().is_none()));
        assert!(l.check(ip("10.0.0.9"), S * 2).is_ok());
    }

    #[test]
    fn allowlist_skips_client_limits_not_the_route() {
        let mut p = policy(Some(1), Some(1), Some(1));
        p.allowlist = vec!["10.0.0.0/8".parse().expect("cidr")];
        let l = Limits::new(&p, StoreConfig::default()).expect("limits");
        let c = ip("10.1.2.3");
        let held: Vec<_> = (0..5).map(|_| l.check(c, S).expect("exempt")).collect();
        assert!(held.iter().all(|a| a.guard.is_none()));
        let r = l.check(c, S).expect_err("the route limit still applies");
        assert!(matches!(r.by, LimitKind::RouteRate(_)));
        assert_eq!(l.policy(), &p);
    }
}
