//! The pool: several upstreams, a strategy that picks one per new
//! connection, and health that takes failing ones out of rotation.
//!
//! Health is HAProxy-like: `fall` consecutive failures (from real traffic or
//! from the active check) mark an upstream down, `rise` consecutive successful
//! checks bring it back. A connection whose upstream fails before any byte was
//! relayed is retried on the next healthy one.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::connector::UpstreamConnector;
use super::dial::{Dialer, UpstreamError};
use super::stream::OutStream;
use super::{HealthConfig, Strategy, UpstreamSpec};
use crate::dns::DnsCache;
use crate::fd_budget::FdBudget;
use crate::outbound::Body;
use crate::stats::ByteCounters;
use crate::{EngineEvent, Target};

/// One upstream and everything measured about it.
#[derive(Debug)]
pub struct Upstream {
    pub(crate) dialer: Arc<Dialer>,
    /// Pooled keep-alive connections for plain HTTP through this upstream.
    pub(crate) client: Client<UpstreamConnector, Body>,
    healthy: AtomicBool,
    fails: AtomicU32,
    oks: AtomicU32,
    open: AtomicU64,
    total: AtomicU64,
    pub(crate) bytes: Arc<ByteCounters>,
    /// Milliseconds of the last successful check; `u64::MAX` when unknown.
    latency_ms: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Upstream {
    fn new(
        spec: UpstreamSpec,
        dns: &DnsCache,
        timeout: Duration,
        own_listener: SocketAddr,
        fds: &FdBudget,
    ) -> Result<Self, String> {
        let dialer = Arc::new(Dialer::new(spec)?.guarding(own_listener));
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(32)
            .build(UpstreamConnector {
                dialer: dialer.clone(),
                dns: dns.clone(),
                timeout,
                fds: fds.clone(),
            });
        Ok(Self {
            dialer,
            client,
            healthy: AtomicBool::new(true),
            fails: AtomicU32::new(0),
            oks: AtomicU32::new(0),
            open: AtomicU64::new(0),
            total: AtomicU64::new(0),
            bytes: Arc::default(),
            latency_ms: AtomicU64::new(u64::MAX),
            last_error: Mutex::new(None),
        })
    }

    pub fn name(&self) -> &str {
        &self.dialer.spec().name
    }

    pub fn spec(&self) -> &UpstreamSpec {
        self.dialer.spec()
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Relaxed)
    }

    fn last_error(&self) -> String {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_else(|| "no reason recorded".into())
    }

    pub(crate) fn set_latency(&self, latency: Duration) {
        self.latency_ms.store(latency.as_millis() as u64, Relaxed);
    }

    /// Counts this upstream as carrying one more open connection until the
    /// lease is dropped.
    pub fn lease(self: &Arc<Self>) -> Lease {
        self.open.fetch_add(1, Relaxed);
        self.total.fetch_add(1, Relaxed);
        Lease(self.clone())
    }

    pub fn report(&self) -> UpstreamReport {
        let latency = self.latency_ms.load(Relaxed);
        let spec = self.spec();
        UpstreamReport {
            name: spec.name.clone(),
            url: spec.url.to_string(),
            healthy: self.is_healthy(),
            open_connections: self.open.load(Relaxed),
            total_connections: self.total.load(Relaxed),
            bytes_up: self.bytes.up(),
            bytes_down: self.bytes.down(),
            latency_ms: (latency != u64::MAX).then_some(latency),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            weight: spec.weight,
        }
    }
}

/// Holds an upstream's open-connection count up while a connection lives.
#[derive(Debug)]
pub struct Lease(Arc<Upstream>);

impl Lease {
    pub fn upstream(&self) -> &Arc<Upstream> {
        &self.0
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Relaxed);
    }
}

/// An upstream as `veil status` shows it.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpstreamReport {
    pub name: String,
    pub url: String,
    pub healthy: bool,
    pub open_connections: u64,
    pub total_connections: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub latency_ms: Option<u64>,
    pub last_error: Option<String>,
    pub weight: u32,
}

/// The upstreams and how to choose among them; swapped whole on a live
/// change, so open connections keep the upstream they started with.
#[derive(Debug)]
struct Members {
    upstreams: Vec<Arc<Upstream>>,
    strategy: Strategy,
}

