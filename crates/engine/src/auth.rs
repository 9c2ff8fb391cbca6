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
    fn debug_hides_password() {
        let creds = Credentials::new("alice", "hunter2");
        assert!(!format!("{creds:?}").contains("hunter2"));
    }
}
