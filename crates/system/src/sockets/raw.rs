//! The numbers the Windows and macOS socket tables give, decoded in plain
//! Rust so every OS's tests check them (the adapters only fetch them).
//!
//! Windows' `GetExtendedTcpTable`/`GetExtendedUdpTable` fill a buffer with a
//! row count and rows made of 32-bit words (IPv6 addresses are 16 bytes,
//! four words), which [`windows_table`] reads as words: no pointer casts.
//! Addresses and ports are in network byte order; ports use the low 16 bits
//! of their word. macOS gives ports the same way and numbers TCP states its
//! own (BSD) way.

// Each adapter uses its own half (and Linux none): the tests use all.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

use super::{Holder, Proto, Socket, state};

/// A port stored in network byte order in the low 16 bits of `raw`.
#[cfg_attr(not(any(windows, target_os = "macos")), allow(dead_code))]
pub fn net_port(raw: u32) -> u16 {
    // Truncation keeps the low 16 bits, which hold the port.
    u16::from_be(raw as u16)
}

/// An IPv4 address stored in network byte order in a 32-bit word.
#[cfg_attr(not(any(windows, target_os = "macos")), allow(dead_code))]
pub fn net_ipv4(raw: u32) -> Ipv4Addr {
    Ipv4Addr::from(raw.to_ne_bytes())
}