#[derive(Debug)]
pub struct Pool {
    members: RwLock<Arc<Members>>,
    health: HealthConfig,
    dns: DnsCache,
    timeout: Duration,
    /// The engine's listener, which no upstream connection may reach.
    own_listener: SocketAddr,
    /// The engine's descriptor budget, which pooled connections count in.
    fds: FdBudget,
    next: AtomicUsize,
    events: tokio::sync::broadcast::Sender<EngineEvent>,
}

/// What the pool's connections must respect of the engine around it.
#[derive(Debug, Clone)]
pub(crate) struct EngineSide {
    /// The engine's listener, which no upstream connection may reach.
    pub own_listener: SocketAddr,
    /// The descriptor budget, which pooled connections count in.
    pub fds: FdBudget,
}

/// Every upstream tried for one connection, and why each failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", describe(.0))]
pub struct PoolError(pub Vec<UpstreamError>);

fn describe(errors: &[UpstreamError]) -> String {
    match errors {
        [] => "no upstream proxy is configured".into(),
        [one] => one.to_string(),
        many => format!(
            "every upstream failed: {}",
            many.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        ),
    }
}

impl PoolError {
    /// The SOCKS5 reply code for this failure.
    pub fn socks_reply(&self) -> fast_socks5::ReplyError {
        match self.0.as_slice() {
            [UpstreamError::TargetFailed { .. }] => fast_socks5::ReplyError::HostUnreachable,
            _ => fast_socks5::ReplyError::GeneralFailure,
        }
    }
}

impl Pool {
    pub(crate) fn new(
        specs: Vec<UpstreamSpec>,
        strategy: Strategy,
        health: HealthConfig,
        dns: DnsCache,
        timeout: Duration,
        engine: EngineSide,
        events: tokio::sync::broadcast::Sender<EngineEvent>,
    ) -> Result<Self, String> {
        let EngineSide { own_listener, fds } = engine;
        let pool = Self {
            members: RwLock::new(Arc::new(Members {
                upstreams: Vec::new(),
                strategy,
            })),
            health,
            dns,
            timeout,
            own_listener,
            fds,
            next: AtomicUsize::new(0),
            events,
        };
        pool.set_upstreams(specs)?;
        Ok(pool)
    }

