//! Leftover proxy variables: `http_proxy`, `https_proxy` and `all_proxy`
//! (either case) in this session or in shell startup files, pointing at a
//! port where nothing listens: the classic "no internet in the terminal
//! after quitting a proxy app". A loopback address is probed with one short
//! connect; any other host is left alone ("not probed").

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{LeakCheck, LeakCheckId, LeakInputs, LeakItem, Verdict};

/// The variables that point tools at a proxy.
const NAMES: &[&str] = &["http_proxy", "https_proxy", "all_proxy"];

/// The longest a probe of a loopback port may take (a closed one refuses at
/// once; this bounds a listener that never accepts).
const PROBE_TIMEOUT: Duration = Duration::from_millis(150);

/// Where a variable was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyVarSource {
    /// The environment of the process asking.
    Session,
    /// A startup file, with its line number.
    File(PathBuf, usize),
}

/// One proxy variable found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyVar {
    pub name: String,
    pub value: String,
    pub source: ProxyVarSource,
}

/// The shell and session startup files of `home` that may set variables.
fn startup_files(home: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = [
        ".bashrc",
        ".bash_profile",
        ".bash_login",
        ".profile",
        ".zshrc",
        ".zshenv",
        ".zprofile",
        ".config/fish/config.fish",
    ]
    .iter()
    .map(|f| home.join(f))
    .collect();
    for (dir, ext) in [
        (".config/environment.d", "conf"),
        (".config/fish/conf.d", "fish"),
    ] {
        if let Ok(entries) = std::fs::read_dir(home.join(dir)) {
            let mut more: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == ext))
                .collect();
            more.sort();
            files.extend(more);
        }
    }
    files
}

fn is_proxy_name(name: &str) -> bool {
    NAMES.iter().any(|n| n.eq_ignore_ascii_case(name))
}

fn unquote(value: &str) -> &str {
    let v = value.trim();
    for q in ['"', '\''] {
        if let Some(inner) = v.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return inner;
        }
    }
    v
}

/// The proxy variables one line of a shell or environment.d file sets:
/// `export NAME=value`, `NAME=value`, fish's `set -gx NAME value`, csh's
/// `setenv NAME value`.
pub fn parse_line(line: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for statement in line.split(';') {
        let s = statement.trim();
        if s.starts_with('#') {
            break;
        }
        let mut words = s.split_whitespace();
        match words.next() {
            Some("set") => {
                let rest: Vec<&str> = words.collect();
                let exported = rest.iter().any(|w| w.starts_with('-') && w.contains('x'));
                if let Some(pos) = rest.iter().position(|w| !w.starts_with('-'))
                    && exported
                    && is_proxy_name(rest[pos])
                    && rest.len() > pos + 1
                {
                    found.push((
                        rest[pos].to_owned(),
                        unquote(&rest[pos + 1..].join(" ")).to_owned(),
                    ));
                }
            }
            Some("setenv") => {
                if let (Some(name), Some(value)) = (words.next(), words.next())
                    && is_proxy_name(name)
                {
                    found.push((name.to_owned(), unquote(value).to_owned()));
                }
            }
            Some(_) => {
                let assignment = s.strip_prefix("export ").map(str::trim).unwrap_or(s);
                if let Some((name, value)) = assignment.split_once('=')
                    && is_proxy_name(name.trim())
                    && !name.contains(char::is_whitespace)
                {
                    let value = value.split(" #").next().unwrap_or(value);
                    found.push((name.to_owned(), unquote(value).to_owned()));
                }
            }
            None => {}
        }
    }
    found.retain(|(_, v)| !v.is_empty());
    found
}

/// Every proxy variable in `env` and in `home`'s startup files.
pub fn find_proxy_vars(
    env: &[(String, String)],
    home: Option<&Path>,
) -> (Vec<ProxyVar>, Vec<PathBuf>) {
    let mut found: Vec<ProxyVar> = env
        .iter()
        .filter(|(k, v)| is_proxy_name(k) && !v.is_empty())
        .map(|(k, v)| ProxyVar {
            name: k.clone(),
            value: v.clone(),
            source: ProxyVarSource::Session,
        })
        .collect();
    let mut read = Vec::new();
    for file in home.map(startup_files).unwrap_or_default() {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        read.push(file.clone());
        for (n, line) in text.lines().enumerate() {
            for (name, value) in parse_line(line) {
                found.push(ProxyVar {
                    name,
                    value,
                    source: ProxyVarSource::File(file.clone(), n + 1),
                });
            }
        }
    }
    (found, read)
}

