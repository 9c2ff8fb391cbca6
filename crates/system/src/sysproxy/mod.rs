//! The operating system's proxy setting, changed so that the user always gets
//! back exactly what they had.
//!
//! Each desktop's settings are read and written by a [`Backend`]: GNOME
//! (`gsettings`, which most Linux apps and Firefox read) and KDE
//! (`kwriteconfig` on `kioslaverc`, plus gsettings) on Linux; WinINet's
//! values in the registry on Windows; `networksetup` on macOS.
//! A backend deals in [`Settings`]: raw key/value pairs in the platform's own
//! notation, so that what is saved is what is put back, byte for byte.
//!
//! [`SystemProxyGuard`] owns the change: it saves the user's settings in a
//! guard file before touching anything, checks that the OS took Veil's
//! settings, and restores on `off`, on exit, or, after a crash, at the next
//! start ([`recover`]).

mod bypass;
mod guard;
pub mod login_task;
mod owner;
mod state;
pub mod watch;

#[cfg(any(target_os = "linux", target_os = "freebsd", target_os = "openbsd"))]
mod gnome;
#[cfg(any(target_os = "linux", target_os = "freebsd", target_os = "openbsd"))]
mod kde;
// Compiled in Unix tests too: they drive it against a fake `networksetup`.
#[cfg(any(target_os = "macos", all(test, unix)))]
mod macos;
// Built for tests everywhere: its logic runs against an in-memory registry.
#[cfg(any(target_os = "windows", test))]
mod windows;

mod command;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

pub use guard::{Drifted, GuardFile, Recovery, SystemProxyGuard, guard_path, recover, status};
pub use owner::Owner;
pub use state::{BackendStatus, ProxyState, SettingRow, SystemProxyStatus};

/// One backend's settings: key to value in the platform's notation (GVariant
/// text for gsettings, the file's text for `kioslaverc`). `None` is a key
/// that is not set at all, which is restored by removing it again.
pub type Settings = BTreeMap<String, Option<String>>;

/// How apps reach Veil when it sets the system proxy (`[proxy]
/// apps_reach`).
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppsReach {
    /// A fixed proxy (HTTP, HTTPS and SOCKS at Veil's listener).
    #[default]
    Manual,
    /// Veil's PAC file (`/proxy.pac`): the bypass list and rules decide in
    /// the app; with Veil gone, apps fail rather than go around it.
    Pac,
    /// The PAC file with `DIRECT` as the fallback: apps stay online when
    /// Veil is not running, trading privacy for availability.
    PacFailOpen,
}

impl AppsReach {
    pub fn is_manual(&self) -> bool {
        *self == AppsReach::Manual
    }

    /// The value as `config.toml` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            AppsReach::Manual => "manual",
            AppsReach::Pac => "pac",
            AppsReach::PacFailOpen => "pac_fail_open",
        }
    }
}

/// What Veil points the OS at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VeilProxy {
    /// The mixed listener: HTTP, HTTPS (CONNECT) and SOCKS all go here.
    pub listen: SocketAddr,
    /// Hosts, `*.suffixes` and CIDRs that go direct (`[proxy] bypass`).
    pub bypass: Vec<String>,
    /// A fixed proxy, or Veil's PAC URL.
    pub reach: AppsReach,
}

impl VeilProxy {
    /// Veil's PAC URL when apps reach it through the PAC file.
    pub fn pac_url(&self) -> Option<String> {
        let base = self.pac_base();
        match self.reach {
            AppsReach::Manual => None,
            AppsReach::Pac => Some(base),
            AppsReach::PacFailOpen => Some(format!("{base}?fail-open")),
        }
    }

    /// `http://127.0.0.1:7890/proxy.pac`, which both PAC variants start with.
    pub fn pac_base(&self) -> String {
        format!(
            "http://{}{}",
            self.client_addr(),
            veil_engine::inbound::pac::PATH
        )
    }

    /// The address clients dial: a wildcard listener is reached on loopback.
    pub fn client_addr(&self) -> SocketAddr {
        loopback_if_unspecified(self.listen)
    }

    /// The host part as a proxy setting wants it (IPv6 without brackets).
    pub fn host(&self) -> String {
        self.client_addr().ip().to_string()
    }

