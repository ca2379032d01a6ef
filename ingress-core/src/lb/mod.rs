//! Load balancing: pure endpoint choice, called by the data plane per request.
//!
//! **Contract.** A [`Balancer`] is built once per route table swap from a
//! backend's endpoint list and the route's [`LoadBalancePolicy`] (and
//! [`AffinityPolicy`], if any). [`Balancer::pick`] chooses an endpoint index for
//! one request from a [`PickInput`]: the caller's random number, the time, the
//! hash key, the affinity cookie and the endpoints to avoid. Nothing here reads a
//! clock, draws a random number or locks: the immutable parts (endpoint list, hash
//! ring, cookie table) are shared read-only, and the mutable parts (round-robin
//! cursor, in-flight counts, latency averages) are atomics. A `Balancer` is
//! `Send + Sync`; wrap it in an `Arc` and pick from any thread.
//!
//! | [`LoadBalance`] | what [`Balancer::pick`] guarantees |
//! | --- | --- |
//! | `RoundRobin` (default) | `n` consecutive picks visit each of `n` endpoints once; an avoided endpoint's turn goes to the next available one |
//! | `Ewma` | of two distinct random available endpoints, the one with the lower (in-flight + 1) × latency average (10 s decay) |
//! | `LeastRequest` | of two distinct random available endpoints, the one with fewer in-flight requests |
//! | `Random` | a uniformly random available endpoint |
//! | `ConsistentHash` | the owner of the key's point on a ketama ring ([`VNODES_PER_ENDPOINT`] points per endpoint, [`hash64`]); equal keys get equal endpoints, and adding an endpoint moves about `1/(n+1)` of the keys; with a subset size, a random member of the key's subset |
//!
//! Every algorithm returns an index below [`Balancer::len`] that is not in
//! [`PickInput::avoid`], or `None` when every endpoint is avoided or there are
//! none. Round robin and the P2C algorithms skip avoided endpoints; consistent
//! hashing moves on clockwise to the next available endpoint's point (so retries
//! of one key are deterministic too).
//!
//! # Least request and EWMA
//!
//! Both draw two distinct available endpoints from [`PickInput::random`] and keep
//! the one with the lower score, the first drawn on a tie ("power of two
//! choices"). Least request scores in-flight requests. EWMA scores
//! (in-flight + 1) × the latency average: a continuous-time EWMA as in
//! ingress-nginx's `ewma.lua`, where a sample arriving `Δt` after the previous one
//! weighs `1 − exp(−Δt / 10 s)` ([`EWMA_DECAY_NS`]), read decayed toward 0 by
//! `exp(−Δt / 10 s)` since the last sample (so an endpoint that was slow is tried
//! again after a while). ingress-nginx scores the average alone; the in-flight
//! factor comes from Finagle's and linkerd's peak-EWMA balancers: a slow endpoint
//! stops winning before its slow responses come back. An endpoint with no sample counts 1 ns, so new endpoints are tried
//! first, least loaded first; [`Balancer::inherit`] gives endpoints added by a
//! table swap the mean average of the others instead (ingress-nginx's slow
//! start), so they are not flooded. Counters are relaxed atomics: a concurrent
//! sample is never lost (compare-and-swap), though two racing samples of one
//! endpoint may be weighted by slightly different `Δt`.
//!
//! # Consistent hashing
//!
//! Point `v` of an endpoint written `addr` (`ip:port`, IPv6 as `[addr]:port`) is
//! [`hash64`] of `addr#v`, `v` in `0..160`; a key goes to the owner of the first
//! point at or after `hash64(key)`. Points depend only on the address, so adding
//! an endpoint moves only the keys that land on its points (to it), and removing
//! one moves only its own keys. With `upstream-hash-by-subset`, the key's subset is
//! the first `subset_size` distinct available endpoints clockwise from its point
//! and [`PickInput::random`] chooses one of them. (ingress-nginx partitions the
//! list into fixed buckets instead, which reshuffles most subsets when an endpoint
//! is added; walking the ring changes a subset by at most one member.) The
//! mapping differs from ingress-nginx's CRC32 ring: a key does not land on the
//! endpoint it would there.
//!
//! # Cookie affinity
//!
//! The cookie names its endpoint: its value is
//! [`cookie_value`](crate::annotations::affinity::cookie_value) of the address
//! ([`Balancer::cookie_value`]), the format the router's canary pinning reads. A
//! cookie that names an available (listed, not avoided) endpoint wins over the
//! algorithm, and no cookie is set. Otherwise the route's algorithm picks (round
//! robin instead of hashing: with affinity the hash key has no effect, as the
//! annotation parser warns) and [`Pick::set_cookie`] asks for a new cookie, with
//! one exception: on a retry ([`PickInput::retrying`]) away from a pinned endpoint
//! that failed, the cookie is reissued only with
//! `session-cookie-change-on-failure`; without it the retry goes elsewhere but the
//! session stays pinned and its next request tries that endpoint again
//! (ingress-nginx's sticky balancer).
//!
//! Modes: in ingress-nginx `balanced` may re-spread sessions when endpoints are
//! added and `persistent` never does. Because the cookie names the endpoint
//! itself, every mode here behaves as `persistent`: a session stays on its
//! endpoint for as long as that endpoint is listed and not avoided, and moves (with
//! a new cookie) only when it is not. `persistent-drainable` keeps sessions on
//! terminating endpoints in ingress-nginx; a backend lists ready (or serving,
//! non-terminating) endpoints only, so it is `persistent` too. The annotation
//! catalogue marks `affinity` partly supported for this reason.
//!
//! # What the data plane does
//!
//! 1. On each table swap, build one `Balancer` per (backend, balancing policy)
//!    that routes use: `Balancer::for_policy(backend.endpoints(),
//!    forward.balancing_policy())`, then [`Balancer::inherit`] from the previous
//!    table's balancer for the same key, so in-flight counts, latency averages
//!    and the round-robin position carry over (a balancer with no predecessor:
//!    [`Balancer::start_at_random`]).
//! 2. Per request attempt: draw 64 random bits, read a monotonic clock in
//!    nanoseconds (any epoch, the same for every call), compute the hash key
//!    with [`LoadBalancePolicy::key_for`] when [`Balancer::needs_hash_key`], read
//!    the cookie with [`AffinityPolicy::request_cookie`] when
//!    [`Balancer::is_sticky`], and fill an [`EndpointSet`] with the indexes (in
//!    this balancer) of the endpoints this request already tried and of those an
//!    outlier detector ejected.
//! 3. Call [`Balancer::pick`]. `None` means no endpoint can take the request
//!    (503). When [`Pick::set_cookie`] is true, send
//!    [`AffinityPolicy::set_cookie`] with [`Balancer::cookie_value`] of the pick.
//! 4. Call [`Balancer::on_start`] before forwarding and [`Balancer::on_end`]
//!    with the latency when the attempt ends (success or failure), on the same
//!    balancer that picked; on a retry add the failed index to the set and pick
//!    again with [`PickInput::retrying`].
//!
//! # Example
//!
//! ```
//! use ingress_core::annotations::LoadBalancePolicy;
//! use ingress_core::annotations::load_balance::LoadBalance;
//! use ingress_core::lb::{Balancer, EndpointSet, PickInput};
//! use ingress_core::routing::{EndpointAddr, EndpointHost};
//!
//! let endpoints: Vec<EndpointAddr> = (1..=3)
//!     .map(|i| EndpointAddr { host: EndpointHost::Ip([10, 0, 0, i].into()), port: 8080 })
//!     .collect();
//!
//! // Round robin (the default): each endpoint in turn.
//! let rr = Balancer::new(&endpoints, &LoadBalancePolicy::default(), None);
//! let turns: Vec<usize> = (0..6)
//!     .filter_map(|r| rr.pick(&PickInput::new(r, 0)).map(|p| p.index))
//!     .collect();
//! assert_eq!(turns, [0, 1, 2, 0, 1, 2]);
//!
//! // A retry avoids the endpoint that failed; when all are avoided there is none.
//! let mut tried = EndpointSet::new();
//! tried.insert(0);
//! let retry = rr.pick(&PickInput::new(7, 0).avoiding(&tried).retrying());
//! assert_eq!(retry.map(|p| p.index), Some(1));
//! tried.extend([1, 2]);
//! assert_eq!(rr.pick(&PickInput::new(8, 0).avoiding(&tried)), None);
//!
//! // EWMA: the data plane reports latencies; the slow endpoint stops winning.
//! let mut policy = LoadBalancePolicy::default();
//! policy.algorithm = Some(LoadBalance::Ewma);
//! let ewma = Balancer::new(&endpoints, &policy, None);
//! let now = 1_000_000_000;
//! for (i, ms) in [(0, 900), (1, 5), (2, 7)] {
//!     ewma.on_start(i);
//!     ewma.on_end(i, ms * 1_000_000, now);
//! }
//! let picks = (0..300u64)
//!     .filter_map(|r| ewma.pick(&PickInput::new(r.wrapping_mul(0x9e37_79b9_7f4a_7c15), now)))
//!     .filter(|p| p.index == 0)
//!     .count();
//! assert_eq!(picks, 0);
//!
//! // Consistent hashing: equal keys, equal endpoints.
//! let mut policy = LoadBalancePolicy::default();
//! policy.algorithm = Some(LoadBalance::ConsistentHash);
//! policy.hash = Some(ingress_core::annotations::load_balance::HashKey {
//!     template: ingress_core::annotations::load_balance::hash_template("$request_uri")?,
//!     subset: None,
//! });
//! let chash = Balancer::new(&endpoints, &policy, None);
//! let a = chash.pick(&PickInput::new(1, 0).with_hash_key("/cart?id=7"));
//! let b = chash.pick(&PickInput::new(2, 0).with_hash_key("/cart?id=7"));
//! assert_eq!(a, b);
//! # Ok::<(), ingress_core::annotations::values::Invalid>(())
//! ```

