//! What the mixed port does with clients that misbehave: bytes that are not
//! HTTP, heads that are too big, bad CONNECT targets, origin-form requests,
//! slowloris clients, unreachable targets, SOCKS4, the connection cap and a
//! request aimed at the proxy itself. Every case gets a clear answer (or a
//! closed connection), and the engine keeps serving everyone else.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use veil_engine::EngineHandle;
use veil_tests::{Origin, curl, eventually, proxy_url, start_engine};

/// Generous: nothing here should take more than a few milliseconds, but a
/// loaded 2-core machine must not make the tests flaky.
const PATIENCE: Duration = Duration::from_secs(10);

/// What came back on one raw connection.
#[derive(Debug)]
struct Exchange {
    bytes: Vec<u8>,
    /// The server closed the connection (EOF or reset) within [`PATIENCE`].
    closed: bool,
}

impl Exchange {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// The status code of an HTTP/1.1 response, 0 when there is none.
    fn status(&self) -> u16 {
        self.text()
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .unwrap_or(0)
    }

    fn body(&self) -> String {
        let text = self.text();
        text.split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or_default()
    }
}

/// Sends `request` on a fresh connection while reading, until the server
/// closes it or [`PATIENCE`] runs out. Writing and reading at once matters
/// for oversized requests: the server answers and closes before it has read
/// everything, and the client must not block on a full send buffer.
async fn exchange(addr: SocketAddr, request: Vec<u8>) -> Exchange {
    let stream = TcpStream::connect(addr).await.expect("connect to veil");
    let (mut read, mut write) = stream.into_split();
    let writer = tokio::spawn(async move {
        // The server may close before it has read everything: that is fine.
        let _ = write.write_all(&request).await;
        // Keep the write half open until the reader is done.
        write
    });
    let exchange = read_until_closed(&mut read).await;
    writer.abort();
    exchange
}

async fn read_until_closed(read: &mut (impl AsyncReadExt + Unpin)) -> Exchange {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match tokio::time::timeout_at(deadline, read.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                return Exchange {
                    bytes,
                    closed: true,
                };
            }
            Ok(Ok(n)) => bytes.extend_from_slice(&buf[..n]),
            Err(_) => {
                return Exchange {
                    bytes,
                    closed: false,
                };
            }
        }
    }
}

/// A proxy request in absolute form through `engine` still works.
async fn still_serves(engine: &EngineHandle, origin: &Origin) {
    let out = curl(&["-x", &proxy_url(engine.local_addr()), &origin.url("/ip")]).await;
    assert_eq!(
        (out.status, out.text().as_str()),
        (200, "127.0.0.1"),
        "the engine still serves well-behaved clients: {out:?}"
    );
}

