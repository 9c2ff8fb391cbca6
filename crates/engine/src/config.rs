use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::attribution::ClientLookup;
use crate::auth::Credentials;
use crate::cache::CacheConfig;
use crate::routing::{Action, Routing};
use crate::upstream::{HealthConfig, Strategy, UpstreamSpec};

/// Where traffic leaves from.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Straight from this machine.
    #[default]
    Direct,
    /// Through the configured upstream proxies.
    Proxy,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Direct => "direct",
            Mode::Proxy => "proxy",
        })
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "direct" => Ok(Mode::Direct),
            "proxy" => Ok(Mode::Proxy),
            other => Err(format!(
                "unknown mode {other:?}: expected \"direct\" or \"proxy\""
            )),
        }
    }
}

/// Bounds that keep one misbehaving client from hurting the others.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections served at once; further clients wait in the accept queue.
    pub max_connections: usize,
    /// Time a client has to send its first byte, its request head or its SOCKS5
    /// handshake (the slowloris guard).
    pub handshake_timeout: Duration,
    /// Time allowed to open a connection to a target.
    pub connect_timeout: Duration,
    /// How long open tunnels may finish after shutdown begins.
    pub shutdown_grace: Duration,
    /// Largest request head accepted (request line plus headers).
    pub max_header_bytes: usize,
    /// A tunnel (CONNECT, SOCKS5, WebSocket) with no byte either way for this
    /// long is closed: its peer vanished (sleep, a network change) and TCP
    /// would otherwise keep it, and its file descriptors, for hours. Long
    /// enough for a quiet WebSocket.
    pub tunnel_idle_timeout: Duration,
    /// File descriptors the engine may hold for clients, tunnels and their
    /// outbound connections: the open-file limit less a reserve for the
    /// history, the cache, logs and the system-proxy restore. Past it new
    /// clients get a 503 (`fd_budget.rs`). `None`: only the connection cap.
    pub fd_budget: Option<usize>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            handshake_timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(5),
            max_header_bytes: 64 * 1024,
            tunnel_idle_timeout: Duration::from_secs(3600),
            fd_budget: None,
        }
    }
}

/// Everything the engine needs to run. Front ends build it from `config.toml`
/// and command-line flags.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Address of the mixed HTTP/CONNECT/SOCKS5 listener.
    pub listen: SocketAddr,
    pub mode: Mode,
    /// Inbound credentials; `None` means clients need none.
    pub auth: Option<Credentials>,
    pub limits: Limits,
    /// DNS servers for direct traffic; empty means the system's resolver
    /// configuration (and hosts file).
    pub dns_servers: Vec<SocketAddr>,
    /// Upstream proxies used in mode `proxy`.
    pub upstreams: Vec<UpstreamSpec>,
    /// The kill switch, off by default: when no upstream can carry a
    /// connection the proxy route sends it (every upstream down or failing),
    /// it fails with a 502 that names them. Set, Veil goes direct instead,
    /// and says so in the log and to the client.
    pub fallback_direct: bool,
    pub strategy: Strategy,
    pub health: HealthConfig,
    /// Hosts, `*.suffixes` and CIDRs that always go direct.
    pub bypass: Vec<String>,
    /// Per-domain rules; the most specific pattern wins.
    pub rules: Vec<(String, Action)>,
    /// The shared HTTP cache for plain-HTTP `GET`/`HEAD`.
    pub cache: CacheConfig,
    /// Finds the local process behind each client connection (client app
    /// attribution); `None` leaves every app unknown.
    pub client_lookup: Option<Arc<dyn ClientLookup>>,
}

/// The listener's default: loopback only, so nothing else on the network can
/// use this machine as an open proxy.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7890";

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.parse().expect("constant address parses"),
            mode: Mode::Direct,
            auth: None,
            limits: Limits::default(),
            dns_servers: Vec::new(),
            upstreams: Vec::new(),
            fallback_direct: false,
            strategy: Strategy::default(),
            health: HealthConfig::default(),
            bypass: Routing::default_bypass(),
            rules: Vec::new(),
            cache: CacheConfig::default(),
            client_lookup: None,
        }
    }
}
