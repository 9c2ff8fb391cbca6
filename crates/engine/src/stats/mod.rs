//! Traffic counters.
//!
//! Bytes are counted where they pass: [`Counted`] wraps a socket and
//! [`CountedBody`] an HTTP body, each adding to shared [`ByteCounters`] with
//! relaxed atomics, so the data path never takes a lock. The maps of open
//! connections and of destination hosts are touched once per connection or
//! request, not per read. A sampler task turns the totals into one
//! [`RateSample`] per second.

mod body;
mod stream;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use serde::Serialize;

pub use body::CountedBody;
pub use stream::{Counted, Side};

use crate::Mode;
use crate::attribution::ClientApp;
use crate::cache::CacheStats;
use crate::upstream::{Strategy, UpstreamReport};

/// Up (client to target) and down (target to client) byte totals.
#[derive(Debug, Default)]
pub struct ByteCounters {
    up: AtomicU64,
    down: AtomicU64,
}

impl ByteCounters {
    pub fn add_up(&self, n: u64) {
        self.up.fetch_add(n, Relaxed);
    }
    pub fn add_down(&self, n: u64) {
        self.down.fetch_add(n, Relaxed);
    }
    pub fn up(&self) -> u64 {
        self.up.load(Relaxed)
    }
    pub fn down(&self) -> u64 {
        self.down.load(Relaxed)
    }
}

/// Counters of one destination host, across all its connections.
#[derive(Debug, Default)]
pub struct HostCounters {
    pub bytes: Arc<ByteCounters>,
    connections: AtomicU64,
    requests: AtomicU64,
    /// When a connection or request last named this host (seconds since
    /// the engine started), for ageing idle hosts out.
    last_used: AtomicU64,
}

/// One open client connection.
#[derive(Debug)]
pub struct ConnEntry {
    pub id: u64,
    pub client: SocketAddr,
    pub opened: SystemTime,
    pub bytes: Arc<ByteCounters>,
    route: OnceLock<(&'static str, String)>,
    /// The client process, once looked up; `Some(None)` is "unknown".
    app: OnceLock<Option<ClientApp>>,
    /// The upstream carrying the latest request or tunnel; `None` is direct.
    upstream: Mutex<Option<String>>,
    /// Requests and tunnels on this connection whose target was an address
    /// rather than a name, and the first few of those addresses.
    resolved_locally: Mutex<(u64, Vec<String>)>,
    /// Cancelled when the user closes the connection from the window.
    close: tokio_util::sync::CancellationToken,
}

impl ConnEntry {
    /// Resolves when the user asked for this connection to be closed.
    pub async fn close_requested(&self) {
        self.close.cancelled().await
    }

    /// Records the protocol and target once they are known; later calls (the
    /// next request on a keep-alive connection) keep the first.
    pub fn set_route(&self, protocol: &'static str, target: String) -> bool {
        self.route.set((protocol, target)).is_ok()
    }

    /// Records the client process; only the first answer counts (a closed
    /// connection is settled as unknown before a late lookup lands).
    pub fn set_app(&self, app: Option<ClientApp>) -> bool {
        self.app.set(app).is_ok()
    }

    /// Whether the lookup has answered (or given up).
    pub fn app_known(&self) -> bool {
        self.app.get().is_some()
    }

    pub fn app(&self) -> Option<&ClientApp> {
        self.app.get().and_then(Option::as_ref)
    }

    /// The name per-app counters use: the process name, or [`UNKNOWN_APP`].
    fn app_name(&self) -> &str {
        self.app().map_or(UNKNOWN_APP, |a| a.name.as_str())
    }

    /// Records which upstream carries the connection now (`None`: direct).
    pub fn set_upstream(&self, name: Option<&str>) {
        let mut upstream = self.upstream.lock().unwrap_or_else(|e| e.into_inner());
        if upstream.as_deref() != name {
            *upstream = name.map(str::to_owned);
        }
    }

    /// Counts a request or tunnel whose target the client gave as an IP
    /// address: it resolved the name itself (or was handed an address)
    /// before reaching Veil.
    pub fn count_resolved_locally(&self, target: &str) {
        let mut r = self
            .resolved_locally
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        r.0 += 1;
        remember(&mut r.1, target);
    }

