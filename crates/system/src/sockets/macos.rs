//! macOS: the socket table from libproc, process by process.
//!
//! macOS has no system-wide socket table that names owners, so this lists
//! the processes, each one's file descriptors, and each socket's addresses
//! and state (the way `lsof` does). Without root only the current user's
//! processes can be read; other users' sockets are not listed at all. The
//! numbers are decoded in `raw.rs`.

// The socket info is a C union whose member `soi_kind` names; reading it is
// the only unsafe here.
#![allow(unsafe_code)]

use std::collections::HashSet;
use std::io;

use libproc::bsd_info::BSDInfo;
use libproc::file_info::{ListFDs, ProcFDType, pidfdinfo};
use libproc::net_info::{InSockInfo, SocketFDInfo, SocketInfoKind};
use libproc::proc_pid::{listpidinfo, pidinfo, pidpath};
use libproc::processes::{ProcFilter, pids_by_type};
use veil_engine::ClientApp;

use super::raw::{macos_addr, macos_tcp_state};
use super::{Holder, Proto, Socket, Want, state};

pub(super) fn read_table(want: Want, out: &mut Vec<Socket>) -> io::Result<()> {
    let pids = pids_by_type(ProcFilter::All)
        .map_err(|e| io::Error::other(format!("listing processes (proc_listpids): {e}")))?;
    // A socket shared by several processes (inherited) is listed once.
    let mut seen = HashSet::new();
    for pid in pids {
        sockets_of(pid, want, &mut seen, out);
    }
    Ok(())
}

/// Adds `pid`'s sockets of the wanted kinds; a process that cannot be read
/// (another user's, or gone) adds nothing.
fn sockets_of(pid: u32, want: Want, seen: &mut HashSet<u64>, out: &mut Vec<Socket>) {
    let Ok(pid_c) = i32::try_from(pid) else {
        return;
    };
    let Ok(info) = pidinfo::<BSDInfo>(pid_c, 0) else {
        return;
    };
    let Ok(fds) = listpidinfo::<ListFDs>(pid_c, info.pbi_nfiles as usize) else {
        return;
    };
    for fd in fds {
        if !matches!(ProcFDType::from(fd.proc_fdtype), ProcFDType::Socket) {
            continue;
        }
        let Ok(socket) = pidfdinfo::<SocketFDInfo>(pid_c, fd.proc_fd) else {
            continue;
        };
        let Some(row) = row(&socket, want, pid, info.pbi_uid) else {
            continue;
        };
        if socket.psi.soi_so == 0 || seen.insert(socket.psi.soi_so) {
            out.push(row);
        }
    }
}

/// One TCP or UDP socket as a row, if it is one of the wanted kinds.
fn row(socket: &SocketFDInfo, want: Want, pid: u32, uid: u32) -> Option<Socket> {
    let si = &socket.psi;
    let v6 = match si.soi_family {
        libc::AF_INET => false,
        libc::AF_INET6 => true,
        _ => return None,
    };
    let (proto, ini, tcp_state): (Proto, InSockInfo, Option<i32>) =
        match SocketInfoKind::from(si.soi_kind) {
            SocketInfoKind::Tcp => {
                // SAFETY: `soi_kind` is SOCKINFO_TCP, so the kernel filled
                // the union's `pri_tcp` member.
                let tcp = unsafe { si.soi_proto.pri_tcp };
                (Proto::Tcp, tcp.tcpsi_ini, Some(tcp.tcpsi_state))
            }
            SocketInfoKind::In if si.soi_protocol == libc::IPPROTO_UDP => {
                // SAFETY: `soi_kind` is SOCKINFO_IN, so the kernel filled
                // the union's `pri_in` member.
                (Proto::Udp, unsafe { si.soi_proto.pri_in }, None)
            }
            _ => return None,
        };
    if !want.wants(proto, v6) {
        return None;
    }
    // SAFETY: both members of the address union are plain bytes of the same
    // storage (an IPv4 address in the last word, or 16 IPv6 bytes); which
    // one is meaningful is decided from `insi_vflag` in `macos_addr`.
    let (l4, l6, r4, r6) = unsafe {
        (
            ini.insi_laddr.ina_46.i46a_addr4.s_addr,
            ini.insi_laddr.ina_6.s6_addr,
            ini.insi_faddr.ina_46.i46a_addr4.s_addr,
            ini.insi_faddr.ina_6.s6_addr,
        )
    };
    let local = macos_addr(v6, ini.insi_vflag, l4, l6, ini.insi_lport);
    let remote = macos_addr(v6, ini.insi_vflag, r4, r6, ini.insi_fport);
    let state = match tcp_state {
        Some(s) => macos_tcp_state(s),
        None if remote.port() != 0 => state::ESTABLISHED,
        None => state::CLOSE,
    };
    Some(Socket {
        proto,
        local,
        remote,
        state,
        uid: Some(uid),
        holder: Holder::Process(pid),
    })
}

/// macOS rows name processes: nothing to resolve.
pub(super) fn resolve(_: &mut [Socket], _: &[u32]) {}

pub(super) fn process(pid: u32) -> Option<ClientApp> {
    let pid_c = i32::try_from(pid).ok()?;
    if let Some(app) = pidpath(pid_c)
        .ok()
        .filter(|p| !p.is_empty())
        .and_then(|exe| super::app_from_exe(pid, exe))
    {
        return Some(app);
    }
    let name = libproc::proc_pid::name(pid_c)
        .ok()
        .filter(|n| !n.is_empty())?;
    Some(ClientApp {
        pid,
        name,
        exe: None,
    })
}
