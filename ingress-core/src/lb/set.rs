//! [`EndpointSet`]: a bit set of endpoint indexes, inline up to 256.

/// Words kept inline: 4 × 64 = 256 endpoints without a heap allocation.
const INLINE_WORDS: usize = 4;

/// A set of endpoint indexes (bit `i` = endpoint `i` of a [`super::Balancer`]).
///
/// The data plane fills one per request with the endpoints a pick must avoid:
/// those already tried by this request (retries) and those an outlier detector
/// has ejected. Indexes below 256 live inline, so building a set for a backend of
/// up to 256 endpoints never allocates; larger indexes spill to the heap.
#[derive(Debug, Clone, Default)]
pub struct EndpointSet {
    inline: [u64; INLINE_WORDS],
    /// Words `INLINE_WORDS..`; empty unless an index of 256 or more was inserted.
    spill: Vec<u64>,
}

impl EndpointSet {
    /// The empty set.
    pub const fn new() -> EndpointSet {
        EndpointSet {
            inline: [0; INLINE_WORDS],
            spill: Vec::new(),
        }
    }

    /// Word `w` (zero past the end).
    #[inline]
    fn word(&self, w: usize) -> u64 {
        match self.inline.get(w) {
            Some(&x) => x,
            None => self.spill.get(w - INLINE_WORDS).copied().unwrap_or(0),
        }
    }

    #[inline]
    fn word_mut(&mut self, w: usize) -> &mut u64 {
        if w < INLINE_WORDS {
            return &mut self.inline[w];
        }
        let s = w - INLINE_WORDS;
        if s >= self.spill.len() {
            self.spill.resize(s + 1, 0);
        }
        &mut self.spill[s]
    }

    /// Add endpoint `i`; `true` if it was not in the set.
    #[inline]
    pub fn insert(&mut self, i: usize) -> bool {
        let (w, bit) = (i / 64, 1u64 << (i % 64));
        let word = self.word_mut(w);
        let new = *word & bit == 0;
        *word |= bit;
        new
    }

    /// Remove endpoint `i`; `true` if it was in the set.
    pub fn remove(&mut self, i: usize) -> bool {
        let (w, bit) = (i / 64, 1u64 << (i % 64));
        if self.word(w) & bit == 0 {
            return false;
        }
        *self.word_mut(w) &= !bit;
        true
    }

    /// Whether endpoint `i` is in the set.
    #[inline]
    pub fn contains(&self, i: usize) -> bool {
        self.word(i / 64) & (1u64 << (i % 64)) != 0
    }

    /// Whether the set is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.inline.iter().all(|&w| w == 0) && self.spill.iter().all(|&w| w == 0)
    }

    /// How many endpoints are in the set.
    pub fn len(&self) -> usize {
        self.words().map(|w| w.count_ones() as usize).sum()
    }

    /// Empty the set (keeps any spilled capacity).
    pub fn clear(&mut self) {
        self.inline = [0; INLINE_WORDS];
        self.spill.iter_mut().for_each(|w| *w = 0);
    }

    /// The indexes in the set, ascending.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words().enumerate().flat_map(|(w, mut word)| {
            std::iter::from_fn(move || {
                if word == 0 {
                    return None;
                }
                let bit = word.trailing_zeros() as usize;
                word &= word - 1;
                Some(w * 64 + bit)
            })
        })
    }

    fn words(&self) -> impl Iterator<Item = u64> + '_ {
        self.inline.iter().chain(self.spill.iter()).copied()
    }

    /// The bits of word `w` that stand for indexes below `n` and are not in the set.
    #[inline]
    fn free_word(&self, w: usize, n: usize) -> u64 {
        let valid = match n - w * 64 {
            r if r >= 64 => u64::MAX,
            r => (1u64 << r) - 1,
        };
        !self.word(w) & valid
    }

    /// How many of the indexes `0..n` are not in the set.
    #[inline]
    pub(crate) fn free_below(&self, n: usize) -> usize {
        if self.is_empty() {
            return n;
        }
        (0..n.div_ceil(64))
            .map(|w| self.free_word(w, n).count_ones() as usize)
            .sum()
    }

    /// The `rank`-th (from 0, ascending) index of `0..n` not in the set; `None` when
    /// there are not that many.
    #[inline]
    pub(crate) fn nth_free(&self, n: usize, rank: usize) -> Option<usize> {
        if self.is_empty() {
            return (rank < n).then_some(rank);
        }
        let mut rank = rank;
        for w in 0..n.div_ceil(64) {
            let mut free = self.free_word(w, n);
            let count = free.count_ones() as usize;
            if rank >= count {
                rank -= count;
                continue;
            }
            for _ in 0..rank {
                free &= free - 1;
            }
            return Some(w * 64 + free.trailing_zeros() as usize);
        }
        None
    }
}

impl PartialEq for EndpointSet {
    fn eq(&self, other: &Self) -> bool {
        let words = INLINE_WORDS + self.spill.len().max(other.spill.len());
        (0..words).all(|w| self.word(w) == other.word(w))
    }
}

impl Eq for EndpointSet {}

impl FromIterator<usize> for EndpointSet {
    fn from_iter<I: IntoIterator<Item = usize>>(iter: I) -> Self {
        let mut set = EndpointSet::new();
        set.extend(iter);
        set
    }
}

impl Extend<usize> for EndpointSet {
    fn extend<I: IntoIterator<Item = usize>>(&mut self, iter: I) {
        for i in iter {
            self.insert(i);
        }
    }
}

/// An empty set to borrow (for [`super::PickInput::new`]).
pub(crate) static EMPTY: EndpointSet = EndpointSet::new();
