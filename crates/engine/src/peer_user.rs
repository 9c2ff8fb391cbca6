//! Only your user: which local user opened a client connection, checked
//! before the connection is served.
//!
//! A loopback listener without inbound credentials is meant for the user
//! Veil runs as. On a machine with several users (or with `route_localnet`)
//! every local process can reach it, and would share that user's exit
//! address, upstream credentials and cache. The OS's socket table says which
//! user owns the client's end of each loopback connection (Linux: the `uid`
//! column of `/proc/net/tcp`); a front end hands the engine that table through
//! [`ClientLookup::client_users`], and a connection from another user is
//! refused (HTTP 403, SOCKS5 reply 0x02 "not allowed by ruleset"). With
//! inbound credentials set, other users may log in like any other client, so
//! no check is made.
//!
//! Reading the table costs a file read, so the checks queue to one thread
//! that answers a whole batch with one read, and runs concurrently with the
//! client's first bytes. A client whose socket is not in the table is looked
//! for again a few times (bounded) and then refused: the check fails closed.
//! On loopback the client's socket is established before `accept` returns,
//! so a missing row means it is already gone, or the table cannot be read.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::attribution::ClientLookup;

/// Who owns the client end of a connection, as the socket table says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientUser {
    /// The user Veil runs as.
    Same,
    /// Another local user.
    Other { uid: u32, own: u32 },
    /// The table has no row for the client's socket.
    NotFound,
    /// The table could not be read.
    Unreadable(String),
    /// This OS's table does not name users (Windows): nothing to check.
    Unchecked,
}

impl ClientUser {
    /// Why the connection is refused, for the client and the log; `None`
    /// when it may go on.
    pub fn refusal(&self) -> Option<String> {
        const SHARE: &str = "set inbound credentials (proxy.auth) to share the proxy with \
                             other users";
        match self {
            ClientUser::Same | ClientUser::Unchecked => None,
            ClientUser::Other { uid, own } => Some(format!(
                "Veil serves only the user it runs as (uid {own}); this connection comes from \
                 uid {uid}: {SHARE}"
            )),
            ClientUser::NotFound => Some(format!(
                "Veil could not find which user opened this connection in the socket table, \
                 so it does not serve it: {SHARE}"
            )),
            ClientUser::Unreadable(e) => Some(format!(
                "Veil could not read the socket table to check which user opened this \
                 connection ({e}), so it does not serve it: {SHARE}"
            )),
        }
    }
}

/// Connections waiting for a check; past this a new one is refused (a
/// flood of connections must not grow memory without bound).
const QUEUE: usize = 4096;
/// Connections checked together at most.
const BATCH: usize = 512;
/// Pauses before looking again for clients not in the table (bounded: the
/// whole wait is under 20 ms).
const RETRIES: [Duration; 3] = [
    Duration::from_millis(1),
    Duration::from_millis(4),
    Duration::from_millis(12),
];

type Job = (SocketAddr, oneshot::Sender<ClientUser>);

/// The engine's side of the check: a queue to the checking thread.
#[derive(Debug)]
pub(crate) struct UserCheck {
    queue: Option<SyncSender<Job>>,
}

impl UserCheck {
    /// Starts the checking thread. Without a lookup, or with inbound
    /// credentials (other users may log in), nothing is checked.
    pub fn start(
        lookup: Option<Arc<dyn ClientLookup>>,
        listen: SocketAddr,
        has_credentials: bool,
    ) -> Result<Self, std::io::Error> {
        let Some(lookup) = lookup.filter(|_| !has_credentials) else {
            return Ok(Self { queue: None });
        };
        let (tx, rx) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("veil-peer-user".into())
            .spawn(move || run(lookup.as_ref(), listen, rx))?;
        Ok(Self { queue: Some(tx) })
    }

