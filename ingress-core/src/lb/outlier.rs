//! Outlier detection: passive health checking of one upstream cluster (the
//! endpoints of one Service port), as Envoy's outlier detection does it.
//!
//! The data plane reports the outcome of every attempt ([`Outliers::record`]); an
//! endpoint that fails `consecutive_5xx` times in a row (any 5xx, and every
//! gateway failure), or `consecutive_gateway_failure` times in a row (connect
//! errors, resets, timeouts, 502, 503, 504), is ejected: picks avoid it until its
//! ejection ends. The `n`-th ejection in a row lasts `n × base_ejection`, at most
//! `max_ejection`; an endpoint whose last ejection ended more than `max_ejection`
//! ago starts again at `1 × base_ejection`. One success resets both counters.
//!
//! **Never past the share.** An endpoint is ejected only if, with it, at most
//! `max_ejection_percent` of the cluster's endpoints are ejected. Envoy checks the
//! share *before* the ejection (so one endpoint of three goes at its default 10%,
//! and then 33% are out); here the share is a ceiling that holds after it, with a
//! default of 50%: one endpoint of two or three, none of one. A cluster with a
//! single endpoint never ejects it.
//!
//! **Panic mode.** Ejection is advice to the balancer. When the only endpoints a
//! request could still use are ejected ones, the data plane picks among them
//! anyway (Envoy's panic threshold, at its extreme): an outlier detector never
//! turns a degraded cluster into a dead one.
//!
//! Time is injected (`now_ns` of a monotonic clock, the same epoch the balancers
//! get); state is atomics plus one mutex taken only to eject, so recording an
//! outcome on the request path is two relaxed loads and, after a failure, an
//! increment. Per-endpoint state is shared by address with the [`Outliers`] of the
//! next table ([`Outliers::new`] with `previous`), so a config push does not forgive
//! a failing endpoint.
//!
//! ```
//! use std::time::Duration;
//! use ingress_core::lb::outlier::{OutlierConfig, Outliers, Outcome};
//! use ingress_core::lb::EndpointSet;
//! use ingress_core::routing::{EndpointAddr, EndpointHost};
//!
//! let endpoints: Vec<EndpointAddr> = (1..=4)
//!     .map(|i| EndpointAddr { host: EndpointHost::Ip([10, 0, 0, i].into()), port: 80 })
//!     .collect();
//! let outliers = Outliers::new(&endpoints, None);
//! let config = OutlierConfig::default();
//! let s = 1_000_000_000; // one second in ns
//! // Endpoint 2 refuses connections five times in a row: ejected for 30 s.
//! let mut ejected = None;
//! for _ in 0..5 {
//!     ejected = outliers.record(2, Outcome::GatewayFailure, 10 * s, &config);
//! }
//! assert_eq!(ejected.map(|e| e.duration), Some(Duration::from_secs(30)));
//! let mut avoid = EndpointSet::new();
//! outliers.add_ejected(10 * s, &mut avoid);
//! assert!(avoid.contains(2));
//! // After 30 s it is back.
//! assert!(!outliers.is_ejected(2, 40 * s));
//! ```

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::StatusCode;

use super::EndpointSet;
use crate::routing::EndpointAddr;

/// When endpoints are ejected and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OutlierConfig {
    /// Consecutive 5xx answers (gateway failures included) that eject an endpoint;
    /// 0 turns this check off. Envoy's default: 5.
    pub consecutive_5xx: u32,
    /// Consecutive gateway failures (connect error, reset, timeout, 502, 503, 504)
    /// that eject an endpoint; 0 turns this check off. Default 5.
    pub consecutive_gateway_failure: u32,
    /// The first ejection's length; the `n`-th in a row lasts `n` times it.
    /// Default 30 s (Envoy's).
    pub base_ejection: Duration,
    /// The longest ejection. Default 300 s (Envoy's).
    pub max_ejection: Duration,
    /// The most endpoints of a cluster that may be ejected at once, in percent
    /// (0 turns ejection off). Default 50.
    pub max_ejection_percent: u8,
}