/// Host and port of a proxy URL (`socks5h://user:pw@127.0.0.1:1080/`,
/// `localhost:3128`); curl's default port when none is given.
pub fn proxy_endpoint(value: &str) -> Option<(String, u16)> {
    let (scheme, rest) = value.split_once("://").unwrap_or(("http", value));
    let authority = rest.split('/').next()?;
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let default = if scheme.eq_ignore_ascii_case("https") {
        443
    } else {
        1080
    };
    if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None => default,
        };
        return Some((host.to_owned(), port));
    }
    match hostport.rsplit_once(':') {
        Some((host, port)) => Some((host.to_owned(), port.parse().ok()?)),
        None if !hostport.is_empty() => Some((hostport.to_owned(), default)),
        None => None,
    }
}

/// A value with any `user:password@` hidden.
fn redact(value: &str) -> String {
    let (prefix, rest) = match value.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), value),
    };
    // The path keeps its slash: the value is shown as written.
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let authority = authority
        .rsplit_once('@')
        .map_or(authority.to_owned(), |(_, h)| format!("…@{h}"));
    format!("{prefix}{authority}{path}")
}

/// The loopback addresses `host` names, or `None` when it is not loopback.
fn loopback_addrs(host: &str) -> Option<Vec<IpAddr>> {
    if host.eq_ignore_ascii_case("localhost") {
        return Some(vec![
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ]);
    }
    let ip: IpAddr = host.parse().ok()?;
    ip.is_loopback().then(|| vec![ip])
}

/// Whether anything listens at one of `addrs`:`port`.
fn listens(addrs: &[IpAddr], port: u16) -> bool {
    addrs
        .iter()
        .any(|ip| TcpStream::connect_timeout(&SocketAddr::new(*ip, port), PROBE_TIMEOUT).is_ok())
}

fn display_path(path: &Path, home: Option<&Path>) -> String {
    match home.and_then(|h| path.strip_prefix(h).ok()) {
        Some(rel) => format!("~/{}", rel.display()),
        None => path.display().to_string(),
    }
}

