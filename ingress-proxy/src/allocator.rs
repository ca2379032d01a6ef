//! The allocator's own figures: jemalloc's statistics, for the admin listener's
//! `/metrics` (`ingress_proxy_allocator_*_bytes`), when jemalloc is the process's
//! global allocator (the `ingress-proxy` binary with the `jemalloc` feature, the
//! default). They tell memory the proxy uses (`allocated`) from memory the
//! allocator keeps for it (`active`, `resident`) or for itself (`metadata`), and
//! from address space it keeps without memory behind it (`retained`). And the
//! binary's one allocator setting, [`set_dirty_decay`].

use std::time::Duration;

/// The dirty decay the `ingress-proxy` binary sets at start ([`set_dirty_decay`]):
/// freed pages go back to the system within about 1 s of the proxy going idle,
/// instead of jemalloc's default 10 s (the hardening checklist's T52 reads the
/// RSS 10 s after a burst of connections closed).
pub const DIRTY_DECAY: Duration = Duration::from_secs(1);

/// jemalloc's statistics, in bytes, as of one read (`stats.*` after an epoch
/// advance; see jemalloc's manual for each).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AllocatorStats {
    /// Bytes the program has allocated and not freed (`stats.allocated`).
    pub allocated: u64,
    /// Bytes in pages holding allocations (`stats.active`): `allocated` plus
    /// the free space of partly used pages.
    pub active: u64,
    /// Bytes in pages the allocator has written and not returned to the system
    /// (`stats.resident`): `active`, the allocator's metadata, and freed pages
    /// not yet purged. The part of the process's RSS the allocator answers for.
    pub resident: u64,
    /// Bytes in extents mapped for allocations (`stats.mapped`).
    pub mapped: u64,
    /// Bytes of the allocator's own metadata (`stats.metadata`), never returned.
    pub metadata: u64,
    /// Bytes of address space kept mapped after its pages were returned to the
    /// system (`stats.retained`): virtual memory only, not in RSS.
    pub retained: u64,
}

/// jemalloc's statistics now, or `None` when they cannot be read (the binary was
/// built without the `jemalloc` feature). Meaningful only in a process whose
/// global allocator is jemalloc: elsewhere they describe an allocator nothing uses.
pub fn stats() -> Option<AllocatorStats> {
    imp::stats()
}

/// Have jemalloc return freed ("dirty") pages to the system over `decay` rather
/// than its default 10 s, for the arenas that exist (`arena.<i>.dirty_decay_ms`)
/// and those made later (`arenas.dirty_decay_ms`); its background thread does the
/// purging. Returns whether it took effect: false without the `jemalloc` feature,
/// or when jemalloc refused it. Meaningful only where jemalloc is the global
/// allocator.
pub fn set_dirty_decay(decay: Duration) -> bool {
    imp::set_dirty_decay(decay)
}

/// The dirty decay arenas made from now on get (`arenas.dirty_decay_ms`), or `None`
/// when it cannot be read.
pub fn dirty_decay() -> Option<Duration> {
    imp::dirty_decay()
}

#[cfg(all(feature = "jemalloc", unix, not(target_env = "musl")))]
mod imp {
    use std::time::Duration;

    use tikv_jemalloc_ctl::{Access, AsName, arenas, epoch, stats};

    use super::AllocatorStats;

    pub(super) fn set_dirty_decay(decay: Duration) -> bool {
        let ms = isize::try_from(decay.as_millis()).unwrap_or(isize::MAX);
        if b"arenas.dirty_decay_ms\0".name().write(ms).is_err() {
            return false;
        }
        // Arenas not initialised yet refuse the write; they get the default above.
        let n = arenas::narenas::read().unwrap_or(0);
        for i in 0..n {
            let key = format!("arena.{i}.dirty_decay_ms\0");
            let _ = key.as_bytes().name().write(ms);
        }
        true
    }

    pub(super) fn dirty_decay() -> Option<Duration> {
        let ms: isize = b"arenas.dirty_decay_ms\0".name().read().ok()?;
        u64::try_from(ms).ok().map(Duration::from_millis)
    }

    pub(super) fn stats() -> Option<AllocatorStats> {
        // The statistics are a snapshot taken at an epoch advance.
        epoch::advance().ok()?;
        let read = |r: tikv_jemalloc_ctl::Result<usize>| r.ok().map(|v| v as u64);
        Some(AllocatorStats {
            allocated: read(stats::allocated::read())?,
            active: read(stats::active::read())?,
            resident: read(stats::resident::read())?,
            mapped: read(stats::mapped::read())?,
            metadata: read(stats::metadata::read())?,
            retained: read(stats::retained::read())?,
        })
    }
}

#[cfg(not(all(feature = "jemalloc", unix, not(target_env = "musl"))))]
mod imp {
    use std::time::Duration;

    use super::AllocatorStats;

    pub(super) fn stats() -> Option<AllocatorStats> {
        None
    }

    pub(super) fn set_dirty_decay(_: Duration) -> bool {
        false
    }

    pub(super) fn dirty_decay() -> Option<Duration> {
        None
    }
}
