//! Windows: the socket table from the IP Helper API, which names the owning
//! process of every row (other users' included, without administrator
//! rights), and process paths from `QueryFullProcessImageNameW`.
//!
//! The UDP tables give local addresses only: a connected UDP socket (QUIC)
//! shows without its remote end. The rows are decoded in `raw.rs`; this
//! module only fetches the bytes.

// The calls into the Windows API; each block says why it is sound.
#![allow(unsafe_code)]

use std::io;
use std::mem::size_of;

use veil_engine::ClientApp;
use windows_sys::Win32::Foundation::{
    CloseHandle, ERROR_INSUFFICIENT_BUFFER, FALSE, HANDLE, INVALID_HANDLE_VALUE, NO_ERROR,
};
use windows_sys::Win32::NetworkManagement::IpHelper::{
    GetExtendedTcpTable, GetExtendedUdpTable, MIB_TCP6ROW_OWNER_PID, MIB_TCPROW_OWNER_PID,
    MIB_UDP6ROW_OWNER_PID, MIB_UDPROW_OWNER_PID, TCP_TABLE_OWNER_PID_ALL, UDP_TABLE_OWNER_PID,
};
use windows_sys::Win32::Networking::WinSock::{AF_INET, AF_INET6};
use windows_sys::Win32::System::Diagnostics::ToolHelp::{
    CreateToolhelp32Snapshot, PROCESSENTRY32W, Process32FirstW, Process32NextW, TH32CS_SNAPPROCESS,
};
use windows_sys::Win32::System::Threading::{
    OpenProcess, PROCESS_NAME_WIN32, PROCESS_QUERY_LIMITED_INFORMATION, QueryFullProcessImageNameW,
};

use super::raw::{windows_row_words, windows_table};
use super::{Proto, Socket, Want};

// raw.rs reads rows as 32-bit words; the real structs must have that size.
const _: () = {
    assert!(size_of::<MIB_TCPROW_OWNER_PID>() == 4 * windows_row_words(Proto::Tcp, false));
    assert!(size_of::<MIB_TCP6ROW_OWNER_PID>() == 4 * windows_row_words(Proto::Tcp, true));
    assert!(size_of::<MIB_UDPROW_OWNER_PID>() == 4 * windows_row_words(Proto::Udp, false));
    assert!(size_of::<MIB_UDP6ROW_OWNER_PID>() == 4 * windows_row_words(Proto::Udp, true));
};

/// Tries at fetching a table that keeps growing between the size query and
/// the read.
const FETCH_TRIES: usize = 5;

pub(super) fn read_table(want: Want, out: &mut Vec<Socket>) -> io::Result<()> {
    for (proto, v6) in want.kinds() {
        let words = fetch(proto, v6)?;
        let rows = windows_table(proto, v6, &words).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the {proto:?} table's row count does not fit its buffer"),
            )
        })?;
        out.extend(rows);
    }
    Ok(())
}

/// One table as 32-bit words (a `Vec<u32>` so the rows are aligned).
fn fetch(proto: Proto, v6: bool) -> io::Result<Vec<u32>> {
    let family = u32::from(if v6 { AF_INET6 } else { AF_INET });
    let mut words: Vec<u32> = Vec::new();
    for _ in 0..FETCH_TRIES {
        let mut size = u32::try_from(words.len() * 4).unwrap_or(u32::MAX);
        let ptr = if words.is_empty() {
            std::ptr::null_mut()
        } else {
            words.as_mut_ptr().cast()
        };
        // SAFETY: `ptr` is null with `size` 0 (a size query) or points to
        // `words`, which holds `size` writable bytes, 4-aligned as the rows
        // need; the function writes at most `size` bytes and sets `size`.
        let status = unsafe {
            match proto {
                Proto::Tcp => {
                    GetExtendedTcpTable(ptr, &mut size, FALSE, family, TCP_TABLE_OWNER_PID_ALL, 0)
                }
                Proto::Udp => {
                    GetExtendedUdpTable(ptr, &mut size, FALSE, family, UDP_TABLE_OWNER_PID, 0)
                }
            }
        };
        match status {
            NO_ERROR if !words.is_empty() => return Ok(words),
            // An empty table still has its count word; ask again with room.
            NO_ERROR | ERROR_INSUFFICIENT_BUFFER => {
                // Some room for rows that appear before the next call.
                let bytes = size as usize + 64 * 4;
                words = vec![0; bytes.div_ceil(4)];
            }
            code => {
                return Err(io::Error::other(format!(
                    "GetExtended{}Table ({}) failed: {}",
                    if proto == Proto::Tcp { "Tcp" } else { "Udp" },
                    if v6 { "IPv6" } else { "IPv4" },
                    io::Error::from_raw_os_error(code as i32)
                )));
            }
        }
    }
    Err(io::Error::other(format!(
        "the {proto:?} table kept growing while it was read"
    )))
}

/// Windows tables name processes: nothing to resolve.
pub(super) fn resolve(_: &mut [Socket], _: &[u32]) {}

pub(super) fn process(pid: u32) -> Option<ClientApp> {
    image_path(pid)
        .and_then(|exe| super::app_from_exe(pid, exe))
        .or_else(|| {
            // Services and protected processes cannot be opened without
            // administrator rights, but a snapshot names every process.
            Some(ClientApp {
                pid,
                name: snapshot_name(pid)?,
                exe: None,
            })
        })
}

/// A handle closed when dropped.
struct Handle(HANDLE);

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the handle was returned open by the API and is closed once.
        unsafe {
            CloseHandle(self.0);
        }
    }
}

