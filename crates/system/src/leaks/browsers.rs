//! Browser settings that undo the proxy, read from the browsers' own files,
//! never written: Firefox profiles (`profiles.ini`, then each profile's
//! `prefs.js` and `user.js`) and Chromium-family managed policies
//! (`DnsOverHttpsMode`, `WebRtcIPHandling`). A browser that is not
//! installed is not listed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{LeakCheck, LeakCheckId, LeakInputs, LeakItem, Verdict};

/// One Firefox profile's preferences: name to raw value (strings unquoted).
pub type FirefoxPrefs = BTreeMap<String, String>;

/// `user_pref("name", value);` lines; later lines win, as in Firefox.
pub fn parse_prefs(text: &str, prefs: &mut FirefoxPrefs) {
    for line in text.lines() {
        let line = line.trim();
        let Some(args) = line
            .strip_prefix("user_pref(")
            .or_else(|| line.strip_prefix("pref("))
        else {
            continue;
        };
        let Some(args) = args.trim_end().strip_suffix(");") else {
            continue;
        };
        let Some(rest) = args.trim_start().strip_prefix('"') else {
            continue;
        };
        let Some((name, value)) = rest.split_once('"') else {
            continue;
        };
        let value = value.trim_start().trim_start_matches(',').trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        prefs.insert(name.to_owned(), value.to_owned());
    }
}

/// The profile folders `profiles.ini` in `root` lists, with their names.
pub fn parse_profiles_ini(text: &str, root: &Path) -> Vec<(String, PathBuf)> {
    let mut profiles = Vec::new();
    let mut section = String::new();
    let (mut name, mut path, mut relative) = (None::<String>, None::<String>, true);
    let mut flush =
        |section: &str, name: &mut Option<String>, path: &mut Option<String>, relative: bool| {
            if section.starts_with("Profile")
                && let Some(p) = path.take()
            {
                let dir = if relative {
                    root.join(&p)
                } else {
                    PathBuf::from(&p)
                };
                profiles.push((name.take().unwrap_or(p), dir));
            }
            *name = None;
        };
    for line in text.lines() {
        let line = line.trim();
        if let Some(s) = line.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            flush(&section, &mut name, &mut path, relative);
            section = s.to_owned();
            relative = true;
        } else if let Some((k, v)) = line.split_once('=') {
            match k.trim() {
                "Name" => name = Some(v.trim().to_owned()),
                "Path" => path = Some(v.trim().to_owned()),
                "IsRelative" => relative = v.trim() != "0",
                _ => {}
            }
        }
    }
    flush(&section, &mut name, &mut path, relative);
    profiles
}

