//! A shared HTTP cache (RFC 9111) for plain-HTTP `GET` and `HEAD`.
//!
//! Every decision about freshness, storability, `Vary`, `Authorization` and
//! revalidation is made by `http-cache-semantics` in shared-cache mode with
//! heuristic freshness switched off; this module only keeps the bytes and the
//! counters. [`HttpCache::lookup`] answers a request from the store, asks the
//! caller to revalidate, or hands out a [`Fill`] that turns the origin's
//! response into a stored entry while it streams to the client ([`tee`]).
//! Concurrent misses for one URI wait for the first one's fetch (collapsed
//! forwarding) instead of all reaching the origin.
//!
//! HTTPS inside `CONNECT` is end-to-end encrypted: the cache never sees it.

mod disk;
mod key;
mod memory;
mod stats;
mod tee;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderName, HeaderValue, Method, Response, StatusCode, header};
use http_body::Body as _;
use http_body_util::{BodyExt, Empty, Full};
use http_cache_semantics::{AfterResponse, BeforeRequest, CacheOptions, CachePolicy};
use tokio::sync::watch;

use crate::outbound::Body;
use disk::DiskTier;
use memory::MemoryTier;
use stats::{CacheCounters, Cause, TierStats};
pub use stats::{CacheStats, Invalidations};

/// Stored request and response heads together at most: a response whose
/// heads are larger passes through unstored (counted as too large). Heads
/// are weighed against `memory_bytes` with the body; this keeps one entry's
/// head from crowding out many bodies.
const MAX_HEAD_BYTES: u64 = 64 * 1024;

/// How long a request waits for another request's fetch of the same URI
/// to make progress before going to the origin itself: the fetch stalled.
/// (A client that stops reading does not stall it: the origin's body is
/// read for the cache by a task of its own, see [`tee`].)
const COLLAPSE_STALL: Duration = Duration::from_secs(5);
/// How long a request waits for another's fetch at most, progress or not.
const COLLAPSE_WAIT: Duration = Duration::from_secs(60);

/// Limits and switches of the HTTP cache.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    pub enabled: bool,
    /// Bound of the memory tier.
    pub memory_bytes: u64,
    /// Bound of the disk tier (used when `dir` is set).
    pub disk_bytes: u64,
    /// Larger responses pass through without being stored.
    pub max_object_bytes: u64,
    /// Directory of the disk tier; `None` keeps the cache in memory only.
    pub dir: Option<PathBuf>,
    /// Serve a response stored through one route (direct, or a set of
    /// upstreams) to requests that now take another. Off: switching exits
    /// does not replay what the old exit served.
    pub share_across_routes: bool,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            memory_bytes: 64 << 20,
            disk_bytes: 1 << 30,
            max_object_bytes: 8 << 20,
            dir: None,
            share_across_routes: false,
        }
    }
}

/// One stored response: its policy (which holds the response head and the
/// request headers it was stored for) and its body.
#[derive(Debug)]
pub struct Entry {
    policy: CachePolicy,
    /// Request headers the response varies on, from its `Vary`.
    vary: Vec<HeaderName>,
    body: Bytes,
    /// The origin's `Date`, served as it came (RFC 9111 5.1: only `Age` is
    /// the cache's own; the policy crate would put "now" there). When the
    /// origin sent none, the time it arrived, as RFC 9110 6.6.1 asks.
    date: HeaderValue,
    /// The origin's status. The policy may hold 200 in its place (see
    /// [`policy_status`]); what is served is always this. `None` for entries
    /// written to disk before it was kept: their policy has the real one.
    status: Option<StatusCode>,
    /// The route the response came through (see [`HttpCache::route_id`]);
    /// `None` for entries written to disk before it was kept.
    route: Option<String>,
}

