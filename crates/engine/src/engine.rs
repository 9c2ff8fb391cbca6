use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, broadcast};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::attribution::Attributor;
use crate::cache::HttpCache;
use crate::dns::DnsCache;
use crate::inbound::{self, HttpForwarder};
use crate::outbound::{Direct, Outbound};
use crate::routing::{Action, Routing};
use crate::stats::Stats;
use crate::upstream::{Pool, Strategy, UpstreamReport, UpstreamSpec};
use crate::{EngineConfig, EngineError, EngineEvent, Mode, StatsSnapshot};

/// State every connection task shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: EngineConfig,
    pub listen: SocketAddr,
    pub stats: Stats,
    /// Queues new connections for client app attribution.
    pub attribution: Attributor,
    /// Checks that each client is Veil's own user (no inbound credentials).
    pub users: crate::peer_user::UserCheck,
    pub outbound: Outbound,
    pub forwarder: HttpForwarder,
    pub cache: Arc<HttpCache>,
    /// Descriptors left for new clients.
    pub fds: crate::fd_budget::FdBudget,
    /// Wrong inbound credentials per client address.
    pub logins: crate::auth::LoginThrottle,
    pub events: broadcast::Sender<EngineEvent>,
    /// Cancelled when shutdown begins: stop accepting, finish requests.
    pub shutdown: CancellationToken,
    /// Cancelled when the grace period ends: close whatever is still open.
    pub hard_stop: CancellationToken,
    pub tasks: TaskTracker,
}

impl Shared {
    pub fn mode(&self) -> Mode {
        self.outbound.mode()
    }

    pub fn emit(&self, event: EngineEvent) {
        // No subscriber is fine: events are for whoever is watching.
        let _ = self.events.send(event);
    }
}

/// The proxy engine. See [`Engine::start`].
#[derive(Debug)]
pub struct Engine;