/// What one Firefox profile's settings do to the proxy.
pub fn firefox_findings(prefs: &FirefoxPrefs, veil_port: Option<u16>) -> Vec<LeakItem> {
    let get = |k: &str| prefs.get(k).map(String::as_str);
    let mut items = Vec::new();
    let proxy = match get("network.proxy.type").unwrap_or("5") {
        "0" => (
            "set to 'No proxy': Firefox ignores the system setting and Veil".to_owned(),
            Verdict::Warn,
        ),
        "1" => {
            let ports: Vec<(&str, &str)> = ["http", "ssl", "socks"]
                .iter()
                .filter_map(|k| {
                    let host = get(&format!("network.proxy.{k}"))?;
                    let port = get(&format!("network.proxy.{k}_port"))?;
                    Some((host, port))
                })
                .collect();
            let to_veil = ports
                .iter()
                .any(|(_, p)| veil_port.is_some_and(|v| p.parse() == Ok(v)));
            let list: Vec<String> = ports.iter().map(|(h, p)| format!("{h}:{p}")).collect();
            if to_veil {
                (
                    format!("manual settings point at Veil ({})", list.join(", ")),
                    Verdict::Pass,
                )
            } else {
                (
                    format!(
                        "manual settings point elsewhere than Veil ({})",
                        if list.is_empty() {
                            "none set".to_owned()
                        } else {
                            list.join(", ")
                        }
                    ),
                    Verdict::Warn,
                )
            }
        }
        "2" => (
            "uses a PAC file: Veil cannot tell where it sends each site".to_owned(),
            Verdict::Unknown,
        ),
        "4" => (
            "auto-detects a proxy (WPAD): the network decides, not Veil".to_owned(),
            Verdict::Warn,
        ),
        _ => ("follows the system proxy setting".to_owned(), Verdict::Pass),
    };
    items.push(LeakItem::new(
        "Proxy (network.proxy.type)",
        proxy.0,
        proxy.1,
    ));
    match get("network.proxy.socks_remote_dns") {
        Some("false") => items.push(LeakItem::new(
            "Proxy DNS when using SOCKS v5 (network.proxy.socks_remote_dns)",
            "off: over SOCKS, Firefox looks names up itself before using Veil; turn on 'Proxy \
             DNS when using SOCKS v5'",
            Verdict::Warn,
        )),
        Some("true") => items.push(LeakItem::new(
            "Proxy DNS when using SOCKS v5 (network.proxy.socks_remote_dns)",
            "on: names go to Veil",
            Verdict::Pass,
        )),
        _ => {}
    }
    match get("network.trr.mode") {
        Some(mode @ ("2" | "3")) => {
            let provider = get("network.trr.uri").unwrap_or("Firefox's default provider");
            items.push(LeakItem::new(
                "DNS over HTTPS (network.trr.mode)",
                format!(
                    "on (mode {mode}): Firefox resolves names itself through {provider}, which sees \
                     every site you visit, beside the upstream; set it to off (5) to leave names \
                     to Veil"
                ),
                Verdict::Warn,
            ));
        }
        _ => items.push(LeakItem::new(
            "DNS over HTTPS (network.trr.mode)",
            "off: names go with the traffic",
            Verdict::Pass,
        )),
    }
    let webrtc_off = get("media.peerconnection.enabled") == Some("false");
    let proxy_only = get("media.peerconnection.ice.proxy_only") == Some("true");
    items.push(if webrtc_off || proxy_only {
        LeakItem::new(
            "WebRTC (media.peerconnection.enabled)",
            if webrtc_off {
                "off"
            } else {
                "limited to the proxy (ice.proxy_only)"
            },
            Verdict::Pass,
        )
    } else {
        LeakItem::new(
            "WebRTC (media.peerconnection.enabled)",
            "on: a web page can learn this computer's addresses over UDP, which Veil cannot \
             carry; set media.peerconnection.ice.proxy_only to true (or enabled to false)",
            Verdict::Warn,
        )
    });
    items
}

/// What a Chromium-family browser's managed policies do to the proxy.
pub fn chromium_policy_findings(
    policies: &serde_json::Map<String, serde_json::Value>,
) -> Vec<LeakItem> {
    let mut items = Vec::new();
    let text = |k: &str| policies.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    items.push(match text("DnsOverHttpsMode").as_deref() {
        Some(mode @ ("secure" | "automatic")) => LeakItem::new(
            "DnsOverHttpsMode",
            format!(
                "{mode}: the browser resolves names itself over DNS over HTTPS; the provider \
                 sees them beside the upstream"
            ),
            Verdict::Warn,
        ),
        Some("off") => LeakItem::new("DnsOverHttpsMode", "off", Verdict::Pass),
        _ => LeakItem::new(
            "DnsOverHttpsMode",
            "no policy: the browser's own 'Use secure DNS' setting decides, which Veil cannot read",
            Verdict::Unknown,
        ),
    });
    items.push(match text("WebRtcIPHandling").as_deref() {
        Some("disable_non_proxied_udp") => LeakItem::new(
            "WebRtcIPHandling",
            "disable_non_proxied_udp: WebRTC uses the proxy or nothing",
            Verdict::Pass,
        ),
        Some(other) => LeakItem::new(
            "WebRtcIPHandling",
            format!(
                "{other}: WebRTC can send UDP around Veil and show your address; \
                 disable_non_proxied_udp prevents it"
            ),
            Verdict::Warn,
        ),
        None => LeakItem::new(
            "WebRtcIPHandling",
            "no policy: WebRTC can send UDP around Veil and show your address (an extension or \
             the policy disable_non_proxied_udp prevents it)",
            Verdict::Unknown,
        ),
    });
    items
}

/// Firefox's profile roots under `home` on this OS.
fn firefox_roots(inputs: &LeakInputs, home: &Path) -> Vec<PathBuf> {
    if cfg!(windows) {
        let appdata = inputs
            .env
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("APPDATA"))
            .map(|(_, v)| PathBuf::from(v))
            .unwrap_or_else(|| home.join("AppData").join("Roaming"));
        vec![appdata.join("Mozilla").join("Firefox")]
    } else if cfg!(target_os = "macos") {
        vec![home.join("Library/Application Support/Firefox")]
    } else {
        vec![
            home.join(".mozilla/firefox"),
            home.join("snap/firefox/common/.mozilla/firefox"),
            home.join(".var/app/org.mozilla.firefox/.mozilla/firefox"),
        ]
    }
}

