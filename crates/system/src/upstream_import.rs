//! Importing a list of upstream proxies, as people keep them: one URL per
//! line (`socks5://`, `http://`, `https://`), with `user:pass@` where the
//! proxy needs a login, blank lines and `#` comments. Each line is checked
//! on its own; a bad line is refused with its number and the reason, and
//! the good ones are added. Passwords go to the OS keyring, never into
//! `config.toml`; a URL with a password is shown with it redacted.
//!
//! [`plan`] reads the text and decides; [`apply`] writes the keyring and
//! the file, all or nothing. The CLI (`veil upstream import`) and the
//! window both call these two.

use std::collections::HashSet;
use std::fmt;

use serde::Serialize;
use veil_engine::{ProxyUrl, host_reaches_listener};

use crate::config::{Config, ConfigError, ServerSection};
use crate::config_file::ConfigFile;
use crate::secrets::{SecretKey, SecretsError};

/// At most this many lines are read: a list is pasted by hand or saved by
/// a provider, and a runaway file must not become a runaway config.
pub const MAX_LINES: usize = 2_000;

/// One line that will become an upstream.
pub struct Accepted {
    /// 1-based line number in the imported text.
    pub line: usize,
    pub name: String,
    pub url: ProxyUrl,
    password: Option<String>,
}

impl fmt::Debug for Accepted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accepted")
            .field("line", &self.line)
            .field("name", &self.name)
            .field("url", &self.url)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// A line that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct RefusedLine {
    /// 1-based line number in the imported text.
    pub line: usize,
    /// The line with any password replaced by `***`.
    pub text: String,
    pub reason: String,
}

/// What an import would do.
#[derive(Debug, Default)]
pub struct Plan {
    pub accepted: Vec<Accepted>,
    pub refused: Vec<RefusedLine>,
}

/// One upstream an import added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct AddedUpstream {
    pub line: usize,
    pub name: String,
    /// The URL as stored, without a password.
    pub url: String,
    /// Its password went to the OS keyring.
    pub password_stored: bool,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ImportSummary {
    pub added: Vec<AddedUpstream>,
    pub refused: Vec<RefusedLine>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("nothing was imported: {0}")]
    Keyring(#[from] SecretsError),
    #[error("nothing was imported: {0}")]
    Config(#[from] ConfigError),
}

/// Reads `text` against the upstreams `config` already has. Lines that
/// repeat a configured proxy (same scheme, host, port and user) or an
/// earlier line are refused, names are made unique, and a proxy that is
/// Veil's own listener is refused like in `config.toml`.
pub fn plan(text: &str, config: &Config) -> Plan {
    let mut plan = Plan::default();
    let mut names: HashSet<String> = config
        .upstreams
        .server
        .iter()
        .map(|s| s.name.clone())
        .collect();
    let mut seen: Vec<(ProxyUrl, String)> = config
        .upstreams
        .server
        .iter()
        .filter_map(|s| {
            let url = s.url.parse::<ProxyUrl>().ok()?;
            Some((url, format!("already configured as {:?}", s.name)))
        })
        .collect();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let mut refuse = |reason: String| {
            plan.refused.push(RefusedLine {
                line,
                text: veil_engine::upstream::redact(trimmed),
                reason,
            });
        };
        if line > MAX_LINES {
            refuse(format!("only the first {MAX_LINES} lines are read"));
            break;
        }
        let (url, password) = match parse_line(trimmed) {
            Ok(parsed) => parsed,
            Err(reason) => {
                refuse(reason);
                continue;
            }
        };
        if host_reaches_listener(config.proxy.listen, &url.host, url.port) {
            refuse(format!(
                "{url} is Veil's own listener; traffic sent there would loop"
            ));
            continue;
        }
        if let Some((_, why)) = seen.iter().find(|(known, _)| *known == url) {
            refuse(why.clone());
            continue;
        }
        seen.push((url.clone(), format!("repeats line {line}")));
        let name = unique_name(&url, &mut names);
        plan.accepted.push(Accepted {
            line,
            name,
            url,
            password,
        });
    }
    plan
}

