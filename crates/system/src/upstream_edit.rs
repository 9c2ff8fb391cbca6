//! Adding, editing and removing one upstream: `config.toml`'s
//! `[[upstreams.server]]` list (comments and formatting kept) and the
//! password in the OS keyring, never in the file. `veil upstream
//! add|edit|remove` and the window's Upstreams page both call this, so they
//! refuse the same things with the same words.
//!
//! Each change can be taken back ([`Undo`]) when what runs on top of it (the
//! app's engine) cannot use it: the file goes back to what it was.

use std::path::{Path, PathBuf};

use veil_engine::ProxyUrl;

use crate::config::ServerSection;
use crate::config_file::ConfigFile;
use crate::secrets::{SecretKey, SecretsError};
use crate::upstream_import::Keyring;
use crate::{Config, ConfigError};

/// One upstream as the user gave it. `password`: `None` keeps the stored
/// one, `Some("")` is refused for a URL with a user (it needs one), any
/// other value replaces it in the keyring. `Debug` leaves it out. The
/// window sends it as `UpstreamInput`.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(rename = "UpstreamInput"))]
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
pub struct UpstreamChange {
    /// The upstream edited (by its name before the change), or `None` to add.
    pub original_name: Option<String>,
    pub name: String,
    pub url: String,
    pub password: Option<String>,
    pub weight: u32,
}

impl std::fmt::Debug for UpstreamChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamChange")
            .field("original_name", &self.original_name)
            .field("name", &self.name)
            .field("url", &self.url)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("weight", &self.weight)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The input was refused; nothing changed.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Keyring(#[from] SecretsError),
}

/// The keyring as the edits use it: [`Keyring`] plus reading.
pub trait ReadKeyring: Keyring {
    fn get(&self, key: &SecretKey) -> Result<Option<String>, SecretsError>;
}

impl ReadKeyring for crate::upstream_import::OsKeyring {
    fn get(&self, key: &SecretKey) -> Result<Option<String>, SecretsError> {
        crate::secrets::get(key)
    }
}

/// How to put `config.toml` back as it was before a change.
#[derive(Debug)]
#[must_use = "keep it to undo the change if it cannot be applied"]
pub struct Undo {
    path: PathBuf,
    before: Option<Vec<u8>>,
}

impl Undo {
    /// Keeps `path` as it is now, before a change.
    pub fn before_change(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            before: std::fs::read(path).ok(),
        }
    }

    /// Writes the file back (or removes it, when there was none).
    pub fn undo(&self) -> std::io::Result<()> {
        match &self.before {
            Some(text) => std::fs::write(&self.path, text),
            None => std::fs::remove_file(&self.path),
        }
    }
}

/// What [`save`] did.
#[derive(Debug)]
pub struct Saved {
    /// The parsed URL as written to the file.
    pub url: ProxyUrl,
    /// A password is in the keyring for it.
    pub password_stored: bool,
    pub undo: Undo,
}

