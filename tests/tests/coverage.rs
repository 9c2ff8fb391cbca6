//! Client app attribution and the coverage scan, end to end: a real curl
//! through the real `veil` binary is named in its connection list and counted
//! as covered; a process with a TCP connection to a host in a network
//! namespace (off loopback, over a veth pair) is bypassing; a UDP socket is
//! UDP; the JSON carries the VPN column.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use veil_engine::{ClientApp, ClientLookup, Mode, UpstreamSpec};
use veil_tests::netns::Netns;
use veil_tests::{Origin, VeilProcess, eventually, output_text, proxy_url, start_engine};

/// A child process killed (and reaped) when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback listener that never accepts: connections to it complete in the
/// kernel's backlog and then wait for an answer that never comes.
fn silent_origin() -> (std::net::TcpListener, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/", listener.local_addr().expect("addr"));
    (listener, url)
}

fn start_veil(home: &std::path::Path) -> VeilProcess {
    VeilProcess::start(home, &["--listen", "127.0.0.1:0"], &[]).expect("veil run starts")
}

fn json_of(veil: &VeilProcess, args: &[&str]) -> Value {
    let out = veil.command(args);
    assert!(out.status.success(), "{}", output_text(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", output_text(&out)))
}

/// The app holding `pid` in a coverage report.
fn app_with_pid(report: &Value, pid: u32) -> Option<Value> {
    report["apps"]
        .as_array()?
        .iter()
        .find(|a| {
            a["pids"]
                .as_array()
                .is_some_and(|p| p.iter().any(|p| p.as_u64() == Some(u64::from(pid))))
        })
        .cloned()
}

fn assert_totals_add_up(report: &Value) {
    let t = &report["totals"];
    let n = |k: &str| t[k].as_u64().unwrap_or_else(|| panic!("totals.{k}: {t}"));
    assert_eq!(
        n("vpn_would_capture"),
        n("covered") + n("bypassing") + n("udp"),
        "{t}"
    );
    assert_eq!(
        n("apps"),
        n("covered") + n("bypassing") + n("udp") + n("local_only")
    );
    assert_eq!(
        n("apps"),
        report["apps"].as_array().map_or(0, |a| a.len()) as u64
    );
}

/// Polls `veil coverage --json` (at most 10 s) until `check` finds what it
/// wants in the report; returns the last report.
fn coverage_until(veil: &VeilProcess, check: impl Fn(&Value) -> bool) -> Value {
    let mut report = Value::Null;
    for _ in 0..20 {
        report = json_of(veil, &["coverage", "--json"]);
        if check(&report) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_through_veil_is_named_and_covered() {
    let home = tempfile::tempdir().expect("tempdir");
    let veil = start_veil(home.path());
    // An origin that never answers keeps the connection open while we look.
    let (_silent, silent_url) = silent_origin();
    let curl = Killed(
        Command::new("curl")
            .args(["-sS", "--max-time", "30", "-o", "/dev/null"])
            .args(["-x", &proxy_url(veil.addr), &silent_url])
            .stdin(Stdio::null())
            .spawn()
            .expect("curl runs"),
    );
    let pid = curl.0.id();

    let named = |status: &Value| {
        status["connections"].as_array().is_some_and(|c| {
            c.iter().any(|c| {
                c["app"]["pid"].as_u64() == Some(u64::from(pid)) && c["app"]["name"] == "curl"
            })
        })
    };
    let mut status = Value::Null;
    for _ in 0..100 {
        status = json_of(&veil, &["status", "--json"]);
        if named(&status) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        named(&status),
        "curl is named in the connection list: {status:#}"
    );
    let conn = status["connections"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["app"]["name"] == "curl"))
        .expect("curl's connection");
    assert_eq!(
        conn["app"]["exe"].as_str().map(|e| e.ends_with("/curl")),
        Some(true)
    );
    assert_eq!(conn["upstream"], Value::Null, "direct mode has no upstream");
    let apps = status["apps"].as_array().expect("apps");
    assert!(
        apps.iter()
            .any(|a| a["app"] == "curl" && a["connections"].as_u64() >= Some(1)),
        "{apps:?}"
    );

    let report = coverage_until(&veil, |r| {
        app_with_pid(r, pid).is_some_and(|a| a["through_veil"].as_u64() >= Some(1))
    });
    let app = app_with_pid(&report, pid).unwrap_or_else(|| panic!("curl listed: {report:#}"));
    assert_eq!(app["name"], "curl");
    assert_eq!(app["class"], "through_veil", "{app:#}");
    assert_eq!(app["vpn_captures"], true);
    assert!(
        app["known"]["remedy"]
            .as_str()
            .is_some_and(|r| r.contains("veil env")),
        "curl is a known family with a remedy: {app:#}"
    );
    assert_eq!(report["listen"], veil.addr.to_string());
    // Veil itself is not an app of its own.
    assert!(
        app_with_pid(&report, veil.child.id()).is_none(),
        "{report:#}"
    );
    assert!(report["totals"]["covered"].as_u64() >= Some(1));
    assert_totals_add_up(&report);

    let human = veil.command(&["coverage"]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(human.status.success(), "{}", output_text(&human));
    assert!(
        text.contains("covered,") && text.contains("a VPN would capture all"),
        "{text}"
    );
    assert!(
        text.contains("curl") && text.contains("through Veil"),
        "{text}"
    );
    drop(curl);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_tcp_is_bypassing_and_udp_is_udp() {
    let ns = Netns::create().unwrap_or_else(|e| panic!("{e}"));
    // The "internet" host: a listener in the namespace that holds what it
    // accepts, and gives up after 60 s.
    const SERVER: &str = "import socket,sys\n\
        s=socket.socket(); s.bind((sys.argv[1],0)); s.listen(8); s.settimeout(60)\n\
        print(s.getsockname()[1], flush=True)\n\
        held=[]\n\
        try:\n    while True: held.append(s.accept()[0])\n\
        except OSError: pass\n";
    let mut server = Killed(
        ns.spawn("python3", &["-c", SERVER, &ns.peer_ip.to_string()])
            .expect("python3 runs in the namespace"),
    );
    let mut line = String::new();
    BufReader::new(server.0.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("server port");
    let port: u16 = line.trim().parse().expect("server prints its port");
    let remote = SocketAddr::from((ns.peer_ip, port));

    // A second process holding a direct TCP connection to it.
    const CLIENT: &str = "import socket,sys\n\
        c=socket.create_connection((sys.argv[1],int(sys.argv[2])),timeout=10)\n\
        print('connected', flush=True)\n\
        sys.stdin.read()\n";
    let mut client = Killed(
        Command::new("python3")
            .args(["-c", CLIENT, &ns.peer_ip.to_string(), &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs"),
    );
    let mut line = String::new();
    BufReader::new(client.0.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("client output");
    assert_eq!(line.trim(), "connected");
    let client_pid = client.0.id();

    // This test process: a UDP socket aimed at the host, as QUIC would be.
    let udp = UdpSocket::bind("0.0.0.0:0").expect("udp bind");
    udp.connect((ns.peer_ip, 443)).expect("udp connect");

    let home = tempfile::tempdir().expect("tempdir");
    let veil = start_veil(home.path());
    let me = std::process::id();
    let report = coverage_until(&veil, |r| {
        app_with_pid(r, client_pid).is_some() && app_with_pid(r, me).is_some()
    });

    let bypass = app_with_pid(&report, client_pid)
        .unwrap_or_else(|| panic!("the direct client is listed: {report:#}"));
    assert_eq!(bypass["class"], "bypassing", "{bypass:#}");
    assert!(bypass["bypassing"].as_u64() >= Some(1));
    assert_eq!(bypass["vpn_captures"], true);
    let remotes: Vec<&str> = bypass["remotes"]
        .as_array()
        .expect("remotes")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(remotes.contains(&remote.to_string().as_str()), "{bypass:#}");

    let this = app_with_pid(&report, me).unwrap_or_else(|| panic!("the UDP holder: {report:#}"));
    assert_eq!(this["class"], "udp", "{this:#}");
    assert!(this["udp"].as_u64() >= Some(1));
    assert_eq!(this["vpn_captures"], true);
    let udp_remote = SocketAddr::from((ns.peer_ip, 443)).to_string();
    assert!(
        this["remotes"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r == udp_remote.as_str())),
        "{this:#}"
    );
    assert!(report["totals"]["bypassing"].as_u64() >= Some(1));
    assert!(report["totals"]["udp"].as_u64() >= Some(1));
    assert_totals_add_up(&report);
    assert!(report["scan_ms"].is_u64());
    drop((udp, client, server, ns));
}

#[test]
fn coverage_without_an_engine_scans_here_and_covers_nothing() {
    let home = tempfile::tempdir().expect("tempdir");
    // Compared against a listener nobody runs.
    std::fs::write(
        home.path().join("config.toml"),
        "[proxy]\nlisten = \"127.0.0.1:1\"\n",
    )
    .expect("config");
    let out = veil_tests::veil_process::veil_command(home.path(), &["coverage"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(text.contains("No Veil engine is running"), "{text}");
    assert!(text.contains("0 apps covered"), "{text}");

    let out = veil_tests::veil_process::veil_command(home.path(), &["coverage", "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["listen"], "127.0.0.1:1");
    assert_eq!(report["totals"]["covered"], 0);
    assert_totals_add_up(&report);
}

/// Names every client after a fixed app, or none.
#[derive(Debug)]
struct Fixed(Option<&'static str>);

impl ClientLookup for Fixed {
    fn lookup(&self, _: SocketAddr, clients: &[SocketAddr]) -> Vec<Option<ClientApp>> {
        let app = self.0.map(|name| ClientApp {
            pid: 4242,
            name: name.into(),
            exe: None,
        });
        vec![app; clients.len()]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_app_counters_and_the_upstream_of_a_connection() {
    let origin = Origin::start().await;
    let exit = start_engine(|_| {}).await;
    let url = format!("http://{}", exit.local_addr());
    let engine = start_engine(|c| {
        c.mode = Mode::Proxy;
        c.upstreams = vec![UpstreamSpec::new("exit", url.parse().expect("url"))];
        c.bypass = Vec::new();
        c.client_lookup = Some(Arc::new(Fixed(Some("fake-app"))));
    })
    .await;
    let unknown = start_engine(|c| c.client_lookup = Some(Arc::new(Fixed(None)))).await;

    // A tunnel through the pool to an origin that never answers, to see
    // the open connection.
    let (silent, silent_url) = silent_origin();
    let slow = Killed(
        Command::new("curl")
            .args(["-sS", "--max-time", "30", "-o", "/dev/null"])
            .args(["-p", "-x", &proxy_url(engine.local_addr()), &silent_url])
            .stdin(Stdio::null())
            .spawn()
            .expect("curl runs"),
    );
    let seen = eventually(Duration::from_secs(10), || {
        engine.stats().connections.iter().any(|c| {
            c.upstream.as_deref() == Some("exit")
                && c.app.as_ref().map(|a| a.name.as_str()) == Some("fake-app")
        })
    })
    .await;
    assert!(seen, "{:#?}", engine.stats().connections);
    // Closing the listener resets the tunnel's far end.
    drop((slow, silent));

    for _ in 0..2 {
        let out =
            veil_tests::curl(&["-x", &proxy_url(engine.local_addr()), &origin.url("/ip")]).await;
        assert_eq!(out.status, 200, "{out:?}");
        let out =
            veil_tests::curl(&["-x", &proxy_url(unknown.local_addr()), &origin.url("/ip")]).await;
        assert_eq!(out.status, 200, "{out:?}");
    }
    let closed = eventually(Duration::from_secs(10), || {
        engine.stats().connections_open == 0 && unknown.stats().connections_open == 0
    })
    .await;
    assert!(closed);
    // The tunnel was attributed (seen above); a quick request can close
    // before its lookup lands and then counts as "unknown", so only the
    // total is exact.
    let apps = engine.stats().apps;
    assert_eq!(
        apps.iter().map(|a| a.connections).sum::<u64>(),
        3,
        "{apps:?}"
    );
    let fake = apps
        .iter()
        .find(|a| a.app == "fake-app")
        .unwrap_or_else(|| panic!("{apps:?}"));
    assert!(fake.connections >= 1 && fake.bytes_down > 0 && fake.bytes_up > 0);
    assert!(
        apps.iter()
            .all(|a| a.app == "fake-app" || a.app == "unknown")
    );
    let apps = unknown.stats().apps;
    assert_eq!(apps.len(), 1, "{apps:?}");
    assert_eq!((apps[0].app.as_str(), apps[0].connections), ("unknown", 2));

    // Older JSON without the new fields still parses.
    let mut json = serde_json::to_value(engine.stats()).expect("json");
    json.as_object_mut().expect("object").remove("apps");
    let old: veil_engine::StatsSnapshot = serde_json::from_value(json).expect("parses");
    assert!(old.apps.is_empty());
}
