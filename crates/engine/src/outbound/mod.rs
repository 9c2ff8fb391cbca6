//! How connections leave the machine.
//!
//! [`Outbound`] decides the route of each [`Target`] ([`Routing`] and the
//! mode) and opens it: [`Direct`] connects from this machine through the DNS
//! cache; the upstream [`Pool`] connects through a proxy and never resolves
//! the target's name. [`HttpConnector`] plugs `Direct` into hyper's pooled
//! client, so plain HTTP and tunnels take the same way out.

pub(crate) mod connector;
mod direct;

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
pub use connector::HttpConnector;
pub use direct::Direct;

use crate::Mode;
use crate::routing::{Action, Routing};
use crate::upstream::{Lease, OutStream, Pool, PoolError};

use crate::Target;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body type of every request and response the engine sends on.
pub type Body = http_body_util::combinators::BoxBody<bytes::Bytes, BoxError>;

/// Why a target could not be reached. The message is shown to the client in
/// a 502, so it names the target and says what went wrong, and nothing else.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot resolve {target}: {reason}")]
    Dns { target: Target, reason: String },
    #[error("{target} refused the connection")]
    Refused { target: Target },
    #[error("{target} did not answer within {}s", .timeout.as_secs())]
    Timeout { target: Target, timeout: Duration },
    #[error("cannot connect to {target}: {source}")]
    Io {
        target: Target,
        #[source]
        source: io::Error,
    },
    #[error("{target} is this proxy's own listener; refusing to loop")]
    Loop { target: Target },
    /// A name that resolves inside (loopback, this network) without the
    /// user having listed it: how a web page reaches the router or local
    /// services through the proxy (DNS rebinding).
    #[error(
        "{target} resolves to {addr}, an address on this computer or its local network; Veil \
         connects there only for names in the bypass list or a \"direct\" rule"
    )]
    Internal {
        target: Target,
        addr: std::net::IpAddr,
    },
}

impl ConnectError {
    /// The SOCKS5 reply code (RFC 1928, section 6) that says the same.
    pub fn socks_reply(&self) -> fast_socks5::ReplyError {
        use fast_socks5::ReplyError;
        match self {
            ConnectError::Dns { .. } => ReplyError::HostUnreachable,
            ConnectError::Refused { .. } => ReplyError::ConnectionRefused,
            ConnectError::Timeout { .. } => ReplyError::TtlExpired,
            ConnectError::Loop { .. } | ConnectError::Internal { .. } => {
                ReplyError::ConnectionNotAllowed
            }
            ConnectError::Io { source, .. } => match source.kind() {
                io::ErrorKind::NetworkUnreachable => ReplyError::NetworkUnreachable,
                io::ErrorKind::HostUnreachable => ReplyError::HostUnreachable,
                _ => ReplyError::GeneralFailure,
            },
        }
    }
}