/// Checks `change`, writes the file, then the keyring; if the keyring
/// refuses, the file goes back and nothing is left half done.
pub fn save(
    config_path: &Path,
    change: &UpstreamChange,
    keyring: &dyn ReadKeyring,
) -> Result<Saved, EditError> {
    let name = change.name.trim().to_owned();
    if name.is_empty() {
        return Err(EditError::Invalid("Give the upstream a name.".into()));
    }
    let url: ProxyUrl = change.url.trim().parse().map_err(|e| {
        EditError::Invalid(format!(
            "{e}. Use http://, https:// or socks5://, e.g. socks5://user@host:1080."
        ))
    })?;
    if change.weight == 0 {
        return Err(EditError::Invalid("The weight must be at least 1.".into()));
    }
    let config = Config::load(config_path)?;
    let original = change.original_name.clone();
    let password = change.password.clone();
    let has_user = url.username.is_some();
    if !has_user && password.as_deref().is_some_and(|p| !p.is_empty()) {
        return Err(EditError::Invalid(
            "This URL names no user, so a password has nothing to log in with: put the user in \
             the URL (scheme://USER@host:port)."
                .into(),
        ));
    }
    if has_user && password.as_deref() == Some("") {
        return Err(EditError::Invalid(
            "An upstream with a user needs its password; give it, or take the user out of the URL."
                .into(),
        ));
    }
    // A stored password belongs to the proxy it was given for: moved to
    // another host, port or kind, it would be sent there without the user
    // having said so. Ask for it again.
    if has_user
        && password.is_none()
        && let Some(original) = &original
        && let Some(old) = config
            .upstreams
            .server
            .iter()
            .find(|s| &s.name == original)
            .and_then(|s| s.url.parse::<ProxyUrl>().ok())
        && (old.host != url.host
            || old.port != url.port
            || old.kind != url.kind
            || old.username != url.username)
    {
        return Err(EditError::Invalid(format!(
            "{url} is another proxy than {old}: give the password for it again (Veil does not \
             send a stored password to a new place on its own)."
        )));
    }
    // With a user and no new password, the stored one must exist (under the
    // old name when renaming): without it the engine could not log in.
    let stored_under = original.clone().unwrap_or_else(|| name.clone());
    if has_user
        && password.is_none()
        && keyring
            .get(&SecretKey::Upstream(stored_under.clone()))?
            .is_none()
    {
        return Err(EditError::Invalid(format!(
            "{url} names a user: give its password (it goes to the OS keyring)."
        )));
    }

    let undo = Undo::before_change(config_path);
    let mut file = ConfigFile::open(config_path)?;
    let server = ServerSection {
        name: name.clone(),
        url: url.to_string(),
        weight: change.weight,
        password_env: None,
        ca_file: None,
    };
    match &original {
        Some(original) => {
            file.replace_upstream(original, &server)?;
            // A renamed upstream stays the chosen one.
            if config.app.pinned_upstream.as_deref() == Some(original.as_str()) {
                file.set("app", "pinned_upstream", name.as_str())?;
            }
        }
        None => file.add_upstream(&server)?,
    }
    file.save()?;

    let renamed_from = original.filter(|o| *o != name);
    let stored = store_password(keyring, &name, has_user, password, renamed_from);
    match stored {
        Ok(password_stored) => Ok(Saved {
            url,
            password_stored,
            undo,
        }),
        Err(e) => {
            if let Err(io) = undo.undo() {
                tracing::error!("config.toml could not be put back: {io}");
            }
            Err(e.into())
        }
    }
}

/// The keyring side of [`save`]: the new password, or the old one moved to
/// the new name, or (no user) no entry at all.
fn store_password(
    keyring: &dyn ReadKeyring,
    name: &str,
    has_user: bool,
    password: Option<String>,
    renamed_from: Option<String>,
) -> Result<bool, SecretsError> {
    let key = SecretKey::Upstream(name.to_owned());
    if !has_user {
        // Nothing to log in with; an old entry is removed if the keyring is
        // there (best effort: none is needed).
        for old in [Some(name.to_owned()), renamed_from].into_iter().flatten() {
            if let Err(e) = keyring.delete(&SecretKey::Upstream(old)) {
                tracing::debug!("no keyring entry removed: {e}");
            }
        }
        return Ok(false);
    }
    if let Some(password) = password.filter(|p| !p.is_empty()) {
        keyring.set(&key, &password)?;
    } else if let Some(old) = &renamed_from
        && let Some(stored) = keyring.get(&SecretKey::Upstream(old.clone()))?
    {
        keyring.set(&key, &stored)?;
    }
    if let Some(old) = renamed_from {
        keyring.delete(&SecretKey::Upstream(old))?;
    }
    Ok(true)
}

/// Takes `name` out of the file. Its password stays until [`forget`] (call
/// it once the removal took effect, so a refused change leaves the upstream
/// whole).
pub fn remove(config_path: &Path, name: &str) -> Result<Undo, EditError> {
    let undo = Undo::before_change(config_path);
    let mut file = ConfigFile::open(config_path)?;
    if !file.remove_upstream(name)? {
        return Err(EditError::Invalid(format!(
            "No upstream is named {name:?} in {}.",
            config_path.display()
        )));
    }
    file.save()?;
    Ok(undo)
}

