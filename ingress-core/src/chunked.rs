//! [`Chunked`]: a vector stored as shared fixed-size chunks, so that a copy of it is
//! cheap and a copy that changes one element copies one chunk; [`ShardedMap`]: the
//! same for a hash map (shared shards by hash).
//!
//! The route table keeps its routes and backends this way: publishing an updated
//! table (an `Arc` handed to readers while the compiler keeps its own) copies
//! pointers to chunks, and an incremental update that replaces a host's routes in
//! place copies only the chunks that hold them. The proxy keeps its per-route state
//! (balancers, limits, labels) in the same shape, so an unchanged route keeps its
//! entries without a copy.
//!
//! ```
//! use ingress_core::chunked::Chunked;
//! let a: Chunked<u32> = (0..1000).collect();
//! let mut b = a.clone(); // pointers to a's chunks, not their elements
//! b.set(500, 7);
//! assert_eq!((a[500], b[500]), (500, 7));
//! assert_eq!(b.iter().filter(|&&x| x == 7).count(), 2);
//! ```

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::ops::{Index, Range};
use std::sync::Arc;

use rustc_hash::{FxBuildHasher, FxHashMap};

/// Elements per chunk (a power of two: indexing is a shift and a mask).
const SHIFT: u32 = 8;
const CHUNK: usize = 1 << SHIFT;
const MASK: usize = CHUNK - 1;

/// A vector of `T` in shared chunks of 256 elements: indexing costs one more
/// pointer load than a `Vec`'s; `clone` copies one pointer per chunk; changing an
/// element copies its chunk when another copy shares it (`Arc::make_mut`).
pub struct Chunked<T> {
    /// Every chunk but the last holds exactly `CHUNK` elements.
    chunks: Vec<Arc<Vec<T>>>,
    len: usize,
}

impl<T> Clone for Chunked<T> {
    fn clone(&self) -> Self {
        Chunked {
            chunks: self.chunks.clone(),
            len: self.len,
        }
    }
}

