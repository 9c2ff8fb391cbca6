//! Leak checks: local, read-only, and honest about what they could not see.
//!
//! Each check looks at one way traffic or names can get past Veil and comes
//! back as a [`LeakCheck`]: a [`Verdict`] (pass, warn, fail, unknown), what
//! it looked at, what it found, why it matters and what to do. [`run`] makes
//! every check from one [`LeakInputs`]: the running engine's counters (apps
//! that handed Veil an address instead of a name, Veil's own lookups for
//! upstream traffic), a coverage scan (UDP sockets), and the machine itself
//! (the OS's resolvers, IPv6 addresses and routes, proxy variables in the
//! session and the shell startup files, browsers' own settings files).
//!
//! Nothing here sends a packet off this machine: the only probe is a short
//! connect to a loopback port named in a proxy variable. Files are read,
//! never written. The checks run in well under a second (`veil leaks
//! --json`); the few external programs asked (`resolvectl`, `scutil`,
//! `reg`) are given [`TOOL_TIMEOUT`] each.

mod browsers;
mod ipv6;
mod proxy_vars;
mod resolvers;
mod traffic;
#[cfg(windows)]
mod win32;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use veil_engine::stats::unix_ms;
use veil_engine::{Mode, StatsSnapshot};

use crate::coverage::CoverageReport;

pub use browsers::{FirefoxPrefs, chromium_policy_findings, firefox_findings};
pub use proxy_vars::{ProxyVarSource, find_proxy_vars};
pub use resolvers::{ResolverLabel, label_resolver};

/// How a check came out, best to worst as [`Verdict::rank`] orders them.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Looked, and found nothing that leaks.
    Pass,
    /// Could not look (no engine running, a file or tool unavailable).
    Unknown,
    /// Something leaks or may leak; the check says what to do.
    Warn,
    /// Veil itself leaks: a defect.
    Fail,
}

impl Verdict {
    /// Worse verdicts rank higher.
    pub fn rank(self) -> u8 {
        match self {
            Verdict::Pass => 0,
            Verdict::Unknown => 1,
            Verdict::Warn => 2,
            Verdict::Fail => 3,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Unknown => "unknown",
            Verdict::Warn => "warn",
            Verdict::Fail => "fail",
        }
    }

    /// The worst of `verdicts`; [`Verdict::Pass`] for none.
    pub fn worst(verdicts: impl IntoIterator<Item = Verdict>) -> Verdict {
        verdicts
            .into_iter()
            .max_by_key(|v| v.rank())
            .unwrap_or(Verdict::Pass)
    }
}

/// Which check a [`LeakCheck`] is; the UI places findings by it.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeakCheckId {
    /// Apps that sent Veil an address instead of a name.
    ResolvingApps,
    /// Veil's own lookups for traffic routed to an upstream.
    VeilLookups,
    /// The resolvers the OS uses for everything that bypasses Veil.
    OsResolvers,
    /// A global IPv6 address and route beside an IPv4-only exit.
    Ipv6,
    /// Proxy variables pointing at nothing.
    ProxyVariables,
    /// Browser settings that undo the proxy.
    Browsers,
    /// UDP and QUIC sockets.
    Udp,
}

/// One thing a check found (an app, a resolver, a variable, a setting).
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeakItem {
    /// What it is about: `curl`, `192.168.1.1 (wlan0)`, `~/.bashrc: http_proxy`.
    pub subject: String,
    pub detail: String,
    pub verdict: Verdict,
}

impl LeakItem {
    pub fn new(subject: impl Into<String>, detail: impl Into<String>, verdict: Verdict) -> Self {
        Self {
            subject: subject.into(),
            detail: detail.into(),
            verdict,
        }
    }
}

/// The result of one check.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeakCheck {
    pub id: LeakCheckId,
    pub title: String,
    pub verdict: Verdict,
    /// What the check read or asked.
    pub looked_at: String,
    /// One or two sentences: what it found.
    pub found: String,
    pub why: String,
    /// What to do; empty when there is nothing to do.
    pub todo: String,
    pub items: Vec<LeakItem>,
}

/// Where traffic that goes through Veil leaves from.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeakRoute {
    /// Direct mode (or no upstream): Veil connects from this computer and
    /// resolves names here.
    Direct,
    /// Through upstreams, which resolve the names Veil passes on.
    Upstream,
    /// No engine is running.
    Unknown,
}

