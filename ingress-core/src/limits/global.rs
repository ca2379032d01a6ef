//! Cluster-wide limits: the boundary to a counter store every replica shares, and the
//! window arithmetic around it.
//!
//! Local limits ([`Limits`](super::Limits)) are per gateway replica, as ingress-nginx's
//! are: the effective limit grows with the replicas. A global limit counts in one
//! place instead: a Redis server named in the gateway config. The core cannot talk to
//! Redis, so the split is:
//!
//! - here, pure: which key a request counts under ([`WindowPlan::new`],
//!   [`window_key`]), and what the counts mean ([`WindowPlan::decide`]), for fixed
//!   windows or the sliding-window estimate; what to do when the store fails
//!   ([`FailMode`]); the trait the data plane implements ([`GlobalLimiter`]); and an
//!   in-memory implementation ([`LocalWindows`]) that is the reference the Redis one
//!   is tested against;
//! - in `ingress-proxy`: the Redis implementation. One round trip per check: a Lua
//!   script (`EVALSHA`) that, given the plan's keys and arguments, reads the previous
//!   and current counts, increments the current one only if the estimate is under the
//!   limit, sets its expiry, and returns both counts, which the proxy passes to
//!   [`WindowPlan::decide`]. When Redis is down or slow the proxy answers by its
//!   [`FailMode`] (open by default), counts a metric and logs a line.
//!
//! A window budget is the limit's `rate` per `per`; the burst of the local buckets
//! has no meaning for windows (ingress-nginx's old `global-rate-limit` and Higress's
//! cluster rate limit have none either). Time here is wall-clock (`now` since the Unix
//! epoch, from the caller): replicas must agree where windows start. Arithmetic is in
//! milliseconds, so that a Lua script, whose numbers are doubles, computes the same.
//!
//! ```
//! use std::time::Duration;
//! use http::StatusCode;
//! use ingress_core::annotations::rate_limit::{LimitAlgorithm, RateLimit};
//! use ingress_core::limits::global::{WindowKind, WindowPlan};
//!
//! let limit = RateLimit {
//!     rate: 100,
//!     per: Duration::from_secs(60),
//!     burst: 500,
//!     algorithm: LimitAlgorithm::LeakyBucketNoDelay,
//!     status: StatusCode::SERVICE_UNAVAILABLE,
//! };
//! // 15 s into the minute starting at 1_700_000_040 s.
//! let now = Duration::from_secs(1_700_000_055);
//! let plan = WindowPlan::new("rl:", "shop/web|192.0.2.7", &limit, WindowKind::Sliding, now);
//! assert_eq!(plan.current_key, "rl:{shop/web|192.0.2.7}:60000:28333334");
//! assert_eq!(plan.previous_key.as_deref(), Some("rl:{shop/web|192.0.2.7}:60000:28333333"));
//! // 80 in the previous minute weigh 80 x 45/60 = 60; with 39 now, one more fits.
//! assert!(plan.decide(80, 39).allowed);
//! let v = plan.decide(80, 40);
//! assert!(!v.allowed);
//! // A millisecond later the previous minute weighs 59.99, counted as 59.
//! assert_eq!(v.retry_after, Some(Duration::from_millis(1)));
//! ```

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::annotations::rate_limit::RateLimit;

use super::Verdict;

/// A counter store every replica shares (Redis, in `ingress-proxy`).
///
/// Synchronous on purpose: the core has no runtime. An async data plane calls its
/// own async Redis client with a [`WindowPlan`] and [`WindowPlan::decide`]s on the
/// answer; this trait is the same contract for synchronous callers and for tests
/// ([`LocalWindows`]).
pub trait GlobalLimiter: Send + Sync {
    /// Counts the request of `key` (route and client, as the caller builds it) under
    /// `limit` at `now` (since the Unix epoch), counting it only if it passes.
    fn check(&self, key: &str, limit: &RateLimit, now: Duration) -> Result<Verdict, GlobalError>;
}

/// Why a global check has no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GlobalError {
    /// The store could not be reached or refused the command.
    #[error("the rate-limit store is unavailable: {0}")]
    Unavailable(String),
    /// The store did not answer in time.
    #[error("the rate-limit store did not answer in time")]
    Timeout,
    /// The store answered something the script does not return.
    #[error("unexpected answer from the rate-limit store: {0}")]
    Protocol(String),
}

/// What a request gets when the store has no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailMode {
    /// Let it through (the default: the store going away must not take the routes
    /// down with it).
    #[default]
    Open,
    /// Refuse it.
    Closed,
}

