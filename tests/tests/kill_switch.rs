//! The kill switch: when no upstream can carry a connection, Veil never
//! goes direct on its own. Plain HTTP, CONNECT and SOCKS5 all fail with an
//! answer that names the upstreams and says Veil did not go direct, and the
//! origin sees nothing; only with `fallback_direct` set does traffic go
//! direct, and then the client is told so.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use veil_engine::{EngineHandle, Mode};
use veil_tests::peers::{free_port, spec};
use veil_tests::{Origin, curl, proxy_url, start_engine};

const NOT_DIRECT: &str = "did not connect directly";

/// Proxy mode through two upstreams that are not running (an HTTP proxy
/// and a SOCKS5 one), nothing bypassed (the origin is on loopback).
async fn dead_upstreams() -> EngineHandle {
    start_engine(|c| {
        c.mode = Mode::Proxy;
        c.bypass = vec![];
        c.upstreams = vec![
            spec(
                "dead-http",
                &format!("http://127.0.0.1:{}", free_port()),
                None,
            ),
            spec(
                "dead-socks",
                &format!("socks5://127.0.0.1:{}", free_port()),
                None,
            ),
        ];
    })
    .await
}

/// A raw CONNECT; returns the whole answer head and body Veil sent.
async fn raw_connect(engine: &EngineHandle, target: &str) -> String {
    let mut s = TcpStream::connect(engine.local_addr())
        .await
        .expect("connect to veil");
    // `Connection: close`: a failure answer then ends the connection.
    let req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = vec![0u8; 8192];
    let mut got = Vec::new();
    // The failure answer is short and the connection closes after it; a
    // success leaves the tunnel open, so stop at the end of the head.
    loop {
        let n = tokio::time::timeout(std::time::Duration::from_secs(20), s.read(&mut buf))
            .await
            .expect("veil answers")
            .expect("read");
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if n == 0 || (text.starts_with("HTTP/1.1 200") && text.contains("\r\n\r\n")) {
            return text.into_owned();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_upstream_means_no_traffic_not_direct_traffic() {
    let origin = Origin::start().await;
    let engine = dead_upstreams().await;
    let proxy = proxy_url(engine.local_addr());
    let url = origin.url("/ip");

    // Several rounds: the first ones find the upstreams refusing, the later
    // ones find them marked down; neither goes direct.
    for round in 0..4 {
        let out = curl(&["-x", &proxy, &url]).await;
        assert_eq!(out.status, 502, "round {round}: {out:?}");
        let text = out.text();
        assert!(text.contains(NOT_DIRECT), "round {round}: {text}");
        assert!(
            text.contains("dead-http") && text.contains("dead-socks"),
            "names every upstream, round {round}: {text}"
        );

        let answer = raw_connect(&engine, &origin.addr.to_string()).await;
        assert!(
            answer.starts_with("HTTP/1.1 502"),
            "round {round}: {answer}"
        );
        assert!(answer.contains(NOT_DIRECT), "round {round}: {answer}");
        assert!(answer.contains("dead-http"), "round {round}: {answer}");

        let socks = curl(&["--socks5-hostname", &engine.local_addr().to_string(), &url]).await;
        assert_ne!(socks.exit_code, 0, "round {round}: {socks:?}");
    }
    assert_eq!(
        origin.connections(),
        0,
        "nothing reached the origin directly"
    );
    assert!(
        !engine.fallback_direct(),
        "the kill switch is on by default"
    );

    // The user allows the fallback: direct, and said so.
    engine.set_fallback_direct(true);
    let out = curl(&["-D", "-", "-x", &proxy, &url]).await;
    assert_eq!(out.status, 200, "{out:?}");
    assert!(
        out.text()
            .to_ascii_lowercase()
            .contains("veil-fallback: direct"),
        "{out:?}"
    );
    let answer = raw_connect(&engine, &origin.addr.to_string()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("veil-fallback: direct"),
        "{answer}"
    );
    let socks = curl(&["--socks5-hostname", &engine.local_addr().to_string(), &url]).await;
    assert_eq!(
        (socks.status, socks.text().as_str()),
        (200, "127.0.0.1"),
        "{socks:?}"
    );
    assert!(origin.connections() >= 3, "went direct");
}