    pub fn port(&self) -> u16 {
        self.client_addr().port()
    }
}

/// The address a client dials for a listener on `addr`: a wildcard
/// listener is reached on loopback.
pub fn loopback_if_unspecified(mut addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    addr
}

/// Reads and writes one desktop's proxy settings.
pub trait Backend: Send + Sync {
    /// Short name saved in the guard file (`gnome`, `kde`, `windows`, `macos`).
    fn name(&self) -> &'static str;
    /// Every setting Veil changes or shows, as the OS has it now.
    fn read(&self) -> Result<Settings, SysProxyError>;
    /// The settings of what this desktop gained since `saved` was read (a
    /// network service that appeared while Veil was on), as they are now.
    /// The guard saves them before pointing them at Veil. Desktops with a
    /// fixed set of keys gain nothing.
    fn read_new(&self, saved: &Settings) -> Result<Settings, SysProxyError> {
        let _ = saved;
        Ok(Settings::new())
    }
    /// Writes these keys; keys not named are left alone.
    fn write(&self, settings: &Settings) -> Result<(), SysProxyError>;
    /// The settings that point this desktop at Veil.
    fn veil_settings(&self, proxy: &VeilProxy) -> Settings;
    /// A summary of `settings` in words the user knows.
    fn describe(&self, settings: &Settings) -> ProxyState;
    /// The first key of `wanted` that `found` does not match.
    fn mismatch(&self, wanted: &Settings, found: &Settings) -> Option<Mismatch> {
        first_mismatch(wanted, found)
    }
    /// Keys `read` reports only for the user to see (another program's
    /// setting): the guard never writes them back nor checks them.
    fn read_only_keys(&self) -> &'static [&'static str] {
        &[]
    }
}

/// The first key of `wanted` whose value `found` does not have.
pub(super) fn first_mismatch(wanted: &Settings, found: &Settings) -> Option<Mismatch> {
    wanted.iter().find_map(|(key, value)| {
        let got = found.get(key).cloned().flatten();
        (got != *value).then(|| Mismatch {
            key: key.clone(),
            expected: value.clone(),
            found: got,
        })
    })
}

/// A setting the OS did not take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub key: String,
    pub expected: Option<String>,
    pub found: Option<String>,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(not set)".into());
        write!(
            f,
            "{} reads back as {}, expected {}",
            self.key,
            show(&self.found),
            show(&self.expected)
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SysProxyError {
    #[error("{tool} is not installed or not on PATH; {hint}")]
    ToolMissing {
        tool: &'static str,
        hint: &'static str,
    },
    #[error("`{command}` failed: {detail}")]
    Tool { command: String, detail: String },
    #[error("{backend}: the OS did not take the proxy settings: {mismatch}")]
    NotTaken {
        backend: &'static str,
        mismatch: Mismatch,
    },
    #[error("guard file {path}: {source}")]
    GuardIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "guard file {path} cannot be read ({message}); it is left in place. Check your proxy \
         settings by hand, then delete it"
    )]
    GuardCorrupt { path: PathBuf, message: String },
    #[error(
        "another Veil (pid {pid}) has the system proxy on; turn it off there (`veil sysproxy off` \
         or the app's switch) first"
    )]
    OwnedByOther { pid: u32 },
    #[error(
        "{backend}: the system proxy already points at Veil ({addr}), so Veil cannot save it as \
         your own setting to put back later (an earlier Veil left it, or it was set by hand). \
         Set the proxy you want without Veil (or none) in your system settings, then turn Veil \
         on again"
    )]
    AlreadyVeil { backend: &'static str, addr: String },
    #[error("the guard file names a backend this Veil does not know: {0:?}")]
    UnknownBackend(String),
    #[error("no supported desktop found: {0}")]
    Unsupported(String),
    #[error("{failure}; putting back your previous settings failed too: {restore}")]
    RollbackFailed { failure: String, restore: String },
}

/// The backends for this desktop, in the order they are written.
pub fn detect_backends() -> Result<Vec<Box<dyn Backend>>, SysProxyError> {
    platform_backends()
}