async fn rejected_more_than(engine: &EngineHandle, before: u64) -> bool {
    eventually(PATIENCE, || engine.stats().rejected_total > before).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_gets_400_and_the_connection_closes() {
    let origin = Origin::start().await;
    let engine = start_engine(|_| {}).await;
    let addr = engine.local_addr();

    let cases: [(&str, Vec<u8>); 3] = [
        ("a word and a blank line", b"GARBAGE\r\n\r\n".to_vec()),
        // A client that speaks TLS to a plain-text proxy port.
        (
            "a TLS ClientHello",
            vec![
                0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
            ],
        ),
        (
            "binary noise",
            vec![
                0xff, 0x00, 0x13, 0x37, 0xde, 0xad, b'\r', b'\n', b'\r', b'\n',
            ],
        ),
    ];
    for (what, bytes) in cases {
        let before = engine.stats().rejected_total;
        let reply = exchange(addr, bytes).await;
        assert_eq!(reply.status(), 400, "{what}: {reply:?}");
        assert!(reply.closed, "{what}: connection closed: {reply:?}");
        assert!(
            rejected_more_than(&engine, before).await,
            "{what}: counted as rejected"
        );
    }
    still_serves(&engine, &origin).await;
    assert!(
        eventually(PATIENCE, || engine.stats().connections_open == 0).await,
        "no connection left open: {:?}",
        engine.stats().connections
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_request_head_gets_431() {
    let origin = Origin::start().await;
    let engine = start_engine(|_| {}).await;
    let addr = engine.local_addr();
    assert_eq!(
        veil_engine::Limits::default().max_header_bytes,
        64 * 1024,
        "this test sends more than the default limit"
    );

    let mut big_header = format!("GET {} HTTP/1.1\r\nHost: a\r\nX-Big: ", origin.url("/ip"));
    big_header.push_str(&"a".repeat(100 * 1024));
    big_header.push_str("\r\n\r\n");
    let before = engine.stats().rejected_total;
    let reply = exchange(addr, big_header.into_bytes()).await;
    assert_eq!(reply.status(), 431, "{reply:?}");
    assert!(reply.closed, "{reply:?}");
    assert!(rejected_more_than(&engine, before).await);

    // Many small headers are too much as well.
    let mut many = format!("GET {} HTTP/1.1\r\nHost: a\r\n", origin.url("/ip"));
    for i in 0..500 {
        many.push_str(&format!("X-Header-{i}: {i}\r\n"));
    }
    many.push_str("\r\n");
    let reply = exchange(addr, many.into_bytes()).await;
    assert_eq!(reply.status(), 431, "{reply:?}");
    assert!(reply.closed, "{reply:?}");

    assert_eq!(
        origin.connections(),
        0,
        "nothing reached the origin for a refused request"
    );
    still_serves(&engine, &origin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_connect_targets_get_400() {
    let origin = Origin::start().await;
    let engine = start_engine(|_| {}).await;
    let addr = engine.local_addr();

    for target in [
        "foo",
        "foo:99999",
        "foo:0",
        "foo:http",
        "exa mple:80",
        "::1:80",
        "bad_host!:80",
    ] {
        let before = engine.stats().rejected_total;
        let request =
            format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n");
        let reply = exchange(addr, request.into_bytes()).await;
        assert_eq!(reply.status(), 400, "CONNECT {target}: {reply:?}");
        assert!(reply.closed, "CONNECT {target}: {reply:?}");
        assert!(
            rejected_more_than(&engine, before).await,
            "CONNECT {target} counted as rejected"
        );
    }
    // The engine's own 400 says what was wrong with the target.
    let reply = exchange(
        addr,
        b"CONNECT foo HTTP/1.1\r\nHost: foo\r\nConnection: close\r\n\r\n".to_vec(),
    )
    .await;
    assert!(reply.body().contains("no port"), "{reply:?}");
    still_serves(&engine, &origin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_form_request_is_told_this_is_a_proxy() {
    let origin = Origin::start().await;
    let engine = start_engine(|_| {}).await;
    let before = engine.stats().rejected_total;
    let reply = exchange(
        engine.local_addr(),
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
    )
    .await;
    assert_eq!(reply.status(), 400, "{reply:?}");
    let body = reply.body();
    assert!(body.contains("This is a proxy"), "{reply:?}");
    assert!(
        body.contains("absolute form"),
        "says what to send: {reply:?}"
    );
    assert!(rejected_more_than(&engine, before).await);

    // https:// in absolute form is not forwarded either: CONNECT is the way.
    let reply = exchange(
        engine.local_addr(),
        format!(
            "GET https://{}/ip HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            origin.addr
        )
        .into_bytes(),
    )
    .await;
    assert_eq!(reply.status(), 400, "{reply:?}");
    assert!(reply.body().contains("CONNECT"), "{reply:?}");
    assert_eq!(origin.connections(), 0);
    still_serves(&engine, &origin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_closed_after_the_handshake_timeout() {
    let origin = Origin::start().await;
    let engine = start_engine(|c| c.limits.handshake_timeout = Duration::from_secs(1)).await;
    let addr = engine.local_addr();

    // Slowloris: a request head that never ends.
    let mut partial = TcpStream::connect(addr).await.expect("connect");
    partial
        .write_all(b"GET http://127.0.0.1:1/ HTTP/1.1\r\nHost: a\r\n")
        .await
        .expect("send partial head");
    // A client that connects and says nothing.
    let mut silent = TcpStream::connect(addr).await.expect("connect");
    // A SOCKS5 client that stops after its first byte.
    let mut socks = TcpStream::connect(addr).await.expect("connect");
    socks.write_all(&[0x05]).await.expect("send SOCKS5 version");
    // While they wait, others are served.
    still_serves(&engine, &origin).await;

    for (what, stream) in [
        ("partial HTTP head", &mut partial),
        ("silent client", &mut silent),
        ("partial SOCKS5 greeting", &mut socks),
    ] {
        let reply = read_until_closed(stream).await;
        assert!(
            reply.closed,
            "{what}: closed within {PATIENCE:?}: {reply:?}"
        );
        // hyper closes a slow head without an answer; a 408 would be fine too.
        assert!(
            reply.bytes.is_empty() || reply.status() == 408,
            "{what}: {reply:?}"
        );
    }
    assert!(
        eventually(PATIENCE, || engine.stats().connections_open == 0).await,
        "slow clients no longer count as open: {:?}",
        engine.stats().connections
    );
    still_serves(&engine, &origin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_target_gets_502_or_connection_refused() {
    let engine = start_engine(|_| {}).await;
    let addr = engine.local_addr();
    // Nothing listens on port 1 (it needs root to bind), so it refuses.
    let unreachable = "127.0.0.1:1";

    let out = curl(&["-x", &proxy_url(addr), &format!("http://{unreachable}/")]).await;
    assert_eq!(out.status, 502, "{out:?}");
    assert!(
        out.text().contains(unreachable),
        "names the target: {out:?}"
    );
    assert!(
        out.text().contains("refused"),
        "says what happened: {out:?}"
    );

    let reply = exchange(
        addr,
        format!(
            "CONNECT {unreachable} HTTP/1.1\r\nHost: {unreachable}\r\nConnection: close\r\n\r\n"
        )
        .into_bytes(),
    )
    .await;
    assert_eq!(reply.status(), 502, "{reply:?}");
    assert!(reply.body().contains(unreachable), "{reply:?}");

    let reply = socks5_connect(addr, [127, 0, 0, 1], 1).await;
    assert_eq!(
        reply[1], 0x05,
        "SOCKS5 reply 'connection refused': {reply:?}"
    );
}

/// A no-auth SOCKS5 CONNECT to an IPv4 target by hand; returns the reply to
/// the CONNECT command.
async fn socks5_connect(proxy: SocketAddr, ip: [u8; 4], port: u16) -> Vec<u8> {
    let mut s = TcpStream::connect(proxy).await.expect("connect");
    let talk = async {
        s.write_all(&[0x05, 0x01, 0x00]).await.expect("greeting");
        let mut method = [0u8; 2];
        s.read_exact(&mut method).await.expect("method choice");
        assert_eq!(method, [0x05, 0x00], "no authentication accepted");
        let mut connect = vec![0x05, 0x01, 0x00, 0x01];
        connect.extend_from_slice(&ip);
        connect.extend_from_slice(&port.to_be_bytes());
        s.write_all(&connect).await.expect("CONNECT command");
        // VER REP RSV ATYP(IPv4) ADDR(4) PORT(2)
        let mut reply = vec![0u8; 10];
        s.read_exact(&mut reply).await.expect("CONNECT reply");
        reply
    };
    tokio::time::timeout(PATIENCE, talk)
        .await
        .expect("SOCKS5 reply in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socks4_is_rejected_in_its_own_format() {
    let origin = Origin::start().await;
    let engine = start_engine(|_| {}).await;
    let before = engine.stats().rejected_total;
    let mut s = TcpStream::connect(engine.local_addr())
        .await
        .expect("connect");
    // SOCKS4 CONNECT to the origin, empty user id.
    let mut request = vec![0x04, 0x01];
    request.extend_from_slice(&origin.addr.port().to_be_bytes());
    request.extend_from_slice(&[127, 0, 0, 1, 0]);
    s.write_all(&request).await.expect("SOCKS4 request");
    let mut reply = [0u8; 8];
    tokio::time::timeout(PATIENCE, s.read_exact(&mut reply))
        .await
        .expect("reply in time")
        .expect("an 8-byte SOCKS4 reply");
    assert_eq!(reply[0], 0x00, "SOCKS4 reply version byte: {reply:?}");
    assert_eq!(reply[1], 0x5b, "SOCKS4 'request rejected': {reply:?}");
    let rest = read_until_closed(&mut s).await;
    assert!(rest.closed && rest.bytes.is_empty(), "{rest:?}");
    assert!(rejected_more_than(&engine, before).await);
    assert_eq!(origin.connections(), 0, "nothing reached the target");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_cap_holds_further_clients_until_a_slot_frees() {
    let origin = Origin::start().await;
    let engine = start_engine(|c| {
        c.limits.max_connections = 2;
        c.limits.handshake_timeout = Duration::from_secs(60);
    })
    .await;
    let proxy = proxy_url(engine.local_addr());
    let url = origin.url("/ip");

    let idle_a = TcpStream::connect(engine.local_addr())
        .await
        .expect("connect");
    let idle_b = TcpStream::connect(engine.local_addr())
        .await
        .expect("connect");
    assert!(
        eventually(PATIENCE, || engine.stats().connections_open == 2).await,
        "both idle clients were accepted: {:?}",
        engine.stats()
    );

    // The third client waits in the kernel's queue and gets no answer.
    let held = curl(&["--max-time", "2", "-x", &proxy, &url]).await;
    assert_ne!(held.exit_code, 0, "not served past the cap: {held:?}");
    assert_ne!(held.text(), "127.0.0.1", "{held:?}");
    assert_eq!(origin.connections(), 0, "{held:?}");
    assert_eq!(engine.stats().connections_total, 2, "{:?}", engine.stats());

    drop(idle_a);
    drop(idle_b);
    let out = curl(&["-x", &proxy, &url]).await;
    assert_eq!(
        (out.status, out.text().as_str()),
        (200, "127.0.0.1"),
        "served once a slot is free: {out:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_to_the_proxy_itself_do_not_loop() {
    let engine = start_engine(|_| {}).await;
    let addr = engine.local_addr();

    let out = curl(&["-x", &proxy_url(addr), &format!("http://{addr}/")]).await;
    assert_eq!(out.status, 502, "{out:?}");
    assert!(out.text().contains("own listener"), "{out:?}");

    let reply = exchange(
        addr,
        format!("CONNECT {addr} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
            .into_bytes(),
    )
    .await;
    assert_eq!(reply.status(), 502, "{reply:?}");

    let reply = socks5_connect(addr, [127, 0, 0, 1], addr.port()).await;
    assert_eq!(reply[1], 0x02, "SOCKS5 'not allowed by ruleset': {reply:?}");

    // Each attempt was one client connection, not a chain of them.
    assert!(
        eventually(PATIENCE, || engine.stats().connections_open == 0).await,
        "{:?}",
        engine.stats().connections
    );
    assert_eq!(engine.stats().connections_total, 3, "{:?}", engine.stats());
}

/// Every spelling of "this host" is the same listener: the unspecified
/// address (a connect to 0.0.0.0 reaches loopback) and the IPv4-mapped IPv6
/// form. Each is refused as a loop, not relayed back into Veil.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_spellings_of_this_host_do_not_loop_either() {
    let engine = start_engine(|_| {}).await;
    let addr = engine.local_addr();
    let port = addr.port();
    let spellings = [
        format!("0.0.0.0:{port}"),
        format!("[::ffff:127.0.0.1]:{port}"),
    ];
    for target in &spellings {
        let out = curl(&["-x", &proxy_url(addr), &format!("http://{target}/")]).await;
        assert_eq!(out.status, 502, "{target}: {out:?}");
        assert!(out.text().contains("own listener"), "{target}: {out:?}");
        let reply = exchange(
            addr,
            format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n")
                .into_bytes(),
        )
        .await;
        assert_eq!(reply.status(), 502, "CONNECT {target}: {reply:?}");
    }
    let reply = socks5_connect(addr, [0, 0, 0, 0], port).await;
    assert_eq!(reply[1], 0x02, "SOCKS5 to 0.0.0.0: {reply:?}");
    assert!(
        eventually(PATIENCE, || engine.stats().connections_open == 0).await,
        "{:?}",
        engine.stats().connections
    );
    // One client connection per attempt: nothing came back in through Veil.
    assert_eq!(engine.stats().connections_total, 5, "{:?}", engine.stats());
}

/// A listener on every address (0.0.0.0, with credentials) is also reached
/// on this machine's LAN address, which no list of loopback spellings
/// covers. Here `veil run` listens on 0.0.0.0 inside a network namespace
/// (so nothing outside it sees the listener) and a client there asks for
/// the namespace's own interface address at Veil's port: refused as a
/// loop, for plain HTTP and CONNECT alike, instead of Veil answering
/// itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wildcard_listener_is_not_reached_through_the_hosts_own_lan_address() {
    let ns = veil_tests::netns::Netns::create().unwrap_or_else(|e| panic!("{e}"));
    let home = tempfile::TempDir::new().expect("temp VEIL_HOME");
    let config = home.path().join("config.toml");
    std::fs::write(
        &config,
        "[proxy]\nlisten = \"0.0.0.0:0\"\n[proxy.auth]\nusername = \"lan\"\npassword_env = \"VEIL_TEST_LAN_PW\"\n",
    )
    .expect("write config");
    let mut command = std::process::Command::new("ip");
    command
        .args(["netns", "exec", &ns.name])
        .arg(veil_tests::veil_process::veil_bin())
        .args(["run", "--config"])
        .arg(&config)
        .env("VEIL_HOME", home.path())
        .env("VEIL_TEST_LAN_PW", "lan-Pw-7x");
    let veil = veil_tests::veil_process::VeilProcess::spawn(command, home.path(), PATIENCE)
        .expect("veil run starts on 0.0.0.0 in the namespace");
    let port = veil.addr.port();
    let proxy = format!("http://127.0.0.1:{port}");
    let own_lan = format!("{}:{port}", ns.peer_ip);
    for connect in [false, true] {
        let mut args = vec!["-s", "-m", "10", "-x", &proxy, "-U", "lan:lan-Pw-7x"];
        if connect {
            args.extend(["-p", "-o", "/dev/null", "-w", "%{http_connect}"]);
        } else {
            args.extend(["-w", "\n%{http_code}"]);
        }
        let url = format!("http://{own_lan}/");
        args.push(&url);
        let child = ns.spawn("curl", &args).expect("curl in the namespace");
        let out = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .expect("join")
            .expect("curl ran");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            text.ends_with("502"),
            "connect={connect} to {own_lan}: {text}"
        );
        if !connect {
            assert!(text.contains("own listener"), "{text}");
        }
    }
}

/// The same loop through an upstream: Veil on 0.0.0.0 with an upstream
/// that is its own LAN address at its own port (which the check at start,
/// looking only at loopback spellings, lets through). The upstream dialer
/// looks at the connection it made, as the direct one does, and refuses
/// it: a 502 that says so, for plain HTTP and CONNECT, instead of Veil
/// proxying to itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_is_veils_own_lan_address_is_refused_as_a_loop() {
    let ns = veil_tests::netns::Netns::create().unwrap_or_else(|e| panic!("{e}"));
    // The namespace is new, so a port free here is free there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let home = tempfile::TempDir::new().expect("temp VEIL_HOME");
    let config = home.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[proxy]\nlisten = \"0.0.0.0:{port}\"\nmode = \"proxy\"\nbypass = []\n\
             [proxy.auth]\nusername = \"lan\"\npassword_env = \"VEIL_TEST_LAN_PW\"\n\
             [[upstreams.server]]\nname = \"me\"\nurl = \"http://{}:{port}\"\n",
            ns.peer_ip
        ),
    )
    .expect("write config");
    let mut command = std::process::Command::new("ip");
    command
        .args(["netns", "exec", &ns.name])
        .arg(veil_tests::veil_process::veil_bin())
        .args(["run", "--config"])
        .arg(&config)
        .env("VEIL_HOME", home.path())
        .env("VEIL_TEST_LAN_PW", "lan-Pw-7x");
    let veil = veil_tests::veil_process::VeilProcess::spawn(command, home.path(), PATIENCE)
        .expect("veil run starts on 0.0.0.0 in the namespace");
    let proxy = format!("http://127.0.0.1:{}", veil.addr.port());
    for connect in [false, true] {
        let mut args = vec!["-s", "-m", "10", "-x", &proxy, "-U", "lan:lan-Pw-7x"];
        if connect {
            args.extend(["-p", "-o", "/dev/null", "-w", "%{http_connect}"]);
        } else {
            args.extend(["-w", "\n%{http_code}"]);
        }
        args.push("http://example.test/");
        let child = ns.spawn("curl", &args).expect("curl in the namespace");
        let out = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .expect("join")
            .expect("curl ran");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(text.ends_with("502"), "connect={connect}: {text}");
        if !connect {
            assert!(text.contains("is this Veil itself"), "{text}");
        }
    }
}

/// A tunnel whose peer vanished (sleep, a network change) is closed after
/// the idle time with no byte either way; one that moves bytes is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_tunnels_are_closed_and_busy_ones_are_not() {
    // A TCP echo target.
    let echo = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let target = echo.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = echo.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    let engine = start_engine(|c| {
        c.limits.tunnel_idle_timeout = Duration::from_secs(1);
    })
    .await;
    let mut tunnel = TcpStream::connect(engine.local_addr())
        .await
        .expect("connect");
    tunnel
        .write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
        .await
        .expect("CONNECT");
    let mut head = [0u8; 256];
    let n = tokio::time::timeout(PATIENCE, tunnel.read(&mut head))
        .await
        .expect("answer in time")
        .expect("read");
    assert!(head[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &head[..n]);

    // Busy for three times the idle limit: it stays open.
    for _ in 0..10 {
        tunnel.write_all(b"ping").await.expect("write while busy");
        let mut pong = [0u8; 4];
        tokio::time::timeout(PATIENCE, tunnel.read_exact(&mut pong))
            .await
            .expect("echo in time")
            .expect("echo");
        assert_eq!(&pong, b"ping");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Then silent: Veil closes it (EOF) within a few idle periods.
    let mut rest = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(10), tunnel.read(&mut rest))
        .await
        .expect("closed by Veil within 10 s");
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
    assert!(
        eventually(PATIENCE, || engine.stats().connections_open == 0).await,
        "{:?}",
        engine.stats().connections
    );
}
