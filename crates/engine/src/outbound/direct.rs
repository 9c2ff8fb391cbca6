use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;

use super::{ConnectError, SharedRouting};
use crate::Target;
use crate::dns::DnsCache;

/// Direct connections from this machine, names resolved through the cache.
#[derive(Debug, Clone)]
pub struct Direct {
    dns: DnsCache,
    connect_timeout: Duration,
    /// The engine's own listener; a target equal to it would loop forever.
    own_listener: SocketAddr,
    /// Which names may resolve to internal addresses.
    routing: SharedRouting,
}

impl Direct {
    pub fn new(
        dns: DnsCache,
        connect_timeout: Duration,
        own_listener: SocketAddr,
        routing: SharedRouting,
    ) -> Self {
        Self {
            dns,
            connect_timeout,
            own_listener,
            routing,
        }
    }

    /// Refuses a resolved address inside this computer or its network for
    /// a name the user did not list (IP literals are what the user typed
    /// and are never checked). The address checked is the one connected to:
    /// nothing is resolved twice, so the answer cannot change in between.
    fn check_resolved(&self, target: &Target, addr: SocketAddr) -> Result<(), ConnectError> {
        if !is_internal(addr.ip()) {
            return Ok(());
        }
        let routing = self
            .routing
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if routing.allows_internal(target) {
            return Ok(());
        }
        Err(ConnectError::Internal {
            target: target.clone(),
            addr: addr.ip(),
        })
    }

    pub fn dns(&self) -> &DnsCache {
        &self.dns
    }

    /// Connects to `target`, trying each resolved address in turn within one
    /// overall timeout.
    pub async fn connect(&self, target: &Target) -> Result<TcpStream, ConnectError> {
        let attempt = async {
            let addrs: Vec<SocketAddr> = match target {
                Target::Ip(addr) => vec![*addr],
                Target::Domain(host, port) => self
                    .dns
                    .lookup(host)
                    .await
                    .map_err(|e| ConnectError::Dns {
                        target: target.clone(),
                        reason: e.reason,
                    })?
                    .iter()
                    .map(|ip| SocketAddr::new(crate::target::canonical_ip(*ip), *port))
                    .collect(),
            };
            if matches!(target, Target::Domain(..)) {
                for addr in &addrs {
                    self.check_resolved(target, *addr)?;
                }
            }
            let mut last_err = None;
            for addr in addrs {
                if self.is_own_listener(addr) {
                    return Err(ConnectError::Loop {
                        target: target.clone(),
                    });
                }
                match TcpStream::connect(addr).await {
                    Ok(stream) => {
                        if crate::target::connected_to_self(self.own_listener, &stream) {
                            return Err(ConnectError::Loop {
                                target: target.clone(),
                            });
                        }
                        let _ = stream.set_nodelay(true);
                        crate::keepalive::enable(&stream);
                        return Ok(stream);
                    }
                    Err(e) => last_err = Some(e),
                }
            }
            let err =
                last_err.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no addresses"));
            Err(match err.kind() {
                io::ErrorKind::ConnectionRefused => ConnectError::Refused {
                    target: target.clone(),
                },
                _ => ConnectError::Io {
                    target: target.clone(),
                    source: err,
                },
            })
        };
        match tokio::time::timeout(self.connect_timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(ConnectError::Timeout {
                target: target.clone(),
                timeout: self.connect_timeout,
            }),
        }
    }

    /// `addr` is canonical (see [`crate::target::canonical_ip`]); a wildcard
    /// listener is reached on every loopback address.
    fn is_own_listener(&self, addr: SocketAddr) -> bool {
        crate::target::reaches_listener(self.own_listener, addr)
    }
}

/// Loopback, private (RFC 1918, IPv6 unique local), link-local, CGNAT
/// (100.64.0.0/10), unspecified and multicast addresses: where a name from
/// the internet has no business pointing.
fn is_internal(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match crate::target::canonical_ip(ip) {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_internal;

    #[test]
    fn internal_addresses() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:192.168.1.1",
            "224.0.0.1",
        ] {
            assert!(is_internal(ip.parse().expect(ip)), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "100.128.0.1",
            "2001:db8::1",
            "::ffff:8.8.8.8",
        ] {
            assert!(!is_internal(ip.parse().expect(ip)), "{ip}");
        }
    }
}
