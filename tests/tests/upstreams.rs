//! Upstream proxies, pools and failover with real peers on loopback: Squid
//! and tinyproxy as HTTP upstreams, microsocks as a SOCKS5 upstream, a TLS
//! front with a test CA as an HTTPS upstream. Each peer connects out from its
//! own loopback address, and the origin's `/ip` shows which one a request
//! left through.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use veil_engine::upstream::{HealthConfig, Strategy, UpstreamSpec};
use veil_engine::{EngineConfig, EngineEvent, EngineHandle, Mode};
use veil_tests::peers::{
    CountingFront, Microsocks, RecordingDns, Squid, Tinyproxy, TlsFront, spec,
};
use veil_tests::{CurlOutput, Origin, curl, eventually, proxy_url, start_engine};

const SQUID_EXIT: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const SOCKS_EXIT: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
const TINYPROXY_EXIT: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 4);
const SOCKS_AUTH_EXIT: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 5);

/// An engine in proxy mode through `upstreams`, with nothing bypassed (the
/// origin is on loopback, which the default bypass list sends direct).
async fn through(
    upstreams: Vec<UpstreamSpec>,
    tweak: impl FnOnce(&mut EngineConfig),
) -> EngineHandle {
    start_engine(|c| {
        c.mode = Mode::Proxy;
        c.bypass = vec![];
        c.upstreams = upstreams;
        tweak(c);
    })
    .await
}

/// The three ways a client reaches `url` through Veil: plain HTTP (`-x`), a
/// CONNECT tunnel (`-p -x`) and SOCKS5 with the name sent as is.
async fn curl_three_ways(engine: &EngineHandle, url: &str) -> [(&'static str, CurlOutput); 3] {
    let http = proxy_url(engine.local_addr());
    let socks = engine.local_addr().to_string();
    [
        ("-x", curl(&["-x", &http, url]).await),
        ("-p -x", curl(&["-p", "-x", &http, url]).await),
        (
            "--socks5-hostname",
            curl(&["--socks5-hostname", &socks, url]).await,
        ),
    ]
}

/// The caller's IP as the origin printed it, with an IPv4-mapped address
/// (from a dual-stack origin) shown as plain IPv4.
fn exit_of(out: &CurlOutput) -> String {
    out.text()
        .parse::<IpAddr>()
        .map(|ip| ip.to_canonical().to_string())
        .unwrap_or_else(|_| out.text())
}

fn report(engine: &EngineHandle, name: &str) -> veil_engine::upstream::UpstreamReport {
    engine
        .upstreams()
        .into_iter()
        .find(|u| u.name == name)
        .unwrap_or_else(|| panic!("no report for upstream {name}"))
}

/// Sends `CONNECT authority` to Veil by hand. Returns the stream (a tunnel
/// when the status is 200), the status, and the body of a refusal.
async fn connect_raw(proxy: SocketAddr, authority: &str) -> (TcpStream, u16, String) {
    let mut stream = TcpStream::connect(proxy).await.expect("connect to Veil");
    let request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send CONNECT");
    // Byte by byte, so nothing past the head is taken from the tunnel.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut byte))
            .await
            .expect("CONNECT answered within 20 s")
            .expect("read CONNECT answer");
        assert!(n > 0, "Veil closed during the CONNECT answer: {head:?}");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let length: usize = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    if status != 200 {
        tokio::time::timeout(Duration::from_secs(20), stream.read_exact(&mut body))
            .await
            .expect("refusal body within 20 s")
            .expect("read refusal body");
    }
    (stream, status, String::from_utf8_lossy(&body).into_owned())
}

/// `GET /ip` over an open tunnel to `origin`; returns the body.
async fn ip_through_tunnel(tunnel: &mut TcpStream, origin: SocketAddr) -> String {
    let request = format!("GET /ip HTTP/1.1\r\nHost: {origin}\r\nConnection: close\r\n\r\n");
    tunnel
        .write_all(request.as_bytes())
        .await
        .expect("send through tunnel");
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), tunnel.read_to_end(&mut response))
        .await
        .expect("origin answered through the tunnel within 20 s")
        .expect("read through tunnel");
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer through the tunnel: {response:?}"));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

/// An origin that answers on 127.0.0.1 and on ::1, for peers that resolve
/// `localhost` themselves to either.
async fn dual_stack_origin() -> Origin {
    if std::net::TcpListener::bind("[::1]:0").is_ok() {
        let origin = Origin::start_on("[::]:0").await;
        if TcpStream::connect(("127.0.0.1", origin.addr.port()))
            .await
            .is_ok()
        {
            return origin;
        }
    }
    Origin::start().await
}

