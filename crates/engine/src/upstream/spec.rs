use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How an upstream proxy is spoken to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyKind {
    /// HTTP proxy: `CONNECT` for tunnels, absolute form for plain HTTP.
    Http,
    /// The same, inside TLS to the proxy.
    Https,
    /// SOCKS5 with domain-name addressing (the proxy resolves names).
    Socks5,
}

impl ProxyKind {
    fn default_port(self) -> u16 {
        match self {
            ProxyKind::Http => 8080,
            ProxyKind::Https => 443,
            ProxyKind::Socks5 => 1080,
        }
    }
}

/// An upstream proxy URL: `http://[user@]host:port`, `https://...` or
/// `socks5://[user@]host:port`. A password is never part of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    pub kind: ProxyKind,
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyUrlError {
    #[error("{0:?} is not a proxy URL: expected http://, https:// or socks5://host:port")]
    Scheme(String),
    #[error(
        "{0:?} contains a password; passwords never go in URLs or config files (Veil asks for \
         it, or reads the variable named by password_env)"
    )]
    PasswordInUrl(String),
    #[error("{0:?} has no host")]
    NoHost(String),
    #[error("{0:?} has an invalid port")]
    BadPort(String),
    #[error("{0:?} has a path, query or fragment; a proxy URL is only scheme://[user@]host:port")]
    Extra(String),
    #[error("{0:?}: a SOCKS5 user name is at most 255 bytes (RFC 1929)")]
    UserTooLong(String),
}

impl FromStr for ProxyUrl {
    type Err = ProxyUrlError;

    /// Every error carries the URL with its userinfo redacted ([`redact`]):
    /// a URL the user typed may hold a password by mistake, and errors end
    /// up in logs and on stderr.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let shown = || redact(s);
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| ProxyUrlError::Scheme(shown()))?;
        let kind = match scheme.to_ascii_lowercase().as_str() {
            "http" => ProxyKind::Http,
            "https" => ProxyKind::Https,
            "socks5" | "socks5h" => ProxyKind::Socks5,
            _ => return Err(ProxyUrlError::Scheme(shown())),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        // The check runs on the decoded user name too: `bob%3Ahunter2` is
        // `bob:hunter2` to every proxy and would show in `ps` and status.
        let username = userinfo.filter(|u| !u.is_empty()).map(percent_decode);
        if userinfo.is_some_and(|u| u.contains(':'))
            || username.as_deref().is_some_and(|u| u.contains(':'))
        {
            return Err(ProxyUrlError::PasswordInUrl(shown()));
        }
        if hostport.contains(['/', '?', '#']) {
            return Err(ProxyUrlError::Extra(shown()));
        }
        // RFC 1929 gives the SOCKS5 user name one length byte.
        if kind == ProxyKind::Socks5 && username.as_ref().is_some_and(|u| u.len() > 255) {
            return Err(ProxyUrlError::UserTooLong(shown()));
        }
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(':') || h.starts_with('[') => (
                h,
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| ProxyUrlError::BadPort(shown()))?,
            ),
            _ => (hostport, kind.default_port()),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(ProxyUrlError::NoHost(shown()));
        }
        Ok(ProxyUrl {
            kind,
            host: host.to_ascii_lowercase(),
            port,
            username,
        })
    }
}

/// The URL with anything after the user name in its userinfo replaced by
/// `***`, so an error message never repeats a password typed by mistake.
/// Works on malformed input too (a scheme typo, no `://`, a path after the
/// host), and on a colon written as `%3A`.
pub fn redact(url: &str) -> String {
    // The last '@' ends the userinfo; taking the last one over-redacts an
    // '@' in a path, which is harmless, and never misses a password that
    // itself holds '/' or '@'.
    let Some(at) = url.rfind('@') else {
        return url.to_owned();
    };
    let start = url[..at].find("://").map_or(0, |i| i + 3);
    let userinfo = &url[start..at];
    let lower = userinfo.to_ascii_lowercase();
    let cut = [userinfo.find(':'), lower.find("%3a")]
        .into_iter()
        .flatten()
        .min();
    match cut {
        Some(cut) => format!("{}{}:***{}", &url[..start], &userinfo[..cut], &url[at..]),
        None => url.to_owned(),
    }
}

/// `%XX` escapes decoded (invalid ones kept as written), as a URL's
/// userinfo is read.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(v) = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A user name as it must be written in a URL: everything but unreserved
/// characters and sub-delimiters percent-encoded (so `:` and `@` in a name
/// cannot be read back as a password or a host).
fn percent_encode_userinfo(user: &str) -> String {
    let mut out = String::with_capacity(user.len());
    for b in user.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.kind {
            ProxyKind::Http => "http",
            ProxyKind::Https => "https",
            ProxyKind::Socks5 => "socks5",
        };
        write!(f, "{scheme}://")?;
        if let Some(user) = &self.username {
            write!(f, "{}@", percent_encode_userinfo(user))?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// One upstream proxy as configured.
#[derive(Clone, PartialEq, Eq)]
pub struct UpstreamSpec {
    /// The user's name for it, unique in the pool.
    pub name: String,
    pub url: ProxyUrl,
    /// Its password, when the URL names a user. Never printed.
    pub password: Option<String>,
    /// Share of new connections under `roundrobin` (default 1).
    pub weight: u32,
    /// Extra PEM certificates to trust for an `https://` proxy with a private CA.
    pub ca_file: Option<PathBuf>,
}

impl fmt::Debug for UpstreamSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamSpec")
            .field("name", &self.name)
            .field("url", &self.url.to_string())
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("weight", &self.weight)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl UpstreamSpec {
    pub fn new(name: impl Into<String>, url: ProxyUrl) -> Self {
        Self {
            name: name.into(),
            url,
            password: None,
            weight: 1,
            ca_file: None,
        }
    }
}

/// How the pool picks an upstream for a new connection (HAProxy's names).
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// The next healthy upstream each time, so the exit IP rotates.
    #[default]
    RoundRobin,
    /// The healthy upstream with the fewest open connections.
    LeastConn,
    /// The first healthy upstream in order: plain failover.
    First,
    /// The healthy upstream with the lowest recent latency.
    Fastest,
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Strategy::RoundRobin => "roundrobin",
            Strategy::LeastConn => "leastconn",
            Strategy::First => "first",
            Strategy::Fastest => "fastest",
        })
    }
}

