use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// Where a client wants to go: a host name or an IP address, and a port.
///
/// Names stay names until the outbound side decides how to reach them, so a
/// connection that leaves through an upstream proxy never needs a local DNS
/// lookup.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    Ip(SocketAddr),
    Domain(String, u16),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("target {0:?} has no port")]
    MissingPort(String),
    #[error("target {0:?} has an invalid port")]
    BadPort(String),
    #[error("target {0:?} is not a valid host name")]
    BadHost(String),
    #[error("port 0 is not a valid target port")]
    ZeroPort,
}

impl Target {
    /// Builds a target from a host (name, IPv4, or IPv6 with or without
    /// brackets) and a port.
    pub fn new(host: &str, port: u16) -> Result<Self, TargetError> {
        if port == 0 {
            return Err(TargetError::ZeroPort);
        }
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        // `10.0.0.1.` (a root dot) is the address too: as a name it would
        // pass every IP rule, CIDR bypass entry and the loop guard.
        if let Ok(ip) = bare.strip_suffix('.').unwrap_or(bare).parse::<IpAddr>() {
            return Ok(Target::Ip(SocketAddr::new(canonical_ip(ip), port)));
        }
        if !is_valid_hostname(bare) {
            return Err(TargetError::BadHost(host.to_owned()));
        }
        let name = bare.trim_end_matches('.').to_ascii_lowercase();
        Ok(Target::Domain(name, port))
    }

    /// A target given as an address (SOCKS5's IPv4 and IPv6 forms).
    pub fn from_addr(addr: SocketAddr) -> Result<Self, TargetError> {
        if addr.port() == 0 {
            return Err(TargetError::ZeroPort);
        }
        Ok(Target::Ip(SocketAddr::new(
            canonical_ip(addr.ip()),
            addr.port(),
        )))
    }

    /// Parses `host:port` as found in a `CONNECT` request target.
    pub fn parse_authority(authority: &str) -> Result<Self, TargetError> {
        let (host, port) = authority
            .rsplit_once(':')
            .ok_or_else(|| TargetError::MissingPort(authority.to_owned()))?;
        // `::1` without brackets splits at the wrong colon.
        if host.contains(':') && !host.starts_with('[') {
            return Err(TargetError::BadHost(authority.to_owned()));
        }
        let port: u16 = port
            .parse()
            .map_err(|_| TargetError::BadPort(authority.to_owned()))?;
        Target::new(host, port)
    }

    pub fn port(&self) -> u16 {
        match self {
            Target::Ip(addr) => addr.port(),
            Target::Domain(_, port) => *port,
        }
    }

    /// A loopback address, or `localhost` and its subdomains (RFC 6761).
    pub fn is_loopback(&self) -> bool {
        match self {
            Target::Ip(addr) => addr.ip().is_loopback(),
            Target::Domain(name, _) => name == "localhost" || name.ends_with(".localhost"),
        }
    }

    /// The host part as users write it (IPv6 without brackets).
    pub fn host(&self) -> String {
        match self {
            Target::Ip(addr) => addr.ip().to_string(),
            Target::Domain(name, _) => name.clone(),
        }
    }
}

/// The one spelling of an address that every check compares: an
/// IPv4-mapped IPv6 address (`::ffff:127.0.0.1`) is its IPv4 address, and
/// the unspecified address (`0.0.0.0`, `::`), which a connect sends to this
/// host, is loopback. The loop guard, the bypass list and the rules all see
/// targets through this, so no spelling of "this host" slips past them, and
/// an IPv4 rule also matches its mapped IPv6 form.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        other => other,
    }
}

/// Whether a connection to `addr` would reach a listener bound to `listen`:
/// the same address in any spelling, or any loopback address when the
/// listener is a wildcard. The loop guard, the socket table and the
/// upstream check all ask this.
pub fn reaches_listener(listen: SocketAddr, addr: SocketAddr) -> bool {
    let ip = canonical_ip(addr.ip());
    addr.port() == listen.port()
        && (ip == canonical_ip(listen.ip()) || (listen.ip().is_unspecified() && ip.is_loopback()))
}

