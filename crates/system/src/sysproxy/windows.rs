//! Windows: WinINet's per-user proxy setting (what Edge, Chrome and most
//! apps read), in the registry under `HKCU\...\Internet Settings`.
//!
//! Every value that decides where a browser goes is saved exactly (type
//! and bytes) and put back exactly: the `ProxyEnable` switch, the server
//! (`ProxyServer`, which may be one `host:port` or a per-protocol list such
//! as `http=a:1;https=b:2;socks=c:3`), the bypass list (`ProxyOverride`),
//! the PAC URL (`AutoConfigURL`) and the `DefaultConnectionSettings` blob,
//! which holds the auto-detect (WPAD) switch. A value that did not exist is
//! saved as not set and deleted again on restore.
//!
//! Turning Veil on also removes the PAC URL and switches auto-detect off:
//! WinINet tries both before a fixed proxy, so with either left on browsers
//! would keep going around Veil while the check said "on".
//!
//! WinHTTP's machine-wide setting, which services use, is reported (key
//! `winhttp`) when it differs from the user's, and never written: it needs
//! administrator rights and is not the user's desktop setting.
//!
//! The registry is reached through [`Registry`], so all of this runs and is
//! tested on any OS against an in-memory fake; only `win32` talks to
//! Windows.

mod connection;
mod registry;
mod value;
#[cfg(windows)]
pub(super) mod watch_key;
#[cfg(windows)]
mod win32;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use connection::{
    ConnectionSettings, FLAG_AUTO_DETECT, FLAG_AUTO_PROXY_URL, FLAG_DIRECT, FLAG_PROXY,
};
use registry::{Key, Registry, RegistryError, WinHttp};
use value::{Expected, RegValue};

/// For the login-time repair's `Run` value (`login_task.rs`).
#[cfg(windows)]
pub(super) mod run_key {
    pub use super::registry::{Key, Registry};
    pub use super::value::RegValue;
    pub use super::win32::SystemRegistry;
}

use super::bypass::windows_override;
use super::{Backend, Mismatch, ProxyState, Settings, SysProxyError, VeilProxy};

const PROXY_ENABLE: &str = "ProxyEnable";
const PROXY_SERVER: &str = "ProxyServer";
const PROXY_OVERRIDE: &str = "ProxyOverride";
const AUTO_CONFIG_URL: &str = "AutoConfigURL";
/// Under `Internet Settings\Connections`; saved as hex.
const CONNECTION: &str = "DefaultConnectionSettings";
/// The blob's auto-detect flag as `on`/`off` (not set when there is no
/// blob): what Veil writes and checks, while the blob itself is what a
/// restore puts back.
const AUTO_DETECT: &str = "auto-detect";
/// WinHTTP's machine setting, read only.
const WINHTTP: &str = "winhttp";

/// The plain values, in the order they are written: the switch last, so
/// nothing reads it with half-written values.
const PLAIN: [(&str, Expected); 4] = [
    (PROXY_SERVER, Expected::Sz),
    (PROXY_OVERRIDE, Expected::Sz),
    (AUTO_CONFIG_URL, Expected::Sz),
    (PROXY_ENABLE, Expected::Dword),
];

pub struct WindowsProxy {
    registry: Arc<dyn Registry>,
}

impl WindowsProxy {
    /// The current user's setting.
    #[cfg(windows)]
    pub fn system() -> Self {
        Self::new(Arc::new(win32::SystemRegistry))
    }

    fn new(registry: Arc<dyn Registry>) -> Self {
        Self { registry }
    }

    fn get(&self, key: Key, name: &str) -> Result<Option<RegValue>, SysProxyError> {
        self.registry.get(key, name).map_err(registry_error)
    }

    /// Writes a saved blob back as it was but for the change counter, which
    /// moves on from the one there now as with every write Windows makes
    /// (WinINet counts its changes there), rather than going back.
    fn put_back_connection(&self, saved: Option<&RegValue>) -> Result<(), SysProxyError> {
        let Some(saved) = saved else {
            return self
                .registry
                .delete(Key::Connections, CONNECTION)
                .map_err(registry_error);
        };
        let value = match blob(saved) {
            Some(mut conn) => {
                let now = self.get(Key::Connections, CONNECTION)?;
                let counter = now
                    .as_ref()
                    .and_then(blob)
                    .map_or(conn.counter, |c| c.counter);
                conn.counter = counter.wrapping_add(1);
                RegValue::Binary(conn.to_bytes())
            }
            // A layout Veil does not read goes back byte for byte.
            None => saved.clone(),
        };
        self.registry
            .set(Key::Connections, CONNECTION, &value)
            .map_err(registry_error)
    }

