//! The system proxy setting summarised for people, and the report behind
//! `veil sysproxy status`.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::Settings;

/// A desktop's proxy setting in the user's words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum ProxyState {
    /// No proxy: apps connect directly.
    Off,
    /// Fixed proxies per protocol, and hosts that bypass them.
    Manual {
        http: Option<String>,
        https: Option<String>,
        socks: Option<String>,
        bypass: Vec<String>,
    },
    /// A PAC script (`pac_url`), or discovery (WPAD) when there is none.
    Auto {
        pac_url: Option<String>,
    },
    Other {
        detail: String,
    },
}

impl fmt::Display for ProxyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyState::Off => write!(f, "off (direct)"),
            ProxyState::Manual {
                http,
                https,
                socks,
                bypass,
            } => {
                let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
                write!(
                    f,
                    "manual: http {}, https {}, socks {}; bypass {}",
                    show(http),
                    show(https),
                    show(socks),
                    if bypass.is_empty() {
                        "none".to_owned()
                    } else {
                        bypass.join(", ")
                    }
                )
            }
            ProxyState::Auto { pac_url: Some(url) } => write!(f, "automatic, PAC {url}"),
            ProxyState::Auto { pac_url: None } => write!(f, "automatic (discovery)"),
            ProxyState::Other { detail } => write!(f, "{detail}"),
        }
    }
}

impl ProxyState {
    /// The state as labelled fields (mode, http, https, socks, bypass,
    /// PAC), `-` where a field does not apply: one row each in `veil
    /// sysproxy status` and the Overview's comparison.
    pub fn fields(state: Option<&ProxyState>) -> Vec<(&'static str, String)> {
        let dash = || "-".to_owned();
        let show = |v: &Option<String>| v.clone().unwrap_or_else(dash);
        let (mode, http, https, socks, bypass, pac) = match state {
            None => (dash(), dash(), dash(), dash(), dash(), dash()),
            Some(ProxyState::Off) => ("off".into(), dash(), dash(), dash(), dash(), dash()),
            Some(ProxyState::Manual {
                http,
                https,
                socks,
                bypass,
            }) => (
                "manual".into(),
                show(http),
                show(https),
                show(socks),
                if bypass.is_empty() {
                    dash()
                } else {
                    bypass.join(",")
                },
                dash(),
            ),
            Some(ProxyState::Auto { pac_url }) => (
                "auto".into(),
                dash(),
                dash(),
                dash(),
                dash(),
                pac_url.clone().unwrap_or_else(|| "(discovery)".into()),
            ),
            Some(ProxyState::Other { detail }) => {
                (detail.clone(), dash(), dash(), dash(), dash(), dash())
            }
        };
        vec![
            ("mode", mode),
            ("http", http),
            ("https", https),
            ("socks", socks),
            ("bypass", bypass),
            ("PAC", pac),
        ]
    }
}

/// One field of one backend: what the OS has now beside the user's own
/// setting that Veil saved (the Overview's comparison).
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingRow {
    pub backend: String,
    pub field: String,
    pub now: String,
    /// `None` when Veil has saved nothing (it has not changed the setting).
    pub saved: Option<String>,
}

impl SystemProxyStatus {
    /// Every field of every backend, now and saved.
    pub fn rows(&self) -> Vec<SettingRow> {
        self.backends
            .iter()
            .flat_map(|b| {
                let saved = b.saved.as_ref().map(|s| ProxyState::fields(Some(s)));
                ProxyState::fields(b.current.as_ref())
                    .into_iter()
                    .enumerate()
                    .map(move |(i, (field, now))| SettingRow {
                        backend: b.backend.clone(),
                        field: field.to_owned(),
                        now,
                        saved: saved.as_ref().map(|s| s[i].1.clone()),
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

/// One desktop backend: what the OS has now and what Veil saved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendStatus {
    pub backend: String,
    /// `None` when the settings could not be read (see `error`).
    pub current: Option<ProxyState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The user's own settings, saved before Veil changed them.
    pub saved: Option<ProxyState>,
    #[serde(default)]
    pub current_values: Settings,
    #[serde(default)]
    pub saved_values: Settings,
}

/// `veil sysproxy status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemProxyStatus {
    /// Whether a Veil has the system proxy on (a guard file whose owner runs).
    pub on: bool,
    /// The process that saved the settings, from the guard file.
    pub owner_pid: Option<u32>,
    /// A guard file is there but its owner is gone: a crash left Veil's
    /// settings in place, and `veil sysproxy restore` puts the user's back.
    pub stale: bool,
    /// Where Veil pointed the OS, from the guard file.
    pub proxy: Option<String>,
    pub backends: Vec<BackendStatus>,
}