    fn members(&self) -> Arc<Members> {
        self.members
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn upstreams(&self) -> Vec<Arc<Upstream>> {
        self.members().upstreams.clone()
    }

    pub fn strategy(&self) -> Strategy {
        self.members().strategy
    }

    pub fn health_config(&self) -> &HealthConfig {
        &self.health
    }

    pub fn is_empty(&self) -> bool {
        self.members().upstreams.is_empty()
    }

    /// Replaces the upstreams. One whose spec did not change keeps its
    /// state (health, counters); open connections are never touched.
    pub fn set_upstreams(&self, specs: Vec<UpstreamSpec>) -> Result<(), String> {
        let mut names = std::collections::HashSet::new();
        if let Some(dup) = specs.iter().find(|s| !names.insert(s.name.clone())) {
            return Err(format!("two upstreams are named {:?}", dup.name));
        }
        let old = self.members();
        let upstreams = specs
            .into_iter()
            .map(
                |spec| match old.upstreams.iter().find(|u| *u.spec() == spec) {
                    Some(same) => Ok(same.clone()),
                    None => {
                        Upstream::new(spec, &self.dns, self.timeout, self.own_listener, &self.fds)
                            .map(Arc::new)
                    }
                },
            )
            .collect::<Result<Vec<_>, String>>()?;
        *self.members.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(Members {
            upstreams,
            strategy: old.strategy,
        });
        Ok(())
    }

    pub fn set_strategy(&self, strategy: Strategy) {
        let mut members = self.members.write().unwrap_or_else(|e| e.into_inner());
        *members = Arc::new(Members {
            upstreams: members.upstreams.clone(),
            strategy,
        });
    }

    /// Healthy upstreams in the order the strategy wants them tried.
    pub fn candidates(&self) -> Vec<Arc<Upstream>> {
        let members = self.members();
        let mut healthy: Vec<Arc<Upstream>> = members
            .upstreams
            .iter()
            .filter(|u| u.is_healthy())
            .cloned()
            .collect();
        if healthy.is_empty() {
            return healthy;
        }
        let weight = |u: &Upstream| u64::from(u.spec().weight.max(1));
        match members.strategy {
            Strategy::First => {}
            Strategy::RoundRobin => {
                // The turn lands on each upstream `weight` times per cycle.
                let total: u64 = healthy.iter().map(|u| weight(u)).sum();
                let mut turn = self.next.fetch_add(1, Relaxed) as u64 % total;
                let start = healthy
                    .iter()
                    .position(|u| {
                        if turn < weight(u) {
                            return true;
                        }
                        turn -= weight(u);
                        false
                    })
                    .unwrap_or(0);
                healthy.rotate_left(start);
            }
            Strategy::LeastConn => {
                // Stable sort: ties keep configuration order, rotated so equal
                // loads still share the work.
                let n = healthy.len();
                healthy.rotate_left(self.next.fetch_add(1, Relaxed) % n);
                healthy.sort_by_key(|u| u.open.load(Relaxed) * 1000 / weight(u));
            }
            Strategy::Fastest => healthy.sort_by_key(|u| u.latency_ms.load(Relaxed)),
        }
        healthy
    }

    /// Opens a tunnel to `target` through the first upstream that works,
    /// trying the next one when an upstream fails before anything was relayed.
    pub async fn tunnel(&self, target: &Target) -> Result<(OutStream, Bytes, Lease), PoolError> {
        let candidates = self.candidates();
        if candidates.is_empty() {
            return Err(self.all_down());
        }
        let mut errors = Vec::new();
        for upstream in candidates {
            match upstream
                .dialer
                .tunnel(&self.dns, target, self.timeout)
                .await
            {
                Ok((stream, rest)) => {
                    self.record_success(&upstream);
                    let lease = upstream.lease();
                    return Ok((stream, rest, lease));
                }
                Err(e) if e.is_upstream_fault() => {
                    tracing::debug!("{e}; trying the next upstream");
                    self.record_failure(&upstream, &e.to_string());
                    errors.push(e);
                }
                Err(e) => {
                    // The upstream works; the target is the problem. Another
                    // upstream would only fail the same way.
                    self.record_success(&upstream);
                    return Err(PoolError(vec![e]));
                }
            }
        }
        Err(PoolError(errors))
    }

    /// The error when no upstream is healthy: each one with its last reason.
    pub fn all_down(&self) -> PoolError {
        PoolError(
            self.members()
                .upstreams
                .iter()
                .map(|u| UpstreamError::Down {
                    name: u.name().to_owned(),
                    reason: u.last_error(),
                })
                .collect(),
        )
    }

    pub fn record_success(&self, upstream: &Upstream) {
        upstream.fails.store(0, Relaxed);
        if upstream.is_healthy() {
            return;
        }
        let oks = upstream.oks.fetch_add(1, Relaxed) + 1;
        if oks >= self.health.rise && !upstream.healthy.swap(true, Relaxed) {
            upstream.oks.store(0, Relaxed);
            tracing::info!(upstream = upstream.name(), "upstream is back up");
            let _ = self.events.send(EngineEvent::UpstreamUp {
                name: upstream.name().to_owned(),
            });
        }
    }

    pub fn record_failure(&self, upstream: &Upstream, reason: &str) {
        *upstream
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(reason.to_owned());
        upstream.oks.store(0, Relaxed);
        let fails = upstream.fails.fetch_add(1, Relaxed) + 1;
        if fails >= self.health.fall && upstream.healthy.swap(false, Relaxed) {
            tracing::warn!(upstream = upstream.name(), "upstream marked down: {reason}");
            let _ = self.events.send(EngineEvent::UpstreamDown {
                name: upstream.name().to_owned(),
                reason: reason.to_owned(),
            });
        }
    }

    /// Runs one round of active checks now.
    pub async fn check_now(&self) {
        super::check_all(self, &self.dns, self.timeout).await;
    }

    /// The latency test of one upstream by name.
    pub async fn test(&self, name: &str) -> Result<Duration, String> {
        let upstream = self
            .upstreams()
            .into_iter()
            .find(|u| u.name() == name)
            .ok_or_else(|| format!("no upstream is named {name:?}"))?;
        let check_url = self.health.check_url.clone();
        let latency = super::measure(
            &upstream.dialer,
            &self.dns,
            check_url.as_deref(),
            self.timeout,
        )
        .await
        .map_err(|e| e.to_string())?;
        upstream.set_latency(latency);
        Ok(latency)
    }

    pub fn reports(&self) -> Vec<UpstreamReport> {
        self.members()
            .upstreams
            .iter()
            .map(|u| u.report())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pool of upstreams that are never contacted: these tests only ask
    /// which one would be tried first.
    fn pool(strategy: Strategy, weights: &[u32]) -> Pool {
        let specs = weights
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let url = format!("socks5://127.0.0.1:{}", 1000 + i)
                    .parse()
                    .expect("url");
                let mut spec = UpstreamSpec::new(format!("u{i}"), url);
                spec.weight = *w;
                spec
            })
            .collect();
        let (events, _) = tokio::sync::broadcast::channel(16);
        let health = HealthConfig {
            fall: 2,
            rise: 2,
            ..HealthConfig::default()
        };
        let dns = DnsCache::new(&[]).expect("dns");
        let engine = EngineSide {
            own_listener: SocketAddr::from(([127, 0, 0, 1], 9)),
            fds: FdBudget::new(None),
        };
        Pool::new(
            specs,
            strategy,
            health,
            dns,
            Duration::from_secs(1),
            engine,
            events,
        )
        .expect("pool")
    }

