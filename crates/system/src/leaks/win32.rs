//! Windows: each network adapter's DNS servers, unicast addresses and
//! whether it has an IPv6 gateway, from `GetAdaptersAddresses`.

// The call into the Windows API and the walk over the linked lists it fills
// in; each block says why it is sound.
#![allow(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use windows_sys::Win32::Foundation::{ERROR_BUFFER_OVERFLOW, NO_ERROR};
use windows_sys::Win32::NetworkManagement::IpHelper::{
    GAA_FLAG_INCLUDE_GATEWAYS, GAA_FLAG_SKIP_ANYCAST, GAA_FLAG_SKIP_MULTICAST,
    GetAdaptersAddresses, IP_ADAPTER_ADDRESSES_LH,
};
use windows_sys::Win32::NetworkManagement::Ndis::IfOperStatusUp;
use windows_sys::Win32::Networking::WinSock::{
    AF_INET, AF_INET6, AF_UNSPEC, SOCKADDR_IN, SOCKADDR_IN6, SOCKET_ADDRESS,
};

/// One adapter that is up.
#[derive(Debug, Clone, Default)]
pub struct Adapter {
    /// The name the user sees ("Wi-Fi", "NordLynx").
    pub name: String,
    pub dns: Vec<IpAddr>,
    pub v6: Vec<Ipv6Addr>,
    pub v6_gateway: bool,
}

/// The address in a `SOCKET_ADDRESS`, if it is IPv4 or IPv6.
fn ip_of(sa: &SOCKET_ADDRESS) -> Option<IpAddr> {
    if sa.lpSockaddr.is_null() {
        return None;
    }
    // SAFETY: GetAdaptersAddresses filled `lpSockaddr` with a valid SOCKADDR
    // of `iSockaddrLength` bytes inside the buffer, which outlives this call;
    // the family says which larger struct it is, and the length is checked
    // before reading it as that struct.
    unsafe {
        let family = (*sa.lpSockaddr).sa_family;
        let len = usize::try_from(sa.iSockaddrLength).ok()?;
        if family == AF_INET && len >= size_of::<SOCKADDR_IN>() {
            let v4 = &*(sa.lpSockaddr as *const SOCKADDR_IN);
            Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                v4.sin_addr.S_un.S_addr,
            ))))
        } else if family == AF_INET6 && len >= size_of::<SOCKADDR_IN6>() {
            let v6 = &*(sa.lpSockaddr as *const SOCKADDR_IN6);
            Some(IpAddr::V6(Ipv6Addr::from(v6.sin6_addr.u.Byte)))
        } else {
            None
        }
    }
}

/// A NUL-terminated UTF-16 string.
fn wide(p: *const u16) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: the API's strings are NUL-terminated and live in the buffer.
    unsafe {
        let mut n = 0;
        while *p.add(n) != 0 {
            n += 1;
        }
        String::from_utf16_lossy(std::slice::from_raw_parts(p, n))
    }
}

/// Every adapter that is up; empty when the API fails.
pub fn adapters() -> Vec<Adapter> {
    let flags = GAA_FLAG_INCLUDE_GATEWAYS | GAA_FLAG_SKIP_ANYCAST | GAA_FLAG_SKIP_MULTICAST;
    // Buffers of u64 keep the structs' 8-byte alignment.
    let mut size: u32 = 16 * 1024;
    let mut buf: Vec<u64> = Vec::new();
    let mut done = false;
    for _ in 0..4 {
        buf = vec![0u64; (size as usize).div_ceil(8)];
        // SAFETY: `buf` has at least `size` writable bytes, suitably aligned;
        // the API writes no more than `size` and updates it when short.
        let rc = unsafe {
            GetAdaptersAddresses(
                u32::from(AF_UNSPEC),
                flags,
                std::ptr::null(),
                buf.as_mut_ptr().cast::<IP_ADAPTER_ADDRESSES_LH>(),
                &mut size,
            )
        };
        if rc == NO_ERROR {
            done = true;
            break;
        }
        if rc != ERROR_BUFFER_OVERFLOW {
            return Vec::new();
        }
    }
    if !done {
        return Vec::new();
    }
    let mut found = Vec::new();
    let mut next = buf.as_ptr().cast::<IP_ADAPTER_ADDRESSES_LH>();
    while !next.is_null() {
        // SAFETY: a successful call left a linked list of adapters in `buf`
        // (alive until the end of this function), each `Next` pointing into
        // it or null; the same holds for the address lists below.
        let a = unsafe { &*next };
        next = a.Next;
        if a.OperStatus != IfOperStatusUp {
            continue;
        }
        let mut adapter = Adapter {
            name: wide(a.FriendlyName),
            ..Adapter::default()
        };
        let mut dns = a.FirstDnsServerAddress;
        while !dns.is_null() {
            // SAFETY: as above.
            let d = unsafe { &*dns };
            adapter.dns.extend(ip_of(&d.Address));
            dns = d.Next;
        }
        let mut uni = a.FirstUnicastAddress;
        while !uni.is_null() {
            // SAFETY: as above.
            let u = unsafe { &*uni };
            if let Some(IpAddr::V6(v6)) = ip_of(&u.Address) {
                adapter.v6.push(v6);
            }
            uni = u.Next;
        }
        let mut gw = a.FirstGatewayAddress;
        while !gw.is_null() {
            // SAFETY: as above.
            let g = unsafe { &*gw };
            if matches!(ip_of(&g.Address), Some(IpAddr::V6(_))) {
                adapter.v6_gateway = true;
            }
            gw = g.Next;
        }
        found.push(adapter);
    }
    found
}
