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