    fn resolved_locally(&self) -> (u64, Vec<String>) {
        self.resolved_locally
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn upstream(&self) -> Option<String> {
        self.upstream
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Addresses remembered per connection and per app as examples of local
/// resolution; the count goes on past them.
const RESOLVED_EXAMPLES: usize = 5;

/// Adds `target` to `list` unless it is there or the list is full.
fn remember(list: &mut Vec<String>, target: &str) {
    if list.len() < RESOLVED_EXAMPLES && !list.iter().any(|t| t == target) {
        list.push(target.to_owned());
    }
}

/// Bytes and connections of one client app, from its closed connections.
#[derive(Debug, Default)]
struct AppCounters {
    bytes: ByteCounters,
    connections: AtomicU64,
    resolved_locally: Mutex<(u64, Vec<String>)>,
}

impl AppCounters {
    fn add_resolved_locally(&self, (count, targets): (u64, Vec<String>)) {
        if count == 0 {
            return;
        }
        let mut r = self
            .resolved_locally
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        r.0 += count;
        for t in &targets {
            remember(&mut r.1, t);
        }
    }
}

/// Distinct hosts tracked one by one; past this, new hosts are summed under
/// [`OTHER_HOSTS`] so a scan of millions of names cannot grow memory forever.
const MAX_HOSTS: usize = 4096;
pub const OTHER_HOSTS: &str = "(other hosts)";
/// Distinct client apps tracked one by one; past this, [`OTHER_APPS`].
const MAX_APPS: usize = 1024;
pub const OTHER_APPS: &str = "(other apps)";
/// The app of a connection whose process could not be found.
pub const UNKNOWN_APP: &str = "unknown";
/// Seconds of rate samples kept.
const RATE_HISTORY: usize = 300;

/// Every counter of one engine.
#[derive(Debug)]
pub struct Stats {
    started: Instant,
    next_id: AtomicU64,
    pub totals: Arc<ByteCounters>,
    connections_open: AtomicU64,
    connections_total: AtomicU64,
    requests_total: AtomicU64,
    rejected_total: AtomicU64,
    conns: DashMap<u64, Arc<ConnEntry>>,
    hosts: DashMap<String, Arc<HostCounters>>,
    apps: DashMap<String, Arc<AppCounters>>,
    rates: Mutex<VecDeque<RateSample>>,
    last_sample: Mutex<(Instant, u64, u64)>,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            next_id: AtomicU64::new(1),
            totals: Arc::default(),
            connections_open: AtomicU64::new(0),
            connections_total: AtomicU64::new(0),
            requests_total: AtomicU64::new(0),
            rejected_total: AtomicU64::new(0),
            conns: DashMap::new(),
            hosts: DashMap::new(),
            apps: DashMap::new(),
            rates: Mutex::new(VecDeque::with_capacity(RATE_HISTORY)),
            last_sample: Mutex::new((Instant::now(), 0, 0)),
        }
    }
}

impl Stats {
    pub fn open_connection(&self, client: SocketAddr) -> Arc<ConnEntry> {
        let id = self.next_id.fetch_add(1, Relaxed);
        let entry = Arc::new(ConnEntry {
            id,
            client,
            opened: SystemTime::now(),
            bytes: Arc::default(),
            route: OnceLock::new(),
            app: OnceLock::new(),
            upstream: Mutex::new(None),
            resolved_locally: Mutex::default(),
            close: tokio_util::sync::CancellationToken::new(),
        });
        self.conns.insert(id, entry.clone());
        self.connections_open.fetch_add(1, Relaxed);
        self.connections_total.fetch_add(1, Relaxed);
        entry
    }

    /// Client connections open now.
    pub fn open_connections(&self) -> u64 {
        self.connections_open.load(Relaxed)
    }

    /// Ends the connections `which` picks (the client's socket and the
    /// tunnel or request it carries); returns how many were open.
    pub fn end_connections(&self, which: impl Fn(&ConnEntry) -> bool) -> usize {
        let mut ended = 0;
        for entry in self.conns.iter() {
            if which(entry.value()) {
                entry.close.cancel();
                ended += 1;
            }
        }
        ended
    }

