//! The machine's socket table and the processes that hold each socket: the
//! one place both client app attribution ([`SocketTable`], the engine's
//! [`ClientLookup`]) and the coverage scan ([`crate::coverage`]) read it.
//!
//! This module is the same on every OS; what differs sits in one adapter per
//! OS with three functions (`read_table`, `resolve`, `process`):
//!
//! - **Linux** (`linux.rs`, procfs): `/proc/net/{tcp,tcp6,udp,udp6}` list
//!   the sockets of Veil's network namespace with their inode, and a process
//!   holds a socket when one of its `/proc/PID/fd` links reads
//!   `socket:[INODE]`. Rows name an inode ([`Holder::Inode`]); finding the
//!   process is a walk through processes' file descriptors, the expensive
//!   part, done only for the rows asked about. Without root, other users'
//!   processes cannot be read, so their sockets have no owner.
//! - **Windows** (`windows.rs`): `GetExtendedTcpTable`
//!   (`TCP_TABLE_OWNER_PID_ALL`) and `GetExtendedUdpTable`
//!   (`UDP_TABLE_OWNER_PID`), IPv4 and IPv6, name the owning process of
//!   every row, other users' included, without administrator rights; the
//!   image path comes from `QueryFullProcessImageNameW` (a process opened
//!   with `PROCESS_QUERY_LIMITED_INFORMATION`), and from a process snapshot's
//!   file name for the processes that cannot be opened (services, protected
//!   processes). Windows has no socket owner user: [`Socket::uid`] is `None`.
//! - **macOS** (`macos.rs`): there is no system-wide table with owners, so
//!   the adapter lists the processes (`proc_listpids`), their file
//!   descriptors (`proc_pidinfo` `PROC_PIDLISTFDS`), and each socket's
//!   addresses and state (`proc_pidfdinfo` `PROC_PIDFDSOCKETINFO`), with the
//!   path from `proc_pidpath`. Without root only the current user's
//!   processes can be read, so other users' sockets are not listed at all.
//! - Elsewhere reading the table fails with "not available on this system".
//!
//! The decoding of the Windows and macOS numbers (byte orders, TCP state
//! numbers, row layouts) is plain Rust in `raw.rs`, tested on every OS.
//!
//! **Why these libraries.** Windows goes through `windows-sys` (Microsoft's
//! own generated bindings, already in Veil's dependency tree through tokio)
//! with the two calls written here: `netstat2`, the crate that wraps both
//! OSes, runs bindgen against the macOS SDK headers at a fixed path in its
//! build script (so it cannot even be checked for macOS off a Mac, and pulls
//! bindgen into Linux builds), and would replace the tested procfs path on
//! Linux with netlink; `listeners` reports listening sockets only, not the
//! connections attribution needs; `sysinfo` (for process names) brings
//! dozens of Windows API features and `ntapi` for what one call does. macOS
//! goes through `libproc` (maintained, bindings generated from the SDK and
//! committed, so it builds off a Mac; only Veil's macOS builds use it).
//!
//! Attribution keeps the processes that were recently clients and, where
//! rows name inodes, looks through those first (a browser opens many
//! connections from the same few processes), and only then through all of
//! them; process names and paths are cached for a few seconds.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use veil_engine::{ClientApp, ClientLookup, ClientUser};

mod raw;
#[cfg(target_os = "linux")]
mod sock_diag;

#[cfg(target_os = "linux")]
#[path = "linux.rs"]
mod imp;
#[cfg(target_os = "macos")]
#[path = "macos.rs"]
mod imp;
#[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
#[path = "other.rs"]
mod imp;
#[cfg(windows)]
#[path = "windows.rs"]
mod imp;

/// TCP or UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    Tcp,
    Udp,
}

/// TCP states, numbered as Linux numbers them on every OS (UDP uses
/// `ESTABLISHED` for a connected socket and `CLOSE` for an unconnected one).
pub mod state {
    pub const ESTABLISHED: u8 = 0x01;
    pub const SYN_SENT: u8 = 0x02;
    pub const SYN_RECV: u8 = 0x03;
    pub const FIN_WAIT1: u8 = 0x04;
    pub const FIN_WAIT2: u8 = 0x05;
    pub const TIME_WAIT: u8 = 0x06;
    pub const CLOSE: u8 = 0x07;
    pub const CLOSE_WAIT: u8 = 0x08;
    pub const LAST_ACK: u8 = 0x09;
    pub const LISTEN: u8 = 0x0A;
    pub const CLOSING: u8 = 0x0B;
}