/// The full path of `pid`'s executable.
fn image_path(pid: u32) -> Option<String> {
    // SAFETY: plain call; a null handle means failure and is not used.
    let raw = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, pid) };
    if raw.is_null() {
        return None;
    }
    let process = Handle(raw);
    // Long paths (\\?\ prefixed) may exceed MAX_PATH.
    let mut buf = vec![0u16; 32_768];
    let mut len = u32::try_from(buf.len()).ok()?;
    // SAFETY: `buf` holds `len` UTF-16 units; the call writes at most that
    // many, sets `len` to the number written (without the terminating nul).
    let ok = unsafe {
        QueryFullProcessImageNameW(process.0, PROCESS_NAME_WIN32, buf.as_mut_ptr(), &mut len)
    };
    if ok == FALSE {
        return None;
    }
    buf.truncate(len as usize);
    Some(String::from_utf16_lossy(&buf))
}

/// The executable's file name from a process snapshot.
fn snapshot_name(pid: u32) -> Option<String> {
    // SAFETY: plain call; an invalid handle means failure and is not used.
    let raw = unsafe { CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0) };
    if raw == INVALID_HANDLE_VALUE || raw.is_null() {
        return None;
    }
    let snapshot = Handle(raw);
    let mut entry = PROCESSENTRY32W {
        dwSize: u32::try_from(size_of::<PROCESSENTRY32W>()).ok()?,
        ..Default::default()
    };
    // SAFETY: `entry` is a PROCESSENTRY32W with `dwSize` set, as the API
    // requires; it is written in place.
    let mut more = unsafe { Process32FirstW(snapshot.0, &mut entry) } != FALSE;
    while more {
        if entry.th32ProcessID == pid {
            let name = &entry.szExeFile;
            let end = name.iter().position(|&c| c == 0).unwrap_or(name.len());
            return Some(String::from_utf16_lossy(&name[..end])).filter(|n| !n.is_empty());
        }
        // SAFETY: as for Process32FirstW.
        more = unsafe { Process32NextW(snapshot.0, &mut entry) } != FALSE;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sockets::{canonical, state};
    use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};

    /// Both ends of a loopback connection, this process's listener and a UDP
    /// socket, each in the table with this process as the owner.
    fn finds_own_sockets(ip: &str) {
        let listener = match TcpListener::bind(format!("{ip}:0")) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("skipped: no {ip} here ({e})");
                return;
            }
        };
        let listen = listener.local_addr().expect("addr");
        let client = TcpStream::connect(listen).expect("connect");
        let _accepted = listener.accept().expect("accept");
        let udp = UdpSocket::bind(format!("{ip}:0")).expect("udp");
        let v6 = listen.is_ipv6();

        let mut rows = Vec::new();
        let want = Want {
            v4: !v6,
            v6,
            ..Want::ALL
        };
        read_table(want, &mut rows).expect("socket table");
        let me = Some(std::process::id());
        let find = |proto: Proto, local: SocketAddr, remote: Option<SocketAddr>| {
            rows.iter()
                .find(|s| {
                    // Without scope ids (Wine gives ::1 one).
                    s.proto == proto
                        && canonical(s.local) == local
                        && remote.is_none_or(|r| canonical(s.remote) == r)
                })
                .unwrap_or_else(|| panic!("{proto:?} {local} is listed in {rows:#?}"))
        };
        let local = client.local_addr().expect("addr");
        let out = find(Proto::Tcp, local, Some(listen));
        let inbound = find(Proto::Tcp, listen, Some(local));
        let listening = rows
            .iter()
            .find(|s| canonical(s.local) == listen && s.state == state::LISTEN)
            .expect("our listener is listed");
        let udp_row = find(Proto::Udp, udp.local_addr().expect("addr"), None);
        assert_eq!((out.state, out.uid), (state::ESTABLISHED, None));
        assert_eq!(inbound.state, state::ESTABLISHED);
        if rows.iter().all(|s| s.pid().is_none()) {
            // Wine 8 lists the rows with their addresses and states but
            // gives process id 0 on every one of them.
            eprintln!(
                "skipped (owners): this Windows names no owning process in its socket \
                 tables (Wine 8 gives process id 0 on every row); rows: {out:?}"
            );
        } else {
            for row in [out, inbound, listening, udp_row] {
                assert_eq!(row.pid(), me, "{row:?}");
            }
        }

        // The coverage scan against another listener (so this process is an
        // app, not Veil) lists this process, or "unknown" where the table
        // names no owner, never nothing.
        let elsewhere: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        let report = crate::coverage::scan(elsewhere).expect("coverage scan");
        let here = report
            .apps
            .iter()
            .find(|a| {
                a.pids.contains(&std::process::id()) || a.name == crate::coverage::UNKNOWN_APP
            })
            .unwrap_or_else(|| panic!("this process is in {report:#?}"));
        assert!(here.local_only >= 3, "{here:?}");

        let app = process(std::process::id()).expect("this process is named");
        assert!(app.name.to_lowercase().ends_with(".exe"), "{app:?}");
        let exe = app.exe.as_deref().expect("path known");
        let current = std::env::current_exe().expect("current exe");
        assert_eq!(
            exe.to_lowercase(),
            current.to_string_lossy().to_lowercase(),
            "{app:?}"
        );
    }

    #[test]
    fn finds_this_process_behind_its_ipv4_sockets() {
        finds_own_sockets("127.0.0.1");
    }

    #[test]
    fn finds_this_process_behind_its_ipv6_sockets() {
        finds_own_sockets("[::1]");
    }

    #[test]
    fn names_processes_it_cannot_open() {
        // The System process (pid 4) cannot be opened without administrator
        // rights; the snapshot still names it.
        if let Some(app) = process(4) {
            assert!(!app.name.is_empty(), "{app:?}");
        }
        assert!(process(u32::MAX - 3).is_none());
    }
}