impl Default for OutlierConfig {
    fn default() -> Self {
        OutlierConfig {
            consecutive_5xx: 5,
            consecutive_gateway_failure: 5,
            base_ejection: Duration::from_secs(30),
            max_ejection: Duration::from_secs(300),
            max_ejection_percent: 50,
        }
    }
}

impl OutlierConfig {
    /// A detector that never ejects.
    pub const OFF: OutlierConfig = OutlierConfig {
        consecutive_5xx: 0,
        consecutive_gateway_failure: 0,
        base_ejection: Duration::from_secs(30),
        max_ejection: Duration::from_secs(300),
        max_ejection_percent: 0,
    };

    /// Whether any endpoint can ever be ejected.
    pub fn is_enabled(&self) -> bool {
        self.max_ejection_percent > 0
            && (self.consecutive_5xx > 0 || self.consecutive_gateway_failure > 0)
            && !self.base_ejection.is_zero()
    }
}

/// What one attempt on an endpoint came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A response below 500.
    Success,
    /// A 5xx other than 502, 503 and 504 (counts toward `consecutive_5xx` only).
    ServerError,
    /// No usable answer (connect error, reset, timeout) or a 502, 503 or 504:
    /// counts toward both counters.
    GatewayFailure,
}

impl Outcome {
    /// The outcome of an answer with `status`.
    pub fn of_status(status: StatusCode) -> Outcome {
        match status.as_u16() {
            502..=504 => Outcome::GatewayFailure,
            500..=599 => Outcome::ServerError,
            _ => Outcome::Success,
        }
    }
}

/// An ejection [`Outliers::record`] just made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ejection {
    /// The endpoint's index.
    pub index: usize,
    /// How long it is out.
    pub duration: Duration,
    /// How many ejections in a row this one is (1 for the first).
    pub ejections: u32,
}

/// The live health of one endpoint, shared by address across tables.
#[derive(Debug, Default)]
struct Health {
    consecutive_5xx: AtomicU32,
    consecutive_gateway: AtomicU32,
    /// When the last ejection ends (or ended), in ns; 0: never ejected.
    ejected_until_ns: AtomicU64,
    /// Ejections in a row (the multiplier of the next one's length).
    ejections: AtomicU32,
}

/// The outlier detector of one cluster: one per backend a table's routes use.
/// See the [module docs](self).
#[derive(Debug)]
pub struct Outliers {
    endpoints: Box<[EndpointAddr]>,
    health: Box<[Arc<Health>]>,
    /// The latest end of any ejection (ns): when `now` is past it, nothing is
    /// ejected and [`Outliers::add_ejected`] reads nothing else. Shared with the
    /// detectors this one inherits from, so an ejection recorded through an older
    /// table's detector (a request that started before the swap) is seen here.
    any_until_ns: Arc<AtomicU64>,
    /// Held to eject, so two ejections cannot both pass the share check.
    ejecting: Mutex<()>,
}

impl Outliers {
    /// The detector of `endpoints` (indexes as in the cluster's
    /// [`Balancer`](super::Balancer)), carrying over the state of endpoints with
    /// the same address in `previous`.
    pub fn new(endpoints: &[EndpointAddr], previous: Option<&Outliers>) -> Outliers {
        let health: Box<[Arc<Health>]> = endpoints
            .iter()
            .map(|e| {
                previous
                    .and_then(|p| {
                        let i = p.endpoints.iter().position(|x| x == e)?;
                        p.health.get(i).cloned()
                    })
                    .unwrap_or_default()
            })
            .collect();
        let any_until = health
            .iter()
            .map(|h| h.ejected_until_ns.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0);
        let any_until_ns = previous.map_or_else(Arc::default, |p| p.any_until_ns.clone());
        any_until_ns.fetch_max(any_until, Ordering::Relaxed);
        Outliers {
            endpoints: endpoints.into(),
            health,
            any_until_ns,
            ejecting: Mutex::new(()),
        }
    }

    /// The endpoints, in index order.
    pub fn endpoints(&self) -> &[EndpointAddr] {
        &self.endpoints
    }