async fn assert_exits_through(upstream: UpstreamSpec, exit: Ipv4Addr) {
    let origin = Origin::start().await;
    let name = upstream.name.clone();
    let engine = through(vec![upstream], |_| {}).await;
    for (way, out) in curl_three_ways(&engine, &origin.url("/ip")).await {
        assert_eq!(
            (out.status, out.text()),
            (200, exit.to_string()),
            "{name} with curl {way}: {out:?}"
        );
    }
    let report = report(&engine, &name);
    assert!(
        report.total_connections >= 3 && report.bytes_down > 0,
        "{report:?}"
    );
    // The leak check's counter: no local lookup for upstream traffic.
    assert_eq!(engine.stats().dns.proxied_lookups, 0, "{name}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn squid_upstream_shows_its_exit_address() {
    let squid = Squid::start(SQUID_EXIT).await;
    assert_exits_through(spec("squid", &squid.url(), None), SQUID_EXIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tinyproxy_upstream_shows_its_exit_address() {
    let tinyproxy = Tinyproxy::start(TINYPROXY_EXIT, None).await;
    assert_exits_through(
        spec("tinyproxy", &tinyproxy.url(None), None),
        TINYPROXY_EXIT,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socks5_upstream_shows_its_exit_address() {
    let socks = Microsocks::start(SOCKS_EXIT, None).await;
    assert_exits_through(spec("socks", &socks.url(), None), SOCKS_EXIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socks5_upstream_with_password_shows_its_exit_address() {
    let socks = Microsocks::start(SOCKS_AUTH_EXIT, Some(("veil", "s3cret-pass"))).await;
    assert!(socks.url().starts_with("socks5://veil@"), "{}", socks.url());
    assert_exits_through(
        spec("socks-auth", &socks.url(), Some("s3cret-pass")),
        SOCKS_AUTH_EXIT,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_mode_resolves_nothing_locally() {
    // Positive control: in direct mode the recorder sees Veil's lookup, so
    // an empty record below means something.
    let dns = RecordingDns::start().await;
    let origin = Origin::start().await;
    // The test name resolves to loopback: listed, or Veil would refuse it.
    let direct = start_engine(|c| {
        c.dns_servers = vec![dns.addr];
        c.bypass.push("*.veil.test".into());
    })
    .await;
    let url = format!("http://origin.veil.test:{}/ip", origin.addr.port());
    let socks = direct.local_addr().to_string();
    let out = curl(&["--socks5-hostname", &socks, &url]).await;
    assert_eq!(
        (out.status, out.text().as_str()),
        (200, "127.0.0.1"),
        "{out:?}"
    );
    assert!(
        dns.queries().iter().any(|q| q == "origin.veil.test"),
        "{:?}",
        dns.queries()
    );
    assert!(direct.stats().dns.misses >= 1, "{:?}", direct.stats().dns);
    drop(direct);

    // Proxy mode: the upstream gets the name `localhost` and resolves it.
    let dns = RecordingDns::start().await;
    let origin = dual_stack_origin().await;
    let socks_peer = Microsocks::start(SOCKS_EXIT, None).await;
    let squid = Squid::start(SQUID_EXIT).await;
    let engine = through(vec![spec("socks", &socks_peer.url(), None)], |c| {
        c.dns_servers = vec![dns.addr];
    })
    .await;
    let url = format!("http://localhost:{}/ip", origin.addr.port());
    for (way, out) in curl_three_ways(&engine, &url).await {
        assert_eq!(out.status, 200, "curl {way} through microsocks: {out:?}");
    }
    assert!(report(&engine, "socks").total_connections >= 3);

    engine
        .set_upstreams(vec![spec("squid", &squid.url(), None)])
        .expect("switch to squid");
    let http = proxy_url(engine.local_addr());
    for args in [vec!["-x", &http, &url], vec!["-p", "-x", &http, &url]] {
        let out = curl(&args).await;
        assert_eq!(out.status, 200, "curl {args:?} through squid: {out:?}");
        assert_eq!(exit_of(&out), SQUID_EXIT.to_string(), "{out:?}");
    }
    assert!(report(&engine, "squid").total_connections >= 2);

    assert_eq!(
        dns.queries(),
        Vec::<String>::new(),
        "names resolved locally"
    );
    let counted = engine.stats().dns;
    assert_eq!(counted.hits + counted.misses, 0, "{counted:?}");
    assert_eq!(counted.proxied_lookups, 0, "{counted:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roundrobin_alternates_the_exit_address() {
    let origin = Origin::start().await;
    let squid = Squid::start(SQUID_EXIT).await;
    let socks = Microsocks::start(SOCKS_EXIT, None).await;
    let engine = through(
        vec![
            spec("squid", &squid.url(), None),
            spec("socks", &socks.url(), None),
        ],
        |c| c.strategy = Strategy::RoundRobin,
    )
    .await;
    let proxy = proxy_url(engine.local_addr());
    let mut exits = Vec::new();
    for _ in 0..4 {
        let out = curl(&["-p", "-x", &proxy, &origin.url("/ip")]).await;
        assert_eq!(out.status, 200, "{out:?}");
        exits.push(out.text());
    }
    for exit in [SQUID_EXIT, SOCKS_EXIT] {
        let seen = exits.iter().filter(|e| **e == exit.to_string()).count();
        assert_eq!(seen, 2, "{exit} in {exits:?}");
    }
    assert!(exits.windows(2).all(|w| w[0] != w[1]), "{exits:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leastconn_avoids_the_upstream_with_a_long_tunnel() {
    let origin = Origin::start().await;
    let one = Microsocks::start(SOCKS_EXIT, None).await;
    let two = Microsocks::start(SOCKS_AUTH_EXIT, None).await;
    let engine = through(
        vec![spec("one", &one.url(), None), spec("two", &two.url(), None)],
        |c| c.strategy = Strategy::LeastConn,
    )
    .await;
    let (_held, status, body) = connect_raw(engine.local_addr(), &origin.addr.to_string()).await;
    assert_eq!(status, 200, "{body}");
    let busy = engine
        .upstreams()
        .into_iter()
        .find(|u| u.open_connections == 1)
        .expect("one upstream carries the tunnel");
    let (other, other_exit) = if busy.name == "one" {
        ("two", SOCKS_AUTH_EXIT)
    } else {
        ("one", SOCKS_EXIT)
    };

    let proxy = proxy_url(engine.local_addr());
    let socks = engine.local_addr().to_string();
    let url = origin.url("/ip");
    for args in [
        vec!["-p", "-x", &proxy, &url],
        vec!["-x", &proxy, &url],
        vec!["--socks5-hostname", &socks, &url],
    ] {
        let out = curl(&args).await;
        assert_eq!(
            (out.status, out.text()),
            (200, other_exit.to_string()),
            "{args:?} should avoid {}: {out:?}",
            busy.name
        );
        // The finished request's connection is released before the next
        // choice, so the counts are 1 and 0 again.
        assert!(
            eventually(Duration::from_secs(5), || report(&engine, other)
                .open_connections
                == 0)
            .await,
            "{:?}",
            engine.upstreams()
        );
    }
    assert_eq!(report(&engine, &busy.name).open_connections, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_to_the_next_upstream_and_502_when_all_are_down() {
    let origin = Origin::start().await;
    let mut alpha = Microsocks::start(SOCKS_EXIT, None).await;
    let mut bravo = Microsocks::start(SOCKS_AUTH_EXIT, None).await;
    let engine = through(
        vec![
            spec("alpha", &alpha.url(), None),
            spec("bravo", &bravo.url(), None),
        ],
        |c| {
            c.strategy = Strategy::First;
            c.health = HealthConfig {
                interval: Duration::from_secs(1),
                fall: 2,
                rise: 2,
                ..HealthConfig::default()
            };
        },
    )
    .await;
    let mut events = engine.subscribe();
    let proxy = proxy_url(engine.local_addr());
    let url = origin.url("/ip");
    let out = curl(&["-p", "-x", &proxy, &url]).await;
    assert_eq!((out.status, out.text()), (200, SOCKS_EXIT.to_string()));

    alpha.stop();
    // No waiting for a health check: a refused connect is retried on bravo.
    for (way, out) in curl_three_ways(&engine, &url).await {
        assert_eq!(
            (out.status, out.text()),
            (200, SOCKS_AUTH_EXIT.to_string()),
            "curl {way} after alpha stopped: {out:?}"
        );
    }
    assert!(
        eventually(Duration::from_secs(10), || {
            let a = report(&engine, "alpha");
            !a.healthy && a.last_error.is_some()
        })
        .await,
        "{:?}",
        engine.upstreams()
    );
    let down = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.recv().await {
                Ok(EngineEvent::UpstreamDown { name, reason }) if name == "alpha" => {
                    return reason;
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(e) => panic!("event stream ended: {e}"),
            }
        }
    })
    .await
    .expect("UpstreamDown for alpha");
    assert!(down.contains("alpha"), "{down}");

    bravo.stop();
    assert!(
        eventually(Duration::from_secs(15), || engine
            .upstreams()
            .iter()
            .all(|u| !u.healthy))
        .await,
        "{:?}",
        engine.upstreams()
    );
    let [(_, plain), (_, tunnel), (_, socks)] = curl_three_ways(&engine, &url).await;
    assert_eq!(plain.status, 502, "{plain:?}");
    let text = plain.text();
    assert!(
        text.contains("upstream alpha") && text.contains("upstream bravo"),
        "{text}"
    );
    assert!(
        tunnel.exit_code != 0 && tunnel.stderr.contains("502"),
        "{tunnel:?}"
    );
    assert!(socks.exit_code != 0, "{socks:?}");
    let (_, status, body) = connect_raw(engine.local_addr(), &origin.addr.to_string()).await;
    assert_eq!(status, 502);
    assert!(body.contains("alpha") && body.contains("bravo"), "{body}");
}

/// Connections `front` received while `work` ran, after the engine's first
/// health check (a TCP connect at start) has come and gone.
async fn connections_during<T>(
    front: &CountingFront,
    work: impl std::future::Future<Output = T>,
) -> (u64, T) {
    let before = front.connections();
    let output = work.await;
    // A storm would keep going after the answer; give it a moment to show.
    tokio::time::sleep(Duration::from_millis(500)).await;
    (front.connections() - before, output)
}

/// Long enough that only the check at start runs during the test.
fn no_periodic_checks(c: &mut EngineConfig) {
    c.health = HealthConfig {
        interval: Duration::from_secs(3600),
        ..HealthConfig::default()
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_socks5_password_is_a_clear_error_tried_once() {
    let origin = Origin::start().await;
    let socks = Microsocks::start(SOCKS_AUTH_EXIT, Some(("veil", "right-pass"))).await;
    let front = CountingFront::start(socks.addr()).await;
    let url = format!("socks5://veil@{}", front.addr);
    let engine = through(
        vec![spec("guarded", &url, Some("wrong-pass"))],
        no_periodic_checks,
    )
    .await;
    assert!(eventually(Duration::from_secs(10), || front.connections() >= 1).await);
    let proxy = proxy_url(engine.local_addr());

    let (attempts, out) =
        connections_during(&front, curl(&["-x", &proxy, &origin.url("/ip")])).await;
    assert_eq!(out.status, 502, "{out:?}");
    assert!(
        out.text()
            .contains("upstream guarded rejected Veil's credentials"),
        "{out:?}"
    );
    assert_eq!(attempts, 1, "one request, one login attempt");

    let (attempts, (_, status, body)) = connections_during(
        &front,
        connect_raw(engine.local_addr(), &origin.addr.to_string()),
    )
    .await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("rejected Veil's credentials"), "{body}");
    assert_eq!(attempts, 1, "one request, one login attempt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_upstream_login_refused_passes_on_the_407() {
    let origin = Origin::start().await;
    let tinyproxy = Tinyproxy::start(TINYPROXY_EXIT, Some(("veil", "right-pass"))).await;
    let front = CountingFront::start(tinyproxy.addr()).await;

    // No user configured: tinyproxy answers 407, which Veil explains.
    let url = format!("http://{}", front.addr);
    let engine = through(vec![spec("tiny", &url, None)], no_periodic_checks).await;
    assert!(eventually(Duration::from_secs(10), || front.connections() >= 1).await);
    let proxy = proxy_url(engine.local_addr());
    let (attempts, out) =
        connections_during(&front, curl(&["-x", &proxy, &origin.url("/ip")])).await;
    assert_eq!(out.status, 502, "{out:?}");
    let text = out.text();
    assert!(
        text.contains("upstream tiny rejected Veil's credentials") && text.contains("407"),
        "{text}"
    );
    assert_eq!(attempts, 1, "one request, one connection");
    let (attempts, (_, status, body)) = connections_during(
        &front,
        connect_raw(engine.local_addr(), &origin.addr.to_string()),
    )
    .await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body.contains("upstream tiny rejected Veil's credentials")
            && body.contains("407")
            && body.contains("no username is configured"),
        "{body}"
    );
    assert_eq!(attempts, 1, "one request, one connection");
    let tunnel = curl(&["-p", "-x", &proxy, &origin.url("/ip")]).await;
    assert!(
        tunnel.exit_code != 0 && tunnel.stderr.contains("502"),
        "{tunnel:?}"
    );
    drop(engine);

    // A wrong password: tinyproxy answers 401, its own refusal of the login
    // when it is the answer to CONNECT.
    let url = format!("http://veil@{}", front.addr);
    let checked = front.connections();
    let engine = through(
        vec![spec("tiny", &url, Some("wrong-pass"))],
        no_periodic_checks,
    )
    .await;
    assert!(eventually(Duration::from_secs(10), || front.connections() > checked).await);
    let (attempts, (_, status, body)) = connections_during(
        &front,
        connect_raw(engine.local_addr(), &origin.addr.to_string()),
    )
    .await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body.contains("upstream tiny rejected Veil's credentials") && body.contains("401"),
        "{body}"
    );
    assert_eq!(attempts, 1, "one request, one connection");
    // In absolute form a 401 could as well be the origin's, so it is passed
    // on as it came: the request still fails, with tinyproxy's own page.
    let out = curl(&["-x", &proxy_url(engine.local_addr()), &origin.url("/ip")]).await;
    assert_eq!(out.status, 401, "{out:?}");
    assert!(out.text().contains("tinyproxy"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstream_with_a_private_ca() {
    let origin = Origin::start().await;
    let squid = Squid::start(SQUID_EXIT).await;
    let front = TlsFront::start(squid.addr()).await;
    let mut trusted = spec("tls", &front.url(), None);
    trusted.ca_file = Some(front.ca_file.clone());
    let engine = through(vec![trusted], |_| {}).await;
    let proxy = proxy_url(engine.local_addr());
    let url = origin.url("/ip");
    for args in [vec!["-x", &proxy, &url], vec!["-p", "-x", &proxy, &url]] {
        let out = curl(&args).await;
        assert_eq!(
            (out.status, out.text()),
            (200, SQUID_EXIT.to_string()),
            "{args:?}: {out:?}"
        );
    }
    drop(engine);

    // Without the CA, the proxy's certificate is refused.
    let engine = through(vec![spec("tls", &front.url(), None)], |_| {}).await;
    let proxy = proxy_url(engine.local_addr());
    let out = curl(&["-x", &proxy, &url]).await;
    assert_eq!(out.status, 502, "{out:?}");
    assert!(
        out.text().contains("TLS with upstream tls failed"),
        "{out:?}"
    );
    let (_, status, body) = connect_raw(engine.local_addr(), &origin.addr.to_string()).await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("TLS"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_changes_spare_open_tunnels() {
    let origin = Origin::start().await;
    let alpha = Microsocks::start(SOCKS_EXIT, None).await;
    let bravo = Microsocks::start(SOCKS_AUTH_EXIT, None).await;
    let engine = through(vec![spec("alpha", &alpha.url(), None)], |_| {}).await;
    let (mut tunnel, status, body) =
        connect_raw(engine.local_addr(), &origin.addr.to_string()).await;
    assert_eq!(status, 200, "{body}");

    engine
        .set_upstreams(vec![spec("bravo", &bravo.url(), None)])
        .expect("switch upstreams");
    let names: Vec<String> = engine.upstreams().into_iter().map(|u| u.name).collect();
    assert_eq!(names, ["bravo"]);
    // The tunnel opened before the switch still runs through alpha.
    assert_eq!(
        ip_through_tunnel(&mut tunnel, origin.addr).await,
        SOCKS_EXIT.to_string()
    );
    for (way, out) in curl_three_ways(&engine, &origin.url("/ip")).await {
        assert_eq!(
            (out.status, out.text()),
            (200, SOCKS_AUTH_EXIT.to_string()),
            "curl {way} after the switch: {out:?}"
        );
    }

    engine.set_strategy(Strategy::LeastConn);
    assert_eq!(engine.stats().strategy, Strategy::LeastConn);
    let proxy = proxy_url(engine.local_addr());
    let out = curl(&["-x", &proxy, &origin.url("/ip")]).await;
    assert_eq!((out.status, out.text()), (200, SOCKS_AUTH_EXIT.to_string()));

    engine.set_mode(Mode::Direct).expect("direct mode");
    for (way, out) in curl_three_ways(&engine, &origin.url("/ip")).await {
        assert_eq!(
            (out.status, out.text().as_str()),
            (200, "127.0.0.1"),
            "curl {way} in direct mode: {out:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_test_of_an_upstream() {
    let origin = Origin::start().await;
    let mut alpha = Microsocks::start(SOCKS_EXIT, None).await;
    let check_url = origin.url("/ip");
    let engine = through(vec![spec("alpha", &alpha.url(), None)], |c| {
        c.health = HealthConfig {
            interval: Duration::from_secs(3600),
            check_url: Some(check_url.clone()),
            ..HealthConfig::default()
        };
    })
    .await;
    // The check at start fetched the check URL once already.
    assert!(eventually(Duration::from_secs(10), || origin.connections() >= 1).await);
    let connections = origin.connections();
    let latency = engine.test_upstream("alpha").await.expect("latency test");
    assert!(latency < Duration::from_secs(10), "{latency:?}");
    assert!(
        origin.connections() > connections,
        "the check URL was fetched through alpha"
    );
    assert!(report(&engine, "alpha").latency_ms.is_some());
    let unknown = engine
        .test_upstream("zulu")
        .await
        .expect_err("no such upstream");
    assert!(unknown.contains("zulu"), "{unknown}");

    // The same test without an engine, as `veil upstream test` runs it.
    let probed = veil_engine::upstream::probe(
        spec("alpha", &alpha.url(), None),
        None,
        &[],
        Duration::from_secs(5),
    )
    .await;
    assert!(probed.is_ok(), "{probed:?}");
    let probed = veil_engine::upstream::probe(
        spec("alpha", &alpha.url(), None),
        Some(&check_url),
        &[],
        Duration::from_secs(5),
    )
    .await;
    assert!(probed.is_ok(), "{probed:?}");

    alpha.stop();
    let err = engine
        .test_upstream("alpha")
        .await
        .expect_err("alpha is stopped");
    assert!(err.contains("alpha"), "{err}");
}

/// An upstream that is Veil's own listener would send every connection
/// back in until the connection cap. Refused live, in every spelling, and
/// the pool keeps what it had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn veil_itself_is_refused_as_an_upstream() {
    let engine = start_engine(|_| {}).await;
    let port = engine.local_addr().port();
    for url in [
        format!("http://127.0.0.1:{port}"),
        format!("socks5://localhost:{port}"),
        format!("http://[::ffff:127.0.0.1]:{port}"),
        format!("http://0.0.0.0:{port}"),
    ] {
        let spec = UpstreamSpec::new("me", url.parse().expect("url"));
        let err = engine.set_upstreams(vec![spec]).expect_err(&url);
        assert!(err.to_string().contains("own listener"), "{url}: {err}");
    }
    assert!(engine.stats().upstreams.is_empty(), "nothing was applied");
}

/// DNS rebinding: a public name that resolves to loopback or the local
/// network is how a web page reaches the router or a local service through
/// the proxy (the browser never sees the address, so its own protections do
/// not apply). Refused with 403 / "not allowed" on all three protocols,
/// unless the user listed the name; an IP literal is what the user typed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_that_resolve_inside_are_refused_unless_listed() {
    let dns = RecordingDns::start().await;
    let origin = Origin::start().await;
    let port = origin.addr.port();
    let engine = start_engine(|c| {
        c.dns_servers = vec![dns.addr];
        c.bypass = vec![];
        c.rules = vec![("nas.veil.test".into(), veil_engine::Action::Direct)];
    })
    .await;
    let proxy = proxy_url(engine.local_addr());
    let socks = engine.local_addr().to_string();
    let evil = format!("http://rebind.veil.test:{port}/ip");
    let out = curl(&["-x", &proxy, &evil]).await;
    assert_eq!(out.status, 403, "{out:?}");
    assert!(out.text().contains("local network"), "{out:?}");
    let out = curl(&["-p", "-x", &proxy, &evil]).await;
    assert_ne!(out.exit_code, 0, "CONNECT refused: {out:?}");
    assert!(out.stderr.contains("403"), "{out:?}");
    let out = curl(&["--socks5-hostname", &socks, &evil]).await;
    assert_ne!(out.exit_code, 0, "SOCKS5 refused: {out:?}");

    // A name with a "direct" rule, and an address the user typed, pass.
    let listed = format!("http://nas.veil.test:{port}/ip");
    for url in [listed, origin.url("/ip")] {
        let out = curl(&["-x", &proxy, &url]).await;
        assert_eq!(out.status, 200, "{url}: {out:?}");
        let out = curl(&["--socks5-hostname", &socks, &url]).await;
        assert_eq!(out.status, 200, "{url} over SOCKS5: {out:?}");
    }
}
