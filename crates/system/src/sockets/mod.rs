//! The machine's socket table and the processes that hold each socket: the
//! one place both client app attribution ([`SocketTable`], the engine's
//! [`ClientLookup`]) and the coverage scan ([`crate::coverage`]) read it.
//!
//! On Linux this is procfs: `/proc/net/{tcp,tcp6,udp,udp6}` list the
//! sockets of Veil's network namespace with their inode, and a process holds
//! a socket when one of its `/proc/PID/fd` links reads `socket:[INODE]`.
//! Without root, other users' processes cannot be read, so their sockets have
//! no owner. Other platforms are not implemented yet: [`table`] says so.
//!
//! Finding the owner of one socket means looking through processes' file
//! descriptors, which is the expensive part. Attribution keeps the processes
//! that were recently clients and looks through those first (a browser opens
//! many connections from the same few processes), and only then through all
//! of them; process names and paths are cached for a few seconds.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use veil_engine::{ClientApp, ClientLookup};

/// TCP or UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    Tcp,
    Udp,
}

/// TCP states as the kernel numbers them (UDP uses `ESTABLISHED` for a
/// connected socket and `CLOSE` for an unconnected one).
pub mod state {
    pub const ESTABLISHED: u8 = 0x01;
    pub const SYN_SENT: u8 = 0x02;
    pub const TIME_WAIT: u8 = 0x06;
    pub const CLOSE: u8 = 0x07;
    pub const LISTEN: u8 = 0x0A;
}

/// One row of the socket table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Socket {
    pub proto: Proto,
    pub local: SocketAddr,
    /// Port 0 and the unspecified address when not connected.
    pub remote: SocketAddr,
    pub state: u8,
    pub uid: u32,
    /// 0 for sockets no process holds any more (`TIME_WAIT`).
    pub inode: u64,
}

/// Every TCP and UDP socket (IPv4 and IPv6) of this network namespace.
pub fn table() -> io::Result<Vec<Socket>> {
    let mut all = Vec::new();
    for (proto, v6) in [
        (Proto::Tcp, false),
        (Proto::Tcp, true),
        (Proto::Udp, false),
        (Proto::Udp, true),
    ] {
        read_table(proto, v6, &mut all)?;
    }
    Ok(all)
}

/// An address with IPv4-mapped IPv6 turned back into IPv4, so a dual-stack
/// listener's view and the client's view compare equal.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// Whether `remote` is Veil's listener `listen` (an unspecified listener
/// address matches any loopback address on its port).
pub fn is_listener(remote: SocketAddr, listen: SocketAddr) -> bool {
    let (remote, listen) = (canonical(remote), canonical(listen));
    remote.port() == listen.port()
        && (remote.ip() == listen.ip()
            || (listen.ip().is_unspecified() && remote.ip().is_loopback()))
}

/// The process holding each of `inodes` that can be found.
pub fn owners(inodes: &HashSet<u64>) -> HashMap<u64, u32> {
    let mut found = HashMap::new();
    if inodes.is_empty() {
        return found;
    }
    for pid in pids() {
        scan_fds(pid, inodes, &mut found);
        if found.len() == inodes.len() {
            break;
        }
    }
    found
}

/// Name and executable of a running process.
pub fn process(pid: u32) -> Option<ClientApp> {
    imp::process(pid)
}

use imp::{pids, read_table, scan_fds};

#[cfg(target_os = "linux")]
mod imp {
    use super::*;
    use std::net::IpAddr;

    pub(super) fn read_table(proto: Proto, v6: bool, out: &mut Vec<Socket>) -> io::Result<()> {
        let name = match (proto, v6) {
            (Proto::Tcp, false) => "tcp",
            (Proto::Tcp, true) => "tcp6",
            (Proto::Udp, false) => "udp",
            (Proto::Udp, true) => "udp6",
        };
        let text = match std::fs::read_to_string(format!("/proc/net/{name}")) {
            Ok(t) => t,
            // No IPv6 in this kernel: no rows.
            Err(e) if v6 && e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        out.extend(text.lines().skip(1).filter_map(|l| parse_row(proto, l)));
        Ok(())
    }

    /// `sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...`
    pub(super) fn parse_row(proto: Proto, line: &str) -> Option<Socket> {
        let mut f = line.split_ascii_whitespace();
        let _sl = f.next()?;
        let local = parse_addr(f.next()?)?;
        let remote = parse_addr(f.next()?)?;
        let state = u8::from_str_radix(f.next()?, 16).ok()?;
        let uid = f.nth(3)?.parse().ok()?;
        let inode = f.nth(1)?.parse().ok()?;
        Some(Socket {
            proto,
            local,
            remote,
            state,
            uid,
            inode,
        })
    }

    /// `0100007F:1F90` (IPv4) or 32 hex digits (IPv6) and a port. The
    /// address is printed as 32-bit words in host byte order; the port is a
    /// plain number.
    fn parse_addr(s: &str) -> Option<SocketAddr> {
        let (ip, port) = s.split_once(':')?;
        let port = u16::from_str_radix(port, 16).ok()?;
        let word = |i: usize| {
            let hex = ip.get(i * 8..i * 8 + 8)?;
            u32::from_str_radix(hex, 16).ok().map(u32::to_ne_bytes)
        };
        let ip = match ip.len() {
            8 => IpAddr::from(word(0)?),
            32 => {
                let mut bytes = [0u8; 16];
                for i in 0..4 {
                    bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
                }
                IpAddr::from(bytes)
            }
            _ => return None,
        };
        Some(SocketAddr::new(ip, port))
    }

    pub(super) fn pids() -> impl Iterator<Item = u32> {
        std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
    }

    /// Adds to `found` the sockets of `wanted` that `pid` holds.
    pub(super) fn scan_fds(pid: u32, wanted: &HashSet<u64>, found: &mut HashMap<u64, u32>) {
        let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            return;
        };
        for fd in dir.flatten() {
            let Ok(link) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let Some(inode) = link
                .to_str()
                .and_then(|l| l.strip_prefix("socket:["))
                .and_then(|l| l.strip_suffix(']'))
                .and_then(|l| l.parse::<u64>().ok())
            else {
                continue;
            };
            if wanted.contains(&inode) {
                found.entry(inode).or_insert(pid);
            }
        }
    }

