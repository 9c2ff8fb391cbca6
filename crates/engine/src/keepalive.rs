//! TCP keepalive on both sides of a tunnel. Without it a tunnel whose peer
//! vanished (the laptop slept, the Wi-Fi changed) stays open until the idle
//! timeout, and the kernel never notices; with it the dead side is found in
//! about two minutes and the tunnel ends.

use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::net::TcpStream;

/// First probe after a minute of silence, then every 15 s.
pub(crate) fn enable(stream: &TcpStream) {
    let params = TcpKeepalive::new().with_time(Duration::from_secs(60));
    #[cfg(any(target_os = "linux", target_os = "macos", target_os = "windows"))]
    let params = params.with_interval(Duration::from_secs(15));
    if let Err(e) = SockRef::from(stream).set_tcp_keepalive(&params) {
        tracing::debug!("TCP keepalive not set: {e}");
    }
}
