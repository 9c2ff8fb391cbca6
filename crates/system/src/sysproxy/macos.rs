//! macOS: the proxy of the network service that carries the default route,
//! through `networksetup`, by way of the `sysproxy` crate.
//!
//! `sysproxy`'s one-call get/set merges HTTP, HTTPS and SOCKS into one
//! proxy, which would lose a setup with different proxies per protocol, so
//! each protocol is read and written on its own here.

use std::process::Command;

use sysproxy::Sysproxy;

use super::{Backend, ProxyState, Settings, SysProxyError, VeilProxy};

const KINDS: [&str; 3] = ["http", "https", "socks"];

pub struct MacProxy {
    service: String,
}

fn tool_error(action: &str, detail: impl std::fmt::Display) -> SysProxyError {
    SysProxyError::Tool {
        command: format!("networksetup {action}"),
        detail: detail.to_string(),
    }
}

impl MacProxy {
    /// The network service ("Wi-Fi", "Ethernet") behind the default route.
    pub fn find() -> Result<Self, SysProxyError> {
        let route = Command::new("route")
            .args(["-n", "get", "default"])
            .output()
            .map_err(|e| tool_error("(route -n get default)", e))?;
        let route = String::from_utf8_lossy(&route.stdout);
        let device = route
            .lines()
            .find_map(|l| l.trim().strip_prefix("interface:"))
            .map(|d| d.trim().to_owned())
            .ok_or_else(|| tool_error("(route -n get default)", "no default route"))?;
        let order = Command::new("networksetup")
            .arg("-listnetworkserviceorder")
            .output()
            .map_err(|e| tool_error("-listnetworkserviceorder", e))?;
        let order = String::from_utf8_lossy(&order.stdout);
        // "(1) Wi-Fi" followed by "(Hardware Port: Wi-Fi, Device: en0)".
        let mut name: Option<String> = None;
        for line in order.lines() {
            let line = line.trim();
            if line.starts_with("(Hardware Port:") {
                if line.contains(&format!("Device: {device})"))
                    && let Some(service) = name.take()
                {
                    return Ok(Self { service });
                }
            } else if let Some((_, rest)) = line.split_once(") ") {
                name = Some(rest.trim_start_matches('*').trim().to_owned());
            }
        }
        Err(tool_error(
            "-listnetworkserviceorder",
            format!("no network service uses {device}"),
        ))
    }

    fn get(&self, kind: &str) -> Result<Sysproxy, SysProxyError> {
        match kind {
            "http" => Sysproxy::get_http(&self.service),
            "https" => Sysproxy::get_https(&self.service),
            _ => Sysproxy::get_socks(&self.service),
        }
        .map_err(|e| tool_error(&format!("-get{kind}proxy {}", self.service), e))
    }

    fn set(&self, kind: &str, proxy: &Sysproxy) -> Result<(), SysProxyError> {
        match kind {
            "http" => proxy.set_http(&self.service),
            "https" => proxy.set_https(&self.service),
            _ => proxy.set_socks(&self.service),
        }
        .map_err(|e| tool_error(&format!("-set{kind}proxy {}", self.service), e))
    }
}

impl Backend for MacProxy {
    fn name(&self) -> &'static str {
        "macos"
    }

    fn read(&self) -> Result<Settings, SysProxyError> {
        let mut s = Settings::new();
        for kind in KINDS {
            let p = self.get(kind)?;
            s.insert(format!("{kind}.enable"), Some(p.enable.to_string()));
            s.insert(format!("{kind}.host"), Some(p.host));
            s.insert(format!("{kind}.port"), Some(p.port.to_string()));
        }
        let bypass = Sysproxy::get_bypass(&self.service)
            .map_err(|e| tool_error("-getproxybypassdomains", e))?;
        // networksetup answers a sentence when the list is empty.
        let bypass = if bypass.starts_with("There aren't any") {
            String::new()
        } else {
            bypass
        };
        s.insert("bypass".into(), Some(bypass));
        Ok(s)
    }

    fn write(&self, s: &Settings) -> Result<(), SysProxyError> {
        let get = |k: &str| s.get(k).cloned().flatten().unwrap_or_default();
        for kind in KINDS {
            if !s.contains_key(&format!("{kind}.enable")) {
                continue;
            }
            let proxy = Sysproxy {
                enable: get(&format!("{kind}.enable")) == "true",
                host: get(&format!("{kind}.host")),
                port: get(&format!("{kind}.port")).parse().unwrap_or(0),
                bypass: String::new(),
            };
            self.set(kind, &proxy)?;
        }
        if s.contains_key("bypass") {
            let bypass = match get("bypass") {
                b if b.is_empty() => "Empty".to_owned(),
                b => b,
            };
            Sysproxy {
                bypass,
                ..Sysproxy::default()
            }
            .set_bypass(&self.service)
            .map_err(|e| tool_error("-setproxybypassdomains", e))?;
        }
        Ok(())
    }

    fn veil_settings(&self, proxy: &VeilProxy) -> Settings {
        let mut s = Settings::new();
        for kind in KINDS {
            s.insert(format!("{kind}.enable"), Some("true".into()));
            s.insert(format!("{kind}.host"), Some(proxy.host()));
            s.insert(format!("{kind}.port"), Some(proxy.port().to_string()));
        }
        s.insert("bypass".into(), Some(proxy.bypass.join(",")));
        s
    }

    fn describe(&self, s: &Settings) -> ProxyState {
        let get = |k: &str| s.get(k).cloned().flatten().unwrap_or_default();
        let server = |kind: &str| {
            (get(&format!("{kind}.enable")) == "true").then(|| {
                format!(
                    "{}:{}",
                    get(&format!("{kind}.host")),
                    get(&format!("{kind}.port"))
                )
            })
        };
        let (http, https, socks) = (server("http"), server("https"), server("socks"));
        if http.is_none() && https.is_none() && socks.is_none() {
            return ProxyState::Off;
        }
        ProxyState::Manual {
            http,
            https,
            socks,
            bypass: get("bypass")
                .split(',')
                .filter(|b| !b.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }
}
