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
//!
//! A host with a few plain paths (the common case) also gets a packed form in its
//! slot ([`Packed`]): its name, its paths' keys and their routes in one small
//! buffer, usually two cache lines. A lookup of such a host reads the slot and
//! that buffer, never the host's structure (whose maps, lists and policy pointer
//! fill several lines more, and whose keys and entries are two more allocations).

use std::fmt;
use std::hash::BuildHasher;
use std::sync::Arc;

use rustc_hash::FxBuildHasher;

use super::matching::{MatchKind, scan};
use super::table::{HostRoutes, RouteId, SMALL_HOST};
use crate::model::PathType;

/// Shards (a power of two): a changed host copies its shard, about 1/256 of them.
const SHARDS: usize = 256;

/// One slot of a shard: a host's hash, packed form (if it has one) and
/// structure, or empty.
type Slot = Option<Entry>;

/// A host in its shard.
#[derive(Clone)]
struct Entry {
    hash: u64,
    packed: Option<Packed>,
    hr: Arc<HostRoutes>,
}

impl Entry {
    fn new(hash: u64, hr: Arc<HostRoutes>) -> Self {
        Entry {
            hash,
            packed: Packed::of(&hr),
            hr,
        }
    }

    /// The host's name, from the packed form when there is one (the buffer a
    /// lookup reads next), else from the structure.
    #[inline]
    fn name(&self) -> &[u8] {
        match &self.packed {
            Some(p) => p.name(),
            None => self.hr.name().as_bytes(),
        }
    }
}

/// A small host's lookup data in one buffer: its name, its paths' match data
/// and keys, and its fallback route (ingress-nginx's per-host default backend).
///
/// Layout (little-endian): `name_len: u16`, `n: u16`, `fallback: u32`
/// (`u32::MAX`: none), the name, then `n` entries of 8 bytes (`key_off: u16`
/// into the keys, `len_kind: u16` = key length (12 bits) | kind (2 bits) | path
/// type (2 bits), `route: u32`), then the keys back to back. Made only for a
/// host whose paths are all in [`HostRoutes::small`] (no regex) and fit these
/// fields; any other host is looked up through its [`HostRoutes`].
#[derive(Clone)]
pub(crate) struct Packed(Arc<[u8]>);

const HEADER: usize = 8;
const ENTRY: usize = 8;
const NO_ROUTE: u32 = u32::MAX;

#[inline]
fn u16_at(b: &[u8], i: usize) -> u16 {
    b.get(i..i + 2)
        .map_or(0, |s| u16::from_le_bytes([s[0], s[1]]))
}

