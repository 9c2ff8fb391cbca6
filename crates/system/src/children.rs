//! Helper processes this process started and no longer needs. WebKitGTK
//! keeps its network process for the life of the web context, long after
//! the last web view is gone; an app that closes its window to live in the
//! tray ends it, and WebKit starts a new one with the next window.

/// One process of the table: its pid, its parent's and its name (`comm`,
/// at most 15 bytes). Linux only (elsewhere the table is empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    pub pid: u32,
    pub parent: u32,
    pub name: String,
}

/// Every process `/proc` shows now.
pub fn processes() -> Vec<Process> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // "pid (comm) state ppid ...": comm may hold spaces or ')'.
            let (head, rest) = stat.rsplit_once(')')?;
            let name = head.split_once('(').map_or("", |(_, n)| n).to_owned();
            let parent = rest.split_whitespace().nth(1)?.parse().ok()?;
            Some(Process { pid, parent, name })
        })
        .collect()
}

/// Sends SIGTERM to this process's children whose name starts with
/// `prefix`; returns how many were signalled. Linux only (elsewhere 0).
pub fn end_children_named(prefix: &str) -> usize {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{Pid, Signal, getpid, kill_process};
        let me = getpid().as_raw_nonzero().get() as u32;
        processes()
            .into_iter()
            .filter(|p| p.parent == me && p.name.starts_with(prefix))
            .filter_map(|p| Pid::from_raw(p.pid as i32))
            .filter(|&pid| kill_process(pid, Signal::TERM).is_ok())
            .count()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = prefix;
        0
    }
}