impl FailMode {
    /// The verdict for `result`: itself when there is one, otherwise by the mode
    /// (open: allowed with `remaining = u32::MAX`, as if no limit applied; closed:
    /// rejected with no `retry_after`).
    pub fn resolve(self, result: Result<Verdict, GlobalError>) -> Verdict {
        match (result, self) {
            (Ok(v), _) => v,
            (Err(_), FailMode::Open) => Verdict::allowed(u32::MAX),
            (Err(_), FailMode::Closed) => Verdict::rejected(None),
        }
    }
}

/// How requests are counted over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WindowKind {
    /// One counter per window of `per`; up to twice the rate can pass around a
    /// window's edge.
    Fixed,
    /// The current window's count plus the previous one's, weighted by how much of
    /// it the last `per` still covers (Cloudflare's estimate): smooth at the edges,
    /// one more counter read.
    #[default]
    Sliding,
}

/// One window of `per`, aligned on multiples of its length since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// `start / length`: the window's number, part of its key.
    pub index: u64,
    /// Length in milliseconds (at least 1).
    pub length_ms: u64,
    /// Milliseconds from the window's start to `now`.
    pub elapsed_ms: u64,
}

impl Window {
    /// The window of `length` that `now` falls in.
    pub fn containing(length: Duration, now: Duration) -> Window {
        let length_ms = u64::try_from(length.as_millis()).unwrap_or(u64::MAX).max(1);
        let now_ms = u64::try_from(now.as_millis()).unwrap_or(u64::MAX);
        Window {
            index: now_ms / length_ms,
            length_ms,
            elapsed_ms: now_ms % length_ms,
        }
    }

    /// Time left until the next window.
    pub fn remaining(&self) -> Duration {
        Duration::from_millis(self.length_ms - self.elapsed_ms)
    }
}

/// The store key of one window: `{prefix}{{key}}:{per in ms}:{index}`. The braces
/// make `key` the Redis Cluster hash tag, so a window and its predecessor live on
/// the same node and one script can read both.
pub fn window_key(prefix: &str, key: &str, window: &Window) -> String {
    format!("{prefix}{{{key}}}:{}:{}", window.length_ms, window.index)
}

/// One global check, planned: the keys to read, the weight of the previous window,
/// the budget, and how long counters must live. A Redis script and
/// [`LocalWindows`] carry it out the same way:
///
/// ```text
/// previous = GET previous_key (0 if absent or Fixed)       current = GET current_key (0)
/// estimate = floor(previous * previous_weight_ms / window.length_ms) + current
/// if estimate < limit { INCR current_key; PEXPIRE current_key ttl }
/// return (previous, current)        -- before the increment
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowPlan {
    /// How requests are counted.
    pub kind: WindowKind,
    /// The window `now` falls in.
    pub window: Window,
    /// The counter of that window.
    pub current_key: String,
    /// The counter of the window before (sliding windows only).
    pub previous_key: Option<String>,
    /// The part of the previous window the last `per` still covers, in milliseconds
    /// (`window.length_ms - window.elapsed_ms`; 0 for fixed windows).
    pub previous_weight_ms: u64,
    /// Requests per window: the limit's `rate`.
    pub limit: u64,
    /// How long the current counter must live: one window, two when the next
    /// window's estimate still reads it.
    pub ttl: Duration,
}

impl WindowPlan {
    /// The plan for a request of `key` under `limit` at `now` (since the Unix epoch),
    /// with keys starting with `prefix`.
    pub fn new(
        prefix: &str,
        key: &str,
        limit: &RateLimit,
        kind: WindowKind,
        now: Duration,
    ) -> WindowPlan {
        let window = Window::containing(limit.per, now);
        let (previous_key, previous_weight_ms, windows) = match kind {
            WindowKind::Fixed => (None, 0, 1),
            WindowKind::Sliding => {
                let previous = Window {
                    index: window.index.wrapping_sub(1),
                    ..window
                };
                let weight = window.length_ms - window.elapsed_ms;
                (Some(window_key(prefix, key, &previous)), weight, 2)
            }
        };
        WindowPlan {
            kind,
            window,
            current_key: window_key(prefix, key, &window),
            previous_key,
            previous_weight_ms,
            limit: u64::from(limit.rate),
            ttl: Duration::from_millis(window.length_ms.saturating_mul(windows)),
        }
    }

    /// The estimated requests in the last `per`, from the counters' values.
    pub fn estimate(&self, previous: u64, current: u64) -> u64 {
        weighted(previous, self.previous_weight_ms, self.window.length_ms).saturating_add(current)
    }

