//! Linux: the owner of one TCP socket, asked of the kernel by its exact
//! addresses over netlink (`NETLINK_SOCK_DIAG`, `SOCK_DIAG_BY_FAMILY`
//! without a dump: `inet_diag_find_one_icsk`, one hash lookup).
//!
//! The "only your user" check sits before every new connection, and reading
//! `/proc/net/tcp` walks the kernel's whole established hash (milliseconds
//! even when nearly empty), so the check asks for exactly the socket it
//! needs instead; so does the client app lookup, for the socket's inode.
//! Through rustix's safe calls: no `unsafe` here.
//!
//! Wire layouts (linux/inet_diag.h, linux/netlink.h), native byte order
//! except the ports and addresses, which are network order:
//! `nlmsghdr` {len u32, type u16, flags u16, seq u32, pid u32} (16 bytes);
//! `inet_diag_req_v2` {family u8, protocol u8, ext u8, pad u8, states u32,
//! id} (8 + 48); `inet_diag_sockid` {sport be16, dport be16, src [be32; 4],
//! dst [be32; 4], if u32, cookie [u32; 2]} (48); the answer's
//! `inet_diag_msg` {family, state, timer, retrans: u8, id, expires u32,
//! rqueue u32, wqueue u32, uid u32, inode u32}.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;

use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const IPPROTO_TCP: u8 = 6;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const HEADER: usize = 16;
const REQUEST: usize = HEADER + 8 + 48;
/// Offset of `uid` in an answer: header, 4 bytes of flags, the socket id,
/// then expires, rqueue and wqueue.
const UID_AT: usize = HEADER + 4 + 48 + 12;

/// A netlink socket to the kernel's socket diagnostics.
pub(super) struct SockDiag {
    fd: OwnedFd,
    seq: u32,
}

impl SockDiag {
    pub fn open() -> io::Result<Self> {
        let fd = rustix::net::socket_with(
            AddressFamily::NETLINK,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC,
            Some(rustix::net::netlink::SOCK_DIAG),
        )?;
        Ok(Self { fd, seq: 0 })
    }

    /// The uid owning the TCP socket with local address `local` connected
    /// to `remote`; `Ok(None)` when there is no such socket.
    pub fn uid(&mut self, local: SocketAddr, remote: SocketAddr) -> io::Result<Option<u32>> {
        Ok(self.owner(local, remote)?.map(|(uid, _)| uid))
    }

    /// The uid and inode of the TCP socket with local address `local`
    /// connected to `remote`; `Ok(None)` when there is no such socket.
    pub fn owner(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> io::Result<Option<(u32, u64)>> {
        self.seq = self.seq.wrapping_add(1);
        let request = request(self.seq, local, remote);
        rustix::net::send(&self.fd, &request, SendFlags::empty())?;
        let mut buf = [0u8; 512];
        loop {
            let (got, _) = rustix::net::recv(&self.fd, &mut buf[..], RecvFlags::empty())?;
            let answer = &buf[..got.min(buf.len())];
            let Some(header) = answer.get(..HEADER) else {
                return Err(io::Error::other("short netlink answer"));
            };
            let kind = u16::from_ne_bytes([header[4], header[5]]);
            let seq = u32::from_ne_bytes([header[8], header[9], header[10], header[11]]);
            if seq != self.seq {
                // An answer to an earlier question that timed out: skip it.
                continue;
            }
            if kind == NLMSG_ERROR {
                let errno = answer
                    .get(HEADER..HEADER + 4)
                    .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                    .unwrap_or(0);
                return match -errno {
                    0 | 2 => Ok(None), // ENOENT: no such socket
                    e => Err(io::Error::from_raw_os_error(e)),
                };
            }
            // The inode follows the uid.
            return match answer.get(UID_AT..UID_AT + 8) {
                Some(b) => Ok(Some((
                    u32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
                    u64::from(u32::from_ne_bytes([b[4], b[5], b[6], b[7]])),
                ))),
                None => Err(io::Error::other("short sock_diag answer")),
            };
        }
    }
}

/// The user this process runs as.
pub(super) fn own_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

fn request(seq: u32, local: SocketAddr, remote: SocketAddr) -> [u8; REQUEST] {
    let mut r = [0u8; REQUEST];
    r[0..4].copy_from_slice(&(REQUEST as u32).to_ne_bytes());
    r[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    r[6..8].copy_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    r[8..12].copy_from_slice(&seq.to_ne_bytes());
    let (local_ip, remote_ip) = (local.ip().to_canonical(), remote.ip().to_canonical());
    let v6 = matches!(
        (local_ip, remote_ip),
        (IpAddr::V6(_), _) | (_, IpAddr::V6(_))
    );
    let body = &mut r[HEADER..];
    body[0] = if v6 { AF_INET6 } else { AF_INET };
    body[1] = IPPROTO_TCP;
    // Every state: the client may already be closing.
    body[4..8].copy_from_slice(&u32::MAX.to_ne_bytes());
    let id = &mut body[8..];
    id[0..2].copy_from_slice(&local.port().to_be_bytes());
    id[2..4].copy_from_slice(&remote.port().to_be_bytes());
    id[4..20].copy_from_slice(&wire_ip(local_ip, v6));
    id[20..36].copy_from_slice(&wire_ip(remote_ip, v6));
    // No interface; INET_DIAG_NOCOOKIE: match by addresses alone.
    id[40..48].copy_from_slice(&[0xff; 8]);
    r
}

/// An address as the socket id holds it: IPv4 in the first word, IPv6 (or
/// IPv4 mapped into it, for an IPv6 socket) in all four.
fn wire_ip(ip: IpAddr, v6: bool) -> [u8; 16] {
    let mut out = [0u8; 16];
    match (ip, v6) {
        (IpAddr::V4(v4), false) => out[..4].copy_from_slice(&v4.octets()),
        (IpAddr::V4(v4), true) => out = v4.to_ipv6_mapped().octets(),
        (IpAddr::V6(v6), _) => out = v6.octets(),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn finds_the_owner_of_a_connection_by_its_addresses() {
        let mut diag = match SockDiag::open() {
            Ok(d) => d,
            Err(e) => {
                eprintln!("skipped: no sock_diag here ({e})");
                return;
            }
        };
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let listen = listener.local_addr().expect("addr");
        let client = TcpStream::connect(listen).expect("connect");
        let (_accepted, peer) = listener.accept().expect("accept");
        let me = client.local_addr().expect("addr");
        assert_eq!(peer, me);
        assert_eq!(diag.uid(me, listen).expect("asked"), Some(own_uid()));
        assert_eq!(diag.uid(listen, me).expect("asked"), Some(own_uid()));
        let gone = SocketAddr::from(([127, 0, 0, 1], 1));
        assert_eq!(diag.uid(gone, listen).expect("asked"), None);
        // The inode is the one /proc names for the client's descriptor.
        use std::os::fd::AsRawFd;
        let link =
            std::fs::read_link(format!("/proc/self/fd/{}", client.as_raw_fd())).expect("fd link");
        let (_, inode) = diag.owner(me, listen).expect("asked").expect("found");
        assert_eq!(link.to_string_lossy(), format!("socket:[{inode}]"));
    }
}