/// The status the cache-semantics crate is shown. RFC 9111 section 3 lets a
/// cache store any final status it understands when the response says how
/// long it is fresh; the crate only knows a short list (no 299, 400, 500,
/// 502, 503, 504...). Such a response with explicit freshness is shown to
/// the crate as a 200, so the usual rules decide, and keeps its real status
/// in the entry. Partial (206) and 304 responses, and 1xx, are never stored.
fn policy_status(status: StatusCode, headers: &http::HeaderMap) -> StatusCode {
    const KNOWN: &[u16] = &[
        200, 203, 204, 300, 301, 302, 303, 307, 308, 404, 405, 410, 414, 501,
    ];
    let explicit = headers.contains_key(header::EXPIRES)
        || headers
            .get_all(header::CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|d| {
                let name = d.split('=').next().unwrap_or_default().trim();
                name == "max-age" || name == "s-maxage"
            });
    let code = status.as_u16();
    if explicit && code >= 200 && !KNOWN.contains(&code) && code != 206 && code != 304 {
        StatusCode::OK
    } else {
        status
    }
}

/// The `Date` to keep for a response received now.
fn date_of(headers: &http::HeaderMap) -> HeaderValue {
    headers.get(header::DATE).cloned().unwrap_or_else(|| {
        HeaderValue::from_str(&httpdate::fmt_http_date(SystemTime::now()))
            .unwrap_or_else(|_| HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"))
    })
}

fn options() -> CacheOptions {
    CacheOptions {
        shared: true,
        // RFC 9111 4.2.2 allows heuristic freshness; Veil does not use it.
        cache_heuristic: 0.0,
        ..CacheOptions::default()
    }
}

/// The shared cache of one engine.
#[derive(Debug)]
pub struct HttpCache {
    enabled: AtomicBool,
    share_across_routes: AtomicBool,
    max_object_bytes: u64,
    memory: MemoryTier,
    disk: Option<Arc<DiskTier>>,
    inflight: Mutex<HashMap<String, watch::Receiver<u64>>>,
    /// Bumped by `clear` and `purge`: a fill that began before stores
    /// nothing, so a response still streaming (its store runs when the body
    /// ends) cannot bring back what an unsafe method or a purge removed.
    /// What purges and clears have happened, so a fill that began before
    /// one stores nothing (see [`Epochs`]).
    epochs: Epochs,
    counters: CacheCounters,
    /// Salts the digests of `Authorization` and `Cookie` in keys: stored in
    /// the disk tier's directory (so it outlives a restart, as the entries
    /// do), else new for each run.
    salt: key::Salt,
}

/// Invalidation counters: one for everything (`clear`) and one per URL
/// (`purge`, an unsafe method). A fill notes both when it begins and stores
/// only if neither moved, and checks again after storing (undoing the store
/// if one moved meanwhile), so the outcome does not depend on how a store
/// and an invalidation interleave. Per URL, so a POST to one URL never stops
/// responses to others from being stored.
#[derive(Debug, Default)]
struct Epochs {
    all: AtomicU64,
    urls: std::sync::Mutex<std::collections::HashMap<String, u64>>,
}

/// URLs with their own counter at most; past that the map starts over and
/// `all` moves, which only costs fills in flight their store.
const EPOCH_URLS: usize = 16 * 1024;

impl Epochs {
    fn of(&self, primary: &str) -> (u64, u64) {
        let urls = self.urls.lock().unwrap_or_else(|e| e.into_inner());
        (
            self.all.load(Ordering::SeqCst),
            urls.get(primary).copied().unwrap_or(0),
        )
    }

    fn bump(&self, primary: &str) {
        let mut urls = self.urls.lock().unwrap_or_else(|e| e.into_inner());
        if urls.len() >= EPOCH_URLS && !urls.contains_key(primary) {
            urls.clear();
            self.all.fetch_add(1, Ordering::SeqCst);
        }
        *urls.entry(primary.to_owned()).or_insert(0) += 1;
    }

    fn bump_all(&self) {
        let _urls = self.urls.lock().unwrap_or_else(|e| e.into_inner());
        self.all.fetch_add(1, Ordering::SeqCst);
    }
}

/// What to do with a request, after looking in the cache.
pub enum Lookup {
    /// Not a request the cache handles: forward it as usual.
    Bypass,
    /// Send this to the client; the origin is not asked.
    Serve(Response<Body>),
    /// A stored response needs revalidation: send `request` (conditional) to
    /// the origin and pass its answer to [`HttpCache::revalidated`].
    Revalidate {
        request: Box<Parts>,
        stale: Box<Stale>,
    },
    /// Nothing usable stored: forward the request and pass the response
    /// through [`Fill::response`].
    Miss(Box<Fill>),
}

/// A stored entry awaiting the origin's verdict.
pub struct Stale {
    entry: Arc<Entry>,
    fill: Fill,
    /// The client's own request, to fetch in full when the origin's 304
    /// cannot be matched to the stored response.
    original: Parts,
}

/// The outcome of a revalidation.
pub enum Revalidated {
    /// Send this to the client.
    Done(Response<Body>),
    /// The origin answered 304 to a request Veil made on its own behalf, and
    /// the 304 does not match the stored response (another strong
    /// validator, RFC 9111 4.3.4): nothing can be updated, and the client
    /// asked for a full response. Send `request` (the client's own) and pass
    /// the answer through [`Fill::response`].
    Refetch {
        request: Box<Parts>,
        fill: Box<Fill>,
    },
}

/// The right to store the origin's response to one request.
pub struct Fill {
    cache: Arc<HttpCache>,
    primary: String,
    view: Parts,
    /// The invalidation counters when the fill began.
    epoch: (u64, u64),
    /// A revalidation's fill: the stored response it would replace is out
    /// of date whatever the new response is.
    replacing: bool,
    /// The route the response comes through, kept with the entry.
    route: String,
    /// Held by the first of concurrent misses; waiters wake when it drops.
    leader: Option<Leader>,
}

struct Leader {
    cache: Arc<HttpCache>,
    primary: String,
    /// Body bytes received so far; waiters watch it move. Dropped (which
    /// wakes them for good) when the fetch ends one way or another.
    progress: watch::Sender<u64>,
}

impl Drop for Leader {
    fn drop(&mut self) {
        // Remove first, so a waiter that wakes finds no stale in-flight mark.
        self.cache
            .inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.primary);
    }
}

