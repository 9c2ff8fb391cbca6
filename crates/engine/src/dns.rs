//! The DNS cache used for direct traffic.
//!
//! Lookups go through hickory's resolver (system configuration and hosts file
//! by default) with its own cache turned off, so that this layer is the one
//! cache and its counters tell the truth. Entries live for the answer's TTL,
//! clamped to a sane range, and concurrent lookups of the same name wait for
//! one query (moka's `try_get_with`). Failures are not cached.
//!
//! Names of traffic routed to an upstream must never be looked up here: the
//! upstream resolves them. That is shown, not claimed: while a connection
//! routed to an upstream is being opened ([`for_upstream_traffic`]), every
//! lookup through [`DnsCache::lookup`] is counted in
//! [`DnsStats::proxied_lookups`] (and logged), which must read 0. The
//! upstream's own address is looked up through [`DnsCache::lookup_upstream`],
//! which is not traffic's name and is not counted. A lookup made from a task
//! spawned off the connection would escape the count; the one test that runs
//! Veil under strace covers that gap.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use moka::Expiry;
use moka::future::Cache;

use crate::EngineError;
use crate::stats::DnsStats;

const MIN_TTL: Duration = Duration::from_secs(5);
const MAX_TTL: Duration = Duration::from_secs(3600);
const MAX_ENTRIES: u64 = 10_000;

tokio::task_local! {
    /// Set while a connection routed to an upstream is being opened.
    static UPSTREAM_TRAFFIC: ();
}

/// Runs `f` (opening a connection routed to an upstream) with every
/// [`DnsCache::lookup`] it makes counted as a lookup for proxied traffic.
pub(crate) async fn for_upstream_traffic<F: Future>(f: F) -> F::Output {
    UPSTREAM_TRAFFIC.scope((), f).await
}

#[derive(Debug, Clone)]
struct Answer {
    addrs: Arc<[IpAddr]>,
    ttl: Duration,
}

struct AnswerTtl;

impl Expiry<String, Answer> for AnswerTtl {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Answer,
        _now: Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot resolve {host}: {reason}")]
pub struct DnsError {
    pub host: String,
    pub reason: String,
}

/// A caching resolver with hit and miss counters.
#[derive(Clone)]
pub struct DnsCache {
    resolver: TokioResolver,
    cache: Cache<String, Answer>,
    hits: Arc<AtomicU64>,
    misses: Arc<AtomicU64>,
    proxied_lookups: Arc<AtomicU64>,
}

impl std::fmt::Debug for DnsCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsCache").finish_non_exhaustive()
    }
}

impl DnsCache {
    /// `servers` empty means the system configuration; otherwise exactly
    /// these servers (UDP and TCP), which tests use to watch the queries.
    pub fn new(servers: &[SocketAddr]) -> Result<Self, EngineError> {
        let provider = TokioRuntimeProvider::default();
        let mut builder = if servers.is_empty() {
            match TokioResolver::builder_tokio() {
                Ok(b) => b,
                Err(e) => {
                    // No usable resolv.conf (containers, odd set-ups): the hosts
                    // file still works, and names that need DNS fail clearly.
                    tracing::warn!("system DNS configuration unreadable ({e}); hosts file only");
                    TokioResolver::builder_with_config(ResolverConfig::default(), provider)
                }
            }
        } else {
            let name_servers = servers
                .iter()
                .map(|addr| {
                    let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
                    for conn in &mut ns.connections {
                        conn.port = addr.port();
                    }
                    ns
                })
                .collect();
            let config = ResolverConfig::from_parts(None, vec![], name_servers);
            let mut b = TokioResolver::builder_with_config(config, provider);
            *b.options_mut() = ResolverOpts::default();
            b
        };
        builder.options_mut().cache_size = 0;
        let resolver = builder
            .build()
            .map_err(|e| EngineError::Resolver(e.to_string()))?;
        Ok(Self {
            resolver,
            cache: Cache::builder()
                .max_capacity(MAX_ENTRIES)
                .expire_after(AnswerTtl)
                .build(),
            hits: Arc::default(),
            misses: Arc::default(),
            proxied_lookups: Arc::default(),
        })
    }

    /// The addresses of `host` (a target of direct traffic), from the cache
    /// when fresh.
    pub async fn lookup(&self, host: &str) -> Result<Arc<[IpAddr]>, DnsError> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(Arc::from([ip]));
        }
        if UPSTREAM_TRAFFIC.try_with(|()| ()).is_ok() {
            self.proxied_lookups.fetch_add(1, Relaxed);
            tracing::warn!("{host} was looked up locally for traffic routed to an upstream");
        }
        self.resolve(host).await
    }

    /// The addresses of an upstream proxy's own host: the one name Veil
    /// must resolve to reach an upstream at all.
    pub async fn lookup_upstream(&self, host: &str) -> Result<Arc<[IpAddr]>, DnsError> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(Arc::from([ip]));
        }
        self.resolve(host).await
    }

    async fn resolve(&self, host: &str) -> Result<Arc<[IpAddr]>, DnsError> {
        let key = host.to_ascii_lowercase();
        if let Some(answer) = self.cache.get(&key).await {
            self.hits.fetch_add(1, Relaxed);
            return Ok(answer.addrs);
        }
        let queried = AtomicBool::new(false);
        let result = self
            .cache
            .try_get_with(key.clone(), async {
                queried.store(true, Relaxed);
                self.query(&key).await
            })
            .await;
        // Callers that joined another caller's query cost no extra lookup.
        if queried.load(Relaxed) {
            self.misses.fetch_add(1, Relaxed);
        } else {
            self.hits.fetch_add(1, Relaxed);
        }
        result.map(|a| a.addrs).map_err(|e| (*e).clone())
    }

    async fn query(&self, host: &str) -> Result<Answer, DnsError> {
        let fail = |reason: String| DnsError {
            host: host.to_owned(),
            reason,
        };
        let lookup = self
            .resolver
            .lookup_ip(host)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let addrs: Arc<[IpAddr]> = lookup.iter().collect();
        if addrs.is_empty() {
            return Err(fail("no addresses".into()));
        }
        let ttl = lookup
            .valid_until()
            .saturating_duration_since(Instant::now())
            .clamp(MIN_TTL, MAX_TTL);
        Ok(Answer { addrs, ttl })
    }

    pub fn stats(&self) -> DnsStats {
        DnsStats {
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            // `entry_count` lags behind recent inserts; counting is exact and
            // cheap at this size.
            entries: self.cache.iter().count() as u64,
            proxied_lookups: self.proxied_lookups.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lookups_while_opening_upstream_traffic_are_counted_except_the_upstreams_own() {
        let dns = DnsCache::new(&[]).expect("resolver");
        // The answers do not matter (hosts-file names, no network): only
        // which lookups are counted.
        let _ = dns.lookup("localhost").await;
        assert_eq!(dns.stats().proxied_lookups, 0, "direct traffic's lookups");
        for_upstream_traffic(async {
            let _ = dns.lookup_upstream("localhost").await;
            let _ = dns.lookup("127.0.0.1").await;
        })
        .await;
        assert_eq!(
            dns.stats().proxied_lookups,
            0,
            "the upstream's own name, an IP"
        );
        for_upstream_traffic(async {
            let _ = dns.lookup("localhost").await;
        })
        .await;
        assert_eq!(dns.stats().proxied_lookups, 1);
    }
}