impl<T> Default for Chunked<T> {
    fn default() -> Self {
        Chunked {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Chunked<T> {
    /// As a slice's: `[a, b, ...]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<T: PartialEq> PartialEq for Chunked<T> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl<T: Eq> Eq for Chunked<T> {}

impl<T> Index<usize> for Chunked<T> {
    type Output = T;
    /// # Panics
    /// When `i` is out of bounds, as a slice does.
    fn index(&self, i: usize) -> &T {
        match self.get(i) {
            Some(x) => x,
            None => panic!("index {i} out of bounds for length {}", self.len),
        }
    }
}

impl<T> Chunked<T> {
    /// An empty vector.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Element `i`, if there is one.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&T> {
        self.chunks.get(i >> SHIFT)?.get(i & MASK)
    }

    /// The first element.
    pub fn first(&self) -> Option<&T> {
        self.get(0)
    }

    /// The last element.
    pub fn last(&self) -> Option<&T> {
        self.len.checked_sub(1).and_then(|i| self.get(i))
    }

    /// The elements in order.
    pub fn iter(&self) -> Iter<'_, T> {
        Iter {
            chunks: self.chunks.iter(),
            front: [].iter(),
            back: [].iter(),
            left: self.len,
        }
    }

    /// The index of the first element for which `pred` is false, the elements
    /// being partitioned by it (as [`slice::partition_point`]).
    pub fn partition_point(&self, mut pred: impl FnMut(&T) -> bool) -> usize {
        let (mut lo, mut hi) = (0, self.len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.get(mid) {
                Some(x) if pred(x) => lo = mid + 1,
                _ => hi = mid,
            }
        }
        lo
    }

    /// Whether `self` and `other` share chunk `c` (no copy was made of it).
    fn shares_chunk(&self, other: &Self, c: usize) -> bool {
        match (self.chunks.get(c), other.chunks.get(c)) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// How many chunks `self` and `other` share (the rest were copied or are new):
    /// what an update cost, for tests and benchmarks.
    pub fn shared_chunks(&self, other: &Self) -> usize {
        (0..self.chunks.len())
            .filter(|&c| self.shares_chunk(other, c))
            .count()
    }
}

impl<T: Clone> Chunked<T> {
    /// Element `i` to change, its chunk copied first when shared.
    pub fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        if i >= self.len {
            return None;
        }
        Arc::make_mut(self.chunks.get_mut(i >> SHIFT)?).get_mut(i & MASK)
    }

    /// Set element `i` (its chunk copied first when shared); returns the old value.
    ///
    /// # Panics
    /// When `i` is out of bounds.
    pub fn set(&mut self, i: usize, value: T) -> T {
        let len = self.len;
        match self.get_mut(i) {
            Some(x) => std::mem::replace(x, value),
            None => panic!("index {i} out of bounds for length {len}"),
        }
    }

    /// Append one element (the last chunk copied first when shared).
    pub fn push(&mut self, value: T) {
        match self.chunks.last_mut() {
            Some(c) if c.len() < CHUNK => Arc::make_mut(c).push(value),
            _ => {
                let mut c = Vec::with_capacity(CHUNK);
                c.push(value);
                self.chunks.push(Arc::new(c));
            }
        }
        self.len += 1;
    }

    /// Every element from `start` on, to change in place (their chunks copied first
    /// when shared), with its index.
    pub fn for_each_mut_from(&mut self, start: usize, mut f: impl FnMut(usize, &mut T)) {
        let first = start >> SHIFT;
        for (c, chunk) in self.chunks.iter_mut().enumerate().skip(first) {
            let base = c << SHIFT;
            let skip = start.saturating_sub(base);
            for (j, x) in Arc::make_mut(chunk).iter_mut().enumerate().skip(skip) {
                f(base + j, x);
            }
        }
    }

    /// Replace `range` by `with`; returns the elements removed. When `with` has the
    /// range's length only the chunks of the range change; otherwise every element
    /// after the range moves, and the chunks from the range's on are rebuilt.
    ///
    /// # Panics
    /// When `range` is out of bounds or decreasing, as `Vec::splice` does.
    pub fn splice(&mut self, range: Range<usize>, with: Vec<T>) -> Vec<T> {
        assert!(
            range.start <= range.end && range.end <= self.len,
            "splice range {range:?} out of bounds for length {}",
            self.len
        );
        if with.len() == range.len() {
            return range.zip(with).map(|(i, x)| self.set(i, x)).collect();
        }
        // Take every element from the range's chunk on, splice, and chunk again.
        let first = range.start >> SHIFT;
        let base = first << SHIFT;
        let mut tail: Vec<T> = Vec::with_capacity(self.len - base + with.len());
        for c in self.chunks.drain(first..) {
            match Arc::try_unwrap(c) {
                Ok(v) => tail.extend(v),
                Err(shared) => tail.extend(shared.iter().cloned()),
            }
        }
        let removed: Vec<T> = tail
            .splice(range.start - base..range.end - base, with)
            .collect();
        self.len = base + tail.len();
        let mut rest = tail.into_iter().peekable();
        while rest.peek().is_some() {
            let mut c = Vec::with_capacity(CHUNK);
            c.extend(rest.by_ref().take(CHUNK));
            self.chunks.push(Arc::new(c));
        }
        removed
    }

    /// The elements as a `Vec`, moved out of the chunks nothing else shares and
    /// cloned out of the others.
    pub fn into_vec(self) -> Vec<T> {
        let mut v = Vec::with_capacity(self.len);
        for c in self.chunks {
            match Arc::try_unwrap(c) {
                Ok(c) => v.extend(c),
                Err(shared) => v.extend(shared.iter().cloned()),
            }
        }
        v
    }

    /// Every element to change, their chunks copied first when shared.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.chunks
            .iter_mut()
            .flat_map(|c| Arc::make_mut(c).iter_mut())
    }
}

impl<T> From<Vec<T>> for Chunked<T> {
    fn from(v: Vec<T>) -> Self {
        let len = v.len();
        let mut chunks = Vec::with_capacity(len.div_ceil(CHUNK));
        let mut rest = v.into_iter().peekable();
        while rest.peek().is_some() {
            let mut c = Vec::with_capacity(CHUNK);
            c.extend(rest.by_ref().take(CHUNK));
            chunks.push(Arc::new(c));
        }
        Chunked { chunks, len }
    }
}

impl<T> FromIterator<T> for Chunked<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut chunks: Vec<Arc<Vec<T>>> = Vec::new();
        let mut len = 0;
        let mut iter = iter.into_iter().peekable();
        while iter.peek().is_some() {
            let mut c = Vec::with_capacity(CHUNK);
            c.extend(iter.by_ref().take(CHUNK));
            len += c.len();
            chunks.push(Arc::new(c));
        }
        Chunked { chunks, len }
    }
}

