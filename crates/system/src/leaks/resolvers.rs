//! The resolvers the OS uses: what every app that looks names up itself, or
//! bypasses Veil, asks. Linux: `/etc/resolv.conf`, and systemd-resolved's
//! per-link servers (`resolvectl dns`) when the file names its stub;
//! Windows: each adapter's DNS servers (GetAdaptersAddresses); macOS:
//! `scutil --dns`. Each is labelled by its address and interface.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{LeakCheck, LeakCheckId, LeakInputs, LeakItem, LeakRoute, Verdict};

/// What kind of resolver an address is.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "name")]
pub enum ResolverLabel {
    /// A resolver on this computer (systemd-resolved, dnsmasq) that
    /// forwards to others.
    LoopbackStub,
    /// Your router or another machine on the local network.
    LocalNetwork,
    /// Reached over a VPN-like interface, or a VPN's address range.
    Vpn,
    /// A well-known public resolver, by name.
    Public(String),
    /// Somewhere on the internet: usually your provider's.
    Internet,
}

impl ResolverLabel {
    pub fn describe(&self) -> String {
        match self {
            ResolverLabel::LoopbackStub => {
                "a resolver on this computer that forwards to others".into()
            }
            ResolverLabel::LocalNetwork => "your router or another machine on this network".into(),
            ResolverLabel::Vpn => "a VPN's resolver".into(),
            ResolverLabel::Public(name) => format!("{name}, a public resolver"),
            ResolverLabel::Internet => "a resolver on the internet, usually your provider's".into(),
        }
    }
}

/// Well-known public resolvers (IPv4 and IPv6), by operator.
const PUBLIC: &[(&str, &[&str])] = &[
    (
        "Cloudflare",
        &[
            "1.1.1.1",
            "1.0.0.1",
            "1.1.1.2",
            "1.0.0.2",
            "1.1.1.3",
            "1.0.0.3",
            "2606:4700:4700::1111",
            "2606:4700:4700::1001",
        ],
    ),
    (
        "Google",
        &[
            "8.8.8.8",
            "8.8.4.4",
            "2001:4860:4860::8888",
            "2001:4860:4860::8844",
        ],
    ),
    (
        "Quad9",
        &[
            "9.9.9.9",
            "149.112.112.112",
            "9.9.9.10",
            "9.9.9.11",
            "2620:fe::fe",
            "2620:fe::9",
        ],
    ),
    (
        "OpenDNS",
        &[
            "208.67.222.222",
            "208.67.220.220",
            "2620:119:35::35",
            "2620:119:53::53",
        ],
    ),
    (
        "AdGuard",
        &[
            "94.140.14.14",
            "94.140.15.15",
            "2a10:50c0::ad1:ff",
            "2a10:50c0::ad2:ff",
        ],
    ),
    ("CleanBrowsing", &["185.228.168.9", "185.228.169.9"]),
    ("Control D", &["76.76.2.0", "76.76.10.0"]),
];

/// Interface names that VPN software uses.
const VPN_INTERFACES: &[&str] = &[
    "tun",
    "tap",
    "wg",
    "utun",
    "ppp",
    "ipsec",
    "tailscale",
    "zt",
    "nordlynx",
    "proton",
    "mullvad",
    "wireguard",
    "openvpn",
    "vpn",
];

/// Whether `interface` looks like a VPN's.
pub fn is_vpn_interface(interface: &str) -> bool {
    let name = interface.to_ascii_lowercase();
    VPN_INTERFACES
        .iter()
        .any(|p| name.starts_with(p) || (p.len() > 3 && name.contains(p)))
}

