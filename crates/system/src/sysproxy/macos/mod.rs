//! macOS: the proxy settings of every enabled network service, through
//! `networksetup`.
//!
//! A Mac has one proxy setup per network service (Wi-Fi, a dock's Ethernet,
//! iPhone USB), and traffic follows whichever service carries the route at
//! the moment, so Veil points every enabled service at itself: the web,
//! secure web and SOCKS proxies on, the PAC URL and auto-discovery off
//! (either would send browsers around Veil), and Veil's bypass list. Keys
//! carry the service's name (`Wi-Fi/web.enabled`), so the guard file says
//! which services were changed and each is put back as it was. A service
//! that appears while Veil is on is saved and covered by [`read_new`]; a
//! saved one that is gone by the time of the restore is skipped with a
//! warning.
//!
//! Values are kept as `networksetup` prints them (`Yes`, `On`, a PAC URL or
//! none), so what is saved is what is written back.
//!
//! [`read_new`]: Backend::read_new

mod output;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::command;
use super::{Backend, Mismatch, ProxyState, Settings, SysProxyError, VeilProxy, first_mismatch};
use output::Service;

const NETWORKSETUP: &str = "/usr/sbin/networksetup";
const TOOL: &str = "networksetup";
const HINT: &str = "it is part of macOS (/usr/sbin/networksetup)";

/// The three manual proxies: the key's word, and `networksetup`'s.
const PROXIES: [(&str, &str); 3] = [
    ("web", "webproxy"),
    ("secure", "securewebproxy"),
    ("socks", "socksfirewallproxy"),
];

const PAC_URL: &str = "pac.url";
const PAC_ENABLED: &str = "pac.enabled";
const DISCOVERY: &str = "discovery";
const BYPASS: &str = "bypass";

pub struct MacProxy {
    program: PathBuf,
    /// As `-listallnetworkservices` had them when this backend was made:
    /// every operation of the guard makes a new one.
    services: Vec<Service>,
}

/// `Wi-Fi` + `web.enabled` → `Wi-Fi/web.enabled`.
fn key(service: &str, field: &str) -> String {
    format!("{service}/{field}")
}

/// The service and field of a key. Service names may hold `/` ("USB
/// 10/100/1000 LAN"); fields never do.
fn split_key(key: &str) -> Option<(&str, &str)> {
    key.rsplit_once('/')
}

impl MacProxy {
    #[cfg_attr(not(target_os = "macos"), allow(dead_code))]
    pub fn find() -> Result<Self, SysProxyError> {
        Self::with_program(PathBuf::from(NETWORKSETUP))
    }

    /// Drives the `networksetup` at `program` (a fake in tests).
    pub(super) fn with_program(program: PathBuf) -> Result<Self, SysProxyError> {
        let mut mac = Self {
            program,
            services: Vec::new(),
        };
        mac.services = output::services(&mac.run(&["-listallnetworkservices"])?);
        Ok(mac)
    }

    fn enabled_services(&self) -> impl Iterator<Item = &str> {
        self.services
            .iter()
            .filter(|s| s.enabled)
            .map(|s| s.name.as_str())
    }

    fn run(&self, args: &[&str]) -> Result<String, SysProxyError> {
        let text = command::run_at(&self.program, TOOL, args, HINT)?;
        if output::is_error(&text) {
            return Err(self.failed(args, &text));
        }
        Ok(text)
    }

    fn failed(&self, args: &[&str], detail: &str) -> SysProxyError {
        SysProxyError::Tool {
            command: format!("{TOOL} {}", args.join(" ")),
            detail: detail.lines().take(3).collect::<Vec<_>>().join(" "),
        }
    }