impl<'a, T> IntoIterator for &'a Chunked<T> {
    type Item = &'a T;
    type IntoIter = Iter<'a, T>;
    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

/// The elements of a [`Chunked`] in order.
#[derive(Debug, Clone)]
pub struct Iter<'a, T> {
    chunks: std::slice::Iter<'a, Arc<Vec<T>>>,
    front: std::slice::Iter<'a, T>,
    back: std::slice::Iter<'a, T>,
    left: usize,
}

impl<'a, T> Iterator for Iter<'a, T> {
    type Item = &'a T;
    #[inline]
    fn next(&mut self) -> Option<&'a T> {
        loop {
            if let Some(x) = self.front.next() {
                self.left -= 1;
                return Some(x);
            }
            match self.chunks.next() {
                Some(c) => self.front = c.iter(),
                None => {
                    let x = self.back.next()?;
                    self.left -= 1;
                    return Some(x);
                }
            }
        }
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<T> DoubleEndedIterator for Iter<'_, T> {
    fn next_back(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(x) = self.back.next_back() {
                self.left -= 1;
                return Some(x);
            }
            match self.chunks.next_back() {
                Some(c) => self.back = c.iter(),
                None => {
                    let x = self.front.next_back()?;
                    self.left -= 1;
                    return Some(x);
                }
            }
        }
    }
}

impl<T> ExactSizeIterator for Iter<'_, T> {}

impl<T> std::iter::FusedIterator for Iter<'_, T> {}

/// Shards of a [`ShardedMap`] (a power of two).
const SHARDS: usize = 256;

/// A hash map in 256 shared shards (by the key's hash): `clone` copies one pointer
/// per shard; changing an entry copies its shard (about 1/256 of the entries) when
/// another copy shares it. A lookup hashes the key twice (shard, then entry).
pub struct ShardedMap<K, V> {
    /// Empty until the first insert, then `SHARDS` shards.
    shards: Vec<Arc<FxHashMap<K, V>>>,
    len: usize,
}

impl<K, V> Clone for ShardedMap<K, V> {
    fn clone(&self) -> Self {
        ShardedMap {
            shards: self.shards.clone(),
            len: self.len,
        }
    }
}

impl<K, V> Default for ShardedMap<K, V> {
    fn default() -> Self {
        ShardedMap {
            shards: Vec::new(),
            len: 0,
        }
    }
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for ShardedMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// The shard of a key: bits of its hash that neither the shard's own table's
/// bucket index (low bits) nor its control bytes (top bits) use.
fn shard_of<Q: Hash + ?Sized>(k: &Q) -> usize {
    (FxBuildHasher.hash_one(k) >> 40) as usize & (SHARDS - 1)
}

impl<K, V> ShardedMap<K, V> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.shards.iter().flat_map(|s| s.iter())
    }

    /// Every value, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.shards.iter().flat_map(|s| s.values())
    }

    /// How many shards `self` and `other` share: what an update cost, for tests.
    pub fn shared_shards(&self, other: &Self) -> usize {
        self.shards
            .iter()
            .zip(&other.shards)
            .filter(|(a, b)| Arc::ptr_eq(a, b))
            .count()
    }
}

impl<K: Hash + Eq, V> ShardedMap<K, V> {
    /// The value of `k`.
    #[inline]
    pub fn get<Q>(&self, k: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shards.get(shard_of(k))?.get(k)
    }

    /// Whether `k` has a value.
    pub fn contains_key<Q>(&self, k: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get(k).is_some()
    }
}