impl HttpCache {
    /// Builds the cache; with a directory, opens the disk tier and indexes
    /// what an earlier run stored. A disk tier that cannot be opened is
    /// logged and left out: the memory tier still works.
    pub async fn open(config: &CacheConfig) -> Arc<Self> {
        let salt = match &config.dir {
            Some(dir) => {
                let dir = dir.clone();
                match tokio::task::spawn_blocking(move || disk::salt(&dir)).await {
                    Ok(Ok(salt)) => salt,
                    Ok(Err(e)) => {
                        tracing::warn!(dir = ?config.dir, "HTTP cache salt unavailable: {e}");
                        key::random_salt()
                    }
                    Err(e) => {
                        tracing::warn!("HTTP cache salt unavailable: {e}");
                        key::random_salt()
                    }
                }
            }
            None => key::random_salt(),
        };
        let disk = match &config.dir {
            Some(dir) if config.disk_bytes > 0 => {
                let (dir, max) = (dir.clone(), config.disk_bytes);
                let opened =
                    tokio::task::spawn_blocking(move || DiskTier::open(&dir, max).map(Arc::new))
                        .await;
                match opened {
                    Ok(Ok(disk)) => Some(disk),
                    Ok(Err(e)) => {
                        tracing::warn!(dir = ?config.dir, "HTTP cache on disk unavailable: {e}");
                        None
                    }
                    Err(e) => {
                        tracing::warn!("HTTP cache on disk unavailable: {e}");
                        None
                    }
                }
            }
            _ => None,
        };
        Arc::new(Self {
            enabled: AtomicBool::new(config.enabled),
            share_across_routes: AtomicBool::new(config.share_across_routes),
            max_object_bytes: config.max_object_bytes,
            memory: MemoryTier::new(config.memory_bytes),
            disk,
            inflight: Mutex::new(HashMap::new()),
            epochs: Epochs::default(),
            counters: CacheCounters::default(),
            salt,
        })
    }

