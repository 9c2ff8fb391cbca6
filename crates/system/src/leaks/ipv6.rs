//! IPv6 exposure: a global IPv6 address and a default IPv6 route on this
//! machine while Veil's exit answers only over IPv4. Apps that bypass Veil
//! then reach IPv6 sites straight from this computer's address. Linux reads
//! `/proc/net/if_inet6` and `/proc/net/ipv6_route`; Windows the adapters'
//! unicast and gateway addresses; macOS `ifconfig` and `route get`.

use std::net::{IpAddr, Ipv6Addr};

use super::{LeakCheck, LeakCheckId, LeakInputs, LeakItem, LeakRoute, Verdict};

/// Whether `addr` is a global unicast address (2000::/3).
pub fn is_global(addr: Ipv6Addr) -> bool {
    addr.segments()[0] & 0xe000 == 0x2000
}

/// Global addresses in `/proc/net/if_inet6`, with their interface.
pub fn parse_if_inet6(text: &str) -> Vec<(Ipv6Addr, String)> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [hex, _, _, _, _, name] = fields.as_slice() else {
                return None;
            };
            let bits = u128::from_str_radix(hex, 16).ok()?;
            let addr = Ipv6Addr::from(bits);
            (is_global(addr) && *name != "lo").then(|| (addr, (*name).to_owned()))
        })
        .collect()
}

/// The interfaces of usable default routes in `/proc/net/ipv6_route`.
pub fn parse_ipv6_route(text: &str) -> Vec<String> {
    const RTF_REJECT: u32 = 0x0200;
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 {
                return None;
            }
            let default = f[0].chars().all(|c| c == '0') && f[1] == "00";
            let flags = u32::from_str_radix(f[8], 16).ok()?;
            (default && flags & RTF_REJECT == 0 && f[9] != "lo").then(|| f[9].to_owned())
        })
        .collect()
}

/// `inet6 ADDR prefixlen …` lines of macOS `ifconfig`, global ones only.
#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
pub fn parse_ifconfig(text: &str) -> Vec<(Ipv6Addr, String)> {
    let mut interface = String::new();
    let mut found = Vec::new();
    for line in text.lines() {
        if !line.starts_with(char::is_whitespace) {
            if let Some((name, _)) = line.split_once(':') {
                interface = name.to_owned();
            }
            continue;
        }
        let mut words = line.split_whitespace();
        if words.next() == Some("inet6")
            && let Some(addr) = words.next()
            && let Ok(addr) = addr.split('%').next().unwrap_or(addr).parse::<Ipv6Addr>()
            && is_global(addr)
        {
            found.push((addr, interface.clone()));
        }
    }
    found
}

/// Global IPv6 addresses with their interfaces, the interfaces with a
/// default IPv6 route, and what was read.
type Exposure = (Vec<(Ipv6Addr, String)>, Vec<String>, String);

fn exposure(inputs: &LeakInputs) -> Option<Exposure> {
    #[cfg(windows)]
    {
        let _ = inputs;
        let mut addrs = Vec::new();
        let mut routes = Vec::new();
        for a in super::win32::adapters() {
            if a.v6_gateway {
                routes.push(a.name.clone());
            }
            addrs.extend(
                a.v6.into_iter()
                    .filter(|v| is_global(*v))
                    .map(|v| (v, a.name.clone())),
            );
        }
        return Some((
            addrs,
            routes,
            "each network adapter's addresses and gateways".into(),
        ));
    }
    #[cfg(target_os = "macos")]
    {
        if !inputs.probe_network_state {
            return None;
        }
        let addrs = parse_ifconfig(&super::tool_output("ifconfig", &[])?);
        let route = super::tool_output("route", &["-n", "get", "-inet6", "default"]);
        let routes = route
            .and_then(|r| {
                r.lines().find_map(|l| {
                    l.trim()
                        .strip_prefix("interface:")
                        .map(|i| i.trim().to_owned())
                })
            })
            .into_iter()
            .collect();
        return Some((
            addrs,
            routes,
            "ifconfig and route get -inet6 default".into(),
        ));
    }
    #[allow(unreachable_code)]
    {
        let addrs_path = inputs.system_path("/proc/net/if_inet6");
        let routes_path = inputs.system_path("/proc/net/ipv6_route");
        let looked = format!("{} and {}", addrs_path.display(), routes_path.display());
        // No file at all: IPv6 is off in this kernel, which exposes nothing.
        let addrs = std::fs::read_to_string(&addrs_path)
            .map(|t| parse_if_inet6(&t))
            .unwrap_or_default();
        let routes = std::fs::read_to_string(&routes_path)
            .map(|t| parse_ipv6_route(&t))
            .unwrap_or_default();
        Some((addrs, routes, looked))
    }
}

