//! Real clients through Veil's mixed port: curl as an HTTP proxy client, with
//! CONNECT (`-p`) and over SOCKS5 with remote names (`--socks5-hostname`),
//! keep-alive, streamed bodies, WebSocket and IPv6.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use veil_engine::EngineEvent;
use veil_tests::{Origin, curl, eventually, proxy_url, start_engine};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_through_http_connect_and_socks5() {
    let origin = Origin::start().await;
    let engine = start_engine(|_| {}).await;
    let proxy = proxy_url(engine.local_addr());

    let plain = curl(&["-x", &proxy, &origin.url("/ip")]).await;
    assert_eq!(
        (plain.status, plain.text().as_str()),
        (200, "127.0.0.1"),
        "{plain:?}"
    );

    let tunnel = curl(&["-p", "-x", &proxy, &origin.url("/ip")]).await;
    assert_eq!(
        (tunnel.status, tunnel.text().as_str()),
        (200, "127.0.0.1"),
        "{tunnel:?}"
    );

    // A name, resolved by Veil (not by curl) through its DNS cache.
    let socks_url = format!("http://localhost:{}/ip", origin.addr.port());
    let socks_proxy = engine.local_addr().to_string();
    let socks = curl(&["--socks5-hostname", &socks_proxy, &socks_url]).await;
    assert_eq!(socks.status, 200, "{socks:?}");
    assert!(
        ["127.0.0.1", "::1"].contains(&socks.text().as_str()),
        "{socks:?}"
    );

    let stats = engine.stats();
    assert_eq!(stats.connections_total, 3);
    assert!(
        stats.dns.misses >= 1,
        "the name went through the DNS cache: {:?}",
        stats.dns
    );
    let protocols: Vec<_> = stats.hosts.iter().map(|h| h.host.as_str()).collect();
    assert!(
        protocols.contains(&"127.0.0.1") && protocols.contains(&"localhost"),
        "{protocols:?}"
    );
    // Another lookup of the same name is answered from the cache.
    let again = curl(&["--socks5-hostname", &socks_proxy, &socks_url]).await;
    assert_eq!(again.status, 200);
    assert!(engine.stats().dns.hits >= 1, "{:?}", engine.stats().dns);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_on_both_sides() {
    let origin = Origin::start().await;
    let engine = start_engine(|_| {}).await;
    let proxy = proxy_url(engine.local_addr());
    // One curl invocation with three URLs reuses its proxy connection.
    let url = origin.url("/ip");
    let out = curl(&["-x", &proxy, &url, &url, &url]).await;
    assert_eq!(out.status, 200, "{out:?}");
    assert_eq!(out.text().matches("127.0.0.1").count(), 3, "{out:?}");
    assert_eq!(
        engine.stats().connections_total,
        1,
        "client side kept alive"
    );
    // A second client is served from the pooled origin connection.
    let out = curl(&["-x", &proxy, &url]).await;
    assert_eq!(out.status, 200);
    assert_eq!(
        origin.connections(),
        1,
        "origin connection pooled and reused"
    );
    assert_eq!(engine.stats().requests_total, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_body_streams_both_ways() {
    let origin = Origin::start().await;
    let engine = start_engine(|_| {}).await;
    let proxy = proxy_url(engine.local_addr());
    let dir = tempfile::tempdir().expect("tempdir");
    let upload = dir.path().join("upload.bin");
    let data: Vec<u8> = (0..8 * 1024 * 1024u32)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    std::fs::write(&upload, &data).expect("write upload");
    let at = format!("@{}", upload.display());
    // Content-Length framing.
    let out = curl(&["-x", &proxy, "--data-binary", &at, &origin.url("/echo")]).await;
    assert_eq!(out.status, 200);
    assert!(
        out.body == data,
        "echoed {} of {} bytes",
        out.body.len(),
        data.len()
    );
    // Chunked framing.
    let out = curl(&[
        "-x",
        &proxy,
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        &at,
        &origin.url("/echo"),
    ])
    .await;
    assert_eq!(out.status, 200);
    assert!(
        out.body == data,
        "chunked echo returned {} bytes",
        out.body.len()
    );
    let host = engine
        .stats()
        .hosts
        .into_iter()
        .find(|h| h.host == "127.0.0.1")
        .expect("host counted");
    assert!(host.bytes_up >= 2 * data.len() as u64, "{host:?}");
    assert!(host.bytes_down >= 2 * data.len() as u64, "{host:?}");
    for method in ["PUT", "PATCH", "DELETE", "OPTIONS"] {
        let out = curl(&[
            "-x",
            &proxy,
            "-X",
            method,
            "--data",
            "x=1",
            &origin.url("/echo"),
        ])
        .await;
        assert_eq!((out.status, out.text().as_str()), (200, "x=1"), "{method}");
    }
    let head = curl(&["-x", &proxy, "-I", &origin.url("/bytes/5000")]).await;
    assert_eq!(head.status, 200);
    assert!(
        head.text()
            .to_ascii_lowercase()
            .contains("content-length: 5000"),
        "{head:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_headers_stripped_and_nothing_added() {
    let origin = Origin::start().await;
    let engine = start_engine(|_| {}).await;
    let proxy = proxy_url(engine.local_addr());
    let out = curl(&[
        "-x",
        &proxy,
        "-H",
        "Connection: keep-alive, X-Hop",
        "-H",
        "X-Hop: secret",
        "-H",
        "Keep-Alive: timeout=5",
        "-H",
        "TE: trailers",
        "-H",
        "X-End-To-End: kept",
        &origin.url("/headers"),
    ])
    .await;
    assert_eq!(out.status, 200);
    let seen = out.text().to_ascii_lowercase();
    assert!(seen.contains("x-end-to-end: kept"), "{seen}");
    for gone in [
        "x-hop",
        "keep-alive",
        "te:",
        "proxy-connection",
        "via",
        "x-forwarded-for",
        "forwarded",
    ] {
        assert!(!seen.contains(gone), "{gone} reached the origin:\n{seen}");
    }
}

/// RFC 9112 §3.2.2: the origin sees the request target's authority as
/// `Host`, whatever the client wrote, so no client can make Veil's shared
/// cache store another site's answer under this URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_origin_sees_the_targets_host_not_the_clients() {
    let origin = Origin::start().await;
    let engine = start_engine(|_| {}).await;
    let url = origin.url("/headers");
    let authority = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .expect("authority")
        .to_owned();
    let out = curl(&[
        "-x",
        &proxy_url(engine.local_addr()),
        "-H",
        "Host: victim.example",
        &url,
    ])
    .await;
    assert_eq!(out.status, 200, "{out:?}");
    let seen = out.text().to_ascii_lowercase();
    assert!(seen.contains(&format!("host: {authority}\n")), "{seen}");
    assert!(!seen.contains("victim.example"), "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrade_over_plain_http() {
    let origin = Origin::start().await;
    let engine = start_engine(|_| {}).await;
    let mut stream = TcpStream::connect(engine.local_addr())
        .await
        .expect("connect");
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        origin.url("/ws"),
        origin.addr
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        let n = tokio::time::timeout(Duration::from_secs(10), reader.read_line(&mut line))
            .await
            .expect("response in time")
            .expect("read");
        if n == 0 || line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
    assert!(reader.buffer().is_empty());
    let stream = reader.into_inner();
    let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
        stream,
        tokio_tungstenite::tungstenite::protocol::Role::Client,
        None,
    )
    .await;
    for text in ["hello", "through", "veil"] {
        ws.send(Message::text(text)).await.expect("send");
        let echoed = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("echo in time")
            .expect("message")
            .expect("ok");
        assert_eq!(echoed, Message::text(text));
    }
    ws.close(None).await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_targets() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipping: this machine has no IPv6 loopback");
        return;
    }
    let origin = Origin::start_on("[::1]:0").await;
    let engine = start_engine(|_| {}).await;
    let proxy = proxy_url(engine.local_addr());
    let url = format!("http://[::1]:{}/ip", origin.addr.port());
    let plain = curl(&["-x", &proxy, &url]).await;
    assert_eq!(
        (plain.status, plain.text().as_str()),
        (200, "::1"),
        "{plain:?}"
    );
    let tunnel = curl(&["-p", "-x", &proxy, &url]).await;
    assert_eq!(
        (tunnel.status, tunnel.text().as_str()),
        (200, "::1"),
        "{tunnel:?}"
    );
    // SOCKS5 with an IPv6 address type (curl resolves locally with --socks5).
    let socks = curl(&["--socks5", &engine.local_addr().to_string(), &url]).await;
    assert_eq!(
        (socks.status, socks.text().as_str()),
        (200, "::1"),
        "{socks:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socks5_ipv4_address_and_bulk_tunnel() {
    let origin = Origin::start().await;
    let engine = start_engine(|_| {}).await;
    let size = 32 * 1024 * 1024;
    let out = curl(&[
        "--socks5",
        &engine.local_addr().to_string(),
        "-o",
        "/dev/null",
        "-w",
        "%{size_download}\n",
        &origin.url(&format!("/bytes/{size}")),
    ])
    .await;
    assert!(out.text().contains(&size.to_string()), "{out:?}");
    let stats = engine.stats();
    assert!(stats.bytes_down >= size as u64, "{stats:?}");
    let host = stats
        .hosts
        .iter()
        .find(|h| h.host == "127.0.0.1")
        .expect("host");
    assert_eq!(host.connections, 1);
    assert!(host.bytes_down >= size as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_follow_a_connection() {
    let origin = Origin::start().await;
    let engine = start_engine(|_| {}).await;
    let mut events = engine.subscribe();
    let out = curl(&[
        "-p",
        "-x",
        &proxy_url(engine.local_addr()),
        &origin.url("/bytes/1000"),
    ])
    .await;
    assert_eq!(out.status, 200);
    let mut seen = Vec::new();
    let collected = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(event) = events.recv().await {
            let closed = matches!(event, EngineEvent::ConnectionClosed { .. });
            seen.push(event);
            if closed {
                break;
            }
        }
    })
    .await;
    assert!(collected.is_ok(), "no close event: {seen:?}");
    assert!(
        matches!(seen[0], EngineEvent::ConnectionOpened { .. }),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|e| matches!(e, EngineEvent::ConnectionRouted { protocol: "connect", target, .. } if *target == origin.addr.to_string())),
        "{seen:?}"
    );
    match seen.last() {
        Some(EngineEvent::ConnectionClosed { bytes_down, .. }) => assert!(*bytes_down > 1000),
        other => panic!("last event {other:?}"),
    }
    assert!(
        eventually(Duration::from_secs(5), || engine.stats().connections_open
            == 0)
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_open_tunnels_finish_then_closes_them() {
    let origin = Origin::start().await;
    let engine = start_engine(|c| c.limits.shutdown_grace = Duration::from_secs(1)).await;
    let addr = engine.local_addr();
    let mut tunnel = TcpStream::connect(addr).await.expect("connect");
    tunnel
        .write_all(format!("CONNECT {0} HTTP/1.1\r\nHost: {0}\r\n\r\n", origin.addr).as_bytes())
        .await
        .expect("send");
    let mut buf = [0u8; 128];
    let n = tunnel.read(&mut buf).await.expect("read");
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));

    let shutdown = tokio::spawn(async move {
        engine.shutdown().await;
    });
    // New clients are refused once shutdown begins...
    let refused = eventually(Duration::from_secs(5), || {
        std::net::TcpStream::connect(addr).is_err()
    })
    .await;
    assert!(refused, "listener still accepting during shutdown");
    // ...while the open tunnel still works during the grace period.
    tunnel
        .write_all(b"GET /ip HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("use tunnel");
    let n = tokio::time::timeout(Duration::from_secs(5), tunnel.read(&mut buf))
        .await
        .expect("answer in time")
        .expect("read");
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    // After the grace period the engine closes it and finishes.
    tokio::time::timeout(Duration::from_secs(10), shutdown)
        .await
        .expect("shutdown finishes")
        .expect("shutdown task");
    let n = tokio::time::timeout(Duration::from_secs(5), tunnel.read(&mut buf))
        .await
        .expect("closed in time")
        .unwrap_or(0);
    assert_eq!(n, 0, "tunnel closed after the grace period");
}

/// Reads until the proxy closes the connection; `true` when it did within
/// `limit` (a closed tunnel), `false` when it was still open.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_connections_ends_their_tunnels_one_or_all() {
    // A target that accepts and never speaks: only Veil can end the tunnels.
    let silent = veil_tests::peers::Silent::start().await;
    let target = silent.addr;
    let engine = start_engine(|_| {}).await;

    // A CONNECT tunnel and a SOCKS5 one.
    let mut connect = TcpStream::connect(engine.local_addr())
        .await
        .expect("connect");
    connect
        .write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
        .await
        .expect("send");
    let mut head = vec![0u8; 256];
    let n = connect.read(&mut head).await.expect("answer");
    assert!(
        head[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&head[..n])
    );
    let mut socks = TcpStream::connect(engine.local_addr())
        .await
        .expect("connect");
    socks.write_all(&[5, 1, 0]).await.expect("greeting");
    let mut reply = [0u8; 2];
    socks.read_exact(&mut reply).await.expect("method");
    let std::net::IpAddr::V4(ip) = target.ip() else {
        unreachable!("bound on 127.0.0.1")
    };
    let mut request = vec![5, 1, 0, 1];
    request.extend(ip.octets());
    request.extend(target.port().to_be_bytes());
    socks.write_all(&request).await.expect("request");
    let mut reply = [0u8; 10];
    socks.read_exact(&mut reply).await.expect("reply");
    assert_eq!(reply[1], 0, "SOCKS5 succeeded");

    // One by id: only that one ends.
    let open = engine.stats().connections;
    let socks_id = open
        .iter()
        .find(|c| c.protocol == "socks5")
        .map(|c| c.id)
        .expect("the SOCKS5 connection is listed");
    assert_eq!(engine.close_connections(Some(&[socks_id])), 1);
    assert!(
        closed_within(&mut socks, Duration::from_secs(10)).await,
        "the SOCKS5 tunnel ended"
    );
    assert!(
        !closed_within(&mut connect, Duration::from_millis(300)).await,
        "the other tunnel is untouched"
    );

    // Then all.
    assert!(
        eventually(Duration::from_secs(5), || engine.stats().connections.len()
            == 1)
        .await
    );
    assert_eq!(engine.close_connections(None), 1);
    assert!(
        closed_within(&mut connect, Duration::from_secs(10)).await,
        "the CONNECT tunnel ended"
    );
    assert!(
        eventually(Duration::from_secs(5), || engine.stats().connections_open
            == 0)
        .await
    );
}