    /// Runs `f` on the disk tier off the async runtime; `None` without one.
    async fn on_disk<T: Send + 'static>(
        &self,
        f: impl FnOnce(&DiskTier) -> T + Send + 'static,
    ) -> Option<T> {
        let disk = self.disk.clone()?;
        tokio::task::spawn_blocking(move || f(&disk)).await.ok()
    }

    /// The stored variant for a request, from memory or else from disk
    /// (moved up into memory), with whether it came from disk.
    async fn stored(&self, primary: &str, view: &Parts) -> Option<(Arc<Entry>, bool)> {
        if let Some(entry) = self.memory.get(primary, &view.headers).await {
            return Some((entry, false));
        }
        let (p, headers) = (primary.to_owned(), view.headers.clone());
        match self.on_disk(move |d| d.get(&p, &headers)).await? {
            Ok(Some(entry)) => {
                let entry = Arc::new(entry);
                self.memory
                    .insert(primary, entry.vary.clone(), &view.headers, entry.clone())
                    .await;
                Some((entry, true))
            }
            Ok(None) => None,
            Err(disk::Corrupt) => {
                CacheCounters::add(&self.counters.corrupt_dropped, 1);
                None
            }
        }
    }

    pub fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Ordering::Relaxed);
    }

    pub fn set_share_across_routes(&self, share: bool) {
        self.share_across_routes.store(share, Ordering::Relaxed);
    }

    /// A route's identity as entries keep it: a salted digest of its
    /// description (`direct`, or the upstreams' URLs), so the cache
    /// directory names no upstream.
    pub fn route_id(&self, route: &str) -> String {
        use sha2::Digest;
        let mut digest = sha2::Sha256::new();
        digest.update(self.salt);
        digest.update(route.as_bytes());
        digest.finalize()[..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    pub async fn clear(&self) {
        self.counters.invalidations.add(Cause::Clear);
        self.epochs.bump_all();
        self.memory.clear().await;
        self.on_disk(|d| d.clear()).await;
    }

    /// Drops every stored variant of `uri` (an absolute `http://` URL), at
    /// the user's request.
    pub async fn purge(&self, uri: &http::Uri) {
        self.invalidate(uri.to_string(), Cause::Purge).await;
    }

    /// Drops every stored variant of `primary`, counted under `cause`.
    async fn invalidate(&self, primary: String, cause: Cause) {
        self.counters.invalidations.add(cause);
        self.epochs.bump(&primary);
        self.memory.remove(&primary).await;
        self.on_disk(move |d| d.remove(&primary)).await;
    }

    /// After an unsafe method succeeded, the stored responses for its target
    /// are out of date, and so are those of the URLs in the response's
    /// `Location` and `Content-Location` when they are on the same origin
    /// (RFC 9111, section 4.4: never another origin's, which the response
    /// has no say over).
    pub async fn invalidate_after(
        &self,
        method: &Method,
        uri: &http::Uri,
        status: StatusCode,
        headers: &http::HeaderMap,
    ) {
        let unsafe_method = !matches!(
            *method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
        );
        if !(unsafe_method && (status.is_success() || status.is_redirection())) {
            return;
        }
        self.invalidate(uri.to_string(), Cause::UnsafeMethod).await;
        let mut targets: Vec<String> = Vec::new();
        for name in [header::LOCATION, header::CONTENT_LOCATION] {
            if let Some(target) = headers
                .get(&name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| same_origin_target(uri, v))
                && target != uri.to_string()
                && !targets.contains(&target)
            {
                targets.push(target);
            }
        }
        for target in targets {
            self.invalidate(target, Cause::Location).await;
        }
    }

    pub fn stats(&self) -> CacheStats {
        self.counters.snapshot(
            self.is_enabled(),
            TierStats {
                memory_objects: self.memory.objects(),
                memory_bytes: self.memory.bytes(),
                disk_objects: self.disk.as_ref().map_or(0, |d| d.objects()),
                disk_bytes: self.disk.as_ref().map_or(0, |d| d.bytes()),
                disk_index_bytes: self.disk.as_ref().map_or(0, |d| d.index_bytes()),
            },
        )
    }

    /// Looks `parts` up. Only `GET` and `HEAD` without `Range` take part;
    /// everything else is [`Lookup::Bypass`].
    ///
    /// `route` is [`HttpCache::route_id`] of the way this request goes out:
    /// unless sharing across routes is on, a response stored through another
    /// route is not used (a miss), and the fetch through this one replaces
    /// it. Kept per URL rather than per route, so switching back and forth
    /// never serves what one exit sent to requests taking the other, and the
    /// cache holds one copy.
    pub async fn lookup(self: &Arc<Self>, parts: &Parts, route: &str) -> Lookup {
        let head = parts.method == Method::HEAD;
        if !self.is_enabled()
            || !(head || parts.method == Method::GET)
            || parts.headers.contains_key(header::RANGE)
        {
            return Lookup::Bypass;
        }
        let view = key::policy_view(parts, &self.salt);
        let primary = key::primary(parts);
        let mut waited = false;
        let share = self.share_across_routes.load(Ordering::Relaxed);
        loop {
            let stored = self.stored(&primary, &view).await.filter(|(entry, _)| {
                let same = share || entry.route.as_deref() == Some(route);
                if !same {
                    self.counters.invalidations.add(Cause::RouteChange);
                }
                same
            });
            if let Some((entry, from_disk)) = stored {
                match entry.policy.before_request(&view, SystemTime::now()) {
                    BeforeRequest::Fresh(mut head_parts) => {
                        head_parts.headers.insert(header::DATE, entry.date.clone());
                        if let Some(status) = entry.status {
                            head_parts.status = status;
                        }
                        let tier = if from_disk {
                            &self.counters.hits_disk
                        } else {
                            &self.counters.hits_memory
                        };
                        CacheCounters::add(tier, 1);
                        if waited {
                            CacheCounters::add(&self.counters.collapsed, 1);
                        }
                        if etag_matches(parts, &head_parts) || unmodified_since(parts, &head_parts)
                        {
                            // RFC 9111 4.3.2: the client's own validator
                            // matches the stored response.
                            return Lookup::Serve(not_modified(head_parts));
                        }
                        return Lookup::Serve(self.serve(head_parts, &entry.body, head));
                    }
                    BeforeRequest::Stale {
                        mut request,
                        matches: true,
                    } if !head && !only_if_cached(parts) => {
                        key::restore_secrets(&mut request, parts);
                        // Collapse revalidations of an entry that expired: its
                        // answer is likely fresh for the others too. One that
                        // never had freshness (no-cache, validators only)
                        // is revalidated by every request anyway, so waiting
                        // would only queue them up behind each other.
                        let collapse = had_freshness(&entry.policy);
                        let leader = match self.lead_or_wait(&primary) {
                            Ok(leader) => Some(leader),
                            Err(rx) if collapse && !waited => {
                                waited = true;
                                wait_for(rx).await;
                                continue;
                            }
                            Err(_) => None,
                        };
                        let mut fill = self.fill(primary, view, leader, route);
                        fill.replacing = true;
                        return Lookup::Revalidate {
                            request: Box::new(request),
                            stale: Box::new(Stale {
                                entry,
                                fill,
                                original: clone_parts(parts),
                            }),
                        };
                    }
                    BeforeRequest::Stale { .. } => {}
                }
            }
            if head || only_if_cached(parts) {
                // These never fetch for the cache themselves, but a fetch in
                // flight (or a body still being stored) may answer them.
                let pending = self
                    .inflight
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&primary)
                    .cloned();
                if let (false, Some(rx)) = (waited, pending) {
                    waited = true;
                    wait_for(rx).await;
                    continue;
                }
            }
            if only_if_cached(parts) {
                // RFC 9111, section 5.2.1.7.
                return Lookup::Serve(gateway_timeout());
            }
            if head {
                // A HEAD response has no body to store: forward it as is.
                CacheCounters::add(&self.counters.misses, 1);
                return Lookup::Bypass;
            }
            if waited {
                CacheCounters::add(&self.counters.misses, 1);
                return Lookup::Miss(Box::new(self.fill(primary, view, None, route)));
            }
            match self.lead_or_wait(&primary) {
                Ok(leader) => {
                    CacheCounters::add(&self.counters.misses, 1);
                    return Lookup::Miss(Box::new(self.fill(primary, view, Some(leader), route)));
                }
                Err(rx) => wait_for(rx).await,
            }
            waited = true;
        }
    }

    /// Marks `primary` as being fetched, or hands out a way to wait for the
    /// request already fetching it.
    fn lead_or_wait(self: &Arc<Self>, primary: &str) -> Result<Leader, watch::Receiver<u64>> {
        let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(rx) = inflight.get(primary) {
            return Err(rx.clone());
        }
        let (tx, rx) = watch::channel(0);
        inflight.insert(primary.to_owned(), rx);
        Ok(Leader {
            cache: self.clone(),
            primary: primary.to_owned(),
            progress: tx,
        })
    }

    fn fill(
        self: &Arc<Self>,
        primary: String,
        view: Parts,
        leader: Option<Leader>,
        route: &str,
    ) -> Fill {
        Fill {
            route: route.to_owned(),
            cache: self.clone(),
            epoch: self.epochs.of(&primary),
            replacing: false,
            primary,
            view,
            leader,
        }
    }

    fn serve(&self, head: http::response::Parts, body: &Bytes, head_only: bool) -> Response<Body> {
        if head_only {
            return Response::from_parts(head, empty());
        }
        let n = body.len() as u64;
        CacheCounters::add(&self.counters.bytes_served, n);
        CacheCounters::add(&self.counters.bytes_saved, n);
        Response::from_parts(head, full(body.clone()))
    }

    /// Turns the origin's answer to a revalidation into the client's
    /// response: the stored body with updated headers on 304 (RFC 9111,
    /// section 4.3.4), or the new response, stored in place of the old.
    pub async fn revalidated(&self, stale: Box<Stale>, response: Response<Body>) -> Revalidated {
        let Stale {
            entry,
            fill,
            original,
        } = *stale;
        let now = SystemTime::now();
        let (mut resp_parts, body) = response.into_parts();
        key::normalise_directives(&mut resp_parts.headers);
        resp_parts.headers = key::compact(&resp_parts.headers);
        match entry.policy.after_response(&fill.view, &resp_parts, now) {
            AfterResponse::NotModified(policy, mut head) => {
                CacheCounters::add(&self.counters.revalidated_not_modified, 1);
                let body_bytes = entry.body.clone();
                // The 304's Date updates the stored one (RFC 9111 4.3.4).
                let date = resp_parts
                    .headers
                    .get(header::DATE)
                    .cloned()
                    .unwrap_or_else(|| entry.date.clone());
                head.headers.insert(header::DATE, date.clone());
                if let Some(status) = entry.status {
                    head.status = status;
                }
                let fresh = Arc::new(Entry {
                    policy,
                    vary: entry.vary.clone(),
                    body: body_bytes.clone(),
                    date,
                    status: entry.status,
                    route: entry.route.clone(),
                });
                // Memory only: rewriting the whole body on disk for every 304
                // would cost more than the revalidation saved. After a
                // restart the older head on disk is revalidated again.
                fill.store_in_memory(fresh).await;
                Revalidated::Done(self.serve(head, &body_bytes, false))
            }
            AfterResponse::Modified(..) if resp_parts.status == StatusCode::NOT_MODIFIED => {
                // RFC 9111 4.3.4: a 304 that selects no stored response
                // updates nothing; the client, who asked nothing
                // conditional of its own, gets a full response.
                CacheCounters::add(&self.counters.revalidated_changed, 1);
                Revalidated::Refetch {
                    request: Box::new(original),
                    fill: Box::new(fill),
                }
            }
            AfterResponse::Modified(..) => {
                CacheCounters::add(&self.counters.revalidated_changed, 1);
                Revalidated::Done(fill.response(Response::from_parts(resp_parts, body)))
            }
        }
    }
}

