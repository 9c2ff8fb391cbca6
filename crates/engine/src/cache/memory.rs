//! The memory tier: a moka cache bounded by bytes (body, the request and
//! response heads the entry keeps, its key and a fixed overhead), evicting by its TinyLFU policy, and a small map from each URI to
//! the header names its stored response varies on.

use std::sync::Arc;

use http::{HeaderMap, HeaderName};
use moka::future::Cache;

use super::Entry;
use super::key;

/// Fixed cost charged per entry for its head and bookkeeping, so a flood of
/// empty bodies is still bounded.
const ENTRY_OVERHEAD: u64 = 512;
/// Bytes inserted without eviction having run, at most: moka evicts in
/// batches, and until it does the replaced and evicted values stay alive.
/// Without this, many mid-sized entries (say 60 KiB heads) inserted between
/// two batches took memory tens of MiB past the bound.
const SETTLE_BYTES: u64 = 1 << 20;
/// URIs whose `Vary` names are remembered.
const MAX_VARY_RECORDS: u64 = 65_536;

#[derive(Debug, Clone)]
pub struct MemoryTier {
    entries: Cache<String, Arc<Entry>>,
    vary: Cache<String, Arc<Vec<HeaderName>>>,
    /// Bytes inserted since eviction last ran (see [`SETTLE_BYTES`]).
    unsettled: Arc<std::sync::atomic::AtomicU64>,
}

impl MemoryTier {
    pub fn new(max_bytes: u64) -> Self {
        let entries = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|k: &String, e: &Arc<Entry>| {
                u32::try_from(e.weight() + k.len() as u64).unwrap_or(u32::MAX)
            })
            .support_invalidation_closures()
            .build();
        let vary = Cache::builder().max_capacity(MAX_VARY_RECORDS).build();
        Self {
            entries,
            vary,
            unsettled: Arc::default(),
        }
    }

    /// The stored variant of `primary` that `headers` select, if any.
    pub async fn get(&self, primary: &str, headers: &HeaderMap) -> Option<Arc<Entry>> {
        let key = self.variant_key(primary, headers).await;
        self.entries.get(&key).await
    }

    async fn variant_key(&self, primary: &str, headers: &HeaderMap) -> String {
        match self.vary.get(primary).await {
            Some(names) => key::variant(primary, &names, headers),
            None => primary.to_owned(),
        }
    }

    /// Stores `entry` as the variant of `primary` its request selected.
    pub async fn insert(
        &self,
        primary: &str,
        vary: Vec<HeaderName>,
        request: &HeaderMap,
        entry: Arc<Entry>,
    ) {
        let key = key::variant(primary, &vary, request);
        if vary.is_empty() {
            self.vary.invalidate(primary).await;
        } else {
            self.vary.insert(primary.to_owned(), Arc::new(vary)).await;
        }
        let weight = entry.weight() + key.len() as u64;
        self.entries.insert(key, entry).await;
        use std::sync::atomic::Ordering::Relaxed;
        if self.unsettled.fetch_add(weight, Relaxed) + weight >= SETTLE_BYTES {
            self.unsettled.store(0, Relaxed);
            self.entries.run_pending_tasks().await;
        }
    }

    /// Drops every variant of `primary`.
    pub async fn remove(&self, primary: &str) {
        self.vary.invalidate(primary).await;
        self.entries.invalidate(primary).await;
        let primary = primary.to_owned();
        // Only fails when closures were not enabled at build time; they are.
        let _ = self
            .entries
            .invalidate_entries_if(move |k, _| key::belongs_to(k, &primary));
        self.entries.run_pending_tasks().await;
    }

    pub async fn clear(&self) {
        self.entries.invalidate_all();
        self.vary.invalidate_all();
        self.entries.run_pending_tasks().await;
        self.vary.run_pending_tasks().await;
    }

    pub fn objects(&self) -> u64 {
        self.entries.entry_count()
    }

    pub fn bytes(&self) -> u64 {
        self.entries.weighted_size()
    }
}

impl Entry {
    /// What the entry costs in memory: body, stored heads, overhead.
    pub(super) fn weight(&self) -> u64 {
        self.body.len() as u64 + self.policy.stored_bytes() + ENTRY_OVERHEAD
    }
}