/// Whether a connection just made reached the listener `listen` itself,
/// which would loop. Its far end may be the listener's address in any
/// spelling ([`reaches_listener`]); and a wildcard listener is also reached
/// on every address of this machine's interfaces (its LAN address, a
/// VPN's), which come and go with the network. Rather than keep a list of
/// them, look at the connection: one whose two ends share an address never
/// left this host, and at the listener's port it reached Veil itself. Both
/// ways out (direct and through an upstream) ask this after connecting.
pub(crate) fn connected_to_self(listen: SocketAddr, stream: &tokio::net::TcpStream) -> bool {
    let Ok(peer) = stream.peer_addr() else {
        return false;
    };
    if reaches_listener(listen, peer) {
        return true;
    }
    listen.ip().is_unspecified()
        && peer.port() == listen.port()
        && matches!(stream.local_addr(), Ok(local) if canonical_ip(local.ip()) == canonical_ip(peer.ip()))
}

/// [`reaches_listener`] for a host as written in a URL (an address, with
/// or without brackets, or `localhost`); other names are not resolved.
pub fn host_reaches_listener(listen: SocketAddr, host: &str, port: u16) -> bool {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match bare.parse::<IpAddr>() {
        Ok(ip) => reaches_listener(listen, SocketAddr::new(ip, port)),
        Err(_) => {
            bare.eq_ignore_ascii_case("localhost")
                && port == listen.port()
                && (listen.ip().is_loopback() || listen.ip().is_unspecified())
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Ip(addr) => write!(f, "{addr}"),
            Target::Domain(name, port) => write!(f, "{name}:{port}"),
        }
    }
}

pub(crate) fn is_valid_hostname(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the host_rules fuzz target: an address with a root dot
    /// was a name, which no IP rule or CIDR (nor the loop guard) matches.
    #[test]
    fn an_address_with_a_root_dot_is_the_address() {
        assert_eq!(
            Target::parse_authority("10.1.2.3.:80"),
            Ok(Target::Ip("10.1.2.3:80".parse().expect("addr")))
        );
        assert_eq!(
            Target::parse_authority("127.0.0.1.:7890"),
            Ok(Target::Ip("127.0.0.1:7890".parse().expect("addr")))
        );
        assert!(Target::parse_authority("127.0.0.1..:7890").is_err());
    }

    #[test]
    fn parses_names_and_addresses() {
        assert_eq!(
            Target::parse_authority("Example.COM:443"),
            Ok(Target::Domain("example.com".into(), 443))
        );
        assert_eq!(
            Target::parse_authority("[::1]:80").map(|t| t.to_string()),
            Ok("[::1]:80".into())
        );
        assert_eq!(
            Target::parse_authority("10.0.0.1:22"),
            Ok(Target::Ip("10.0.0.1:22".parse().expect("addr")))
        );
    }

    #[test]
    fn one_spelling_for_each_address() {
        let t = |s: &str| Target::parse_authority(s).map(|t| t.to_string());
        assert_eq!(t("[::ffff:127.0.0.1]:80"), Ok("127.0.0.1:80".into()));
        assert_eq!(t("[::ffff:10.1.2.3]:80"), Ok("10.1.2.3:80".into()));
        assert_eq!(t("0.0.0.0:80"), Ok("127.0.0.1:80".into()));
        assert_eq!(t("[::]:80"), Ok("[::1]:80".into()));
        assert_eq!(
            Target::from_addr("[::ffff:192.168.1.1]:22".parse().expect("addr")),
            Ok(Target::Ip("192.168.1.1:22".parse().expect("addr")))
        );
        assert_eq!(
            Target::from_addr("10.0.0.1:0".parse().expect("addr")),
            Err(TargetError::ZeroPort)
        );
    }

    #[test]
    fn loopback_in_every_spelling() {
        for s in [
            "127.0.0.1:22",
            "[::1]:22",
            "0.0.0.0:22",
            "localhost:22",
            "a.localhost:22",
        ] {
            assert!(Target::parse_authority(s).expect(s).is_loopback(), "{s}");
        }
        for s in ["10.0.0.1:22", "localhost.example:22", "[::ffff:8.8.8.8]:53"] {
            assert!(!Target::parse_authority(s).expect(s).is_loopback(), "{s}");
        }
    }

    #[test]
    fn refuses_bad_targets() {
        assert!(Target::parse_authority("example.com").is_err());
        assert!(Target::parse_authority("example.com:99999").is_err());
        assert!(Target::parse_authority("::1:80").is_err());
        assert!(Target::parse_authority("exa mple.com:80").is_err());
        assert!(Target::parse_authority("host:0").is_err());
        assert!(Target::parse_authority(":80").is_err());
    }
}