    /// The verdict for the counters' values before this request (what the script
    /// returns): allowed when the estimate is under the limit; otherwise the least
    /// wait after which it would be, if nothing else is counted.
    pub fn decide(&self, previous: u64, current: u64) -> Verdict {
        let estimate = self.estimate(previous, current);
        if estimate < self.limit {
            let left = self.limit - estimate - 1;
            return Verdict::allowed(u32::try_from(left).unwrap_or(u32::MAX));
        }
        if self.limit == 0 {
            return Verdict::rejected(None);
        }
        let (w, e, l) = (self.window.length_ms, self.window.elapsed_ms, self.limit);
        let previous = if self.kind == WindowKind::Fixed {
            0
        } else {
            previous
        };
        // Within this window: the least elapsed e' with
        // floor(previous * (w - e') / w) < l - current.
        if current < l && previous > 0 {
            let e_min = w.saturating_sub(max_covered(previous, l - current, w));
            if e_min < w {
                return Verdict::rejected(Some(Duration::from_millis(
                    e_min.saturating_sub(e).max(1),
                )));
            }
        }
        // In the next window `current` becomes the previous count, and 0 is counted.
        let next = match self.kind {
            WindowKind::Fixed => 0,
            WindowKind::Sliding if current == 0 => 0,
            WindowKind::Sliding => w.saturating_sub(max_covered(current, l, w)),
        };
        let wait = (w - e).saturating_add(next.min(w));
        Verdict::rejected(Some(Duration::from_millis(wait)))
    }
}

