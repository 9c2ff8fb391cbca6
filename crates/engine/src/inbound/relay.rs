//! Moving tunnel bytes between a client and its target.
//!
//! Each direction is its own [`Way`], which starts idle and holds nothing:
//! an idle tunnel costs its two sockets and a few hundred bytes of task, no
//! pipe and no buffer. When the first byte is there to read in a direction:
//!
//! - on Linux, with both sockets plain TCP, a pipe is made for it and bytes
//!   go from one socket to the other with splice(2), never entering this
//!   process: that is what lets a CONNECT download run near the speed of a
//!   direct one. The pipe's two descriptors are taken from the descriptor
//!   budget ([`crate::fd_budget`]) first;
//! - otherwise (TLS to an upstream, other systems, no pipe or no budget for
//!   one) a buffer is allocated for that direction and bytes are copied.
//!
//! A direction whose source ends shuts the other side's writing half and
//! lets its pipe or buffer go at once. The counters are fed after every
//! poll, so rates stay live.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::fd_budget::FdBudget;
use crate::outbound::Opened;
use crate::stats::{ByteCounters, Counted, HostCounters};
use crate::upstream::OutStream;

/// The copy buffer of one busy direction.
const COPY_BUF: usize = 64 * 1024;
/// What an idle direction reads into to find out whether bytes have come:
/// on the stack, for that poll only.
const FIRST_READ: usize = 2 * 1024;

/// Relays between `client` and the opened target until both directions are
/// done. `pending_up` holds bytes the client already sent that were read while
/// parsing its request; `opened.pending` holds bytes an upstream already sent
/// from the target. Each goes on first.
pub(super) async fn relay(
    client: Counted<TcpStream>,
    pending_up: Bytes,
    opened: Opened,
    host: Arc<HostCounters>,
    fds: &FdBudget,
) {
    let Opened {
        stream: mut target,
        pending: pending_down,
        lease,
        ..
    } = opened;
    let (mut client, mut counters) = client.into_parts();
    // The client's counters already saw `pending_up` when hyper read it.
    let mut beyond_client = vec![host.bytes.clone()];
    if let Some(lease) = &lease {
        beyond_client.push(lease.upstream().bytes.clone());
    }
    counters.extend(beyond_client.iter().cloned());
    let pending = Pending {
        up: &pending_up,
        up_counters: &beyond_client,
        down: &pending_down,
        down_counters: &counters,
    };
    if let Err(e) = pending.send(&mut client, &mut target).await {
        tracing::debug!("tunnel ended before it began: {e}");
        return;
    }
    // Sent: free them now, not when the tunnel ends. `pending_up` is a view
    // of hyper's read buffer and keeps all of it (8 KiB or more) alive for
    // as long as it lives, in every idle tunnel.
    drop(pending_up);
    drop(pending_down);
    drop(beyond_client);
    // Only splice pipes take descriptors from the budget.
    #[cfg(not(target_os = "linux"))]
    let _ = fds;
    let result = match &mut target {
        #[cfg(target_os = "linux")]
        OutStream::Tcp(target) => both_ways_tcp(&mut client, target, &counters, fds).await,
        target => both_ways(&mut client, target, &counters).await,
    };
    match result {
        Ok(()) => tracing::debug!("tunnel finished"),
        Err(e) => tracing::debug!("tunnel ended: {e}"),
    }
    drop(lease);
}

/// Bytes read ahead on either side before the relay starts.
struct Pending<'a> {
    up: &'a [u8],
    up_counters: &'a [Arc<ByteCounters>],
    down: &'a [u8],
    down_counters: &'a [Arc<ByteCounters>],
}

impl Pending<'_> {
    async fn send(&self, client: &mut TcpStream, target: &mut OutStream) -> io::Result<()> {
        if !self.up.is_empty() {
            target.write_all(self.up).await?;
            self.up_counters
                .iter()
                .for_each(|c| c.add_up(self.up.len() as u64));
        }
        if !self.down.is_empty() {
            client.write_all(self.down).await?;
            self.down_counters
                .iter()
                .for_each(|c| c.add_down(self.down.len() as u64));
        }
        Ok(())
    }
}

/// The portable relay, by copying; `counters` get every byte moved.
pub(super) async fn copy<C, T>(client: &mut C, target: &mut T, counters: &[Arc<ByteCounters>])
where
    C: AsyncRead + AsyncWrite + Unpin + ?Sized,
    T: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    match both_ways(client, target, counters).await {
        Ok(()) => tracing::debug!("tunnel finished"),
        Err(e) => tracing::debug!("tunnel ended: {e}"),
    }
}

