//! Only your user: a loopback client run as another local user (`setpriv
//! --reuid=nobody`) is refused unless inbound credentials are set, over
//! plain HTTP, CONNECT and SOCKS5, while Veil's own user is served.

use std::process::Command;
use std::sync::Arc;

use veil_engine::{Credentials, EngineConfig};
use veil_system::sockets::SocketTable;
use veil_tests::{Origin, curl, proxy_url, start_engine};

const USER: &str = "alice";
const PASSWORD: &str = "s3cret-pass";

/// Why the test cannot run here, if it cannot: switching to another user
/// needs root (the tests run as root in CI and on the dev machine).
fn cannot_switch_user() -> Option<String> {
    let id = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&id.stdout).trim() != "0" {
        return Some("not running as root, so curl cannot be run as another user".into());
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        return Some("setpriv (util-linux) is not installed".into());
    }
    None
}

/// curl run as `nobody`; returns (HTTP status, exit code, stderr).
async fn curl_as_nobody(args: &[&str]) -> (u16, i32, String) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let out = Command::new("setpriv")
            .args([
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                "curl",
            ])
            .args([
                "-sS",
                "--max-time",
                "20",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
            ])
            .args(&args)
            .output()
            .expect("setpriv runs");
        let status = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        (
            status,
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .expect("curl task")
}

fn with_socket_table(c: &mut EngineConfig) {
    c.client_lookup = Some(Arc::new(SocketTable::new()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_local_user_is_refused_without_credentials() {
    if let Some(why) = cannot_switch_user() {
        eprintln!("skipped: {why}");
        return;
    }
    let origin = Origin::start().await;
    let engine = start_engine(with_socket_table).await;
    let proxy = proxy_url(engine.local_addr());
    let socks = format!("socks5h://{}", engine.local_addr());
    let url = origin.url("/ip");

    // Veil's own user is served on every protocol.
    for args in [
        vec!["-x", &proxy, &url],
        vec!["-p", "-x", &proxy, &url],
        vec!["-x", &socks, &url],
    ] {
        let out = curl(&args).await;
        assert_eq!(out.status, 200, "{args:?}: {out:?}");
    }

    let before = origin.connections();
    // Plain HTTP: a 403 that says why.
    let out = tokio::task::spawn_blocking({
        let (proxy, url) = (proxy.clone(), url.clone());
        move || {
            Command::new("setpriv")
                .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
                .args(["curl", "-sS", "--max-time", "20", "-x", &proxy, &url])
                .args(["-w", "\n%{http_code}"])
                .output()
                .expect("setpriv runs")
        }
    })
    .await
    .expect("task");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.trim_end().ends_with("403"), "{text}");
    assert!(text.contains("serves only the user it runs as"), "{text}");
    // CONNECT: refused before any tunnel.
    let (status, code, stderr) = curl_as_nobody(&["-p", "-x", &proxy, &url]).await;
    assert_ne!(code, 0, "{status} {stderr}");
    assert!(stderr.contains("403"), "{stderr}");
    // SOCKS5: reply 0x02, "connection not allowed by ruleset".
    let (status, code, stderr) = curl_as_nobody(&["-x", &socks, &url]).await;
    assert_ne!(code, 0, "{status} {stderr}");
    assert!(
        stderr.contains("not allowed") || stderr.contains("(2)"),
        "{stderr}"
    );
    assert_eq!(origin.connections(), before, "nothing reached the origin");
    assert!(engine.stats().rejected_total >= 3, "{:?}", engine.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_local_user_may_log_in_when_credentials_are_set() {
    if let Some(why) = cannot_switch_user() {
        eprintln!("skipped: {why}");
        return;
    }
    let origin = Origin::start().await;
    let engine = start_engine(|c| {
        with_socket_table(c);
        c.auth = Some(Credentials::new(USER, PASSWORD));
    })
    .await;
    let proxy = proxy_url(engine.local_addr());
    let socks = format!("socks5h://{USER}:{PASSWORD}@{}", engine.local_addr());
    let url = origin.url("/ip");
    let login = format!("{USER}:{PASSWORD}");
    for args in [
        vec!["-x", &proxy, "-U", &login, &url],
        vec!["-p", "-x", &proxy, "-U", &login, &url],
        vec!["-x", &socks, &url],
    ] {
        let (status, code, stderr) = curl_as_nobody(&args).await;
        assert_eq!((status, code), (200, 0), "{args:?}: {stderr}");
    }
    let (status, _, _) = curl_as_nobody(&["-x", &proxy, &url]).await;
    assert_eq!(status, 407, "without the password it still needs one");
}