/// Who holds a socket, as far as the table says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Holder {
    /// No process holds it any more (`TIME_WAIT`).
    Nobody,
    /// Linux: the socket's inode, whose process is found by [`resolve_owners`]
    /// (and stays unknown when it cannot be read).
    Inode(u64),
    /// The process holding it (Windows and macOS tables say so directly).
    Process(u32),
    /// Held, but the table does not say by whom (Wine's Windows tables give
    /// process id 0 on every row).
    Unknown,
}

/// One row of the socket table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Socket {
    pub proto: Proto,
    pub local: SocketAddr,
    /// Port 0 and the unspecified address when not connected.
    pub remote: SocketAddr,
    /// One of [`state`].
    pub state: u8,
    /// The socket's user (Linux) or its process's user (macOS); Windows does
    /// not say.
    pub uid: Option<u32>,
    pub holder: Holder,
}

impl Socket {
    /// The process holding it, when known.
    pub fn pid(&self) -> Option<u32> {
        match self.holder {
            Holder::Process(pid) => Some(pid),
            Holder::Nobody | Holder::Inode(_) | Holder::Unknown => None,
        }
    }
}

/// Which kinds of socket to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Want {
    pub tcp: bool,
    pub udp: bool,
    pub v4: bool,
    pub v6: bool,
}

impl Want {
    pub const ALL: Want = Want {
        tcp: true,
        udp: true,
        v4: true,
        v6: true,
    };

    /// Each wanted protocol and family: `(proto, is_v6)`.
    // macOS reads every kind in one pass and filters with `wants`.
    #[cfg_attr(target_os = "macos", allow(dead_code))]
    pub fn kinds(self) -> impl Iterator<Item = (Proto, bool)> {
        [
            (Proto::Tcp, false),
            (Proto::Tcp, true),
            (Proto::Udp, false),
            (Proto::Udp, true),
        ]
        .into_iter()
        .filter(move |&(proto, v6)| self.wants(proto, v6))
    }

    pub fn wants(self, proto: Proto, v6: bool) -> bool {
        let proto = match proto {
            Proto::Tcp => self.tcp,
            Proto::Udp => self.udp,
        };
        proto && if v6 { self.v6 } else { self.v4 }
    }
}

/// Every TCP and UDP socket (IPv4 and IPv6) Veil can see. Rows may name an
/// inode rather than a process: [`resolve_owners`] finds those.
pub fn table() -> io::Result<Vec<Socket>> {
    let mut all = Vec::new();
    imp::read_table(Want::ALL, &mut all)?;
    Ok(all)
}

/// Finds the process behind every row that names an inode and turns it into
/// [`Holder::Process`]; rows whose process cannot be read stay as they are.
/// Nothing to do where the table names processes itself.
pub fn resolve_owners(rows: &mut [Socket]) {
    imp::resolve(rows, &[]);
}

/// Name and executable of a running process.
pub fn process(pid: u32) -> Option<ClientApp> {
    imp::process(pid)
}

/// An address with IPv4-mapped IPv6 turned back into IPv4, so a dual-stack
/// listener's view and the client's view compare equal.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// Whether `remote` is Veil's listener `listen` (the engine's own check:
/// an unspecified listener address matches any loopback address).
pub fn is_listener(remote: SocketAddr, listen: SocketAddr) -> bool {
    veil_engine::reaches_listener(listen, remote)
}

/// The name and path of a program from its executable's path (either
/// separator: a Windows path read on any OS gives the same name).
pub(crate) fn app_from_exe(pid: u32, exe: String) -> Option<ClientApp> {
    let name = exe.rsplit(['/', '\\']).next()?.to_owned();
    if name.is_empty() {
        return None;
    }
    Some(ClientApp {
        pid,
        name,
        exe: Some(exe),
    })
}

/// Processes looked through first, before all of them.
const RECENT_CLIENTS: usize = 16;
/// How long a process's name and path are trusted (a pid can be reused).
const PROCESS_TTL: Duration = Duration::from_secs(10);