/// A connection to a target, ready for relaying.
#[derive(Debug)]
pub struct Opened {
    pub stream: OutStream,
    /// Bytes the upstream already sent from the target.
    pub pending: Bytes,
    /// The upstream carrying it, if any; held for the connection's life.
    pub lease: Option<Lease>,
    /// Why it went direct although its route was the upstreams (the user
    /// allowed the fallback); `None` for every connection on its own route.
    pub fell_back: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{target} is blocked by a rule in Veil's config")]
    Blocked { target: Target },
    #[error(transparent)]
    Direct(#[from] ConnectError),
    /// The kill switch: no upstream could carry it, and Veil does not go
    /// direct on its own.
    #[error("{0}; {NOT_DIRECT}")]
    Upstream(#[from] PoolError),
    /// Every upstream failed, the user allowed the fallback, and direct
    /// failed too.
    #[error("{upstream}; going direct instead (fallback_direct is on) failed too: {direct}")]
    FallbackFailed {
        upstream: PoolError,
        direct: ConnectError,
    },
}

/// What every upstream failure says, so nobody wonders whether their
/// traffic left from the real address instead.
pub const NOT_DIRECT: &str = "Veil did not connect directly instead (proxy.fallback_direct is off)";

/// The header on a response (or a CONNECT's 200) that went direct because
/// every upstream failed and the user allowed that.
pub const FALLBACK_HEADER: &str = "veil-fallback";

impl OpenError {
    pub fn socks_reply(&self) -> fast_socks5::ReplyError {
        match self {
            OpenError::Blocked { .. } => fast_socks5::ReplyError::ConnectionNotAllowed,
            OpenError::Direct(e) => e.socks_reply(),
            OpenError::Upstream(e) => e.socks_reply(),
            OpenError::FallbackFailed { direct, .. } => direct.socks_reply(),
        }
    }
}

/// The routing in force, shared by the outbound side and the direct
/// connector (which checks where names may resolve); replaced whole.
pub type SharedRouting = Arc<RwLock<Arc<Routing>>>;

/// Routing plus the ways out.
#[derive(Debug)]
pub struct Outbound {
    pub direct: Direct,
    pub pool: Arc<Pool>,
    routing: SharedRouting,
    proxy_mode: AtomicBool,
    /// The user allows direct when no upstream can carry a connection.
    fallback_direct: AtomicBool,
}

impl Outbound {
    /// `routing` is the same one `direct` checks names against.
    pub fn new(
        direct: Direct,
        pool: Arc<Pool>,
        routing: SharedRouting,
        mode: Mode,
        fallback_direct: bool,
    ) -> Self {
        Self {
            direct,
            pool,
            routing,
            proxy_mode: AtomicBool::new(mode == Mode::Proxy),
            fallback_direct: AtomicBool::new(fallback_direct),
        }
    }

    pub fn fallback_direct(&self) -> bool {
        self.fallback_direct.load(Ordering::Relaxed)
    }

    pub fn set_fallback_direct(&self, allowed: bool) {
        self.fallback_direct.store(allowed, Ordering::Relaxed);
    }

    /// Whether a connection whose upstreams failed with `err` may go direct:
    /// only when the user allowed it, and only when the upstreams were the
    /// problem (an upstream that reached out and found the target
    /// unreachable says nothing direct would fix).
    pub fn may_fall_back(&self, err: &PoolError) -> bool {
        self.fallback_direct() && err.0.iter().all(|e| e.is_upstream_fault())
    }

    pub fn mode(&self) -> Mode {
        if self.proxy_mode.load(Ordering::Relaxed) {
            Mode::Proxy
        } else {
            Mode::Direct
        }
    }

    pub fn set_mode(&self, mode: Mode) {
        self.proxy_mode
            .store(mode == Mode::Proxy, Ordering::Relaxed);
    }

    pub fn set_routing(&self, routing: Routing) {
        *self.routing.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(routing);
    }

    /// The routing in force now (the PAC file is made from it).
    pub fn routing(&self) -> Arc<Routing> {
        self.routing
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn route(&self, target: &Target) -> Action {
        let routing = self
            .routing
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        routing.decide(self.mode(), target)
    }

    /// Opens a connection to `target` the way the routing says.
    pub async fn open(&self, target: &Target) -> Result<Opened, OpenError> {
        match self.route(target) {
            Action::Block => Err(OpenError::Blocked {
                target: target.clone(),
            }),
            Action::Direct => Ok(Opened {
                stream: OutStream::Tcp(self.direct.connect(target).await?),
                pending: Bytes::new(),
                lease: None,
                fell_back: None,
            }),
            Action::Proxy => match crate::dns::for_upstream_traffic(self.pool.tunnel(target)).await
            {
                Ok((stream, pending, lease)) => Ok(Opened {
                    stream,
                    pending,
                    lease: Some(lease),
                    fell_back: None,
                }),
                Err(upstream) if self.may_fall_back(&upstream) => {
                    tracing::warn!(
                        %target,
                        "no upstream could carry the connection ({upstream}); going direct, as \
                         proxy.fallback_direct allows"
                    );
                    match self.direct.connect(target).await {
                        Ok(stream) => Ok(Opened {
                            stream: OutStream::Tcp(stream),
                            pending: Bytes::new(),
                            lease: None,
                            fell_back: Some(upstream.to_string()),
                        }),
                        Err(direct) => Err(OpenError::FallbackFailed { upstream, direct }),
                    }
                }
                Err(upstream) => Err(OpenError::Upstream(upstream)),
            },
        }
    }
}
