//! Moving tunnel bytes between a client and its target.
//!
//! On Linux both sockets are plain TCP, so bytes go from one to the other with
//! splice(2) through a kernel pipe and never enter this process: that is what
//! lets a CONNECT download run near the speed of a direct one. The counters
//! are fed from the splice progress after every poll, so rates stay live.
//! Elsewhere (or if pipes cannot be made) a buffered copy through the
//! counting stream wrapper does the same job.

use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::outbound::Opened;
use crate::stats::{ByteCounters, Counted, HostCounters, Side};
use crate::upstream::OutStream;

const COPY_BUF: usize = 64 * 1024;

/// Relays between `client` and the opened target until both directions are
/// done. `pending_up` holds bytes the client already sent that were read while
/// parsing its request; `opened.pending` holds bytes an upstream already sent
/// from the target. Each goes on first.
pub(super) async fn relay(
    client: Counted<TcpStream>,
    pending_up: Bytes,
    opened: Opened,
    host: Arc<HostCounters>,
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
    match target {
        #[cfg(target_os = "linux")]
        OutStream::Tcp(mut target) => {
            match splice::both_ways(&mut client, &mut target, &counters).await {
                Ok(()) => tracing::debug!("tunnel finished"),
                Err(splice::Error::Setup(e)) => {
                    tracing::debug!("splice unavailable ({e}); copying instead");
                    copy(&mut client, OutStream::Tcp(target), counters).await;
                }
                Err(splice::Error::Io(e)) => tracing::debug!("tunnel ended: {e}"),
            }
        }
        target => copy(&mut client, target, counters).await,
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
    async fn send(&self, client: &mut TcpStream, target: &mut OutStream) -> std::io::Result<()> {
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

/// The portable relay: a buffered copy, counted by the stream wrapper.
pub(super) async fn copy<C>(client: &mut C, target: OutStream, counters: Vec<Arc<ByteCounters>>)
where
    C: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    let mut target = Counted::new(target, Side::Target, counters);
    match tokio::io::copy_bidirectional_with_sizes(client, &mut target, COPY_BUF, COPY_BUF).await {
        Ok((up, down)) => tracing::debug!(up, down, "tunnel finished"),
        Err(e) => tracing::debug!("tunnel ended: {e}"),
    }
}

#[cfg(target_os = "linux")]
mod splice {
    use std::future::poll_fn;
    use std::io;
    use std::pin::{Pin, pin};
    use std::sync::Arc;
    use std::task::Poll;

    use tokio::net::TcpStream;
    use tokio_splice2::SpliceIoCtx;

    use crate::stats::ByteCounters;

    pub enum Error {
        /// No pipe could be made; nothing was moved yet.
        Setup(io::Error),
        Io(io::Error),
    }

    pub async fn both_ways(
        client: &mut TcpStream,
        target: &mut TcpStream,
        counters: &[Arc<ByteCounters>],
    ) -> Result<(), Error> {
        let up = SpliceIoCtx::prepare().map_err(Error::Setup)?.into_io();
        let down = SpliceIoCtx::prepare().map_err(Error::Setup)?.into_io();
        let mut up = pin!(up);
        let mut down = pin!(down);
        let (mut up_done, mut down_done) = (false, false);
        let (mut up_counted, mut down_counted) = (0usize, 0usize);
        poll_fn(|cx| {
            let mut c = Pin::new(&mut *client);
            let mut t = Pin::new(&mut *target);
            if !up_done {
                match up.as_mut().poll_execute(cx, c.as_mut(), t.as_mut()) {
                    Poll::Ready(Ok(())) => up_done = true,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {}
                }
            }
            if !down_done {
                match down.as_mut().poll_execute(cx, t.as_mut(), c.as_mut()) {
                    Poll::Ready(Ok(())) => down_done = true,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {}
                }
            }
            let (written_up, written_down) = (up.has_written(), down.has_written());
            for c in counters {
                c.add_up((written_up - up_counted) as u64);
                c.add_down((written_down - down_counted) as u64);
            }
            (up_counted, down_counted) = (written_up, written_down);
            if up_done && down_done {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            }
        })
        .await
        .map_err(Error::Io)
    }
}
