//! Reaching a target through one upstream proxy.
//!
//! HTTP and HTTPS proxies get `CONNECT host:port` (their response head is
//! parsed with httparse, and any bytes after it are handed back to the relay);
//! SOCKS5 proxies get a CONNECT with the target's *name*, through
//! fast-socks5's client, so the proxy resolves it. Either way the target name
//! is never looked up here: only the proxy's own address is.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use fast_socks5::client::{Config as SocksConfig, Socks5Stream};
use fast_socks5::util::target_addr::TargetAddr;
use fast_socks5::{AuthenticationMethod, Socks5Command, SocksError};
use http::HeaderValue;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::stream::OutStream;
use super::{ProxyKind, UpstreamSpec};
use crate::Target;
use crate::dns::DnsCache;

/// Why an upstream could not carry a connection. The text goes into the 502
/// the client sees, so it names the upstream and says what to do.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot reach upstream {name} ({addr}): {reason}")]
    Unreachable {
        name: String,
        addr: String,
        reason: String,
    },
    #[error("upstream {name} did not answer within {}s", .after.as_secs_f32())]
    Timeout { name: String, after: Duration },
    #[error("TLS with upstream {name} failed: {reason}")]
    Tls { name: String, reason: String },
    #[error(
        "upstream {name} rejected Veil's credentials ({detail}); check its username and password"
    )]
    AuthRejected { name: String, detail: String },
    #[error("upstream {name} could not reach {target}: {reason}")]
    TargetFailed {
        name: String,
        target: String,
        reason: String,
    },
    #[error("upstream {name} answered in a way Veil does not understand: {reason}")]
    Protocol { name: String, reason: String },
    #[error(
        "upstream {name} ({addr}) is this Veil itself (the address reaches its own listener); \
         refusing to loop"
    )]
    Loop { name: String, addr: String },
    #[error("upstream {name} is marked down: {reason}")]
    Down { name: String, reason: String },
}

impl UpstreamError {
    /// True when the upstream itself is at fault (it counts against its
    /// health and another upstream may do better); false when the upstream
    /// worked but the target could not be reached.
    pub fn is_upstream_fault(&self) -> bool {
        !matches!(self, UpstreamError::TargetFailed { .. })
    }
}

/// What is needed to open connections through one upstream.
pub(crate) struct Dialer {
    spec: UpstreamSpec,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    /// `Proxy-Authorization` for HTTP(S) proxies.
    pub auth_header: Option<HeaderValue>,
    /// The engine's own listener, when this upstream is one of its pool's:
    /// a connection that reaches it is refused as a loop.
    own_listener: Option<SocketAddr>,
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialer")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

/// The platform's trusted roots, loaded once.
fn native_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let result = rustls_native_certs::load_native_certs();
        if !result.errors.is_empty() {
            tracing::debug!(
                "some system CA certificates could not be read: {:?}",
                result.errors
            );
        }
        result.certs
    })
}

impl Dialer {
    pub fn new(spec: UpstreamSpec) -> Result<Self, String> {
        let tls = match spec.url.kind {
            ProxyKind::Https => Some(tls_connector(&spec)?),
            _ => None,
        };
        let auth_header = match (&spec.url.username, &spec.url.kind) {
            (Some(user), ProxyKind::Http | ProxyKind::Https) => {
                let pass = spec.password.as_deref().unwrap_or_default();
                let token =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
                let mut value = HeaderValue::from_str(&format!("Basic {token}")).map_err(|_| {
                    format!("upstream {}: user name is not a valid header", spec.name)
                })?;
                value.set_sensitive(true);
                Some(value)
            }
            _ => None,
        };
        Ok(Self {
            spec,
            tls,
            auth_header,
            own_listener: None,
        })
    }

    /// Refuses connections that reach `listen`, the engine's own listener.
    pub fn guarding(mut self, listen: SocketAddr) -> Self {
        self.own_listener = Some(listen);
        self
    }

    pub fn spec(&self) -> &UpstreamSpec {
        &self.spec
    }

    fn name(&self) -> String {
        self.spec.name.clone()
    }

