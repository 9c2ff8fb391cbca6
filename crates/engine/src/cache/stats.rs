//! Cache counters: relaxed atomics, added to where the decision is made.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::{Deserialize, Serialize};

#[derive(Debug, Default)]
pub struct CacheCounters {
    pub hits_memory: AtomicU64,
    pub hits_disk: AtomicU64,
    pub misses: AtomicU64,
    pub revalidated_not_modified: AtomicU64,
    pub revalidated_changed: AtomicU64,
    pub collapsed: AtomicU64,
    pub bytes_served: AtomicU64,
    pub bytes_saved: AtomicU64,
    pub stored: AtomicU64,
    pub too_large: AtomicU64,
    pub corrupt_dropped: AtomicU64,
    pub disk_write_errors: AtomicU64,
    pub invalidations: InvalidationCounters,
}

/// Stored responses dropped (or refused), by what caused it.
#[derive(Debug, Default)]
pub struct InvalidationCounters {
    pub unsafe_method: AtomicU64,
    pub location: AtomicU64,
    pub route_change: AtomicU64,
    pub no_store: AtomicU64,
    pub purge: AtomicU64,
    pub clear: AtomicU64,
}

/// Why stored responses were invalidated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// A successful POST, PUT, DELETE... to the URL (RFC 9111 4.4).
    UnsafeMethod,
    /// The `Location` or `Content-Location` of such a response (4.4).
    Location,
    /// The route to the origin changed since the response was stored.
    RouteChange,
    /// The origin answered a revalidation with a response that may not be
    /// stored: the old one is out of date.
    NoStore,
    /// `veil cache purge URL`.
    Purge,
    /// `veil cache clear`.
    Clear,
}

impl InvalidationCounters {
    pub fn add(&self, cause: Cause) {
        let counter = match cause {
            Cause::UnsafeMethod => &self.unsafe_method,
            Cause::Location => &self.location,
            Cause::RouteChange => &self.route_change,
            Cause::NoStore => &self.no_store,
            Cause::Purge => &self.purge,
            Cause::Clear => &self.clear,
        };
        counter.fetch_add(1, Relaxed);
    }

    fn snapshot(&self) -> Invalidations {
        Invalidations {
            unsafe_method: self.unsafe_method.load(Relaxed),
            location: self.location.load(Relaxed),
            route_change: self.route_change.load(Relaxed),
            no_store: self.no_store.load(Relaxed),
            purge: self.purge.load(Relaxed),
            clear: self.clear.load(Relaxed),
        }
    }
}

/// Invalidations of stored responses, per cause.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Invalidations {
    /// A successful unsafe method (POST, PUT, DELETE...) to the URL.
    pub unsafe_method: u64,
    /// The `Location`/`Content-Location` target of such a response.
    pub location: u64,
    /// Stored through another route (upstream) than the request takes now,
    /// with sharing across routes off: refetched.
    pub route_change: u64,
    /// Replaced on revalidation by a response that may not be stored.
    pub no_store: u64,
    /// Purged by the user.
    pub purge: u64,
    /// Whole-cache clears by the user.
    pub clear: u64,
}

impl CacheCounters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub fn snapshot(&self, enabled: bool, tiers: TierStats) -> CacheStats {
        let hits_memory = self.hits_memory.load(Relaxed);
        let hits_disk = self.hits_disk.load(Relaxed);
        let not_modified = self.revalidated_not_modified.load(Relaxed);
        let changed = self.revalidated_changed.load(Relaxed);
        let misses = self.misses.load(Relaxed);
        let served_from_cache = hits_memory + hits_disk + not_modified;
        let lookups = served_from_cache + changed + misses;
        CacheStats {
            enabled,
            hits_memory,
            hits_disk,
            misses,
            revalidated_not_modified: not_modified,
            revalidated_changed: changed,
            collapsed: self.collapsed.load(Relaxed),
            stored: self.stored.load(Relaxed),
            too_large: self.too_large.load(Relaxed),
            corrupt_dropped: self.corrupt_dropped.load(Relaxed),
            bytes_served: self.bytes_served.load(Relaxed),
            origin_bytes_saved: self.bytes_saved.load(Relaxed),
            hit_ratio: if lookups == 0 {
                0.0
            } else {
                served_from_cache as f64 / lookups as f64
            },
            memory_objects: tiers.memory_objects,
            memory_bytes: tiers.memory_bytes,
            disk_objects: tiers.disk_objects,
            disk_bytes: tiers.disk_bytes,
            disk_index_bytes: tiers.disk_index_bytes,
            invalidations: self.invalidations.snapshot(),
            disk_write_errors: self.disk_write_errors.load(Relaxed),
        }
    }
}

/// What each tier holds right now.
#[derive(Debug, Clone, Copy, Default)]
pub struct TierStats {
    pub memory_objects: u64,
    pub memory_bytes: u64,
    pub disk_objects: u64,
    pub disk_bytes: u64,
    pub disk_index_bytes: u64,
}

/// The HTTP cache's counters, in the engine's stats snapshot.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CacheStats {
    pub enabled: bool,
    /// Fresh responses served from memory without asking the origin.
    pub hits_memory: u64,
    /// Fresh responses served from disk without asking the origin.
    pub hits_disk: u64,
    /// Cacheable requests (GET/HEAD) that found nothing usable stored.
    pub misses: u64,
    /// Stale entries the origin confirmed with 304 Not Modified.
    pub revalidated_not_modified: u64,
    /// Stale entries the origin replaced with a new response.
    pub revalidated_changed: u64,
    /// Requests that waited for another request's origin fetch.
    pub collapsed: u64,
    /// Responses written to the cache.
    pub stored: u64,
    /// Responses passed through because they were over the object limit.
    pub too_large: u64,
    /// Disk entries that failed their integrity check and were deleted.
    pub corrupt_dropped: u64,
    /// Body bytes sent to clients from the cache.
    pub bytes_served: u64,
    /// Body bytes the origin did not have to send (hits and 304s).
    pub origin_bytes_saved: u64,
    /// Hits and 304s over all cache lookups, 0 to 1.
    pub hit_ratio: f64,
    pub memory_objects: u64,
    pub memory_bytes: u64,
    pub disk_objects: u64,
    pub disk_bytes: u64,
    /// Memory of the disk tier's in-memory index (bounded at 16 MiB).
    #[serde(default)]
    pub disk_index_bytes: u64,
    /// Stored responses invalidated, per cause.
    #[serde(default)]
    pub invalidations: Invalidations,
    /// Responses the disk tier could not write (a full or failing disk):
    /// served all the same, and kept in memory only.
    #[serde(default)]
    pub disk_write_errors: u64,
}
