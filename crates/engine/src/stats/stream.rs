use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::ByteCounters;

/// Which end of a relay a stream faces, which decides whether reading from it
/// counts as up or down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The client: what we read from it goes up.
    Client,
    /// The target: what we read from it comes down.
    Target,
}

pin_project! {
    /// A stream that adds every byte read or written to a set of counters.
    #[derive(Debug)]
    pub struct Counted<S> {
        #[pin]
        inner: S,
        side: Side,
        counters: Vec<Arc<ByteCounters>>,
    }
}

impl<S> Counted<S> {
    pub fn new(inner: S, side: Side, counters: Vec<Arc<ByteCounters>>) -> Self {
        Self {
            inner,
            side,
            counters,
        }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped stream and the counters it added to, for a relay that
    /// moves bytes without reading them (splice) and counts them itself.
    pub fn into_parts(self) -> (S, Vec<Arc<ByteCounters>>) {
        (self.inner, self.counters)
    }

    pub(crate) fn count(counters: &[Arc<ByteCounters>], up: bool, n: usize) {
        if n == 0 {
            return;
        }
        for c in counters {
            if up {
                c.add_up(n as u64);
            } else {
                c.add_down(n as u64);
            }
        }
    }
}

impl<S: AsyncRead> AsyncRead for Counted<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let res = this.inner.poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = res {
            let n = buf.filled().len() - before;
            Self::count(this.counters, *this.side == Side::Client, n);
        }
        res
    }
}

impl<S: AsyncWrite> AsyncWrite for Counted<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let res = this.inner.poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = res {
            Self::count(this.counters, *this.side == Side::Target, n);
        }
        res
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let res = this.inner.poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = res {
            Self::count(this.counters, *this.side == Side::Target, n);
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn counts_both_directions_from_the_client_side() {
        let (a, mut b) = tokio::io::duplex(64);
        let conn = Arc::new(ByteCounters::default());
        let total = Arc::new(ByteCounters::default());
        let mut counted = Counted::new(a, Side::Client, vec![conn.clone(), total.clone()]);
        b.write_all(b"hello").await.expect("write");
        let mut buf = [0u8; 5];
        counted.read_exact(&mut buf).await.expect("read");
        counted.write_all(b"abc").await.expect("write");
        assert_eq!((conn.up(), conn.down()), (5, 3));
        assert_eq!((total.up(), total.down()), (5, 3));
    }
}