    pub fn close_connection(&self, id: u64) {
        if let Some((_, entry)) = self.conns.remove(&id) {
            self.connections_open.fetch_sub(1, Relaxed);
            // Settles a lookup still pending as unknown.
            entry.set_app(None);
            let app = self.app_counters(entry.app_name());
            app.bytes.add_up(entry.bytes.up());
            app.bytes.add_down(entry.bytes.down());
            app.connections.fetch_add(1, Relaxed);
            app.add_resolved_locally(entry.resolved_locally());
        }
    }

    fn app_counters(&self, name: &str) -> Arc<AppCounters> {
        if let Some(c) = self.apps.get(name) {
            return c.clone();
        }
        let key = if self.apps.len() >= MAX_APPS {
            OTHER_APPS
        } else {
            name
        };
        self.apps.entry(key.to_owned()).or_default().clone()
    }

    /// The counters of `host`, counting one more connection (tunnel) or
    /// request (HTTP) to it.
    pub fn host(&self, host: &str, is_request: bool) -> Arc<HostCounters> {
        let counters = match self.hosts.get(host) {
            Some(c) => c.clone(),
            None => {
                if self.hosts.len() >= MAX_HOSTS {
                    self.age_out_hosts();
                }
                let key = if self.hosts.len() >= MAX_HOSTS {
                    OTHER_HOSTS.to_owned()
                } else {
                    host.to_owned()
                };
                self.hosts.entry(key).or_default().clone()
            }
        };
        counters
            .last_used
            .store(self.started.elapsed().as_secs(), Relaxed);
        if is_request {
            counters.requests.fetch_add(1, Relaxed);
            self.requests_total.fetch_add(1, Relaxed);
        } else {
            counters.connections.fetch_add(1, Relaxed);
        }
        counters
    }

    /// Makes room in a full host table: the least recently used tenth of
    /// the hosts that no open connection holds is dropped, so a long-running
    /// engine keeps naming new hosts instead of lumping every one after the
    /// first 4,096 into "(other hosts)". History has their bytes already.
    fn age_out_hosts(&self) {
        let mut idle: Vec<(u64, String)> = self
            .hosts
            .iter()
            .filter(|e| e.key() != OTHER_HOSTS && Arc::strong_count(e.value()) == 1)
            .map(|e| (e.value().last_used.load(Relaxed), e.key().clone()))
            .collect();
        idle.sort_unstable();
        for (_, key) in idle.into_iter().take(MAX_HOSTS / 10) {
            // Only if still unused: a connection may have taken it since.
            self.hosts.remove_if(&key, |_, v| Arc::strong_count(v) == 1);
        }
    }

    /// A client refused before it was served (bad request, wrong
    /// credentials, blocked target).
    pub fn count_rejected(&self) {
        self.rejected_total.fetch_add(1, Relaxed);
    }

    /// Takes one rate sample; the engine calls this once a second.
    pub fn sample_rate(&self) {
        let now = Instant::now();
        let (up, down) = (self.totals.up(), self.totals.down());
        let mut last = self.last_sample.lock().unwrap_or_else(|e| e.into_inner());
        let secs = now.duration_since(last.0).as_secs_f64().max(0.001);
        let sample = RateSample {
            unix_ms: unix_ms(SystemTime::now()),
            up_bps: ((up.saturating_sub(last.1)) as f64 / secs) as u64,
            down_bps: ((down.saturating_sub(last.2)) as f64 / secs) as u64,
        };
        *last = (now, up, down);
        drop(last);
        let mut rates = self.rates.lock().unwrap_or_else(|e| e.into_inner());
        if rates.len() == RATE_HISTORY {
            rates.pop_front();
        }
        rates.push_back(sample);
    }

