//! Helper processes this process started and no longer needs. WebKitGTK
//! keeps its network process for the life of the web context, long after
//! the last web view is gone; an app that closes its window to live in the
//! tray ends it, and WebKit starts a new one with the next window.

/// Sends SIGTERM to this process's children whose name starts with
/// `prefix`; returns how many were signalled. Linux only (elsewhere 0).
pub fn end_children_named(prefix: &str) -> usize {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{Pid, Signal, getpid, kill_process};
        let me = getpid().as_raw_nonzero().get();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return 0;
        };
        let mut ended = 0;
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // "pid (comm) state ppid ...": comm may hold spaces or ')'.
            let Some((head, rest)) = stat.rsplit_once(')') else {
                continue;
            };
            let name = head.split_once('(').map_or("", |(_, n)| n);
            let parent = rest
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<i32>().ok());
            if parent != Some(me) || !name.starts_with(prefix) {
                continue;
            }
            if let Some(pid) = Pid::from_raw(pid)
                && kill_process(pid, Signal::TERM).is_ok()
            {
                ended += 1;
            }
        }
        ended
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = prefix;
        0
    }
}
