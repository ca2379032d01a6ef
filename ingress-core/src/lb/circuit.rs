//! Circuit breaking: per-cluster ceilings on concurrent requests and concurrent
//! retries, as Envoy's circuit breakers (`max_requests`, `max_retries`).
//!
//! A cluster (the endpoints of one Service port) that already has `max_requests`
//! requests in flight refuses the next one at once (the data plane answers 503
//! without contacting the upstream) instead of queueing it behind a slow backend;
//! likewise a retry is only made while fewer than `max_retries` retries of the
//! cluster are in flight, so a failing backend is not hit with a retry storm.
//! With HTTP/1.1 upstreams every request in flight holds one connection, so
//! `max_requests` also bounds the cluster's connections.
//!
//! ```
//! use ingress_core::lb::circuit::{CircuitBreaker, CircuitLimits};
//!
//! let limits = CircuitLimits { max_requests: 2, max_retries: 1 };
//! let breaker = CircuitBreaker::new();
//! let a = breaker.try_request(&limits).expect("first");
//! let _b = breaker.try_request(&limits).expect("second");
//! assert!(breaker.try_request(&limits).is_none()); // the third overflows
//! drop(a);
//! assert!(breaker.try_request(&limits).is_some());
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

/// The ceilings of one cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CircuitLimits {
    /// Requests in flight at once (Envoy's default: 1024); 0: no limit.
    pub max_requests: u32,
    /// Retries in flight at once (Envoy's default: 3); 0: no limit.
    pub max_retries: u32,
}

impl Default for CircuitLimits {
    fn default() -> Self {
        CircuitLimits {
            max_requests: 1024,
            max_retries: 3,
        }
    }
}

/// The counters of one cluster; shared (in an `Arc`) by every route to it and
/// carried across table swaps by the data plane. The ceilings come with each call
/// (the gateway's, or a route's own).
#[derive(Debug, Clone, Default)]
pub struct CircuitBreaker {
    counters: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU32,
    retries: AtomicU32,
}

/// A slot in flight; given back when dropped.
#[derive(Debug)]
#[must_use = "dropping it gives the slot back"]
pub struct Slot {
    counters: Arc<Counters>,
    retry: bool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let c = if self.retry {
            &self.counters.retries
        } else {
            &self.counters.requests
        };
        c.fetch_sub(1, Ordering::AcqRel);
    }
}

impl CircuitBreaker {
    /// A breaker with no request in flight. (A clone shares the counters: that is
    /// how a new table's breaker keeps counting the old one's requests.)
    pub fn new() -> CircuitBreaker {
        CircuitBreaker::default()
    }

    /// A request slot, or `None` when `limits.max_requests` are in flight.
    pub fn try_request(&self, limits: &CircuitLimits) -> Option<Slot> {
        self.take(&self.counters.requests, limits.max_requests, false)
    }

    /// A retry slot, or `None` when `limits.max_retries` retries are in flight.
    pub fn try_retry(&self, limits: &CircuitLimits) -> Option<Slot> {
        self.take(&self.counters.retries, limits.max_retries, true)
    }

    /// Requests in flight.
    pub fn requests(&self) -> u32 {
        self.counters.requests.load(Ordering::Relaxed)
    }

    /// Retries in flight.
    pub fn retries(&self) -> u32 {
        self.counters.retries.load(Ordering::Relaxed)
    }

    fn take(&self, counter: &AtomicU32, max: u32, retry: bool) -> Option<Slot> {
        let taken = counter.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (max == 0 || n < max).then(|| n.saturating_add(1))
        });
        taken.ok().map(|_| Slot {
            counters: self.counters.clone(),
            retry,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_retries_are_bounded_separately() {
        let l = CircuitLimits {
            max_requests: 3,
            max_retries: 1,
        };
        let b = CircuitBreaker::new();
        let slots: Vec<Slot> = (0..3).filter_map(|_| b.try_request(&l)).collect();
        assert_eq!(slots.len(), 3);
        assert!(b.try_request(&l).is_none());
        let r = b.try_retry(&l);
        assert!(r.is_some());
        assert!(b.try_retry(&l).is_none());
        assert_eq!((b.requests(), b.retries()), (3, 1));
        drop(r);
        drop(slots);
        assert_eq!((b.requests(), b.retries()), (0, 0));
    }

    #[test]
    fn zero_means_no_limit_and_other_limits_see_the_same_counts() {
        let l = CircuitLimits {
            max_requests: 0,
            max_retries: 0,
        };
        let b = CircuitBreaker::new();
        let slots: Vec<Slot> = (0..10_000).filter_map(|_| b.try_request(&l)).collect();
        assert_eq!(slots.len(), 10_000);
        let tighter = CircuitLimits {
            max_requests: 10_000,
            max_retries: 0,
        };
        assert!(b.try_request(&tighter).is_none());
        drop(slots);
        assert!(b.try_request(&tighter).is_some());
    }

    #[test]
    fn concurrent_takers_never_exceed_the_ceiling() {
        let l = CircuitLimits {
            max_requests: 8,
            max_retries: 0,
        };
        let b = CircuitBreaker::new();
        let peak = AtomicU32::new(0);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..10_000 {
                        if let Some(s) = b.try_request(&l) {
                            peak.fetch_max(b.requests(), Ordering::Relaxed);
                            drop(s);
                        }
                    }
                });
            }
        });
        assert!(peak.load(Ordering::Relaxed) <= 8);
        assert_eq!(b.requests(), 0);
    }
}
