//! Veil's bypass list (`localhost`, `*.local`, `10.0.0.0/8`, ...) in the
//! notation each platform understands.

use std::net::IpAddr;

use cidr::Cidr;

/// Windows' `ProxyOverride`: `;`-separated, `*` wildcards, no CIDRs, and
/// `<local>` for plain host names. A CIDR on octet boundaries becomes
/// `10.*`; one off a boundary becomes one wildcard per value of the partial
/// octet (`172.16.0.0/12` → `172.16.*` ... `172.31.*`). IPv6 addresses are
/// bracketed; IPv6 ranges have no wildcard form and are left out.
#[cfg_attr(not(any(windows, test)), allow(dead_code))]
pub fn windows_override(entries: &[String]) -> String {
    let mut out: Vec<String> = Vec::new();
    for entry in entries {
        match Cidr::parse(entry) {
            Some(Cidr::V4 { octets, prefix }) => out.extend(v4_wildcards(octets, prefix)),
            Some(Cidr::V6) => {}
            None => match entry.parse::<IpAddr>() {
                Ok(IpAddr::V6(v6)) => out.push(format!("[{v6}]")),
                _ => out.push(entry.clone()),
            },
        }
    }
    out.push("<local>".into());
    out.dedup();
    out.join(";")
}

fn v4_wildcards(octets: [u8; 4], prefix: u8) -> Vec<String> {
    if prefix == 0 {
        return vec!["*".into()];
    }
    if prefix >= 32 {
        return vec![octets.map(|o| o.to_string()).join(".")];
    }
    let full = usize::from(prefix / 8);
    let rest = prefix % 8;
    let head: Vec<String> = octets[..full].iter().map(u8::to_string).collect();
    if rest == 0 {
        return vec![format!("{}.*", head.join("."))];
    }
    let span = 1u16 << (8 - rest);
    let start = u16::from(octets[full]) & !(span - 1);
    (start..start + span)
        .map(|v| {
            let mut parts = head.clone();
            parts.push(v.to_string());
            format!("{}.*", parts.join("."))
        })
        .collect()
}

/// A minimal CIDR reader: the engine validates the list, this only needs
/// the shape.
mod cidr {
    use std::net::IpAddr;

    pub enum Cidr {
        V4 { octets: [u8; 4], prefix: u8 },
        V6,
    }

    impl Cidr {
        pub fn parse(s: &str) -> Option<Self> {
            let (addr, prefix) = s.split_once('/')?;
            let prefix: u8 = prefix.parse().ok()?;
            match addr.parse::<IpAddr>().ok()? {
                IpAddr::V4(v4) if prefix <= 32 => Some(Cidr::V4 {
                    octets: v4.octets(),
                    prefix,
                }),
                IpAddr::V6(_) if prefix <= 128 => Some(Cidr::V6),
                _ => None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_notation() {
        let list: Vec<String> = veil_engine::DEFAULT_BYPASS
            .iter()
            .map(|s| s.to_string())
            .collect();
        let text = windows_override(&list);
        assert!(text.contains("127.*"), "{text}");
        assert!(text.contains("10.*"), "{text}");
        assert!(text.contains("192.168.*"), "{text}");
        assert!(
            text.contains("172.16.*") && text.contains("172.31.*"),
            "{text}"
        );
        assert!(
            !text.contains("172.32.*") && !text.contains("172.15.*"),
            "{text}"
        );
        assert!(text.ends_with("<local>"), "{text}");
        assert!(!text.contains('/'), "no CIDRs: {text}");
    }
}
