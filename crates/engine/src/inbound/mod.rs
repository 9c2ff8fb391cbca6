//! The mixed listener's side of a connection.
//!
//! [`serve`] peeks at the first byte: `0x05` starts a SOCKS5 handshake
//! ([`socks`]), anything else is handed to hyper as HTTP/1.1 ([`http`]), which
//! answers forward requests and `CONNECT`. Tunnels of both kinds end in
//! `relay`.

mod first;
mod forward;
mod headers;
mod http;
mod interim;
pub mod pac;
mod relay;
mod socks;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument;

pub use forward::HttpForwarder;

use crate::engine::Shared;
use crate::stats::{ByteCounters, ConnEntry, Counted, Side};
use crate::upstream::Lease;
use crate::{EngineEvent, Target};
use first::First;

const SOCKS5_VERSION: u8 = 0x05;
const SOCKS4_VERSION: u8 = 0x04;

/// Keeps a client connection counted as open for as long as anything (the
/// HTTP connection, a tunnel spawned from it) still uses it.
struct ConnGuard {
    shared: Arc<Shared>,
    entry: Arc<ConnEntry>,
    /// The client's address, when it is on another machine: wrong logins
    /// from there are throttled (a local client is not, so that nothing on
    /// this computer can lock its user out of their own proxy).
    throttled_ip: Option<std::net::IpAddr>,
    /// The client is on another machine: neither loopback nor this host's
    /// own address on the interface it came in on.
    remote_client: bool,
    /// Set when the client is another local user's process: every request
    /// on the connection is refused with this reason.
    refusal: std::sync::OnceLock<String>,
    /// The connection slot and descriptors, given back when it closes.
    _permit: (OwnedSemaphorePermit, crate::fd_budget::Held),
}

impl ConnGuard {
    fn routed(&self, protocol: &'static str, target: &Target) {
        let resolved_locally = matches!(target, Target::Ip(_));
        let target = target.to_string();
        if resolved_locally {
            self.entry.count_resolved_locally(&target);
        }
        tracing::Span::current().record("target", tracing::field::display(&target));
        if self.entry.set_route(protocol, target.clone()) {
            self.shared.emit(EngineEvent::ConnectionRouted {
                id: self.entry.id,
                protocol,
                target,
            });
        }
    }
}

/// What a client from another machine is told when it asks for this one.
const HOST_ITSELF: &str = "Veil does not let clients on other machines reach services on this \
                           computer's loopback address.";

impl ConnGuard {
    /// Runs a tunnel until it ends, until no byte has moved either way for
    /// the configured idle time (a peer that vanished during sleep or a
    /// network change), or until the user closes it, whichever comes first.
    fn unless_idle<'a>(
        &'a self,
        tunnel: impl Future<Output = ()> + 'a,
    ) -> impl Future<Output = ()> + 'a {
        let limit = self.shared.config.limits.tunnel_idle_timeout;
        let idle = async move {
            idle_for(&self.entry.bytes, limit).await;
            tracing::debug!("tunnel idle for {}s: closed", limit.as_secs());
        };
        let closed = async move {
            self.entry.close_requested().await;
            tracing::debug!("tunnel closed by the user");
        };
        First::new(tunnel, First::new(idle, closed))
    }

    /// Whether a client on another machine (a LAN listener with credentials)
    /// asks for this computer's loopback services, which are loopback-only
    /// so that the network cannot reach them.
    fn wants_host_loopback(&self, target: &Target) -> bool {
        self.remote_client && target.is_loopback()
    }

    /// Records the upstream carrying the connection now (`None`: direct).
    fn carried_by(&self, lease: Option<&Lease>) {
        self.entry.set_upstream(lease.map(|l| l.upstream().name()));
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.shared.stats.close_connection(self.entry.id);
        tracing::debug!(
            up = self.entry.bytes.up(),
            down = self.entry.bytes.down(),
            "connection closed"
        );
        self.shared.emit(EngineEvent::ConnectionClosed {
            id: self.entry.id,
            bytes_up: self.entry.bytes.up(),
            bytes_down: self.entry.bytes.down(),
        });
    }
}