/// Every check, worst first.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeakReport {
    pub checked_unix_ms: u64,
    /// How long the checks took.
    pub took_ms: u64,
    pub route: LeakRoute,
    /// The worst verdict of all checks.
    pub verdict: Verdict,
    pub checks: Vec<LeakCheck>,
}

impl LeakReport {
    pub fn check(&self, id: LeakCheckId) -> Option<&LeakCheck> {
        self.checks.iter().find(|c| c.id == id)
    }

    /// "2 warnings, 1 unknown, 4 passed."
    pub fn summary(&self) -> String {
        let count = |v: Verdict| self.checks.iter().filter(|c| c.verdict == v).count();
        let mut parts = Vec::new();
        let n = count(Verdict::Fail);
        if n > 0 {
            parts.push(format!("{n} failed"));
        }
        let n = count(Verdict::Warn);
        if n > 0 {
            parts.push(format!(
                "{n} {}",
                if n == 1 { "warning" } else { "warnings" }
            ));
        }
        let n = count(Verdict::Unknown);
        if n > 0 {
            parts.push(format!("{n} unknown"));
        }
        parts.push(format!("{} passed", count(Verdict::Pass)));
        format!("{}.", parts.join(", "))
    }
}

/// What the checks read. [`LeakInputs::system`] fills in this machine;
/// tests point `home`, `env` and `root` at a temporary folder.
#[derive(Debug, Clone)]
pub struct LeakInputs {
    /// The running engine's counters; `None` when no engine runs.
    pub engine: Option<StatsSnapshot>,
    /// A coverage scan; `None` when it could not be made.
    pub coverage: Option<CoverageReport>,
    /// The exit address the last IP check saw through Veil, if any.
    pub exit_ip: Option<String>,
    /// The user's home folder (shell startup files, browser profiles).
    pub home: Option<PathBuf>,
    /// The environment of the session asking (proxy variables).
    pub env: Vec<(String, String)>,
    /// Prefix of system-wide paths (`/etc/...`): `/` on a real machine.
    pub root: PathBuf,
    /// Read the machine's network state (resolvers, IPv6); tests of the
    /// file-based checks turn it off.
    pub probe_network_state: bool,
}

impl LeakInputs {
    /// This machine, this process's environment and home folder.
    pub fn system(
        engine: Option<StatsSnapshot>,
        coverage: Option<CoverageReport>,
        exit_ip: Option<String>,
    ) -> Self {
        Self {
            engine,
            coverage,
            exit_ip,
            home: home_dir(),
            env: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
            root: PathBuf::from("/"),
            probe_network_state: true,
        }
    }

    pub fn route(&self) -> LeakRoute {
        match &self.engine {
            None => LeakRoute::Unknown,
            Some(s) if s.mode == Mode::Proxy && !s.upstreams.is_empty() => LeakRoute::Upstream,
            Some(_) => LeakRoute::Direct,
        }
    }

    /// Veil's listener port, to recognise settings that point at Veil.
    fn listen_port(&self) -> Option<u16> {
        self.engine.as_ref().map(|s| s.listen.port())
    }

    /// A path under [`LeakInputs::root`].
    fn system_path(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }
}

fn home_dir() -> Option<PathBuf> {
    directories::BaseDirs::new().map(|d| d.home_dir().to_path_buf())
}

/// Runs every check.
pub fn run(inputs: &LeakInputs) -> LeakReport {
    let started = Instant::now();
    let route = inputs.route();
    let mut checks = vec![
        traffic::resolving_apps(inputs),
        traffic::veil_lookups(inputs),
        resolvers::check(inputs),
        ipv6::check(inputs),
        proxy_vars::check(inputs),
        browsers::check(inputs),
        traffic::udp(inputs),
    ];
    // Worst first; the order above breaks ties.
    checks.sort_by_key(|c| std::cmp::Reverse(c.verdict.rank()));
    LeakReport {
        checked_unix_ms: unix_ms(SystemTime::now()),
        took_ms: started.elapsed().as_millis() as u64,
        route,
        verdict: Verdict::worst(checks.iter().map(|c| c.verdict)),
        checks,
    }
}

