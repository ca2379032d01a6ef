//! Rate and connection limits: pure state machines a data plane drives.
//!
//! **Contract.** Nothing here reads a clock, sleeps, spawns or does IO: every check
//! takes `now`, a [`Duration`] since an origin the caller picks (a monotonic one, e.g.
//! the proxy's start `Instant`; wall-clock time only for [`global`] windows, which
//! replicas must agree on). The same inputs give the same answers, so every test is
//! deterministic. Per-client state that threads share sits behind sharded
//! [`std::sync::Mutex`]es; the only lock every request of a route takes is that
//! route's own Higress bucket, when it has one.
//!
//! - [`LeakyBucket`]: nginx `limit_req ... burst=B nodelay`, as ingress-nginx's
//!   `limit-rps` / `limit-rpm` use it (the exact formula is on the type).
//! - [`TokenBucket`]: Envoy's local rate limit, as Higress's `route-limit-*`.
//! - [`KeyedStore`] / [`KeyedLimiter`]: those buckets per client, sharded across
//!   locks, with a bounded number of keys ([`StoreConfig`]).
//! - [`ConnectionLimiter`]: `limit-connections`, in-flight counts with an RAII
//!   [`ConnectionGuard`].
//! - [`Limits`]: one Ingress's [`RateLimitPolicy`](crate::annotations::rate_limit::RateLimitPolicy)
//!   applied in nginx's order (connections, rps, rpm), then Higress's route bucket.
//! - [`global`]: the boundary for cluster-wide limits kept in Redis
//!   ([`GlobalLimiter`]) and the window arithmetic it needs.
//!
//! ```
//! use std::net::IpAddr;
//! use std::time::Duration;
//! use ingress_core::annotations::rate_limit::RateLimitPolicy;
//! use ingress_core::limits::{LimitKind, Limits, StoreConfig};
//!
//! // What `limit-rps: "1"` and `limit-connections: "2"` parse into (burst 5).
//! let mut policy = RateLimitPolicy::default();
//! policy.per_client.push(ingress_core::annotations::rate_limit::RateLimit {
//!     rate: 1,
//!     per: Duration::from_secs(1),
//!     burst: 5,
//!     algorithm: ingress_core::annotations::rate_limit::LimitAlgorithm::LeakyBucketNoDelay,
//!     status: http::StatusCode::SERVICE_UNAVAILABLE,
//! });
//! policy.connections = Some(2);
//! let limits = Limits::new(&policy, StoreConfig::default())?;
//!
//! let client: IpAddr = "192.0.2.7".parse()?;
//! let t0 = Duration::from_secs(1_000); // from the proxy's monotonic clock
//!
//! // Six requests at once pass (burst 5 + 1, served at once: nodelay); each holds
//! // a connection slot until its guard drops.
//! for _ in 0..6 {
//!     let admitted = limits.check(client, t0).expect("within the burst");
//!     drop(admitted); // the response is done
//! }
//! let rejected = limits.check(client, t0).expect_err("over the burst");
//! assert!(matches!(rejected.by, LimitKind::ClientRate { index: 0, .. }));
//! assert_eq!(rejected.status.as_u16(), 503);
//! assert_eq!(rejected.retry_after, Some(Duration::from_secs(1)));
//!
//! // One more a second later; two in flight at most.
//! let t1 = t0 + Duration::from_secs(1);
//! let held = limits.check(client, t1).expect("drained one");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! What the data plane does with it: build one [`Limits`] per Ingress policy and keep
//! it across route table swaps (key it by the Ingress and the policy, which is
//! `Hash + Eq`), so a config push does not hand every client a fresh burst; call
//! [`Limits::check`] with the client address (after `use-forwarded-headers`
//! resolution) before contacting the upstream; keep the [`Admitted`] value until the
//! response is finished; answer a [`Rejected`] with its `status` and no upstream
//! contact.

use std::time::Duration;

use crate::annotations::rate_limit::LimitAlgorithm;

mod bucket;
mod connections;
pub mod global;
mod keyed;
mod policy;
#[cfg(test)]
mod tests;

pub use bucket::{LeakyBucket, Rate, TokenBucket};
pub use connections::{ConnectionGuard, ConnectionLimiter, ConnectionRejected};
pub use global::{FailMode, GlobalError, GlobalLimiter};
pub use keyed::{KeyedLimiter, KeyedStore, MAX_RATES, StoreConfig};
pub use policy::{Admitted, CONNECTIONS_STATUS, LimitKind, Limits, Rejected};

/// The answer of a rate check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// Whether the request passes (and was counted).
    pub allowed: bool,
    /// When rejected: the least wait after which the same check passes, if nothing
    /// else is counted meanwhile; `None` when allowed, or when it never will.
    pub retry_after: Option<Duration>,
    /// When allowed: how many more requests would pass at the same instant
    /// (`u32::MAX` when no limit applies). 0 when rejected.
    pub remaining: u32,
}

impl Verdict {
    /// Passed, with `remaining` more possible at once.
    pub const fn allowed(remaining: u32) -> Verdict {
        Verdict {
            allowed: true,
            retry_after: None,
            remaining,
        }
    }

    /// Rejected; passes again after `retry_after` (`None`: never).
    pub const fn rejected(retry_after: Option<Duration>) -> Verdict {
        Verdict {
            allowed: false,
            retry_after,
            remaining: 0,
        }
    }
}

/// Errors building a limiter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitsError {
    /// More per-client rates than a [`KeyedLimiter`] applies together.
    #[error("{0} per-client rate limits, at most {MAX_RATES} apply together")]
    TooManyRates(usize),
}

/// "Never seen": no real `now` reaches it (see [`nanos`]).
const NEVER: u64 = u64::MAX;

/// `now` in nanoseconds, saturating below [`NEVER`] (585 years).
fn nanos(now: Duration) -> u64 {
    u64::try_from(now.as_nanos()).map_or(NEVER - 1, |n| n.min(NEVER - 1))
}

/// One bucket of either algorithm (a [`KeyedLimiter`]'s or a route's state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bucket {
    Leaky(LeakyBucket),
    Token(TokenBucket),
}

impl Bucket {
    fn new(algorithm: LimitAlgorithm) -> Bucket {
        match algorithm {
            LimitAlgorithm::LeakyBucketNoDelay => Bucket::Leaky(LeakyBucket::new()),
            LimitAlgorithm::TokenBucket => Bucket::Token(TokenBucket::new()),
        }
    }

    fn check(&mut self, rate: &Rate, now: Duration) -> Verdict {
        match self {
            Bucket::Leaky(b) => b.check(rate, now),
            Bucket::Token(b) => b.check(rate, now),
        }
    }

    fn is_idle(&self, rate: &Rate, now: Duration) -> bool {
        match self {
            Bucket::Leaky(b) => b.is_idle(rate, now),
            Bucket::Token(b) => b.is_idle(rate, now),
        }
    }
}
