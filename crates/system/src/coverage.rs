//! The coverage scan: which apps on this machine actually go through Veil,
//! and what a full-system VPN would capture instead.
//!
//! [`scan`] reads the socket table once ([`crate::sockets`]), finds the
//! process holding each socket, and sorts every socket into one of four
//! kinds:
//!
//! - **through Veil**: a TCP connection to Veil's listener;
//! - **bypassing**: a TCP connection (established or being opened) to an
//!   address that is not this machine's: not loopback, and not the other end
//!   of another socket in the table. Inbound connections from other hosts
//!   count too: their bytes leave the machine without Veil;
//! - **UDP** (QUIC, DNS, calls, games): a UDP socket that is connected to,
//!   or bound to, anything but loopback. An HTTP/SOCKS5 proxy like Veil never
//!   carries UDP;
//! - **local only**: everything else: TCP listeners (a listening socket
//!   sends nothing by itself; its accepted connections are judged on their
//!   own), loopback TCP, UDP on loopback.
//!
//! Sockets are grouped per app (process name and executable; several
//! processes of one program are one app), and an app's class is the worst
//! of what it does: bypassing, then UDP, then through Veil, then local only.
//! A VPN would capture every app that sends anything off the machine
//! (through Veil, bypassing or UDP).
//!
//! Veil's own process (the one holding the listener) is left out: its
//! sockets are the listener, the connections it accepted and its outgoing
//! connections to upstreams and origins, which carry the covered apps'
//! traffic and are not an app of their own. Sockets whose process cannot be
//! read (other users' processes when Veil does not run as root) are grouped
//! under the app `unknown`. Short-lived sockets opened and closed between
//! two scans are not seen.
//!
//! Apps are matched against a data file of known families that ignore the
//! system proxy (`data/known-apps.toml`, embedded at build time), so the
//! report can say why and what to do on the system it runs on (a family may
//! give a Windows or macOS remedy of its own).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Instant, SystemTime};

use veil_engine::stats::unix_ms;

use serde::{Deserialize, Serialize};

use crate::sockets::{self, Holder, Proto, Socket, canonical, is_listener, state};

/// What one app does, worst first.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CoverageClass {
    Bypassing,
    Udp,
    ThroughVeil,
    LocalOnly,
}

impl CoverageClass {
    pub fn label(self) -> &'static str {
        match self {
            CoverageClass::Bypassing => "bypassing",
            CoverageClass::Udp => "UDP",
            CoverageClass::ThroughVeil => "through Veil",
            CoverageClass::LocalOnly => "local only",
        }
    }
}

/// A family of apps that ignore the system proxy, from the data file.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownApp {
    pub family: String,
    pub why: String,
    pub remedy: String,
}

/// One app with network sockets.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoverageApp {
    pub name: String,
    pub exe: Option<String>,
    pub pids: Vec<u32>,
    pub class: CoverageClass,
    /// Socket counts of each kind.
    pub through_veil: u32,
    pub bypassing: u32,
    pub udp: u32,
    pub local_only: u32,
    /// A few remote addresses it reaches directly (bypassing or UDP).
    pub remotes: Vec<String>,
    /// A full-system VPN would carry its traffic.
    pub vpn_captures: bool,
    pub known: Option<KnownApp>,
}

/// Apps per class; `vpn_would_capture` is every app that sends anything off
/// this machine.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoverageTotals {
    pub apps: u32,
    pub covered: u32,
    pub bypassing: u32,
    pub udp: u32,
    pub local_only: u32,
    pub vpn_would_capture: u32,
}

#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoverageReport {
    /// Veil's listener the scan compared against.
    pub listen: String,
    pub scanned_unix_ms: u64,
    /// How long the scan took.
    pub scan_ms: u64,
    pub totals: CoverageTotals,
    /// Worst class first, then by name.
    pub apps: Vec<CoverageApp>,
}

