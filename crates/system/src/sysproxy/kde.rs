//! KDE Plasma's proxy setting: the `[Proxy Settings]` group of `kioslaverc`,
//! written with `kwriteconfig6` (Plasma 6) or `kwriteconfig5` (Plasma 5).
//!
//! A key that was not in the file is saved as absent and deleted again on
//! restore, so the file ends up as it was.

use super::command;
use super::{Backend, ProxyState, Settings, SysProxyError, VeilProxy, suffix_form};

const FILE: &str = "kioslaverc";
const GROUP: &str = "Proxy Settings";
const HINT: &str = "Veil sets KDE's proxy with it (Debian/Ubuntu package libkf5config-bin, or \
                    kf6-kconfig on Plasma 6)";
/// What kreadconfig prints for a key that is not there.
const ABSENT: &str = "\u{1}veil-absent\u{1}";

const KEYS: [&str; 7] = [
    "ProxyType",
    "httpProxy",
    "httpsProxy",
    "socksProxy",
    "NoProxyFor",
    "ReversedException",
    "Proxy Config Script",
];

pub struct Kde {
    read_tool: &'static str,
    write_tool: &'static str,
}

impl Kde {
    /// The Plasma 6 tools when installed, else Plasma 5's.
    pub fn find() -> Result<Self, SysProxyError> {
        for (read_tool, write_tool) in [
            ("kreadconfig6", "kwriteconfig6"),
            ("kreadconfig5", "kwriteconfig5"),
        ] {
            if command::on_path(read_tool) && command::on_path(write_tool) {
                return Ok(Self {
                    read_tool,
                    write_tool,
                });
            }
        }
        Err(SysProxyError::ToolMissing {
            tool: "kwriteconfig5",
            hint: HINT,
        })
    }

    /// Tells running KDE apps to read the setting again. Apps started later
    /// read the file anyway, so a failure here is only logged.
    fn notify(&self) {
        let result = command::run(
            "dbus-send",
            &[
                "--type=signal",
                "/KIO/Scheduler",
                "org.kde.KIO.Scheduler.reparseSlaveConfiguration",
                "string:",
            ],
            "",
        );
        if let Err(e) = result {
            tracing::debug!("could not tell KDE apps about the new proxy setting: {e}");
        }
    }
}

impl Backend for Kde {
    fn name(&self) -> &'static str {
        "kde"
    }

    fn read(&self) -> Result<Settings, SysProxyError> {
        KEYS.iter()
            .map(|key| {
                let out = command::run(
                    self.read_tool,
                    &[
                        "--file",
                        FILE,
                        "--group",
                        GROUP,
                        "--key",
                        key,
                        "--default",
                        ABSENT,
                    ],
                    HINT,
                )?;
                let value = out.strip_suffix('\n').unwrap_or(&out);
                let value = (value != ABSENT).then(|| value.to_owned());
                Ok(((*key).to_owned(), value))
            })
            .collect()
    }

    fn write(&self, settings: &Settings) -> Result<(), SysProxyError> {
        // ProxyType last, so nothing uses half-written addresses.
        let ordered = settings
            .iter()
            .filter(|(k, _)| k.as_str() != "ProxyType")
            .chain(settings.iter().filter(|(k, _)| k.as_str() == "ProxyType"));
        for (key, value) in ordered {
            let mut args = vec!["--file", FILE, "--group", GROUP, "--key", key.as_str()];
            match value {
                Some(v) => args.extend(["--", v.as_str()]),
                None => args.push("--delete"),
            }
            command::run(self.write_tool, &args, HINT)?;
        }
        self.notify();
        Ok(())
    }

    fn veil_settings(&self, proxy: &VeilProxy) -> Settings {
        if let Some(url) = proxy.pac_url() {
            return [("ProxyType", "2".to_owned()), ("Proxy Config Script", url)]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), Some(v)))
                .collect();
        }
        let host = match proxy.host() {
            h if h.contains(':') => format!("[{h}]"),
            h => h,
        };
        let port = proxy.port();
        let bypass: Vec<String> = proxy.bypass.iter().map(|b| suffix_form(b)).collect();
        [
            ("ProxyType", "1".to_owned()),
            ("httpProxy", format!("http://{host} {port}")),
            ("httpsProxy", format!("http://{host} {port}")),
            ("socksProxy", format!("socks://{host} {port}")),
            ("NoProxyFor", bypass.join(",")),
            ("ReversedException", "false".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Some(v)))
        .collect()
    }

    fn describe(&self, s: &Settings) -> ProxyState {
        let get = |k: &str| s.get(k).cloned().flatten().unwrap_or_default();
        let server = |k: &str| {
            let v = get(k);
            let v = v
                .split_once("://")
                .map_or(v.as_str(), |(_, rest)| rest)
                .trim();
            // Plasma writes "host port"; older files have "host:port".
            let v = match v.rsplit_once(' ') {
                Some((h, p)) => format!("{h}:{p}"),
                None => v.to_owned(),
            };
            (!v.is_empty()).then_some(v)
        };
        match get("ProxyType").trim() {
            "" | "0" => ProxyState::Off,
            "1" => ProxyState::Manual {
                http: server("httpProxy"),
                https: server("httpsProxy"),
                socks: server("socksProxy"),
                bypass: get("NoProxyFor")
                    .split(',')
                    .map(str::trim)
                    .filter(|b| !b.is_empty())
                    .map(str::to_owned)
                    .collect(),
            },
            "2" => ProxyState::Auto {
                pac_url: Some(get("Proxy Config Script")).filter(|u| !u.is_empty()),
            },
            "3" => ProxyState::Auto { pac_url: None },
            "4" => ProxyState::Other {
                detail: "from environment variables".into(),
            },
            other => ProxyState::Other {
                detail: format!("ProxyType {other}"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plasma_notation() {
        let kde = Kde {
            read_tool: "kreadconfig5",
            write_tool: "kwriteconfig5",
        };
        let s = kde.veil_settings(&VeilProxy {
            listen: "127.0.0.1:7890".parse().expect("addr"),
            bypass: vec!["localhost".into(), "*.local".into()],
            reach: crate::sysproxy::AppsReach::Manual,
        });
        assert_eq!(
            s["httpProxy"].as_deref(),
            Some("http://127.0.0.1 7890"),
            "Plasma separates host and port with a space"
        );
        assert_eq!(s["NoProxyFor"].as_deref(), Some("localhost,.local"));
        assert_eq!(
            kde.describe(&s),
            ProxyState::Manual {
                http: Some("127.0.0.1:7890".into()),
                https: Some("127.0.0.1:7890".into()),
                socks: Some("127.0.0.1:7890".into()),
                bypass: vec!["localhost".into(), ".local".into()],
            }
        );
    }
}