    /// TCP (and TLS for `https://`) to the proxy itself.
    pub async fn open(&self, dns: &DnsCache) -> Result<OutStream, UpstreamError> {
        let url = &self.spec.url;
        let unreachable = |reason: String| UpstreamError::Unreachable {
            name: self.name(),
            addr: format!("{}:{}", url.host, url.port),
            reason,
        };
        let ips = dns
            .lookup_upstream(&url.host)
            .await
            .map_err(|e| unreachable(e.reason))?;
        let mut last = String::from("no addresses");
        let mut tcp = None;
        for ip in ips.iter() {
            match TcpStream::connect(SocketAddr::new(*ip, url.port)).await {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = e.to_string(),
            }
        }
        let tcp = tcp.ok_or_else(|| unreachable(last))?;
        if let Some(listen) = self.own_listener
            && crate::target::connected_to_self(listen, &tcp)
        {
            return Err(UpstreamError::Loop {
                name: self.name(),
                addr: format!("{}:{}", url.host, url.port),
            });
        }
        let _ = tcp.set_nodelay(true);
        crate::keepalive::enable(&tcp);
        match &self.tls {
            None => Ok(OutStream::Tcp(tcp)),
            Some((connector, server_name)) => connector
                .connect(server_name.clone(), tcp)
                .await
                .map(|s| OutStream::Tls(Box::new(s)))
                .map_err(|e| UpstreamError::Tls {
                    name: self.name(),
                    reason: e.to_string(),
                }),
        }
    }

    /// A tunnel to `target` through this upstream, with any bytes the proxy
    /// sent after its answer (they belong to the target's stream).
    pub async fn tunnel(
        &self,
        dns: &DnsCache,
        target: &Target,
        timeout: Duration,
    ) -> Result<(OutStream, Bytes), UpstreamError> {
        let work = async {
            let stream = self.open(dns).await?;
            match self.spec.url.kind {
                ProxyKind::Http | ProxyKind::Https => self.http_connect(stream, target).await,
                ProxyKind::Socks5 => self.socks_connect(stream, target).await,
            }
        };
        tokio::time::timeout(timeout, work)
            .await
            .unwrap_or_else(|_| {
                Err(UpstreamError::Timeout {
                    name: self.name(),
                    after: timeout,
                })
            })
    }

    /// The `Proxy-Authorization` header line for HTTP(S) proxies, or nothing.
    pub fn auth_line(&self) -> String {
        self.auth_header
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .map(|v| format!("Proxy-Authorization: {v}\r\n"))
            .unwrap_or_default()
    }

    async fn http_connect(
        &self,
        mut stream: OutStream,
        target: &Target,
    ) -> Result<(OutStream, Bytes), UpstreamError> {
        let authority = target.to_string();
        let request = format!(
            "CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n{}\r\n",
            self.auth_line()
        );
        let head = exchange(&mut stream, request.as_bytes())
            .await
            .map_err(|reason| UpstreamError::Protocol {
                name: self.name(),
                reason: format!("{reason} (answering CONNECT)"),
            })?;
        let reason = format!("{} {}", head.code, head.reason);
        match head.code {
            200..=299 => Ok((stream, head.rest)),
            // The answer to CONNECT is the proxy's own, so a 401 is its login
            // refused too (tinyproxy answers a wrong password with 401, a
            // missing one with 407).
            401 | 407 => Err(UpstreamError::AuthRejected {
                name: self.name(),
                detail: if self.auth_header.is_some() {
                    reason
                } else {
                    format!("{reason}; no username is configured for it")
                },
            }),
            _ => Err(UpstreamError::TargetFailed {
                name: self.name(),
                target: target.to_string(),
                reason,
            }),
        }
    }