impl CoverageReport {
    /// "N apps covered, M bypassing, K using UDP; a VPN would capture all N+M+K".
    pub fn summary(&self) -> String {
        let t = &self.totals;
        let apps = |n: u32| if n == 1 { "app" } else { "apps" };
        format!(
            "{} {} covered, {} bypassing, {} using UDP; a VPN would capture all {}.",
            t.covered,
            apps(t.covered),
            t.bypassing,
            t.udp,
            t.vpn_would_capture
        )
    }
}

/// Remote addresses listed per app at most.
const MAX_REMOTES: usize = 5;
/// The app name of sockets whose process cannot be read.
pub const UNKNOWN_APP: &str = "unknown";

/// Scans this machine's sockets against Veil's listener `listen`.
pub fn scan(listen: SocketAddr) -> io::Result<CoverageReport> {
    let started = Instant::now();
    let mut table = sockets::table()?;
    sockets::resolve_owners(&mut table);
    let mut report = classify(listen, &table, sockets::process);
    report.scan_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// [`scan`] off the async runtime, as the control channel's answer to
/// `coverage`.
pub async fn reply(listen: SocketAddr) -> crate::control::Reply {
    use crate::control::Reply;
    match tokio::task::spawn_blocking(move || scan(listen)).await {
        Ok(Ok(report)) => Reply::Coverage {
            ok: true,
            coverage: Box::new(report),
        },
        Ok(Err(e)) => Reply::error(format!("coverage scan failed: {e}")),
        Err(e) => Reply::error(format!("coverage scan failed: {e}")),
    }
}

/// The kind of one socket, with the remote worth listing.
fn kind(s: &Socket, listen: SocketAddr, pairs: &HashSet<(SocketAddr, SocketAddr)>) -> Kind {
    let remote = canonical(s.remote);
    match s.proto {
        Proto::Tcp => {
            if s.state == state::LISTEN {
                Kind::LocalOnly
            } else if is_listener(s.remote, listen) {
                Kind::ThroughVeil
            } else if remote.ip().is_loopback()
                || pairs.contains(&(remote, canonical(s.local)))
                || (s.state == state::SYN_SENT && remote.ip().is_unspecified())
            {
                Kind::LocalOnly
            } else {
                Kind::Bypassing(Some(remote))
            }
        }
        Proto::Udp => {
            let local = canonical(s.local);
            let connected = remote.port() != 0;
            if connected && remote.ip().is_loopback() {
                Kind::LocalOnly
            } else if connected {
                Kind::Udp(Some(remote))
            } else if local.ip().is_loopback() {
                Kind::LocalOnly
            } else {
                Kind::Udp(None)
            }
        }
    }
}

enum Kind {
    ThroughVeil,
    Bypassing(Option<SocketAddr>),
    Udp(Option<SocketAddr>),
    LocalOnly,
}

#[derive(Default)]
struct Tally {
    pids: BTreeSet<u32>,
    through_veil: u32,
    bypassing: u32,
    udp: u32,
    local_only: u32,
    remotes: BTreeSet<String>,
}

/// The report from a socket table with its owners resolved and a process
/// lookup (apart from the OS, for tests).
fn classify(
    listen: SocketAddr,
    table: &[Socket],
    process: impl Fn(u32) -> Option<veil_engine::ClientApp>,
) -> CoverageReport {
    // Veil itself: whoever holds the listener.
    let veil: HashSet<u32> = table
        .iter()
        .filter(|s| s.proto == Proto::Tcp && s.state == state::LISTEN)
        .filter(|s| canonical(s.local) == canonical(listen) || is_listener(s.local, listen))
        .filter_map(Socket::pid)
        .collect();
    let pairs: HashSet<(SocketAddr, SocketAddr)> = table
        .iter()
        .filter(|s| s.proto == Proto::Tcp)
        .map(|s| (canonical(s.local), canonical(s.remote)))
        .collect();

    let mut names: HashMap<u32, (String, Option<String>)> = HashMap::new();
    let mut apps: BTreeMap<(String, Option<String>), Tally> = BTreeMap::new();
    for s in table {
        if s.holder == Holder::Nobody || s.state == state::TIME_WAIT {
            continue;
        }
        let pid = s.pid();
        if pid.is_some_and(|p| veil.contains(&p)) {
            continue;
        }
        let key = match pid {
            Some(pid) => names
                .entry(pid)
                .or_insert_with(|| match process(pid) {
                    Some(app) => (app.name, app.exe),
                    None => (UNKNOWN_APP.to_owned(), None),
                })
                .clone(),
            None => (UNKNOWN_APP.to_owned(), None),
        };
        let tally = apps.entry(key).or_default();
        tally.pids.extend(pid);
        match kind(s, listen, &pairs) {
            Kind::ThroughVeil => tally.through_veil += 1,
            Kind::LocalOnly => tally.local_only += 1,
            Kind::Bypassing(remote) => {
                tally.bypassing += 1;
                tally.remotes.extend(remote.map(|r| r.to_string()));
            }
            Kind::Udp(remote) => {
                tally.udp += 1;
                tally.remotes.extend(remote.map(|r| r.to_string()));
            }
        }
    }

    let mut totals = CoverageTotals::default();
    let mut out: Vec<CoverageApp> = apps
        .into_iter()
        .map(|((name, exe), t)| {
            let class = if t.bypassing > 0 {
                CoverageClass::Bypassing
            } else if t.udp > 0 {
                CoverageClass::Udp
            } else if t.through_veil > 0 {
                CoverageClass::ThroughVeil
            } else {
                CoverageClass::LocalOnly
            };
            let vpn_captures = class != CoverageClass::LocalOnly;
            totals.apps += 1;
            match class {
                CoverageClass::ThroughVeil => totals.covered += 1,
                CoverageClass::Bypassing => totals.bypassing += 1,
                CoverageClass::Udp => totals.udp += 1,
                CoverageClass::LocalOnly => totals.local_only += 1,
            }
            totals.vpn_would_capture += u32::from(vpn_captures);
            let known = known_app(&name, exe.as_deref());
            CoverageApp {
                name,
                exe,
                pids: t.pids.into_iter().collect(),
                class,
                through_veil: t.through_veil,
                bypassing: t.bypassing,
                udp: t.udp,
                local_only: t.local_only,
                remotes: t.remotes.into_iter().take(MAX_REMOTES).collect(),
                vpn_captures,
                known,
            }
        })
        .collect();
    out.sort_by(|a, b| a.class.cmp(&b.class).then_with(|| a.name.cmp(&b.name)));
    CoverageReport {
        listen: listen.to_string(),
        scanned_unix_ms: unix_ms(SystemTime::now()),
        scan_ms: 0,
        totals,
        apps: out,
    }
}

/// The data file of known families, as written.
pub const KNOWN_APPS_TOML: &str = include_str!("../data/known-apps.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct KnownAppsFile {
    family: Vec<KnownFamily>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct KnownFamily {
    family: String,
    why: String,
    remedy: String,
    /// What to do on Windows or macOS, where it differs from `remedy`.
    #[serde(default)]
    remedy_windows: Option<String>,
    #[serde(default)]
    remedy_macos: Option<String>,
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    exe_contains: Vec<String>,
}

fn parse_known_apps(text: &str) -> Result<Vec<KnownFamily>, String> {
    let file: KnownAppsFile = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut families = HashSet::new();
    let mut names = HashMap::new();
    for f in &file.family {
        if !families.insert(f.family.to_lowercase()) {
            return Err(format!("family {:?} appears twice", f.family));
        }
        let per_os = [
            ("remedy_windows", &f.remedy_windows),
            ("remedy_macos", &f.remedy_macos),
        ];
        let per_os = per_os
            .iter()
            .filter_map(|(field, value)| Some((*field, value.as_ref()?)));
        for (field, value) in [
            ("family", &f.family),
            ("why", &f.why),
            ("remedy", &f.remedy),
        ]
        .into_iter()
        .chain(per_os)
        {
            if value.trim().is_empty() {
                return Err(format!("family {:?} has an empty {field}", f.family));
            }
        }
        let matchers = f.names.iter().chain(&f.exe_contains);
        if f.names.is_empty() && f.exe_contains.is_empty()
            || matchers.clone().any(|m| m.trim().is_empty())
        {
            return Err(format!(
                "family {:?} needs non-empty names or exe_contains",
                f.family
            ));
        }
        for name in &f.names {
            if let Some(other) = names.insert(name.to_lowercase(), f.family.clone()) {
                return Err(format!(
                    "name {name:?} is in both {other:?} and {:?}",
                    f.family
                ));
            }
        }
    }
    Ok(file.family)
}

fn known_families() -> &'static [KnownFamily] {
    static FAMILIES: OnceLock<Vec<KnownFamily>> = OnceLock::new();
    FAMILIES.get_or_init(|| {
        parse_known_apps(KNOWN_APPS_TOML).unwrap_or_else(|e| {
            // A test checks the file; a broken build still scans.
            tracing::warn!("known-apps.toml is broken: {e}");
            Vec::new()
        })
    })
}

/// The systems whose remedies the data file tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Os {
    Windows,
    Macos,
    /// Linux and the other Unix desktops.
    Unix,
}