#[inline]
fn u32_at(b: &[u8], i: usize) -> u32 {
    b.get(i..i + 4)
        .map_or(NO_ROUTE, |s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn kind_code(k: MatchKind) -> Option<u16> {
    match k {
        MatchKind::Exact => Some(0),
        MatchKind::Element => Some(1),
        MatchKind::StringPrefix => Some(2),
        MatchKind::Regex => None,
    }
}

fn type_code(t: PathType) -> u16 {
    match t {
        PathType::Exact => 0,
        PathType::Prefix => 1,
        PathType::ImplementationSpecific => 2,
    }
}

impl Packed {
    /// The packed form of `hr`, when it has one: one allocation of the exact
    /// size, then the `Arc`'s (this runs for every host a compile inserts).
    fn of(hr: &HostRoutes) -> Option<Packed> {
        if hr.small.is_empty()
            || hr.small.len() > SMALL_HOST
            || !hr.regex.is_empty()
            || hr.regex_only
        {
            return None;
        }
        let name = hr.name().as_bytes();
        let fallback = match hr.fallback {
            Some(id) if id.0 == NO_ROUTE => return None,
            Some(id) => id.0,
            None => NO_ROUTE,
        };
        let keys_len: usize = hr.small.iter().map(|e| e.len as usize).sum();
        if keys_len > usize::from(u16::MAX) {
            return None;
        }
        let name_len = u16::try_from(name.len()).ok()?;
        let keys = hr.small_keys.as_bytes();
        let total = HEADER + name.len() + hr.small.len() * ENTRY + keys_len;
        let mut buf = Vec::with_capacity(total);
        buf.extend_from_slice(&name_len.to_le_bytes());
        buf.extend_from_slice(&(hr.small.len() as u16).to_le_bytes());
        buf.extend_from_slice(&fallback.to_le_bytes());
        buf.extend_from_slice(name);
        let mut off = 0u16;
        for e in &hr.small {
            let len = u16::try_from(e.len).ok().filter(|&l| l < 1 << 12)?;
            if e.id.0 == NO_ROUTE {
                return None;
            }
            let len_kind = len | kind_code(e.kind)? << 12 | type_code(e.path_type) << 14;
            let mut entry = [0u8; ENTRY];
            entry[..2].copy_from_slice(&off.to_le_bytes());
            entry[2..4].copy_from_slice(&len_kind.to_le_bytes());
            entry[4..].copy_from_slice(&e.id.0.to_le_bytes());
            buf.extend_from_slice(&entry);
            off += len;
        }
        for e in &hr.small {
            buf.extend_from_slice(keys.get(e.start as usize..(e.start + e.len) as usize)?);
        }
        debug_assert_eq!(buf.len(), total);
        Some(Packed(buf.into()))
    }

    #[inline]
    fn name(&self) -> &[u8] {
        let len = usize::from(u16_at(&self.0, 0));
        self.0.get(HEADER..HEADER + len).unwrap_or_default()
    }

    /// The route for a normalised path, as [`HostRoutes::lookup`] finds it.
    #[inline]
    fn lookup(&self, path: &str, nginx: bool) -> Option<RouteId> {
        let (head, rest) = self.0.split_first_chunk::<HEADER>()?;
        let name_len = usize::from(u16::from_le_bytes([head[0], head[1]]));
        let n = usize::from(u16::from_le_bytes([head[2], head[3]]));
        let (entries, keys) = rest.get(name_len..)?.split_at_checked(n * ENTRY)?;
        let (entries, _) = entries.as_chunks::<ENTRY>();
        let entries = entries.iter().map(|e| {
            let off = usize::from(u16::from_le_bytes([e[0], e[1]]));
            let len_kind = u16::from_le_bytes([e[2], e[3]]);
            let len = usize::from(len_kind & 0x0fff);
            let kind = match (len_kind >> 12) & 3 {
                0 => MatchKind::Exact,
                1 => MatchKind::Element,
                _ => MatchKind::StringPrefix,
            };
            let path_type = match len_kind >> 14 {
                0 => PathType::Exact,
                1 => PathType::Prefix,
                _ => PathType::ImplementationSpecific,
            };
            let key = keys.get(off..off + len).unwrap_or_default();
            (
                key,
                kind,
                path_type,
                RouteId(u32::from_le_bytes([e[4], e[5], e[6], e[7]])),
            )
        });
        scan(entries, path.as_bytes(), nginx)
    }

    #[inline]
    fn fallback(&self) -> Option<RouteId> {
        Some(u32_at(&self.0, 4))
            .filter(|&id| id != NO_ROUTE)
            .map(RouteId)
    }
}

/// A host found in a [`HostMap`]: what a request lookup needs, read from the
/// packed form when the host has one.
#[derive(Clone, Copy)]
pub(crate) struct HostRef<'a> {
    packed: Option<&'a Packed>,
    hr: &'a HostRoutes,
}

impl<'a> HostRef<'a> {
    /// A host without packed form (the host-less rules).
    pub(crate) fn plain(hr: &'a HostRoutes) -> Self {
        HostRef { packed: None, hr }
    }

    /// The route for a normalised path ([`HostRoutes::lookup`]).
    #[inline]
    pub(crate) fn lookup(&self, path: &str, nginx: bool) -> Option<RouteId> {
        match self.packed {
            Some(p) => p.lookup(path, nginx),
            None => self.hr.lookup(path, nginx),
        }
    }

    /// What answers when no path matches (ingress-nginx profile).
    #[inline]
    pub(crate) fn fallback(&self) -> Option<RouteId> {
        match self.packed {
            Some(p) => p.fallback(),
            None => self.hr.fallback,
        }
    }

    /// The host's structure.
    pub(crate) fn routes(&self) -> &'a HostRoutes {
        self.hr
    }
}

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
            Some(e) if e.hash == h && e.name() == name.as_bytes() => return Ok(i),
            Some(_) => i = (i + 1) & mask,
        }
    }
}