/// The backend saved in a guard file under `name`.
pub fn backend_named(name: &str) -> Result<Box<dyn Backend>, SysProxyError> {
    named_backend(name).ok_or_else(|| SysProxyError::UnknownBackend(name.to_owned()))
}

#[cfg(any(target_os = "linux", target_os = "freebsd", target_os = "openbsd"))]
fn platform_backends() -> Result<Vec<Box<dyn Backend>>, SysProxyError> {
    let desktop = std::env::var("XDG_CURRENT_DESKTOP").unwrap_or_default();
    let is_kde = desktop
        .split(':')
        .any(|d| d.eq_ignore_ascii_case("KDE") || d.eq_ignore_ascii_case("plasma"));
    if !is_kde {
        return Ok(vec![Box::new(gnome::Gnome)]);
    }
    // On KDE, Firefox and GTK apps still read gsettings, so both are set when
    // gsettings exists; KDE without it still gets its own setting.
    let kde = kde::Kde::find()?;
    let mut backends: Vec<Box<dyn Backend>> = vec![Box::new(kde)];
    if command::on_path("gsettings") {
        backends.push(Box::new(gnome::Gnome));
    }
    Ok(backends)
}

#[cfg(any(target_os = "linux", target_os = "freebsd", target_os = "openbsd"))]
fn named_backend(name: &str) -> Option<Box<dyn Backend>> {
    match name {
        "gnome" => Some(Box::new(gnome::Gnome)),
        "kde" => kde::Kde::find()
            .ok()
            .map(|k| Box::new(k) as Box<dyn Backend>),
        _ => None,
    }
}

#[cfg(target_os = "windows")]
fn platform_backends() -> Result<Vec<Box<dyn Backend>>, SysProxyError> {
    Ok(vec![Box::new(windows::WindowsProxy::system())])
}

#[cfg(target_os = "windows")]
fn named_backend(name: &str) -> Option<Box<dyn Backend>> {
    (name == "windows").then(|| Box::new(windows::WindowsProxy::system()) as Box<dyn Backend>)
}

#[cfg(target_os = "macos")]
fn platform_backends() -> Result<Vec<Box<dyn Backend>>, SysProxyError> {
    Ok(vec![Box::new(macos::MacProxy::find()?)])
}

#[cfg(target_os = "macos")]
fn named_backend(name: &str) -> Option<Box<dyn Backend>> {
    if name == "macos" {
        macos::MacProxy::find()
            .ok()
            .map(|m| Box::new(m) as Box<dyn Backend>)
    } else {
        None
    }
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "freebsd",
    target_os = "openbsd",
    target_os = "windows",
    target_os = "macos"
)))]
fn platform_backends() -> Result<Vec<Box<dyn Backend>>, SysProxyError> {
    Err(SysProxyError::Unsupported(
        "Veil cannot set the system proxy on this platform; use `veil env`".into(),
    ))
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "freebsd",
    target_os = "openbsd",
    target_os = "windows",
    target_os = "macos"
)))]
fn named_backend(_name: &str) -> Option<Box<dyn Backend>> {
    None
}

/// `*.example.com` → `.example.com`: the suffix form that KDE, curl and most
/// `no_proxy` readers understand. Other entries pass through.
pub fn suffix_form(entry: &str) -> String {
    match entry.strip_prefix("*.") {
        Some(rest) => format!(".{rest}"),
        None => entry.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_listeners_are_reached_on_loopback() {
        let p = VeilProxy {
            listen: "0.0.0.0:7890".parse().expect("addr"),
            bypass: vec![],
            reach: AppsReach::Manual,
        };
        assert_eq!(p.host(), "127.0.0.1");
        let p = VeilProxy {
            listen: "[::]:7890".parse().expect("addr"),
            bypass: vec![],
            reach: AppsReach::Pac,
        };
        assert_eq!(p.pac_url().as_deref(), Some("http://[::1]:7890/proxy.pac"));
        assert_eq!(p.host(), "::1");
        assert_eq!(p.port(), 7890);
    }

    #[test]
    fn suffixes() {
        assert_eq!(suffix_form("*.local"), ".local");
        assert_eq!(suffix_form("10.0.0.0/8"), "10.0.0.0/8");
    }
}
