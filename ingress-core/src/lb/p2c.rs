//! Power of two choices (EWMA, least request) and uniform random.
//!
//! The scores and the average are documented on the module ([`super`], "Least
//! request and EWMA"). The average is kept as `f64` bits in an `AtomicU64` and
//! updated by compare-and-swap; each endpoint's counters sit on their own cache
//! line.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::set::EndpointSet;

/// The EWMA decay time constant, in nanoseconds: 10 s, as ingress-nginx's
/// `DECAY_TIME`.
pub const EWMA_DECAY_NS: u64 = 10_000_000_000;

/// The bits of an EWMA that has no sample yet (a NaN no arithmetic here produces).
const UNSET: u64 = u64::MAX;

/// The per-endpoint counters, alone on a cache line (no false sharing between
/// endpoints picked on different cores).
#[derive(Debug)]
#[repr(align(64))]
pub(crate) struct EndpointStats {
    in_flight: AtomicU64,
    /// `f64` bits of the average latency in ns, or [`UNSET`].
    ewma: AtomicU64,
    /// `now_ns` of the last sample.
    stamp: AtomicU64,
}

impl Default for EndpointStats {
    fn default() -> Self {
        EndpointStats {
            in_flight: AtomicU64::new(0),
            ewma: AtomicU64::new(UNSET),
            stamp: AtomicU64::new(0),
        }
    }
}

/// `exp(−Δt / τ)`.
#[inline]
fn weight(elapsed_ns: u64) -> f64 {
    (-(elapsed_ns as f64) / EWMA_DECAY_NS as f64).exp()
}

impl EndpointStats {
    #[inline]
    pub(crate) fn start(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn end(&self, latency_ns: u64, now_ns: u64) {
        // Saturating: an unpaired end must not wrap the count.
        let _ = self
            .in_flight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        let sample = latency_ns as f64;
        let mut current = self.ewma.load(Ordering::Relaxed);
        loop {
            let next = if current == UNSET {
                sample
            } else {
                let last = self.stamp.load(Ordering::Relaxed);
                let w = weight(now_ns.saturating_sub(last));
                f64::from_bits(current) * w + sample * (1.0 - w)
            };
            match self.ewma.compare_exchange_weak(
                current,
                next.to_bits(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
        self.stamp.fetch_max(now_ns, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The average latency decayed to `now_ns`; `None` before the first sample.
    #[inline]
    pub(crate) fn ewma_at(&self, now_ns: u64) -> Option<f64> {
        let bits = self.ewma.load(Ordering::Relaxed);
        if bits == UNSET {
            return None;
        }
        let last = self.stamp.load(Ordering::Relaxed);
        Some(f64::from_bits(bits) * weight(now_ns.saturating_sub(last)))
    }

    /// Slow start: give an endpoint with no sample the average `ewma_ns` as of
    /// `now_ns` (ingress-nginx gives a new endpoint the mean of the others).
    pub(crate) fn seed(&self, ewma_ns: f64, now_ns: u64) {
        if self
            .ewma
            .compare_exchange(
                UNSET,
                ewma_ns.to_bits(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_ok()
        {
            self.stamp.store(now_ns, Ordering::Relaxed);
        }
    }
}

/// Which P2C score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Score {
    /// (in-flight + 1) × decayed EWMA.
    Ewma,
    /// In-flight requests.
    LeastRequest,
}

/// The score of one endpoint at `now_ns`; lower is better.
#[inline]
pub(crate) fn score(stats: &EndpointStats, kind: Score, now_ns: u64) -> f64 {
    let load = stats.in_flight() as f64;
    match kind {
        Score::LeastRequest => load,
        Score::Ewma => (load + 1.0) * stats.ewma_at(now_ns).unwrap_or(0.0).max(1.0),
    }
}

/// `⌊r × n / 2⁶⁴⌋`: a uniform index below `n` from 64 random bits (Lemire's
/// multiply-shift; no division).
#[inline]
pub(crate) fn below(r: u64, n: usize) -> usize {
    ((u128::from(r) * n as u128) >> 64) as usize
}

/// The ranks (among the `avail` available endpoints) of the two P2C candidates:
/// distinct when `avail >= 2`, the first from the high half of `random`, the
/// second from the low half.
#[inline]
pub(crate) fn candidate_ranks(random: u64, avail: usize) -> (usize, usize) {
    let a = below(random, avail);
    if avail < 2 {
        return (a, a);
    }
    let b = below(random.rotate_left(32), avail - 1);
    (a, if b >= a { b + 1 } else { b })
}

/// The two P2C candidates as endpoint indexes.
#[inline]
pub(crate) fn candidates(
    random: u64,
    n: usize,
    avail: usize,
    avoid: &EndpointSet,
) -> Option<(usize, usize)> {
    let (a, b) = candidate_ranks(random, avail);
    Some((avoid.nth_free(n, a)?, avoid.nth_free(n, b)?))
}

/// Power of two choices over `stats` (one per endpoint).
#[inline]
pub(crate) fn pick(
    stats: &[Arc<EndpointStats>],
    kind: Score,
    random: u64,
    now_ns: u64,
    avail: usize,
    avoid: &EndpointSet,
) -> Option<usize> {
    let (a, b) = candidates(random, stats.len(), avail, avoid)?;
    if a == b {
        return Some(a);
    }
    let (sa, sb) = (
        score(&stats[a], kind, now_ns),
        score(&stats[b], kind, now_ns),
    );
    Some(if sb < sa { b } else { a })
}

/// A uniformly random available endpoint.
#[inline]
pub(crate) fn random(random: u64, n: usize, avail: usize, avoid: &EndpointSet) -> Option<usize> {
    avoid.nth_free(n, below(random, avail))
}