    pub(super) fn process(pid: u32) -> Option<ClientApp> {
        let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
            .ok()
            .map(|p| {
                let p = p.to_string_lossy().into_owned();
                // A program replaced on disk since it started.
                p.strip_suffix(" (deleted)").map(str::to_owned).unwrap_or(p)
            });
        let from_exe = exe.as_deref().and_then(|e| {
            std::path::Path::new(e)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        });
        let name = match from_exe {
            Some(n) => n,
            // comm is readable when exe is not (other users' processes).
            None => std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .ok()?
                .trim()
                .to_owned(),
        };
        Some(ClientApp { pid, name, exe })
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use super::*;

    pub(super) fn read_table(_: Proto, _: bool, _: &mut Vec<Socket>) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "reading the socket table is only implemented on Linux so far",
        ))
    }
    pub(super) fn pids() -> impl Iterator<Item = u32> {
        std::iter::empty()
    }
    pub(super) fn scan_fds(_: u32, _: &HashSet<u64>, _: &mut HashMap<u64, u32>) {}
    pub(super) fn process(_: u32) -> Option<ClientApp> {
        None
    }
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
}

impl LookupState {
    fn lookup(&mut self, listen: SocketAddr, clients: &[SocketAddr]) -> Vec<Option<ClientApp>> {
        let mut rows = Vec::new();
        // Only the families the clients use are read.
        let v4 = clients.iter().any(|c| canonical(*c).is_ipv4());
        let v6 = clients.iter().any(|c| c.is_ipv6());
        for (wanted, is_v6) in [(v4, false), (v6 || listen.is_ipv6(), true)] {
            if wanted && read_table(Proto::Tcp, is_v6, &mut rows).is_err() {
                return vec![None; clients.len()];
            }
        }
        let by_local: HashMap<SocketAddr, u64> = rows
            .iter()
            .filter(|s| s.inode != 0 && is_listener(s.remote, listen))
            .map(|s| (canonical(s.local), s.inode))
            .collect();
        let inodes: Vec<Option<u64>> = clients
            .iter()
            .map(|c| by_local.get(&canonical(*c)).copied())
            .collect();
        let wanted: HashSet<u64> = inodes.iter().flatten().copied().collect();

        let mut found = HashMap::new();
        for &pid in &self.recent {
            scan_fds(pid, &wanted, &mut found);
            if found.len() == wanted.len() {
                break;
            }
        }
        if found.len() < wanted.len() {
            let rest: HashSet<u64> = wanted
                .iter()
                .filter(|i| !found.contains_key(i))
                .copied()
                .collect();
            found.extend(owners(&rest));
        }
        inodes
            .into_iter()
            .map(|inode| {
                let pid = *found.get(&inode?)?;
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

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream, UdpSocket};

    #[test]
    fn parses_kernel_rows() {
        let v4 = "   0: 0100007F:1F90 0200007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0000000000000000 20 4 30 10 -1";
        let s = imp::parse_row(Proto::Tcp, v4).expect("parses");
        assert_eq!(s.local, "127.0.0.1:8080".parse().expect("addr"));
        assert_eq!(s.remote, "127.0.0.2:54321".parse().expect("addr"));
        assert_eq!((s.state, s.uid, s.inode), (state::ESTABLISHED, 1000, 4242));
        let v6 = "   1: 00000000000000000000000001000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 77 1";
        let s = imp::parse_row(Proto::Tcp, v6).expect("parses");
        assert_eq!(s.local, "[::1]:80".parse().expect("addr"));
        assert_eq!((s.state, s.inode), (state::LISTEN, 77));
        assert!(imp::parse_row(Proto::Tcp, "garbage").is_none());
    }

    #[test]
    fn finds_this_process_behind_its_own_sockets() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let listen = listener.local_addr().expect("addr");
        let client = TcpStream::connect(listen).expect("connect");
        let _accepted = listener.accept().expect("accept");
        let udp = UdpSocket::bind("127.0.0.1:0").expect("udp");

        let rows = table().expect("socket table");
        let me = client.local_addr().expect("addr");
        let row = rows
            .iter()
            .find(|s| s.proto == Proto::Tcp && s.local == me && s.remote == listen)
            .expect("our client socket is listed");
        let udp_addr = udp.local_addr().expect("addr");
        assert!(
            rows.iter()
                .any(|s| s.proto == Proto::Udp && s.local == udp_addr)
        );
        let owners = owners(&HashSet::from([row.inode]));
        assert_eq!(owners.get(&row.inode), Some(&std::process::id()));

        let table = SocketTable::new();
        let unknown: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        let apps = table.lookup(listen, &[me, unknown]);
        let app = apps[0].as_ref().expect("found");
        assert_eq!(app.pid, std::process::id());
        assert!(app.exe.is_some());
        assert!(apps[1].is_none());
        // Second time from the recent-client list.
        assert_eq!(table.lookup(listen, &[me])[0].as_ref(), Some(app));
    }
}