/// `floor(count * weight / length)`, without overflow.
fn weighted(count: u64, weight: u64, length: u64) -> u64 {
    let v = u128::from(count) * u128::from(weight) / u128::from(length.max(1));
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// The largest weight `x` (in ms) with `floor(count * x / w) < budget`, i.e.
/// `count * x <= budget * w - 1`.
fn max_covered(count: u64, budget: u64, w: u64) -> u64 {
    let v = (u128::from(budget) * u128::from(w) - 1) / u128::from(count);
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// An in-memory [`GlobalLimiter`]: counters in a map, expiring as Redis's would.
///
/// The reference the Redis implementation must agree with, and a stand-in for one
/// replica. At most `max_keys` counters: expired ones are dropped when it is full,
/// and a check that finds it still full fails ([`GlobalError::Unavailable`]), which
/// the caller's [`FailMode`] resolves.
#[derive(Debug)]
pub struct LocalWindows {
    prefix: String,
    kind: WindowKind,
    max_keys: usize,
    /// key -> (expires at, in ms since the epoch; count)
    counters: Mutex<HashMap<String, (u64, u64)>>,
}

impl LocalWindows {
    /// Counters under `prefix`, counted by `kind`, at most `max_keys` of them.
    pub fn new(prefix: &str, kind: WindowKind, max_keys: usize) -> LocalWindows {
        LocalWindows {
            prefix: prefix.to_owned(),
            kind,
            max_keys: max_keys.max(1),
            counters: Mutex::new(HashMap::new()),
        }
    }

    /// Counters held now (expired ones included until the next sweep).
    pub fn len(&self) -> usize {
        self.counters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no counter is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl GlobalLimiter for LocalWindows {
    fn check(&self, key: &str, limit: &RateLimit, now: Duration) -> Result<Verdict, GlobalError> {
        let plan = WindowPlan::new(&self.prefix, key, limit, self.kind, now);
        let now_ms = u64::try_from(now.as_millis()).unwrap_or(u64::MAX);
        let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        let mut read = |k: &str| match counters.get(k) {
            Some(&(expires, n)) if expires > now_ms => n,
            _ => 0,
        };
        let previous = plan.previous_key.as_deref().map_or(0, &mut read);
        let current = read(&plan.current_key);
        let verdict = plan.decide(previous, current);
        if verdict.allowed {
            if !counters.contains_key(&plan.current_key) && counters.len() >= self.max_keys {
                counters.retain(|_, (expires, _)| *expires > now_ms);
                if counters.len() >= self.max_keys {
                    return Err(GlobalError::Unavailable("counter store full".into()));
                }
            }
            let expires =
                now_ms.saturating_add(u64::try_from(plan.ttl.as_millis()).unwrap_or(u64::MAX));
            let entry = counters.entry(plan.current_key).or_insert((expires, 0));
            *entry = (expires, current + 1);
        }
        Ok(verdict)
    }
}

#[cfg(test)]
mod tests {
    use http::StatusCode;

    use super::*;
    use crate::annotations::rate_limit::LimitAlgorithm;

    fn limit(rate: u32, per: Duration) -> RateLimit {
        RateLimit {
            rate,
            per,
            burst: rate * 5,
            algorithm: LimitAlgorithm::LeakyBucketNoDelay,
            status: StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    const S: Duration = Duration::from_secs(1);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn fixed_windows() {
        let g = LocalWindows::new("t:", WindowKind::Fixed, 100);
        let l = limit(3, S);
        let at = |t| g.check("k", &l, ms(t)).expect("answer");
        assert_eq!(at(10_000), Verdict::allowed(2));
        assert!(at(10_100).allowed && at(10_200).allowed);
        assert_eq!(at(10_250), Verdict::rejected(Some(ms(750))));
        // A new window, a new budget: the edge lets 2 x rate through in 1 s.
        assert_eq!(at(11_000), Verdict::allowed(2));
        // Other keys count apart.
        assert!(g.check("other", &l, ms(10_999)).expect("answer").allowed);
    }

    #[test]
    fn sliding_windows() {
        let g = LocalWindows::new("t:", WindowKind::Sliding, 100);
        let l = limit(10, S);
        let passed = |t, n| {
            (0..n)
                .filter(|_| g.check("k", &l, ms(t)).expect("answer").allowed)
                .count()
        };
        assert_eq!(passed(10_000, 20), 10);
        // 250 ms into the next window the previous 10 weigh 7 (floor 7.5): 3 more.
        assert_eq!(passed(11_250, 5), 3);
        // 500 ms in they weigh 5, and 3 are counted: 2 more.
        assert_eq!(passed(11_500, 5), 2);
        // At the end of the window after, those 5 weigh nothing.
        assert_eq!(passed(12_999, 12), 10);
    }

    #[test]
    fn sliding_retry_after_is_the_least_wait() {
        let l = limit(10, S);
        for (now, previous, current) in [
            (10_250, 10, 3),
            (10_000, 10, 0),
            (10_900, 4, 10),
            (10_100, 0, 10),
            (10_500, 30, 9),
        ] {
            let plan = WindowPlan::new("", "k", &l, WindowKind::Sliding, ms(now));
            let v = plan.decide(previous, current);
            assert!(!v.allowed, "{now} {previous} {current}");
            let wait = v.retry_after.expect("a wait");
            let later = |t: Duration| {
                let p = WindowPlan::new("", "k", &l, WindowKind::Sliding, t);
                let (prev, cur) = if p.window.index == plan.window.index {
                    (previous, current)
                } else if p.window.index == plan.window.index + 1 {
                    (current, 0)
                } else {
                    (0, 0)
                };
                p.decide(prev, cur).allowed
            };
            assert!(
                later(ms(now) + wait),
                "{now} {previous} {current}: {wait:?}"
            );
            assert!(
                !later(ms(now) + wait - ms(1)),
                "{now} {previous} {current}: {wait:?}"
            );
        }
    }

    #[test]
    fn keys_and_ttl() {
        let l = limit(1, Duration::from_secs(60));
        let p = WindowPlan::new("rl:", "a", &l, WindowKind::Fixed, Duration::from_secs(125));
        assert_eq!(p.current_key, "rl:{a}:60000:2");
        assert_eq!((p.previous_key, p.previous_weight_ms), (None, 0));
        assert_eq!(p.ttl, Duration::from_secs(60));
        assert_eq!(p.window.remaining(), Duration::from_secs(55));
        let p = WindowPlan::new(
            "rl:",
            "a",
            &l,
            WindowKind::Sliding,
            Duration::from_secs(125),
        );
        assert_eq!(p.ttl, Duration::from_secs(120));
        assert_eq!(p.previous_weight_ms, 55_000);
    }

    #[test]
    fn bounded_and_fail_modes() {
        let g = LocalWindows::new("t:", WindowKind::Fixed, 2);
        let l = limit(5, S);
        assert!(g.check("a", &l, ms(0)).is_ok() && g.check("b", &l, ms(0)).is_ok());
        let err = g.check("c", &l, ms(0)).expect_err("full");
        assert_eq!(
            FailMode::default().resolve(Err(err.clone())),
            Verdict::allowed(u32::MAX)
        );
        assert_eq!(FailMode::Closed.resolve(Err(err)), Verdict::rejected(None));
        // Expired counters make room.
        assert!(g.check("c", &l, ms(1_000)).is_ok());
        assert_eq!(g.len(), 1);
        assert!(!g.is_empty());
        assert_eq!(
            FailMode::Closed.resolve(Ok(Verdict::allowed(1))),
            Verdict::allowed(1)
        );
    }
}
