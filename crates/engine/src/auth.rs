use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Inbound credentials clients must present (HTTP `Proxy-Authorization: Basic`
/// or SOCKS5 username/password).
///
/// `Debug` never prints the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
        }
    }

    /// Compares without an early exit, so response timing does not tell an
    /// attacker how much of a guess was right.
    pub fn matches(&self, username: &str, password: &str) -> bool {
        let user_ok = constant_time_eq(self.username.as_bytes(), username.as_bytes());
        let pass_ok = constant_time_eq(self.password.as_bytes(), password.as_bytes());
        user_ok & pass_ok
    }

    /// Checks a `Proxy-Authorization` header value of the Basic scheme.
    pub fn matches_basic_header(&self, value: &[u8]) -> bool {
        let Ok(value) = std::str::from_utf8(value) else {
            return false;
        };
        let mut parts = value.trim().splitn(2, ' ');
        let scheme = parts.next().unwrap_or_default();
        let encoded = parts.next().unwrap_or_default().trim();
        if !scheme.eq_ignore_ascii_case("basic") {
            return false;
        }
        let Ok(decoded) = STANDARD.decode(encoded) else {
            return false;
        };
        let Ok(decoded) = String::from_utf8(decoded) else {
            return false;
        };
        match decoded.split_once(':') {
            Some((user, pass)) => self.matches(user, pass),
            None => false,
        }
    }
}

/// Failed logins per client address: after [`MAX_FAILURES`] wrong
/// credentials within [`WINDOW`], that address gets no more tries until the
/// window has passed, so a listener on the LAN cannot be guessed at. A
/// missing header is not a failure (HTTP clients ask once without, get 407,
/// and send credentials).
#[derive(Debug, Default)]
pub struct LoginThrottle {
    failures: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, (u32, Instant)>>,
}

pub const MAX_FAILURES: u32 = 10;
pub const WINDOW: Duration = Duration::from_secs(300);
/// Addresses remembered at most; the oldest windows go first past that.
const TRACKED: usize = 4096;

impl LoginThrottle {
    /// Whether `ip` may try to log in now; `Err` carries how long to wait.
    pub fn check(&self, ip: std::net::IpAddr) -> Result<(), Duration> {
        let map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(&ip) {
            Some((count, since)) if *count >= MAX_FAILURES && since.elapsed() < WINDOW => {
                Err(WINDOW.saturating_sub(since.elapsed()))
            }
            _ => Ok(()),
        }
    }

    /// Counts a wrong password from `ip`.
    pub fn failed(&self, ip: std::net::IpAddr) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= TRACKED && !map.contains_key(&ip) {
            map.retain(|_, (_, since)| since.elapsed() < WINDOW);
            if map.len() >= TRACKED
                && let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, (_, since))| *since)
                    .map(|(k, _)| *k)
            {
                map.remove(&oldest);
            }
        }
        let entry = map.entry(ip).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }

    /// A successful login clears the address's count.
    pub fn succeeded(&self, ip: std::net::IpAddr) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&ip);
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // Not `(a.len() ^ b.len()) as u8`: lengths 256 apart would look equal.
    let mut diff = u8::from(a.len() != b.len());
    for (i, x) in a.iter().enumerate() {
        diff |= x ^ b.get(i).copied().unwrap_or(0xff);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_header_checks_user_and_password() {
        let creds = Credentials::new("alice", "s3cret:with:colons");
        let good = format!("Basic {}", STANDARD.encode("alice:s3cret:with:colons"));
        assert!(creds.matches_basic_header(good.as_bytes()));
        let bad = format!("Basic {}", STANDARD.encode("alice:wrong"));
        assert!(!creds.matches_basic_header(bad.as_bytes()));
        assert!(!creds.matches_basic_header(b"Bearer abc"));
        assert!(!creds.matches_basic_header(b"Basic !!!"));
        assert!(!creds.matches("alice", "s3cret:with:colon"));
        let longer = format!("s3cret:with:colons{}", "x".repeat(256));
        assert!(!creds.matches("alice", &longer));
    }

    #[test]
    fn too_many_wrong_passwords_lock_one_address_out() {
        let throttle = LoginThrottle::default();
        let guesser: std::net::IpAddr = "192.168.1.66".parse().expect("ip");
        let other: std::net::IpAddr = "192.168.1.7".parse().expect("ip");
        for _ in 0..MAX_FAILURES {
            assert!(throttle.check(guesser).is_ok());
            throttle.failed(guesser);
        }
        let wait = throttle.check(guesser).expect_err("locked out");
        assert!(
            wait <= WINDOW && wait > Duration::from_secs(200),
            "{wait:?}"
        );
        assert!(throttle.check(other).is_ok(), "only that address");
        throttle.succeeded(other);
        assert!(throttle.check(guesser).is_err());
    }

    #[test]
    fn debug_hides_password() {
        let creds = Credentials::new("alice", "hunter2");
        assert!(!format!("{creds:?}").contains("hunter2"));
    }
}
