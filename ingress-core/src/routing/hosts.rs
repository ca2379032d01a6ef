//! [`HostMap`]: the hosts' lookup structures by name, in shared shards, found with
//! one hash and one probe of a flat slot array.
//!
//! `route()` over many hosts is bound by cache misses, not instructions: each
//! pointer followed to reach a host's paths is likely a miss when the requests
//! cycle over thousands of hosts. A `ShardedMap<Arc<str>, Arc<HostRoutes>>` hashed
//! the name twice (shard, then the shard's own table) and then followed the key's
//! pointer to compare it, the control bytes and the bucket being two more lines.
//! Here one hash picks the shard and the slot; a slot holds that hash and the
//! host's structure, so a probe compares hashes in place and follows only the
//! pointer of the host that matches, whose name is the start of the buffer of its
//! path keys ([`HostRoutes::name`]), read next anyway.

use std::fmt;
use std::hash::BuildHasher;
use std::sync::Arc;

use rustc_hash::FxBuildHasher;

use super::table::HostRoutes;

/// Shards (a power of two): a changed host copies its shard, about 1/256 of them.
const SHARDS: usize = 256;

/// One slot of a shard: a host's hash and structure, or empty.
type Slot = Option<(u64, Arc<HostRoutes>)>;

/// The slot holding `name` (hash `h`) in a shard, or the empty slot where it
/// would go. A shard is open addressing with linear probing, at most half full
/// (so a probe ends at an empty slot), its length zero or a power of two.
#[inline]
fn find(slots: &[Slot], h: u64, name: &str) -> Result<usize, usize> {
    let mask = slots.len() - 1;
    let mut i = h as usize & mask;
    loop {
        match &slots[i] {
            None => return Err(i),
            Some((eh, hr)) if *eh == h && hr.name() == name => return Ok(i),
            Some(_) => i = (i + 1) & mask,
        }
    }
}

/// Remove slot `hole`'s entry by backward shift (no tombstones): move up each
/// later entry of the run whose home slot is not in `(hole, j]`.
fn remove_at(slots: &mut [Slot], mut hole: usize) -> Option<Arc<HostRoutes>> {
    let (_, old) = slots[hole].take()?;
    let mask = slots.len() - 1;
    let mut j = hole;
    loop {
        j = (j + 1) & mask;
        let Some((eh, _)) = &slots[j] else { break };
        let home = *eh as usize & mask;
        let stays = if hole <= j {
            hole < home && home <= j
        } else {
            hole < home || home <= j
        };
        if !stays {
            slots[hole] = slots[j].take();
            hole = j;
        }
    }
    Some(old)
}

/// The hosts' lookup structures by name (an exact host, or a wildcard's suffix),
/// in shared shards: `clone` copies one pointer per shard, and changing a host
/// copies its shard when another copy shares it. A shard is its slot array
/// itself (`Arc<[Slot]>`, no header to load before the slots).
#[derive(Clone, Default)]
pub(crate) struct HostMap {
    /// Empty until the first insert, then `SHARDS` shards.
    shards: Vec<Arc<[Slot]>>,
    /// Entries per shard.
    counts: Vec<u32>,
    len: usize,
}

#[inline]
fn hash(name: &str) -> u64 {
    FxBuildHasher.hash_one(name)
}

/// The shard of a hash: bits the slot index (low bits) does not use.
#[inline]
fn shard_of(h: u64) -> usize {
    (h >> 48) as usize & (SHARDS - 1)
}

impl HostMap {
    /// The structure of host `name`.
    #[inline]
    pub(crate) fn get(&self, name: &str) -> Option<&Arc<HostRoutes>> {
        let h = hash(name);
        let slots = self.shards.get(shard_of(h))?;
        if slots.is_empty() {
            return None;
        }
        let i = find(slots, h, name).ok()?;
        slots[i].as_ref().map(|(_, hr)| hr)
    }

