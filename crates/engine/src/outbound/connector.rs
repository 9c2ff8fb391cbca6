use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::{ConnectError, Direct};
use crate::Target;
use crate::fd_budget::{FdBudget, Pooled};

/// Hyper's pooled client connects through this, so forwarded HTTP requests use
/// the same DNS cache, timeouts and loop guard as tunnels.
#[derive(Debug, Clone)]
pub struct HttpConnector {
    direct: Direct,
    /// Each pooled connection holds a descriptor of the budget.
    fds: FdBudget,
}

impl HttpConnector {
    pub(crate) fn new(direct: Direct, fds: FdBudget) -> Self {
        Self { direct, fds }
    }
}

/// The error hyper's client carries back; the forwarder digs the
/// [`ConnectError`] out of it to write a useful 502.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("request URI {0} has no host")]
    NoHost(Uri),
    #[error("{0}")]
    BadTarget(String),
}

impl tower_service::Service<Uri> for HttpConnector {
    type Response = TokioIo<Pooled<TcpStream>>;
    type Error = ConnectorError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let direct = self.direct.clone();
        let fds = self.fds.clone();
        Box::pin(async move {
            let host = uri
                .host()
                .ok_or_else(|| ConnectorError::NoHost(uri.clone()))?;
            let port = uri.port_u16().unwrap_or(80);
            let target =
                Target::new(host, port).map_err(|e| ConnectorError::BadTarget(e.to_string()))?;
            let stream = direct.connect(&target).await?;
            Ok(TokioIo::new(Pooled::new(stream, &fds)))
        })
    }
}
