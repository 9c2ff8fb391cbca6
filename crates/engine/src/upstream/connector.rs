use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::rt::TokioIo;

use super::ProxyKind;
use super::dial::{Dialer, UpstreamError};
use super::stream::ClientConn;
use crate::Target;
use crate::dns::DnsCache;
use crate::fd_budget::{FdBudget, Pooled};

/// Connections for hyper's pooled client that forwards plain HTTP through
/// one upstream: to the proxy itself for HTTP(S) proxies (the client then
/// writes absolute-form requests), or a SOCKS5 tunnel to the origin.
#[derive(Debug, Clone)]
pub struct UpstreamConnector {
    pub(crate) dialer: Arc<Dialer>,
    pub(crate) dns: DnsCache,
    pub(crate) timeout: Duration,
    /// Each pooled connection holds a descriptor of the budget.
    pub(crate) fds: FdBudget,
}

impl tower_service::Service<Uri> for UpstreamConnector {
    type Response = TokioIo<Pooled<ClientConn>>;
    type Error = UpstreamError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, UpstreamError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let name = this.dialer.spec().name.clone();
            match this.dialer.spec().url.kind {
                ProxyKind::Http | ProxyKind::Https => {
                    let stream = tokio::time::timeout(this.timeout, this.dialer.open(&this.dns))
                        .await
                        .map_err(|_| UpstreamError::Timeout {
                            name,
                            after: this.timeout,
                        })??;
                    let conn = ClientConn {
                        stream,
                        to_proxy: true,
                    };
                    Ok(TokioIo::new(Pooled::new(conn, &this.fds)))
                }
                ProxyKind::Socks5 => {
                    let host = uri.host().unwrap_or_default();
                    let target = Target::new(host, uri.port_u16().unwrap_or(80)).map_err(|e| {
                        UpstreamError::TargetFailed {
                            name,
                            target: uri.to_string(),
                            reason: e.to_string(),
                        }
                    })?;
                    let (stream, _) = this.dialer.tunnel(&this.dns, &target, this.timeout).await?;
                    let conn = ClientConn {
                        stream,
                        to_proxy: false,
                    };
                    Ok(TokioIo::new(Pooled::new(conn, &this.fds)))
                }
            }
        })
    }
}
