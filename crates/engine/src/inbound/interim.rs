//! Interim (1xx) responses from the origin, passed on to the client (RFC 9110
//! section 15.2: a proxy forwards them, `103 Early Hints` above all).
//!
//! hyper's client hands 1xx responses to a callback (`hyper::ext::
//! on_informational`), but its server cannot send one: a service returns one
//! response, and a 1xx status there becomes a 500 (hyper 1.x,
//! `proto/h1/role.rs`). So the client's connection is wrapped in
//! [`InterimIo`], and the callback queues the 1xx head in its [`Interim`];
//! the bytes go out, whole, the next time hyper flushes the connection (it
//! does on every turn of its loop, which the callback wakes) or before the
//! first byte hyper writes itself, so always ahead of the final response.
//! While a request is being answered hyper has nothing else half-written:
//! it reads the next request only once the previous response is complete.
//!
//! Not passed on: `100 Continue` (hyper's server sends its own when the
//! request body is read, and a second one would confuse the client) and
//! `101`, which ends the exchange (upgrades have their own path); nothing
//! to an HTTP/1.0 client, which must never get a 1xx (15.2).

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Queued 1xx bytes at most; more are dropped (they are only hints).
const MAX_QUEUED: usize = 64 * 1024;

#[derive(Debug, Default)]
struct State {
    queued: Vec<u8>,
    waker: Option<Waker>,
}

/// Where the 1xx responses for one client connection wait to be written.
#[derive(Debug, Default, Clone)]
pub struct Interim(Arc<Mutex<State>>);

impl Interim {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `status` with `headers` for the client.
    pub fn push(&self, status: http::StatusCode, headers: &http::HeaderMap) {
        if !forwarded(status) {
            return;
        }
        let mut head = format!(
            "HTTP/1.1 {} {}\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("Informational")
        )
        .into_bytes();
        for (name, value) in headers {
            head.extend_from_slice(name.as_str().as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(value.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(b"\r\n");
        let mut state = self.lock();
        if state.queued.len() + head.len() > MAX_QUEUED {
            tracing::debug!("1xx response dropped: too many queued");
            return;
        }
        state.queued.extend_from_slice(&head);
        if let Some(waker) = state.waker.take() {
            waker.wake();
        }
    }

    /// Registers a callback on `req` that queues its 1xx responses here.
    pub fn watch<B>(&self, req: &mut http::Request<B>) {
        let interim = self.clone();
        hyper::ext::on_informational(req, move |res| {
            interim.push(res.status(), res.headers());
        });
    }
}

/// Whether an interim status is passed on to the client.
fn forwarded(status: http::StatusCode) -> bool {
    status.is_informational()
        && status != http::StatusCode::CONTINUE
        && status != http::StatusCode::SWITCHING_PROTOCOLS
}

/// A client connection that writes queued 1xx responses ahead of hyper's own
/// bytes.
#[derive(Debug)]
pub struct InterimIo<T> {
    inner: T,
    interim: Interim,
}

impl<T> InterimIo<T> {
    pub fn new(inner: T) -> (Self, Interim) {
        let interim = Interim::default();
        (
            Self {
                inner,
                interim: interim.clone(),
            },
            interim,
        )
    }

    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T: AsyncWrite + Unpin> InterimIo<T> {
    /// Writes whatever is queued; `Ready` once nothing is.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut state = self.interim.lock();
        if !state
            .waker
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            state.waker = Some(cx.waker().clone());
        }
        while !state.queued.is_empty() {
            match Pin::new(&mut self.inner).poll_write(cx, &state.queued) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    state.queued.drain(..n);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for InterimIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for InterimIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        std::task::ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        std::task::ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
