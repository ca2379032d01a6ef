//! The allocator's own figures: jemalloc's statistics, for the admin listener's
//! `/metrics` (`ingress_proxy_allocator_*_bytes`), when jemalloc is the process's
//! global allocator (the `ingress-proxy` binary with the `jemalloc` feature, the
//! default). They tell memory the proxy uses (`allocated`) from memory the
//! allocator keeps for it (`active`, `resident`) or for itself (`metadata`), and
//! from address space it keeps without memory behind it (`retained`). And the
//! binary's allocator settings: [`set_dirty_decay`] and [`limit_thread_cache`].

use std::time::Duration;

/// The dirty decay the `ingress-proxy` binary sets at start ([`set_dirty_decay`]):
/// freed pages go back to the system within about 1 s of the proxy going idle,
/// instead of jemalloc's default 10 s (the hardening checklist's T52 reads the
/// RSS 10 s after a burst of connections closed).
pub const DIRTY_DECAY: Duration = Duration::from_secs(1);

/// What [`limit_thread_cache`] sets (`thread.tcache.ncached_max.write`): a
/// thread's cache keeps at most 2 freed objects of each size class from 1 KiB to
/// 4 KiB and from 8 KiB to 32 KiB, and jemalloc's default (20 or more) of the
/// others.
const THREAD_CACHE_SLOTS: &[u8] = b"1025-4096:2|8193-32768:2\0";

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

/// Have the calling thread's allocator cache (jemalloc's tcache) keep at most 2
/// freed objects of each size from 1 KiB to 4 KiB and from 8 KiB to 32 KiB,
/// instead of 20 or more. Objects in a thread's cache keep their pages in use:
/// after a burst of 10,000 connections closed (the hardening checklist's T52),
/// the worker threads' caches held scattered objects of a connection's sizes
/// (its task, its boxed state once it spoke, its buffers), and so about 1 MiB
/// of otherwise free pages, for good. The sizes a request allocates and frees
/// again (its handler, 8 KiB buffers) keep their full caches: the limit costs no
/// measurable instructions per request (`bench/proxy-callgrind.sh`), where
/// leaving objects over 1 KiB out of the cache altogether cost 10 %. Returns
/// whether it took effect (false without the `jemalloc` feature). The cache of
/// a size is emptied when its limit changes.
pub fn limit_thread_cache() -> bool {
    imp::set_thread_cache_slots(THREAD_CACHE_SLOTS)
}

/// Bytes the threads' caches hold (`stats.arenas.<all>.tcache_bytes`, as of an
/// epoch advance), or `None` when they cannot be read.
pub fn thread_cache_bytes() -> Option<u64> {
    imp::thread_cache_bytes()
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

    pub(super) fn set_thread_cache_slots(settings: &'static [u8]) -> bool {
        tikv_jemalloc_ctl::raw::write_str(b"thread.tcache.ncached_max.write\0", settings).is_ok()
    }

    pub(super) fn thread_cache_bytes() -> Option<u64> {
        epoch::advance().ok()?;
        let bytes: usize = b"stats.arenas.4096.tcache_bytes\0".name().read().ok()?;
        Some(bytes as u64)
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

    pub(super) fn set_thread_cache_slots(_: &'static [u8]) -> bool {
        false
    }

    pub(super) fn thread_cache_bytes() -> Option<u64> {
        None
    }
}
