//! Windows: the WinINet proxy setting in the registry (what Edge, Chrome and
//! most apps read), through the `sysproxy` crate.
//!
//! `sysproxy` knows one server for all protocols, a bypass string and an
//! on/off flag, and returns Ok even when a write did nothing; the guard reads
//! every write back. A setting it cannot read (a per-protocol server list
//! such as `http=a:1;https=b:2`) makes Veil refuse to turn on rather than
//! lose it. An account where no proxy was ever set has no server value at
//! all; that is saved as "off", and restored as off.

use sysproxy::Sysproxy;

use super::bypass::windows_override;
use super::{Backend, Mismatch, ProxyState, Settings, SysProxyError, VeilProxy, first_mismatch};

pub struct WindowsProxy;

fn tool_error(action: &str, e: sysproxy::Error) -> SysProxyError {
    SysProxyError::Tool {
        command: format!("sysproxy {action} (registry Internet Settings)"),
        detail: e.to_string(),
    }
}

impl Backend for WindowsProxy {
    fn name(&self) -> &'static str {
        "windows"
    }

    fn read(&self) -> Result<Settings, SysProxyError> {
        let mut s = Settings::new();
        match Sysproxy::get_system_proxy() {
            Ok(p) => {
                s.insert("enable".into(), Some(p.enable.to_string()));
                s.insert("server".into(), Some(format!("{}:{}", p.host, p.port)));
                s.insert("bypass".into(), Some(p.bypass));
            }
            Err(sysproxy::Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                s.insert("enable".into(), Some("false".into()));
                s.insert("server".into(), None);
                s.insert("bypass".into(), None);
            }
            Err(e) => return Err(tool_error("read", e)),
        }
        Ok(s)
    }

    fn write(&self, s: &Settings) -> Result<(), SysProxyError> {
        let get = |k: &str| s.get(k).cloned().flatten();
        // A missing server is written as an unusable one, with the proxy off.
        let server = get("server").unwrap_or_else(|| "127.0.0.1:0".into());
        let (host, port) = server
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
            .ok_or_else(|| SysProxyError::Tool {
                command: "sysproxy write".into(),
                detail: format!("saved server {server:?} is not host:port"),
            })?;
        let proxy = Sysproxy {
            enable: get("enable").as_deref() == Some("true"),
            host,
            port,
            bypass: get("bypass").unwrap_or_default(),
        };
        proxy.set_system_proxy().map_err(|e| tool_error("write", e))
    }

    fn veil_settings(&self, proxy: &VeilProxy) -> Settings {
        [
            ("enable", "true".to_owned()),
            // `SocketAddr` brackets an IPv6 host, as the setting needs.
            ("server", proxy.client_addr().to_string()),
            ("bypass", windows_override(&proxy.bypass)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Some(v)))
        .collect()
    }

    fn describe(&self, s: &Settings) -> ProxyState {
        let get = |k: &str| s.get(k).cloned().flatten();
        if get("enable").as_deref() != Some("true") {
            return ProxyState::Off;
        }
        let server = get("server");
        ProxyState::Manual {
            http: server.clone(),
            https: server,
            socks: None,
            bypass: get("bypass")
                .unwrap_or_default()
                .split(';')
                .filter(|b| !b.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }

    fn mismatch(&self, wanted: &Settings, found: &Settings) -> Option<Mismatch> {
        // With the proxy off, the server and bypass values do nothing.
        if wanted.get("enable").cloned().flatten().as_deref() == Some("false") {
            let only: Settings = wanted
                .iter()
                .filter(|(k, _)| k.as_str() == "enable")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            return first_mismatch(&only, found);
        }
        first_mismatch(wanted, found)
    }
}