/// An IPv6 address stored as 16 bytes in four 32-bit words.
#[cfg_attr(not(windows), allow(dead_code))]
fn words_ipv6(words: &[u32]) -> Ipv6Addr {
    let mut bytes = [0u8; 16];
    for (chunk, word) in bytes.chunks_exact_mut(4).zip(words) {
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    Ipv6Addr::from(bytes)
}

/// Windows' `MIB_TCP_STATE` in Linux's numbering.
#[cfg_attr(not(windows), allow(dead_code))]
pub fn windows_tcp_state(raw: u32) -> u8 {
    match raw {
        2 => state::LISTEN,
        3 => state::SYN_SENT,
        4 => state::SYN_RECV,
        5 => state::ESTABLISHED,
        6 => state::FIN_WAIT1,
        7 => state::FIN_WAIT2,
        8 => state::CLOSE_WAIT,
        9 => state::CLOSING,
        10 => state::LAST_ACK,
        11 => state::TIME_WAIT,
        // 1 closed, 12 delete TCB, and anything new.
        _ => state::CLOSE,
    }
}

/// macOS's `tcpsi_state` (BSD `TCPS_*`) in Linux's numbering.
#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
pub fn macos_tcp_state(raw: i32) -> u8 {
    match raw {
        1 => state::LISTEN,
        2 => state::SYN_SENT,
        3 => state::SYN_RECV,
        4 => state::ESTABLISHED,
        5 => state::CLOSE_WAIT,
        6 => state::FIN_WAIT1,
        7 => state::CLOSING,
        8 => state::LAST_ACK,
        9 => state::FIN_WAIT2,
        10 => state::TIME_WAIT,
        _ => state::CLOSE,
    }
}

/// macOS's `insi_vflag` bits: which of the two address forms is in use.
#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
pub const INI_IPV4: u8 = 0x1;
#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
pub const INI_IPV6: u8 = 0x2;

/// An address of a macOS `in_sockinfo`: the IPv4 word (network order) when
/// the socket speaks IPv4 (an IPv6 socket may, to a mapped address), else
/// the IPv6 bytes; the port as for [`net_port`].
#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
pub fn macos_addr(family_v6: bool, vflag: u8, v4: u32, v6: [u8; 16], port: i32) -> SocketAddr {
    // Reinterpreting the int's bits: the port is in its low 16.
    let port = net_port(port as u32);
    let is_v4 = vflag & INI_IPV4 != 0 || (!family_v6 && vflag & INI_IPV6 == 0);
    if is_v4 {
        SocketAddr::new(IpAddr::V4(net_ipv4(v4)), port)
    } else {
        SocketAddr::new(IpAddr::V6(Ipv6Addr::from(v6)), port)
    }
}

/// Words per row of each Windows table (`MIB_TCPROW_OWNER_PID`,
/// `MIB_TCP6ROW_OWNER_PID`, `MIB_UDPROW_OWNER_PID`, `MIB_UDP6ROW_OWNER_PID`);
/// the adapter checks them against the real structs at compile time.
#[cfg_attr(not(windows), allow(dead_code))]
pub const fn windows_row_words(proto: Proto, v6: bool) -> usize {
    match (proto, v6) {
        (Proto::Tcp, false) => 6,
        (Proto::Tcp, true) => 14,
        (Proto::Udp, false) => 3,
        (Proto::Udp, true) => 7,
    }
}

/// The rows of a table `GetExtended{Tcp,Udp}Table` wrote into `words`: the
/// row count, then the rows. `None` when the count does not fit the buffer.
#[cfg_attr(not(windows), allow(dead_code))]
pub fn windows_table(proto: Proto, v6: bool, words: &[u32]) -> Option<Vec<Socket>> {
    let (&count, rest) = words.split_first()?;
    let size = windows_row_words(proto, v6);
    let rows = rest.get(..(count as usize).checked_mul(size)?)?;
    // Process id 0 (the idle process) stands for "no process": Windows
    // gives it to TIME_WAIT rows, and Wine to every row.
    let holder = |pid: u32, state: u8| match pid {
        0 if state == state::TIME_WAIT => Holder::Nobody,
        0 => Holder::Unknown,
        pid => Holder::Process(pid),
    };
    let unconnected = |v6: bool| {
        let ip = if v6 {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        } else {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        };
        SocketAddr::new(ip, 0)
    };
    let v6_addr = |addr: &[u32], scope: u32, port: u32| {
        SocketAddr::V6(SocketAddrV6::new(
            words_ipv6(addr),
            net_port(port),
            0,
            scope,
        ))
    };
    let v4_addr =
        |addr: u32, port: u32| SocketAddr::new(IpAddr::V4(net_ipv4(addr)), net_port(port));
    let parse = |r: &[u32]| match (proto, v6) {
        // dwState, dwLocalAddr, dwLocalPort, dwRemoteAddr, dwRemotePort, dwOwningPid
        (Proto::Tcp, false) => Socket {
            proto,
            local: v4_addr(r[1], r[2]),
            remote: v4_addr(r[3], r[4]),
            state: windows_tcp_state(r[0]),
            uid: None,
            holder: holder(r[5], windows_tcp_state(r[0])),
        },
        // ucLocalAddr[16], dwLocalScopeId, dwLocalPort, ucRemoteAddr[16],
        // dwRemoteScopeId, dwRemotePort, dwState, dwOwningPid
        (Proto::Tcp, true) => Socket {
            proto,
            local: v6_addr(&r[0..4], r[4], r[5]),
            remote: v6_addr(&r[6..10], r[10], r[11]),
            state: windows_tcp_state(r[12]),
            uid: None,
            holder: holder(r[13], windows_tcp_state(r[12])),
        },
        // dwLocalAddr, dwLocalPort, dwOwningPid
        (Proto::Udp, false) => Socket {
            proto,
            local: v4_addr(r[0], r[1]),
            remote: unconnected(false),
            state: state::CLOSE,
            uid: None,
            holder: holder(r[2], state::CLOSE),
        },
        // ucLocalAddr[16], dwLocalScopeId, dwLocalPort, dwOwningPid
        (Proto::Udp, true) => Socket {
            proto,
            local: v6_addr(&r[0..4], r[4], r[5]),
            remote: unconnected(true),
            state: state::CLOSE,
            uid: None,
            holder: holder(r[6], state::CLOSE),
        },
    };
    Some(rows.chunks_exact(size).map(parse).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A word as Windows stores a network-order value: its bytes in memory.
    fn be_word(bytes: [u8; 4]) -> u32 {
        u32::from_ne_bytes(bytes)
    }

    fn port_word(port: u16) -> u32 {
        let [hi, lo] = port.to_be_bytes();
        // Low 16 bits in memory order, junk in the high half is ignored.
        let junk = if cfg!(target_endian = "little") {
            [hi, lo, 0xAB, 0xCD]
        } else {
            [0xAB, 0xCD, hi, lo]
        };
        u32::from_ne_bytes(junk)
    }

    #[test]
    fn decodes_network_order_words() {
        assert_eq!(net_port(port_word(7890)), 7890);
        assert_eq!(net_ipv4(be_word([127, 0, 0, 1])), Ipv4Addr::LOCALHOST);
        let v6 = [
            be_word([0x20, 0x01, 0x0d, 0xb8]),
            0,
            0,
            be_word([0, 0, 0, 1]),
        ];
        assert_eq!(
            words_ipv6(&v6),
            "2001:db8::1".parse::<Ipv6Addr>().expect("ip")
        );
    }

    #[test]
    fn maps_tcp_states() {
        assert_eq!(windows_tcp_state(2), state::LISTEN);
        assert_eq!(windows_tcp_state(5), state::ESTABLISHED);
        assert_eq!(windows_tcp_state(3), state::SYN_SENT);
        assert_eq!(windows_tcp_state(11), state::TIME_WAIT);
        assert_eq!(windows_tcp_state(12), state::CLOSE);
        assert_eq!(macos_tcp_state(1), state::LISTEN);
        assert_eq!(macos_tcp_state(4), state::ESTABLISHED);
        assert_eq!(macos_tcp_state(2), state::SYN_SENT);
        assert_eq!(macos_tcp_state(10), state::TIME_WAIT);
        assert_eq!(macos_tcp_state(0), state::CLOSE);
    }

    #[test]
    fn reads_macos_addresses() {
        let lo = be_word([127, 0, 0, 1]);
        let v6 = "2001:db8::1".parse::<Ipv6Addr>().expect("ip").octets();
        let port = port_word(7890) as i32;
        let v4: SocketAddr = "127.0.0.1:7890".parse().expect("addr");
        assert_eq!(macos_addr(false, INI_IPV4, lo, [0; 16], port), v4);
        // An IPv6 socket talking to an IPv4 address.
        assert_eq!(macos_addr(true, INI_IPV4, lo, v6, port), v4);
        assert_eq!(
            macos_addr(true, INI_IPV6, lo, v6, port),
            "[2001:db8::1]:7890".parse().expect("addr")
        );
        // Not bound yet: the family decides.
        assert!(macos_addr(true, 0, 0, [0; 16], 0).is_ipv6());
        assert!(macos_addr(false, 0, 0, [0; 16], 0).is_ipv4());
    }

    #[test]
    fn reads_windows_tables() {
        let lo = be_word([127, 0, 0, 1]);
        let tcp4 = [
            2,
            // A connection of pid 1234, then a TIME_WAIT row held by nobody.
            5,
            lo,
            port_word(40000),
            lo,
            port_word(7890),
            1234,
            11,
            lo,
            port_word(40001),
            lo,
            port_word(7890),
            0,
        ];
        let rows = windows_table(Proto::Tcp, false, &tcp4).expect("fits");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].local, "127.0.0.1:40000".parse().expect("addr"));
        assert_eq!(rows[0].remote, "127.0.0.1:7890".parse().expect("addr"));
        assert_eq!(
            (rows[0].state, rows[0].uid, rows[0].pid()),
            (state::ESTABLISHED, None, Some(1234))
        );
        assert_eq!(
            (rows[1].state, rows[1].holder),
            (state::TIME_WAIT, Holder::Nobody)
        );

        let one = be_word([0, 0, 0, 1]);
        let tcp6 = [
            1,
            0,
            0,
            0,
            one,
            0,
            port_word(443),
            0,
            0,
            0,
            0,
            0,
            port_word(0),
            2,
            99,
        ];
        let rows = windows_table(Proto::Tcp, true, &tcp6).expect("fits");
        assert_eq!(rows[0].local, "[::1]:443".parse().expect("addr"));
        assert_eq!((rows[0].state, rows[0].pid()), (state::LISTEN, Some(99)));

        // Wine: process id 0 on a live row.
        let wine = [1, 5, lo, port_word(40002), lo, port_word(7890), 0];
        let rows = windows_table(Proto::Tcp, false, &wine).expect("fits");
        assert_eq!(rows[0].holder, Holder::Unknown);

        let udp4 = [1, be_word([0, 0, 0, 0]), port_word(53), 7];
        let rows = windows_table(Proto::Udp, false, &udp4).expect("fits");
        assert_eq!(rows[0].local, "0.0.0.0:53".parse().expect("addr"));
        assert_eq!(rows[0].remote.port(), 0);
        assert_eq!(rows[0].pid(), Some(7));

        let udp6 = [1, 0, 0, 0, one, 3, port_word(5353), 8];
        let rows = windows_table(Proto::Udp, true, &udp6).expect("fits");
        let SocketAddr::V6(local) = rows[0].local else {
            panic!("IPv6 row");
        };
        assert_eq!((local.port(), local.scope_id()), (5353, 3));
        assert!(rows[0].remote.is_ipv6());

        // A count larger than the buffer, and no buffer at all.
        assert!(windows_table(Proto::Udp, false, &[2, 0, 0, 7]).is_none());
        assert!(windows_table(Proto::Udp, false, &[]).is_none());
        assert_eq!(windows_table(Proto::Udp, false, &[0]), Some(vec![]));
    }
}