/// A Chromium-family browser: its name, whether it is installed, and where
/// its managed policies are.
struct Chromium {
    name: &'static str,
    /// Linux policy folder, under the inputs' root.
    linux_policies: &'static [&'static str],
    /// Linux user folders (under home) and programs that show it is installed.
    linux_markers: &'static [&'static str],
    linux_programs: &'static [&'static str],
    /// macOS bundle id (managed preferences) and app.
    mac_domain: &'static str,
    mac_app: &'static str,
    /// Windows policy key under HKLM\SOFTWARE\Policies, and its user folder
    /// under %LOCALAPPDATA%.
    windows_key: &'static str,
    windows_data: &'static str,
}

const CHROMIUMS: &[Chromium] = &[
    Chromium {
        name: "Google Chrome",
        linux_policies: &["/etc/opt/chrome/policies/managed"],
        linux_markers: &[".config/google-chrome"],
        linux_programs: &["google-chrome", "google-chrome-stable"],
        mac_domain: "com.google.Chrome",
        mac_app: "/Applications/Google Chrome.app",
        windows_key: r"HKLM\SOFTWARE\Policies\Google\Chrome",
        windows_data: r"Google\Chrome\User Data",
    },
    Chromium {
        name: "Chromium",
        linux_policies: &[
            "/etc/chromium/policies/managed",
            "/etc/chromium-browser/policies/managed",
        ],
        linux_markers: &[".config/chromium", "snap/chromium"],
        linux_programs: &["chromium", "chromium-browser"],
        mac_domain: "org.chromium.Chromium",
        mac_app: "/Applications/Chromium.app",
        windows_key: r"HKLM\SOFTWARE\Policies\Chromium",
        windows_data: r"Chromium\User Data",
    },
    Chromium {
        name: "Microsoft Edge",
        linux_policies: &["/etc/opt/edge/policies/managed"],
        linux_markers: &[".config/microsoft-edge"],
        linux_programs: &["microsoft-edge", "microsoft-edge-stable"],
        mac_domain: "com.microsoft.Edge",
        mac_app: "/Applications/Microsoft Edge.app",
        windows_key: r"HKLM\SOFTWARE\Policies\Microsoft\Edge",
        windows_data: r"Microsoft\Edge\User Data",
    },
    Chromium {
        name: "Brave",
        linux_policies: &["/etc/brave/policies/managed"],
        linux_markers: &[".config/BraveSoftware/Brave-Browser"],
        linux_programs: &["brave-browser", "brave"],
        mac_domain: "com.brave.Browser",
        mac_app: "/Applications/Brave Browser.app",
        windows_key: r"HKLM\SOFTWARE\Policies\BraveSoftware\Brave",
        windows_data: r"BraveSoftware\Brave-Browser\User Data",
    },
];

const POLICIES: &[&str] = &["DnsOverHttpsMode", "WebRtcIPHandling"];

/// `reg query KEY /v NAME` output: `    NAME    REG_SZ    value`.
pub fn parse_reg_query(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let mut words = l.split_whitespace();
        (words.next()? == name && words.next()?.starts_with("REG_"))
            .then(|| words.collect::<Vec<_>>().join(" "))
    })
}

/// Whether `program` is on the inputs' `PATH`.
fn on_path(inputs: &LeakInputs, program: &str) -> bool {
    let Some((_, path)) = inputs.env.iter().find(|(k, _)| k == "PATH") else {
        return false;
    };
    std::env::split_paths(path).any(|dir| dir.join(program).is_file())
}