/// Client app attribution from the real socket table.
#[derive(Debug, Default)]
pub struct SocketTable {
    state: Mutex<LookupState>,
}

#[derive(Debug, Default)]
struct LookupState {
    /// Most recent first.
    recent: VecDeque<u32>,
    processes: HashMap<u32, (Instant, ClientApp)>,
}

impl SocketTable {
    pub fn new() -> Self {
        Self::default()
    }
}

impl ClientLookup for SocketTable {
    fn lookup(&self, listen: SocketAddr, clients: &[SocketAddr]) -> Vec<Option<ClientApp>> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.lookup(listen, clients)
    }

    /// Linux only: one netlink question per client (`sock_diag.rs`), or the
    /// procfs table when netlink is refused. macOS would walk every
    /// process's descriptors for each batch (too slow to sit before every
    /// new connection), and Windows' table has no owners.
    fn client_users(&self, listen: SocketAddr, clients: &[SocketAddr]) -> Vec<ClientUser> {
        #[cfg(target_os = "linux")]
        match sock_diag::SockDiag::open() {
            Ok(mut diag) => {
                let own = sock_diag::own_uid();
                return clients
                    .iter()
                    .map(|c| match diag.uid(*c, listen) {
                        Ok(Some(uid)) if uid == own => ClientUser::Same,
                        Ok(Some(uid)) => ClientUser::Other { uid, own },
                        Ok(None) => ClientUser::NotFound,
                        Err(e) => ClientUser::Unreadable(format!("sock_diag: {e}")),
                    })
                    .collect();
            }
            Err(e) => tracing::debug!("sock_diag unavailable ({e}); reading /proc/net/tcp"),
        }
        if !cfg!(target_os = "linux") {
            return vec![ClientUser::Unchecked; clients.len()];
        }
        // No lock: this reads only the table, never the process cache.
        let want = Want::tcp_of(listen, clients);
        let mut rows = Vec::new();
        if let Err(e) = imp::read_table(want, &mut rows) {
            return vec![ClientUser::Unreadable(e.to_string()); clients.len()];
        }
        client_users(&rows, listen, clients)
    }
}

impl Want {
    /// Only TCP, of the families `clients` (and the listener) use: what a
    /// lookup of loopback clients needs from the table.
    fn tcp_of(listen: SocketAddr, clients: &[SocketAddr]) -> Self {
        Want {
            tcp: true,
            udp: false,
            v4: clients.iter().any(|c| canonical(*c).is_ipv4()),
            v6: clients.iter().any(|c| c.is_ipv6()) || listen.is_ipv6(),
        }
    }
}

/// Compares the owner of each client's socket with the owner of Veil's end
/// of the same connection (the socket `accept` returned, which belongs to
/// the user Veil runs as): no call to the OS for "who am I" is needed, and
/// the two rows come from the same read.
fn client_users(rows: &[Socket], listen: SocketAddr, clients: &[SocketAddr]) -> Vec<ClientUser> {
    // local -> [(remote, uid)]: a local address has one row per connection.
    let mut by_local: HashMap<SocketAddr, Vec<(SocketAddr, Option<u32>)>> = HashMap::new();
    for s in rows {
        if s.proto == Proto::Tcp && s.holder != Holder::Nobody && s.state != state::LISTEN {
            by_local
                .entry(canonical(s.local))
                .or_default()
                .push((canonical(s.remote), s.uid));
        }
    }
    let uid_of = |local: SocketAddr, remote: &dyn Fn(SocketAddr) -> bool| {
        by_local
            .get(&local)?
            .iter()
            .find(|(r, _)| remote(*r))
            .copied()
    };
    clients
        .iter()
        .map(|c| {
            let client = canonical(*c);
            // The client's row: from the client to an address of the listener.
            let Some((server, uid)) = uid_of(client, &|r| is_listener(r, listen)) else {
                return ClientUser::NotFound;
            };
            let own = uid_of(server, &|r| r == client).and_then(|(_, uid)| uid);
            match (uid, own) {
                (Some(uid), Some(own)) if uid == own => ClientUser::Same,
                (Some(uid), Some(own)) => ClientUser::Other { uid, own },
                // A table without users (Windows) checks nothing.
                (None, _) => ClientUser::Unchecked,
                (Some(_), None) => ClientUser::NotFound,
            }
        })
        .collect()
}