impl Fill {
    /// Passes the origin's `response` on to the client, storing a copy as
    /// it streams when the policy allows and it fits the object limit.
    pub fn response(self, mut response: Response<Body>) -> Response<Body> {
        let now = SystemTime::now();
        key::normalise_directives(response.headers_mut());
        *response.headers_mut() = key::compact(response.headers());
        let status = response.status();
        let shown = policy_status(status, response.headers());
        let policy = if shown == status {
            CachePolicy::new_options(&self.view, &response, now, options())
        } else {
            let mut head = Response::new(()).into_parts().0;
            head.status = shown;
            head.headers = response.headers().clone();
            CachePolicy::new_options(&self.view, &head, now, options())
        };
        let headers = response.headers();
        let has_validator =
            headers.contains_key(header::ETAG) || headers.contains_key(header::LAST_MODIFIED);
        let storable = policy.is_storable()
            // Set-Cookie belongs to one user; a shared cache keeps none.
            && !headers.contains_key(header::SET_COOKIE)
            && (has_validator || !policy.time_to_live(now).is_zero());
        let vary = key::vary_names(headers);
        let (true, Some(vary)) = (storable, vary) else {
            if self.replacing && has_no_store(response.headers()) {
                // The origin's new answer says it may not be stored: the
                // old one must not be served again either.
                let (cache, primary) = (self.cache.clone(), self.primary.clone());
                tokio::spawn(async move { cache.invalidate(primary, Cause::NoStore).await });
            }
            return response;
        };
        if policy.stored_bytes() > MAX_HEAD_BYTES {
            CacheCounters::add(&self.cache.counters.too_large, 1);
            return response;
        }
        let limit = self.cache.max_object_bytes;
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit) {
            CacheCounters::add(&self.cache.counters.too_large, 1);
            return response;
        }
        let (parts, body) = response.into_parts();
        if body.is_end_stream() {
            // hyper may never poll an empty body: store it now.
            let entry = Arc::new(Entry {
                policy,
                vary,
                body: Bytes::new(),
                date: date_of(&parts.headers),
                status: Some(parts.status),
                route: Some(self.route.clone()),
            });
            tokio::spawn(self.store(entry));
            return Response::from_parts(parts, body);
        }
        let date = date_of(&parts.headers);
        let body = tee::TeeBody::spawn(body, limit, self, policy, vary, (date, parts.status));
        Response::from_parts(parts, body.boxed())
    }

    /// Whether an invalidation of this URL (or of everything) happened
    /// since the fill began.
    fn invalidated(&self) -> bool {
        self.cache.epochs.of(&self.primary) != self.epoch
    }

    /// Undoes a store that an invalidation overtook; `true` when it did.
    async fn undo_if_invalidated(&self) -> bool {
        if !self.invalidated() {
            return false;
        }
        let primary = self.primary.clone();
        self.cache.memory.remove(&primary).await;
        self.cache.on_disk(move |d| d.remove(&primary)).await;
        true
    }

    async fn store_in_memory(self, entry: Arc<Entry>) {
        let cache = &self.cache;
        if self.invalidated() {
            return;
        }
        let vary = entry.vary.clone();
        cache
            .memory
            .insert(&self.primary, vary, &self.view.headers, entry)
            .await;
        self.undo_if_invalidated().await;
    }

    async fn store(self, entry: Arc<Entry>) {
        let cache = &self.cache;
        if self.invalidated() {
            return;
        }
        // Disk first: a request that finds the entry in memory no longer
        // waits, and by then the copy on disk should be complete too.
        let (primary, headers, copy) = (
            self.primary.clone(),
            self.view.headers.clone(),
            entry.clone(),
        );
        let written = cache
            .on_disk(move |d| d.insert(&primary, &headers, &copy))
            .await;
        if let Some(Err(e)) = written {
            CacheCounters::add(&cache.counters.disk_write_errors, 1);
            tracing::warn!("cannot write to the HTTP cache on disk: {e}");
        }
        let vary = entry.vary.clone();
        cache
            .memory
            .insert(&self.primary, vary, &self.view.headers, entry)
            .await;
        if !self.undo_if_invalidated().await {
            CacheCounters::add(&cache.counters.stored, 1);
        }
        // Dropping `self` now releases the waiters of collapsed forwarding,
        // after the entry is in place.
    }

    /// Tells the waiters the fetch is moving: `bytes` of body so far.
    fn progress(&self, bytes: u64) {
        if let Some(leader) = &self.leader {
            leader.progress.send_replace(bytes);
        }
    }

    fn too_large(&self) {
        CacheCounters::add(&self.cache.counters.too_large, 1);
    }
}

