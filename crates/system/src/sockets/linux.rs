//! Linux: the socket table from procfs, owners by inode.
//!
//! `/proc/net/{tcp,tcp6,udp,udp6}` list the sockets of this network
//! namespace with their inode; a process holds a socket when one of its
//! `/proc/PID/fd` links reads `socket:[INODE]`.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{IpAddr, SocketAddr};

use veil_engine::ClientApp;

use super::{Holder, Proto, Socket, Want};

pub(super) fn read_table(want: Want, out: &mut Vec<Socket>) -> io::Result<()> {
    for (proto, v6) in want.kinds() {
        let name = match (proto, v6) {
            (Proto::Tcp, false) => "tcp",
            (Proto::Tcp, true) => "tcp6",
            (Proto::Udp, false) => "udp",
            (Proto::Udp, true) => "udp6",
        };
        let text = match std::fs::read_to_string(format!("/proc/net/{name}")) {
            Ok(t) => t,
            // No IPv6 in this kernel: no rows.
            Err(e) if v6 && e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        out.extend(text.lines().skip(1).filter_map(|l| parse_row(proto, l)));
    }
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
        uid: Some(uid),
        holder: if inode == 0 {
            Holder::Nobody
        } else {
            Holder::Inode(inode)
        },
    })
}

/// `0100007F:1F90` (IPv4) or 32 hex digits (IPv6) and a port. The address
/// is printed as 32-bit words in host byte order; the port is a plain number.
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

/// Finds the processes holding the rows' inodes: `first` (recent clients),
/// then every process, until all are found.
pub(super) fn resolve(rows: &mut [Socket], first: &[u32]) {
    let wanted: HashSet<u64> = rows
        .iter()
        .filter_map(|s| match s.holder {
            Holder::Inode(inode) => Some(inode),
            Holder::Nobody | Holder::Process(_) | Holder::Unknown => None,
        })
        .collect();
    if wanted.is_empty() {
        return;
    }
    let mut found = HashMap::new();
    for pid in first.iter().copied().chain(pids()) {
        scan_fds(pid, &wanted, &mut found);
        if found.len() == wanted.len() {
            break;
        }
    }
    for s in rows {
        if let Holder::Inode(inode) = s.holder
            && let Some(&pid) = found.get(&inode)
        {
            s.holder = Holder::Process(pid);
        }
    }
}

fn pids() -> impl Iterator<Item = u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
}

/// Adds to `found` the sockets of `wanted` that `pid` holds.
fn scan_fds(pid: u32, wanted: &HashSet<u64>, found: &mut HashMap<u64, u32>) {
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
    if let Some(app) = exe.and_then(|e| super::app_from_exe(pid, e)) {
        return Some(app);
    }
    // comm is readable when exe is not (other users' processes).
    let name = std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()?
        .trim()
        .to_owned();
    Some(ClientApp {
        pid,
        name,
        exe: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sockets::state;

    #[test]
    fn parses_kernel_rows() {
        let v4 = "   0: 0100007F:1F90 0200007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0000000000000000 20 4 30 10 -1";
        let s = parse_row(Proto::Tcp, v4).expect("parses");
        assert_eq!(s.local, "127.0.0.1:8080".parse().expect("addr"));
        assert_eq!(s.remote, "127.0.0.2:54321".parse().expect("addr"));
        assert_eq!(
            (s.state, s.uid, s.holder),
            (state::ESTABLISHED, Some(1000), Holder::Inode(4242))
        );
        let v6 = "   1: 00000000000000000000000001000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 77 1";
        let s = parse_row(Proto::Tcp, v6).expect("parses");
        assert_eq!(s.local, "[::1]:80".parse().expect("addr"));
        assert_eq!((s.state, s.holder), (state::LISTEN, Holder::Inode(77)));
        let gone = "   2: 0100007F:1F90 0200007F:D432 06 00000000:00000000 03:00000000 00000000     0        0 0 3";
        let s = parse_row(Proto::Tcp, gone).expect("parses");
        assert_eq!((s.state, s.holder), (state::TIME_WAIT, Holder::Nobody));
        assert!(parse_row(Proto::Tcp, "garbage").is_none());
    }
}