/// Linux: the rows of the clients' sockets, asked of netlink one by one
/// (`sock_diag.rs`), instead of reading the whole table: reading
/// `/proc/net/tcp` walks every established socket, about 10% of Veil's CPU
/// time in a tunnel benchmark of short downloads. `None` when netlink is
/// refused or fails; then the table is read.
#[cfg(target_os = "linux")]
fn asked_rows(listen: SocketAddr, clients: &[SocketAddr]) -> Option<Vec<Socket>> {
    // A wildcard listener's clients connected to one of this machine's
    // addresses, which the question must name exactly: the table knows.
    if listen.ip().is_unspecified() {
        return None;
    }
    let mut diag = sock_diag::SockDiag::open().ok()?;
    let mut rows = Vec::with_capacity(clients.len());
    for client in clients {
        if let Some((uid, inode)) = diag.owner(*client, listen).ok()? {
            rows.push(Socket {
                proto: Proto::Tcp,
                local: *client,
                remote: listen,
                state: state::ESTABLISHED,
                uid: Some(uid),
                holder: Holder::Inode(inode),
            });
        }
    }
    Some(rows)
}

#[cfg(not(target_os = "linux"))]
fn asked_rows(_listen: SocketAddr, _clients: &[SocketAddr]) -> Option<Vec<Socket>> {
    None
}

impl LookupState {
    fn lookup(&mut self, listen: SocketAddr, clients: &[SocketAddr]) -> Vec<Option<ClientApp>> {
        let mut mine = match asked_rows(listen, clients) {
            Some(rows) => rows,
            None => {
                let want = Want::tcp_of(listen, clients);
                let mut rows = Vec::new();
                if let Err(e) = imp::read_table(want, &mut rows) {
                    unavailable_once(&e);
                    return vec![None; clients.len()];
                }
                // The client ends of connections to the listener that were
                // asked about: only those are resolved, recent clients first.
                let asked: HashSet<SocketAddr> = clients.iter().map(|c| canonical(*c)).collect();
                rows.into_iter()
                    .filter(|s| {
                        s.holder != Holder::Nobody
                            && is_listener(s.remote, listen)
                            && asked.contains(&canonical(s.local))
                    })
                    .collect()
            }
        };
        let recent: Vec<u32> = self.recent.iter().copied().collect();
        imp::resolve(&mut mine, &recent);
        let by_local: HashMap<SocketAddr, Option<u32>> =
            mine.iter().map(|s| (canonical(s.local), s.pid())).collect();
        clients
            .iter()
            .map(|c| {
                let pid = (*by_local.get(&canonical(*c))?)?;
                self.remember(pid);
                self.process(pid)
            })
            .collect()
    }

    fn remember(&mut self, pid: u32) {
        if self.recent.front() != Some(&pid) {
            self.recent.retain(|p| *p != pid);
            self.recent.push_front(pid);
            self.recent.truncate(RECENT_CLIENTS);
        }
    }

    fn process(&mut self, pid: u32) -> Option<ClientApp> {
        let now = Instant::now();
        if let Some((at, app)) = self.processes.get(&pid)
            && now.duration_since(*at) < PROCESS_TTL
        {
            return Some(app.clone());
        }
        let app = process(pid)?;
        if self.processes.len() > 1024 {
            self.processes
                .retain(|_, (at, _)| now.duration_since(*at) < PROCESS_TTL);
        }
        self.processes.insert(pid, (now, app.clone()));
        Some(app)
    }
}

