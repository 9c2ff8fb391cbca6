//! GNOME's proxy setting through `gsettings` (`org.gnome.system.proxy`),
//! which GTK apps, Chromium and Firefox read on most Linux desktops.
//!
//! Values are kept in GVariant text, exactly as `gsettings get` prints them
//! and as `gsettings set` takes them back, so a restore is exact.

use super::command;
use super::{Backend, ProxyState, Settings, SysProxyError, VeilProxy};

const HINT: &str = "Veil sets the system proxy on GNOME and most Linux desktops with it \
                    (Debian/Ubuntu package libglib2.0-bin)";

const ROOT: &str = "org.gnome.system.proxy";

/// Every key Veil reads, saves and restores, as `schema key`.
const KEYS: [&str; 12] = [
    "org.gnome.system.proxy mode",
    "org.gnome.system.proxy autoconfig-url",
    "org.gnome.system.proxy ignore-hosts",
    "org.gnome.system.proxy use-same-proxy",
    "org.gnome.system.proxy.http enabled",
    "org.gnome.system.proxy.http host",
    "org.gnome.system.proxy.http port",
    "org.gnome.system.proxy.http use-authentication",
    "org.gnome.system.proxy.https host",
    "org.gnome.system.proxy.https port",
    "org.gnome.system.proxy.socks host",
    "org.gnome.system.proxy.socks port",
];

const MODE: &str = "org.gnome.system.proxy mode";

pub struct Gnome;

impl Backend for Gnome {
    fn name(&self) -> &'static str {
        "gnome"
    }

    fn read(&self) -> Result<Settings, SysProxyError> {
        // One process for all keys: `schema key value` per line.
        let out = command::run("gsettings", &["list-recursively", ROOT], HINT)?;
        let mut all = Settings::new();
        for line in out.lines() {
            let mut parts = line.splitn(3, ' ');
            if let (Some(schema), Some(key), Some(value)) =
                (parts.next(), parts.next(), parts.next())
            {
                all.insert(format!("{schema} {key}"), Some(value.trim().to_owned()));
            }
        }
        KEYS.iter()
            .map(|k| match all.remove(*k) {
                Some(v) => Ok(((*k).to_owned(), v)),
                None => Err(SysProxyError::Tool {
                    command: format!("gsettings list-recursively {ROOT}"),
                    detail: format!("the installed schema has no key {k}"),
                }),
            })
            .collect()
    }

    fn write(&self, settings: &Settings) -> Result<(), SysProxyError> {
        // The mode last, so nothing uses half-written hosts and ports.
        let ordered = settings
            .iter()
            .filter(|(k, _)| k.as_str() != MODE)
            .chain(settings.iter().filter(|(k, _)| k.as_str() == MODE));
        for (key, value) in ordered {
            let (schema, name) = key.split_once(' ').ok_or_else(|| SysProxyError::Tool {
                command: "gsettings set".into(),
                detail: format!("malformed key {key:?}"),
            })?;
            match value {
                Some(v) => command::run("gsettings", &["set", schema, name, v], HINT)?,
                None => command::run("gsettings", &["reset", schema, name], HINT)?,
            };
        }
        Ok(())
    }

    fn veil_settings(&self, proxy: &VeilProxy) -> Settings {
        if let Some(url) = proxy.pac_url() {
            // GNOME fetches the PAC file itself; the manual keys stay as they
            // are and are put back with the rest.
            return [
                ("org.gnome.system.proxy mode", "'auto'".to_owned()),
                (
                    "org.gnome.system.proxy autoconfig-url",
                    gvariant_string(&url),
                ),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), Some(v)))
            .collect();
        }
        let host = gvariant_string(&proxy.host());
        let port = proxy.port().to_string();
        // GNOME matches `*.example.com` itself, and CIDRs and hosts as they are.
        let bypass = &proxy.bypass;
        [
            ("org.gnome.system.proxy mode", "'manual'".to_owned()),
            (
                "org.gnome.system.proxy ignore-hosts",
                gvariant_string_array(bypass),
            ),
            ("org.gnome.system.proxy use-same-proxy", "false".into()),
            ("org.gnome.system.proxy.http enabled", "true".into()),
            ("org.gnome.system.proxy.http host", host.clone()),
            ("org.gnome.system.proxy.http port", port.clone()),
            (
                "org.gnome.system.proxy.http use-authentication",
                "false".into(),
            ),
            ("org.gnome.system.proxy.https host", host.clone()),
            ("org.gnome.system.proxy.https port", port.clone()),
            ("org.gnome.system.proxy.socks host", host),
            ("org.gnome.system.proxy.socks port", port),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Some(v)))
        .collect()
    }

    fn describe(&self, s: &Settings) -> ProxyState {
        let get = |k: &str| s.get(k).cloned().flatten().unwrap_or_default();
        let server = |kind: &str| {
            let host = parse_gvariant_string(&get(&format!("{ROOT}.{kind} host")))?;
            let port: u16 = get(&format!("{ROOT}.{kind} port")).parse().ok()?;
            (!host.is_empty() && port != 0).then(|| format!("{}:{port}", bracket(&host)))
        };
        match parse_gvariant_string(&get(MODE)).as_deref() {
            Some("none") => ProxyState::Off,
            Some("auto") => ProxyState::Auto {
                pac_url: parse_gvariant_string(&get("org.gnome.system.proxy autoconfig-url"))
                    .filter(|u| !u.is_empty()),
            },
            Some("manual") => ProxyState::Manual {
                http: server("http"),
                https: server("https"),
                socks: server("socks"),
                bypass: parse_gvariant_string_array(&get("org.gnome.system.proxy ignore-hosts")),
            },
            _ => ProxyState::Other {
                detail: format!("mode {}", get(MODE)),
            },
        }
    }
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// A GVariant string as GLib prints it: single quotes, or double quotes when
/// the text holds a single quote and no double one.
pub(crate) fn gvariant_string(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// `['a', 'b']`, and `@as []` for none, as GLib prints a string array.
pub(crate) fn gvariant_string_array(items: &[String]) -> String {
    if items.is_empty() {
        return "@as []".into();
    }
    let inner: Vec<String> = items.iter().map(|i| gvariant_string(i)).collect();
    format!("[{}]", inner.join(", "))
}

/// The text of a printed GVariant string (`'manual'` → `manual`).
pub(crate) fn parse_gvariant_string(text: &str) -> Option<String> {
    let chars: Vec<char> = text.trim().chars().collect();
    let (out, end) = take_quoted(&chars, 0)?;
    (end == chars.len()).then_some(out)
}

/// The strings of a printed string array (`['a', 'b']`, `@as []`).
pub(crate) fn parse_gvariant_string_array(text: &str) -> Vec<String> {
    let text = text.trim().trim_start_matches("@as").trim();
    let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) else {
        return Vec::new();
    };
    let chars: Vec<char> = inner.chars().collect();
    let mut items = Vec::new();
    let mut at = 0;
    while at < chars.len() {
        if chars[at] == ' ' || chars[at] == ',' {
            at += 1;
            continue;
        }
        match take_quoted(&chars, at) {
            Some((item, end)) => {
                items.push(item);
                at = end;
            }
            None => break,
        }
    }
    items
}