pub(crate) async fn serve(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    permit: (OwnedSemaphorePermit, crate::fd_budget::Held),
) {
    let entry = shared.stats.open_connection(peer);
    shared.attribution.request(&entry);
    // Asked now, so the table is read while the client sends its first bytes.
    let user = shared.users.check(peer);
    let span =
        tracing::debug_span!("conn", id = entry.id, client = %peer, target = tracing::field::Empty);
    shared.emit(EngineEvent::ConnectionOpened {
        id: entry.id,
        client: peer,
    });
    // On a loopback listener (the default) every client is local: no
    // getsockname per connection to find that out.
    let peer_ip = crate::target::canonical_ip(peer.ip());
    let remote_client = !shared.listen.ip().is_loopback()
        && !peer_ip.is_loopback()
        && !matches!(
            stream.local_addr().map(|a| crate::target::canonical_ip(a.ip())),
            Ok(local) if local == peer_ip
        );
    let guard = Arc::new(ConnGuard {
        shared: shared.clone(),
        entry: entry.clone(),
        remote_client,
        throttled_ip: remote_client.then_some(peer_ip),
        refusal: std::sync::OnceLock::new(),
        _permit: permit,
    });
    let hard_stop = shared.hard_stop.clone();
    let closing = entry.clone();
    let work = async move {
        let _ = stream.set_nodelay(true);
        crate::keepalive::enable(&stream);
        let mut first = [0u8; 1];
        let limits = &shared.config.limits;
        let peeked = tokio::time::timeout(limits.handshake_timeout, stream.peek(&mut first)).await;
        match peeked {
            Ok(Ok(1)) => {}
            Ok(_) => return,
            Err(_) => {
                tracing::debug!("client sent nothing in time");
                return;
            }
        }
        if let Some(why) = user.await.refusal() {
            shared.stats.count_rejected();
            let _ = guard.refusal.set(why);
        }
        let counted = Counted::new(
            stream,
            Side::Client,
            vec![entry.bytes.clone(), shared.stats.totals.clone()],
        );
        match first[0] {
            SOCKS5_VERSION => socks::serve(shared, guard, counted).await,
            SOCKS4_VERSION => {
                // SOCKS4 cannot carry host names (no remote DNS) or passwords;
                // answer "request rejected" in its own format and close.
                shared.stats.count_rejected();
                let mut counted = counted;
                let _ = counted.write_all(&[0, 0x5b, 0, 0, 0, 0, 0, 0]).await;
            }
            _ => http::serve(shared, guard, counted).await,
        }
    }
    .instrument(span);
    // Ends with the engine, or when the user closes the connection.
    First::new(
        work,
        First::new(hard_stop.cancelled_owned(), closing.close_requested()),
    )
    .await;
}

/// Resolves once `bytes` has not moved for `limit`.
async fn idle_for(bytes: &ByteCounters, limit: std::time::Duration) {
    let step = (limit / 4).clamp(
        std::time::Duration::from_millis(100),
        std::time::Duration::from_secs(30),
    );
    let mut seen = (bytes.up(), bytes.down());
    let mut quiet_since = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(step).await;
        let now = (bytes.up(), bytes.down());
        if now != seen {
            seen = now;
            quiet_since = tokio::time::Instant::now();
        } else if quiet_since.elapsed() >= limit {
            return;
        }
    }
}

/// Runs a tunnel that outlives its HTTP exchange (CONNECT, upgrades), tracked
/// for graceful shutdown and closed when the grace period ends.
fn spawn_tunnel(shared: &Shared, tunnel: impl Future<Output = ()> + Send + 'static) {
    let hard_stop = shared.hard_stop.clone().cancelled_owned();
    shared.tasks.spawn(First::new(tunnel, hard_stop));
}
