//! Which way a connection goes: direct, through the upstream pool, or
//! nowhere. The bypass list always goes direct (local and private networks by
//! default); per-domain rules can send a domain direct, through the proxy, or
//! block it.
//!
//! Names are matched as names and never resolved here: resolving a name to
//! test it against a CIDR would leak the lookup that the upstream was meant to
//! make.

mod pac;

use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::{Mode, Target};

/// What to do with a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Direct,
    Proxy,
    Block,
}

/// A host pattern: `example.com` (that host), `*.example.com` (its
/// subdomains and itself), `10.0.0.0/8` or an address (for IP targets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    Exact(String),
    Suffix(String),
    Net(IpNet),
}

impl FromStr for HostPattern {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Err("empty host pattern".into());
        }
        if let Ok(net) = s.parse::<IpNet>() {
            return Ok(HostPattern::Net(canonical_net(net)));
        }
        if let Ok(ip) = s
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            return Ok(HostPattern::Net(canonical_net(IpNet::from(ip))));
        }
        // Names are checked as host names: these lists also reach shell
        // variables (`veil env`), desktop settings and PAC files, where `;`,
        // quotes, tabs or backslashes would mean something else.
        let bad = || format!("bad host pattern {s:?}: use host, *.suffix, an IP address or a CIDR");
        let lower = s.to_ascii_lowercase();
        if let Some(suffix) = lower.strip_prefix("*.").or_else(|| lower.strip_prefix('.')) {
            if !crate::target::is_valid_hostname(suffix) {
                return Err(bad());
            }
            return Ok(HostPattern::Suffix(suffix.trim_end_matches('.').to_owned()));
        }
        if !crate::target::is_valid_hostname(&lower) {
            return Err(bad());
        }
        let lower = lower.trim_end_matches('.').to_owned();
        // `10.0.0.1.` is the address, as it is for targets.
        if let Ok(ip) = lower.parse::<IpAddr>() {
            return Ok(HostPattern::Net(canonical_net(IpNet::from(ip))));
        }
        Ok(HostPattern::Exact(lower))
    }
}

/// A net in the spelling targets are compared in ([`crate::canonical_ip`]):
/// an IPv4-mapped IPv6 net is its IPv4 net, and a single unspecified address
/// is loopback. Without this, a rule for `::ffff:10.0.0.1` or `0.0.0.0`
/// would never match, since no target is spelled that way.
fn canonical_net(net: IpNet) -> IpNet {
    let net = match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => v6
            .addr()
            .to_ipv4_mapped()
            .and_then(|v4| ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96).ok())
            .map_or(net, IpNet::V4),
        other => other,
    };
    if net.prefix_len() == net.max_prefix_len() {
        IpNet::from(crate::canonical_ip(net.addr()))
    } else {
        net
    }
}

/// The pattern as it is written in the config: parsing it gives it back.
impl std::fmt::Display for HostPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostPattern::Exact(h) => f.write_str(h),
            HostPattern::Suffix(s) => write!(f, "*.{s}"),
            HostPattern::Net(n) => write!(f, "{n}"),
        }
    }
}

impl HostPattern {
    /// Whether `target` falls under this pattern (public for the fuzz
    /// target's invariants; routing uses [`Routing::decide`]).
    #[doc(hidden)]
    pub fn matches(&self, target: &Target) -> bool {
        match (self, target) {
            (HostPattern::Net(net), Target::Ip(addr)) => net.contains(&addr.ip()),
            (HostPattern::Exact(h), Target::Domain(name, _)) => h == name,
            (HostPattern::Suffix(sfx), Target::Domain(name, _)) => {
                name == sfx
                    || (name.len() > sfx.len()
                        && name.ends_with(sfx.as_str())
                        && name.as_bytes()[name.len() - sfx.len() - 1] == b'.')
            }
            _ => false,
        }
    }