/// Labels the resolver at `addr`, reached over `interface` when known.
pub fn label_resolver(addr: IpAddr, interface: Option<&str>) -> ResolverLabel {
    let addr = veil_engine::canonical_ip(addr);
    if addr.is_loopback() {
        return ResolverLabel::LoopbackStub;
    }
    if interface.is_some_and(is_vpn_interface) {
        return ResolverLabel::Vpn;
    }
    let text = addr.to_string();
    if let Some((name, _)) = PUBLIC.iter().find(|(_, ips)| ips.contains(&text.as_str())) {
        return ResolverLabel::Public((*name).to_owned());
    }
    match addr {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            // 100.64.0.0/10 (carrier-grade NAT) is where Tailscale and
            // similar overlay VPNs put their resolvers.
            if o[0] == 100 && (64..128).contains(&o[1]) {
                ResolverLabel::Vpn
            } else if v4.is_private() || v4.is_link_local() {
                ResolverLabel::LocalNetwork
            } else {
                ResolverLabel::Internet
            }
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            // fc00::/7 unique local, fe80::/10 link local.
            if first & 0xfe00 == 0xfc00 || first & 0xffc0 == 0xfe80 {
                ResolverLabel::LocalNetwork
            } else {
                ResolverLabel::Internet
            }
        }
    }
}

/// One resolver the OS uses.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct OsResolver {
    pub addr: IpAddr,
    /// The interface (link, adapter) it is used on, when known.
    pub interface: Option<String>,
}

/// `nameserver` lines of a resolv.conf.
pub fn parse_resolv_conf(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|rest| {
            let word = rest.split_whitespace().next()?;
            // A scoped address (fe80::1%eth0) names its interface after %.
            word.split('%').next()?.parse().ok()
        })
        .collect()
}

/// `resolvectl dns` output: `Global: 1.1.1.1` and `Link 2 (eth0): 192.168.1.1 fe80::1%2`.
pub fn parse_resolvectl_dns(text: &str) -> Vec<OsResolver> {
    let mut found = Vec::new();
    for line in text.lines() {
        let Some((head, servers)) = line.split_once("):").or_else(|| line.split_once(':')) else {
            continue;
        };
        let interface = head.split_once('(').map(|(_, name)| name.trim().to_owned());
        for word in servers.split_whitespace() {
            // Servers may carry a port or a server name: 1.1.1.1:853#cloudflare-dns.com.
            let word = word.split('#').next().unwrap_or(word);
            let word = word.split('%').next().unwrap_or(word);
            let addr = word
                .parse::<IpAddr>()
                .ok()
                .or_else(|| word.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()));
            if let Some(addr) = addr {
                found.push(OsResolver {
                    addr,
                    interface: interface.clone(),
                });
            }
        }
    }
    found
}

/// `scutil --dns`: each resolver block's `nameserver[n] : ADDR` and
/// `if_index : N (en0)`.
pub fn parse_scutil_dns(text: &str) -> Vec<OsResolver> {
    let mut found = Vec::new();
    let mut block: Vec<IpAddr> = Vec::new();
    let mut interface: Option<String> = None;
    let mut flush = |block: &mut Vec<IpAddr>, interface: &mut Option<String>| {
        for addr in block.drain(..) {
            found.push(OsResolver {
                addr,
                interface: interface.clone(),
            });
        }
        *interface = None;
    };
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("resolver #") {
            flush(&mut block, &mut interface);
        } else if let Some((key, value)) = line.split_once(':') {
            let (key, value) = (key.trim(), value.trim());
            if key.starts_with("nameserver[") {
                if let Ok(addr) = value.split('%').next().unwrap_or(value).parse() {
                    block.push(addr);
                }
            } else if key == "if_index" {
                interface = value
                    .split_once('(')
                    .map(|(_, n)| n.trim_end_matches(')').to_owned());
            }
        }
    }
    flush(&mut block, &mut interface);
    found
}

