//! A bounded, sharded map of per-key limiter state, and the per-client limiter built
//! on it.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::annotations::rate_limit::{LimitAlgorithm, RateLimit};

use super::{Bucket, LimitsError, Verdict};

/// How big a keyed store may grow.
///
/// The store holds at most `shards x max_keys_per_shard` keys. Memory per key: one
/// slot of `size_of::<(K, S)>()` plus a flag (its vector never grows past the
/// bound), and one hash-table entry of `size_of::<K>() + 4` bytes (padded) plus a
/// control byte, in a table of a power of two at most 7/8 full. For the per-client
/// limiter keyed by [`IpAddr`](std::net::IpAddr) with two rates that is a 72-byte
/// slot and a 24-byte entry: at most 7.6 MiB for the default 65,536 keys (16 x
/// (4,096 slots x 72 B + 8,192 buckets x 25 B)), the same order as the 5 MB zone
/// ingress-nginx gives each Ingress. Memory is taken as keys arrive, not up front.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreConfig {
    /// Independent locks (at least 1). More shards, less contention between threads.
    pub shards: usize,
    /// Keys per shard (at least 1); a new key beyond it evicts one (see [`KeyedStore`]).
    pub max_keys_per_shard: usize,
}

impl Default for StoreConfig {
    /// 16 shards of 4,096 keys: 65,536 keys.
    fn default() -> Self {
        StoreConfig {
            shards: 16,
            max_keys_per_shard: 4096,
        }
    }
}

impl StoreConfig {
    /// The most keys a store with this configuration holds.
    pub fn capacity(&self) -> usize {
        self.shards
            .max(1)
            .saturating_mul(self.max_keys_per_shard.max(1))
    }
}

/// One key's state and its CLOCK reference bit.
#[derive(Debug)]
struct Slot<K, S> {
    key: K,
    state: S,
    referenced: bool,
}

#[derive(Debug)]
struct Shard<K, S, H> {
    /// Key -> its slot.
    index: HashMap<K, u32, H>,
    slots: Vec<Slot<K, S>>,
    hand: usize,
    evicted_idle: u64,
    evicted_busy: u64,
}

/// A shard behind its lock, on its own cache line.
type Locked<K, S, H> = Padded<Mutex<Shard<K, S, H>>>;

/// Keeps a shard on its own cache line, so neighbouring locks do not contend.
#[derive(Debug)]
#[repr(align(64))]
struct Padded<T>(T);

/// A map from keys to limiter state that many threads share: `N` shards, each a
/// [`Mutex`] over a hash map, so two requests contend only when their keys hash to
/// the same shard, and memory is bounded.
///
/// **Bound.** Each shard holds at most `max_keys_per_shard` keys ([`StoreConfig`]).
/// A new key in a full shard replaces one chosen by the CLOCK algorithm (an
/// approximation of least-recently-used, O(1) amortised): the hand sweeps the
/// shard's slots and takes the first whose state is idle (as good as new, so
/// forgetting it loses nothing) or that has not been used since the hand last
/// passed. New keys start unreferenced, so a flood of one-off keys replaces itself
/// before it pushes out clients that come back. nginx, likewise, drops drained
/// entries of its zone first and the least recently used one when the zone is full.
/// A forgotten client that was not idle starts again from a fresh state; the
/// counters ([`KeyedStore::evictions`]) tell how often that happened.
///
/// The hasher `H` picks the shard and hashes inside it. The default, std's
/// [`RandomState`], is keyed per process so that crafted keys cannot aim at one shard
/// or one bucket chain; tests that want a deterministic eviction order pass a fixed
/// one to [`KeyedStore::with_hasher`].
#[derive(Debug)]
pub struct KeyedStore<K, S, H = RandomState> {
    shards: Box<[Locked<K, S, H>]>,
    hasher: H,
    max_keys_per_shard: usize,
}

impl<K: Hash + Eq + Clone, S> KeyedStore<K, S> {
    /// An empty store with std's randomly keyed hasher.
    pub fn new(config: StoreConfig) -> Self {
        KeyedStore::with_hasher(config, RandomState::new())
    }
}

impl<K: Hash + Eq + Clone, S, H: BuildHasher + Clone> KeyedStore<K, S, H> {
    /// An empty store hashing with `hasher`.
    pub fn with_hasher(config: StoreConfig, hasher: H) -> Self {
        let shards = (0..config.shards.max(1))
            .map(|_| {
                Padded(Mutex::new(Shard {
                    index: HashMap::with_hasher(hasher.clone()),
                    slots: Vec::new(),
                    hand: 0,
                    evicted_idle: 0,
                    evicted_busy: 0,
                }))
            })
            .collect();
        KeyedStore {
            shards,
            hasher,
            max_keys_per_shard: config.max_keys_per_shard.clamp(1, u32::MAX as usize),
        }
    }