    pub fn snapshot(
        &self,
        listen: SocketAddr,
        mode: Mode,
        dns: DnsStats,
        strategy: Strategy,
        upstreams: Vec<UpstreamReport>,
        cache: CacheStats,
    ) -> StatsSnapshot {
        let mut hosts: Vec<HostStats> = self
            .hosts
            .iter()
            .map(|e| HostStats {
                host: e.key().clone(),
                bytes_up: e.bytes.up(),
                bytes_down: e.bytes.down(),
                connections: e.connections.load(Relaxed),
                requests: e.requests.load(Relaxed),
            })
            .collect();
        hosts.sort_by_key(|h| std::cmp::Reverse(h.bytes_up + h.bytes_down));
        let mut connections: Vec<ConnectionInfo> = self
            .conns
            .iter()
            .map(|e| {
                let (protocol, target) = e
                    .route
                    .get()
                    .map(|(p, t)| (*p, t.clone()))
                    .unwrap_or(("pending", String::new()));
                ConnectionInfo {
                    upstream: e.upstream(),
                    app: e.app().cloned(),
                    id: e.id,
                    client: e.client,
                    protocol: protocol.to_owned(),
                    target,
                    opened_unix_ms: unix_ms(e.opened),
                    bytes_up: e.bytes.up(),
                    bytes_down: e.bytes.down(),
                }
            })
            .collect();
        connections.sort_by_key(|c| c.id);
        let apps = self.app_stats();
        let rates = self
            .rates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect();
        StatsSnapshot {
            listen,
            mode,
            uptime_s: self.started.elapsed().as_secs(),
            connections_open: self.connections_open.load(Relaxed),
            connections_total: self.connections_total.load(Relaxed),
            requests_total: self.requests_total.load(Relaxed),
            rejected_total: self.rejected_total.load(Relaxed),
            bytes_up: self.totals.up(),
            bytes_down: self.totals.down(),
            rates,
            hosts,
            apps,
            connections,
            dns,
            strategy,
            upstreams,
            cache,
        }
    }
}

impl Stats {
    /// Closed connections' totals per app plus the open ones', busiest first.
    fn app_stats(&self) -> Vec<AppStats> {
        let mut apps: std::collections::HashMap<String, AppStats> = self
            .apps
            .iter()
            .map(|e| {
                let (resolved_locally, resolved_locally_targets) = e
                    .resolved_locally
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                let stats = AppStats {
                    app: e.key().clone(),
                    bytes_up: e.bytes.up(),
                    bytes_down: e.bytes.down(),
                    connections: e.connections.load(Relaxed),
                    resolved_locally,
                    resolved_locally_targets,
                };
                (e.key().clone(), stats)
            })
            .collect();
        for conn in self.conns.iter() {
            let name = conn.app_name();
            let name = if apps.contains_key(name) || apps.len() < MAX_APPS {
                name
            } else {
                OTHER_APPS
            };
            let app = apps.entry(name.to_owned()).or_insert_with(|| AppStats {
                app: name.to_owned(),
                bytes_up: 0,
                bytes_down: 0,
                connections: 0,
                resolved_locally: 0,
                resolved_locally_targets: Vec::new(),
            });
            app.bytes_up += conn.bytes.up();
            app.bytes_down += conn.bytes.down();
            app.connections += 1;
            let (count, targets) = conn.resolved_locally();
            app.resolved_locally += count;
            for t in &targets {
                remember(&mut app.resolved_locally_targets, t);
            }
        }
        let mut apps: Vec<AppStats> = apps.into_values().collect();
        apps.sort_by(|a, b| {
            (b.bytes_up + b.bytes_down)
                .cmp(&(a.bytes_up + a.bytes_down))
                .then(b.connections.cmp(&a.connections))
                .then(a.app.cmp(&b.app))
        });
        apps
    }
}

/// `t` in Unix milliseconds (0 before 1970), as every report carries it.
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Bytes per second over one sampling interval.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct RateSample {
    pub unix_ms: u64,
    pub up_bps: u64,
    pub down_bps: u64,
}

#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct HostStats {
    pub host: String,
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// Tunnels (CONNECT, SOCKS5) opened to this host.
    pub connections: u64,
    /// Plain-HTTP requests forwarded to this host.
    pub requests: u64,
}

#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct ConnectionInfo {
    pub id: u64,
    pub client: SocketAddr,
    /// `http`, `connect`, `socks5`, or `pending` before the first request.
    pub protocol: String,
    pub target: String,
    pub opened_unix_ms: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// The name of the upstream carrying it; `None` when it goes direct.
    #[serde(default)]
    pub upstream: Option<String>,
    /// The client process; `None` while unknown or when the lookup failed.
    #[serde(default)]
    pub app: Option<ClientApp>,
}