    /// Reports the outcome of one attempt on endpoint `index` at `now_ns`, judged
    /// by `config` (the caller's: the gateway's, or a route's own); returns the
    /// ejection it caused, if any. An index out of range is ignored.
    pub fn record(
        &self,
        index: usize,
        outcome: Outcome,
        now_ns: u64,
        config: &OutlierConfig,
    ) -> Option<Ejection> {
        let h = self.health.get(index)?;
        match outcome {
            Outcome::Success => {
                // Loads first: a healthy endpoint's counters stay untouched (no
                // cache-line write per request).
                if h.consecutive_5xx.load(Ordering::Relaxed) != 0 {
                    h.consecutive_5xx.store(0, Ordering::Relaxed);
                }
                if h.consecutive_gateway.load(Ordering::Relaxed) != 0 {
                    h.consecutive_gateway.store(0, Ordering::Relaxed);
                }
                None
            }
            Outcome::ServerError | Outcome::GatewayFailure => {
                if !config.is_enabled() {
                    return None;
                }
                let c5 = h.consecutive_5xx.fetch_add(1, Ordering::Relaxed) + 1;
                let gw = if outcome == Outcome::GatewayFailure {
                    h.consecutive_gateway.fetch_add(1, Ordering::Relaxed) + 1
                } else {
                    h.consecutive_gateway.load(Ordering::Relaxed)
                };
                let over = |count: u32, limit: u32| limit > 0 && count >= limit;
                if over(c5, config.consecutive_5xx) || over(gw, config.consecutive_gateway_failure)
                {
                    self.eject(index, h, now_ns, config)
                } else {
                    None
                }
            }
        }
    }

    fn eject(
        &self,
        index: usize,
        h: &Health,
        now_ns: u64,
        config: &OutlierConfig,
    ) -> Option<Ejection> {
        let _held = self.ejecting.lock().unwrap_or_else(PoisonError::into_inner);
        let until = h.ejected_until_ns.load(Ordering::Relaxed);
        if until > now_ns {
            // Already out (a late answer of a request sent before the ejection).
            return None;
        }
        let n = self.health.len() as u64;
        let out = self
            .health
            .iter()
            .filter(|x| x.ejected_until_ns.load(Ordering::Relaxed) > now_ns)
            .count() as u64;
        if (out + 1) * 100 > n * u64::from(config.max_ejection_percent) {
            // The counters keep counting; the next failure asks again.
            return None;
        }
        let max_ns = nanos(config.max_ejection);
        // A long healthy spell since the last ejection forgets the earlier ones.
        let forgiven = until != 0 && now_ns.saturating_sub(until) > max_ns;
        let before = if forgiven {
            0
        } else {
            h.ejections.load(Ordering::Relaxed)
        };
        let ejections = before.saturating_add(1);
        let length = nanos(config.base_ejection)
            .saturating_mul(u64::from(ejections))
            .min(max_ns.max(nanos(config.base_ejection)));
        let end = now_ns.saturating_add(length).max(1);
        h.ejections.store(ejections, Ordering::Relaxed);
        h.ejected_until_ns.store(end, Ordering::Relaxed);
        h.consecutive_5xx.store(0, Ordering::Relaxed);
        h.consecutive_gateway.store(0, Ordering::Relaxed);
        self.any_until_ns.fetch_max(end, Ordering::Relaxed);
        Some(Ejection {
            index,
            duration: Duration::from_nanos(length),
            ejections,
        })
    }

    /// Whether endpoint `index` is ejected at `now_ns`.
    pub fn is_ejected(&self, index: usize, now_ns: u64) -> bool {
        self.health
            .get(index)
            .is_some_and(|h| h.ejected_until_ns.load(Ordering::Relaxed) > now_ns)
    }

    /// Adds the endpoints ejected at `now_ns` to `avoid`; returns how many. One
    /// atomic load when none is.
    pub fn add_ejected(&self, now_ns: u64, avoid: &mut EndpointSet) -> usize {
        if self.any_until_ns.load(Ordering::Relaxed) <= now_ns {
            return 0;
        }
        let mut added = 0;
        for (i, h) in self.health.iter().enumerate() {
            if h.ejected_until_ns.load(Ordering::Relaxed) > now_ns {
                avoid.insert(i);
                added += 1;
            }
        }
        added
    }