    /// Runs a getter and reads its output with `parse`.
    fn get<T>(
        &self,
        args: &[&str],
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<T, SysProxyError> {
        let text = self.run(args)?;
        parse(&text).ok_or_else(|| self.failed(args, &format!("unexpected output: {text}")))
    }

    fn get_proxy(&self, service: &str, word: &str) -> Result<output::Proxy, SysProxyError> {
        self.get(&[&format!("-get{word}"), service], output::proxy)
    }

    fn get_auto_proxy(&self, service: &str) -> Result<output::AutoProxy, SysProxyError> {
        self.get(&["-getautoproxyurl", service], output::auto_proxy)
    }

    /// One service's settings; `None` when it went away meanwhile.
    fn read_service(&self, service: &str) -> Result<Option<Settings>, SysProxyError> {
        match self.read_service_now(service) {
            Ok(settings) => Ok(Some(settings)),
            Err(SysProxyError::Tool { detail, .. }) if output::is_gone(&detail) => {
                tracing::warn!("network service {service:?} went away while being read");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn read_service_now(&self, service: &str) -> Result<Settings, SysProxyError> {
        let mut s = Settings::new();
        for (kind, word) in PROXIES {
            let proxy = self.get_proxy(service, word)?;
            s.insert(
                key(service, &format!("{kind}.enabled")),
                Some(proxy.enabled),
            );
            s.insert(key(service, &format!("{kind}.server")), Some(proxy.server));
            s.insert(key(service, &format!("{kind}.port")), Some(proxy.port));
        }
        let pac = self.get_auto_proxy(service)?;
        s.insert(key(service, PAC_URL), pac.url);
        s.insert(key(service, PAC_ENABLED), Some(pac.enabled));
        let discovery = self.get(&["-getproxyautodiscovery", service], output::discovery)?;
        s.insert(key(service, DISCOVERY), Some(discovery));
        let bypass = output::bypass(&self.run(&["-getproxybypassdomains", service])?);
        s.insert(key(service, BYPASS), Some(bypass.join("\n")));
        Ok(s)
    }

    /// A printed state (`Yes`, `Off`) as the setters take it.
    fn on_off(
        &self,
        service: &str,
        field: &str,
        value: &str,
    ) -> Result<&'static str, SysProxyError> {
        output::on_off(value).ok_or_else(|| SysProxyError::Tool {
            command: format!("{TOOL} (writing {service}/{field})"),
            detail: format!("{value:?} is neither on nor off"),
        })
    }

    /// Writes one service's fields. The bypass list goes first and the PAC
    /// and discovery last, so a restore brings the user's proxies back
    /// before the settings that override them.
    fn write_service(&self, service: &str, fields: &Fields) -> Result<(), SysProxyError> {
        let field = |name: &str| fields.get(name).map(|v| v.clone().unwrap_or_default());
        if let Some(bypass) = field(BYPASS) {
            let mut args = vec!["-setproxybypassdomains", service];
            let entries: Vec<&str> = bypass.lines().filter(|l| !l.trim().is_empty()).collect();
            if entries.is_empty() {
                // networksetup's word for "none".
                args.push("Empty");
            } else {
                args.extend(entries);
            }
            self.run(&args)?;
        }
        for (kind, word) in PROXIES {
            self.write_proxy(service, kind, word, fields)?;
        }
        let mut pac_enabled = field(PAC_ENABLED);
        // networksetup cannot clear a PAC URL (with PAC off it is not used),
        // and Veil never changes it: only a URL is written, never its
        // absence.
        if let Some(Some(url)) = fields.get(PAC_URL) {
            // Setting the URL turns PAC on; its state is set after.
            if pac_enabled.is_none() {
                pac_enabled = Some(self.get_auto_proxy(service)?.enabled);
            }
            self.run(&["-setautoproxyurl", service, url])?;
        }
        if let Some(enabled) = pac_enabled {
            let state = self.on_off(service, PAC_ENABLED, &enabled)?;
            self.run(&["-setautoproxystate", service, state])?;
        }
        if let Some(discovery) = field(DISCOVERY) {
            let state = self.on_off(service, DISCOVERY, &discovery)?;
            self.run(&["-setproxyautodiscovery", service, state])?;
        }
        Ok(())
    }

    /// One manual proxy (`kind` in keys, `word` in networksetup's commands).
    fn write_proxy(
        &self,
        service: &str,
        kind: &str,
        word: &str,
        fields: &Fields,
    ) -> Result<(), SysProxyError> {
        let field = |name: &str| {
            fields
                .get(format!("{kind}.{name}").as_str())
                .map(|v| v.clone().unwrap_or_default())
        };
        let (mut enabled, server, port) = (field("enabled"), field("server"), field("port"));
        if server.is_some() || port.is_some() {
            // The setter takes server and port together and turns the proxy
            // on, so what is not written here is kept as the OS has it.
            let now = match (&enabled, &server, &port) {
                (Some(_), Some(_), Some(_)) => None,
                _ => Some(self.get_proxy(service, word)?),
            };
            let server = server.or_else(|| now.as_ref().map(|p| p.server.clone()));
            let port = port.or_else(|| now.as_ref().map(|p| p.port.clone()));
            enabled = enabled.or_else(|| now.map(|p| p.enabled));
            self.run(&[
                &format!("-set{word}"),
                service,
                &server.unwrap_or_default(),
                &port.unwrap_or_default(),
            ])?;
        }
        if let Some(enabled) = enabled {
            let state = self.on_off(service, &format!("{kind}.enabled"), &enabled)?;
            self.run(&[&format!("-set{word}state"), service, state])?;
        }
        Ok(())
    }
}

/// One service's fields (`web.enabled`, `pac.url`, ...) and values.
type Fields<'a> = BTreeMap<&'a str, Option<String>>;

/// Every field a key may name after its service.
fn is_field(field: &str) -> bool {
    [PAC_URL, PAC_ENABLED, DISCOVERY, BYPASS].contains(&field)
        || field.split_once('.').is_some_and(|(kind, part)| {
            PROXIES.iter().any(|(k, _)| *k == kind) && ["enabled", "server", "port"].contains(&part)
        })
}

/// The settings of each service, by service name.
fn by_service(settings: &Settings) -> BTreeMap<&str, Fields<'_>> {
    let mut services: BTreeMap<&str, Fields<'_>> = BTreeMap::new();
    for (key, value) in settings {
        if let Some((service, field)) = split_key(key) {
            services
                .entry(service)
                .or_default()
                .insert(field, value.clone());
        }
    }
    services
}

impl Backend for MacProxy {
    fn name(&self) -> &'static str {
        "macos"
    }

    fn read(&self) -> Result<Settings, SysProxyError> {
        let mut all = Settings::new();
        for service in self.enabled_services() {
            if let Some(settings) = self.read_service(service)? {
                all.extend(settings);
            }
        }
        Ok(all)
    }

    fn read_new(&self, saved: &Settings) -> Result<Settings, SysProxyError> {
        let known: BTreeSet<&str> = saved
            .keys()
            .filter_map(|k| split_key(k).map(|(service, _)| service))
            .collect();
        let mut new = Settings::new();
        for service in self.enabled_services().filter(|s| !known.contains(s)) {
            if let Some(settings) = self.read_service(service)? {
                tracing::info!(
                    "network service {service:?} appeared; its proxy settings are saved"
                );
                new.extend(settings);
            }
        }
        Ok(new)
    }

    fn write(&self, settings: &Settings) -> Result<(), SysProxyError> {
        // Checked before anything is written (a guard file edited by hand,
        // or from another version).
        let malformed = |k: &String| split_key(k).is_none_or(|(_, field)| !is_field(field));
        if let Some(bad) = settings.keys().find(|k| malformed(k)) {
            return Err(SysProxyError::Tool {
                command: format!("{TOOL} (writing settings)"),
                detail: format!("malformed key {bad:?}: not SERVICE/FIELD"),
            });
        }
        for (service, fields) in by_service(settings) {
            if !self.services.iter().any(|s| s.name == service) {
                tracing::warn!(
                    "network service {service:?} no longer exists; its saved proxy settings are \
                     skipped"
                );
                continue;
            }
            match self.write_service(service, &fields) {
                Err(SysProxyError::Tool { detail, .. }) if output::is_gone(&detail) => {
                    tracing::warn!(
                        "network service {service:?} went away while being written; skipped"
                    );
                }
                result => result?,
            }
        }
        Ok(())
    }

    fn veil_settings(&self, proxy: &VeilProxy) -> Settings {
        let host = proxy.host();
        let port = proxy.port().to_string();
        let mut s = Settings::new();
        let pac = proxy.pac_url();
        for service in self.enabled_services() {
            if let Some(url) = &pac {
                for (kind, _) in PROXIES {
                    s.insert(key(service, &format!("{kind}.enabled")), Some("No".into()));
                }
                s.insert(key(service, PAC_URL), Some(url.clone()));
                s.insert(key(service, PAC_ENABLED), Some("Yes".into()));
                s.insert(key(service, DISCOVERY), Some("Off".into()));
                continue;
            }
            for (kind, _) in PROXIES {
                let mut set = |field: &str, value: &str| {
                    s.insert(
                        key(service, &format!("{kind}.{field}")),
                        Some(value.to_owned()),
                    )
                };
                set("enabled", "Yes");
                set("server", &host);
                set("port", &port);
            }
            // Either would send browsers around Veil.
            s.insert(key(service, PAC_ENABLED), Some("No".into()));
            s.insert(key(service, DISCOVERY), Some("Off".into()));
            // networksetup takes `*.local`, hosts, and CIDRs as they are.
            s.insert(key(service, BYPASS), Some(proxy.bypass.join("\n")));
        }
        s
    }

    fn describe(&self, settings: &Settings) -> ProxyState {
        let states: Vec<(&str, ProxyState)> = by_service(settings)
            .into_iter()
            .map(|(service, fields)| (service, describe_service(&fields)))
            .collect();
        match states.first() {
            None => ProxyState::Other {
                detail: "no enabled network service".into(),
            },
            Some((_, first)) if states.iter().all(|(_, s)| s == first) => first.clone(),
            Some(_) => ProxyState::Other {
                detail: states
                    .iter()
                    .map(|(service, state)| format!("{service}: {state}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            },
        }
    }

    fn mismatch(&self, wanted: &Settings, found: &Settings) -> Option<Mismatch> {
        let present: BTreeSet<&str> = found
            .keys()
            .filter_map(|k| split_key(k).map(|(service, _)| service))
            .collect();
        let checked: Settings = wanted
            .iter()
            .filter(|(k, v)| match split_key(k) {
                // A service that is gone (or turned off) has nothing to
                // check, and a PAC URL cannot be cleared (see write).
                Some((service, field)) => {
                    present.contains(service) && !(field == PAC_URL && v.is_none())
                }
                None => true,
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        first_mismatch(&checked, found)
    }
}

/// One service's settings in the user's words. PAC and discovery win over
/// the manual proxies, as they do for apps.
fn describe_service(fields: &Fields) -> ProxyState {
    let get = |f: &str| fields.get(f).cloned().flatten().unwrap_or_default();
    let on = |f: &str| output::on_off(&get(f)) == Some("on");
    if on(PAC_ENABLED) {
        return ProxyState::Auto {
            pac_url: fields.get(PAC_URL).cloned().flatten(),
        };
    }
    if on(DISCOVERY) {
        return ProxyState::Auto { pac_url: None };
    }
    let server = |kind: &str| {
        on(&format!("{kind}.enabled")).then(|| {
            let host = get(&format!("{kind}.server"));
            let host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host
            };
            format!("{host}:{}", get(&format!("{kind}.port")))
        })
    };
    let (http, https, socks) = (server("web"), server("secure"), server("socks"));
    if http.is_none() && https.is_none() && socks.is_none() {
        return ProxyState::Off;
    }
    ProxyState::Manual {
        http,
        https,
        socks,
        bypass: get(BYPASS).lines().map(str::to_owned).collect(),
    }
}
