//! Changes to `config.toml` made by Veil itself (`veil upstream add`, the
//! app's settings), keeping the user's comments, order and formatting.
//!
//! A file that does not parse is never edited: the error names its line, and
//! the user fixes it first. Every change is checked with the same rules as a
//! load before it is written, and written atomically (a temporary file in the
//! same folder, then a rename), so a crash or a full disk leaves the previous
//! good file in place.

use std::io::Write;
use std::path::{Path, PathBuf};

use toml_edit::{ArrayOfTables, DocumentMut, Item, Table, value};

use crate::config::{Config, ConfigError, ServerSection};

/// `config.toml` opened for editing.
#[derive(Debug)]
pub struct ConfigFile {
    path: PathBuf,
    doc: DocumentMut,
}

impl ConfigFile {
    /// Opens `path` for editing; a missing file is an empty one. A file that
    /// does not load is refused with the same error `veil run` would give.
    pub fn open(path: &Path) -> Result<Self, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        Config::parse(&text, path)?;
        let doc = text
            .parse::<DocumentMut>()
            .map_err(|e| ConfigError::Invalid {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        Ok(Self {
            path: path.to_path_buf(),
            doc,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The config as it would load now, edits included.
    pub fn config(&self) -> Result<Config, ConfigError> {
        Config::parse(&self.doc.to_string(), &self.path)
    }

    /// Appends an `[[upstreams.server]]`. A name already in use is an error.
    pub fn add_upstream(&mut self, server: &ServerSection) -> Result<(), ConfigError> {
        if self
            .config()?
            .upstreams
            .server
            .iter()
            .any(|s| s.name == server.name)
        {
            return Err(self.invalid(format!(
                "an upstream named {:?} already exists; remove it first with `veil upstream \
                 remove {}`",
                server.name, server.name
            )));
        }
        let mut table = Table::new();
        table["name"] = value(server.name.as_str());
        table["url"] = value(server.url.as_str());
        if server.weight != 1 {
            table["weight"] = value(i64::from(server.weight));
        }
        if let Some(var) = &server.password_env {
            table["password_env"] = value(var.as_str());
        }
        if let Some(ca) = &server.ca_file {
            table["ca_file"] = value(ca.to_string_lossy().as_ref());
        }
        self.servers_mut()?.push(table);
        self.config().map(drop)
    }

    /// Removes the upstream named `name`; `false` when there is none.
    pub fn remove_upstream(&mut self, name: &str) -> Result<bool, ConfigError> {
        let servers = self.servers_mut()?;
        let Some(index) = servers
            .iter()
            .position(|t| t.get("name").and_then(Item::as_str) == Some(name))
        else {
            return Ok(false);
        };
        servers.remove(index);
        if servers.is_empty()
            && let Some(upstreams) = self.doc.get_mut("upstreams").and_then(Item::as_table_mut)
        {
            upstreams.remove("server");
            if upstreams.is_empty() && upstreams.is_implicit() {
                self.doc.remove("upstreams");
            }
        }
        self.config().map(|_| true)
    }

    /// Sets `[section] key = value`, creating the section when it is
    /// missing and keeping the comments around an existing key. The edit is
    /// checked like a load.
    pub fn set(
        &mut self,
        section: &str,
        key: &str,
        value: impl Into<toml_edit::Value>,
    ) -> Result<(), ConfigError> {
        let table = self
            .doc
            .entry(section)
            .or_insert_with(|| Item::Table(Table::new()))
            .as_table_mut()
            .ok_or_else(|| ConfigError::Invalid {
                path: self.path.clone(),
                message: format!("[{section}] is not a table"),
            })?;
        match table.get_mut(key).and_then(Item::as_value_mut) {
            // Keep the decor (comments, spacing) of the value being replaced.
            Some(existing) => {
                let decor = existing.decor().clone();
                *existing = value.into();
                *existing.decor_mut() = decor;
            }
            None => table[key] = Item::Value(value.into()),
        }
        self.config().map(drop)
    }

    /// Removes `[section] key` if present.
    pub fn unset(&mut self, section: &str, key: &str) -> Result<(), ConfigError> {
        if let Some(table) = self.doc.get_mut(section).and_then(Item::as_table_mut) {
            table.remove(key);
        }
        self.config().map(drop)
    }

    /// Replaces the upstream named `original` (its name may change) in
    /// place; an error when there is none or the new name is taken.
    pub fn replace_upstream(
        &mut self,
        original: &str,
        server: &ServerSection,
    ) -> Result<(), ConfigError> {
        if original != server.name
            && self
                .config()?
                .upstreams
                .server
                .iter()
                .any(|s| s.name == server.name)
        {
            return Err(self.invalid(format!(
                "an upstream named {:?} already exists",
                server.name
            )));
        }
        let path = self.path.clone();
        let servers = self.servers_mut()?;
        let table = servers
            .iter_mut()
            .find(|t| t.get("name").and_then(Item::as_str) == Some(original))
            .ok_or_else(|| ConfigError::Invalid {
                path,
                message: format!("no upstream named {original:?}"),
            })?;
        table["name"] = value(server.name.as_str());
        table["url"] = value(server.url.as_str());
        if server.weight == 1 {
            table.remove("weight");
        } else {
            table["weight"] = value(i64::from(server.weight));
        }
        self.config().map(drop)
    }

    /// Checks the edited file and replaces the one on disk atomically.
    pub fn save(&self) -> Result<(), ConfigError> {
        let text = self.doc.to_string();
        Config::parse(&text, &self.path)?;
        write_atomically(&self.path, text.as_bytes()).map_err(|source| ConfigError::Write {
            path: self.path.clone(),
            source,
        })
    }

    /// `[[upstreams.server]]`, created when missing. Only the usual layout
    /// (a `[upstreams]` table holding an array of tables) is edited; anything
    /// else is left for the user to change by hand.
    fn servers_mut(&mut self) -> Result<&mut ArrayOfTables, ConfigError> {
        let path = self.path.clone();
        let unusual = |what: &str| ConfigError::Invalid {
            path: path.clone(),
            message: format!(
                "{what} is written in a form `veil upstream` does not edit; use [upstreams] and \
                 [[upstreams.server]] sections, or edit the file by hand"
            ),
        };
        let upstreams = self.doc.entry("upstreams").or_insert_with(|| {
            let mut t = Table::new();
            t.set_implicit(true);
            Item::Table(t)
        });
        let upstreams = upstreams
            .as_table_mut()
            .ok_or_else(|| unusual("upstreams"))?;
        upstreams
            .entry("server")
            .or_insert_with(|| Item::ArrayOfTables(ArrayOfTables::new()))
            .as_array_of_tables_mut()
            .ok_or_else(|| unusual("upstreams.server"))
    }

    fn invalid(&self, message: String) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.clone(),
            message,
        }
    }
}

/// Writes `bytes` to a temporary file beside `path`, flushes it to disk and
/// renames it over `path`, so readers see the old file or the new one, never
/// half of one. The new file keeps the old one's permissions (0600 when new).
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let tmp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        set_permissions_like(path, &tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)?;
        // The rename itself is durable once the folder is flushed; not every
        // platform can open a folder for that, so this is best effort.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(unix)]
fn set_permissions_like(original: &Path, tmp: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(original)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0o600);
    std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_permissions_like(_original: &Path, _tmp: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(name: &str, url: &str) -> ServerSection {
        ServerSection {
            name: name.into(),
            url: url.into(),
            weight: 1,
            password_env: None,
            ca_file: None,
        }
    }

    const COMMENTED: &str = "# my proxy setup\n[proxy]\nlisten = \"127.0.0.1:7890\" # keep this port\n\n\
                             [upstreams]\nstrategy = \"first\" # failover\n";

    #[test]
    fn add_and_remove_keep_comments_and_formatting() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.toml");
        std::fs::write(&path, COMMENTED).expect("write");

        let mut file = ConfigFile::open(&path).expect("open");
        file.add_upstream(&server("home", "socks5://alice@127.0.0.3:1080"))
            .expect("add");
        let mut second = server("work", "http://127.0.0.2:3128");
        second.weight = 3;
        file.add_upstream(&second).expect("add");
        file.save().expect("save");

        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.starts_with(COMMENTED), "{text}");
        assert!(
            text.contains("[[upstreams.server]]\nname = \"home\""),
            "{text}"
        );
        let config = Config::load(&path).expect("loads");
        assert_eq!(config.upstreams.server.len(), 2);
        assert_eq!(config.upstreams.server[1].weight, 3);

        let mut file = ConfigFile::open(&path).expect("open");
        assert!(file.remove_upstream("home").expect("remove"));
        assert!(!file.remove_upstream("nobody").expect("remove nothing"));
        assert!(file.remove_upstream("work").expect("remove"));
        file.save().expect("save");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), COMMENTED);
    }

    #[test]
    fn a_new_file_gets_only_what_was_added() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.toml");
        let mut file = ConfigFile::open(&path).expect("open missing file");
        file.add_upstream(&server("home", "http://127.0.0.2:3128"))
            .expect("add");
        file.save().expect("save");
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(
            text,
            "[[upstreams.server]]\nname = \"home\"\nurl = \"http://127.0.0.2:3128\"\n"
        );
        let mut file = ConfigFile::open(&path).expect("open");
        file.remove_upstream("home").expect("remove");
        file.save().expect("save");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "");
    }

    #[test]
    fn refuses_bad_edits_and_broken_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.toml");
        let mut file = ConfigFile::open(&path).expect("open");
        file.add_upstream(&server("home", "http://127.0.0.2:3128"))
            .expect("add");
        let err = file
            .add_upstream(&server("home", "http://127.0.0.3:3128"))
            .expect_err("duplicate");
        assert!(err.to_string().contains("already exists"), "{err}");

        let mut file = ConfigFile::open(&path).expect("open");
        assert!(
            file.add_upstream(&server("bad", "ftp://h:1")).is_err(),
            "bad URL refused"
        );

        std::fs::write(&path, "[proxy]\nlisten = 42\n").expect("write");
        let err = ConfigFile::open(&path).expect_err("broken file");
        assert!(err.to_string().contains(":2:"), "names the line: {err}");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "[proxy]\nlisten = 42\n",
            "the broken file is left as it was"
        );
    }
}