async fn both_ways<C, T>(
    client: &mut C,
    target: &mut T,
    counters: &[Arc<ByteCounters>],
) -> io::Result<()>
where
    C: AsyncRead + AsyncWrite + Unpin + ?Sized,
    T: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    let (mut up, mut down) = (Way::Idle, Way::Idle);
    poll_fn(|cx| {
        let (mut moved_up, mut moved_down) = (0, 0);
        let up_done = up.poll_copy(cx, &mut *client, &mut *target, &mut moved_up);
        let down_done = down.poll_copy(cx, &mut *target, &mut *client, &mut moved_down);
        finish(counters, moved_up, moved_down, up_done, down_done)
    })
    .await
}

#[cfg(target_os = "linux")]
async fn both_ways_tcp(
    client: &mut TcpStream,
    target: &mut TcpStream,
    counters: &[Arc<ByteCounters>],
    fds: &FdBudget,
) -> io::Result<()> {
    let (mut up, mut down) = (Way::Idle, Way::Idle);
    poll_fn(|cx| {
        let (mut moved_up, mut moved_down) = (0, 0);
        let up_done = up.poll_tcp(cx, client, target, fds, &mut moved_up);
        let down_done = down.poll_tcp(cx, target, client, fds, &mut moved_down);
        finish(counters, moved_up, moved_down, up_done, down_done)
    })
    .await
}

/// Counts what moved in one poll; done when both directions are, or at the
/// first error.
fn finish(
    counters: &[Arc<ByteCounters>],
    up: u64,
    down: u64,
    up_done: Poll<io::Result<()>>,
    down_done: Poll<io::Result<()>>,
) -> Poll<io::Result<()>> {
    if up > 0 || down > 0 {
        for c in counters {
            c.add_up(up);
            c.add_down(down);
        }
    }
    match (up_done, down_done) {
        (Poll::Ready(Err(e)), _) | (_, Poll::Ready(Err(e))) => Poll::Ready(Err(e)),
        (Poll::Ready(Ok(())), Poll::Ready(Ok(()))) => Poll::Ready(Ok(())),
        _ => Poll::Pending,
    }
}

/// One direction of a tunnel.
enum Way {
    /// Nothing has come yet: no pipe, no buffer.
    Idle,
    #[cfg(target_os = "linux")]
    Splice(Box<splice::Piped>),
    Copy(Box<CopyBuf>),
    /// The source ended: shutting the destination's writing half.
    Closing,
    Done,
}

/// A direction's copy buffer and what in it is still to be written.
struct CopyBuf {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    eof: bool,
}

impl CopyBuf {
    fn with(first: &[u8]) -> Box<Self> {
        let mut buf = vec![0u8; COPY_BUF.max(first.len())].into_boxed_slice();
        buf[..first.len()].copy_from_slice(first);
        Box::new(Self {
            buf,
            start: 0,
            end: first.len(),
            eof: false,
        })
    }