/// Deletes a removed upstream's password; `true` when there was one.
pub fn forget(keyring: &dyn ReadKeyring, name: &str) -> Result<bool, SecretsError> {
    keyring.delete(&SecretKey::Upstream(name.to_owned()))
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::HashMap;

    use super::*;

    #[derive(Default)]
    struct FakeKeyring {
        entries: RefCell<HashMap<String, String>>,
        locked: bool,
    }

    impl Keyring for FakeKeyring {
        fn set(&self, key: &SecretKey, password: &str) -> Result<(), SecretsError> {
            if self.locked {
                return Err(SecretsError::Keyring {
                    key: key.account(),
                    reason: "locked".into(),
                });
            }
            self.entries
                .borrow_mut()
                .insert(key.account(), password.to_owned());
            Ok(())
        }
        fn delete(&self, key: &SecretKey) -> Result<bool, SecretsError> {
            Ok(self.entries.borrow_mut().remove(&key.account()).is_some())
        }
    }

    impl ReadKeyring for FakeKeyring {
        fn get(&self, key: &SecretKey) -> Result<Option<String>, SecretsError> {
            Ok(self.entries.borrow().get(&key.account()).cloned())
        }
    }

    fn change(name: &str, url: &str, password: Option<&str>) -> UpstreamChange {
        UpstreamChange {
            original_name: None,
            name: name.into(),
            url: url.into(),
            password: password.map(str::to_owned),
            weight: 1,
        }
    }

    fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).expect("write");
        (dir, path)
    }

    #[test]
    fn a_password_goes_to_the_keyring_and_never_to_the_file() {
        let (_dir, path) = file("# mine\n");
        let keyring = FakeKeyring::default();
        let saved = save(
            &path,
            &change("home", "socks5://alice@p.example:1080", Some("hunter2")),
            &keyring,
        )
        .expect("saved");
        assert!(saved.password_stored);
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.contains("# mine"), "comments kept: {text}");
        assert!(text.contains("socks5://alice@p.example:1080"));
        assert!(!text.contains("hunter2"));
        assert_eq!(
            keyring
                .get(&SecretKey::Upstream("home".into()))
                .expect("get"),
            Some("hunter2".into())
        );
    }

    #[test]
    fn a_locked_keyring_leaves_the_file_as_it_was() {
        let (_dir, path) = file("# mine\n");
        let keyring = FakeKeyring {
            locked: true,
            ..FakeKeyring::default()
        };
        let err = save(
            &path,
            &change("home", "socks5://alice@p.example:1080", Some("pw")),
            &keyring,
        )
        .expect_err("refused");
        assert!(matches!(err, EditError::Keyring(_)), "{err}");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "# mine\n");
    }

    #[test]
    fn a_stored_password_is_not_carried_to_another_host() {
        let (_dir, path) = file("");
        let keyring = FakeKeyring::default();
        let _ = save(
            &path,
            &change("home", "socks5://alice@p.example:1080", Some("pw")),
            &keyring,
        )
        .expect("saved");
        let before = std::fs::read_to_string(&path).expect("read");
        let moved = UpstreamChange {
            original_name: Some("home".into()),
            ..change("home", "socks5://alice@elsewhere.example:1080", None)
        };
        let err = save(&path, &moved, &keyring).expect_err("refused");
        assert!(err.to_string().contains("give the password"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), before);
    }

    #[test]
    fn renaming_moves_the_password_and_the_choice() {
        let (_dir, path) = file("[app]\npinned_upstream = \"home\"\n");
        let keyring = FakeKeyring::default();
        let _ = save(
            &path,
            &change("home", "socks5://alice@p.example:1080", Some("pw")),
            &keyring,
        )
        .expect("saved");
        let renamed = UpstreamChange {
            original_name: Some("home".into()),
            ..change("house", "socks5://alice@p.example:1080", None)
        };
        let _ = save(&path, &renamed, &keyring).expect("renamed");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.contains("pinned_upstream = \"house\""), "{text}");
        assert_eq!(
            keyring
                .get(&SecretKey::Upstream("house".into()))
                .expect("get"),
            Some("pw".into())
        );
        assert_eq!(
            keyring
                .get(&SecretKey::Upstream("home".into()))
                .expect("get"),
            None
        );
    }

    #[test]
    fn bad_input_is_refused_before_anything_is_written() {
        let (_dir, path) = file("");
        let keyring = FakeKeyring::default();
        for (bad, why) in [
            (change("", "socks5://p:1", None), "name"),
            (change("x", "ftp://p:1", None), "socks5://"),
            (change("x", "socks5://p:1", Some("pw")), "names no user"),
            (
                change("x", "socks5://bob@p:1", Some("")),
                "needs its password",
            ),
            (change("x", "socks5://bob@p:1", None), "give its password"),
            (
                UpstreamChange {
                    weight: 0,
                    ..change("x", "socks5://p:1", None)
                },
                "weight",
            ),
        ] {
            let err = save(&path, &bad, &keyring).expect_err("refused");
            assert!(err.to_string().contains(why), "{bad:?}: {err}");
        }
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "");
    }

    #[test]
    fn removing_can_be_undone_and_names_what_is_missing() {
        let (_dir, path) = file("");
        let keyring = FakeKeyring::default();
        let _ = save(&path, &change("a", "http://p:3128", None), &keyring).expect("saved");
        let with_a = std::fs::read_to_string(&path).expect("read");
        let undo = remove(&path, "a").expect("removed");
        assert!(
            !std::fs::read_to_string(&path)
                .expect("read")
                .contains("http://p:3128")
        );
        undo.undo().expect("undo");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), with_a);
        let err = remove(&path, "b").expect_err("no such upstream");
        assert!(err.to_string().contains("\"b\""), "{err}");
    }
}