    /// Whether host `name` has a structure.
    pub(crate) fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The number of hosts.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether there is no host.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every host's structure (its name is [`HostRoutes::name`]), in no order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &Arc<HostRoutes>> {
        self.shards
            .iter()
            .flat_map(|s| s.iter().flatten().map(|(_, hr)| hr))
    }

    /// Every host's name and structure, in no order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &Arc<HostRoutes>)> {
        self.values().map(|hr| (hr.name(), hr))
    }

    /// Shard `s` to change, copied first when shared (`cap` slots when it must
    /// grow to that, moving its entries).
    fn shard_mut(&mut self, s: usize, cap: usize) -> &mut [Slot] {
        let shard = &mut self.shards[s];
        if shard.len() < cap {
            let mut slots: Vec<Slot> = vec![None; cap];
            for (h, hr) in shard.iter().flatten() {
                let Err(i) = find(&slots, *h, hr.name()) else {
                    unreachable!("names are distinct");
                };
                slots[i] = Some((*h, hr.clone()));
            }
            *shard = slots.into();
        } else if Arc::get_mut(shard).is_none() {
            *shard = shard.iter().cloned().collect();
        }
        Arc::get_mut(shard).expect("a shard just made unique")
    }

    /// Set the structure of host `hr.name()` (its shard copied first when
    /// shared); the old one back.
    pub(crate) fn insert(&mut self, hr: Arc<HostRoutes>) -> Option<Arc<HostRoutes>> {
        if self.shards.is_empty() {
            // One empty shard shared by all: a shard is allocated when first written.
            let empty: Arc<[Slot]> = Arc::new([]);
            self.shards = vec![empty; SHARDS];
            self.counts = vec![0; SHARDS];
        }
        let h = hash(hr.name());
        let s = shard_of(h);
        let count = self.counts[s] as usize;
        let len = self.shards[s].len();
        let cap = if (count + 1) * 2 > len {
            (len * 2).max(4)
        } else {
            len
        };
        let slots = self.shard_mut(s, cap);
        let old = match find(slots, h, hr.name()) {
            Ok(i) => slots[i].replace((h, hr)).map(|(_, old)| old),
            Err(i) => {
                slots[i] = Some((h, hr));
                None
            }
        };
        if old.is_none() {
            self.counts[s] += 1;
            self.len += 1;
        }
        old
    }

    /// Remove host `name` (its shard copied first when shared, if it is there).
    pub(crate) fn remove(&mut self, name: &str) -> Option<Arc<HostRoutes>> {
        if !self.contains_key(name) {
            return None;
        }
        let h = hash(name);
        let s = shard_of(h);
        let len = self.shards[s].len();
        let slots = self.shard_mut(s, len);
        let i = find(slots, h, name).ok()?;
        let old = remove_at(slots, i);
        if old.is_some() {
            self.counts[s] -= 1;
            self.len -= 1;
        }
        old
    }

    /// How many shards `self` and `other` share: what an update cost, for tests.
    #[cfg(test)]
    pub(crate) fn shared_shards(&self, other: &Self) -> usize {
        self.shards
            .iter()
            .zip(&other.shards)
            .filter(|(a, b)| Arc::ptr_eq(a, b))
            .count()
    }
}

impl fmt::Debug for HostMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rustc_hash::FxHashMap;

    fn host(name: &str, tag: u32) -> Arc<HostRoutes> {
        let mut hr = HostRoutes::named(name);
        hr.all.push(super::super::RouteId(tag));
        Arc::new(hr)
    }

    fn tag(hr: &HostRoutes) -> u32 {
        hr.all[0].0
    }

    proptest! {
        /// Inserts and removes of names from a small pool (so that runs collide
        /// and removals shift them) agree with a `HashMap`.
        #[test]
        fn behaves_as_a_map(ops in prop::collection::vec((any::<bool>(), 0..300u32), 1..600)) {
            let mut m = HostMap::default();
            let mut model: FxHashMap<String, u32> = FxHashMap::default();
            for (n, (insert, k)) in ops.into_iter().enumerate() {
                let name = format!("h{k}.example.com");
                if insert {
                    let old = m.insert(host(&name, n as u32)).map(|hr| tag(&hr));
                    prop_assert_eq!(old, model.insert(name.clone(), n as u32));
                } else {
                    let old = m.remove(&name).map(|hr| tag(&hr));
                    prop_assert_eq!(old, model.remove(&name));
                }
                prop_assert_eq!(m.len(), model.len());
            }
            for k in 0..300u32 {
                let name = format!("h{k}.example.com");
                prop_assert_eq!(m.get(&name).map(|hr| tag(hr)), model.get(&name).copied());
                prop_assert_eq!(m.contains_key(&name), model.contains_key(&name));
            }
            let mut names: Vec<&str> = m.values().map(|hr| hr.name()).collect();
            names.sort_unstable();
            let mut want: Vec<&str> = model.keys().map(String::as_str).collect();
            want.sort_unstable();
            prop_assert_eq!(names, want);
        }
    }

    #[test]
    fn a_copy_shares_the_shards_a_change_did_not_touch() {
        let mut a = HostMap::default();
        assert!(a.is_empty() && a.get("x").is_none() && a.remove("x").is_none());
        for i in 0..2000 {
            assert!(a.insert(host(&format!("host{i}"), i)).is_none());
        }
        assert_eq!(a.len(), 2000);
        let mut b = a.clone();
        assert_eq!(b.shared_shards(&a), SHARDS);
        assert_eq!(b.remove("host5").map(|hr| tag(&hr)), Some(5));
        assert!(b.insert(host("new", 1)).is_none());
        assert!(b.shared_shards(&a) >= SHARDS - 2);
        assert_eq!((a.len(), b.len()), (2000, 2000));
        assert_eq!(a.get("host5").map(|hr| tag(hr)), Some(5));
        assert!(b.get("host5").is_none() && a.get("new").is_none());
        assert!(format!("{b:?}").contains("\"new\""));
    }
}