impl<K: Hash + Eq + Clone, V: Clone> ShardedMap<K, V> {
    fn shard_mut(&mut self, i: usize) -> &mut FxHashMap<K, V> {
        if self.shards.is_empty() {
            // One empty shard shared by all: a shard is allocated when first
            // written (a small table, as an incremental compile's, touches few).
            self.shards = vec![Arc::default(); SHARDS];
        }
        Arc::make_mut(&mut self.shards[i])
    }

    /// Set `k`'s value (its shard copied first when shared); the old value back.
    pub fn insert(&mut self, k: K, v: V) -> Option<V> {
        let old = self.shard_mut(shard_of(&k)).insert(k, v);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Remove `k` (its shard copied first when shared, if it is there).
    pub fn remove<Q>(&mut self, k: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let i = shard_of(k);
        if !self.shards.get(i)?.contains_key(k) {
            return None;
        }
        let old = self.shard_mut(i).remove(k);
        self.len -= usize::from(old.is_some());
        old
    }

    /// `k`'s value, inserted by `make` when missing.
    pub fn get_or_insert_with(&mut self, k: K, make: impl FnOnce() -> V) -> &mut V {
        let i = shard_of(&k);
        if !self.shards.get(i).is_some_and(|s| s.contains_key(&k)) {
            self.len += 1;
        }
        self.shard_mut(i).entry(k).or_insert_with(make)
    }

    /// Change the entries for which `needs` holds with `f`, copying only the
    /// shards that hold one (when shared).
    pub fn update_where(
        &mut self,
        mut needs: impl FnMut(&K, &V) -> bool,
        mut f: impl FnMut(&K, &mut V),
    ) {
        for shard in &mut self.shards {
            if !shard.iter().any(|(k, v)| needs(k, v)) {
                continue;
            }
            for (k, v) in Arc::make_mut(shard).iter_mut() {
                if needs(k, v) {
                    f(k, v);
                }
            }
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> FromIterator<(K, V)> for ShardedMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut m = ShardedMap::new();
        for (k, v) in iter {
            m.insert(k, v);
        }
        m
    }
}

impl<'a, K, V> IntoIterator for &'a ShardedMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = Box<dyn Iterator<Item = (&'a K, &'a V)> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(c: &Chunked<u32>) -> Vec<u32> {
        c.iter().copied().collect()
    }

    #[test]
    fn behaves_as_a_vec() {
        let v: Vec<u32> = (0..1000).collect();
        let c: Chunked<u32> = v.clone().into();
        assert_eq!(model(&c), v);
        assert_eq!(c.len(), 1000);
        assert_eq!((c[0], c[255], c[256], c[999]), (0, 255, 256, 999));
        assert_eq!(c.get(1000), None);
        assert_eq!(c.last(), Some(&999));
        assert_eq!(c.iter().rev().copied().collect::<Vec<_>>(), {
            let mut r = v.clone();
            r.reverse();
            r
        });
        let mut it = c.iter();
        assert_eq!(
            (it.next(), it.next_back(), it.len()),
            (Some(&0), Some(&999), 998)
        );
        assert_eq!(c.partition_point(|&x| x < 700), 700);
        assert_eq!(format!("{:?}", Chunked::from(vec![1, 2])), "[1, 2]");
        assert!(Chunked::<u32>::new().is_empty());
        let collected: Chunked<u32> = (0..513).collect();
        assert_eq!(model(&collected), (0..513).collect::<Vec<_>>());
    }

    #[test]
    fn a_copy_shares_what_did_not_change() {
        let a: Chunked<u32> = (0..1000).collect();
        let mut b = a.clone();
        assert_eq!(b.shared_chunks(&a), 4);
        assert_eq!(b.set(300, 1), 300);
        assert_eq!((a[300], b[300]), (300, 1));
        assert_eq!(b.shared_chunks(&a), 3);
        b.push(5);
        assert_eq!((b.len(), b[1000], a.len()), (1001, 5, 1000));
        assert_eq!(b.shared_chunks(&a), 2);
        // Same-length splice: only the range's chunk is copied.
        let mut d = a.clone();
        assert_eq!(d.splice(10..12, vec![7, 8]), vec![10, 11]);
        assert_eq!(d.shared_chunks(&a), 3);
        assert_eq!(model(&a), (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn splice_matches_vec_splice() {
        let cases: [(Range<usize>, Vec<u32>); 7] = [
            (0..0, vec![9]),
            (0..3, vec![]),
            (250..260, vec![1, 2, 3]),
            (255..256, vec![4; 600]),
            (999..1000, vec![]),
            (1000..1000, vec![5, 6]),
            (0..1000, vec![]),
        ];
        for (range, with) in cases {
            let v: Vec<u32> = (0..1000).collect();
            let a: Chunked<u32> = v.clone().into();
            let mut c = a.clone();
            let mut w = v.clone();
            let removed_w: Vec<u32> = w.splice(range.clone(), with.clone()).collect();
            let removed_c = c.splice(range.clone(), with.clone());
            assert_eq!(removed_c, removed_w, "{range:?}");
            assert_eq!(model(&c), w, "{range:?}");
            assert_eq!(c.len(), w.len());
            // Every chunk but the last is full.
            for i in 0..c.len() {
                assert_eq!(c.get(i), w.get(i));
            }
            assert_eq!(model(&a), v, "the original is untouched");
            c.push(42);
            assert_eq!(c.last(), Some(&42));
        }
    }

    #[test]
    fn for_each_mut_from_touches_the_tail_only() {
        let a: Chunked<u32> = (0..600).collect();
        let mut b = a.clone();
        b.for_each_mut_from(520, |i, x| *x = i as u32 * 2);
        assert_eq!(b[519], 519);
        assert_eq!((b[520], b[599]), (1040, 1198));
        assert_eq!(b.shared_chunks(&a), 2);
        let mut c = a.clone();
        c.iter_mut().for_each(|x| *x += 1);
        assert_eq!((c[0], c[599]), (1, 600));
        assert_eq!(c.into_vec(), (1..601).collect::<Vec<_>>());
        assert_eq!(b.clone().into_vec().len(), 600);
    }

    #[test]
    fn sharded_map_behaves_as_a_map_and_shares_shards() {
        let mut a: ShardedMap<String, u32> = ShardedMap::new();
        assert!(a.is_empty() && a.get("x").is_none() && a.remove("x").is_none());
        for i in 0..2000u32 {
            assert_eq!(a.insert(format!("host{i}"), i), None);
        }
        assert_eq!(a.insert("host7".into(), 70), Some(7));
        assert_eq!(
            (a.len(), a.get("host7"), a.get("host1999")),
            (2000, Some(&70), Some(&1999))
        );
        assert!(a.contains_key("host0") && !a.contains_key("nope"));
        let mut b = a.clone();
        assert_eq!(b.shared_shards(&a), SHARDS);
        assert_eq!(b.remove("host5"), Some(5));
        assert_eq!(b.remove("host5"), None);
        b.insert("new".into(), 1);
        assert!(b.shared_shards(&a) >= SHARDS - 2);
        assert_eq!((a.len(), b.len(), a.get("host5")), (2000, 2000, Some(&5)));
        b.update_where(|k, _| k == "host9", |_, v| *v += 1000);
        assert_eq!((b.get("host9"), a.get("host9")), (Some(&1009), Some(&9)));
        assert!(b.shared_shards(&a) >= SHARDS - 3);
        let sum: u64 = b.values().map(|&v| u64::from(v)).sum();
        assert_eq!(sum, b.iter().map(|(_, &v)| u64::from(v)).sum::<u64>());
        let mut c: ShardedMap<u32, u32> = (0..10).map(|i| (i, i)).collect();
        *c.get_or_insert_with(3, || 0) += 1;
        *c.get_or_insert_with(30, || 5) += 1;
        assert_eq!((c.len(), c.get(&3), c.get(&30)), (11, Some(&4), Some(&6)));
        assert_eq!((&c).into_iter().count(), 11);
        assert_eq!(format!("{:?}", ShardedMap::<u8, u8>::new()), "{}");
    }
}