mod affinity;
pub mod circuit;
pub mod outlier;
mod p2c;
mod ring;
mod round_robin;
mod set;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::annotations::affinity::AffinityMode;
use crate::annotations::load_balance::LoadBalance;
use crate::annotations::{AffinityPolicy, IngressPolicy, LoadBalancePolicy};
use crate::routing::EndpointAddr;

use affinity::{Pinned, Sticky};
use p2c::{EndpointStats, Score};
use ring::Ring;
use round_robin::Cursor;

pub use p2c::EWMA_DECAY_NS;
pub use ring::{VNODES_PER_ENDPOINT, hash64};
pub use set::EndpointSet;

/// What one request gives [`Balancer::pick`]. Build with [`PickInput::new`] and the
/// `with_*` methods.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct PickInput<'a> {
    /// 64 random bits for this pick (the caller's RNG). They are mixed before use,
    /// so a counter or a 32-bit value also spreads evenly; equal values give equal
    /// picks when the counters are equal.
    pub random: u64,
    /// Now, in nanoseconds of a monotonic clock (any epoch, the same for every
    /// call on one balancer and the balancers it inherits from). Decays the EWMA.
    pub now_ns: u64,
    /// The consistent-hash key ([`LoadBalancePolicy::key_for`]); without it a
    /// hashing balancer picks a random endpoint.
    pub hash_key: Option<&'a str>,
    /// The affinity cookie's value ([`AffinityPolicy::request_cookie`]).
    pub cookie: Option<&'a str>,
    /// Endpoints not to pick: tried already by this request, or ejected.
    pub avoid: &'a EndpointSet,
    /// This pick retries a failed attempt (for affinity's change-on-failure).
    pub retry: bool,
}