/// The control channel's answer to `leaks`, from a running engine: its own
/// counters, a coverage scan and the environment it runs in.
pub async fn reply(engine: StatsSnapshot, exit_ip: Option<String>) -> crate::control::Reply {
    let listen = engine.listen;
    let report = tokio::task::spawn_blocking(move || {
        let coverage = crate::coverage::scan(listen).ok();
        run(&LeakInputs::system(Some(engine), coverage, exit_ip))
    })
    .await;
    match report {
        Ok(report) => crate::control::Reply::Leaks {
            ok: true,
            leaks: Box::new(report),
        },
        Err(e) => crate::control::Reply::error(format!("the leak checks stopped: {e}")),
    }
}

/// How long an external program asked by a check may take.
pub const TOOL_TIMEOUT: Duration = Duration::from_millis(400);

/// Runs `program args` for its standard output, within [`TOOL_TIMEOUT`];
/// `None` when it is missing, fails or takes longer (then it is killed).
fn tool_output(program: &str, args: &[&str]) -> Option<String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut stdout = child.stdout.take()?;
    // The reader thread ends when the child exits or is killed.
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut out).ok();
        out
    });
    let deadline = Instant::now() + TOOL_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let out = reader.join().ok()?;
    status
        .filter(|s| s.success())
        .map(|_| String::from_utf8_lossy(&out).into_owned())
}

/// `a`, `a and b`, `a, b and c`, `a, b, c and 2 more`.
fn join_names(list: &[String], max: usize) -> String {
    match list.len() {
        0 => String::new(),
        1 => list[0].clone(),
        n if n > max => format!("{} and {} more", list[..max].join(", "), n - max),
        n => format!("{} and {}", list[..n - 1].join(", "), list[n - 1]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_verdict_wins_and_unknown_is_worse_than_pass() {
        assert_eq!(Verdict::worst([]), Verdict::Pass);
        assert_eq!(
            Verdict::worst([Verdict::Pass, Verdict::Unknown]),
            Verdict::Unknown
        );
        assert_eq!(
            Verdict::worst([Verdict::Warn, Verdict::Fail, Verdict::Pass]),
            Verdict::Fail
        );
    }

    #[test]
    fn names_are_joined_readably() {
        let names: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        assert_eq!(join_names(&names[..1], 3), "a");
        assert_eq!(join_names(&names[..2], 3), "a and b");
        assert_eq!(join_names(&names[..3], 3), "a, b and c");
        assert_eq!(join_names(&names, 2), "a, b and 2 more");
    }

    #[test]
    fn a_slow_tool_is_cut_off_and_a_missing_one_is_none() {
        assert_eq!(tool_output("veil-no-such-tool", &[]), None);
        #[cfg(unix)]
        {
            assert_eq!(tool_output("sleep", &["5"]), None, "killed at the deadline");
            assert_eq!(tool_output("echo", &["hi"]).as_deref(), Some("hi\n"));
        }
    }
}

/// Inputs and engine snapshots for the checks' unit tests.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;
    use veil_engine::upstream::UpstreamReport;
    use veil_engine::{CacheStats, DnsStats, Strategy};

    /// An engine snapshot in `mode`, with one upstream when in proxy mode.
    pub fn engine(mode: Mode) -> StatsSnapshot {
        let upstreams = if mode == Mode::Proxy {
            vec![UpstreamReport {
                name: "exit".into(),
                url: "socks5://127.0.0.1:1080".into(),
                healthy: true,
                open_connections: 0,
                total_connections: 0,
                bytes_up: 0,
                bytes_down: 0,
                latency_ms: None,
                last_error: None,
                weight: 1,
            }]
        } else {
            Vec::new()
        };
        StatsSnapshot {
            listen: "127.0.0.1:7890".parse().expect("addr"),
            mode,
            uptime_s: 1,
            connections_open: 0,
            connections_total: 0,
            requests_total: 0,
            rejected_total: 0,
            bytes_up: 0,
            bytes_down: 0,
            rates: Vec::new(),
            hosts: Vec::new(),
            apps: Vec::new(),
            connections: Vec::new(),
            dns: DnsStats::default(),
            strategy: Strategy::default(),
            upstreams,
            cache: CacheStats::default(),
        }
    }

    /// No engine, no scan, an empty environment, no home, nothing probed.
    pub fn inputs() -> LeakInputs {
        LeakInputs {
            engine: None,
            coverage: None,
            exit_ip: None,
            home: None,
            env: Vec::new(),
            root: PathBuf::from("/nonexistent-veil-root"),
            probe_network_state: false,
        }
    }
}
