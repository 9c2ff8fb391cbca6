//! Proxy environment variables for the tools that ignore the desktop's proxy
//! setting: `http_proxy`, `https_proxy`, `all_proxy` and `no_proxy`, lower
//! case (what curl reads, and the only `http_proxy` it honours) and upper
//! case (what Go, Python and many others also read).

use std::net::SocketAddr;

use crate::sysproxy::suffix_form;

/// The shell family whose syntax to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shell {
    /// bash, zsh, sh: `export NAME='value'`.
    Posix,
    /// `set -gx NAME 'value'`.
    Fish,
    /// `$env:NAME = 'value'`.
    PowerShell,
}

impl Shell {
    /// From `$SHELL` (fish or POSIX); PowerShell on Windows.
    pub fn detect() -> Self {
        if cfg!(windows) {
            return Shell::PowerShell;
        }
        match std::env::var("SHELL") {
            Ok(s) if s.ends_with("/fish") || s == "fish" => Shell::Fish,
            _ => Shell::Posix,
        }
    }
}

/// The variables for one listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyVars {
    /// `http://HOST:PORT`, for `http_proxy` and `https_proxy` (CONNECT).
    pub http: String,
    /// `socks5h://HOST:PORT`: SOCKS5 with names resolved by Veil, so the
    /// tool itself makes no DNS lookup.
    pub socks: String,
    /// The bypass list as `no_proxy` readers understand it.
    pub no_proxy: String,
}

impl ProxyVars {
    /// For a listener on `listen` (a wildcard address is reached on
    /// loopback) and the bypass list. With inbound credentials, the URLs
    /// carry the user name but never the password.
    pub fn new(listen: SocketAddr, bypass: &[String], user: Option<&str>) -> Self {
        let addr = crate::sysproxy::loopback_if_unspecified(listen);
        let user = user
            .map(|u| format!("{}@", percent_encode(u)))
            .unwrap_or_default();
        Self {
            http: format!("http://{user}{addr}"),
            socks: format!("socks5h://{user}{addr}"),
            no_proxy: no_proxy(bypass),
        }
    }

    /// The variables as `(name, value)`, lower case first.
    pub fn pairs(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("http_proxy", &self.http),
            ("https_proxy", &self.http),
            ("all_proxy", &self.socks),
            ("no_proxy", &self.no_proxy),
            ("HTTP_PROXY", &self.http),
            ("HTTPS_PROXY", &self.http),
            ("ALL_PROXY", &self.socks),
            ("NO_PROXY", &self.no_proxy),
        ]
    }

    /// Lines to evaluate in `shell`.
    pub fn render(&self, shell: Shell) -> String {
        let mut out = String::new();
        out.push_str(match shell {
            Shell::Posix => "# eval \"$(veil env)\"\n",
            Shell::Fish => "# veil env --shell fish | source\n",
            Shell::PowerShell => "# veil env --shell powershell | Invoke-Expression\n",
        });
        for (name, value) in self.pairs() {
            let quoted = quote(value);
            match shell {
                Shell::Posix => out.push_str(&format!("export {name}={quoted}\n")),
                Shell::Fish => out.push_str(&format!("set -gx {name} {quoted}\n")),
                // Windows variable names ignore case: one of each is enough.
                Shell::PowerShell if name.chars().any(|c| c.is_ascii_lowercase()) => {}
                Shell::PowerShell => out.push_str(&format!("$env:{name} = {quoted}\n")),
            }
        }
        out
    }
}

/// `no_proxy` as curl, Go, Python and wget read it: comma-separated,
/// `.suffix` for `*.suffix` (a leading `*.` means nothing to most of them),
/// addresses and CIDRs as they are (curl 7.86+, Go and Python's requests
/// understand CIDRs; older readers skip them).
pub fn no_proxy(bypass: &[String]) -> String {
    let mut out: Vec<String> = Vec::new();
    for b in bypass {
        let entry = suffix_form(b);
        if !out.contains(&entry) {
            out.push(entry);
        }
    }
    out.join(",")
}

/// Single quotes work the same way in all three shells for these values,
/// which never contain a quote (hosts, addresses, a URL-encoded user).
fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', ""))
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> ProxyVars {
        ProxyVars::new(
            "127.0.0.1:7890".parse().expect("addr"),
            &["localhost".into(), "*.local".into(), "10.0.0.0/8".into()],
            None,
        )
    }

    #[test]
    fn posix_lines() {
        let text = vars().render(Shell::Posix);
        assert!(
            text.contains("export http_proxy='http://127.0.0.1:7890'\n"),
            "{text}"
        );
        assert!(
            text.contains("export all_proxy='socks5h://127.0.0.1:7890'\n"),
            "{text}"
        );
        assert!(
            text.contains("export NO_PROXY='localhost,.local,10.0.0.0/8'\n"),
            "{text}"
        );
    }

    #[test]
    fn fish_and_powershell() {
        assert!(
            vars()
                .render(Shell::Fish)
                .contains("set -gx https_proxy 'http://127.0.0.1:7890'\n")
        );
        let ps = vars().render(Shell::PowerShell);
        assert!(
            ps.contains("$env:HTTPS_PROXY = 'http://127.0.0.1:7890'\n"),
            "{ps}"
        );
        assert!(!ps.contains("$env:https_proxy"), "{ps}");
    }

    #[test]
    fn wildcard_and_ipv6_listeners() {
        let v = ProxyVars::new("[::]:8080".parse().expect("addr"), &[], Some("me"));
        assert_eq!(v.http, "http://me@[::1]:8080");
        assert_eq!(v.socks, "socks5h://me@[::1]:8080");
    }
}