    /// Longer patterns are more specific; exact beats suffix.
    fn specificity(&self) -> usize {
        match self {
            HostPattern::Exact(h) => 10_000 + h.len(),
            HostPattern::Suffix(s) => s.len(),
            HostPattern::Net(n) => usize::from(n.prefix_len()),
        }
    }
}

/// The bypass list every user expects: this machine and private networks.
pub const DEFAULT_BYPASS: &[&str] = &[
    "localhost",
    "*.localhost",
    "127.0.0.0/8",
    "::1",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "169.254.0.0/16",
    "fe80::/10",
    "fc00::/7",
    "*.local",
];

/// Bypass list and per-domain rules, compiled.
#[derive(Debug, Clone, Default)]
pub struct Routing {
    bypass: Vec<HostPattern>,
    rules: Vec<(HostPattern, Action)>,
}

impl Routing {
    pub fn new(bypass: &[String], rules: &[(String, Action)]) -> Result<Self, String> {
        let bypass = bypass
            .iter()
            .map(|p| p.parse())
            .collect::<Result<Vec<HostPattern>, _>>()?;
        let mut rules = rules
            .iter()
            .map(|(p, a)| Ok((p.parse::<HostPattern>()?, *a)))
            .collect::<Result<Vec<_>, String>>()?;
        rules.sort_by_key(|(p, _)| std::cmp::Reverse(p.specificity()));
        Ok(Self { bypass, rules })
    }

    pub fn default_bypass() -> Vec<String> {
        DEFAULT_BYPASS.iter().map(|s| s.to_string()).collect()
    }

    /// Whether the user named `target` as a local one: its name matches the
    /// bypass list or a `direct` rule. Only such names may resolve to
    /// loopback or private addresses in a direct connection (DNS rebinding).
    pub fn allows_internal(&self, target: &Target) -> bool {
        self.bypass.iter().any(|p| p.matches(target))
            || self
                .rules
                .iter()
                .any(|(p, a)| *a == Action::Direct && p.matches(target))
    }