pub fn check(inputs: &LeakInputs) -> LeakCheck {
    let mut check = LeakCheck {
        id: LeakCheckId::Ipv6,
        title: "IPv6 exposure".into(),
        verdict: Verdict::Unknown,
        looked_at: String::new(),
        found: String::new(),
        why: "When this computer has a global IPv6 address and a route out, apps that bypass \
              Veil reach IPv6 sites from that address, which names your network, even while \
              the exit through Veil is an upstream's IPv4 address."
            .into(),
        todo: String::new(),
        items: Vec::new(),
    };
    let Some((addrs, routes, looked)) = exposure(inputs) else {
        check.looked_at = "This computer's IPv6 addresses and routes.".into();
        check.found = "The addresses and routes could not be read.".into();
        return check;
    };
    check.looked_at = format!("{looked}; the exit address of the last IP check through Veil.");
    let exposed: Vec<&(Ipv6Addr, String)> = addrs.iter().filter(|_| !routes.is_empty()).collect();
    if exposed.is_empty() {
        check.verdict = Verdict::Pass;
        check.found = if addrs.is_empty() {
            "No global IPv6 address on this computer.".into()
        } else {
            "A global IPv6 address but no default IPv6 route: nothing leaves over IPv6.".into()
        };
        return check;
    }
    for (addr, interface) in &exposed {
        check.items.push(LeakItem::new(
            format!("{addr} ({interface})"),
            format!(
                "global address; default IPv6 route via {}",
                routes.join(", ")
            ),
            Verdict::Pass,
        ));
    }
    let first = exposed[0].0;
    let exit: Option<IpAddr> = inputs
        .exit_ip
        .as_deref()
        .and_then(|ip| ip.parse().ok())
        .map(veil_engine::canonical_ip);
    match inputs.route() {
        LeakRoute::Unknown => {
            check.found = format!(
                "This computer reaches IPv6 sites from {first}; no Veil engine is running to \
                 compare with."
            );
        }
        LeakRoute::Direct => {
            check.verdict = Verdict::Pass;
            check.found = format!(
                "This computer reaches IPv6 sites from {first}. Veil is in direct mode, so \
                 everything leaves from this computer's addresses anyway."
            );
        }
        LeakRoute::Upstream => match exit {
            Some(IpAddr::V6(v6)) => {
                check.verdict = Verdict::Pass;
                check.found = format!(
                    "This computer has IPv6 ({first}), and the exit through Veil answers over \
                     IPv6 too ({v6})."
                );
            }
            other => {
                check.verdict = Verdict::Warn;
                for item in &mut check.items {
                    item.verdict = Verdict::Warn;
                }
                let exit = match other {
                    Some(v4) => format!("the exit through Veil is IPv4 only ({v4})"),
                    None => "no IP check through Veil has shown an IPv6 exit".into(),
                };
                check.found = format!(
                    "This computer reaches IPv6 sites directly from {first}, while {exit}: apps \
                     that bypass Veil expose that address."
                );
                check.todo = "Turn IPv6 off on this network connection while you rely on Veil, or \
                              use an upstream that carries IPv6; make the apps that bypass Veil \
                              use it (see the Coverage list)."
                    .into();
            }
        },
    }
    check
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_os = "linux")]
    use crate::leaks::tests_support::{engine, inputs};

    const IF_INET6: &str = "00000000000000000000000000000001 01 80 10 80       lo\n\
                            fe800000000000000000000000000001 02 40 20 80     eth0\n\
                            2a0104f8000000000000000000000002 02 40 00 00     eth0\n";
    const ROUTE: &str = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 \
                         fe800000000000000000000000000001 00000400 00000001 00000000 00000003     eth0\n";
    const REJECT: &str = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 \
                          00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n";

    #[test]
    fn proc_files_and_ifconfig_are_read() {
        let addrs = parse_if_inet6(IF_INET6);
        assert_eq!(
            addrs,
            vec![("2a01:4f8::2".parse().expect("ip"), "eth0".to_owned())]
        );
        assert_eq!(parse_ipv6_route(ROUTE), vec!["eth0".to_owned()]);
        assert!(
            parse_ipv6_route(REJECT).is_empty(),
            "the unreachable route of lo"
        );
        let mac = parse_ifconfig(
            "en0: flags=8863<UP> mtu 1500\n\tinet6 fe80::1%en0 prefixlen 64 scopeid 0x6\n\t\
             inet6 2001:db8::5 prefixlen 64 autoconf secured\n",
        );
        assert_eq!(
            mac,
            vec![("2001:db8::5".parse().expect("ip"), "en0".to_owned())]
        );
    }

    #[cfg(target_os = "linux")]
    fn machine(route: &str) -> (tempfile::TempDir, LeakInputs) {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("proc/net")).expect("mkdir");
        std::fs::write(dir.path().join("proc/net/if_inet6"), IF_INET6).expect("write");
        std::fs::write(dir.path().join("proc/net/ipv6_route"), route).expect("write");
        let mut i = inputs();
        i.root = dir.path().to_path_buf();
        (dir, i)
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn an_ipv4_only_exit_beside_a_global_ipv6_route_warns() {
        let (_dir, mut i) = machine(ROUTE);
        i.engine = Some(engine(veil_engine::Mode::Proxy));
        i.exit_ip = Some("198.51.100.7".into());
        let c = check(&i);
        assert_eq!(c.verdict, Verdict::Warn, "{c:?}");
        assert!(
            c.found.contains("2a01:4f8::2") && c.found.contains("IPv4 only"),
            "{}",
            c.found
        );
        i.exit_ip = Some("2001:db8::7".into());
        assert_eq!(check(&i).verdict, Verdict::Pass);
        i.exit_ip = None;
        assert_eq!(
            check(&i).verdict,
            Verdict::Warn,
            "no v6 answer through Veil"
        );
        i.engine = Some(engine(veil_engine::Mode::Direct));
        assert_eq!(check(&i).verdict, Verdict::Pass);
        let (_dir, mut i) = machine(REJECT);
        i.engine = Some(engine(veil_engine::Mode::Proxy));
        assert_eq!(check(&i).verdict, Verdict::Pass, "no route, no exposure");
    }
}
