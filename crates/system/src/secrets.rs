//! Passwords in the OS keyring: the Secret Service (gnome-keyring, KWallet)
//! on Linux, the Keychain on macOS, the Credential Manager on Windows.
//!
//! Entries live under the service name `veil`, keyed by what they unlock:
//! an upstream's name, or `inbound:USER` for the credentials clients must
//! give to Veil's own listener. When no keyring answers, every call fails
//! with [`SecretsError::Unavailable`]: Veil never falls back to writing a
//! password into a file.

/// The keyring service every Veil entry is stored under.
pub const SERVICE: &str = "veil";

/// What a keyring entry unlocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretKey {
    /// The password of the upstream proxy with this name.
    Upstream(String),
    /// The password clients must give to Veil's listener for this user.
    Inbound(String),
}

impl SecretKey {
    /// The keyring's account name for this entry.
    pub fn account(&self) -> String {
        match self {
            SecretKey::Upstream(name) => name.clone(),
            SecretKey::Inbound(user) => format!("inbound:{user}"),
        }
    }
}

impl std::fmt::Display for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretKey::Upstream(name) => write!(f, "the password of upstream {name:?}"),
            SecretKey::Inbound(user) => write!(f, "the inbound password of user {user:?}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error(
        "no OS keyring is available ({reason}). Veil keeps passwords only in the OS keyring and \
         will not write them to a file: {hint}"
    )]
    Unavailable { reason: String, hint: &'static str },
    #[error("the OS keyring failed while handling {key}: {reason}")]
    Keyring { key: String, reason: String },
}

#[cfg(any(target_os = "linux", target_os = "freebsd", target_os = "openbsd"))]
const HINT: &str = "start and unlock a Secret Service provider (gnome-keyring or KWallet) in \
                    your desktop session, or name an environment variable with password_env";
#[cfg(target_os = "macos")]
const HINT: &str = "unlock your login Keychain, or name an environment variable with password_env";
#[cfg(target_os = "windows")]
const HINT: &str = "check that the Windows Credential Manager works for your account, or name an \
                    environment variable with password_env";
#[cfg(not(any(
    target_os = "linux",
    target_os = "freebsd",
    target_os = "openbsd",
    target_os = "macos",
    target_os = "windows"
)))]
const HINT: &str = "this platform has no keyring Veil can use; name an environment variable with \
                    password_env";

/// Reads the password stored for `key`; `None` when there is no entry.
pub fn get(key: &SecretKey) -> Result<Option<String>, SecretsError> {
    match entry(key)?.get_password() {
        Ok(password) => Ok(Some(password)),
        Err(keyring::Error::NoEntry) => Ok(None),
        Err(e) => Err(map_error(key, e)),
    }
}

/// Stores `password` for `key`, replacing any earlier one.
pub fn set(key: &SecretKey, password: &str) -> Result<(), SecretsError> {
    entry(key)?
        .set_password(password)
        .map_err(|e| map_error(key, e))
}

/// Deletes the entry for `key`; `false` when there was none.
pub fn delete(key: &SecretKey) -> Result<bool, SecretsError> {
    match entry(key)?.delete_credential() {
        Ok(()) => Ok(true),
        Err(keyring::Error::NoEntry) => Ok(false),
        Err(e) => Err(map_error(key, e)),
    }
}

#[cfg(any(
    target_os = "linux",
    target_os = "freebsd",
    target_os = "openbsd",
    target_os = "macos",
    target_os = "windows"
))]
fn entry(key: &SecretKey) -> Result<keyring::Entry, SecretsError> {
    keyring::Entry::new(SERVICE, &key.account()).map_err(|e| map_error(key, e))
}

// Elsewhere the keyring crate would silently use an in-memory mock store,
// which would lose passwords and pretend all is well: refuse instead.
#[cfg(not(any(
    target_os = "linux",
    target_os = "freebsd",
    target_os = "openbsd",
    target_os = "macos",
    target_os = "windows"
)))]
fn entry(_key: &SecretKey) -> Result<keyring::Entry, SecretsError> {
    Err(SecretsError::Unavailable {
        reason: "unsupported platform".into(),
        hint: HINT,
    })
}

fn map_error(key: &SecretKey, e: keyring::Error) -> SecretsError {
    match e {
        keyring::Error::NoStorageAccess(reason) | keyring::Error::PlatformFailure(reason) => {
            SecretsError::Unavailable {
                reason: reason.to_string(),
                hint: HINT,
            }
        }
        // Spelled out here so no keyring message can carry an entry's content.
        keyring::Error::Ambiguous(items) => SecretsError::Keyring {
            key: key.to_string(),
            reason: format!("{} entries match; remove the extra ones", items.len()),
        },
        keyring::Error::BadEncoding(_) => SecretsError::Keyring {
            key: key.to_string(),
            reason: "the stored password is not UTF-8 text".into(),
        },
        other => SecretsError::Keyring {
            key: key.to_string(),
            reason: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_keep_upstreams_and_inbound_users_apart() {
        assert_eq!(SecretKey::Upstream("home".into()).account(), "home");
        assert_eq!(SecretKey::Inbound("me".into()).account(), "inbound:me");
    }
}
