//! The masked-IP check against echo endpoints on loopback: the answer seen
//! directly and through Veil, with Squid as the upstream leaving from
//! 127.0.0.2, so the two addresses differ exactly when Veil masks.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use veil_engine::{EngineHandle, Mode};
use veil_system::ipcheck::{self, IpCheckSettings, IpVerdict, ProxyRoute};
use veil_tests::peers::{Squid, spec};
use veil_tests::veil_process::veil_command;
use veil_tests::{Origin, VeilProcess, output_text, start_engine};

const SQUID_EXIT: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// How an echo endpoint answers.
#[derive(Clone, Copy)]
enum Style {
    /// `ip=ADDRESS` among other `key=value` lines, like `cdn-cgi/trace`.
    Trace,
    /// Accepts, reads the request, and never answers.
    Hang,
}

/// A one-route echo server on 127.0.0.1 that records who asked and with
/// what head; stops when dropped.
struct Echo {
    addr: SocketAddr,
    task: JoinHandle<()>,
    /// (the peer's address, the request head) of each request.
    seen: Arc<Mutex<Vec<(std::net::IpAddr, String)>>>,
}

impl Echo {
    async fn start(style: Style) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("echo binds");
        let addr = listener.local_addr().expect("echo addr");
        let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let seen: Arc<Mutex<Vec<(std::net::IpAddr, String)>>> = Arc::default();
        let record = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, peer)) = listener.accept().await {
                let held = held.clone();
                let record = record.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    record.lock().expect("seen").push((
                        peer.ip().to_canonical(),
                        String::from_utf8_lossy(&head).into(),
                    ));
                    match style {
                        Style::Hang => held.lock().expect("held").push(stream),
                        Style::Trace => {
                            let ip = peer.ip().to_canonical();
                            let body = format!(
                                "fl=29f1\nh=echo.test\nip={ip}\nts=1700000000.123\n\
                                 visit_scheme=http\nuag=veil\nwarp=off\n"
                            );
                            let answer = format!(
                                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\
                                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                                body.len()
                            );
                            let _ = stream.write_all(answer.as_bytes()).await;
                            let _ = stream.shutdown().await;
                        }
                    }
                });
            }
        });
        Self { addr, task, seen }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn seen(&self) -> Vec<(std::net::IpAddr, String)> {
        self.seen.lock().expect("seen").clone()
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `endpoints` through Veil, and directly the same servers spelled
/// `localhost:PORT`: these tests are about the verdict, so one loopback
/// server answers both sides (the tests of the separation below use two).
/// No pause between the sides.
fn settings(endpoints: &[String], timeout_ms: u64) -> IpCheckSettings {
    IpCheckSettings {
        endpoints: endpoints.to_vec(),
        direct_endpoints: endpoints
            .iter()
            .map(|e| e.replacen("127.0.0.1", "localhost", 1))
            .collect(),
        endpoints_v6: Vec::new(),
        direct: true,
        timeout: Duration::from_millis(timeout_ms),
        delay: (Duration::ZERO, Duration::ZERO),
    }
}

/// An engine through Squid with nothing bypassed (the endpoints are on
/// loopback, which the default bypass list sends direct).
async fn through_squid(squid: &Squid) -> EngineHandle {
    start_engine(|c| {
        c.mode = Mode::Proxy;
        c.bypass = vec![];
        c.upstreams = vec![spec("squid", &squid.url(), None)];
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_leaving_from_another_address_is_masked() {
    let squid = Squid::start(SQUID_EXIT).await;
    let engine = through_squid(&squid).await;
    let trace = Echo::start(Style::Trace).await;
    let origin = Origin::start().await;
    for endpoint in [trace.url("/cdn-cgi/trace"), origin.url("/ip")] {
        let route = ProxyRoute::of(&engine, &[], &[]);
        let report = ipcheck::check(
            &settings(std::slice::from_ref(&endpoint), 10_000),
            Some(&route),
        )
        .await;
        assert_eq!(report.verdict, IpVerdict::Masked, "{endpoint}: {report:#?}");
        assert_eq!(
            report.direct.ip.as_deref(),
            Some("127.0.0.1"),
            "{report:#?}"
        );
        assert_eq!(
            report.via_proxy.ip.as_deref(),
            Some("127.0.0.2"),
            "{report:#?}"
        );
        assert_eq!(
            report.via_proxy.endpoint.as_deref(),
            Some(endpoint.as_str())
        );
        assert!(
            report.reason.contains("127.0.0.1") && report.reason.contains("127.0.0.2"),
            "{}",
            report.reason
        );
        assert!(report.checked_unix_ms > 0);
    }
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn direct_mode_and_bypass_rules_are_not_masked_and_say_why() {
    let origin = Origin::start().await;
    let endpoints = [origin.url("/ip")];

    let engine = start_engine(|c| {
        c.mode = Mode::Direct;
        c.bypass = vec![];
    })
    .await;
    let route = ProxyRoute::of(&engine, &[], &[]);
    let report = ipcheck::check(&settings(&endpoints, 10_000), Some(&route)).await;
    assert_eq!(report.verdict, IpVerdict::NotMasked, "{report:#?}");
    assert_eq!(report.direct.ip, report.via_proxy.ip);
    assert!(report.reason.contains("direct mode"), "{}", report.reason);
    engine.shutdown().await;

    // Proxy mode, but loopback is on the (default) bypass list.
    let squid = Squid::start(SQUID_EXIT).await;
    let bypass = vec!["127.0.0.0/8".to_string()];
    let engine = start_engine(|c| {
        c.mode = Mode::Proxy;
        c.bypass = bypass.clone();
        c.upstreams = vec![spec("squid", &squid.url(), None)];
    })
    .await;
    let route = ProxyRoute::of(&engine, &bypass, &[]);
    let report = ipcheck::check(&settings(&endpoints, 10_000), Some(&route)).await;
    assert_eq!(report.verdict, IpVerdict::NotMasked, "{report:#?}");
    assert_eq!(report.via_proxy.ip.as_deref(), Some("127.0.0.1"));
    assert!(
        report.reason.contains("bypass entry \"127.0.0.0/8\""),
        "{}",
        report.reason
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_endpoint_is_skipped_after_its_timeout() {
    // Direct mode: the skipping is the same on both paths, and one Squid
    // fewer starts beside the other tests.
    let engine = start_engine(|c| c.bypass = vec![]).await;
    let hang = Echo::start(Style::Hang).await;
    let trace = Echo::start(Style::Trace).await;
    let timeout_ms = 1000;
    let endpoints = [hang.url("/"), trace.url("/cdn-cgi/trace")];
    let route = ProxyRoute::of(&engine, &[], &[]);
    let started = Instant::now();
    let settings_used = settings(&endpoints, timeout_ms);
    let report = ipcheck::check(&settings_used, Some(&route)).await;
    let took = started.elapsed();
    assert_eq!(report.verdict, IpVerdict::NotMasked, "{report:#?}");
    for (probe, asked) in [
        (&report.direct, &settings_used.direct_endpoints),
        (&report.via_proxy, &settings_used.endpoints),
    ] {
        assert_eq!(probe.endpoint.as_deref(), Some(asked[1].as_str()));
        assert_eq!(probe.failures.len(), 1, "{probe:#?}");
        assert_eq!(probe.failures[0].endpoint, asked[0]);
        assert!(
            probe.failures[0].error.contains("1000 ms"),
            "{:?}",
            probe.failures[0]
        );
        assert!(probe.elapsed_ms >= timeout_ms, "{probe:#?}");
    }
    // One timeout per side (the sides run one after the other), not more.
    assert!(
        took < Duration::from_millis(2 * timeout_ms + 3000),
        "took {took:?}"
    );

    // Nothing answers at all: unknown, naming the endpoint and how it failed.
    let report = ipcheck::check(&settings(&endpoints[..1], timeout_ms), Some(&route)).await;
    assert_eq!(report.verdict, IpVerdict::Unknown, "{report:#?}");
    assert!(
        report.reason.contains(&endpoints[0]) && report.reason.contains("no answer within"),
        "{}",
        report.reason
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_endpoint_is_reported_and_the_next_one_answers() {
    let origin = Origin::start().await;
    // A port that was free a moment ago: nothing listens there.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        l.local_addr().expect("addr")
    };
    let engine = start_engine(|c| c.bypass = vec![]).await;
    let endpoints = [format!("http://{closed}/"), origin.url("/ip")];
    let route = ProxyRoute::of(&engine, &[], &[]);
    let report = ipcheck::check(&settings(&endpoints, 5000), Some(&route)).await;
    assert_eq!(report.verdict, IpVerdict::NotMasked, "{report:#?}");
    assert_eq!(report.direct.failures.len(), 1, "{report:#?}");
    assert!(
        report.direct.failures[0].error.contains("connect"),
        "{:?}",
        report.direct.failures
    );
    // Through Veil the refusal is Veil's 502.
    assert!(
        report.via_proxy.failures[0].error.contains("502"),
        "{:?}",
        report.via_proxy.failures
    );
    engine.shutdown().await;
}

fn write_config(home: &std::path::Path, text: &str) {
    std::fs::create_dir_all(home).expect("home");
    std::fs::write(home.join("config.toml"), text).expect("config");
}

#[tokio::test(flavor = "multi_thread")]
async fn veil_ip_asks_the_running_engine() {
    let squid = Squid::start(SQUID_EXIT).await;
    let trace = Echo::start(Style::Trace).await;
    let home = tempfile::tempdir().expect("home");
    let home = home.path().to_path_buf();
    write_config(
        &home,
        &format!(
            "[proxy]\nbypass = []\n[ipcheck]\nendpoints = [\"{}\"]\n\
             direct_endpoints = [\"{}\"]\ntimeout_ms = 5000\ndelay_min_ms = 0\ndelay_max_ms = 0\n",
            trace.url("/cdn-cgi/trace"),
            trace
                .url("/cdn-cgi/trace")
                .replacen("127.0.0.1", "localhost", 1)
        ),
    );

    // No engine: only the direct side, and the verdict says why.
    let out = {
        let home = home.clone();
        tokio::task::spawn_blocking(move || veil_command(&home, &["ip", "--json"]))
            .await
            .expect("veil ip")
    };
    assert!(out.status.success(), "{}", output_text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["verdict"], "unknown", "{report}");
    assert_eq!(report["direct"]["ip"], "127.0.0.1", "{report}");
    assert!(
        report["reason"]
            .as_str()
            .is_some_and(|r| r.contains("no Veil engine")),
        "{report}"
    );

    let squid_url = squid.url();
    let veil = {
        let home = home.clone();
        tokio::task::spawn_blocking(move || {
            VeilProcess::start(
                &home,
                &["--listen", "127.0.0.1:0", "--upstream", &squid_url],
                &[],
            )
        })
        .await
        .expect("start task")
        .expect("veil run starts")
    };
    let veil = Arc::new(Mutex::new(veil));
    let run = |args: &'static [&'static str]| {
        let veil = veil.clone();
        tokio::task::spawn_blocking(move || veil.lock().expect("veil").command(args))
    };
    let out = run(&["ip", "--json"]).await.expect("veil ip");
    assert!(out.status.success(), "{}", output_text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["verdict"], "masked", "{report}");
    assert_eq!(report["direct"]["ip"], "127.0.0.1", "{report}");
    assert_eq!(report["via_proxy"]["ip"], "127.0.0.2", "{report}");

    let out = run(&["ip"]).await.expect("veil ip");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(
        text.contains("masked") && text.contains("127.0.0.2") && text.contains("127.0.0.1"),
        "{text}"
    );
    assert!(veil.lock().expect("veil").terminate(), "veil run stops");
}

/// The check says nothing about itself (no User-Agent of Veil's own) and
/// never takes an answer from a cache: an endpoint that answers with
/// `max-age` is asked again through Veil's own (caching) listener on the
/// next check, instead of a stored, possibly old, exit address.
#[tokio::test(flavor = "multi_thread")]
async fn probes_carry_no_user_agent_and_bypass_caches() {
    let origin = veil_tests::ScriptedOrigin::start().await;
    origin.script(
        "/fixed",
        veil_tests::Script::ok("192.0.2.7", &[("cache-control", "max-age=600")]),
    );
    let engine = start_engine(|c| c.bypass = vec![]).await;
    let endpoint = origin.url("/fixed");
    for _ in 0..2 {
        let route = ProxyRoute::of(&engine, &[], &[]);
        let report = ipcheck::check(
            &settings(std::slice::from_ref(&endpoint), 10_000),
            Some(&route),
        )
        .await;
        assert_eq!(
            report.via_proxy.ip.as_deref(),
            Some("192.0.2.7"),
            "{report:#?}"
        );
    }
    assert_eq!(
        origin.hits("/fixed"),
        4,
        "two probes per check, none from a cache"
    );
    for seen in origin.seen("/fixed") {
        assert!(
            seen.headers.get("user-agent").is_none(),
            "{:?}",
            seen.headers
        );
        let cc = seen
            .headers
            .get("cache-control")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(cc.contains("no-store"), "{cc}");
    }
    engine.shutdown().await;
}

/// Two endpoints that record who asked: the proxied one is asked only
/// through Veil (from Squid's exit, 127.0.0.2), the direct one only from
/// this machine (127.0.0.1), never one of them both ways; a direct entry
/// that is also a proxied endpoint is skipped; nothing names Veil.
#[tokio::test(flavor = "multi_thread")]
async fn the_two_sides_ask_different_endpoints_and_never_the_same_one() {
    let squid = Squid::start(SQUID_EXIT).await;
    let engine = through_squid(&squid).await;
    let proxied = Echo::start(Style::Trace).await;
    let direct = Echo::start(Style::Trace).await;
    let settings = IpCheckSettings {
        endpoints: vec![proxied.url("/cdn-cgi/trace")],
        // The proxied endpoint first: skipped, so the direct one answers.
        direct_endpoints: vec![proxied.url("/other"), direct.url("/cdn-cgi/trace")],
        endpoints_v6: Vec::new(),
        direct: true,
        timeout: Duration::from_secs(10),
        delay: (Duration::ZERO, Duration::ZERO),
    };
    let route = ProxyRoute::of(&engine, &[], &[]);
    let report = ipcheck::check(&settings, Some(&route)).await;
    assert_eq!(report.verdict, IpVerdict::Masked, "{report:#?}");
    assert!(!report.direct_off);
    assert_eq!(
        report.direct.ip.as_deref(),
        Some("127.0.0.1"),
        "{report:#?}"
    );
    assert_eq!(
        report.direct.endpoint.as_deref(),
        Some(direct.url("/cdn-cgi/trace").as_str())
    );
    assert!(
        report
            .direct
            .failures
            .iter()
            .any(|f| f.endpoint == proxied.url("/other")
                && f.error.contains("also asked through Veil")),
        "{report:#?}"
    );
    let proxied_seen = proxied.seen();
    assert_eq!(proxied_seen.len(), 1, "{proxied_seen:?}");
    assert!(
        proxied_seen
            .iter()
            .all(|(ip, _)| ip.to_string() == "127.0.0.2"),
        "the proxied endpoint never sees this machine: {proxied_seen:?}"
    );
    let direct_seen = direct.seen();
    assert_eq!(direct_seen.len(), 1, "{direct_seen:?}");
    assert!(
        direct_seen
            .iter()
            .all(|(ip, _)| ip.to_string() == "127.0.0.1"),
        "{direct_seen:?}"
    );
    for (_, head) in proxied_seen.iter().chain(&direct_seen) {
        let lower = head.to_ascii_lowercase();
        assert!(!lower.contains("user-agent"), "{head}");
        assert!(!lower.contains("veil"), "nothing names Veil: {head}");
    }
    engine.shutdown().await;
}

/// "Check my real IP directly" off: no direct request at all, and the
/// verdict says it rests on the exit IP alone.
#[tokio::test(flavor = "multi_thread")]
async fn with_the_direct_check_off_nothing_is_asked_directly() {
    let squid = Squid::start(SQUID_EXIT).await;
    let engine = through_squid(&squid).await;
    let proxied = Echo::start(Style::Trace).await;
    let direct = Echo::start(Style::Trace).await;
    let settings = IpCheckSettings {
        endpoints: vec![proxied.url("/cdn-cgi/trace")],
        direct_endpoints: vec![direct.url("/cdn-cgi/trace")],
        endpoints_v6: Vec::new(),
        direct: false,
        timeout: Duration::from_secs(10),
        delay: (Duration::ZERO, Duration::ZERO),
    };
    let route = ProxyRoute::of(&engine, &[], &[]);
    let report = ipcheck::check(&settings, Some(&route)).await;
    assert!(report.direct_off);
    assert_eq!(report.verdict, IpVerdict::Masked, "{report:#?}");
    assert_eq!(report.via_proxy.ip.as_deref(), Some("127.0.0.2"));
    assert!(report.direct.ip.is_none() && report.direct.failures.is_empty());
    assert!(report.reason.contains("exit IP alone"), "{}", report.reason);
    assert!(
        direct.seen().is_empty(),
        "no direct request: {:?}",
        direct.seen()
    );
    // Without an engine, nothing at all.
    let report = ipcheck::check(&settings, None).await;
    assert!(
        report.reason.contains("direct check is off"),
        "{}",
        report.reason
    );
    assert!(direct.seen().is_empty());
    engine.shutdown().await;
}

/// Each upstream's exit is asked through that upstream alone, per address
/// family: Squid leaves from 127.0.0.2 over IPv4 and from ::1 over IPv6;
/// microsocks leaves from 127.0.0.3; an IPv6 endpoint that does not answer
/// leaves the IPv6 exit empty, with the reason. No request goes direct (the
/// endpoints see only the upstreams' addresses).
#[tokio::test]
async fn each_upstream_exit_is_checked_through_it_alone_by_address_family() {
    use veil_tests::peers::Microsocks;
    let v4 = Origin::start().await;
    let v6 = Origin::start_on("[::1]:0").await;
    let squid = Squid::start(SQUID_EXIT).await;
    let socks = Microsocks::start(Ipv4Addr::new(127, 0, 0, 3), None).await;
    let settings = IpCheckSettings {
        endpoints: vec![v4.url("/ip")],
        endpoints_v6: vec![v6.url("/ip")],
        direct_endpoints: Vec::new(),
        direct: false,
        timeout: Duration::from_secs(10),
        delay: (Duration::ZERO, Duration::ZERO),
    };
    let through = |spec| ipcheck::Through {
        spec,
        dns_servers: Vec::new(),
        timeout: Duration::from_secs(10),
    };

    let exit = ipcheck::exit_of(&through(spec("squid", &squid.url(), None)), &settings).await;
    assert_eq!(exit.v4.as_deref(), Some("127.0.0.2"), "{exit:?}");
    assert_eq!(exit.v6.as_deref(), Some("::1"), "{exit:?}");
    assert!(exit.error.is_none(), "{exit:?}");

    // microsocks binds 127.0.0.3 for IPv4 only; IPv6 leaves from ::1.
    let socks_through = through(spec("socks", &socks.url(), None));
    let exit = ipcheck::exit_of(&socks_through, &settings).await;
    assert_eq!(exit.v4.as_deref(), Some("127.0.0.3"), "{exit:?}");
    assert_eq!(exit.v6.as_deref(), Some("::1"), "{exit:?}");

    // An IPv6 endpoint that does not answer: no IPv6 exit, and why.
    let closed = std::net::TcpListener::bind("[::1]:0").expect("bind");
    let dead = format!("http://{}/ip", closed.local_addr().expect("addr"));
    drop(closed);
    let settings = IpCheckSettings {
        endpoints_v6: vec![dead.clone()],
        ..settings
    };
    let exit = ipcheck::exit_of(&socks_through, &settings).await;
    assert_eq!(exit.v4.as_deref(), Some("127.0.0.3"), "{exit:?}");
    assert_eq!(exit.v6, None, "{exit:?}");
    assert!(
        exit.v6_error.as_deref().is_some_and(|e| e.contains(&dead)),
        "the IPv6 failure names its endpoint: {exit:?}"
    );
    assert!(exit.checked_unix_ms > 0);
}
