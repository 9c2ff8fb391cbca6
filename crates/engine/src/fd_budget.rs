//! The file-descriptor budget: what the engine may hold open, so that
//! running out of descriptors is a 503 for new clients rather than `accept`
//! failing with `EMFILE` in a loop while the history writer, the cache and
//! the system-proxy restore at exit cannot open a file.
//!
//! The front end raises the soft `RLIMIT_NOFILE` and hands the engine that
//! limit less a reserve for everything else ([`crate::Limits::fd_budget`]).
//! Each client connection takes [`PER_CONNECTION`] descriptors from the
//! budget for its life: its socket and one outbound socket (a tunnel's, or
//! the pooled connection its request is on). A tunnel direction that
//! carries bytes on Linux takes [`PER_PIPE`] more for its splice pipe when
//! the first byte comes ([`FdBudget::try_take_pipe`]); an idle tunnel holds
//! none, and with the budget spent the direction copies instead. A new
//! client waits up to
//! [`WAIT`] for descriptors to come back; then it gets a 503 with
//! `Retry-After` (SOCKS5: "no acceptable methods") and is closed. Refusals
//! are bounded too ([`REFUSING`]): past that a client is closed unanswered.
//!
//! Pooled keep-alive connections to origins and upstreams outlive the
//! client that made them, so each holds [`PER_POOLED`] descriptor of its own
//! for its whole life ([`Pooled`]). One made when the budget has none left
//! still serves its request but is not kept in the pool. (While a client
//! uses a pooled connection it is counted twice, once in the client's two:
//! the budget errs on the side of running out early.)

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::client::legacy::connect::{Connected, Connection};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Descriptors one client connection holds: its socket and one outbound.
pub const PER_CONNECTION: u32 = 2;
/// Descriptors of one splice pipe (its two ends). Splice is Linux only.
#[cfg(target_os = "linux")]
pub const PER_PIPE: u32 = 2;
/// Descriptors of one pooled keep-alive connection.
pub const PER_POOLED: u32 = 1;
/// How long a new client waits for descriptors before it is refused.
pub const WAIT: Duration = Duration::from_millis(500);
/// Clients being refused at once; each holds its socket while it is told.
const REFUSING: usize = 16;

const BUSY: &str =
    "Veil has as many connections open as its open-file limit allows; try again in a moment.\n";

/// The 503 a plain-HTTP or CONNECT client gets.
fn busy_http() -> Vec<u8> {
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: text/plain; \
         charset=utf-8\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{BUSY}",
        BUSY.len()
    )
    .into_bytes()
}

#[derive(Debug, Clone)]
pub(crate) struct FdBudget {
    /// `None`: no budget (the engine runs without a front end that knows
    /// the limit); only the connection cap applies.
    left: Option<Arc<Semaphore>>,
    refusing: Arc<Semaphore>,
}

/// Descriptors held for one client connection.
#[derive(Debug)]
pub(crate) struct Held(#[allow(dead_code)] Option<OwnedSemaphorePermit>);

impl FdBudget {
    pub fn new(descriptors: Option<usize>) -> Self {
        Self {
            left: descriptors.map(|n| Arc::new(Semaphore::new(n))),
            refusing: Arc::new(Semaphore::new(REFUSING)),
        }
    }

    /// Descriptors for one more client, if they are there now.
    pub fn try_take(&self) -> Option<Held> {
        self.try_take_n(PER_CONNECTION)
    }

    /// Descriptors for one splice pipe, if the budget has them now.
    #[cfg(target_os = "linux")]
    pub fn try_take_pipe(&self) -> Option<Held> {
        self.try_take_n(PER_PIPE)
    }

    /// The descriptor of one new pooled connection, if the budget has it.
    pub fn try_take_pooled(&self) -> Option<Held> {
        self.try_take_n(PER_POOLED)
    }

    /// Descriptors not taken (tests).
    #[cfg(test)]
    pub fn available(&self) -> Option<usize> {
        self.left.as_ref().map(|l| l.available_permits())
    }

    fn try_take_n(&self, n: u32) -> Option<Held> {
        let Some(left) = &self.left else {
            return Some(Held(None));
        };
        left.clone()
            .try_acquire_many_owned(n)
            .ok()
            .map(|p| Held(Some(p)))
    }

    /// For a client that found the budget spent: waits up to [`WAIT`] for
    /// descriptors to come back and returns them with the client, or tells
    /// it that Veil is full, in its protocol, and closes it. At most
    /// [`REFUSING`] clients wait at once (each holds its socket); past that
    /// a client is closed unanswered.
    pub async fn wait_or_refuse(&self, client: TcpStream) -> Option<(TcpStream, Held)> {
        let Ok(_slot) = self.refusing.clone().try_acquire_owned() else {
            return None;
        };
        let left = self.left.clone()?;
        if let Ok(Ok(permit)) =
            tokio::time::timeout(WAIT, left.acquire_many_owned(PER_CONNECTION)).await
        {
            return Some((client, Held(Some(permit))));
        }
        let mut client = client;
        let mut first = [0u8; 1];
        let answer = match tokio::time::timeout(WAIT, client.peek(&mut first)).await {
            Ok(Ok(1)) if first[0] == 0x05 => vec![0x05, 0xff],
            Ok(Ok(1)) => busy_http(),
            _ => return None,
        };
        let _ = tokio::time::timeout(WAIT, client.write_all(&answer)).await;
        let _ = client.shutdown().await;
        None
    }
}

/// A pooled client's connection and the descriptor it holds from the
/// budget; without one (the budget was spent) it is used once and closed
/// instead of kept in the pool.
#[derive(Debug)]
pub struct Pooled<S> {
    inner: S,
    fds: Option<Held>,
}

impl<S> Pooled<S> {
    pub(crate) fn new(inner: S, budget: &FdBudget) -> Self {
        Self {
            inner,
            fds: budget.try_take_pooled(),
        }
    }
}

impl<S: Connection> Connection for Pooled<S> {
    fn connected(&self) -> Connected {
        let connected = self.inner.connected();
        if self.fds.is_none() {
            connected.poison();
        }
        connected
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Pooled<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Pooled<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