    /// Checks the client at `peer`; resolves with the answer.
    pub fn check(&self, peer: SocketAddr) -> impl Future<Output = ClientUser> + use<> {
        let rx = self.queue.as_ref().map(|queue| {
            let (tx, rx) = oneshot::channel();
            match queue.try_send((peer, tx)) {
                Ok(()) => Ok(rx),
                Err(TrySendError::Full(_)) => Err("too many connections waiting for the check"),
                Err(TrySendError::Disconnected(_)) => Err("the checking thread is gone"),
            }
        });
        async move {
            match rx {
                None => ClientUser::Unchecked,
                Some(Ok(rx)) => rx
                    .await
                    .unwrap_or_else(|_| ClientUser::Unreadable("the check was dropped".into())),
                Some(Err(why)) => ClientUser::Unreadable(why.into()),
            }
        }
    }
}

fn run(lookup: &dyn ClientLookup, listen: SocketAddr, rx: Receiver<Job>) {
    // Ends when the engine is gone (every sender dropped).
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut retries = RETRIES.iter();
        loop {
            // A client that went away needs no answer.
            batch.retain(|(_, tx)| !tx.is_closed());
            if batch.is_empty() {
                break;
            }
            let clients: Vec<SocketAddr> = batch.iter().map(|(c, _)| *c).collect();
            let users = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                lookup.client_users(listen, &clients)
            }))
            .unwrap_or_else(|_| {
                vec![ClientUser::Unreadable("the lookup panicked".into()); clients.len()]
            });
            let mut users = users.into_iter();
            let pause = retries.next();
            let mut missing = Vec::new();
            for (client, tx) in batch {
                match users.next().unwrap_or(ClientUser::NotFound) {
                    ClientUser::NotFound if pause.is_some() => missing.push((client, tx)),
                    user => {
                        if let Some(why) = user.refusal() {
                            tracing::info!(%client, "connection refused: {why}");
                        }
                        let _ = tx.send(user);
                    }
                }
            }
            batch = missing;
            match pause {
                Some(pause) if !batch.is_empty() => std::thread::sleep(*pause),
                _ => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Answers `NotFound` a given number of times, then `Same`.
    #[derive(Debug)]
    struct Late(Mutex<usize>);

    impl ClientLookup for Late {
        fn lookup(&self, _: SocketAddr, c: &[SocketAddr]) -> Vec<Option<crate::ClientApp>> {
            vec![None; c.len()]
        }
        fn client_users(&self, _: SocketAddr, c: &[SocketAddr]) -> Vec<ClientUser> {
            let mut left = self.0.lock().expect("lock");
            if *left == 0 {
                return vec![ClientUser::Same; c.len()];
            }
            *left -= 1;
            vec![ClientUser::NotFound; c.len()]
        }
    }

    fn addr() -> SocketAddr {
        "127.0.0.1:5000".parse().expect("addr")
    }

    #[tokio::test]
    async fn a_row_that_appears_late_is_found_and_one_that_never_does_is_refused() {
        let late =
            UserCheck::start(Some(Arc::new(Late(Mutex::new(2)))), addr(), false).expect("thread");
        assert_eq!(late.check(addr()).await, ClientUser::Same);
        let never =
            UserCheck::start(Some(Arc::new(Late(Mutex::new(100)))), addr(), false).expect("thread");
        let user = never.check(addr()).await;
        assert_eq!(user, ClientUser::NotFound);
        assert!(user.refusal().is_some(), "fails closed");
    }

    #[tokio::test]
    async fn credentials_or_no_lookup_check_nothing() {
        let lookup: Arc<dyn ClientLookup> = Arc::new(Late(Mutex::new(100)));
        let with_creds = UserCheck::start(Some(lookup), addr(), true).expect("thread");
        assert_eq!(with_creds.check(addr()).await, ClientUser::Unchecked);
        let none = UserCheck::start(None, addr(), false).expect("thread");
        assert_eq!(none.check(addr()).await, ClientUser::Unchecked);
    }
}