    /// Makes the blob agree with the plain values just written, with
    /// auto-detect as asked, keeping its other fields.
    fn sync_connection(&self, auto_detect: bool) -> Result<(), SysProxyError> {
        let base = match self.get(Key::Connections, CONNECTION)? {
            None => ConnectionSettings::new(),
            Some(v) => blob(&v).unwrap_or_else(|| {
                // It is in the guard file as it was, and comes back on restore.
                tracing::warn!("{CONNECTION} has a layout Veil does not know; replacing it");
                ConnectionSettings::new()
            }),
        };
        let mut plain: [Option<RegValue>; 4] = Default::default();
        for (slot, (name, _)) in plain.iter_mut().zip(PLAIN) {
            *slot = self.get(Key::InternetSettings, name)?;
        }
        let mut conn = mirrored(base, &Plain::from_values(&plain), auto_detect);
        conn.counter = conn.counter.wrapping_add(1);
        self.registry
            .set(
                Key::Connections,
                CONNECTION,
                &RegValue::Binary(conn.to_bytes()),
            )
            .map_err(registry_error)
    }

    /// WinHTTP's setting in words when it differs from the user's.
    fn winhttp_report(&self, user: &Settings) -> Option<String> {
        let winhttp = match self.registry.winhttp() {
            Ok(w) => w,
            Err(e) => {
                tracing::debug!("cannot read WinHTTP's proxy setting: {e}");
                return None;
            }
        };
        let user_server = match self.describe(user) {
            ProxyState::Manual { .. } => text(user, PROXY_SERVER),
            _ => None,
        };
        match (&winhttp, &user_server) {
            (WinHttp::Direct, None) => None,
            (WinHttp::Proxy { server, .. }, Some(user)) if server == user => None,
            (WinHttp::Direct, Some(_)) => Some(
                "direct (services using WinHTTP do not follow the user's proxy; \
                 `netsh winhttp show proxy`)"
                    .into(),
            ),
            (WinHttp::Proxy { server, bypass }, _) => Some(format!(
                "proxy {server}, bypass {}",
                bypass.as_deref().unwrap_or("none")
            )),
        }
    }
}

