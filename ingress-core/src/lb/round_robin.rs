//! Round robin: one shared cursor, endpoints in turn.
//!
//! ingress-nginx's default (`round_robin`). Every pick takes the next value of one
//! atomic cursor (`fetch_add`, no lock), so concurrent picks never get the same
//! turn and `n` consecutive picks visit each of `n` endpoints once. An avoided
//! endpoint is skipped: its turn goes to the next available endpoint after it, so
//! while an endpoint is avoided its successor gets its share too.
//!
//! The cursor is one cache line shared by every thread that picks from the same
//! [`super::Balancer`]; that is the price of exact turns.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::set::EndpointSet;

/// The shared cursor, alone on its cache line.
#[derive(Debug)]
#[repr(align(64))]
pub(crate) struct Cursor(AtomicUsize);

impl Cursor {
    /// A cursor whose first turn is endpoint `start` (modulo the count).
    pub(crate) fn new(start: usize) -> Cursor {
        Cursor(AtomicUsize::new(start))
    }

    /// The raw position (for handing over to the next table's balancer).
    pub(crate) fn position(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    /// Move the cursor to `position`.
    pub(crate) fn set(&self, position: usize) {
        self.0.store(position, Ordering::Relaxed);
    }

    /// The next endpoint of `0..n` not in `avoid`. The caller has checked that one
    /// exists (`n > 0`).
    #[inline]
    pub(crate) fn next(&self, n: usize, avoid: &EndpointSet) -> Option<usize> {
        let turn = self.0.fetch_add(1, Ordering::Relaxed) % n;
        if avoid.is_empty() || !avoid.contains(turn) {
            return Some(turn);
        }
        (1..n).map(|k| (turn + k) % n).find(|&i| !avoid.contains(i))
    }
}
