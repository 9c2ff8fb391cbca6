//! Client app attribution: which local process is at the other end of each
//! inbound connection.
//!
//! The engine does not read the operating system's socket table itself; a
//! front end hands it a [`ClientLookup`] (`veil-system` has the one for the
//! real machine). Lookups never sit on the data path: `serve` only queues the
//! new connection (a non-blocking `try_send`) and goes on sniffing its first
//! byte. One background thread takes whatever is queued, asks the lookup
//! about the whole batch at once (one read of the socket table serves many
//! connections under a burst), and records the answer on the connection
//! entry, where it stays for the connection's life. A full queue, a failed
//! lookup or a connection that closed first all end as `None`: "unknown".
//!
//! Reading the socket table is not free (on Linux, `/proc/net/tcp` costs
//! milliseconds on a busy machine), so after each batch the thread rests
//! twice as long as the batch took (at most 50 ms): under a storm of short
//! connections it uses at most a third of one core, and the connections that
//! queue meanwhile share the next read.

use std::fmt::Debug;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::peer_user::ClientUser;
use crate::stats::ConnEntry;

/// The local process that opened a connection to the listener.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientApp {
    pub pid: u32,
    /// The program's name (the executable's file name where it is known).
    pub name: String,
    /// The executable's full path, when the OS lets Veil read it.
    pub exe: Option<String>,
}

/// Finds the processes behind client sockets. It may block (it reads the
/// OS's tables); the engine calls it on its own thread, never on the runtime.
pub trait ClientLookup: Send + Sync + Debug + 'static {
    /// One answer per entry of `clients`, in the same order: the process
    /// whose socket has local address `clients[i]` and remote address
    /// `listen`, or `None` when it cannot be found.
    fn lookup(&self, listen: SocketAddr, clients: &[SocketAddr]) -> Vec<Option<ClientApp>>;

    /// One answer per entry of `clients`, in the same order: whether the
    /// user that owns the socket with local address `clients[i]` and remote
    /// address `listen` is the one Veil runs as ([`crate::peer_user`]). The
    /// default, for tables without users, checks nothing.
    fn client_users(&self, listen: SocketAddr, clients: &[SocketAddr]) -> Vec<ClientUser> {
        let _ = listen;
        vec![ClientUser::Unchecked; clients.len()]
    }
}

/// Connections waiting for a lookup; past this, new ones are left unknown
/// rather than queued without bound.
const QUEUE: usize = 4096;
/// Connections looked up together at most.
const BATCH: usize = 256;
/// The longest rest between two batches.
const MAX_REST: Duration = Duration::from_millis(50);

/// The engine's side of attribution: a queue to the lookup thread.
#[derive(Debug)]
pub(crate) struct Attributor {
    queue: Option<SyncSender<Arc<ConnEntry>>>,
}

impl Attributor {
    /// Starts the lookup thread; without a lookup every app stays unknown.
    pub fn start(lookup: Option<Arc<dyn ClientLookup>>, listen: SocketAddr) -> Self {
        let queue = lookup.and_then(|lookup| {
            let (tx, rx) = sync_channel(QUEUE);
            std::thread::Builder::new()
                .name("veil-attribution".into())
                .spawn(move || run(lookup.as_ref(), listen, rx))
                .map_err(|e| tracing::warn!("client attribution is off: {e}"))
                .ok()
                .map(|_| tx)
        });
        Self { queue }
    }

    /// Queues `entry` for a lookup without waiting.
    pub fn request(&self, entry: &Arc<ConnEntry>) {
        let Some(queue) = &self.queue else {
            entry.set_app(None);
            return;
        };
        match queue.try_send(entry.clone()) {
            Ok(()) => {}
            Err(TrySendError::Full(e) | TrySendError::Disconnected(e)) => {
                e.set_app(None);
            }
        }
    }
}

fn run(lookup: &dyn ClientLookup, listen: SocketAddr, rx: Receiver<Arc<ConnEntry>>) {
    // Ends when the engine is gone (every sender dropped).
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(e) => batch.push(e),
                Err(_) => break,
            }
        }
        // A connection that already closed was counted as unknown.
        batch.retain(|e| !e.app_known());
        if batch.is_empty() {
            continue;
        }
        let clients: Vec<SocketAddr> = batch.iter().map(|e| e.client).collect();
        let started = Instant::now();
        let apps = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            lookup.lookup(listen, &clients)
        }))
        .unwrap_or_default();
        let mut apps = apps.into_iter();
        for entry in batch {
            entry.set_app(apps.next().flatten());
        }
        std::thread::sleep((started.elapsed() * 2).min(MAX_REST));
    }
}
