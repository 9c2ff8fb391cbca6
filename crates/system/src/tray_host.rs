//! Whether the desktop shows tray icons at all. A Linux tray icon is a
//! StatusNotifierItem, drawn only when a StatusNotifierWatcher owns its name
//! on the session bus (KDE, most other desktops; GNOME only with an
//! AppIndicator extension). Without one, an app that hides in the tray
//! leaves nothing on screen to bring it back, so the app asks first.

/// The names a watcher takes (the KDE name is the one every host uses; the
/// freedesktop one is the specification's draft name).
#[cfg(any(target_os = "linux", target_os = "freebsd", target_os = "openbsd"))]
const WATCHERS: [&str; 2] = [
    "org.kde.StatusNotifierWatcher",
    "org.freedesktop.StatusNotifierWatcher",
];

/// `true` when a tray icon would be shown. Windows and macOS always have
/// one (the notification area, the menu bar).
pub fn available() -> bool {
    #[cfg(any(target_os = "linux", target_os = "freebsd", target_os = "openbsd"))]
    {
        use dbus::blocking::Connection;
        use std::time::Duration;
        let Ok(conn) = Connection::new_session() else {
            return false;
        };
        let bus = conn.with_proxy(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            Duration::from_secs(2),
        );
        WATCHERS.iter().any(|name| {
            let owned: Result<(bool,), _> =
                bus.method_call("org.freedesktop.DBus", "NameHasOwner", (*name,));
            matches!(owned, Ok((true,)))
        })
    }
    #[cfg(not(any(target_os = "linux", target_os = "freebsd", target_os = "openbsd")))]
    {
        true
    }
}
