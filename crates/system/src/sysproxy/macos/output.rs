//! What `networksetup` prints, read into values. The formats (as macOS 10.x
//! to 15 print them):
//!
//! - `-listallnetworkservices`: a sentence ("An asterisk (*) denotes that a
//!   network service is disabled."), then one service per line, `*` before
//!   a disabled one.
//! - `-getwebproxy`, `-getsecurewebproxy`, `-getsocksfirewallproxy`:
//!   `Enabled: Yes|No`, `Server: HOST` (empty when never set), `Port: N`,
//!   `Authenticated Proxy Enabled: 0|1`.
//! - `-getautoproxyurl`: `URL: (null)` or `URL: http://…`, `Enabled: Yes|No`.
//! - `-getproxyautodiscovery`: `Auto Proxy Discovery: On|Off`.
//! - `-getproxybypassdomains`: one entry per line, or "There aren't any
//!   bypass domains set on SERVICE."
//! - errors: "SERVICE is not a recognized network service." and a line
//!   starting `** Error`, on stdout, with an exit status that is not always
//!   a failure.

use std::collections::BTreeMap;

/// One network service from `-listallnetworkservices`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    pub enabled: bool,
}

/// A manual proxy (web, secure web or SOCKS), values as printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    pub enabled: String,
    pub server: String,
    pub port: String,
}

/// The PAC setting: `url` is `None` for `(null)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoProxy {
    pub url: Option<String>,
    pub enabled: String,
}

const SERVICES_NOTE: &str = "An asterisk (*)";
const NO_BYPASS: &str = "There aren't any bypass domains";
const GONE: &str = "is not a recognized network service";

pub fn services(text: &str) -> Vec<Service> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with(SERVICES_NOTE))
        .map(|line| match line.strip_prefix('*') {
            Some(name) => Service {
                name: name.trim().to_owned(),
                enabled: false,
            },
            None => Service {
                name: line.to_owned(),
                enabled: true,
            },
        })
        .collect()
}

/// `Key: value` lines; the value is everything after the first colon (a
/// URL keeps its own), trimmed.
fn fields(text: &str) -> BTreeMap<&str, &str> {
    text.lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| (key.trim(), value.trim()))
        .collect()
}

pub fn proxy(text: &str) -> Option<Proxy> {
    let fields = fields(text);
    Some(Proxy {
        enabled: (*fields.get("Enabled")?).to_owned(),
        server: (*fields.get("Server")?).to_owned(),
        port: (*fields.get("Port")?).to_owned(),
    })
}

pub fn auto_proxy(text: &str) -> Option<AutoProxy> {
    let fields = fields(text);
    // Some versions leave the URL line out when none was ever set.
    let url = fields
        .get("URL")
        .filter(|url| !url.is_empty() && **url != "(null)")
        .map(|url| (*url).to_owned());
    Some(AutoProxy {
        url,
        enabled: (*fields.get("Enabled")?).to_owned(),
    })
}

pub fn discovery(text: &str) -> Option<String> {
    fields(text)
        .get("Auto Proxy Discovery")
        .map(|v| (*v).to_owned())
}

pub fn bypass(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with(NO_BYPASS))
        .map(str::to_owned)
        .collect()
}

/// Whether the output is an error report, whatever the exit status said.
pub fn is_error(text: &str) -> bool {
    text.lines()
        .any(|line| line.trim_start().starts_with("** Error") || line.contains(GONE))
}

/// Whether an error says the service does not exist (any more).
pub fn is_gone(detail: &str) -> bool {
    detail.contains(GONE)
}