    /// Runs `f` on `key`'s state under its shard's lock, creating the state with
    /// `init` if the key is not there. `is_idle` tells, during eviction, whether a
    /// state is as good as new.
    pub fn update<R>(
        &self,
        key: &K,
        init: impl FnOnce() -> S,
        is_idle: impl FnMut(&S) -> bool,
        f: impl FnOnce(&mut S) -> R,
    ) -> R {
        let mut shard = self.shard(key);
        let shard = &mut *shard;
        if let Some(&i) = shard.index.get(key) {
            let slot = &mut shard.slots[i as usize];
            slot.referenced = true;
            return f(&mut slot.state);
        }
        let slot = Slot {
            key: key.clone(),
            state: init(),
            referenced: false,
        };
        let i = if shard.slots.len() < self.max_keys_per_shard {
            if shard.slots.len() == shard.slots.capacity() {
                // Grow by doubling, but never past the bound.
                let more = shard.slots.len().max(4);
                let room = self.max_keys_per_shard - shard.slots.len();
                shard.slots.reserve_exact(more.min(room));
            }
            shard.slots.push(slot);
            shard.slots.len() - 1
        } else {
            let i = shard.victim(is_idle);
            let old = std::mem::replace(&mut shard.slots[i], slot);
            shard.index.remove(&old.key);
            i
        };
        // `i` < `max_keys_per_shard` <= `u32::MAX`.
        shard.index.insert(key.clone(), i as u32);
        f(&mut shard.slots[i].state)
    }

    /// A copy of `key`'s state, if it is there.
    pub fn get(&self, key: &K) -> Option<S>
    where
        S: Clone,
    {
        let shard = self.shard(key);
        shard
            .index
            .get(key)
            .map(|&i| shard.slots[i as usize].state.clone())
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(&s.0).slots.len()).sum()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most keys this store holds.
    pub fn capacity(&self) -> usize {
        self.shards.len() * self.max_keys_per_shard
    }

    /// Keys replaced so far: `(idle, busy)`. An idle one was as good as new; a busy
    /// one's client starts again from a fresh state (a metric worth exporting: a
    /// steady rate of busy evictions means the store is too small).
    pub fn evictions(&self) -> (u64, u64) {
        self.shards.iter().fold((0, 0), |(i, b), s| {
            let s = lock(&s.0);
            (i + s.evicted_idle, b + s.evicted_busy)
        })
    }

    fn shard(&self, key: &K) -> MutexGuard<'_, Shard<K, S, H>> {
        // The high bits: the shard's own table indexes by the low ones.
        let h = self.hasher.hash_one(key);
        let i = ((h >> 32) as usize) % self.shards.len();
        lock(&self.shards[i].0)
    }
}

impl<K, S, H> Shard<K, S, H> {
    /// CLOCK: the first slot from the hand that is idle or was not used since the hand
    /// last passed it, clearing reference bits on the way. Ends within two rounds.
    fn victim(&mut self, mut is_idle: impl FnMut(&S) -> bool) -> usize {
        let n = self.slots.len();
        loop {
            let i = self.hand % n;
            self.hand = i + 1;
            let slot = &mut self.slots[i];
            if is_idle(&slot.state) {
                self.evicted_idle += 1;
                return i;
            }
            if !slot.referenced {
                self.evicted_busy += 1;
                return i;
            }
            slot.referenced = false;
        }
    }
}

/// Locks, ignoring poisoning: the state is plain numbers, valid after any panic.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The most rate limits one [`KeyedLimiter`] applies together (`limit-rps` and
/// `limit-rpm`).
pub const MAX_RATES: usize = 2;

/// The per-client state of a [`KeyedLimiter`]: one bucket per rate.
pub(crate) type Buckets = [Bucket; MAX_RATES];

/// Which of a [`KeyedLimiter`]'s rates decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Checked {
    /// Every rate accepted (and counted the request).
    Allowed(Verdict),
    /// Rate `.0` (the first to reject, in order) rejected; nothing was counted.
    Rejected(usize, Verdict),
    /// The rates accepted but the gate refused; nothing was counted.
    Gated,
}