impl Engine {
    /// Validates `config`, binds the listener and starts serving.
    ///
    /// Refuses a non-loopback listener without inbound credentials, and mode
    /// `proxy` without an upstream.
    pub async fn start(config: EngineConfig) -> Result<EngineHandle, EngineError> {
        if !config.listen.ip().is_loopback() && config.auth.is_none() {
            return Err(EngineError::OpenProxyRefused {
                addr: config.listen,
            });
        }
        if config.mode == Mode::Proxy && config.upstreams.is_empty() {
            return Err(EngineError::NoUpstream);
        }
        let routing = Routing::new(&config.bypass, &config.rules).map_err(EngineError::Config)?;
        crate::trim::configure();
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| EngineError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let listen = listener.local_addr().map_err(|source| EngineError::Bind {
            addr: config.listen,
            source,
        })?;
        refuse_self(listen, &config.upstreams)?;
        let dns = DnsCache::new(&config.dns_servers)?;
        let routing: crate::outbound::SharedRouting =
            Arc::new(std::sync::RwLock::new(Arc::new(routing)));
        let direct = Direct::new(
            dns.clone(),
            config.limits.connect_timeout,
            listen,
            routing.clone(),
        );
        let (events, _) = broadcast::channel(1024);
        let fds = crate::fd_budget::FdBudget::new(config.limits.fd_budget);
        let pool = Pool::new(
            config.upstreams.clone(),
            config.strategy,
            config.health.clone(),
            dns,
            config.limits.connect_timeout,
            crate::upstream::EngineSide {
                own_listener: listen,
                fds: fds.clone(),
            },
            events.clone(),
        )
        .map_err(EngineError::Config)?;
        let pool = Arc::new(pool);
        let shared = Arc::new(Shared {
            listen,
            stats: Stats::default(),
            attribution: Attributor::start(config.client_lookup.clone(), listen),
            users: crate::peer_user::UserCheck::start(
                config.client_lookup.clone(),
                listen,
                config.auth.is_some(),
            )
            .map_err(EngineError::UserCheck)?,
            forwarder: HttpForwarder::new(direct.clone(), fds.clone()),
            cache: HttpCache::open(&config.cache).await,
            logins: crate::auth::LoginThrottle::default(),
            fds,
            outbound: Outbound::new(
                direct,
                pool.clone(),
                routing,
                config.mode,
                config.fallback_direct,
            ),
            events,
            shutdown: CancellationToken::new(),
            hard_stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
            config,
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        tokio::spawn(sample_rates(shared.clone()));
        tokio::spawn(crate::upstream::run_checks(pool, shared.shutdown.clone()));
        tracing::info!(%listen, mode = %shared.mode(), "engine started");
        Ok(EngineHandle {
            shared,
            accept: std::sync::Mutex::new(Some(accept)),
        })
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let slots = Arc::new(Semaphore::new(shared.config.limits.max_connections));
    loop {
        // Wait for a free slot before accepting: past the cap, clients queue in
        // the kernel's backlog instead of costing memory here.
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = shared.shutdown.cancelled() => break,
        };
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shared.shutdown.cancelled() => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                let shared2 = shared.clone();
                let Some(fds) = shared.fds.try_take() else {
                    // Out of descriptors: wait a moment for some, else a
                    // 503, instead of EMFILE later (off the accept loop).
                    shared.tasks.spawn(async move {
                        match shared2.fds.wait_or_refuse(stream).await {
                            Some((stream, fds)) => {
                                let s = shared2.clone();
                                inbound::serve(s, stream, peer, (permit, fds)).await;
                            }
                            None => {
                                shared2.stats.count_rejected();
                                tracing::debug!(client = %peer, "descriptor budget spent: refused");
                            }
                        }
                    });
                    continue;
                };
                shared
                    .tasks
                    .spawn(inbound::serve(shared2, stream, peer, (permit, fds)));
            }
            Err(e) => {
                // Usually out of file descriptors: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn sample_rates(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut trim = crate::trim::Trimmer::default();
    loop {
        tokio::select! {
            _ = tick.tick() => {
                shared.stats.sample_rate();
                trim.observe(shared.stats.open_connections());
            }
            _ = shared.shutdown.cancelled() => break,
        }
    }
}

/// Controls a running engine. Dropping it stops the engine at once; call
/// [`EngineHandle::shutdown`] to let open tunnels finish first.
#[derive(Debug)]
pub struct EngineHandle {
    shared: Arc<Shared>,
    accept: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl EngineHandle {
    /// The address the listener is bound to (with the real port when the
    /// config asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.listen
    }

    pub fn mode(&self) -> Mode {
        self.shared.mode()
    }

    /// Switches between direct and proxy for new connections; open ones
    /// keep their route.
    pub fn set_mode(&self, mode: Mode) -> Result<(), EngineError> {
        if mode == Mode::Proxy && self.shared.outbound.pool.is_empty() {
            return Err(EngineError::NoUpstream);
        }
        self.shared.outbound.set_mode(mode);
        Ok(())
    }

    /// Replaces the upstream proxies for new connections. Open tunnels keep
    /// the upstream they started on; an unchanged upstream keeps its health
    /// and counters.
    pub fn set_upstreams(&self, upstreams: Vec<UpstreamSpec>) -> Result<(), EngineError> {
        if upstreams.is_empty() && self.mode() == Mode::Proxy {
            return Err(EngineError::NoUpstream);
        }
        refuse_self(self.local_addr(), &upstreams)?;
        self.shared
            .outbound
            .pool
            .set_upstreams(upstreams)
            .map_err(EngineError::Config)
    }

    /// The kill switch, live: whether a connection no upstream can carry
    /// goes direct (`true`) or fails with a 502 (`false`, the default).
    pub fn set_fallback_direct(&self, allowed: bool) {
        self.shared.outbound.set_fallback_direct(allowed);
    }

    pub fn fallback_direct(&self) -> bool {
        self.shared.outbound.fallback_direct()
    }

    pub fn set_strategy(&self, strategy: Strategy) {
        self.shared.outbound.pool.set_strategy(strategy);
    }

    /// Replaces the bypass list and per-domain rules for new connections.
    pub fn set_routing(
        &self,
        bypass: &[String],
        rules: &[(String, Action)],
    ) -> Result<(), EngineError> {
        let routing = Routing::new(bypass, rules).map_err(EngineError::Config)?;
        self.shared.outbound.set_routing(routing);
        Ok(())
    }

    pub fn upstreams(&self) -> Vec<UpstreamReport> {
        self.shared.outbound.pool.reports()
    }

    /// The latency test of one configured upstream: connect, and fetch the
    /// health-check URL through it when one is configured.
    pub async fn test_upstream(&self, name: &str) -> Result<Duration, String> {
        self.shared.outbound.pool.test(name).await
    }

    /// Runs the active health check of every upstream now.
    pub async fn check_upstreams(&self) {
        self.shared.outbound.pool.check_now().await;
    }

    /// Closes client connections: those with the given ids, or every one
    /// (`None`). Their tunnels and requests end at once; returns how many
    /// were still open.
    pub fn close_connections(&self, ids: Option<&[u64]>) -> usize {
        self.shared
            .stats
            .end_connections(|c| ids.is_none_or(|ids| ids.contains(&c.id)))
    }

    pub fn stats(&self) -> StatsSnapshot {
        let pool = &self.shared.outbound.pool;
        self.shared.stats.snapshot(
            self.shared.listen,
            self.shared.mode(),
            self.shared.outbound.direct.dns().stats(),
            pool.strategy(),
            pool.reports(),
            self.shared.cache.stats(),
        )
    }

    /// Switches the HTTP cache on or off for new requests; what is stored
    /// stays until cleared.
    pub fn set_cache_enabled(&self, enabled: bool) {
        self.shared.cache.set_enabled(enabled);
    }

    /// Whether responses stored through one route may be served to requests
    /// taking another (see [`crate::CacheConfig::share_across_routes`]).
    pub fn set_cache_share_across_routes(&self, share: bool) {
        self.shared.cache.set_share_across_routes(share);
    }

    /// Drops every stored response.
    pub async fn cache_clear(&self) {
        self.shared.cache.clear().await;
    }

    /// Drops every stored variant of one `http://` URL.
    pub async fn cache_purge(&self, url: &str) -> Result<(), EngineError> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| EngineError::Config(format!("cannot purge {url:?}: {e}")))?;
        if uri.scheme_str() != Some("http") || uri.host().is_none() {
            return Err(EngineError::Config(format!(
                "cannot purge {url:?}: only absolute http:// URLs are cached"
            )));
        }
        self.shared.cache.purge(&uri).await;
        Ok(())
    }

    /// Events from now on. A slow receiver misses events rather than slowing
    /// the engine (it sees `RecvError::Lagged`).
    pub fn subscribe(&self) -> broadcast::Receiver<EngineEvent> {
        self.shared.events.subscribe()
    }

    /// Stops accepting, lets requests and tunnels finish for the configured
    /// grace period, then closes what is left. Calling it again does nothing
    /// more.
    pub async fn shutdown(&self) {
        let shared = &self.shared;
        if !shared.shutdown.is_cancelled() {
            shared.emit(EngineEvent::ShuttingDown);
        }
        shared.shutdown.cancel();
        let accept = self.accept.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(accept) = accept {
            let _ = accept.await;
        }
        shared.tasks.close();
        let grace = shared.config.limits.shutdown_grace;
        if tokio::time::timeout(grace, shared.tasks.wait())
            .await
            .is_err()
        {
            tracing::info!(
                open = shared.tasks.len(),
                "grace period over, closing open connections"
            );
            shared.hard_stop.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(2), shared.tasks.wait()).await;
        }
        tracing::info!("engine stopped");
    }
}