impl FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "roundrobin" => Ok(Strategy::RoundRobin),
            "leastconn" => Ok(Strategy::LeastConn),
            "first" => Ok(Strategy::First),
            "fastest" => Ok(Strategy::Fastest),
            other => Err(format!(
                "unknown strategy {other:?}: expected roundrobin, leastconn, first or fastest"
            )),
        }
    }
}

/// Active and passive health checking.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthConfig {
    /// Time between active checks of each upstream.
    pub interval: Duration,
    /// Fetched through each upstream by the active check (plain `http://`);
    /// `None` checks only that the proxy accepts a TCP connection.
    pub check_url: Option<String>,
    /// Consecutive failures that mark an upstream down.
    pub fall: u32,
    /// Consecutive successes that bring it back.
    pub rise: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(30),
            check_url: None,
            fall: 3,
            rise: 2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_kinds() {
        let u: ProxyUrl = "socks5://alice@proxy.example.net:1080"
            .parse()
            .expect("socks");
        assert_eq!(u.kind, ProxyKind::Socks5);
        assert_eq!(u.username.as_deref(), Some("alice"));
        assert_eq!(u.to_string(), "socks5://alice@proxy.example.net:1080");
        let u: ProxyUrl = "http://127.0.0.2:3128".parse().expect("http");
        assert_eq!(
            (u.kind, u.host.as_str(), u.port),
            (ProxyKind::Http, "127.0.0.2", 3128)
        );
        let u: ProxyUrl = "https://[::1]:8443/".parse().expect("https");
        assert_eq!(
            (u.kind, u.host.as_str(), u.port),
            (ProxyKind::Https, "::1", 8443)
        );
        let u: ProxyUrl = "http://p.example".parse().expect("default port");
        assert_eq!(u.port, 8080);
    }

    #[test]
    fn refuses_passwords_and_junk() {
        let err = "http://bob:hunter2@p:1"
            .parse::<ProxyUrl>()
            .expect_err("password");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!("ftp://p:1".parse::<ProxyUrl>().is_err());
        assert!("p:1".parse::<ProxyUrl>().is_err());
        assert!("http://p:0".parse::<ProxyUrl>().is_err());
        assert!("http://p:1/path".parse::<ProxyUrl>().is_err());
        assert!("http://:1".parse::<ProxyUrl>().is_err());
    }

    #[test]
    fn no_error_repeats_a_password() {
        for url in [
            "socks://bob:hunter2@p:1080",
            "http://bob:hunter2@p:3128/x",
            "http://bob:hunter2@p:99999",
            "bob:hunter2@p:1080",
            "socks5://bob:hun/ter2@p:1080",
            "socks5://bob:hun@ter2@p:1080",
            "socks5://bob%3Ahunter2@p:1080",
            "socks5://bob%3ahunter2@:1080",
        ] {
            let err = url.parse::<ProxyUrl>().expect_err(url);
            let shown = err.to_string();
            assert!(
                !shown.contains("hunter2") && !shown.contains("ter2"),
                "{url}: {shown}"
            );
            assert!(shown.contains("bob"), "the user is still named: {shown}");
        }
    }

    #[test]
    fn an_encoded_colon_is_a_password_too() {
        let err = "socks5://bob%3Ahunter2@host:1080"
            .parse::<ProxyUrl>()
            .expect_err("decoded user holds a colon");
        assert!(matches!(err, ProxyUrlError::PasswordInUrl(_)), "{err}");
    }

    #[test]
    fn user_names_are_encoded_when_shown() {
        let u: ProxyUrl = "socks5://al%20ice%40corp@h:1080".parse().expect("url");
        assert_eq!(u.username.as_deref(), Some("al ice@corp"));
        assert_eq!(u.to_string(), "socks5://al%20ice%40corp@h:1080");
        assert_eq!(u.to_string().parse::<ProxyUrl>().expect("round trip"), u);
    }

    #[test]
    fn socks5_user_names_fit_one_length_byte() {
        let long = "u".repeat(256);
        let err = format!("socks5://{long}@h:1080")
            .parse::<ProxyUrl>()
            .expect_err("256 bytes");
        assert!(matches!(err, ProxyUrlError::UserTooLong(_)), "{err}");
        assert!(
            format!("socks5://{}@h:1080", "u".repeat(255))
                .parse::<ProxyUrl>()
                .is_ok()
        );
        // HTTP has no such limit.
        assert!(format!("http://{long}@h:1080").parse::<ProxyUrl>().is_ok());
    }

    #[test]
    fn debug_hides_the_password() {
        let mut spec = UpstreamSpec::new("a", "http://u@p:1".parse().expect("url"));
        spec.password = Some("hunter2".into());
        assert!(!format!("{spec:?}").contains("hunter2"));
    }
}