/// The installed Chromium browser's policies (as a JSON map), and where
/// they were read; `None` when the browser is not installed.
fn chromium_policies(
    inputs: &LeakInputs,
    browser: &Chromium,
) -> Option<(serde_json::Map<String, serde_json::Value>, String)> {
    let mut policies = serde_json::Map::new();
    if cfg!(windows) {
        let local = inputs
            .env
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("LOCALAPPDATA"))
            .map(|(_, v)| PathBuf::from(v))?;
        if !local.join(browser.windows_data).is_dir() {
            return None;
        }
        for name in POLICIES {
            if let Some(out) =
                super::tool_output("reg", &["query", browser.windows_key, "/v", name])
                && let Some(value) = parse_reg_query(&out, name)
            {
                policies.insert((*name).to_owned(), value.into());
            }
        }
        return Some((policies, browser.windows_key.to_owned()));
    }
    if cfg!(target_os = "macos") {
        if !Path::new(browser.mac_app).exists() {
            return None;
        }
        let domain = format!("/Library/Managed Preferences/{}", browser.mac_domain);
        for name in POLICIES {
            if let Some(out) = super::tool_output("defaults", &["read", &domain, name]) {
                policies.insert((*name).to_owned(), out.trim().to_owned().into());
            }
        }
        return Some((policies, domain));
    }
    let home = inputs.home.as_deref();
    let installed = browser
        .linux_markers
        .iter()
        .any(|m| home.is_some_and(|h| h.join(m).exists()))
        || browser.linux_programs.iter().any(|p| on_path(inputs, p))
        || browser
            .linux_policies
            .iter()
            .any(|d| inputs.system_path(d).is_dir());
    if !installed {
        return None;
    }
    let mut read = Vec::new();
    for dir in browser.linux_policies {
        let dir = inputs.system_path(dir);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        read.push(dir.display().to_string());
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        for file in files {
            let parsed = std::fs::read_to_string(&file)
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
            if let Some(serde_json::Value::Object(map)) = parsed {
                policies.extend(map);
            }
        }
    }
    let looked = if read.is_empty() {
        browser.linux_policies[0].to_owned()
    } else {
        read.join(", ")
    };
    Some((policies, looked))
}