    /// Reads and writes until the source is spent (then `Ready`) or one
    /// side must wait.
    fn poll<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        from: &mut R,
        to: &mut W,
        moved: &mut u64,
    ) -> Poll<io::Result<()>>
    where
        R: AsyncRead + Unpin + ?Sized,
        W: AsyncWrite + Unpin + ?Sized,
    {
        loop {
            if self.start == self.end && !self.eof {
                self.start = 0;
                self.end = 0;
                let mut rb = ReadBuf::new(&mut self.buf);
                match Pin::new(&mut *from).poll_read(cx, &mut rb) {
                    Poll::Ready(Ok(())) if rb.filled().is_empty() => self.eof = true,
                    Poll::Ready(Ok(())) => self.end = rb.filled().len(),
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {
                        // Flush what an encrypting writer holds before
                        // waiting for more.
                        ready!(Pin::new(&mut *to).poll_flush(cx))?;
                        return Poll::Pending;
                    }
                }
            }
            if self.start < self.end {
                let n = ready!(Pin::new(&mut *to).poll_write(cx, &self.buf[self.start..self.end]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.start += n;
                *moved += n as u64;
            } else if self.eof {
                return Poll::Ready(Ok(()));
            }
        }
    }
}

impl Way {
    /// Copies from `from` to `to`, a buffer allocated only once bytes come.
    fn poll_copy<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        from: &mut R,
        to: &mut W,
        moved: &mut u64,
    ) -> Poll<io::Result<()>>
    where
        R: AsyncRead + Unpin + ?Sized,
        W: AsyncWrite + Unpin + ?Sized,
    {
        loop {
            match self {
                Way::Idle => {
                    let mut first = [0u8; FIRST_READ];
                    let mut rb = ReadBuf::new(&mut first);
                    match ready!(Pin::new(&mut *from).poll_read(cx, &mut rb)) {
                        Ok(()) if rb.filled().is_empty() => *self = Way::Closing,
                        Ok(()) => *self = Way::Copy(CopyBuf::with(rb.filled())),
                        Err(e) => return self.fail(e),
                    }
                }
                Way::Copy(buf) => match ready!(buf.poll(cx, from, to, moved)) {
                    Ok(()) => *self = Way::Closing,
                    Err(e) => return self.fail(e),
                },
                #[cfg(target_os = "linux")]
                Way::Splice(_) => {
                    return self.fail(io::Error::other("a spliced direction polled as a copy"));
                }
                Way::Closing => {
                    let shut = ready!(Pin::new(&mut *to).poll_shutdown(cx));
                    *self = Way::Done;
                    return Poll::Ready(shut);
                }
                Way::Done => return Poll::Ready(Ok(())),
            }
        }
    }

    fn fail(&mut self, e: io::Error) -> Poll<io::Result<()>> {
        *self = Way::Done;
        Poll::Ready(Err(e))
    }

    /// Splices from `from` to `to` once bytes come, with a pipe made then
    /// (and its descriptors taken from `fds`); copies when there is no pipe.
    #[cfg(target_os = "linux")]
    fn poll_tcp(
        &mut self,
        cx: &mut Context<'_>,
        from: &mut TcpStream,
        to: &mut TcpStream,
        fds: &FdBudget,
        moved: &mut u64,
    ) -> Poll<io::Result<()>> {
        loop {
            match self {
                Way::Idle => {
                    // Peeked, not read: the bytes stay in the socket for
                    // splice to take.
                    let mut byte = [0u8; 1];
                    let mut rb = ReadBuf::new(&mut byte);
                    match ready!(from.poll_peek(cx, &mut rb)) {
                        Ok(0) => *self = Way::Closing,
                        Ok(_) => {
                            *self = match splice::Piped::new(fds) {
                                Ok(piped) => Way::Splice(piped),
                                Err(e) => {
                                    tracing::debug!("no pipe ({e}); copying instead");
                                    Way::Copy(CopyBuf::with(&[]))
                                }
                            }
                        }
                        Err(e) => return self.fail(e),
                    }
                }
                Way::Splice(piped) => match ready!(piped.poll(cx, from, to, moved)) {
                    // splice shut the destination's writing half itself.
                    Ok(()) => *self = Way::Done,
                    Err(e) => return self.fail(e),
                },
                _ => return self.poll_copy(cx, from, to, moved),
            }
        }
    }
}

#[cfg(target_os = "linux")]
mod splice {
    use std::io;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use tokio::net::TcpStream;
    use tokio_splice2::{SpliceIo, SpliceIoCtx};

    use crate::fd_budget::{FdBudget, Held};

    /// A direction's pipe, and the budget's descriptors for it.
    pub struct Piped {
        io: Pin<Box<SpliceIo<TcpStream, TcpStream>>>,
        counted: usize,
        _fds: Held,
    }

    impl Piped {
        pub fn new(fds: &FdBudget) -> io::Result<Box<Self>> {
            let held = fds
                .try_take_pipe()
                .ok_or_else(|| io::Error::other("the descriptor budget has no room for a pipe"))?;
            let io = Box::pin(SpliceIoCtx::prepare()?.into_io());
            Ok(Box::new(Self {
                io,
                counted: 0,
                _fds: held,
            }))
        }

        pub fn poll(
            &mut self,
            cx: &mut Context<'_>,
            from: &mut TcpStream,
            to: &mut TcpStream,
            moved: &mut u64,
        ) -> Poll<io::Result<()>> {
            let done = self
                .io
                .as_mut()
                .poll_execute(cx, Pin::new(from), Pin::new(to));
            let written = self.io.has_written();
            *moved += (written - self.counted) as u64;
            self.counted = written;
            done
        }
    }
}