/// The resolvers this OS uses, and what was read to find them.
fn os_resolvers(inputs: &LeakInputs) -> (Vec<OsResolver>, Vec<String>) {
    let mut looked = Vec::new();
    let mut found = Vec::new();
    if cfg!(windows) {
        looked.push("each network adapter's DNS servers".to_owned());
        #[cfg(windows)]
        found.extend(super::win32::adapters().into_iter().flat_map(|a| {
            a.dns.into_iter().map(move |addr| OsResolver {
                addr,
                interface: Some(a.name.clone()),
            })
        }));
        return (found, looked);
    }
    if cfg!(target_os = "macos") && inputs.probe_network_state {
        looked.push("scutil --dns".to_owned());
        if let Some(out) = super::tool_output("scutil", &["--dns"]) {
            found.extend(parse_scutil_dns(&out));
        }
        return (found, looked);
    }
    let resolv = inputs.system_path("/etc/resolv.conf");
    looked.push(resolv.display().to_string());
    let servers = std::fs::read_to_string(&resolv)
        .map(|t| parse_resolv_conf(&t))
        .unwrap_or_default();
    let stub = servers.iter().any(|a| a.is_loopback());
    found.extend(servers.into_iter().map(|addr| OsResolver {
        addr,
        interface: None,
    }));
    if stub {
        // The stub forwards to per-link servers: those are what the network sees.
        let mut links = Vec::new();
        if inputs.probe_network_state {
            looked.push("resolvectl dns".to_owned());
            if let Some(out) = super::tool_output("resolvectl", &["dns"]) {
                links = parse_resolvectl_dns(&out);
            }
        }
        if links.is_empty() {
            let upstream = inputs.system_path("/run/systemd/resolve/resolv.conf");
            if let Ok(text) = std::fs::read_to_string(&upstream) {
                looked.push(upstream.display().to_string());
                links.extend(parse_resolv_conf(&text).into_iter().map(|addr| OsResolver {
                    addr,
                    interface: None,
                }));
            }
        }
        found.extend(links);
    }
    (found, looked)
}