/// `Yes`/`On` → `on`, `No`/`Off` → `off`: a printed state as the setters
/// take it.
pub fn on_off(value: &str) -> Option<&'static str> {
    match value.trim().to_ascii_lowercase().as_str() {
        "yes" | "on" | "1" => Some("on"),
        "no" | "off" | "0" => Some("off"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_skip_the_note_and_mark_disabled_ones() {
        let text = "An asterisk (*) denotes that a network service is disabled.\n\
                    Wi-Fi\n*Bluetooth PAN\nUSB 10/100/1000 LAN\nThunderbolt Bridge\n\n";
        assert_eq!(
            services(text),
            vec![
                Service {
                    name: "Wi-Fi".into(),
                    enabled: true
                },
                Service {
                    name: "Bluetooth PAN".into(),
                    enabled: false
                },
                Service {
                    name: "USB 10/100/1000 LAN".into(),
                    enabled: true
                },
                Service {
                    name: "Thunderbolt Bridge".into(),
                    enabled: true
                },
            ]
        );
        // Without the note (older systems), the first line is a service.
        assert_eq!(services("Ethernet\n").len(), 1);
    }

    #[test]
    fn manual_proxies_on_off_and_never_set() {
        let on = "Enabled: Yes\nServer: proxy.corp.example\nPort: 3128\n\
                  Authenticated Proxy Enabled: 0\n";
        assert_eq!(
            proxy(on),
            Some(Proxy {
                enabled: "Yes".into(),
                server: "proxy.corp.example".into(),
                port: "3128".into()
            })
        );
        // Never set: an empty server with a trailing space, port 0.
        let never = "Enabled: No\nServer: \nPort: 0\nAuthenticated Proxy Enabled: 0\n";
        assert_eq!(
            proxy(never),
            Some(Proxy {
                enabled: "No".into(),
                server: String::new(),
                port: "0".into()
            })
        );
        // "Authenticated Proxy Enabled" must not be taken for "Enabled".
        let auth = "Authenticated Proxy Enabled: 1\nEnabled: No\nServer: ::1\nPort: 8080\n";
        assert_eq!(proxy(auth).map(|p| p.enabled), Some("No".into()));
        assert_eq!(proxy(auth).map(|p| p.server), Some("::1".into()));
        assert_eq!(proxy("Wi-Fi is not a recognized network service.\n"), None);
    }

    #[test]
    fn pac_url_null_empty_and_set() {
        assert_eq!(
            auto_proxy("URL: (null)\nEnabled: No\n"),
            Some(AutoProxy {
                url: None,
                enabled: "No".into()
            })
        );
        assert_eq!(auto_proxy("Enabled: No\n").and_then(|a| a.url), None);
        assert_eq!(auto_proxy("URL: \nEnabled: No\n").and_then(|a| a.url), None);
        assert_eq!(
            auto_proxy("URL: http://wpad.corp.example:8080/proxy.pac?a=b\nEnabled: Yes\n"),
            Some(AutoProxy {
                url: Some("http://wpad.corp.example:8080/proxy.pac?a=b".into()),
                enabled: "Yes".into()
            })
        );
        assert_eq!(auto_proxy("garbage"), None);
    }

    #[test]
    fn discovery_and_bypass() {
        assert_eq!(
            discovery("Auto Proxy Discovery: Off\n").as_deref(),
            Some("Off")
        );
        assert_eq!(discovery("Auto Proxy Discovery: On").as_deref(), Some("On"));
        assert_eq!(discovery(""), None);
        assert!(bypass("There aren't any bypass domains set on Wi-Fi.\n").is_empty());
        assert_eq!(
            bypass("*.local\n169.254/16\n"),
            vec!["*.local".to_owned(), "169.254/16".into()]
        );
    }

    #[test]
    fn errors_and_states() {
        let gone = "Dock is not a recognized network service.\n\
                    ** Error: The parameters were not valid.\n";
        assert!(is_error(gone));
        assert!(is_gone(gone));
        assert!(is_error("** Error: The parameters were not valid."));
        assert!(!is_error("Enabled: No\nServer: \nPort: 0\n"));
        assert_eq!(on_off("Yes"), Some("on"));
        assert_eq!(on_off("Off"), Some("off"));
        assert_eq!(on_off("maybe"), None);
    }
}
