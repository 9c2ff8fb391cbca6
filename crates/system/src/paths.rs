use std::io;
use std::path::{Path, PathBuf};

use directories::ProjectDirs;

/// Moves every file Veil keeps under one folder.
pub const VEIL_HOME: &str = "VEIL_HOME";

/// Where Veil keeps its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    pub config_file: PathBuf,
    pub data_dir: PathBuf,
    pub cache_dir: PathBuf,
    pub log_dir: PathBuf,
    /// Holds the control socket (on Windows, names the control pipe).
    pub runtime_dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum PathsError {
    #[error("cannot find a home folder for Veil's files; set {VEIL_HOME} to a folder")]
    NoHome,
    #[error("cannot create {path}: {source}")]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl Paths {
    /// `VEIL_HOME` when set, else the platform's usual folders.
    pub fn discover() -> Result<Self, PathsError> {
        if let Some(home) = std::env::var_os(VEIL_HOME).filter(|v| !v.is_empty()) {
            return Ok(Self::under(Path::new(&home)));
        }
        let dirs = ProjectDirs::from("net", "Veil", "veil").ok_or(PathsError::NoHome)?;
        let runtime_dir = dirs
            .runtime_dir()
            .map(|d| d.to_path_buf())
            .unwrap_or_else(|| dirs.data_local_dir().join("run"));
        Ok(Self {
            config_file: dirs.config_dir().join("config.toml"),
            data_dir: dirs.data_dir().to_path_buf(),
            cache_dir: dirs.cache_dir().to_path_buf(),
            log_dir: dirs.data_local_dir().join("logs"),
            runtime_dir,
        })
    }

    /// The `VEIL_HOME` layout: `DIR/config.toml`, `DIR/data/`, `DIR/cache/`,
    /// `DIR/logs/`, `DIR/run/`.
    pub fn under(dir: &Path) -> Self {
        Self {
            config_file: dir.join("config.toml"),
            data_dir: dir.join("data"),
            cache_dir: dir.join("cache"),
            log_dir: dir.join("logs"),
            runtime_dir: dir.join("run"),
        }
    }

    /// Where a running engine answers [`crate::control`] requests: a socket
    /// file in the runtime folder on Unix; on Windows a named pipe whose name
    /// is derived from the runtime folder, so each `VEIL_HOME` has its own.
    pub fn control_socket(&self) -> PathBuf {
        if cfg!(windows) {
            PathBuf::from(pipe_name(&self.runtime_dir))
        } else {
            self.runtime_dir.join("veil.sock")
        }
    }

    /// Where the app answers its window, which runs in a process of its own
    /// ([`crate::control::Request::Window`]): beside the control socket,
    /// private to the user in the same way.
    pub fn window_socket(&self) -> PathBuf {
        if cfg!(windows) {
            PathBuf::from(format!("{}-window", pipe_name(&self.runtime_dir)))
        } else {
            self.runtime_dir.join("veil-window.sock")
        }
    }

    /// The lock that keeps one Veil per user ([`crate::instance`]).
    pub fn lock_file(&self) -> PathBuf {
        self.runtime_dir.join("veil.lock")
    }

    /// Creates the folders, private to this user where the platform allows.
    pub fn create_dirs(&self) -> Result<(), PathsError> {
        let config_dir = self.config_file.parent().unwrap_or(Path::new("."));
        for dir in [
            config_dir,
            &self.data_dir,
            &self.cache_dir,
            &self.log_dir,
            &self.runtime_dir,
        ] {
            create_private_dir(dir).map_err(|source| PathsError::Create {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        Ok(())
    }
}

/// `\\.\pipe\veil-<hash of the folder>`. Pipe names are global on a
/// Windows machine, so the name must differ per folder; the folder is under
/// the user's profile by default, and the pipe's DACL admits only that user
/// anyway. FNV-1a (64 bit) of the lower-cased path: stable across builds,
/// unlike `std`'s hasher, which a CLI and an app of another version must
/// agree on.
pub fn pipe_name(runtime_dir: &Path) -> String {
    let text = runtime_dir.to_string_lossy().to_lowercase();
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!(r"\\.\pipe\veil-{hash:016x}")
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    // An existing folder keeps its mode; the runtime folder holds the control
    // socket, so make sure nobody else can enter it.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veil_home_layout() {
        let p = Paths::under(Path::new("/tmp/vh"));
        assert_eq!(p.config_file, Path::new("/tmp/vh/config.toml"));
        assert_eq!(p.data_dir, Path::new("/tmp/vh/data"));
        assert_eq!(p.cache_dir, Path::new("/tmp/vh/cache"));
        assert_eq!(p.log_dir, Path::new("/tmp/vh/logs"));
        #[cfg(unix)]
        assert_eq!(p.control_socket(), Path::new("/tmp/vh/run/veil.sock"));
        #[cfg(windows)]
        assert_eq!(p.control_socket(), Path::new(&pipe_name(&p.runtime_dir)));
    }

    #[test]
    fn each_folder_has_its_own_pipe() {
        let a = pipe_name(Path::new(r"C:\Users\alice\AppData\Local\Veil\run"));
        let b = pipe_name(Path::new(r"C:\Users\bob\AppData\Local\Veil\run"));
        assert!(a.starts_with(r"\\.\pipe\veil-"), "{a}");
        assert_eq!(a.len(), r"\\.\pipe\veil-".len() + 16);
        assert_ne!(a, b);
        // Windows paths are case-insensitive: one folder, one pipe.
        assert_eq!(
            a,
            pipe_name(Path::new(r"c:\users\ALICE\appdata\local\veil\run"))
        );
    }
}
