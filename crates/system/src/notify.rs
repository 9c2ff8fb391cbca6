//! Desktop notifications with buttons, for what the user must decide at
//! once (the system proxy changed under Veil): `org.freedesktop.
//! Notifications` on the session bus (GNOME, KDE and most Linux desktops),
//! which both `veil run` and the app can reach. A choice comes back as the
//! action's key through the `ActionInvoked` signal.
//!
//! Elsewhere, or without a notification server, there is no notifier and
//! the alert in the window, the tray and `veil status` carries the news
//! alone.

use std::sync::Arc;

/// One notification: a title, a sentence, and buttons as (key, label).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub summary: String,
    pub body: String,
    pub actions: Vec<(String, String)>,
}

/// Called with an action's key when the user presses its button.
pub type OnAction = Arc<dyn Fn(String) + Send + Sync>;

#[cfg_attr(
    not(any(target_os = "linux", target_os = "freebsd", target_os = "openbsd")),
    allow(dead_code)
)]
enum Command {
    Show(Notice),
    Close,
}

/// Shows one notification at a time (a new one replaces the last); its
/// thread ends when this is dropped.
pub struct Notifier {
    commands: std::sync::mpsc::Sender<Command>,
}

impl Notifier {
    /// `None` when this platform or session has no notification service.
    pub fn start(on_action: OnAction) -> Option<Self> {
        match platform::start(on_action) {
            Ok(commands) => Some(Self { commands }),
            Err(e) => {
                tracing::info!("no desktop notifications: {e}");
                None
            }
        }
    }

    pub fn show(&self, notice: Notice) {
        let _ = self.commands.send(Command::Show(notice));
    }

    /// Takes the shown notification away (the question answered itself).
    pub fn close(&self) {
        let _ = self.commands.send(Command::Close);
    }
}

#[cfg(any(target_os = "linux", target_os = "freebsd", target_os = "openbsd"))]
mod platform {
    use std::sync::mpsc::{self, TryRecvError};
    use std::time::Duration;

    use dbus::arg::PropMap;
    use dbus::blocking::Connection;
    use dbus::message::MatchRule;

    use super::{Command, Notice, OnAction};

    const NAME: &str = "org.freedesktop.Notifications";
    const PATH: &str = "/org/freedesktop/Notifications";
    const CALL_TIMEOUT: Duration = Duration::from_secs(5);

    pub fn start(on_action: OnAction) -> Result<mpsc::Sender<Command>, String> {
        if !crate::sysproxy::watch::session_bus_known() {
            return Err("no session bus in this environment".into());
        }
        let conn = Connection::new_session().map_err(|e| format!("no session bus: {e}"))?;
        let (tx, rx) = mpsc::channel();
        // The id of the notification shown now: its buttons are the only
        // ones that count.
        let shown = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let current = shown.clone();
        conn.add_match(
            MatchRule::new_signal(NAME, "ActionInvoked"),
            move |(id, key): (u32, String), _, _| {
                if id != 0 && id == current.load(std::sync::atomic::Ordering::SeqCst) {
                    on_action(key);
                }
                true
            },
        )
        .map_err(|e| format!("listening for notification buttons: {e}"))?;
        std::thread::Builder::new()
            .name("veil-notify".into())
            .spawn(move || {
                loop {
                    match rx.try_recv() {
                        Ok(Command::Show(notice)) => {
                            let replaces = shown.load(std::sync::atomic::Ordering::SeqCst);
                            match notify(&conn, replaces, &notice) {
                                Ok(id) => shown.store(id, std::sync::atomic::Ordering::SeqCst),
                                Err(e) => tracing::warn!("desktop notification not shown: {e}"),
                            }
                            continue;
                        }
                        Ok(Command::Close) => {
                            let id = shown.swap(0, std::sync::atomic::Ordering::SeqCst);
                            if id != 0 {
                                let proxy = conn.with_proxy(NAME, PATH, CALL_TIMEOUT);
                                let closed: Result<(), _> =
                                    proxy.method_call(NAME, "CloseNotification", (id,));
                                if let Err(e) = closed {
                                    tracing::debug!("closing notification {id}: {e}");
                                }
                            }
                            continue;
                        }
                        Err(TryRecvError::Disconnected) => return,
                        Err(TryRecvError::Empty) => {}
                    }
                    if let Err(e) = conn.process(Duration::from_millis(100)) {
                        tracing::warn!("desktop notifications stopped: {e}");
                        return;
                    }
                }
            })
            .map_err(|e| format!("starting the notification thread: {e}"))?;
        Ok(tx)
    }

    fn notify(conn: &Connection, replaces: u32, notice: &Notice) -> Result<u32, dbus::Error> {
        let actions: Vec<&str> = notice
            .actions
            .iter()
            .flat_map(|(key, label)| [key.as_str(), label.as_str()])
            .collect();
        let mut hints = PropMap::new();
        // Stays until answered, where the server honours it.
        hints.insert("resident".into(), dbus::arg::Variant(Box::new(true)));
        hints.insert("urgency".into(), dbus::arg::Variant(Box::new(2u8)));
        let proxy = conn.with_proxy(NAME, PATH, CALL_TIMEOUT);
        let (id,): (u32,) = proxy.method_call(
            NAME,
            "Notify",
            (
                "Veil",
                replaces,
                "network-error",
                notice.summary.as_str(),
                notice.body.as_str(),
                actions,
                hints,
                0i32,
            ),
        )?;
        Ok(id)
    }
}

#[cfg(not(any(target_os = "linux", target_os = "freebsd", target_os = "openbsd")))]
mod platform {
    use super::{Command, OnAction};

    pub fn start(_on_action: OnAction) -> Result<std::sync::mpsc::Sender<Command>, String> {
        Err("not on this platform yet (the alert in the window and tray shows it)".into())
    }
}
