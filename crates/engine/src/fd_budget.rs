//! The file-descriptor budget: what the engine may hold open, so that
//! running out of descriptors is a 503 for new clients rather than `accept`
//! failing with `EMFILE` in a loop while the history writer, the cache and
//! the system-proxy restore at exit cannot open a file.
//!
//! The front end raises the soft `RLIMIT_NOFILE` and hands the engine that
//! limit less a reserve for everything else ([`crate::Limits::fd_budget`]).
//! Each client connection takes [`PER_CONNECTION`] descriptors from the
//! budget for its life: its socket, one outbound socket and, for a spliced
//! tunnel, two pipes of two ends each. A new client waits up to
//! [`WAIT`] for descriptors to come back; then it gets a 503 with
//! `Retry-After` (SOCKS5: "no acceptable methods") and is closed. Refusals
//! are bounded too ([`REFUSING`]): past that a client is closed unanswered.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Descriptors one client connection may use at most.
pub const PER_CONNECTION: u32 = 6;
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

#[derive(Debug)]
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
        let Some(left) = &self.left else {
            return Some(Held(None));
        };
        left.clone()
            .try_acquire_many_owned(PER_CONNECTION)
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