/// Splits `scheme://user:password@host:port` into the URL Veil stores and
/// the password; anything else is checked as [`ProxyUrl`] checks it.
fn parse_line(line: &str) -> Result<(ProxyUrl, Option<String>), String> {
    if line.chars().any(char::is_whitespace) {
        return Err("a line holds one proxy URL and nothing else".into());
    }
    let Some((scheme, rest)) = line.split_once("://") else {
        return Err("not a proxy URL: expected socks5://, http:// or https://".into());
    };
    let (without_password, password) = match rest.rsplit_once('@') {
        Some((userinfo, hostport)) => match userinfo.split_once(':') {
            Some((user, password)) => {
                if user.is_empty() {
                    return Err("a password without a user name".into());
                }
                if password.is_empty() {
                    return Err("an empty password after the user name".into());
                }
                (
                    format!("{scheme}://{user}@{hostport}"),
                    Some(veil_engine::upstream::percent_decode(password)),
                )
            }
            None => (line.to_owned(), None),
        },
        None => (line.to_owned(), None),
    };
    let url: ProxyUrl = without_password
        .parse::<ProxyUrl>()
        .map_err(|e| e.to_string())?;
    match (&url.username, &password) {
        (Some(_), None) => Err(format!(
            "{url} names a user but no password; write it as user:password@host:port, or add \
             this one with `veil upstream add`, which asks for it"
        )),
        (Some(user), Some(password))
            if url.kind == veil_engine::ProxyKind::Socks5
                && (user.len() > 255 || password.len() > 255) =>
        {
            Err("a SOCKS5 user name and password are at most 255 bytes each (RFC 1929)".into())
        }
        _ => Ok((url, password)),
    }
}

/// `host:port`, or `host:port (2)` and so on when the name is taken.
fn unique_name(url: &ProxyUrl, names: &mut HashSet<String>) -> String {
    let host = if url.host.contains(':') {
        format!("[{}]", url.host)
    } else {
        url.host.clone()
    };
    let base = format!("{host}:{}", url.port);
    let name = (1..)
        .map(|n| {
            if n == 1 {
                base.clone()
            } else {
                format!("{base} ({n})")
            }
        })
        .find(|candidate| !names.contains(candidate))
        .unwrap_or(base);
    names.insert(name.clone());
    name
}

/// The keyring as [`apply`] uses it: the real one ([`crate::secrets`]) or
/// a stand-in in tests.
pub trait Keyring {
    fn set(&self, key: &SecretKey, password: &str) -> Result<(), SecretsError>;
    fn delete(&self, key: &SecretKey) -> Result<bool, SecretsError>;
}

/// The OS keyring.
pub struct OsKeyring;

impl Keyring for OsKeyring {
    fn set(&self, key: &SecretKey, password: &str) -> Result<(), SecretsError> {
        crate::secrets::set(key, password)
    }
    fn delete(&self, key: &SecretKey) -> Result<bool, SecretsError> {
        crate::secrets::delete(key)
    }
}