impl<'a> PickInput<'a> {
    /// A pick with this randomness at this time, no key, no cookie, nothing avoided.
    pub fn new(random: u64, now_ns: u64) -> PickInput<'a> {
        PickInput {
            random,
            now_ns,
            hash_key: None,
            cookie: None,
            avoid: &set::EMPTY,
            retry: false,
        }
    }

    /// With the consistent-hash key.
    pub fn with_hash_key(mut self, key: &'a str) -> Self {
        self.hash_key = Some(key);
        self
    }

    /// With the affinity cookie's value.
    pub fn with_cookie(mut self, value: &'a str) -> Self {
        self.cookie = Some(value);
        self
    }

    /// Avoiding these endpoints.
    pub fn avoiding(mut self, avoid: &'a EndpointSet) -> Self {
        self.avoid = avoid;
        self
    }

    /// As a retry of a failed attempt.
    pub fn retrying(mut self) -> Self {
        self.retry = true;
        self
    }
}

/// The chosen endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Pick {
    /// Index into [`Balancer::endpoints`].
    pub index: usize,
    /// Send the affinity cookie naming this endpoint ([`Balancer::cookie_value`]):
    /// the request had none, or one naming no available endpoint. Always `false`
    /// without affinity.
    pub set_cookie: bool,
}