    async fn socks_connect(
        &self,
        stream: OutStream,
        target: &Target,
    ) -> Result<(OutStream, Bytes), UpstreamError> {
        let auth = match (&self.spec.url.username, &self.spec.password) {
            (Some(user), pass) => Some(AuthenticationMethod::Password {
                username: user.clone(),
                password: pass.clone().unwrap_or_default(),
            }),
            (None, _) => None,
        };
        let addr = match target {
            Target::Ip(a) => TargetAddr::Ip(*a),
            Target::Domain(name, port) => TargetAddr::Domain(name.clone(), *port),
        };
        let map = |e: SocksError| self.socks_error(e, target);
        let mut socks = Socks5Stream::use_stream(stream, auth, SocksConfig::default())
            .await
            .map_err(map)?;
        socks
            .request(Socks5Command::TCPConnect, addr)
            .await
            .map_err(map)?;
        Ok((socks.get_socket(), Bytes::new()))
    }

    fn socks_error(&self, e: SocksError, target: &Target) -> UpstreamError {
        let name = self.name();
        match e {
            SocksError::AuthenticationRejected(_) => UpstreamError::AuthRejected {
                name,
                detail: "SOCKS5 username/password refused".into(),
            },
            SocksError::AuthMethodUnacceptable(_) => UpstreamError::AuthRejected {
                name,
                detail: if self.spec.url.username.is_some() {
                    "SOCKS5 proxy accepts none of Veil's login methods".into()
                } else {
                    "SOCKS5 proxy wants a login and none is configured".into()
                },
            },
            SocksError::ReplyError(reply) => UpstreamError::TargetFailed {
                name,
                target: target.to_string(),
                reason: reply.to_string(),
            },
            SocksError::Io(e) => UpstreamError::Protocol {
                name,
                reason: format!("connection broke during the SOCKS5 handshake: {e}"),
            },
            // Never format the remaining variants whole: some carry what was sent.
            _ => UpstreamError::Protocol {
                name,
                reason: "unexpected SOCKS5 answer".into(),
            },
        }
    }
}

/// A response head read off a stream.
pub(crate) struct ResponseHead {
    pub code: u16,
    pub reason: String,
    /// Bytes that came after the head (the start of a tunnel's stream).
    pub rest: Bytes,
}

/// Sends `request` and reads the response head (at most 16 KiB), parsed by
/// httparse.
pub(crate) async fn exchange(
    stream: &mut OutStream,
    request: &[u8],
) -> Result<ResponseHead, String> {
    stream
        .write_all(request)
        .await
        .map_err(|e| format!("connection broke: {e}"))?;
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        let n = stream
            .read_buf(&mut buf)
            .await
            .map_err(|e| format!("connection broke: {e}"))?;
        if n == 0 {
            return Err("it closed the connection instead of answering".into());
        }
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                return Ok(ResponseHead {
                    code: resp.code.unwrap_or(0),
                    reason: resp.reason.unwrap_or_default().to_owned(),
                    rest: buf.split_off(len).freeze(),
                });
            }
            Ok(httparse::Status::Partial) if buf.len() < 16 * 1024 => continue,
            Ok(httparse::Status::Partial) => return Err("its answer is too long".into()),
            Err(e) => return Err(format!("bad answer: {e}")),
        }
    }
}

fn tls_connector(spec: &UpstreamSpec) -> Result<(TlsConnector, ServerName<'static>), String> {
    let mut roots = RootCertStore::empty();
    let (_added, _ignored) = roots.add_parsable_certificates(native_roots().iter().cloned());
    if let Some(path) = &spec.ca_file {
        let certs = CertificateDer::pem_file_iter(path).map_err(|e| {
            format!(
                "upstream {}: cannot read ca_file {}: {e}",
                spec.name,
                path.display()
            )
        })?;
        for cert in certs {
            let cert = cert.map_err(|e| {
                format!(
                    "upstream {}: bad certificate in {}: {e}",
                    spec.name,
                    path.display()
                )
            })?;
            roots
                .add(cert)
                .map_err(|e| format!("upstream {}: unusable CA certificate: {e}", spec.name))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let server_name = ServerName::try_from(spec.url.host.clone()).map_err(|_| {
        format!(
            "upstream {}: {:?} is not a valid TLS server name",
            spec.name, spec.url.host
        )
    })?;
    Ok((TlsConnector::from(Arc::new(config)), server_name))
}
