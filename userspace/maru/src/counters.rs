//! Operation counters of a store (lock-free).

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

/// Live counters, updated with relaxed atomics from any thread.
#[derive(Default)]
pub(crate) struct AtomicCounters {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub mmaps: AtomicU64,
    pub munmaps: AtomicU64,
    pub evictions: AtomicU64,
    pub ioctl_lookups: AtomicU64,
    pub stat_lookups: AtomicU64,
    pub stored: AtomicU64,
    pub deduplicated: AtomicU64,
    pub discarded: AtomicU64,
    pub deleted: AtomicU64,
    pub evicted: AtomicU64,
    pub usage_listings: AtomicU64,
}

impl AtomicCounters {
    pub(crate) fn snapshot(&self) -> Counters {
        Counters {
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            mmaps: self.mmaps.load(Relaxed),
            munmaps: self.munmaps.load(Relaxed),
            evictions: self.evictions.load(Relaxed),
            ioctl_lookups: self.ioctl_lookups.load(Relaxed),
            stat_lookups: self.stat_lookups.load(Relaxed),
            stored: self.stored.load(Relaxed),
            deduplicated: self.deduplicated.load(Relaxed),
            discarded: self.discarded.load(Relaxed),
            deleted: self.deleted.load(Relaxed),
            evicted: self.evicted.load(Relaxed),
            usage_listings: self.usage_listings.load(Relaxed),
        }
    }
}

/// A snapshot of a store's operation counters (since it was opened).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Retrievals served from the mapping cache.
    pub hits: u64,
    /// Retrievals that had to open and map the key.
    pub misses: u64,
    /// `mmap` calls of published keys (read-only mappings).
    pub mmaps: u64,
    /// Read-only mappings released (`munmap`).
    pub munmaps: u64,
    /// Cache entries dropped: capacity, deleted or re-created keys, trims.
    pub evictions: u64,
    /// Batched lookups done with one `MARUFS_IOC_LOOKUP` call each.
    pub ioctl_lookups: u64,
    /// Names looked up one by one with `fstatat` (no batched ioctl).
    pub stat_lookups: u64,
    /// Keys published by this store.
    pub stored: u64,
    /// Stores skipped because the key existed (deduplication).
    pub deduplicated: u64,
    /// Allocations discarded without publishing.
    pub discarded: u64,
    /// Keys deleted by this store.
    pub deleted: u64,
    /// Of those, keys deleted by eviction ([`Store::evict`](crate::Store::evict)).
    pub evicted: u64,
    /// Listings of the application to count its usage against the quota
    /// ([`Store::alloc_evicting`](crate::Store::alloc_evicting) lists only
    /// when its running figure is stale or near the high watermark).
    pub usage_listings: u64,
}