impl Drop for EngineHandle {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
        self.shared.hard_stop.cancel();
    }
}

/// Refuses an upstream that is this engine's own listener.
fn refuse_self(listen: SocketAddr, upstreams: &[UpstreamSpec]) -> Result<(), EngineError> {
    match upstreams
        .iter()
        .find(|u| crate::target::host_reaches_listener(listen, &u.url.host, u.url.port))
    {
        Some(u) => Err(EngineError::UpstreamIsSelf {
            name: u.name.clone(),
            url: u.url.to_string(),
            listen,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// An origin that answers every request on a connection with a short
    /// uncacheable 200 and counts the connections it has open.
    async fn origin() -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let open = Arc::new(AtomicUsize::new(0));
        let counted = open.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let open = counted.clone();
                open.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while let Ok(n) = s.read(&mut chunk).await {
                        if n == 0 {
                            break;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            buf.drain(..end + 4);
                            let answer = "HTTP/1.1 200 OK\r\nCache-Control: no-store\r\n\
                                          Content-Length: 2\r\n\r\nok";
                            if s.write_all(answer.as_bytes()).await.is_err() {
                                break;
                            }
                        }
                    }
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        (addr, open)
    }

    /// One plain-HTTP GET through the engine on a fresh client connection,
    /// read whole, then the client closes.
    async fn get_through(engine: &EngineHandle, origin: SocketAddr) {
        let mut s = TcpStream::connect(engine.local_addr())
            .await
            .expect("connect");
        let req = format!("GET http://{origin}/ HTTP/1.1\r\nHost: {origin}\r\n\r\n");
        s.write_all(req.as_bytes()).await.expect("write");
        let mut got = Vec::new();
        let mut chunk = [0u8; 1024];
        while !got.ends_with(b"ok") {
            let n = tokio::time::timeout(Duration::from_secs(20), s.read(&mut chunk))
                .await
                .expect("answer in time")
                .expect("read");
            assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&chunk[..n]);
        }
        assert!(got.starts_with(b"HTTP/1.1 200"), "{got:?}");
    }

    async fn until(what: impl Fn() -> bool) -> bool {
        for _ in 0..200 {
            if what() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    async fn engine_with_budget(descriptors: usize) -> EngineHandle {
        let mut config = EngineConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            ..EngineConfig::default()
        };
        config.limits.fd_budget = Some(descriptors);
        Engine::start(config).await.expect("engine starts")
    }

    /// An idle tunnel holds its client's two descriptors and no pipe; each
    /// direction that carries bytes takes its splice pipe's two from the
    /// budget, and everything comes back when the tunnel closes.
    #[cfg(target_os = "linux")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn splice_pipes_are_made_when_bytes_flow_and_counted_in_the_budget() {
        let echo = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let target = echo.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = echo.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        let engine = engine_with_budget(20).await;
        let mut tunnel = TcpStream::connect(engine.local_addr())
            .await
            .expect("connect");
        let req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
        tunnel.write_all(req.as_bytes()).await.expect("write");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            let n = tokio::time::timeout(Duration::from_secs(20), tunnel.read(&mut byte))
                .await
                .expect("answer in time")
                .expect("read");
            assert!(n > 0, "closed: {}", String::from_utf8_lossy(&head));
            head.push(byte[0]);
        }
        assert!(head.starts_with(b"HTTP/1.1 200"), "{head:?}");
        let fds = &engine.shared.fds;
        assert!(
            until(|| fds.available() == Some(18)).await,
            "{:?}",
            fds.available()
        );

        tunnel.write_all(b"ping").await.expect("write");
        let mut pong = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(20), tunnel.read_exact(&mut pong))
            .await
            .expect("echo in time")
            .expect("echo");
        assert_eq!(&pong, b"ping");
        assert!(
            until(|| fds.available() == Some(14)).await,
            "{:?}",
            fds.available()
        );

        drop(tunnel);
        assert!(
            until(|| fds.available() == Some(20)).await,
            "{:?}",
            fds.available()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pooled_connections_hold_descriptors_of_the_budget() {
        let engine = engine_with_budget(10).await;
        let (a, _) = origin().await;
        let (b, _) = origin().await;
        get_through(&engine, a).await;
        get_through(&engine, b).await;
        assert!(until(|| engine.stats().connections_open == 0).await);
        // The clients gave theirs back; the two idle pooled connections
        // to the origins keep one each.
        let fds = &engine.shared.fds;
        assert!(
            until(|| fds.available() == Some(8)).await,
            "{:?}",
            fds.available()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_connection_made_past_the_budget_is_not_pooled() {
        // Room for one client (two) and one pooled connection.
        let engine = engine_with_budget(3).await;
        let (a, open_a) = origin().await;
        let (b, open_b) = origin().await;
        get_through(&engine, a).await;
        assert!(until(|| engine.stats().connections_open == 0).await);
        get_through(&engine, b).await;
        // The connection to `b` found no descriptor left: used once and
        // closed; the one to `a` stays pooled.
        assert!(
            until(|| open_b.load(Ordering::SeqCst) == 0).await,
            "the connection made past the budget stays open"
        );
        assert_eq!(open_a.load(Ordering::SeqCst), 1);
        assert!(until(|| engine.stats().connections_open == 0).await);
        let fds = &engine.shared.fds;
        assert!(
            until(|| fds.available() == Some(2)).await,
            "{:?}",
            fds.available()
        );
    }
}