/// Says once per run that attribution cannot work here, rather than leaving
/// every app "unknown" without a word.
fn unavailable_once(e: &io::Error) {
    static SAID: AtomicBool = AtomicBool::new(false);
    if !SAID.swap(true, Ordering::Relaxed) {
        tracing::warn!("client app attribution is off: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream, UdpSocket};

    #[test]
    fn want_lists_the_kinds_asked_for() {
        assert_eq!(Want::ALL.kinds().count(), 4);
        let tcp4 = Want {
            tcp: true,
            udp: false,
            v4: true,
            v6: false,
        };
        assert_eq!(tcp4.kinds().collect::<Vec<_>>(), vec![(Proto::Tcp, false)]);
    }

    #[test]
    fn client_users_compare_the_client_row_with_veils_own_end() {
        let a = |s: &str| s.parse::<SocketAddr>().expect("addr");
        let row = |local: &str, remote: &str, uid: Option<u32>| Socket {
            proto: Proto::Tcp,
            local: a(local),
            remote: a(remote),
            state: state::ESTABLISHED,
            uid,
            holder: Holder::Inode(1),
        };
        let listen = a("127.0.0.1:7890");
        let rows = vec![
            row("127.0.0.1:7890", "127.0.0.1:40000", Some(1000)),
            row("127.0.0.1:40000", "127.0.0.1:7890", Some(1000)),
            row("127.0.0.1:7890", "127.0.0.1:40001", Some(1000)),
            row("127.0.0.1:40001", "127.0.0.1:7890", Some(65534)),
            row("127.0.0.1:7890", "127.0.0.1:40002", None),
            row("127.0.0.1:40002", "127.0.0.1:7890", None),
        ];
        let users = client_users(
            &rows,
            listen,
            &[
                a("127.0.0.1:40000"),
                a("127.0.0.1:40001"),
                a("[::ffff:127.0.0.1]:40000"),
                a("127.0.0.1:40002"),
                a("127.0.0.1:40003"),
            ],
        );
        assert_eq!(
            users,
            [
                ClientUser::Same,
                ClientUser::Other {
                    uid: 65534,
                    own: 1000
                },
                ClientUser::Same,
                ClientUser::Unchecked,
                ClientUser::NotFound,
            ]
        );
    }

    #[test]
    fn names_come_from_either_kind_of_path() {
        let app =
            app_from_exe(7, r"C:\Program Files\Git\mingw64\bin\curl.exe".into()).expect("named");
        assert_eq!((app.pid, app.name.as_str()), (7, "curl.exe"));
        let app = app_from_exe(8, "/usr/bin/curl".into()).expect("named");
        assert_eq!(app.name, "curl");
        assert!(app_from_exe(9, "/".into()).is_none());
    }

    /// The real table of this OS: this process behind its own sockets, in the
    /// table, through [`resolve_owners`] and through the lookup.
    #[test]
    fn finds_this_process_behind_its_own_sockets() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let listen = listener.local_addr().expect("addr");
        let client = TcpStream::connect(listen).expect("connect");
        let _accepted = listener.accept().expect("accept");
        let udp = UdpSocket::bind("127.0.0.1:0").expect("udp");

        let mut rows = match table() {
            Ok(rows) => rows,
            Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                eprintln!("skipped: {e}");
                return;
            }
            Err(e) => panic!("socket table: {e}"),
        };
        let me = client.local_addr().expect("addr");
        let mine = |s: &Socket| s.proto == Proto::Tcp && s.local == me && s.remote == listen;
        let row = rows
            .iter()
            .find(|s| mine(s))
            .expect("our client socket is listed");
        assert_eq!(row.state, state::ESTABLISHED);
        let udp_addr = udp.local_addr().expect("addr");
        assert!(
            rows.iter()
                .any(|s| s.proto == Proto::Udp && s.local == udp_addr)
        );
        assert!(
            rows.iter()
                .any(|s| s.local == listen && s.state == state::LISTEN)
        );
        resolve_owners(&mut rows);
        let row = rows.iter().find(|s| mine(s)).expect("still listed");
        if cfg!(windows) && rows.iter().all(|s| s.pid().is_none()) {
            eprintln!(
                "skipped (owners): this Windows names no owning process in its socket tables \
                 (Wine 8 gives process id 0 on every row)"
            );
            return;
        }
        assert_eq!(row.pid(), Some(std::process::id()), "{row:?}");

        let table = SocketTable::new();
        let unknown: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        let apps = table.lookup(listen, &[me, unknown]);
        let app = apps[0].as_ref().expect("found");
        assert_eq!(app.pid, std::process::id());
        let exe = app.exe.as_deref().expect("path known");
        assert!(exe.ends_with(&app.name), "{app:?}");
        assert!(apps[1].is_none());
        // Second time from the recent-client list.
        assert_eq!(table.lookup(listen, &[me])[0].as_ref(), Some(app));
    }
}
