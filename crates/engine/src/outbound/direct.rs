use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;

use super::ConnectError;
use crate::Target;
use crate::dns::DnsCache;

/// Direct connections from this machine, names resolved through the cache.
#[derive(Debug, Clone)]
pub struct Direct {
    dns: DnsCache,
    connect_timeout: Duration,
    /// The engine's own listener; a target equal to it would loop forever.
    own_listener: SocketAddr,
}

impl Direct {
    pub fn new(dns: DnsCache, connect_timeout: Duration, own_listener: SocketAddr) -> Self {
        Self {
            dns,
            connect_timeout,
            own_listener,
        }
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
            let mut last_err = None;
            for addr in addrs {
                if self.is_own_listener(addr) {
                    return Err(ConnectError::Loop {
                        target: target.clone(),
                    });
                }
                match TcpStream::connect(addr).await {
                    Ok(stream) => {
                        let _ = stream.set_nodelay(true);
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
        crate::target::reaches_listener(self.own_listener, &addr.ip().to_string(), addr.port())
    }
}
