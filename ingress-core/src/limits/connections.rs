//! `limit-connections`: concurrent requests per key, released by an RAII guard.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::StoreConfig;

/// Why [`ConnectionLimiter::acquire`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionRejected {
    /// The key already has `limit` requests in flight.
    #[error("{in_flight} requests in flight, the limit")]
    OverLimit {
        /// Requests in flight for the key (the limit).
        in_flight: u32,
    },
    /// The key's shard already tracks its most keys, all with requests in flight.
    /// nginx's `limit_conn` answers its rejection status when its zone is full too.
    #[error("too many clients with requests in flight")]
    Full,
}

type Shard<K, H> = Mutex<HashMap<K, u32, H>>;

/// In-flight requests per key (nginx `limit_conn`, ingress-nginx's
/// `limit-connections`): [`acquire`](Self::acquire) counts a request in and returns
/// a [`ConnectionGuard`] that counts it out when dropped, wherever that happens
/// (response finished, client gone, task cancelled).
///
/// Sharded as [`KeyedStore`](super::KeyedStore). A key is held only while it has
/// requests in flight (it is removed when its count returns to zero), so memory
/// follows the requests in flight, and never exceeds
/// [`StoreConfig::capacity`] keys: a new key in a full shard is refused
/// ([`ConnectionRejected::Full`]), as nothing in it can be forgotten without losing a
/// count.
///
/// ```
/// use std::sync::Arc;
/// use ingress_core::limits::{ConnectionLimiter, ConnectionRejected, StoreConfig};
///
/// let limiter = Arc::new(ConnectionLimiter::new(2, StoreConfig::default()));
/// let a = limiter.acquire("10.0.0.1")?;
/// let b = limiter.acquire("10.0.0.1")?;
/// assert_eq!(limiter.acquire("10.0.0.1").unwrap_err(), ConnectionRejected::OverLimit { in_flight: 2 });
/// drop(a);
/// assert_eq!(limiter.in_flight(&"10.0.0.1"), 1);
/// drop(b);
/// assert_eq!(limiter.keys(), 0);
/// # Ok::<(), ConnectionRejected>(())
/// ```
pub struct ConnectionLimiter<K, H = RandomState> {
    limit: u32,
    shards: Box<[Shard<K, H>]>,
    hasher: H,
    max_keys_per_shard: usize,
}

impl<K, H> fmt::Debug for ConnectionLimiter<K, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionLimiter")
            .field("limit", &self.limit)
            .field("shards", &self.shards.len())
            .field("max_keys_per_shard", &self.max_keys_per_shard)
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq + Clone> ConnectionLimiter<K> {
    /// At most `limit` requests in flight per key (0 refuses every request), with
    /// std's randomly keyed hasher.
    pub fn new(limit: u32, config: StoreConfig) -> Self {
        ConnectionLimiter::with_hasher(limit, config, RandomState::new())
    }
}

impl<K: Hash + Eq + Clone, H: BuildHasher + Clone> ConnectionLimiter<K, H> {
    /// At most `limit` requests in flight per key, hashing with `hasher`.
    pub fn with_hasher(limit: u32, config: StoreConfig, hasher: H) -> Self {
        ConnectionLimiter {
            limit,
            shards: (0..config.shards.max(1))
                .map(|_| Mutex::new(HashMap::with_hasher(hasher.clone())))
                .collect(),
            hasher,
            max_keys_per_shard: config.max_keys_per_shard.max(1),
        }
    }

    /// The limit per key.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Counts a request of `key` in, unless it already has `limit` in flight.
    pub fn acquire(self: &Arc<Self>, key: K) -> Result<ConnectionGuard<K, H>, ConnectionRejected> {
        let mut shard = self.shard(&key);
        let full = shard.len() >= self.max_keys_per_shard;
        match shard.entry(key) {
            Entry::Occupied(mut e) => {
                let n = e.get_mut();
                if *n >= self.limit {
                    return Err(ConnectionRejected::OverLimit { in_flight: *n });
                }
                *n += 1;
                let key = e.key().clone();
                drop(shard);
                Ok(ConnectionGuard {
                    limiter: Arc::clone(self),
                    key: Some(key),
                })
            }
            Entry::Vacant(_) if self.limit == 0 => {
                Err(ConnectionRejected::OverLimit { in_flight: 0 })
            }
            Entry::Vacant(_) if full => Err(ConnectionRejected::Full),
            Entry::Vacant(e) => {
                let key = e.key().clone();
                e.insert(1);
                drop(shard);
                Ok(ConnectionGuard {
                    limiter: Arc::clone(self),
                    key: Some(key),
                })
            }
        }
    }

    /// Requests of `key` in flight now.
    pub fn in_flight(&self, key: &K) -> u32 {
        self.shard(key).get(key).copied().unwrap_or(0)
    }

    /// Keys with requests in flight now.
    pub fn keys(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }

    fn release(&self, key: &K) {
        let mut shard = self.shard(key);
        if let Some(n) = shard.get_mut(key) {
            *n -= 1;
            if *n == 0 {
                shard.remove(key);
            }
        }
    }

    fn shard(&self, key: &K) -> MutexGuard<'_, HashMap<K, u32, H>> {
        let h = self.hasher.hash_one(key);
        lock(&self.shards[((h >> 32) as usize) % self.shards.len()])
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One request counted in by [`ConnectionLimiter::acquire`]; dropping it counts the
/// request out. `Send` and `'static` when the key is, so it can travel with the
/// response body to wherever the request ends.
pub struct ConnectionGuard<K: Hash + Eq + Clone, H: BuildHasher + Clone = RandomState> {
    limiter: Arc<ConnectionLimiter<K, H>>,
    /// `None` once released.
    key: Option<K>,
}

impl<K: Hash + Eq + Clone + fmt::Debug, H: BuildHasher + Clone> fmt::Debug
    for ConnectionGuard<K, H>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionGuard")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq + Clone, H: BuildHasher + Clone> ConnectionGuard<K, H> {
    /// The key counted.
    pub fn key(&self) -> Option<&K> {
        self.key.as_ref()
    }
}

impl<K: Hash + Eq + Clone, H: BuildHasher + Clone> Drop for ConnectionGuard<K, H> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.limiter.release(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_return_to_zero() {
        let config = StoreConfig {
            shards: 1,
            max_keys_per_shard: 2,
        };
        let l = Arc::new(ConnectionLimiter::new(1, config));
        let a = l.acquire(1u32).expect("first");
        assert_eq!(a.key(), Some(&1));
        assert_eq!(
            l.acquire(1).expect_err("over"),
            ConnectionRejected::OverLimit { in_flight: 1 }
        );
        let b = l.acquire(2).expect("another key");
        // The shard is full of busy keys: a third key is refused, not let through.
        assert_eq!(l.acquire(3).expect_err("full"), ConnectionRejected::Full);
        drop(a);
        let c = l.acquire(3).expect("room again");
        drop((b, c));
        assert_eq!(l.keys(), 0);
        assert_eq!(l.in_flight(&1), 0);
        // limit 0 refuses everything.
        let zero = Arc::new(ConnectionLimiter::new(0, StoreConfig::default()));
        assert!(zero.acquire(1u32).is_err());
        assert_eq!(zero.limit(), 0);
        assert_eq!(zero.keys(), 0);
    }
}