pub fn check(inputs: &LeakInputs) -> LeakCheck {
    let (resolvers, looked) = os_resolvers(inputs);
    let mut check = LeakCheck {
        id: LeakCheckId::OsResolvers,
        title: "Resolvers this computer uses".into(),
        verdict: Verdict::Unknown,
        looked_at: format!("The OS's DNS configuration: {}.", looked.join(", ")),
        found: String::new(),
        why: "Apps that bypass Veil, and apps that look names up before using it, ask these \
              resolvers: whoever runs them sees those names."
            .into(),
        todo: String::new(),
        items: Vec::new(),
    };
    let through_upstream = inputs.route() == LeakRoute::Upstream;
    let unique: BTreeSet<OsResolver> = resolvers.into_iter().collect();
    if unique.is_empty() {
        check.found = "No resolver could be read.".into();
        return check;
    }
    let mut labels = Vec::new();
    for r in &unique {
        let label = label_resolver(r.addr, r.interface.as_deref());
        let verdict = match label {
            ResolverLabel::LoopbackStub | ResolverLabel::Vpn => Verdict::Pass,
            _ if through_upstream => Verdict::Warn,
            _ => Verdict::Pass,
        };
        let subject = match &r.interface {
            Some(i) => format!("{} ({i})", r.addr),
            None => r.addr.to_string(),
        };
        labels.push(format!("{} ({})", r.addr, label.describe()));
        check
            .items
            .push(LeakItem::new(subject, label.describe(), verdict));
    }
    check.verdict = Verdict::worst(check.items.iter().map(|i| i.verdict));
    check.found = format!(
        "Names looked up on this computer go to {}.",
        labels.join("; ")
    );
    if check.verdict == Verdict::Warn {
        check.todo = "Traffic through Veil is resolved by the upstream, but anything that looks \
                      names up here tells these resolvers. Fix the apps listed under 'Apps that \
                      look names up themselves'; for apps that bypass Veil, a VPN that carries \
                      DNS hides the names from your network."
            .into();
    } else if inputs.route() == LeakRoute::Direct {
        check.found.push_str(
            " Veil is in direct mode, so it looks names up through them too: this is expected.",
        );
    }
    check
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_os = "linux")]
    use crate::leaks::tests_support::{engine, inputs};

    #[test]
    fn resolvers_are_labelled_by_address_and_interface() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert_eq!(
            label_resolver(ip("127.0.0.53"), None),
            ResolverLabel::LoopbackStub
        );
        assert_eq!(
            label_resolver(ip("192.168.1.1"), Some("wlan0")),
            ResolverLabel::LocalNetwork
        );
        assert_eq!(
            label_resolver(ip("fe80::1"), None),
            ResolverLabel::LocalNetwork
        );
        assert_eq!(
            label_resolver(ip("10.8.0.1"), Some("tun0")),
            ResolverLabel::Vpn
        );
        assert_eq!(
            label_resolver(ip("10.2.0.1"), Some("wg-mullvad")),
            ResolverLabel::Vpn
        );
        assert_eq!(
            label_resolver(ip("100.100.100.100"), None),
            ResolverLabel::Vpn
        );
        assert_eq!(
            label_resolver(ip("1.1.1.1"), Some("eth0")),
            ResolverLabel::Public("Cloudflare".into())
        );
        assert_eq!(
            label_resolver(ip("2001:4860:4860::8888"), None),
            ResolverLabel::Public("Google".into())
        );
        assert_eq!(
            label_resolver(ip("203.0.113.53"), None),
            ResolverLabel::Internet
        );
        assert!(!is_vpn_interface("eth0") && !is_vpn_interface("wlp2s0"));
    }

    #[test]
    fn the_three_formats_are_read() {
        assert_eq!(
            parse_resolv_conf(
                "# comment\nnameserver 127.0.0.53\noptions edns0\nnameserver fe80::1%eth0\n"
            ),
            vec![
                "127.0.0.53".parse::<IpAddr>().expect("ip"),
                "fe80::1".parse().expect("ip")
            ]
        );
        let links = parse_resolvectl_dns(
            "Global: 1.1.1.1#cloudflare-dns.com\nLink 2 (eth0): 192.168.1.1 fe80::1%2\nLink 3 (wg0):\n",
        );
        assert_eq!(links.len(), 3, "{links:?}");
        assert_eq!(links[0].interface, None);
        assert_eq!(links[1].interface.as_deref(), Some("eth0"));
        assert_eq!(links[2].addr, "fe80::1".parse::<IpAddr>().expect("ip"));
        let mac = parse_scutil_dns(
            "DNS configuration\n\nresolver #1\n  nameserver[0] : 192.168.1.1\n  if_index : 6 (en0)\n  \
             flags    : Request A records\n\nresolver #2\n  domain   : local\n  nameserver[0] : 10.8.0.1\n  \
             if_index : 14 (utun3)\n",
        );
        assert_eq!(mac.len(), 2);
        assert_eq!(mac[0].interface.as_deref(), Some("en0"));
        assert_eq!(mac[1].interface.as_deref(), Some("utun3"));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_router_warns_only_through_an_upstream() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("etc")).expect("mkdir");
        std::fs::write(
            dir.path().join("etc/resolv.conf"),
            "nameserver 192.168.1.1\n",
        )
        .expect("write");
        let mut i = inputs();
        i.root = dir.path().to_path_buf();
        i.engine = Some(engine(veil_engine::Mode::Proxy));
        let check = check(&i);
        assert_eq!(check.verdict, Verdict::Warn, "{check:?}");
        assert!(
            check.found.contains("192.168.1.1 (your router"),
            "{}",
            check.found
        );
        i.engine = Some(engine(veil_engine::Mode::Direct));
        assert_eq!(super::check(&i).verdict, Verdict::Pass);
        i.root = dir.path().join("nothing");
        assert_eq!(super::check(&i).verdict, Verdict::Unknown);
    }
}
