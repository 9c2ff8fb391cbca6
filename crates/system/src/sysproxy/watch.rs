//! Hears the OS proxy setting change, so that a drift away from Veil is
//! seen at once instead of at the next poll. Each platform's own change
//! signal wakes [`Watcher`]'s callback: dconf's `Notify` signal on the
//! session bus for GNOME (gsettings' dconf backend emits it for every
//! write, from any program), a change of `kioslaverc` for KDE (its size and
//! modification time, looked at every second: a `stat`, no process),
//! `RegNotifyChangeKeyValue` on the Internet Settings key on Windows, and
//! on macOS a tick every few seconds (SystemConfiguration's change
//! notification is not wired up; the read-back then runs `networksetup`).
//!
//! The callback only says "look again": what changed is decided by reading
//! the settings back (`SystemProxyGuard::drift`). A spurious wake costs
//! one read-back; a missed one is caught by the caller's slow poll.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What wakes the caller: called from the watcher's own threads.
pub type Wake = Arc<dyn Fn() + Send + Sync>;

/// Watches while alive; the threads stop (within a second) once dropped.
pub struct Watcher {
    stop: Arc<AtomicBool>,
    /// What is watched, for the log and `veil status`.
    pub sources: Vec<String>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Starts the watchers this platform has; `wake` is called on each change.
pub fn start(wake: Wake) -> Watcher {
    let stop = Arc::new(AtomicBool::new(false));
    let sources = platform::start(&wake, &stop);
    if sources.is_empty() {
        tracing::info!("no change signal for the system proxy here; polling only");
    } else {
        tracing::info!("watching the system proxy: {}", sources.join(", "));
    }
    Watcher { stop, sources }
}

/// Runs `body` on a named thread until `stop` is set; `body` returns
/// `false` to end early. A thread that cannot start is logged.
#[cfg_attr(target_os = "windows", allow(dead_code))]
fn spawn_loop(name: &str, stop: &Arc<AtomicBool>, mut body: impl FnMut() -> bool + Send + 'static) {
    let stop = stop.clone();
    let result = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                if !body() {
                    return;
                }
            }
        });
    if let Err(e) = result {
        tracing::warn!("the {name} thread did not start: {e}");
    }
}

/// Whether this process has a session bus to talk to: its address in the
/// environment, or the usual socket in the runtime folder. Without either,
/// libdbus would try to start a bus of its own (X11 autolaunch), which a
/// proxy must not do behind the user's back.
#[cfg(any(target_os = "linux", target_os = "freebsd", target_os = "openbsd"))]
pub fn session_bus_known() -> bool {
    std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some_and(|v| !v.is_empty())
        || std::env::var_os("XDG_RUNTIME_DIR")
            .is_some_and(|d| std::path::Path::new(&d).join("bus").exists())
}

#[cfg(any(target_os = "linux", target_os = "freebsd", target_os = "openbsd"))]
mod platform {
    use std::path::PathBuf;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    use dbus::blocking::Connection;
    use dbus::message::MatchRule;

    use super::{Wake, spawn_loop};

    /// dconf paths of the GNOME proxy keys.
    const DCONF_PREFIX: &str = "/system/proxy/";
    /// How long the dconf thread waits before looking at its stop flag.
    const STOP_CHECK: Duration = Duration::from_millis(500);

    /// A file's size and modification time, or nothing when it is missing.
    fn file_stamp(path: &std::path::Path) -> Option<(u64, std::time::SystemTime)> {
        let meta = std::fs::metadata(path).ok()?;
        Some((meta.len(), meta.modified().ok()?))
    }

    pub fn start(wake: &Wake, stop: &Arc<AtomicBool>) -> Vec<String> {
        let mut sources = Vec::new();
        match dconf(wake, stop) {
            Ok(()) => sources.push("dconf change signal (GNOME)".to_owned()),
            Err(e) => tracing::info!("GNOME proxy changes are polled: {e}"),
        }
        if let Some(path) = kioslaverc() {
            let wake = wake.clone();
            let mut last = file_stamp(&path);
            sources.push(format!("{} (KDE)", path.display()));
            spawn_loop("veil-watch-kde", stop, move || {
                std::thread::sleep(Duration::from_secs(1));
                let now = file_stamp(&path);
                if now != last {
                    last = now;
                    wake();
                }
                true
            });
        }
        sources
    }

    /// Subscribes to dconf's `Notify` on the session bus; the connection
    /// lives on its own thread.
    fn dconf(wake: &Wake, stop: &Arc<AtomicBool>) -> Result<(), String> {
        if !super::session_bus_known() {
            return Err("no session bus in this environment".into());
        }
        let conn = Connection::new_session().map_err(|e| e.to_string())?;
        let wake = wake.clone();
        conn.add_match(
            MatchRule::new_signal("ca.desrt.dconf.Writer", "Notify"),
            move |(prefix, changes, _tag): (String, Vec<String>, String), _, _| {
                let proxy = |p: &str| p.starts_with(DCONF_PREFIX) || DCONF_PREFIX.starts_with(p);
                if proxy(&prefix) || changes.iter().any(|c| proxy(&format!("{prefix}{c}"))) {
                    wake();
                }
                true
            },
        )
        .map_err(|e| e.to_string())?;
        spawn_loop("veil-watch-dconf", stop, move || {
            match conn.process(STOP_CHECK) {
                Ok(_) => true,
                Err(e) => {
                    tracing::warn!("the dconf change signal stopped ({e}); polling only");
                    false
                }
            }
        });
        Ok(())
    }

    /// KDE's file, when this is a KDE session.
    fn kioslaverc() -> Option<PathBuf> {
        let desktop = std::env::var("XDG_CURRENT_DESKTOP").unwrap_or_default();
        let kde = desktop
            .split(':')
            .any(|d| d.eq_ignore_ascii_case("KDE") || d.eq_ignore_ascii_case("plasma"));
        if !kde {
            return None;
        }
        let config = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
        Some(config.join("kioslaverc"))
    }
}

#[cfg(target_os = "macos")]
mod platform {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    use super::{Wake, spawn_loop};

    /// `networksetup` takes a moment per service: a few seconds apart.
    const EVERY: Duration = Duration::from_secs(5);

    pub fn start(wake: &Wake, stop: &Arc<AtomicBool>) -> Vec<String> {
        let wake = wake.clone();
        spawn_loop("veil-watch-macos", stop, move || {
            std::thread::sleep(EVERY);
            wake();
            true
        });
        vec![format!("networksetup every {} s", EVERY.as_secs())]
    }
}

#[cfg(target_os = "windows")]
mod platform {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    use super::Wake;

    pub fn start(wake: &Wake, stop: &Arc<AtomicBool>) -> Vec<String> {
        match super::super::windows::watch_key::start(wake.clone(), stop.clone()) {
            Ok(()) => vec!["registry change notification (Internet Settings)".to_owned()],
            Err(e) => {
                tracing::info!("Windows proxy changes are polled: {e}");
                Vec::new()
            }
        }
    }
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "freebsd",
    target_os = "openbsd",
    target_os = "macos",
    target_os = "windows"
)))]
mod platform {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    use super::Wake;

    pub fn start(_wake: &Wake, _stop: &Arc<AtomicBool>) -> Vec<String> {
        Vec::new()
    }
}