/// Remove slot `hole`'s entry by backward shift (no tombstones): move up each
/// later entry of the run whose home slot is not in `(hole, j]`.
fn remove_at(slots: &mut [Slot], mut hole: usize) -> Option<Arc<HostRoutes>> {
    let old = slots[hole].take()?.hr;
    let mask = slots.len() - 1;
    let mut j = hole;
    loop {
        j = (j + 1) & mask;
        let Some(e) = &slots[j] else { break };
        let home = e.hash as usize & mask;
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
        self.entry(name).map(|e| &e.hr)
    }

    /// Host `name` for a request lookup.
    #[inline]
    pub(crate) fn host(&self, name: &str) -> Option<HostRef<'_>> {
        self.entry(name).map(|e| HostRef {
            packed: e.packed.as_ref(),
            hr: &e.hr,
        })
    }

    #[inline]
    fn entry(&self, name: &str) -> Option<&Entry> {
        let h = hash(name);
        let slots = self.shards.get(shard_of(h))?;
        if slots.is_empty() {
            return None;
        }
        let i = find(slots, h, name).ok()?;
        slots[i].as_ref()
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
            .flat_map(|s| s.iter().flatten().map(|e| &e.hr))
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
            for e in shard.iter().flatten() {
                let Err(i) = find(&slots, e.hash, e.hr.name()) else {
                    unreachable!("names are distinct");
                };
                slots[i] = Some(e.clone());
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
            Ok(i) => slots[i].replace(Entry::new(h, hr)).map(|e| e.hr),
            Err(i) => {
                slots[i] = Some(Entry::new(h, hr));
                None
            }
        };
        if old.is_none() {
            self.counts[s] += 1;
            self.len += 1;
        }
        old
    }

    /// A map of `hosts` (distinct names; a later one of the same name replaces
    /// the earlier), each shard allocated once at its final size: what a full
    /// compile builds.
    pub(crate) fn from_hosts(hosts: Vec<Arc<HostRoutes>>) -> HostMap {
        let mut m = HostMap::default();
        if hosts.len() < SHARDS {
            // A few hosts (an incremental update compiles the touched ones alone):
            // most shards stay empty, inserting is cheaper than sizing them all.
            for hr in hosts {
                m.insert(hr);
            }
            return m;
        }
        let entries: Vec<Entry> = hosts
            .into_iter()
            .map(|hr| Entry::new(hash(hr.name()), hr))
            .collect();
        let mut counts = vec![0u32; SHARDS];
        for e in &entries {
            counts[shard_of(e.hash)] += 1;
        }
        let mut shards: Vec<Vec<Slot>> = counts
            .iter()
            .map(|&c| match c {
                0 => Vec::new(),
                c => vec![None; (c as usize * 2).next_power_of_two().max(4)],
            })
            .collect();
        for e in entries {
            let slots = &mut shards[shard_of(e.hash)];
            match find(slots, e.hash, e.hr.name()) {
                Ok(i) => slots[i] = Some(e),
                Err(i) => {
                    slots[i] = Some(e);
                    m.len += 1;
                }
            }
        }
        m.counts = shards
            .iter()
            .map(|s| s.iter().flatten().count() as u32)
            .collect();
        let empty: Arc<[Slot]> = Arc::new([]);
        m.shards = shards
            .into_iter()
            .map(|s| {
                if s.is_empty() {
                    empty.clone()
                } else {
                    s.into()
                }
            })
            .collect();
        m
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

    /// A small host's structure from rule indexes into a key pool.
    fn small_host(name: &str, rules: &[(usize, usize)], nginx: bool) -> HostRoutes {
        use crate::model::IngressPath;
        use crate::routing::matching::tests::{KEY_POOL, PATH_TYPES};
        let (keys, types) = (KEY_POOL, PATH_TYPES);
        let mut hr = HostRoutes::named(name);
        let mut seen = std::collections::HashSet::new();
        for (i, &(k, t)) in rules.iter().enumerate() {
            let Ok(p) = IngressPath::new(types[t % 3], Some(keys[k % keys.len()])) else {
                continue;
            };
            let (kind, key) = crate::routing::match_key(&p, nginx);
            if hr.small.len() < SMALL_HOST && seen.insert((kind, key.to_owned())) {
                hr.push_small(key, kind, RouteId(i as u32 * 7 + 1), p.path_type());
            }
        }
        hr
    }

    proptest! {
        /// The packed form finds what the host's structure finds, for every path,
        /// in both profiles, and has the same fallback.
        #[test]
        fn packed_lookup_equals_the_structure(
            rules in prop::collection::vec((0..10usize, 0..3usize), 1..12),
            paths in prop::collection::vec("[/ab]{0,8}", 1..20),
            nginx in any::<bool>(),
            fallback in prop::option::of(0..1000u32),
        ) {
            let mut hr = small_host("h.example.com", &rules, nginx);
            hr.fallback = fallback.map(RouteId);
            let packed = Packed::of(&hr).expect("a small host has a packed form");
            prop_assert_eq!(packed.name(), b"h.example.com");
            prop_assert_eq!(packed.fallback(), hr.fallback);
            for path in &paths {
                let path = crate::routing::normalize_path(path);
                prop_assert_eq!(packed.lookup(&path, nginx), hr.lookup(&path, nginx), "path {}", path);
            }
        }
    }

    #[test]
    fn hosts_that_do_not_fit_are_looked_up_through_their_structure() {
        use crate::annotations::values::Pattern;
        // A regex path, a key longer than 12 bits, no paths at all: no packed form.
        let mut regex = small_host("r.example.com", &[(1, 1)], false);
        regex.regex.push((
            Pattern(regex::Regex::new("^/x").expect("a regex")),
            RouteId(9),
        ));
        let mut long = HostRoutes::named("l.example.com");
        let key = format!("/{}", "k".repeat(5000));
        long.push_small(&key, MatchKind::Element, RouteId(3), PathType::Prefix);
        let empty = HostRoutes::named("e.example.com");
        for hr in [&regex, &long, &empty] {
            assert!(Packed::of(hr).is_none(), "{}", hr.name());
        }
        let mut m = HostMap::default();
        for hr in [regex, long, empty] {
            m.insert(Arc::new(hr));
        }
        let r = m.host("r.example.com").expect("r");
        assert_eq!(r.lookup("/x/y", false), Some(RouteId(9)));
        let l = m.host("l.example.com").expect("l");
        assert_eq!(l.lookup(&format!("{key}/more"), false), Some(RouteId(3)));
        assert_eq!(l.lookup("/k", false), None);
        assert!(
            m.host("e.example.com")
                .is_some_and(|e| e.lookup("/", true).is_none())
        );
        // A small host in the map is found through its packed form, name compared.
        m.insert(Arc::new(small_host("s.example.com", &[(1, 1)], false)));
        assert!(m.host("s.example.com").is_some_and(|s| s.packed.is_some()));
        assert_eq!(
            m.host("s.example.com")
                .and_then(|s| s.lookup("/a/z", false)),
            Some(RouteId(1))
        );
        assert!(m.host("t.example.com").is_none());
    }

    #[test]
    fn built_at_once_it_holds_what_inserts_hold() {
        let hosts: Vec<_> = (0..3000)
            .map(|i| host(&format!("h{i}.example.com"), i))
            .collect();
        let mut one_by_one = HostMap::default();
        for hr in &hosts {
            one_by_one.insert(hr.clone());
        }
        let mut built = HostMap::from_hosts(hosts.clone());
        assert_eq!(built.len(), 3000);
        for i in 0..3000 {
            let name = format!("h{i}.example.com");
            assert_eq!(built.get(&name).map(|h| tag(h)), Some(i));
            assert_eq!(one_by_one.get(&name).map(|h| tag(h)), Some(i));
        }
        assert!(built.get("h3000.example.com").is_none());
        // It grows and shrinks as any other.
        assert!(built.insert(host("new", 7)).is_none());
        assert_eq!(built.remove("h5.example.com").map(|h| tag(&h)), Some(5));
        assert_eq!(
            (built.len(), built.get("new").map(|h| tag(h))),
            (3000, Some(7))
        );
        assert!(HostMap::from_hosts(Vec::new()).is_empty());
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