/// `reference` (a `Location` or `Content-Location` value) resolved against
/// `base` when it is an absolute URL or an absolute path on `base`'s origin;
/// `None` for another origin or a form not resolved here (relative paths).
fn same_origin_target(base: &http::Uri, reference: &str) -> Option<String> {
    let reference = reference.trim();
    let target: http::Uri = if reference.starts_with('/') && !reference.starts_with("//") {
        format!(
            "{}://{}{}",
            base.scheme_str()?,
            base.authority()?.as_str(),
            reference
        )
        .parse()
        .ok()?
    } else {
        reference.parse().ok()?
    };
    let same = target.scheme() == base.scheme()
        && target.authority().map(|a| a.as_str().to_ascii_lowercase())
            == base.authority().map(|a| a.as_str().to_ascii_lowercase());
    same.then(|| target.to_string())
}

fn clone_parts(parts: &Parts) -> Parts {
    let mut req = http::Request::new(());
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = parts.uri.clone();
    *req.version_mut() = parts.version;
    *req.headers_mut() = parts.headers.clone();
    req.into_parts().0
}

/// Whether the stored response was fresh for any time when it arrived.
fn had_freshness(policy: &CachePolicy) -> bool {
    // At a time before the response arrived, its age is only its `Age`
    // header, so this is its freshness lifetime as received.
    !policy.time_to_live(std::time::UNIX_EPOCH).is_zero()
}

