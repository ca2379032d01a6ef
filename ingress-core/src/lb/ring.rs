//! Consistent hashing: a ketama ring, and subsets walked on it.
//!
//! The mapping (points, fallback when avoided, subsets) is documented on the
//! module ([`super`], "Consistent hashing"). The ring is two parallel arrays, the
//! sorted points and their owners, so the binary search touches only the points.

use crate::routing::EndpointAddr;

use super::p2c::below;
use super::set::EndpointSet;

/// Points on the ring per endpoint, as ketama and ingress-nginx's `resty.chash`.
pub const VNODES_PER_ENDPOINT: usize = 160;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// 64-bit FNV-1a, streaming.
#[derive(Clone, Copy)]
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(FNV_OFFSET)
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(FNV_PRIME);
        }
    }
}

/// MurmurHash3's 64-bit finaliser: every input bit flips each output bit with
/// probability about 1/2. FNV-1a alone changes mostly the low bits when only the
/// last bytes differ, which would bunch an endpoint's points together on the ring.
#[inline]
pub(crate) fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The stable 64-bit hash of consistent hashing: MurmurHash3's 64-bit finaliser
/// (`fmix64`) applied to the 64-bit FNV-1a hash of `bytes`.
///
/// Stable across versions, platforms and processes: ring points and key positions
/// depend on nothing else, so every replica of the data plane sends a key to the
/// same endpoint.
///
/// ```
/// assert_eq!(ingress_core::lb::hash64(b""), 0xefd0_1f60_ba99_2926);
/// ```
#[inline]
pub fn hash64(bytes: &[u8]) -> u64 {
    let mut h = Fnv::new();
    h.write(bytes);
    fmix64(h.0)
}

/// The ring: sorted points and, at the same positions, their owners.
#[derive(Debug)]
pub(crate) struct Ring {
    points: Box<[u64]>,
    owners: Box<[u32]>,
    /// `buckets[b]`: the position of the first point whose top bits (`point >>
    /// shift`) are `b` or more; one more entry than buckets. A lookup searches
    /// only its bucket (about 4 points) instead of the whole ring, which at 100
    /// endpoints (128 KB of points) costs a cache miss per level.
    buckets: Box<[u32]>,
    shift: u32,
}

impl Ring {
    /// The ring of `endpoints` (indexes into it are the owners).
    pub(crate) fn new(endpoints: &[EndpointAddr]) -> Ring {
        let mut all: Vec<(u64, u32)> = Vec::with_capacity(endpoints.len() * VNODES_PER_ENDPOINT);
        let mut digits = itoa_buf();
        for (i, e) in endpoints.iter().enumerate() {
            let mut base = Fnv::new();
            base.write(e.to_string().as_bytes());
            base.write(b"#");
            for v in 0..VNODES_PER_ENDPOINT {
                let mut h = base;
                h.write(decimal(v, &mut digits));
                all.push((fmix64(h.0), i as u32));
            }
        }
        all.sort_unstable_by(|x, y| {
            x.0.cmp(&y.0)
                .then_with(|| endpoints[x.1 as usize].cmp(&endpoints[y.1 as usize]))
        });
        let (points, owners) = all.into_iter().unzip::<_, _, Vec<u64>, Vec<u32>>();
        // About 4 points per bucket; 1 to 2^16 buckets.
        let bits = (points.len() / 4)
            .max(2)
            .next_power_of_two()
            .trailing_zeros()
            .min(16);
        let shift = 64 - bits;
        let mut buckets = Vec::with_capacity((1 << bits) + 1);
        let mut at = 0;
        for b in 0..=(1u64 << bits) {
            while at < points.len() && points[at] >> shift < b {
                at += 1;
            }
            buckets.push(at as u32);
        }
        Ring {
            points: points.into_boxed_slice(),
            owners: owners.into_boxed_slice(),
            buckets: buckets.into_boxed_slice(),
            shift,
        }
    }

    /// The position of the first point at or after `hash` (wrapping).
    #[inline]
    fn start(&self, hash: u64) -> usize {
        let b = (hash >> self.shift) as usize;
        let (lo, hi) = match (self.buckets.get(b), self.buckets.get(b + 1)) {
            (Some(&lo), Some(&hi)) => (lo as usize, hi as usize),
            _ => (0, self.points.len()),
        };
        let p = lo + self.points[lo..hi].partition_point(|&x| x < hash);
        if p == self.points.len() { 0 } else { p }
    }

    /// [`Ring::start`] by binary search over the whole ring (the reference).
    #[cfg(test)]
    pub(crate) fn start_slow(&self, hash: u64) -> usize {
        let p = self.points.partition_point(|&x| x < hash);
        if p == self.points.len() { 0 } else { p }
    }

    /// The points (for tests).
    #[cfg(test)]
    pub(crate) fn points(&self) -> &[u64] {
        &self.points
    }

    /// [`Ring::start`], for tests.
    #[cfg(test)]
    pub(crate) fn start_fast(&self, hash: u64) -> usize {
        self.start(hash)
    }

    /// The owners clockwise from `hash`, one full turn.
    #[inline]
    fn walk(&self, hash: u64) -> impl Iterator<Item = usize> + '_ {
        let start = self.start(hash);
        let (head, tail) = self.owners.split_at(start);
        tail.iter().chain(head).map(|&o| o as usize)
    }

    /// The endpoint for a key hashing to `hash`: the first available owner
    /// clockwise. `None` when the ring is empty or every endpoint is avoided.
    #[inline]
    pub(crate) fn pick(&self, hash: u64, avoid: &EndpointSet) -> Option<usize> {
        if avoid.is_empty() {
            let start = self.start(hash);
            return self.owners.get(start).map(|&o| o as usize);
        }
        self.walk(hash).find(|&o| !avoid.contains(o))
    }

    /// Subset hashing: of the first `size` distinct available owners clockwise from
    /// `hash`, the one `random` selects. `avail` is the number of available
    /// endpoints.
    pub(crate) fn pick_subset(
        &self,
        hash: u64,
        size: usize,
        random: u64,
        avail: usize,
        avoid: &EndpointSet,
    ) -> Option<usize> {
        // A subset as large as the list is the whole list, still in ring order
        // so that the choice does not depend on the list's order.
        let mut target = below(random, size.clamp(1, avail.max(1)));
        let mut seen = EndpointSet::new();
        for o in self.walk(hash) {
            if avoid.contains(o) || !seen.insert(o) {
                continue;
            }
            if target == 0 {
                return Some(o);
            }
            target -= 1;
        }
        None
    }

    /// The members of the subset of a key hashing to `hash`, in ring order.
    #[cfg(test)]
    pub(crate) fn subset(&self, hash: u64, size: usize, avoid: &EndpointSet) -> Vec<usize> {
        let mut seen = EndpointSet::new();
        self.walk(hash)
            .filter(|&o| !avoid.contains(o) && seen.insert(o))
            .take(size)
            .collect()
    }

    /// Number of points.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.points.len()
    }
}

/// A buffer for [`decimal`].
fn itoa_buf() -> [u8; 20] {
    [0; 20]
}

/// `v` in decimal, written into the end of `buf`.
fn decimal(mut v: usize, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return &buf[i..];
        }
    }
}