pub fn check(inputs: &LeakInputs) -> LeakCheck {
    let home = inputs.home.as_deref();
    let (vars, files) = find_proxy_vars(&inputs.env, home);
    let files: Vec<String> = files.iter().map(|f| display_path(f, home)).collect();
    let mut check = LeakCheck {
        id: LeakCheckId::ProxyVariables,
        title: "Leftover proxy variables".into(),
        verdict: Verdict::Pass,
        looked_at: format!(
            "http_proxy, https_proxy and all_proxy (either case) in this session{}; a loopback \
             address is probed with one short connect, other hosts are not.",
            if files.is_empty() {
                String::new()
            } else {
                format!(" and in {}", files.join(", "))
            }
        ),
        found: String::new(),
        why: "Terminal tools (curl, git, pip, package managers) use these variables. One that \
              points at a proxy that is gone leaves the terminal without internet, and one \
              that points elsewhere than Veil sends those tools around it."
            .into(),
        todo: String::new(),
        items: Vec::new(),
    };
    if vars.is_empty() {
        check.found = "No proxy variables are set.".into();
        return check;
    }
    let mut probed: HashMap<(String, u16), bool> = HashMap::new();
    let veil_port = inputs.listen_port();
    for var in &vars {
        let source = match &var.source {
            ProxyVarSource::Session => "this session".to_owned(),
            ProxyVarSource::File(path, line) => format!("{} line {line}", display_path(path, home)),
        };
        let subject = format!("{} = {} ({source})", var.name, redact(&var.value));
        let (detail, verdict) = if var.value.contains('$') {
            (
                "set from another variable: not probed".to_owned(),
                Verdict::Unknown,
            )
        } else {
            match proxy_endpoint(&var.value) {
                None => (
                    "not a proxy address Veil understands".to_owned(),
                    Verdict::Unknown,
                ),
                Some((host, port)) => match loopback_addrs(&host) {
                    None => (
                        format!("{host}:{port} is not on this computer: not probed"),
                        Verdict::Unknown,
                    ),
                    Some(addrs) => {
                        let alive = *probed
                            .entry((host.clone(), port))
                            .or_insert_with(|| listens(&addrs, port));
                        if !alive {
                            (
                                format!(
                                    "nothing listens on {host}:{port}: tools that read it fail to connect"
                                ),
                                Verdict::Warn,
                            )
                        } else if Some(port) == veil_port {
                            (format!("{host}:{port} is Veil's listener"), Verdict::Pass)
                        } else {
                            (format!("something listens on {host}:{port}"), Verdict::Pass)
                        }
                    }
                },
            }
        };
        check.items.push(LeakItem::new(subject, detail, verdict));
    }
    check.verdict = Verdict::worst(check.items.iter().map(|i| i.verdict));
    let dead = check
        .items
        .iter()
        .filter(|i| i.verdict == Verdict::Warn)
        .count();
    check.found = match check.verdict {
        Verdict::Warn => format!(
            "{dead} of {} proxy {} {} at a port where nothing listens.",
            vars.len(),
            if vars.len() == 1 {
                "variable"
            } else {
                "variables"
            },
            if dead == 1 { "points" } else { "point" }
        ),
        Verdict::Unknown => format!(
            "{} proxy {} set; some point off this computer and were not probed.",
            vars.len(),
            if vars.len() == 1 {
                "variable is"
            } else {
                "variables are"
            }
        ),
        _ => format!(
            "{} proxy {} set, and something listens where each points.",
            vars.len(),
            if vars.len() == 1 {
                "variable is"
            } else {
                "variables are"
            }
        ),
    };
    if dead > 0 {
        check.todo = "Remove the lines listed from the files named (or unset the variables in \
                      this session), or point them at Veil: `veil env` prints the right ones."
            .into();
    }
    check
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leaks::tests_support::inputs;

    #[test]
    fn shell_lines_of_each_family_are_read() {
        let pair = |n: &str, v: &str| vec![(n.to_owned(), v.to_owned())];
        assert_eq!(
            parse_line("export http_proxy=http://127.0.0.1:7890"),
            pair("http_proxy", "http://127.0.0.1:7890")
        );
        assert_eq!(
            parse_line("  HTTPS_PROXY='socks5h://localhost:1080' # old"),
            pair("HTTPS_PROXY", "socks5h://localhost:1080")
        );
        assert_eq!(
            parse_line("set -gx all_proxy \"socks5://[::1]:1080\""),
            pair("all_proxy", "socks5://[::1]:1080")
        );
        assert_eq!(
            parse_line("setenv http_proxy http://proxy:3128"),
            pair("http_proxy", "http://proxy:3128")
        );
        assert_eq!(parse_line("# export http_proxy=http://127.0.0.1:1"), vec![]);
        assert_eq!(
            parse_line("export no_proxy=localhost; export PATH=$PATH:/x"),
            vec![]
        );
        assert_eq!(parse_line("unset http_proxy"), vec![]);
        assert_eq!(parse_line("export http_proxy="), vec![]);
    }

    #[test]
    fn endpoints_and_redaction() {
        assert_eq!(
            proxy_endpoint("http://u:p@127.0.0.1:3128/"),
            Some(("127.0.0.1".into(), 3128))
        );
        assert_eq!(
            proxy_endpoint("socks5h://[::1]:1080"),
            Some(("::1".into(), 1080))
        );
        assert_eq!(
            proxy_endpoint("localhost"),
            Some(("localhost".into(), 1080))
        );
        assert_eq!(
            proxy_endpoint("https://proxy.example"),
            Some(("proxy.example".into(), 443))
        );
        assert_eq!(
            redact("http://user:secret@127.0.0.1:1/"),
            "http://…@127.0.0.1:1/"
        );
        assert_eq!(redact("127.0.0.1:1"), "127.0.0.1:1");
    }

    #[test]
    fn a_dead_loopback_port_warns_a_live_one_passes_a_remote_one_is_not_probed() {
        let live = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let live_port = live.local_addr().expect("addr").port();
        let closed_port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let home = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            home.path().join(".bashrc"),
            format!("alias ll='ls -l'\nexport http_proxy=http://127.0.0.1:{closed_port}\n"),
        )
        .expect("write");
        std::fs::create_dir_all(home.path().join(".config/fish")).expect("mkdir");
        std::fs::write(
            home.path().join(".config/fish/config.fish"),
            "set -gx https_proxy http://proxy.corp.example:3128\n",
        )
        .expect("write");
        let mut i = inputs();
        i.home = Some(home.path().to_path_buf());
        i.env = vec![(
            "ALL_PROXY".into(),
            format!("socks5h://localhost:{live_port}"),
        )];
        let c = check(&i);
        assert_eq!(c.verdict, Verdict::Warn, "{c:#?}");
        assert_eq!(c.items.len(), 3);
        assert_eq!(c.items[0].verdict, Verdict::Pass, "the session's live one");
        let bashrc = &c.items[1];
        assert_eq!(bashrc.verdict, Verdict::Warn);
        assert!(
            bashrc.subject.contains("~/.bashrc line 2"),
            "{}",
            bashrc.subject
        );
        assert!(
            bashrc.detail.starts_with("nothing listens on 127.0.0.1:"),
            "{}",
            bashrc.detail
        );
        assert_eq!(c.items[2].verdict, Verdict::Unknown, "not probed");
        assert!(
            c.found.starts_with("1 of 3 proxy variables points"),
            "{}",
            c.found
        );
        drop(live);
    }

    #[test]
    fn no_variables_pass() {
        let c = check(&inputs());
        assert_eq!(c.verdict, Verdict::Pass);
        assert_eq!(c.found, "No proxy variables are set.");
    }
}