impl Backend for WindowsProxy {
    fn name(&self) -> &'static str {
        "windows"
    }

    fn read(&self) -> Result<Settings, SysProxyError> {
        let mut s = Settings::new();
        for (name, expected) in PLAIN {
            let value = self.get(Key::InternetSettings, name)?;
            s.insert(name.into(), value.map(|v| v.to_text(expected)));
        }
        let conn = self.get(Key::Connections, CONNECTION)?;
        s.insert(
            AUTO_DETECT.into(),
            conn.as_ref()
                .and_then(blob)
                .map(|c| on_off(c.auto_detect()).into()),
        );
        s.insert(CONNECTION.into(), conn.map(|v| v.to_text(Expected::Binary)));
        if let Some(report) = self.winhttp_report(&s) {
            s.insert(WINHTTP.into(), Some(report));
        }
        Ok(s)
    }

    fn write(&self, settings: &Settings) -> Result<(), SysProxyError> {
        // Everything is decoded before anything is written, so a value the
        // guard file cannot give back changes nothing.
        let mut plain = Vec::new();
        for (name, expected) in PLAIN {
            if let Some(text) = settings.get(name) {
                plain.push((name, decode(name, text.as_deref(), expected)?));
            }
        }
        let conn = match settings.get(CONNECTION) {
            Some(text) => Some(decode(CONNECTION, text.as_deref(), Expected::Binary)?),
            None => None,
        };
        let auto_detect = match settings.get(AUTO_DETECT).cloned().flatten().as_deref() {
            None => None,
            Some("on") => Some(true),
            Some("off") => Some(false),
            Some(other) => {
                return Err(SysProxyError::Tool {
                    command: format!("writing {AUTO_DETECT}"),
                    detail: format!("{other:?} is neither on nor off"),
                });
            }
        };
        for (name, value) in &plain {
            match value {
                Some(v) => self.registry.set(Key::InternetSettings, name, v),
                None => self.registry.delete(Key::InternetSettings, name),
            }
            .map_err(registry_error)?;
        }
        // A saved blob goes back as it was (auto-detect is part of it);
        // otherwise Veil's own setting brings the blob in line.
        match (conn, auto_detect) {
            (Some(saved), _) => self.put_back_connection(saved.as_ref())?,
            (None, Some(on)) => self.sync_connection(on)?,
            (None, None) => {}
        }
        // Programs started later read the registry anyway, so a failed
        // notification is not a failed write.
        if let Err(e) = self.registry.notify() {
            tracing::warn!("could not tell running programs about the new proxy setting: {e}");
        }
        Ok(())
    }

    fn veil_settings(&self, proxy: &VeilProxy) -> Settings {
        if let Some(url) = proxy.pac_url() {
            // WinINet tries the PAC URL first; the fixed proxy is off so a
            // failed fetch does not fall back to a stale server.
            return [
                (PROXY_ENABLE, Some("0".to_owned())),
                (AUTO_CONFIG_URL, Some(url)),
                (AUTO_DETECT, Some(on_off(false).to_owned())),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        }
        [
            (PROXY_ENABLE, Some("1".to_owned())),
            // `SocketAddr` brackets an IPv6 host (`[::1]:7890`), as WinINet wants.
            (PROXY_SERVER, Some(proxy.client_addr().to_string())),
            (PROXY_OVERRIDE, Some(windows_override(&proxy.bypass))),
            (AUTO_CONFIG_URL, None),
            (AUTO_DETECT, Some(on_off(false).to_owned())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// WinINet's order: a PAC URL first, then auto-detect, then the server.
    fn describe(&self, s: &Settings) -> ProxyState {
        let value = |name: &str, expected| {
            text(s, name).and_then(|t| RegValue::from_text(&t, expected).ok())
        };
        let pac = value(AUTO_CONFIG_URL, Expected::Sz)
            .and_then(|v| v.as_str().map(str::to_owned))
            .filter(|u| !u.is_empty());
        if pac.is_some() {
            return ProxyState::Auto { pac_url: pac };
        }
        if text(s, AUTO_DETECT).as_deref() == Some("on") {
            return ProxyState::Auto { pac_url: None };
        }
        if !enabled(value(PROXY_ENABLE, Expected::Dword).as_ref()) {
            return ProxyState::Off;
        }
        let server = value(PROXY_SERVER, Expected::Sz)
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let bypass = value(PROXY_OVERRIDE, Expected::Sz)
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        manual(&server, &bypass)
    }

    fn mismatch(&self, wanted: &Settings, found: &Settings) -> Option<Mismatch> {
        let differs = wanted
            .iter()
            .filter(|(key, _)| key.as_str() != WINHTTP)
            .find_map(|(key, want)| {
                let got = found.get(key).cloned().flatten();
                let same = if key == CONNECTION {
                    same_blob(want.as_deref(), got.as_deref())
                } else {
                    *want == got
                };
                (!same).then(|| Mismatch {
                    key: key.clone(),
                    expected: want.clone(),
                    found: got,
                })
            });
        if differs.is_some() {
            return differs;
        }
        // Veil's own write also rewrote the blob from the plain values:
        // check that it says the same, or browsers would not follow them.
        match (wanted.contains_key(CONNECTION), text(wanted, AUTO_DETECT)) {
            (false, Some(auto_detect)) => blob_mismatch(found, auto_detect == "on"),
            _ => None,
        }
    }

    fn read_only_keys(&self) -> &'static [&'static str] {
        &[WINHTTP]
    }
}

/// The plain values the blob mirrors.
struct Plain<'a> {
    enable: Option<&'a RegValue>,
    server: Option<&'a RegValue>,
    bypass: Option<&'a RegValue>,
    pac: Option<&'a RegValue>,
}

impl<'a> Plain<'a> {
    fn from_values(values: &'a [Option<RegValue>; 4]) -> Self {
        let [server, bypass, pac, enable] = values;
        Self {
            enable: enable.as_ref(),
            server: server.as_ref(),
            bypass: bypass.as_ref(),
            pac: pac.as_ref(),
        }
    }
}

/// `base` with its modes and strings set from the plain values, as Windows'
/// own settings page writes them.
fn mirrored(
    mut base: ConnectionSettings,
    plain: &Plain<'_>,
    auto_detect: bool,
) -> ConnectionSettings {
    let bytes = |v: Option<&RegValue>| {
        v.and_then(RegValue::as_str)
            .map(|s| s.as_bytes().to_vec())
            .unwrap_or_default()
    };
    base.proxy = bytes(plain.server);
    base.bypass = bytes(plain.bypass);
    base.pac_url = bytes(plain.pac);
    let mut modes = FLAG_DIRECT;
    if enabled(plain.enable) {
        modes |= FLAG_PROXY;
    }
    if !base.pac_url.is_empty() {
        modes |= FLAG_AUTO_PROXY_URL;
    }
    if auto_detect {
        modes |= FLAG_AUTO_DETECT;
    }
    base.set_modes(modes);
    base
}

/// Where the blob in `found` disagrees with the plain values in `found`.
fn blob_mismatch(found: &Settings, auto_detect: bool) -> Option<Mismatch> {
    let values = PLAIN.map(|(name, expected)| {
        text(found, name).and_then(|t| RegValue::from_text(&t, expected).ok())
    });
    let now = text(found, CONNECTION)
        .and_then(|t| RegValue::from_text(&t, Expected::Binary).ok())
        .as_ref()
        .and_then(blob);
    let want = mirrored(
        now.clone().unwrap_or_else(ConnectionSettings::new),
        &Plain::from_values(&values),
        auto_detect,
    );
    match now {
        Some(now) if now.same_settings(&want) => None,
        now => Some(Mismatch {
            key: CONNECTION.into(),
            expected: Some(summary(&want)),
            found: now.as_ref().map(summary),
        }),
    }
}

fn summary(c: &ConnectionSettings) -> String {
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    format!(
        "flags {:#04x}, proxy {:?}, bypass {:?}, PAC {:?}",
        c.modes(),
        s(&c.proxy),
        s(&c.bypass),
        s(&c.pac_url)
    )
}

/// Two saved blobs hold the same setting (the change counter aside).
fn same_blob(a: Option<&str>, b: Option<&str>) -> bool {
    let parse = |t: &str| {
        RegValue::from_text(t, Expected::Binary)
            .ok()
            .as_ref()
            .and_then(blob)
    };
    match (a, b) {
        (Some(a), Some(b)) => match (parse(a), parse(b)) {
            (Some(a), Some(b)) => a.same_settings(&b),
            _ => a == b,
        },
        (a, b) => a == b,
    }
}

fn blob(value: &RegValue) -> Option<ConnectionSettings> {
    match value {
        RegValue::Binary(data) => ConnectionSettings::parse(data),
        _ => None,
    }
}

/// `ProxyEnable` as WinINet reads it: any nonzero DWORD.
fn enabled(value: Option<&RegValue>) -> bool {
    matches!(value, Some(RegValue::Dword(n)) if *n != 0)
}

/// A manual setting: one server for every protocol but SOCKS, or a
/// per-protocol list (`http=a:1;https=b:2;socks=c:3`).
fn manual(server: &str, bypass: &str) -> ProxyState {
    let list = |s: &str| -> Vec<String> {
        s.split([';', ' '])
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let (mut http, mut https, mut socks) = (None, None, None);
    if server.contains('=') {
        for entry in list(server) {
            if let Some((scheme, addr)) = entry.split_once('=') {
                let slot = match scheme.trim().to_ascii_lowercase().as_str() {
                    "http" => &mut http,
                    "https" => &mut https,
                    "socks" => &mut socks,
                    _ => continue,
                };
                *slot = Some(addr.trim().to_owned());
            }
        }
    } else if !server.trim().is_empty() {
        http = Some(server.trim().to_owned());
        https = http.clone();
    }
    ProxyState::Manual {
        http,
        https,
        socks,
        bypass: list(bypass),
    }
}

fn decode(
    name: &str,
    text: Option<&str>,
    expected: Expected,
) -> Result<Option<RegValue>, SysProxyError> {
    text.map(|t| RegValue::from_text(t, expected))
        .transpose()
        .map_err(|detail| SysProxyError::Tool {
            command: format!("writing {name}"),
            detail,
        })
}

fn text(s: &Settings, key: &str) -> Option<String> {
    s.get(key).cloned().flatten()
}

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

fn registry_error(e: RegistryError) -> SysProxyError {
    SysProxyError::Tool {
        command: format!("{} HKCU\\{}\\{}", e.action, e.path, e.name),
        detail: e.detail,
    }
}