    /// The action for `target` in `mode`: the most specific rule wins, then
    /// the bypass list, then the mode.
    pub fn decide(&self, mode: Mode, target: &Target) -> Action {
        if let Some((_, action)) = self.rules.iter().find(|(p, _)| p.matches(target)) {
            return match (action, mode) {
                // "proxy" in direct mode has no proxy to use: go direct.
                (Action::Proxy, Mode::Direct) => Action::Direct,
                (a, _) => *a,
            };
        }
        if mode == Mode::Direct || self.bypass.iter().any(|p| p.matches(target)) {
            return Action::Direct;
        }
        Action::Proxy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Target {
        Target::parse_authority(s).expect("target")
    }

    #[test]
    fn only_names_the_user_listed_may_resolve_inside() {
        let routing = Routing::new(
            &Routing::default_bypass(),
            &[("nas.home.example".into(), Action::Direct)],
        )
        .expect("routing");
        assert!(routing.allows_internal(&t("localhost:80")));
        assert!(routing.allows_internal(&t("printer.local:80")));
        assert!(routing.allows_internal(&t("nas.home.example:80")));
        assert!(!routing.allows_internal(&t("rebind.attacker.example:80")));
    }

    #[test]
    fn an_ipv4_rule_matches_its_mapped_ipv6_spelling() {
        let routing = Routing::new(&[], &[("10.0.0.0/8".into(), Action::Block)]).expect("routing");
        assert_eq!(
            routing.decide(Mode::Proxy, &t("[::ffff:10.1.2.3]:80")),
            Action::Block
        );
        let bypass = Routing::new(&Routing::default_bypass(), &[]).expect("routing");
        assert_eq!(
            bypass.decide(Mode::Proxy, &t("[::ffff:192.168.1.1]:80")),
            Action::Direct,
            "private ranges bypass in every spelling"
        );
        assert_eq!(bypass.decide(Mode::Proxy, &t("0.0.0.0:80")), Action::Direct);
    }

    /// Found by the host_rules fuzz target: rules written as an
    /// IPv4-mapped IPv6 address or as the unspecified address matched no
    /// target, since targets are canonicalised before they are matched.
    #[test]
    fn mapped_and_unspecified_patterns_match_their_targets() {
        let routing = Routing::new(
            &[],
            &[
                ("::ffff:10.0.0.1".into(), Action::Block),
                ("::ffff:192.168.0.0/112".into(), Action::Block),
                ("0.0.0.0".into(), Action::Block),
            ],
        )
        .expect("routing");
        for blocked in [
            "10.0.0.1:80",
            "[::ffff:10.0.0.1]:80",
            "192.168.7.9:80",
            "[::ffff:192.168.7.9]:80",
            "0.0.0.0:80",
        ] {
            assert_eq!(
                routing.decide(Mode::Proxy, &t(blocked)),
                Action::Block,
                "{blocked}"
            );
        }
        assert_eq!(
            routing.decide(Mode::Proxy, &t("10.0.0.2:80")),
            Action::Proxy
        );
        let shown: HostPattern = "::ffff:10.0.0.1".parse().expect("pattern");
        assert_eq!(shown.to_string(), "10.0.0.1/32");
        let rooted: HostPattern = "10.0.0.1.".parse().expect("pattern");
        assert_eq!(rooted, shown, "an address with a root dot is the address");
    }

    #[test]
    fn bypass_and_rules() {
        let routing = Routing::new(
            &Routing::default_bypass(),
            &[
                ("*.ads.example".into(), Action::Block),
                ("intranet.example".into(), Action::Direct),
                ("*.example".into(), Action::Proxy),
            ],
        )
        .expect("routing");
        let p = Mode::Proxy;
        assert_eq!(routing.decide(p, &t("example.org:443")), Action::Proxy);
        assert_eq!(routing.decide(p, &t("localhost:80")), Action::Direct);
        assert_eq!(routing.decide(p, &t("printer.local:80")), Action::Direct);
        assert_eq!(routing.decide(p, &t("192.168.1.4:80")), Action::Direct);
        assert_eq!(routing.decide(p, &t("[::1]:80")), Action::Direct);
        assert_eq!(routing.decide(p, &t("8.8.8.8:53")), Action::Proxy);
        assert_eq!(routing.decide(p, &t("x.ads.example:443")), Action::Block);
        assert_eq!(routing.decide(p, &t("ads.example:443")), Action::Block);
        assert_eq!(routing.decide(p, &t("badads.example:443")), Action::Proxy);
        assert_eq!(
            routing.decide(p, &t("intranet.example:443")),
            Action::Direct
        );
        assert_eq!(
            routing.decide(Mode::Direct, &t("example.org:443")),
            Action::Direct
        );
        assert_eq!(
            routing.decide(Mode::Direct, &t("a.ads.example:1")),
            Action::Block
        );
    }

    #[test]
    fn refuses_bad_patterns() {
        assert!(Routing::new(&["a*b".into()], &[]).is_err());
        assert!(Routing::new(&["*.".into()], &[]).is_err());
        assert!(Routing::new(&["".into()], &[]).is_err());
        // What would mean something else in a shell, a desktop setting or a
        // PAC file is not a host name.
        for bad in [
            "a;b", "a\tb", "a\\b", "a'b", "a\"b", "*.a;rm", "<local>", "a b", "$(id)", "a/b",
        ] {
            assert!(Routing::new(&[bad.into()], &[]).is_err(), "{bad:?}");
            assert!(
                Routing::new(&[], &[(bad.into(), Action::Block)]).is_err(),
                "rule {bad:?}"
            );
        }
        for good in [
            "localhost",
            "*.local",
            ".corp.example",
            "10.0.0.0/8",
            "::1",
            "[::1]",
            "host_1.lan.",
        ] {
            assert!(Routing::new(&[good.into()], &[]).is_ok(), "{good:?}");
        }
    }
}
