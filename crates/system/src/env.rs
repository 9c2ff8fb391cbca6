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
            let quoted = quote(shell, value);
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

/// `value` as one literal word in `shell`. Single quotes in each shell's
/// own rules, since bypass entries come from a file anyone may have edited:
/// - POSIX: nothing is special inside `'…'`; a quote is written `'\''`.
/// - fish: `\\` and `\'` are escapes even inside single quotes.
/// - PowerShell: a quote is doubled, and the typographic quotes
///   `‘ ’ ‚ ‛` count as single quotes too.
pub fn quote(shell: Shell, value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match (shell, c) {
            (Shell::Posix, '\'') => out.push_str("'\\''"),
            (Shell::Fish, '\'' | '\\') => {
                out.push('\\');
                out.push(c);
            }
            (Shell::PowerShell, '\'' | '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}') => {
                out.push(c);
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out.push('\'');
    out
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

    /// Hostile bypass entries, as a shared or tampered config could hold.
    const HOSTILE: &[&str] = &[
        "a'b",
        "x\\'; touch /tmp/veil-pwned; echo '",
        "$(touch /tmp/veil-pwned)",
        "`id`",
        "back\\slash\\",
        "tab\there",
        "semi;colon",
        "\u{2019}; touch /tmp/veil-pwned #",
    ];

    /// Runs `script` in `shell` (skipped when that shell is not installed),
    /// returning what it printed.
    fn run_shell(program: &str, args: &[&str], script: &str) -> Option<String> {
        use std::io::Write;
        let mut child = match std::process::Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
        {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                println!("skipped: {program} is not installed");
                return None;
            }
            Err(e) => panic!("{program}: {e}"),
        };
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(script.as_bytes())
            .expect("script");
        let out = child.wait_with_output().expect("shell ran");
        assert!(
            out.status.success(),
            "{program} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(String::from_utf8(out.stdout).expect("utf-8"))
    }

    #[test]
    fn each_real_shell_reads_hostile_values_back_literally() {
        let bypass: Vec<String> = HOSTILE.iter().map(|s| s.to_string()).collect();
        let v = ProxyVars::new("127.0.0.1:7890".parse().expect("addr"), &bypass, None);
        let want = v.no_proxy.clone();
        let shells: [(&str, &[&str], Shell, &str); 4] = [
            ("bash", &["-s"], Shell::Posix, "printf '%s' \"$no_proxy\"\n"),
            ("zsh", &["-s"], Shell::Posix, "printf '%s' \"$no_proxy\"\n"),
            ("fish", &[], Shell::Fish, "printf '%s' \"$no_proxy\"\n"),
            (
                "pwsh",
                &["-NoProfile", "-Command", "-"],
                Shell::PowerShell,
                "[Console]::Out.Write($env:NO_PROXY)\n",
            ),
        ];
        for (program, args, shell, print) in shells {
            let script = format!("{}{print}", v.render(shell));
            if let Some(got) = run_shell(program, args, &script) {
                assert_eq!(got, want, "{program} read back something else");
            }
        }
        assert!(!std::path::Path::new("/tmp/veil-pwned").exists());
    }

    #[test]
    fn quoting_rules_per_shell() {
        assert_eq!(quote(Shell::Posix, "a'b"), "'a'\\''b'");
        assert_eq!(quote(Shell::Fish, "a'b\\"), "'a\\'b\\\\'");
        assert_eq!(
            quote(Shell::PowerShell, "a'b\u{2019}"),
            "'a''b\u{2019}\u{2019}'"
        );
    }

    #[test]
    fn wildcard_and_ipv6_listeners() {
        let v = ProxyVars::new("[::]:8080".parse().expect("addr"), &[], Some("me"));
        assert_eq!(v.http, "http://me@[::1]:8080");
        assert_eq!(v.socks, "socks5h://me@[::1]:8080");
    }
}