/// Reads one quoted string starting at `chars[at]`; returns it and the index
/// just past its closing quote.
fn take_quoted(chars: &[char], at: usize) -> Option<(String, usize)> {
    let quote = *chars.get(at).filter(|c| **c == '\'' || **c == '"')?;
    let mut out = String::new();
    let mut i = at + 1;
    loop {
        let c = *chars.get(i)?;
        i += 1;
        match c {
            '\\' => {
                let e = *chars.get(i)?;
                i += 1;
                out.push(match e {
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    e => e,
                });
            }
            c if c == quote => return Some((out, i)),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gvariant_text_round_trips() {
        for s in ["manual", "", "it's", "a\\b", "say \"hi\" it's"] {
            assert_eq!(
                parse_gvariant_string(&gvariant_string(s)).as_deref(),
                Some(s)
            );
        }
        assert_eq!(gvariant_string("manual"), "'manual'");
        assert_eq!(gvariant_string("it's"), "\"it's\"");
        let items = vec![
            "localhost".to_string(),
            "*.local".into(),
            "10.0.0.0/8".into(),
        ];
        let text = gvariant_string_array(&items);
        assert_eq!(text, "['localhost', '*.local', '10.0.0.0/8']");
        assert_eq!(parse_gvariant_string_array(&text), items);
        assert_eq!(gvariant_string_array(&[]), "@as []");
        assert!(parse_gvariant_string_array("@as []").is_empty());
    }

    #[test]
    fn pac_mode_points_gnome_at_veils_pac_url() {
        let s = Gnome.veil_settings(&VeilProxy {
            listen: "0.0.0.0:7890".parse().expect("addr"),
            bypass: vec![],
            reach: crate::sysproxy::AppsReach::PacFailOpen,
        });
        assert_eq!(s.len(), 2, "only the mode and the URL: {s:?}");
        assert_eq!(
            Gnome.describe(&s),
            ProxyState::Auto {
                pac_url: Some("http://127.0.0.1:7890/proxy.pac?fail-open".into())
            }
        );
    }

    #[test]
    fn describes_what_the_user_sees() {
        let mut s = Gnome.veil_settings(&VeilProxy {
            listen: "127.0.0.1:7890".parse().expect("addr"),
            bypass: vec!["localhost".into()],
            reach: crate::sysproxy::AppsReach::Manual,
        });
        s.insert(format!("{ROOT} autoconfig-url"), Some("''".into()));
        assert_eq!(
            Gnome.describe(&s),
            ProxyState::Manual {
                http: Some("127.0.0.1:7890".into()),
                https: Some("127.0.0.1:7890".into()),
                socks: Some("127.0.0.1:7890".into()),
                bypass: vec!["localhost".into()],
            }
        );
        s.insert(MODE.into(), Some("'auto'".into()));
        s.insert(
            format!("{ROOT} autoconfig-url"),
            Some("'http://wpad/p.pac'".into()),
        );
        assert_eq!(
            Gnome.describe(&s),
            ProxyState::Auto {
                pac_url: Some("http://wpad/p.pac".into())
            }
        );
    }
}