/// How a balancer picks (the effective algorithm).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strategy {
    RoundRobin,
    P2c(Score),
    Random,
    Hash { subset: Option<usize> },
}

/// Endpoint choice for one backend under one load-balancing policy.
///
/// Immutable after [`Balancer::inherit`] apart from its atomic counters; see the
/// [module docs](self) for the algorithms and how the data plane drives it.
pub struct Balancer {
    endpoints: Box<[EndpointAddr]>,
    strategy: Strategy,
    /// One per endpoint; shared with the balancers it inherited from or hands on to.
    stats: Box<[Arc<EndpointStats>]>,
    cursor: Cursor,
    ring: Option<Ring>,
    sticky: Option<Sticky>,
}

impl fmt::Debug for Balancer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Balancer")
            .field("algorithm", &self.algorithm())
            .field("subset_size", &self.subset_size())
            .field("sticky", &self.sticky.as_ref().map(Sticky::mode))
            .field("endpoints", &self.endpoints.len())
            .finish_non_exhaustive()
    }
}

impl Balancer {
    /// A balancer over `endpoints` (a [`crate::routing::Backend::endpoints`] list:
    /// indexes returned by [`Balancer::pick`] are into it) for a route with this
    /// load-balancing policy and cookie affinity.
    ///
    /// The algorithm: cookie affinity's fallback if `affinity` is set (the route's
    /// algorithm, round robin instead of hashing), else consistent hashing if
    /// `load_balance.hash` is set, else `load_balance.algorithm`, else round robin.
    pub fn new(
        endpoints: &[EndpointAddr],
        load_balance: &LoadBalancePolicy,
        affinity: Option<&AffinityPolicy>,
    ) -> Balancer {
        let strategy = match (&load_balance.hash, load_balance.algorithm) {
            _ if affinity.is_some() && load_balance.hash.is_some() => Strategy::RoundRobin,
            (Some(h), _) => Strategy::Hash { subset: h.subset },
            (None, None | Some(LoadBalance::RoundRobin | LoadBalance::ConsistentHash)) => {
                Strategy::RoundRobin
            }
            (None, Some(LoadBalance::Ewma)) => Strategy::P2c(Score::Ewma),
            (None, Some(LoadBalance::LeastRequest)) => Strategy::P2c(Score::LeastRequest),
            (None, Some(LoadBalance::Random)) => Strategy::Random,
        };
        Balancer {
            endpoints: endpoints.into(),
            strategy,
            stats: endpoints.iter().map(|_| Arc::default()).collect(),
            cursor: Cursor::new(0),
            ring: matches!(strategy, Strategy::Hash { .. }).then(|| Ring::new(endpoints)),
            sticky: affinity.map(|a| Sticky::new(endpoints, a)),
        }
    }