/// True when the request's `If-None-Match` names the stored `ETag` (weak
/// comparison, RFC 9110 13.1.2) or is `*`.
fn etag_matches(req: &Parts, stored: &http::response::Parts) -> bool {
    let Some(etag) = stored
        .headers
        .get(header::ETAG)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let weak = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    let etag = weak(etag);
    req.headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == "*" || weak(t) == etag)
}

/// True when the request's `If-Modified-Since` is at or after the stored
/// response's `Last-Modified` (else its `Date`), and it sent no
/// `If-None-Match`, which takes precedence (RFC 9110 13.1.3, RFC 9111
/// 4.3.2). Dates in any of HTTP's three formats.
fn unmodified_since(req: &Parts, stored: &http::response::Parts) -> bool {
    if req.headers.contains_key(header::IF_NONE_MATCH) {
        return false;
    }
    let date = |v: Option<&HeaderValue>| {
        v.and_then(|v| v.to_str().ok())
            .and_then(http_cache_semantics::parse_http_date)
    };
    let Some(since) = date(req.headers.get(header::IF_MODIFIED_SINCE)) else {
        return false;
    };
    let last = date(stored.headers.get(header::LAST_MODIFIED))
        .or_else(|| date(stored.headers.get(header::DATE)));
    last.is_some_and(|last| last <= since)
}