    /// How many endpoints are ejected at `now_ns`.
    pub fn ejected_count(&self, now_ns: u64) -> usize {
        let mut set = EndpointSet::new();
        self.add_ejected(now_ns, &mut set)
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::EndpointHost;

    const S: u64 = 1_000_000_000;

    /// A detector with its configuration.
    struct Det {
        o: Outliers,
        c: OutlierConfig,
    }

    impl Det {
        fn new(endpoints: &[EndpointAddr], c: OutlierConfig, previous: Option<&Det>) -> Det {
            Det {
                o: Outliers::new(endpoints, previous.map(|p| &p.o)),
                c,
            }
        }

        fn record(&self, i: usize, outcome: Outcome, now: u64) -> Option<Ejection> {
            self.o.record(i, outcome, now, &self.c)
        }
    }

    impl std::ops::Deref for Det {
        type Target = Outliers;
        fn deref(&self) -> &Outliers {
            &self.o
        }
    }

    fn eps(n: u8) -> Vec<EndpointAddr> {
        (1..=n)
            .map(|i| EndpointAddr {
                host: EndpointHost::Ip([10, 0, 0, i].into()),
                port: 80,
            })
            .collect()
    }

    fn fail(o: &Det, i: usize, times: u32, outcome: Outcome, now: u64) -> Option<Ejection> {
        let mut last = None;
        for _ in 0..times {
            last = o.record(i, outcome, now);
        }
        last
    }

    #[test]
    fn consecutive_failures_eject_and_a_success_resets_the_count() {
        let o = Det::new(&eps(4), OutlierConfig::default(), None);
        assert_eq!(fail(&o, 0, 4, Outcome::GatewayFailure, S), None);
        assert_eq!(o.record(0, Outcome::Success, S), None);
        // Four more: still under five in a row.
        assert_eq!(fail(&o, 0, 4, Outcome::GatewayFailure, S), None);
        assert!(!o.is_ejected(0, S));
        let e = o.record(0, Outcome::GatewayFailure, S);
        assert_eq!(
            e,
            Some(Ejection {
                index: 0,
                duration: Duration::from_secs(30),
                ejections: 1
            })
        );
        assert!(o.is_ejected(0, S));
        assert!(o.is_ejected(0, 31 * S - 1));
        assert!(!o.is_ejected(0, 31 * S));
    }

    #[test]
    fn plain_5xx_count_only_toward_consecutive_5xx() {
        let config = OutlierConfig {
            consecutive_5xx: 0,
            ..OutlierConfig::default()
        };
        let o = Det::new(&eps(4), config, None);
        assert_eq!(fail(&o, 1, 20, Outcome::ServerError, S), None);
        assert!(fail(&o, 1, 5, Outcome::GatewayFailure, S).is_some());

        let config = OutlierConfig {
            consecutive_gateway_failure: 0,
            ..OutlierConfig::default()
        };
        let o = Det::new(&eps(4), config, None);
        // A 500 and gateway failures mixed: five 5xx in a row.
        assert_eq!(fail(&o, 1, 2, Outcome::ServerError, S), None);
        assert_eq!(fail(&o, 1, 2, Outcome::GatewayFailure, S), None);
        assert!(o.record(1, Outcome::ServerError, S).is_some());
    }

    #[test]
    fn outcome_of_status() {
        assert_eq!(Outcome::of_status(StatusCode::OK), Outcome::Success);
        assert_eq!(Outcome::of_status(StatusCode::NOT_FOUND), Outcome::Success);
        assert_eq!(
            Outcome::of_status(StatusCode::INTERNAL_SERVER_ERROR),
            Outcome::ServerError
        );
        for s in [502, 503, 504] {
            assert_eq!(
                Outcome::of_status(StatusCode::from_u16(s).unwrap_or_default()),
                Outcome::GatewayFailure
            );
        }
    }

    #[test]
    fn ejections_in_a_row_grow_up_to_the_maximum_then_are_forgiven() {
        let config = OutlierConfig {
            base_ejection: Duration::from_secs(100),
            max_ejection: Duration::from_secs(250),
            ..OutlierConfig::default()
        };
        let o = Det::new(&eps(2), config, None);
        let mut now = S;
        let mut lengths = Vec::new();
        for _ in 0..4 {
            let e = fail(&o, 0, 5, Outcome::GatewayFailure, now).map(|e| e.duration.as_secs());
            lengths.push(e);
            // Back right when it ends, and failing again.
            now += e.unwrap_or(0) * S;
        }
        assert_eq!(lengths, [Some(100), Some(200), Some(250), Some(250)]);
        // Healthy for longer than the maximum: the next one starts over.
        now += 251 * S;
        let e = fail(&o, 0, 5, Outcome::GatewayFailure, now);
        assert_eq!(
            e.map(|e| (e.duration.as_secs(), e.ejections)),
            Some((100, 1))
        );
    }

    #[test]
    fn never_ejects_past_the_share() {
        // Default 50%: of three, one; of four, two; of one, none.
        let o = Det::new(&eps(3), OutlierConfig::default(), None);
        assert!(fail(&o, 0, 5, Outcome::GatewayFailure, S).is_some());
        assert_eq!(fail(&o, 1, 50, Outcome::GatewayFailure, S), None);
        assert_eq!(o.ejected_count(S), 1);
        // When the first comes back, the second goes at its next failure.
        assert!(o.record(1, Outcome::GatewayFailure, 40 * S).is_some());
        assert_eq!(o.ejected_count(40 * S), 1);

        let o = Det::new(&eps(4), OutlierConfig::default(), None);
        for i in 0..4 {
            fail(&o, i, 5, Outcome::GatewayFailure, S);
        }
        assert_eq!(o.ejected_count(S), 2);

        let o = Det::new(&eps(1), OutlierConfig::default(), None);
        assert_eq!(fail(&o, 0, 100, Outcome::GatewayFailure, S), None);
        assert_eq!(o.ejected_count(S), 0);

        let o = Det::new(&eps(10), OutlierConfig::OFF, None);
        assert_eq!(fail(&o, 0, 100, Outcome::GatewayFailure, S), None);
    }

    #[test]
    fn add_ejected_fills_the_avoid_set() {
        let o = Det::new(&eps(6), OutlierConfig::default(), None);
        let mut set = EndpointSet::new();
        assert_eq!(o.add_ejected(S, &mut set), 0);
        fail(&o, 2, 5, Outcome::GatewayFailure, S);
        fail(&o, 4, 5, Outcome::ServerError, 2 * S);
        assert_eq!(o.add_ejected(3 * S, &mut set), 2);
        assert_eq!(set.iter().collect::<Vec<_>>(), [2, 4]);
        set.clear();
        assert_eq!(o.add_ejected(31 * S + 1, &mut set), 1);
        assert_eq!(set.iter().collect::<Vec<_>>(), [4]);
        set.clear();
        assert_eq!(o.add_ejected(33 * S, &mut set), 0);
    }

    #[test]
    fn state_follows_the_address_into_the_next_table() {
        let old = Det::new(&eps(3), OutlierConfig::default(), None);
        fail(&old, 1, 5, Outcome::GatewayFailure, S); // 10.0.0.2 ejected
        fail(&old, 2, 3, Outcome::GatewayFailure, S); // 10.0.0.3 on its way
        // The next table drops 10.0.0.1 and adds 10.0.0.9 at the end.
        let mut next_eps = eps(3);
        next_eps.remove(0);
        next_eps.push(EndpointAddr {
            host: EndpointHost::Ip([10, 0, 0, 9].into()),
            port: 80,
        });
        let next = Det::new(&next_eps, OutlierConfig::default(), Some(&old));
        assert!(next.is_ejected(0, 2 * S));
        assert!(!next.is_ejected(2, 2 * S));
        // 10.0.0.3 had three failures: two more eject it (share allows 1 of 3 → no).
        assert_eq!(fail(&next, 1, 2, Outcome::GatewayFailure, 2 * S), None);
        let mut set = EndpointSet::new();
        assert_eq!(next.add_ejected(2 * S, &mut set), 1);
    }

    #[test]
    fn out_of_range_indexes_are_ignored() {
        let o = Det::new(&eps(2), OutlierConfig::default(), None);
        assert_eq!(fail(&o, 7, 10, Outcome::GatewayFailure, S), None);
        assert!(!o.is_ejected(7, S));
    }
}
