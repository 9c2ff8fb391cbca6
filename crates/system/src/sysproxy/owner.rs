//! Which process owns a guard file, told apart from a later process that
//! happens to get the same pid: the pid is saved with the process's start
//! time, and both must match for the owner to count as running.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub pid: u32,
    /// The process's start time in the platform's notation (clock ticks after
    /// boot on Linux); `None` when it could not be found.
    pub started: Option<String>,
}

impl Owner {
    /// This process. Its start time never changes, so it is looked up once
    /// (on macOS that takes starting `ps`).
    pub fn current() -> Self {
        static ME: std::sync::OnceLock<Owner> = std::sync::OnceLock::new();
        ME.get_or_init(|| {
            let pid = std::process::id();
            Self {
                pid,
                started: start_time(pid),
            }
        })
        .clone()
    }

    /// Whether the owner still runs: same pid, same start time.
    pub fn is_running(&self) -> bool {
        match (start_time(self.pid), &self.started) {
            (Some(now), Some(saved)) => now == *saved,
            // Without a saved start time, a live pid is trusted: refusing to
            // restore is the safe mistake.
            (Some(_), None) => true,
            (None, _) => false,
        }
    }

    pub fn is_current(&self) -> bool {
        *self == Self::current()
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces;
    // fields are counted after its closing one. Start time is field 22.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19).map(str::to_owned)
}

#[cfg(all(unix, not(any(target_os = "linux", target_os = "android"))))]
fn start_time(pid: u32) -> Option<String> {
    let out = std::process::Command::new("ps")
        .args(["-o", "lstart=", "-p", &pid.to_string()])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// The creation time as a FILETIME count (100 ns since 1601, UTC), the
/// same number PowerShell's `StartTime.ToFileTimeUtc()` gives, so guard files
/// written by earlier versions still match.
#[cfg(windows)]
fn start_time(pid: u32) -> Option<String> {
    win::creation_time(pid).map(|t| t.to_string())
}

#[cfg(windows)]
#[allow(unsafe_code)]
mod win {
    use windows_sys::Win32::Foundation::{CloseHandle, FILETIME, STILL_ACTIVE};
    use windows_sys::Win32::System::Threading::{
        GetExitCodeProcess, GetProcessTimes, OpenProcess, PROCESS_QUERY_LIMITED_INFORMATION,
    };

    /// `None` when there is no such process, or it has exited (a handle
    /// someone still holds keeps an exited process's times readable).
    pub(super) fn creation_time(pid: u32) -> Option<u64> {
        // SAFETY: plain call; a null handle is checked below.
        let handle = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) };
        if handle.is_null() {
            return None;
        }
        let zero = FILETIME {
            dwLowDateTime: 0,
            dwHighDateTime: 0,
        };
        let (mut created, mut exited, mut kernel, mut user) = (zero, zero, zero, zero);
        let mut code = 0u32;
        // SAFETY: `handle` is open with the query right both calls need; the
        // out-pointers are valid locals.
        let ok = unsafe {
            GetProcessTimes(handle, &mut created, &mut exited, &mut kernel, &mut user) != 0
                && GetExitCodeProcess(handle, &mut code) != 0
        };
        // SAFETY: opened above.
        unsafe { CloseHandle(handle) };
        (ok && code == STILL_ACTIVE as u32)
            .then(|| (u64::from(created.dwHighDateTime) << 32) | u64::from(created.dwLowDateTime))
    }
}

#[cfg(not(any(unix, windows)))]
fn start_time(_pid: u32) -> Option<String> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_runs_and_a_reused_pid_does_not_count() {
        let me = Owner::current();
        assert!(me.started.is_some());
        assert!(me.is_running());
        assert!(me.is_current());
        let impostor = Owner {
            pid: me.pid,
            started: Some("1".into()),
        };
        assert!(!impostor.is_running(), "same pid, other start time");
    }

    #[test]
    fn a_finished_process_is_not_running() {
        // A program every OS has that exits at once.
        let mut child = if cfg!(windows) {
            std::process::Command::new("cmd")
                .args(["/C", "exit"])
                .spawn()
        } else {
            std::process::Command::new("true").spawn()
        }
        .expect("spawn a short-lived process");
        let owner = Owner {
            pid: child.id(),
            started: start_time(child.id()),
        };
        child.wait().expect("wait");
        assert!(!owner.is_running());
    }
}