/// A 304 for a client whose copy is current: the stored head without the
/// body's framing.
fn not_modified(mut head: http::response::Parts) -> Response<Body> {
    head.status = StatusCode::NOT_MODIFIED;
    head.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(head, empty())
}

/// Waits until the leading request's fetch ends one way or another, or
/// makes no progress for [`COLLAPSE_STALL`], or [`COLLAPSE_WAIT`] passed.
async fn wait_for(mut rx: watch::Receiver<u64>) {
    let watch = async {
        // `changed` fails once the leader is dropped: the fetch ended.
        while let Ok(Ok(())) = tokio::time::timeout(COLLAPSE_STALL, rx.changed()).await {}
    };
    let _ = tokio::time::timeout(COLLAPSE_WAIT, watch).await;
}

/// `Cache-Control: no-store` in a response (directives already normalised
/// to lower case).
fn has_no_store(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|d| d.trim() == "no-store")
}

fn only_if_cached(parts: &Parts) -> bool {
    parts
        .headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|d| d.trim().eq_ignore_ascii_case("only-if-cached"))
}

fn gateway_timeout() -> Response<Body> {
    let mut resp = Response::new(full(Bytes::from_static(
        b"Not in Veil's cache, and the request asked for a cached response only.\n",
    )));
    *resp.status_mut() = StatusCode::GATEWAY_TIMEOUT;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// The disk tier, for the fuzz target that feeds it stored files.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    pub use super::disk::DiskTier;
}