/// Stores the passwords, then adds the upstreams to `file` and saves it.
/// All or nothing: when the keyring or the file refuses, the passwords
/// stored so far are removed again and the file is not written.
pub fn apply(
    file: &mut ConfigFile,
    plan: Plan,
    keyring: &dyn Keyring,
) -> Result<ImportSummary, ImportError> {
    let mut stored: Vec<SecretKey> = Vec::new();
    let undo = |stored: &[SecretKey]| {
        for key in stored {
            if let Err(e) = keyring.delete(key) {
                tracing::warn!("an imported password could not be removed again: {e}");
            }
        }
    };
    let mut added = Vec::with_capacity(plan.accepted.len());
    for accepted in &plan.accepted {
        if let Some(password) = &accepted.password {
            let key = SecretKey::Upstream(accepted.name.clone());
            if let Err(e) = keyring.set(&key, password) {
                undo(&stored);
                return Err(e.into());
            }
            stored.push(key);
        }
        let server = ServerSection {
            name: accepted.name.clone(),
            url: accepted.url.to_string(),
            weight: 1,
            password_env: None,
            ca_file: None,
        };
        if let Err(e) = file.add_upstream(&server) {
            undo(&stored);
            return Err(e.into());
        }
        added.push(AddedUpstream {
            line: accepted.line,
            name: accepted.name.clone(),
            url: server.url,
            password_stored: accepted.password.is_some(),
        });
    }
    if !added.is_empty()
        && let Err(e) = file.save()
    {
        undo(&stored);
        return Err(e.into());
    }
    Ok(ImportSummary {
        added,
        refused: plan.refused,
    })
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::path::Path;

    use super::*;

    fn config(text: &str) -> Config {
        Config::parse(text, Path::new("config.toml")).expect("config")
    }

    #[derive(Default)]
    struct FakeKeyring {
        entries: RefCell<HashMap<String, String>>,
        refuse_after: Option<usize>,
    }

    impl Keyring for FakeKeyring {
        fn set(&self, key: &SecretKey, password: &str) -> Result<(), SecretsError> {
            let mut entries = self.entries.borrow_mut();
            if self.refuse_after.is_some_and(|n| entries.len() >= n) {
                return Err(SecretsError::Keyring {
                    key: key.account(),
                    reason: "locked".into(),
                });
            }
            entries.insert(key.account(), password.to_owned());
            Ok(())
        }
        fn delete(&self, key: &SecretKey) -> Result<bool, SecretsError> {
            Ok(self.entries.borrow_mut().remove(&key.account()).is_some())
        }
    }

    const LIST: &str = "\
# my providers
socks5://alice:s3cr%40t@proxy.example.net:1080

http://198.51.100.7:3128
https://bob:pw@secure.example.org
ftp://nope.example:21
socks5://carol@user-only.example:1080
socks5://proxy.example.net:1080
http://198.51.100.7:3128
http://127.0.0.1:7890
socks5://:pw@anon.example:1080
http://host.example:3128/path
not a url
http://known.example:8080
";

    #[test]
    fn each_line_is_checked_on_its_own() {
        let config =
            config("[[upstreams.server]]\nname = \"known\"\nurl = \"http://known.example:8080\"\n");
        let plan = plan(LIST, &config);
        let accepted: Vec<(usize, &str, String, Option<&str>)> = plan
            .accepted
            .iter()
            .map(|a| {
                (
                    a.line,
                    a.name.as_str(),
                    a.url.to_string(),
                    a.password.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            accepted,
            vec![
                (
                    2,
                    "proxy.example.net:1080",
                    "socks5://alice@proxy.example.net:1080".into(),
                    Some("s3cr@t")
                ),
                (
                    4,
                    "198.51.100.7:3128",
                    "http://198.51.100.7:3128".into(),
                    None
                ),
                (
                    5,
                    "secure.example.org:443",
                    "https://bob@secure.example.org:443".into(),
                    Some("pw")
                ),
                // Another user on the same proxy is another upstream.
                (
                    8,
                    "proxy.example.net:1080 (2)",
                    "socks5://proxy.example.net:1080".into(),
                    None
                ),
            ]
        );
        let refused: Vec<(usize, &str)> = plan
            .refused
            .iter()
            .map(|r| (r.line, r.reason.as_str()))
            .collect();
        let reason = |line: usize| {
            refused
                .iter()
                .find(|(l, _)| *l == line)
                .map(|(_, r)| *r)
                .unwrap_or_else(|| panic!("line {line} not refused: {refused:?}"))
        };
        assert!(reason(6).contains("expected http://"), "{}", reason(6));
        assert!(reason(7).contains("no password"), "{}", reason(7));
        assert_eq!(reason(9), "repeats line 4");
        assert!(reason(10).contains("own listener"), "{}", reason(10));
        assert!(reason(11).contains("without a user"), "{}", reason(11));
        assert!(reason(12).contains("path"), "{}", reason(12));
        assert!(reason(13).contains("one proxy URL"), "{}", reason(13));
        assert!(reason(14).contains("\"known\""), "{}", reason(14));
        assert_eq!(refused.len(), 8, "{refused:?}");
    }

    #[test]
    fn no_password_is_shown_or_debug_printed() {
        let plan = plan(
            "socks5://u:Secr3t-pw@:1080\nhttp://u:Secr3t-pw@h.example:3128\n",
            &config(""),
        );
        let shown = format!("{plan:?}");
        assert!(!shown.contains("Secr3t"), "{shown}");
        assert_eq!(plan.refused[0].text, "socks5://u:***@:1080");
    }

    #[test]
    fn apply_stores_passwords_in_the_keyring_and_urls_in_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "# mine\n[proxy]\nmode = \"direct\"\n").expect("write");
        let mut file = ConfigFile::open(&path).expect("open");
        let keyring = FakeKeyring::default();
        let plan = plan(LIST, &file.config().expect("config"));
        let summary = apply(&mut file, plan, &keyring).expect("applied");
        assert_eq!(summary.added.len(), 5, "{summary:?}");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.starts_with("# mine\n"), "comments kept: {text}");
        assert!(!text.contains("s3cr"), "no password in the file: {text}");
        let saved = Config::load(&path).expect("reloads");
        assert_eq!(saved.upstreams.server.len(), 5);
        let entries = keyring.entries.borrow();
        assert_eq!(
            entries
                .get(&SecretKey::Upstream("proxy.example.net:1080".into()).account())
                .map(String::as_str),
            Some("s3cr@t")
        );
        assert_eq!(entries.len(), 2, "only the lines with a password");
    }

    #[test]
    fn a_locked_keyring_imports_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "").expect("write");
        let mut file = ConfigFile::open(&path).expect("open");
        let keyring = FakeKeyring {
            refuse_after: Some(1),
            ..FakeKeyring::default()
        };
        let plan = plan(LIST, &file.config().expect("config"));
        let err = apply(&mut file, plan, &keyring).expect_err("the second password is refused");
        assert!(err.to_string().contains("nothing was imported"), "{err}");
        assert!(keyring.entries.borrow().is_empty(), "the first one removed");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "");
    }
}