/// Per-key rate limits: up to [`MAX_RATES`] rates that apply together to every key
/// (nginx's `limit_req` for `limit-rps` then `limit-rpm`), over a [`KeyedStore`].
///
/// A request is counted by every rate or by none: as nginx, a request one rate
/// rejects takes nothing from the others. Keys are whatever identifies a client
/// within a limit: the client address for one route's limiter, or `(route id,
/// address)` for a store shared by many routes.
///
/// ```
/// use std::net::{IpAddr, Ipv4Addr};
/// use std::time::Duration;
/// use http::StatusCode;
/// use ingress_core::annotations::rate_limit::{LimitAlgorithm, RateLimit};
/// use ingress_core::limits::{KeyedLimiter, StoreConfig};
///
/// let rps = RateLimit {
///     rate: 1,
///     per: Duration::from_secs(1),
///     burst: 5,
///     algorithm: LimitAlgorithm::LeakyBucketNoDelay,
///     status: StatusCode::SERVICE_UNAVAILABLE,
/// };
/// let limiter = KeyedLimiter::new(&[rps], StoreConfig::default())?;
/// let (a, b) = (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));
/// let now = Duration::from_secs(5);
/// assert_eq!((0..10).filter(|_| limiter.check(&a, now).allowed).count(), 6);
/// assert!(limiter.check(&b, now).allowed); // another client, another bucket
/// # Ok::<(), ingress_core::limits::LimitsError>(())
/// ```
#[derive(Debug)]
pub struct KeyedLimiter<K, H = RandomState> {
    rates: Vec<(super::Rate, LimitAlgorithm)>,
    store: KeyedStore<K, Buckets, H>,
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    /// A limiter applying `limits` in order, with std's randomly keyed hasher.
    ///
    /// Errors: more than [`MAX_RATES`] limits.
    pub fn new(limits: &[RateLimit], config: StoreConfig) -> Result<Self, LimitsError> {
        KeyedLimiter::with_hasher(limits, config, RandomState::new())
    }
}

impl<K: Hash + Eq + Clone, H: BuildHasher + Clone> KeyedLimiter<K, H> {
    /// A limiter applying `limits` in order, hashing with `hasher`.
    ///
    /// Errors: more than [`MAX_RATES`] limits.
    pub fn with_hasher(
        limits: &[RateLimit],
        config: StoreConfig,
        hasher: H,
    ) -> Result<Self, LimitsError> {
        if limits.len() > MAX_RATES {
            return Err(LimitsError::TooManyRates(limits.len()));
        }
        Ok(KeyedLimiter {
            rates: limits
                .iter()
                .map(|l| (super::Rate::from(l), l.algorithm))
                .collect(),
            store: KeyedStore::with_hasher(config, hasher),
        })
    }

    /// The request of `key` at `now`: accepted (and counted by every rate) only if
    /// every rate accepts it. A rejection's `retry_after` is the longest wait among
    /// the rates that reject; `remaining` is the least among the rates.
    pub fn check(&self, key: &K, now: Duration) -> Verdict {
        match self.check_gated(key, now, || true) {
            Checked::Allowed(v) | Checked::Rejected(_, v) => v,
            Checked::Gated => Verdict::rejected(None),
        }
    }