    fn first_picks(pool: &Pool, rounds: usize) -> Vec<String> {
        (0..rounds)
            .map(|_| pool.candidates()[0].name().to_owned())
            .collect()
    }

    #[tokio::test]
    async fn roundrobin_follows_the_weights() {
        let pool = pool(Strategy::RoundRobin, &[2, 1]);
        let picks = first_picks(&pool, 30);
        assert_eq!(picks.iter().filter(|n| *n == "u0").count(), 20, "{picks:?}");
        assert_eq!(picks.iter().filter(|n| *n == "u1").count(), 10, "{picks:?}");
        // Every upstream stays a fallback candidate.
        assert_eq!(pool.candidates().len(), 2);
    }

    #[tokio::test]
    async fn fastest_and_first_choose_as_named() {
        let pool = pool(Strategy::Fastest, &[1, 1, 1]);
        let ups = pool.upstreams();
        ups[0].set_latency(Duration::from_millis(80));
        ups[1].set_latency(Duration::from_millis(5));
        ups[2].set_latency(Duration::from_millis(40));
        let order: Vec<_> = pool
            .candidates()
            .iter()
            .map(|u| u.name().to_owned())
            .collect();
        assert_eq!(order, ["u1", "u2", "u0"]);
        pool.set_strategy(Strategy::First);
        assert_eq!(first_picks(&pool, 5), ["u0"; 5]);
    }

    #[tokio::test]
    async fn failing_upstreams_leave_and_return_after_rise() {
        let pool = pool(Strategy::First, &[1, 1]);
        let u0 = pool.upstreams()[0].clone();
        pool.record_failure(&u0, "refused");
        assert!(u0.is_healthy(), "one failure is below fall = 2");
        pool.record_failure(&u0, "refused");
        assert!(!u0.is_healthy());
        assert_eq!(first_picks(&pool, 3), ["u1"; 3]);
        pool.record_success(&u0);
        assert!(!u0.is_healthy(), "one success is below rise = 2");
        pool.record_success(&u0);
        assert!(u0.is_healthy());
        assert_eq!(first_picks(&pool, 1), ["u0"]);
        // With every upstream down there is no candidate, and the error
        // names each one with its last reason.
        let u1 = pool.upstreams()[1].clone();
        for u in [&u0, &u1, &u0, &u1] {
            pool.record_failure(u, "gone");
        }
        assert!(pool.candidates().is_empty());
        let err = pool.all_down().to_string();
        assert!(
            err.contains("u0") && err.contains("u1") && err.contains("gone"),
            "{err}"
        );
    }
}