pub fn check(inputs: &LeakInputs) -> LeakCheck {
    let mut check = LeakCheck {
        id: LeakCheckId::Browsers,
        title: "Browser settings that undo the proxy".into(),
        verdict: Verdict::Pass,
        looked_at: String::new(),
        found: String::new(),
        why: "A browser can be told to skip the proxy, to look names up itself (DNS over \
              HTTPS, SOCKS without remote DNS) or to let web pages use WebRTC over UDP, which \
              shows your own address to sites even while everything else goes through Veil."
            .into(),
        todo: String::new(),
        items: Vec::new(),
    };
    let mut looked = Vec::new();
    let mut browsers = Vec::new();
    if let Some(home) = inputs.home.as_deref() {
        for root in firefox_roots(inputs, home) {
            let ini = root.join("profiles.ini");
            let Ok(text) = std::fs::read_to_string(&ini) else {
                continue;
            };
            looked.push(ini.display().to_string());
            for (name, dir) in parse_profiles_ini(&text, &root) {
                let mut prefs = FirefoxPrefs::new();
                let mut found_any = false;
                for file in ["prefs.js", "user.js"] {
                    if let Ok(t) = std::fs::read_to_string(dir.join(file)) {
                        parse_prefs(&t, &mut prefs);
                        found_any = true;
                    }
                }
                if !found_any {
                    continue;
                }
                browsers.push(format!("Firefox ({name})"));
                for mut item in firefox_findings(&prefs, inputs.listen_port()) {
                    item.subject = format!("Firefox ({name}): {}", item.subject);
                    check.items.push(item);
                }
            }
        }
    }
    for browser in CHROMIUMS {
        let Some((policies, where_)) = chromium_policies(inputs, browser) else {
            continue;
        };
        looked.push(where_);
        browsers.push(browser.name.to_owned());
        for mut item in chromium_policy_findings(&policies) {
            item.subject = format!("{}: {}", browser.name, item.subject);
            check.items.push(item);
        }
    }
    check.looked_at = if looked.is_empty() {
        "Firefox profiles and Chromium-family policies: none found.".into()
    } else {
        format!("Read only: {}.", looked.join(", "))
    };
    if browsers.is_empty() {
        check.found = "No Firefox profile or Chromium-family browser was found.".into();
        return check;
    }
    check.verdict = Verdict::worst(check.items.iter().map(|i| i.verdict));
    let warnings = check
        .items
        .iter()
        .filter(|i| i.verdict == Verdict::Warn)
        .count();
    check.found = match warnings {
        0 => format!(
            "{}: nothing found that undoes the proxy.",
            browsers.join(", ")
        ),
        n => format!(
            "{n} {} in {}.",
            if n == 1 {
                "setting undoes"
            } else {
                "settings undo"
            },
            browsers.join(", ")
        ),
    };
    if warnings > 0 {
        check.todo = "Change the settings listed in each browser (Firefox: about:config or \
                      Settings > Network Settings; Chrome: Settings > Privacy and security)."
            .into();
    }
    check
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_os = "linux")]
    use crate::leaks::tests_support::inputs;

    #[test]
    fn prefs_and_profiles_are_read() {
        let mut prefs = FirefoxPrefs::new();
        parse_prefs(
            "// Mozilla User Preferences\nuser_pref(\"network.trr.mode\", 2);\n\
             user_pref(\"network.trr.uri\", \"https://dns.example/dns-query\");\n\
             user_pref(\"network.proxy.socks_remote_dns\", false);\nuser_pref(\"network.trr.mode\", 3);\n",
            &mut prefs,
        );
        assert_eq!(prefs["network.trr.mode"], "3", "a later line wins");
        assert_eq!(prefs["network.trr.uri"], "https://dns.example/dns-query");
        assert_eq!(prefs["network.proxy.socks_remote_dns"], "false");
        let root = Path::new("/r");
        let profiles = parse_profiles_ini(
            "[General]\nStartWithLastProfile=1\n\n[Profile0]\nName=default-release\nIsRelative=1\n\
             Path=abc.default-release\n\n[Profile1]\nName=work\nIsRelative=0\nPath=/data/work\n\n\
             [Install4F96D1932A9F858E]\nDefault=abc.default-release\n",
            root,
        );
        assert_eq!(
            profiles,
            vec![
                (
                    "default-release".to_owned(),
                    root.join("abc.default-release")
                ),
                ("work".to_owned(), PathBuf::from("/data/work")),
            ]
        );
    }

    #[test]
    fn chromium_policies_are_judged() {
        let policies = serde_json::json!({"DnsOverHttpsMode": "secure", "WebRtcIPHandling": "disable_non_proxied_udp"});
        let items = chromium_policy_findings(policies.as_object().expect("object"));
        assert_eq!(items[0].verdict, Verdict::Warn);
        assert_eq!(items[1].verdict, Verdict::Pass);
        let items = chromium_policy_findings(&serde_json::Map::new());
        assert!(items.iter().all(|i| i.verdict == Verdict::Unknown));
        assert_eq!(
            parse_reg_query(
                "\nHKEY_LOCAL_MACHINE\\SOFTWARE\\Policies\\Google\\Chrome\n    DnsOverHttpsMode    REG_SZ    off\n",
                "DnsOverHttpsMode"
            ),
            Some("off".into())
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_firefox_profile_with_doh_on_and_remote_dns_off_warns() {
        let home = tempfile::tempdir().expect("tempdir");
        let root = home.path().join(".mozilla/firefox");
        std::fs::create_dir_all(root.join("p1.default")).expect("mkdir");
        std::fs::write(
            root.join("profiles.ini"),
            "[Profile0]\nName=default\nIsRelative=1\nPath=p1.default\n",
        )
        .expect("write");
        std::fs::write(
            root.join("p1.default/prefs.js"),
            "user_pref(\"network.trr.mode\", 2);\nuser_pref(\"network.proxy.socks_remote_dns\", false);\n\
             user_pref(\"media.peerconnection.enabled\", false);\n",
        )
        .expect("write");
        let mut i = inputs();
        i.home = Some(home.path().to_path_buf());
        let c = check(&i);
        assert_eq!(c.verdict, Verdict::Warn, "{c:#?}");
        assert_eq!(c.found, "2 settings undo in Firefox (default).");
        let warned: Vec<&str> = c
            .items
            .iter()
            .filter(|i| i.verdict == Verdict::Warn)
            .map(|i| i.subject.as_str())
            .collect();
        assert_eq!(
            warned,
            [
                "Firefox (default): Proxy DNS when using SOCKS v5 (network.proxy.socks_remote_dns)",
                "Firefox (default): DNS over HTTPS (network.trr.mode)"
            ]
        );
        // Fixed in user.js (which Firefox reads last): nothing left.
        std::fs::write(
            root.join("p1.default/user.js"),
            "user_pref(\"network.trr.mode\", 5);\nuser_pref(\"network.proxy.socks_remote_dns\", true);\n",
        )
        .expect("write");
        assert_eq!(check(&i).verdict, Verdict::Pass);
    }

    // Elsewhere, installed browsers are found by their system-wide paths.
    #[cfg(target_os = "linux")]
    #[test]
    fn no_browser_is_not_listed() {
        let home = tempfile::tempdir().expect("tempdir");
        let mut i = inputs();
        i.home = Some(home.path().to_path_buf());
        let c = check(&i);
        assert_eq!(c.verdict, Verdict::Pass);
        assert!(c.items.is_empty());
    }
}
