//! One Veil per user: `veil run` and the app take an exclusive lock on
//! `<run dir>/veil.lock` before they bind the control socket or touch the
//! system-proxy guard, and hold it until they exit. Two engines would fight
//! over the guard file (each saving the other's listener as "the user's"
//! settings) and over the control socket.
//!
//! The lock is the OS's (`flock` on Unix, `LockFileEx` on Windows, through
//! `fs4`), so the kernel releases it when the process ends however it ends,
//! SIGKILL included: a stale lock file never blocks the next start. The
//! holder writes its pid into the file so a refused start can name it.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::Paths;

/// Held while this process runs the engine; dropping it (or exiting)
/// releases the lock.
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
    path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    #[error(
        "another Veil is already running for this user ({}), holding {path}. Stop it first, or \
         talk to it with `veil status`, `veil sysproxy on|off`",
        match .pid { Some(pid) => format!("pid {pid}"), None => "pid unknown".to_owned() }
    )]
    Held { pid: Option<u32>, path: PathBuf },
    #[error("the instance lock {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl InstanceLock {
    /// Takes the lock of `paths` (whose runtime folder must exist), or says
    /// which process holds it. Never waits.
    pub fn acquire(paths: &Paths) -> Result<Self, InstanceError> {
        Self::acquire_at(&paths.lock_file())
    }

    pub fn acquire_at(path: &Path) -> Result<Self, InstanceError> {
        let io_err = |source| InstanceError::Io {
            path: path.to_path_buf(),
            source,
        };
        // Not truncated on open: the holder's pid must stay readable for a
        // start that is refused.
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(io_err)?;
        // Called through the trait: `File::try_lock` of std is newer than
        // the workspace's minimum Rust.
        match fs4::FileExt::try_lock(&file) {
            Ok(()) => {}
            Err(fs4::TryLockError::WouldBlock) => {
                return Err(InstanceError::Held {
                    pid: holder_pid(&mut file),
                    path: path.to_path_buf(),
                });
            }
            Err(fs4::TryLockError::Error(e)) => return Err(io_err(e)),
        }
        let mut record = || -> io::Result<()> {
            file.set_len(0)?;
            file.seek(SeekFrom::Start(0))?;
            writeln!(file, "{}", std::process::id())?;
            file.flush()
        };
        record().map_err(io_err)?;
        Ok(Self {
            _file: file,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The pid written by whoever holds the lock at `path`, when it can be
    /// read (Windows refuses reads of a locked range).
    pub fn holder(path: &Path) -> Option<u32> {
        File::open(path).ok().and_then(|mut f| holder_pid(&mut f))
    }
}

fn holder_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.take(32).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_with_the_holders_pid_and_free_after_drop() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("veil.lock");
        let first = InstanceLock::acquire_at(&path).expect("first");
        // A second open file description is refused even in one process:
        // flock locks belong to the open file, not the process.
        match InstanceLock::acquire_at(&path) {
            Err(InstanceError::Held { pid, .. }) => {
                #[cfg(unix)]
                assert_eq!(pid, Some(std::process::id()));
                let _ = pid;
            }
            other => panic!("expected Held, got {other:?}"),
        }
        drop(first);
        InstanceLock::acquire_at(&path).expect("free again");
    }
}