    /// [`Balancer::new`] with the load-balancing and affinity policy of a route
    /// (for a forward: [`crate::routing::Forward::balancing_policy`]).
    pub fn for_policy(endpoints: &[EndpointAddr], policy: &IngressPolicy) -> Balancer {
        Balancer::new(endpoints, &policy.load_balance, policy.affinity.as_ref())
    }

    /// Take over the live state of the previous table's balancer, before this one
    /// serves: endpoints present in both (same address) share their in-flight
    /// count and latency average with it (requests still running on the old
    /// balancer are counted here too); new endpoints start with the mean latency
    /// average of the shared ones as of `now_ns` (ingress-nginx's slow start, so
    /// a new endpoint is not flooded before its first response); round robin
    /// continues from the previous position.
    pub fn inherit(&mut self, previous: &Balancer, now_ns: u64) {
        let old: BTreeMap<&EndpointAddr, usize> = previous
            .endpoints
            .iter()
            .enumerate()
            .map(|(i, e)| (e, i))
            .collect();
        let mut fresh = Vec::new();
        let (mut sum, mut measured) = (0.0, 0u32);
        for (i, e) in self.endpoints.iter().enumerate() {
            match old.get(e) {
                Some(&j) => {
                    let stats = Arc::clone(&previous.stats[j]);
                    if let Some(avg) = stats.ewma_at(now_ns) {
                        sum += avg;
                        measured += 1;
                    }
                    self.stats[i] = stats;
                }
                None => fresh.push(i),
            }
        }
        if measured > 0 {
            let mean = sum / f64::from(measured);
            for i in fresh {
                self.stats[i].seed(mean, now_ns);
            }
        }
        self.cursor.set(previous.cursor.position());
    }

    /// Start the round-robin cycle at a random endpoint (`random` from the
    /// caller's RNG), so that replicas built at the same moment do not all send
    /// their first request to endpoint 0.
    pub fn start_at_random(&self, random: u64) {
        self.cursor
            .set(p2c::below(ring::fmix64(random), self.len().max(1)));
    }

    /// Choose an endpoint for one request: an index into [`Balancer::endpoints`]
    /// that is not avoided, and whether to set the affinity cookie. `None` when
    /// there is no endpoint or every one is avoided.
    #[inline]
    pub fn pick(&self, input: &PickInput<'_>) -> Option<Pick> {
        let n = self.endpoints.len();
        let avail = input.avoid.free_below(n);
        if avail == 0 {
            return None;
        }
        let set_cookie = match &self.sticky {
            None => false,
            Some(s) => match s.pinned(input.cookie, input.avoid, input.retry) {
                Pinned::Here(index) => {
                    return Some(Pick {
                        index,
                        set_cookie: false,
                    });
                }
                Pinned::Moved(reissue) => reissue,
                Pinned::Nowhere => true,
            },
        };
        let index = self.balance(input, n, avail)?;
        Some(Pick { index, set_cookie })
    }

    /// The route's algorithm.
    #[inline]
    fn balance(&self, input: &PickInput<'_>, n: usize, avail: usize) -> Option<usize> {
        let avoid = input.avoid;
        let random = ring::fmix64(input.random);
        match (self.strategy, &self.ring, input.hash_key) {
            (Strategy::RoundRobin, ..) => self.cursor.next(n, avoid),
            (Strategy::P2c(kind), ..) => {
                p2c::pick(&self.stats, kind, random, input.now_ns, avail, avoid)
            }
            (Strategy::Hash { subset: None }, Some(ring), Some(key)) => {
                ring.pick(hash64(key.as_bytes()), avoid)
            }
            (Strategy::Hash { subset: Some(k) }, Some(ring), Some(key)) => {
                ring.pick_subset(hash64(key.as_bytes()), k, random, avail, avoid)
            }
            (Strategy::Random | Strategy::Hash { .. }, ..) => p2c::random(random, n, avail, avoid),
        }
    }