impl Os {
    /// The system Veil runs on.
    pub fn current() -> Os {
        if cfg!(windows) {
            Os::Windows
        } else if cfg!(target_os = "macos") {
            Os::Macos
        } else {
            Os::Unix
        }
    }
}

impl KnownFamily {
    fn remedy_on(&self, os: Os) -> &str {
        let specific = match os {
            Os::Windows => self.remedy_windows.as_deref(),
            Os::Macos => self.remedy_macos.as_deref(),
            Os::Unix => None,
        };
        specific.unwrap_or(&self.remedy)
    }
}

/// The known family of an app, by process name first, then by path, with
/// the remedy for this system.
pub fn known_app(name: &str, exe: Option<&str>) -> Option<KnownApp> {
    known_app_on(Os::current(), name, exe)
}

/// [`known_app`] with the remedy for `os`.
pub fn known_app_on(os: Os, name: &str, exe: Option<&str>) -> Option<KnownApp> {
    let name = name.to_lowercase();
    let bare = name.strip_suffix(".exe").unwrap_or(&name);
    let exe = exe.map(|e| e.to_lowercase().replace('\\', "/"));
    let families = known_families();
    let by_name = families.iter().find(|f| {
        f.names.iter().any(|n| {
            let n = n.to_lowercase();
            n == name || n.strip_suffix(".exe").unwrap_or(&n) == bare
        })
    });
    let by_exe = || {
        let exe = exe.as_deref()?;
        families.iter().find(|f| {
            f.exe_contains
                .iter()
                .any(|piece| exe.contains(&piece.to_lowercase()))
        })
    };
    by_name.or_else(by_exe).map(|f| KnownApp {
        family: f.family.clone(),
        why: f.why.clone(),
        remedy: f.remedy_on(os).to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use veil_engine::ClientApp;

    #[test]
    fn known_apps_file_is_valid() {
        let families = parse_known_apps(KNOWN_APPS_TOML).expect("known-apps.toml is valid");
        assert!(families.len() >= 10, "{} families", families.len());
        for f in &families {
            assert!(!f.why.trim().is_empty() && !f.remedy.trim().is_empty());
            assert!(!(f.names.is_empty() && f.exe_contains.is_empty()));
        }
        assert_eq!(known_families().len(), families.len());
    }

    #[test]
    fn known_apps_checks_catch_mistakes() {
        let twice = "[[family]]\nfamily='A'\nwhy='w'\nremedy='r'\nnames=['x']\n\
                     [[family]]\nfamily='a'\nwhy='w'\nremedy='r'\nnames=['y']\n";
        assert!(
            parse_known_apps(twice)
                .expect_err("refused")
                .contains("twice")
        );
        let no_matcher = "[[family]]\nfamily='A'\nwhy='w'\nremedy='r'\n";
        assert!(
            parse_known_apps(no_matcher)
                .expect_err("refused")
                .contains("names")
        );
        let empty_mac =
            "[[family]]\nfamily='A'\nwhy='w'\nremedy='r'\nremedy_macos=''\nnames=['x']\n";
        assert!(
            parse_known_apps(empty_mac)
                .expect_err("refused")
                .contains("remedy_macos")
        );
        let typo = "[[family]]\nfamily='A'\nwhy='w'\nremedy='r'\nremedy_win='r'\nnames=['x']\n";
        assert!(parse_known_apps(typo).is_err());
        let no_remedy = "[[family]]\nfamily='A'\nwhy='w'\nremedy=' '\nnames=['x']\n";
        assert!(
            parse_known_apps(no_remedy)
                .expect_err("refused")
                .contains("remedy")
        );
        let shared = "[[family]]\nfamily='A'\nwhy='w'\nremedy='r'\nnames=['x']\n\
                      [[family]]\nfamily='B'\nwhy='w'\nremedy='r'\nnames=['X']\n";
        assert!(
            parse_known_apps(shared)
                .expect_err("refused")
                .contains("both")
        );
    }

    #[test]
    fn known_apps_match_by_name_and_path() {
        let curl = known_app("curl", Some("/usr/bin/curl")).expect("curl is known");
        assert!(curl.remedy.contains("veil env"), "{curl:?}");
        assert!(known_app("Spotify.exe", None).is_some());
        let uwp = known_app_on(
            Os::Windows,
            "x",
            Some(r"C:\Program Files\WindowsApps\Foo\foo.exe"),
        )
        .expect("a Store app is known");
        assert!(uwp.remedy.contains("LoopbackExempt"), "{uwp:?}");
        assert!(known_app("my-own-tool", Some("/opt/mine/tool")).is_none());
    }

    #[test]
    fn remedies_follow_the_system() {
        let on = |os, name: &str| known_app_on(os, name, None).expect(name).remedy;
        assert!(on(Os::Unix, "curl").contains("veil env"));
        assert!(on(Os::Macos, "curl").contains("veil env"));
        let windows = on(Os::Windows, "curl.exe");
        assert!(windows.contains("powershell"), "{windows}");
        assert!(!windows.contains("eval"), "{windows}");
        // A family without a Windows remedy gives its general one.
        assert_eq!(on(Os::Windows, "spotify"), on(Os::Unix, "spotify"));
        assert!(on(Os::Windows, "putty.exe").contains("SOCKS"));
        // Every family that says `eval` (a POSIX shell) has a Windows remedy.
        for f in parse_known_apps(KNOWN_APPS_TOML).expect("valid") {
            if f.remedy.contains("eval") {
                let w = f.remedy_on(Os::Windows);
                assert!(!w.contains("eval"), "{}: {w}", f.family);
            }
        }
    }

    fn tcp(local: &str, remote: &str, st: u8, inode: u64) -> Socket {
        Socket {
            proto: Proto::Tcp,
            local: local.parse().expect("addr"),
            remote: remote.parse().expect("addr"),
            state: st,
            uid: None,
            holder: if inode == 0 {
                Holder::Nobody
            } else {
                Holder::Inode(inode)
            },
        }
    }

    fn udp(local: &str, remote: &str, inode: u64) -> Socket {
        Socket {
            proto: Proto::Udp,
            ..tcp(local, remote, state::CLOSE, inode)
        }
    }

    #[test]
    fn classifies_sockets_per_app() {
        let listen: SocketAddr = "127.0.0.1:7890".parse().expect("addr");
        let table = vec![
            // Veil: listener, an accepted client and an origin connection.
            tcp("127.0.0.1:7890", "0.0.0.0:0", state::LISTEN, 1),
            tcp("127.0.0.1:7890", "127.0.0.1:40000", state::ESTABLISHED, 2),
            tcp("10.0.0.5:41000", "93.184.215.14:443", state::ESTABLISHED, 3),
            // curl through Veil.
            tcp("127.0.0.1:40000", "127.0.0.1:7890", state::ESTABLISHED, 10),
            // ssh straight out.
            tcp("10.0.0.5:42000", "198.51.100.7:22", state::ESTABLISHED, 20),
            // A browser: through Veil and QUIC.
            tcp("127.0.0.1:40001", "127.0.0.1:7890", state::ESTABLISHED, 30),
            udp("0.0.0.0:50000", "142.250.1.1:443", 31),
            // A local server and its local client.
            tcp("127.0.0.1:5432", "0.0.0.0:0", state::LISTEN, 40),
            tcp("127.0.0.1:5432", "127.0.0.1:43000", state::ESTABLISHED, 41),
            tcp("10.0.0.5:43001", "10.0.0.5:5433", state::ESTABLISHED, 42),
            tcp("10.0.0.5:5433", "10.0.0.5:43001", state::ESTABLISHED, 43),
            udp("127.0.0.53:53", "0.0.0.0:0", 44),
            // Someone else's socket, owner unreadable.
            tcp("10.0.0.5:44000", "203.0.113.9:80", state::ESTABLISHED, 50),
            // Gone already.
            tcp("127.0.0.1:45000", "127.0.0.1:7890", state::TIME_WAIT, 0),
        ];
        let owners: HashMap<u64, u32> = [
            (1, 100),
            (2, 100),
            (3, 100),
            (10, 200),
            (20, 300),
            (30, 400),
            (31, 401),
            (40, 500),
            (41, 500),
            (42, 500),
            (43, 500),
            (44, 500),
        ]
        .into();
        let names = |pid: u32| {
            let (name, exe) = match pid {
                100 => ("veil", "/usr/bin/veil"),
                200 => ("curl", "/usr/bin/curl"),
                300 => ("ssh", "/usr/bin/ssh"),
                400 | 401 => ("firefox", "/usr/lib/firefox/firefox"),
                500 => ("postgres", "/usr/lib/postgresql/bin/postgres"),
                _ => return None,
            };
            Some(ClientApp {
                pid,
                name: name.into(),
                exe: Some(exe.into()),
            })
        };
        // What resolving the owners does: inodes whose process is known.
        let table: Vec<Socket> = table
            .into_iter()
            .map(|mut s| {
                if let Holder::Inode(inode) = s.holder
                    && let Some(&pid) = owners.get(&inode)
                {
                    s.holder = Holder::Process(pid);
                }
                s
            })
            .collect();
        // A row the OS lists without its process (Wine's Windows tables).
        let mut table = table;
        table.push(Socket {
            holder: Holder::Unknown,
            ..tcp("10.0.0.5:44001", "203.0.113.9:443", state::ESTABLISHED, 0)
        });
        let r = classify(listen, &table, names);
        let by = |n: &str| r.apps.iter().find(|a| a.name == n).expect(n);
        assert!(r.apps.iter().all(|a| a.name != "veil"), "{r:#?}");
        assert_eq!(by("curl").class, CoverageClass::ThroughVeil);
        assert!(by("curl").known.is_some());
        assert_eq!(by("ssh").class, CoverageClass::Bypassing);
        assert_eq!(by("ssh").remotes, vec!["198.51.100.7:22"]);
        let firefox = by("firefox");
        assert_eq!(firefox.class, CoverageClass::Udp);
        assert_eq!((firefox.through_veil, firefox.udp), (1, 1));
        assert_eq!(firefox.pids, vec![400, 401]);
        let pg = by("postgres");
        assert_eq!(
            (pg.class, pg.local_only, pg.vpn_captures),
            (CoverageClass::LocalOnly, 5, false)
        );
        assert_eq!(by(UNKNOWN_APP).class, CoverageClass::Bypassing);
        assert_eq!(by(UNKNOWN_APP).bypassing, 2);
        assert_eq!(
            r.totals,
            CoverageTotals {
                apps: 5,
                covered: 1,
                bypassing: 2,
                udp: 1,
                local_only: 1,
                vpn_would_capture: 4,
            }
        );
        assert_eq!(r.apps[0].class, CoverageClass::Bypassing);
        assert_eq!(
            r.summary(),
            "1 app covered, 2 bypassing, 1 using UDP; a VPN would capture all 4."
        );
        let json = serde_json::to_value(&r).expect("json");
        assert_eq!(json["apps"][0]["class"], "bypassing");
        assert_eq!(json["totals"]["vpn_would_capture"], 4);
    }
}