/// Traffic of one client app (by process name; [`UNKNOWN_APP`] for
/// connections whose process was not found).
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct AppStats {
    pub app: String,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub connections: u64,
    /// Requests and tunnels whose target the app gave as an IP address
    /// (`CONNECT 1.2.3.4:443`, SOCKS5 with an IPv4/IPv6 address, plain HTTP
    /// to an address): it looked the name up itself, through the OS's
    /// resolver, before reaching Veil.
    #[serde(default)]
    pub resolved_locally: u64,
    /// The first few of those addresses.
    #[serde(default)]
    pub resolved_locally_targets: Vec<String>,
}

#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct DnsStats {
    pub hits: u64,
    pub misses: u64,
    pub entries: u64,
    /// Local lookups made while opening connections routed to an upstream
    /// (which resolves names itself): must be 0.
    #[serde(default)]
    pub proxied_lookups: u64,
}

/// A point-in-time copy of every counter, cheap to serialise.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct StatsSnapshot {
    pub listen: SocketAddr,
    pub mode: Mode,
    pub uptime_s: u64,
    pub connections_open: u64,
    pub connections_total: u64,
    pub requests_total: u64,
    pub rejected_total: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// Oldest first, one per second, up to five minutes.
    pub rates: Vec<RateSample>,
    /// Busiest first.
    pub hosts: Vec<HostStats>,
    /// Per client app, busiest first.
    #[serde(default)]
    pub apps: Vec<AppStats>,
    pub connections: Vec<ConnectionInfo>,
    pub dns: DnsStats,
    pub strategy: Strategy,
    /// Every configured upstream with its health and counters.
    pub upstreams: Vec<UpstreamReport>,
    /// The HTTP cache (plain HTTP only; HTTPS is never cached).
    #[serde(default)]
    pub cache: CacheStats,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_given_by_clients_are_counted_per_app_open_and_closed() {
        let stats = Stats::default();
        let curl = || ClientApp {
            pid: 1,
            name: "curl".into(),
            exe: None,
        };
        let closed = stats.open_connection("127.0.0.1:5000".parse().expect("addr"));
        closed.set_app(Some(curl()));
        closed.count_resolved_locally("93.184.216.34:443");
        stats.close_connection(closed.id);
        let open = stats.open_connection("127.0.0.1:5001".parse().expect("addr"));
        open.set_app(Some(curl()));
        open.count_resolved_locally("93.184.216.34:443");
        open.count_resolved_locally("[2001:db8::1]:80");
        let named = stats.open_connection("127.0.0.1:5002".parse().expect("addr"));
        named.set_app(Some(ClientApp {
            pid: 2,
            name: "firefox".into(),
            exe: None,
        }));
        let apps = stats.app_stats();
        let curl = apps.iter().find(|a| a.app == "curl").expect("curl listed");
        assert_eq!(curl.resolved_locally, 3);
        assert_eq!(
            curl.resolved_locally_targets,
            ["93.184.216.34:443", "[2001:db8::1]:80"]
        );
        let firefox = apps.iter().find(|a| a.app == "firefox").expect("listed");
        assert_eq!(firefox.resolved_locally, 0);
    }

    #[test]
    fn a_full_host_table_ages_out_idle_hosts_not_busy_ones() {
        let stats = Stats::default();
        // One host with an open connection, then enough others to fill up.
        let busy = stats.host("busy.example", false);
        for i in 0..MAX_HOSTS {
            drop(stats.host(&format!("h{i}.example"), true));
        }
        let new = stats.host("new.example", true);
        assert!(
            stats.hosts.contains_key("new.example"),
            "a new host is named, not lumped into {OTHER_HOSTS}"
        );
        assert!(!stats.hosts.contains_key(OTHER_HOSTS));
        assert!(stats.hosts.contains_key("busy.example"), "held hosts stay");
        assert!(stats.hosts.len() <= MAX_HOSTS);
        drop((busy, new));
    }
}