    /// Keys held now (at most [`capacity`](Self::capacity)).
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }

    /// The most keys held.
    pub fn capacity(&self) -> usize {
        self.store.capacity()
    }

    /// Keys replaced so far: `(idle, busy)`, see [`KeyedStore::evictions`].
    pub fn evictions(&self) -> (u64, u64) {
        self.store.evictions()
    }

    /// The store under the limiter.
    #[cfg(test)]
    pub(crate) fn store(&self) -> &KeyedStore<K, Buckets, H> {
        &self.store
    }

    /// As [`check`](Self::check), and when every rate accepts, `gate` decides (under
    /// the key's shard lock) whether the request is counted at all.
    pub(crate) fn check_gated(
        &self,
        key: &K,
        now: Duration,
        gate: impl FnOnce() -> bool,
    ) -> Checked {
        let rates = &self.rates;
        let init = || {
            std::array::from_fn(|i| {
                Bucket::new(
                    rates
                        .get(i)
                        .map_or(LimitAlgorithm::LeakyBucketNoDelay, |r| r.1),
                )
            })
        };
        let is_idle = |s: &Buckets| {
            rates
                .iter()
                .zip(s)
                .all(|((rate, _), b)| b.is_idle(rate, now))
        };
        self.store.update(key, init, is_idle, |state| {
            let mut next = *state;
            let mut remaining = u32::MAX;
            // (the first rate to reject, the longest wait; `None`: never)
            let mut rejected: Option<(usize, Option<Duration>)> = None;
            for (i, ((rate, _), bucket)) in rates.iter().zip(next.iter_mut()).enumerate() {
                let v = bucket.check(rate, now);
                if v.allowed {
                    remaining = remaining.min(v.remaining);
                    continue;
                }
                rejected = Some(match rejected {
                    None => (i, v.retry_after),
                    Some((first, wait)) => (first, wait.zip(v.retry_after).map(|(a, b)| a.max(b))),
                });
            }
            match rejected {
                Some((i, wait)) => Checked::Rejected(i, Verdict::rejected(wait)),
                None if gate() => {
                    *state = next;
                    Checked::Allowed(Verdict::allowed(remaining))
                }
                None => Checked::Gated,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasherDefault;
    use std::hash::DefaultHasher;
    use std::net::{IpAddr, Ipv4Addr};

    use http::StatusCode;

    use super::*;

    type Fixed = BuildHasherDefault<DefaultHasher>;

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(n))
    }

    fn nginx(rate: u32, per: Duration, burst: u32) -> RateLimit {
        RateLimit {
            rate,
            per,
            burst,
            algorithm: LimitAlgorithm::LeakyBucketNoDelay,
            status: StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn rps_and_rpm_count_together() {
        // limit-rps=2 (burst 2) and limit-rpm=4 (burst 0): the rpm limit rejects
        // the fifth request within the minute, and then the rps bucket is not charged.
        let limits = [nginx(2, S, 2), nginx(4, Duration::from_secs(60), 0)];
        let l = KeyedLimiter::<IpAddr>::new(&limits, StoreConfig::default()).expect("limiter");
        let a = ip(1);
        let t = |ms| Duration::from_millis(ms);
        assert!(l.check(&a, t(0)).allowed);
        // rpm: excess 0 -> the second request within 15 s is over (burst 0).
        let v = l.check(&a, t(0));
        assert!(!v.allowed);
        assert_eq!(v.retry_after, Some(Duration::from_secs(15)));
        // The rps bucket saw only the first request.
        let rps = l.store().get(&a).expect("state")[0];
        assert_eq!(rps, {
            let mut b = Bucket::new(LimitAlgorithm::LeakyBucketNoDelay);
            b.check(&super::super::Rate::from(&limits[0]), t(0));
            b
        });
        assert!(l.check(&a, t(15_000)).allowed);
        assert_eq!(l.check(&a, t(15_000)).remaining, 0);
    }

    #[test]
    fn entry_sizes_match_the_documented_bound() {
        assert!(std::mem::size_of::<Slot<IpAddr, Buckets>>() <= 72);
        assert!(std::mem::size_of::<(IpAddr, u32)>() <= 24);
    }

    #[test]
    fn too_many_rates() {
        let r = nginx(1, S, 1);
        let err = KeyedLimiter::<IpAddr>::new(&[r, r, r], StoreConfig::default());
        assert!(matches!(err, Err(LimitsError::TooManyRates(3))));
        // No rates: everything passes.
        let l = KeyedLimiter::<IpAddr>::new(&[], StoreConfig::default()).expect("limiter");
        assert!(l.check(&ip(1), S).allowed);
    }

    #[test]
    fn bounded_with_clock_eviction() {
        let config = StoreConfig {
            shards: 1,
            max_keys_per_shard: 4,
        };
        let l =
            KeyedLimiter::<IpAddr, Fixed>::with_hasher(&[nginx(1, S, 0)], config, Fixed::default())
                .expect("limiter");
        let now = Duration::from_secs(10);
        for n in 0..4 {
            assert!(l.check(&ip(n), now).allowed);
        }
        // Clients 0 and 1 come back (rejected, but referenced).
        assert!(!l.check(&ip(0), now).allowed);
        assert!(!l.check(&ip(1), now).allowed);
        // A flood of new keys replaces 2 and 3 first: 0 and 1 get a second chance.
        for n in 100..103 {
            assert!(l.check(&ip(n), now).allowed);
            assert_eq!(l.store().len(), 4);
        }
        assert!(l.store().get(&ip(2)).is_none() && l.store().get(&ip(3)).is_none());
        assert!(l.store().get(&ip(1)).is_some() && l.store().get(&ip(100)).is_some());
        assert_eq!(l.store().evictions(), (0, 3));
        // Later, everyone is idle: evictions cost nothing.
        let later = now + Duration::from_secs(5);
        assert!(l.check(&ip(200), later).allowed);
        assert_eq!(l.store().evictions(), (1, 3));
        assert_eq!(l.store().capacity(), 4);
        assert!(!l.store().is_empty());
    }
}