    /// Count a request as started on endpoint `index` (in flight until
    /// [`Balancer::on_end`]). Out-of-range indexes are ignored.
    #[inline]
    pub fn on_start(&self, index: usize) {
        if let Some(s) = self.stats.get(index) {
            s.start();
        }
    }

    /// Count a request on endpoint `index` as ended, `latency_ns` after it was
    /// sent (to the response head, or to the failure), at `now_ns`; the sample
    /// updates the endpoint's latency average. Out-of-range indexes are ignored,
    /// and the in-flight count never goes below zero.
    #[inline]
    pub fn on_end(&self, index: usize, latency_ns: u64, now_ns: u64) {
        if let Some(s) = self.stats.get(index) {
            s.end(latency_ns, now_ns);
        }
    }

    /// The endpoints, in index order.
    pub fn endpoints(&self) -> &[EndpointAddr] {
        &self.endpoints
    }

    /// Endpoint `index`, if in range.
    pub fn endpoint(&self, index: usize) -> Option<&EndpointAddr> {
        self.endpoints.get(index)
    }

    /// The number of endpoints.
    pub fn len(&self) -> usize {
        self.endpoints.len()
    }

    /// Whether there are no endpoints (every pick is `None`).
    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// The algorithm that picks when no affinity cookie decides.
    pub fn algorithm(&self) -> LoadBalance {
        match self.strategy {
            Strategy::RoundRobin => LoadBalance::RoundRobin,
            Strategy::P2c(Score::Ewma) => LoadBalance::Ewma,
            Strategy::P2c(Score::LeastRequest) => LoadBalance::LeastRequest,
            Strategy::Random => LoadBalance::Random,
            Strategy::Hash { .. } => LoadBalance::ConsistentHash,
        }
    }

    /// `upstream-hash-by-subset-size`, when consistent hashing picks in subsets.
    pub fn subset_size(&self) -> Option<usize> {
        match self.strategy {
            Strategy::Hash { subset } => subset,
            _ => None,
        }
    }

    /// Whether picks use [`PickInput::hash_key`] (the data plane need not compute
    /// the key otherwise).
    pub fn needs_hash_key(&self) -> bool {
        matches!(self.strategy, Strategy::Hash { .. })
    }

    /// Whether cookie affinity is on ([`PickInput::cookie`] is read and
    /// [`Pick::set_cookie`] may be set).
    pub fn is_sticky(&self) -> bool {
        self.sticky.is_some()
    }

    /// The affinity mode, when cookie affinity is on. Every mode pins a session
    /// to its endpoint while the endpoint is available (see the module docs).
    pub fn affinity_mode(&self) -> Option<AffinityMode> {
        self.sticky.as_ref().map(Sticky::mode)
    }

    /// The affinity cookie value naming endpoint `index`
    /// ([`crate::annotations::affinity::cookie_value`] of its address); `None`
    /// without affinity or out of range.
    pub fn cookie_value(&self, index: usize) -> Option<&str> {
        self.sticky.as_ref()?.value(index)
    }

    /// Requests in flight on endpoint `index` (0 when out of range).
    pub fn in_flight(&self, index: usize) -> u64 {
        self.stats.get(index).map_or(0, |s| s.in_flight())
    }

    /// Endpoint `index`'s latency average in nanoseconds, decayed to `now_ns` as
    /// picks see it; `None` before its first sample or out of range.
    pub fn latency_ewma_ns(&self, index: usize, now_ns: u64) -> Option<f64> {
        self.stats.get(index)?.ewma_at(now_ns)
    }
}
