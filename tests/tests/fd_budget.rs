//! Bounded descriptors: `veil run` under a low open-file limit (`prlimit
//! --nofile=256:256`) answers clients past its descriptor budget with a 503
//! and `Retry-After` instead of failing `accept` with EMFILE, keeps its
//! control socket answering, and serves again once the tunnels close.

use std::process::Command;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use veil_tests::veil_process::veil_bin;
use veil_tests::{Origin, VeilProcess, curl, eventually, proxy_url};

/// A CONNECT through Veil; returns the stream and the status line.
async fn connect_tunnel(veil: std::net::SocketAddr, target: &str) -> (TcpStream, String) {
    let mut s = TcpStream::connect(veil).await.expect("connect to veil");
    let req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(20), s.read(&mut byte))
            .await
            .expect("veil answers")
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    (s, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_descriptor_budget_clients_get_a_503_and_veil_recovers() {
    if Command::new("prlimit").arg("--version").output().is_err() {
        eprintln!("skipped: prlimit (util-linux) is not installed");
        return;
    }
    let origin = Origin::start().await;
    let home = tempfile::TempDir::new().expect("temp VEIL_HOME");
    let config = home.path().join("config.toml");
    std::fs::write(&config, "[cache]\nenabled = false\n").expect("config");
    let mut command = Command::new("prlimit");
    command
        .arg("--nofile=256:256")
        .arg(veil_bin())
        .args(["run", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .env("VEIL_HOME", home.path());
    let veil = VeilProcess::spawn(command, home.path(), Duration::from_secs(20))
        .expect("veil starts under prlimit");

    // 256 descriptors less the reserve of 128 is room for 64 clients of 2
    // (an idle tunnel makes no splice pipe).
    let mut open = Vec::new();
    let mut refused = 0;
    for _ in 0..80 {
        let (stream, head) = connect_tunnel(veil.addr, &origin.addr.to_string()).await;
        if head.starts_with("HTTP/1.1 200") {
            open.push(stream);
        } else {
            assert!(head.starts_with("HTTP/1.1 503"), "{head}");
            assert!(head.contains("Retry-After: 1"), "{head}");
            refused += 1;
        }
    }
    assert!(
        refused > 0 && !open.is_empty(),
        "open {}, refused {refused}",
        open.len()
    );

    let proxy = proxy_url(veil.addr);
    let out = curl(&["-x", &proxy, &origin.url("/ip")]).await;
    assert_eq!(out.status, 503, "{out:?}");
    assert!(out.text().contains("open-file limit"), "{out:?}");
    // The control socket is outside the budget.
    let status = veil.command(&["status", "--json"]);
    assert!(status.status.success(), "{status:?}");

    drop(open);
    let recovered = eventually(Duration::from_secs(20), || {
        Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-x", &proxy])
            .arg(origin.url("/ip"))
            .output()
            .is_ok_and(|o| o.stdout == b"200")
    })
    .await;
    assert!(recovered, "serves again once the tunnels closed");
    assert!(
        !veil
            .stderr_lines()
            .iter()
            .any(|l| l.contains("Too many open files")),
        "no EMFILE"
    );
}
