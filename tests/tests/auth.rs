//! Inbound credentials: an open proxy is refused, clients without the right
//! username and password are turned away on all three protocols, and the
//! password never reaches a log, the status report or a file.

use std::net::SocketAddr;
use std::path::Path;

use tempfile::TempDir;
use veil_engine::{Credentials, Engine, EngineConfig, EngineError};
use veil_tests::veil_process::veil_command;
use veil_tests::{Origin, VeilProcess, curl, proxy_url, start_engine};

const USER: &str = "tester";
const PASSWORD: &str = "Rk7-Vq2pLx9-right";

fn credentials() -> Credentials {
    Credentials::new(USER, PASSWORD)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_proxy_is_refused_without_credentials() {
    for listen in ["0.0.0.0:0", "[::]:0"] {
        let config = EngineConfig {
            listen: listen.parse().expect("addr"),
            ..EngineConfig::default()
        };
        match Engine::start(config).await {
            Err(EngineError::OpenProxyRefused { addr }) => {
                assert_eq!(addr.to_string(), listen);
            }
            other => panic!("{listen} without credentials must be refused, got {other:?}"),
        }
    }

    // With credentials the same listener starts, and answers on loopback.
    let origin = Origin::start().await;
    let engine = Engine::start(EngineConfig {
        listen: "0.0.0.0:0".parse().expect("addr"),
        auth: Some(credentials()),
        ..EngineConfig::default()
    })
    .await
    .expect("a non-loopback listener with credentials starts");
    let via = SocketAddr::from(([127, 0, 0, 1], engine.local_addr().port()));
    let user = format!("{USER}:{PASSWORD}");
    let out = curl(&["-x", &proxy_url(via), "-U", &user, &origin.url("/ip")]).await;
    assert_eq!(
        (out.status, out.text().as_str()),
        (200, "127.0.0.1"),
        "{out:?}"
    );
    let out = curl(&["-x", &proxy_url(via), &origin.url("/ip")]).await;
    assert_eq!(out.status, 407, "still needs the password: {out:?}");
}

#[test]
fn cli_refuses_an_open_proxy() {
    let home = TempDir::new().expect("temp VEIL_HOME");
    let args = ["--listen", "0.0.0.0:0"];
    assert!(
        VeilProcess::start(home.path(), &args, &[]).is_err(),
        "veil run must not start an open proxy"
    );
    let out = veil_command(home.path(), &["run", "--listen", "0.0.0.0:0"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "exits with an error: {out:?}");
    assert!(stderr.contains("open proxy"), "says why: {stderr}");
    assert!(
        stderr.contains("127.0.0.1") && stderr.contains("credentials"),
        "says what to do instead: {stderr}"
    );
    assert!(
        !home.path().join("run/veil.sock").exists(),
        "no control socket left behind"
    );
}

#[test]
fn cli_names_the_missing_password_variable() {
    let home = TempDir::new().expect("temp VEIL_HOME");
    let config = write_auth_config(home.path());
    let out = veil_command(
        home.path(),
        &["run", "--config", config.to_str().expect("utf-8 path")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{out:?}");
    assert!(stderr.contains(PASSWORD_ENV), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_and_connect_need_the_right_credentials() {
    let origin = Origin::start().await;
    let engine = start_engine(|c| c.auth = Some(credentials())).await;
    let proxy = proxy_url(engine.local_addr());
    let url = origin.url("/ip");
    let right = format!("{USER}:{PASSWORD}");
    let wrong = format!("{USER}:not-the-password");
    let wrong_user = format!("someone:{PASSWORD}");

    // Plain HTTP: a 407 with a challenge curl and browsers understand.
    let out = curl(&["-D", "-", "-x", &proxy, &url]).await;
    assert_eq!(out.status, 407, "{out:?}");
    let head = out.text().to_ascii_lowercase();
    assert!(head.contains("proxy-authenticate: basic realm="), "{out:?}");
    for bad in [&wrong, &wrong_user] {
        let out = curl(&["-x", &proxy, "-U", bad, &url]).await;
        assert_eq!(out.status, 407, "-U {bad}: {out:?}");
    }
    let out = curl(&["-x", &proxy, "-U", &right, &url]).await;
    assert_eq!(
        (out.status, out.text().as_str()),
        (200, "127.0.0.1"),
        "{out:?}"
    );

    // CONNECT: the tunnel is refused before it reaches the target.
    let before = origin.connections();
    for bad in [None, Some(&wrong)] {
        let mut args = vec!["-p", "-x", &proxy, &url];
        if let Some(bad) = bad {
            args.extend(["-U", bad]);
        }
        let out = curl(&args).await;
        assert_ne!(out.exit_code, 0, "CONNECT with {bad:?}: {out:?}");
        assert!(out.stderr.contains("407"), "CONNECT with {bad:?}: {out:?}");
        assert_ne!(out.text(), "127.0.0.1", "{out:?}");
    }
    assert_eq!(origin.connections(), before, "no tunnel was opened");
    let out = curl(&["-p", "-x", &proxy, "-U", &right, &url]).await;
    assert_eq!(
        (out.status, out.text().as_str()),
        (200, "127.0.0.1"),
        "{out:?}"
    );

    assert!(engine.stats().rejected_total >= 5, "{:?}", engine.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_with_extra_characters_is_wrong() {
    let origin = Origin::start().await;
    let engine = start_engine(|c| c.auth = Some(credentials())).await;
    let proxy = proxy_url(engine.local_addr());
    // The right password followed by more characters: the lengths differ by
    // 256, 512 and 1, which a comparison must not mistake for equal.
    for extra in [256, 512, 1] {
        let guess = format!("{USER}:{PASSWORD}{}", "x".repeat(extra));
        let out = curl(&["-x", &proxy, "-U", &guess, &origin.url("/ip")]).await;
        assert_eq!(out.status, 407, "{extra} extra characters: {out:?}");
        let guess = format!("{USER}{}:{PASSWORD}", "x".repeat(extra));
        let out = curl(&["-x", &proxy, "-U", &guess, &origin.url("/ip")]).await;
        assert_eq!(out.status, 407, "{extra} extra characters: {out:?}");
    }
    assert_eq!(origin.connections(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socks5_needs_the_right_credentials() {
    let origin = Origin::start().await;
    let engine = start_engine(|c| c.auth = Some(credentials())).await;
    let addr = engine.local_addr();
    let url = origin.url("/ip");

    let out = curl(&["-x", &format!("socks5h://{USER}:{PASSWORD}@{addr}"), &url]).await;
    assert_eq!(
        (out.status, out.text().as_str()),
        (200, "127.0.0.1"),
        "{out:?}"
    );

    let before = origin.connections();
    for proxy in [
        format!("socks5h://{USER}:not-the-password@{addr}"),
        format!("socks5h://someone:{PASSWORD}@{addr}"),
        format!("socks5h://{addr}"),
    ] {
        let out = curl(&["-x", &proxy, &url]).await;
        assert_ne!(out.exit_code, 0, "{proxy}: {out:?}");
        assert!(out.body.is_empty(), "{proxy}: {out:?}");
    }
    assert_eq!(origin.connections(), before, "no tunnel was opened");
}

const PASSWORD_ENV: &str = "VEIL_TEST_INBOUND_PW";
/// Distinctive, so a match in a log cannot be a coincidence.
const SECRET: &str = "Zq8-right-Secret-4Tn";
const WRONG_SECRET: &str = "Wv3-wrong-Guess-9Kd";

fn write_auth_config(home: &Path) -> std::path::PathBuf {
    let path = home.join("config.toml");
    std::fs::write(
        &path,
        format!(
            "[proxy]\nlisten = \"127.0.0.1:0\"\n[proxy.auth]\nusername = \"{USER}\"\npassword_env = \"{PASSWORD_ENV}\"\n"
        ),
    )
    .expect("write config");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_are_never_logged_or_stored() {
    let home = TempDir::new().expect("temp VEIL_HOME");
    let config = write_auth_config(home.path());
    let mut veil = VeilProcess::start(
        home.path(),
        &["--config", config.to_str().expect("utf-8 path")],
        &[(PASSWORD_ENV, SECRET), ("RUST_LOG", "trace")],
    )
    .expect("veil run starts with inbound credentials");
    let origin = Origin::start().await;
    let url = origin.url("/ip");
    let proxy = proxy_url(veil.addr);
    let addr = veil.addr;

    for (password, works) in [(SECRET, true), (WRONG_SECRET, false)] {
        let user = format!("{USER}:{password}");
        let socks = format!("socks5h://{USER}:{password}@{addr}");
        for args in [
            vec!["-x", &proxy, "-U", &user, &url],
            vec!["-p", "-x", &proxy, "-U", &user, &url],
            vec!["-x", &socks, &url],
        ] {
            let out = curl(&args).await;
            assert_eq!(out.text() == "127.0.0.1", works, "{args:?}: {out:?}");
        }
    }

    let status = veil.command(&["status", "--json"]);
    assert!(status.status.success(), "{status:?}");
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(status.contains("connections_total"), "{status}");

    assert!(veil.terminate(), "veil run exits cleanly on SIGTERM");
    let mut stderr = veil.stderr_lines();
    // The reader thread may still be passing on the last lines.
    for _ in 0..20 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        stderr.extend(veil.stderr_lines());
    }
    let stderr = stderr.join("\n");
    assert!(
        stderr.contains("connection closed"),
        "verbose logging was on, so the check below means something: {stderr}"
    );

    let forbidden = [
        SECRET.to_owned(),
        WRONG_SECRET.to_owned(),
        base64(&format!("{USER}:{SECRET}")),
        base64(&format!("{USER}:{WRONG_SECRET}")),
    ];
    let mut places = vec![("stderr".to_owned(), stderr.into_bytes())];
    places.push(("veil status --json".to_owned(), status.into_bytes()));
    let mut log_bytes = 0;
    for file in files_under(home.path()) {
        let bytes = std::fs::read(&file).expect("read file under VEIL_HOME");
        if file.starts_with(home.path().join("logs")) {
            log_bytes += bytes.len();
        }
        places.push((file.display().to_string(), bytes));
    }
    assert!(log_bytes > 0, "the log folder has the run's log");
    for (place, bytes) in &places {
        let text = String::from_utf8_lossy(bytes);
        for secret in &forbidden {
            assert!(!text.contains(secret.as_str()), "{place} contains {secret}");
        }
    }
}

/// Every regular file under `dir`, recursively (bounded depth).
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![(dir.to_path_buf(), 0)];
    while let Some((dir, depth)) = pending.pop() {
        let entries = std::fs::read_dir(&dir).expect("read folder under VEIL_HOME");
        for entry in entries {
            let path = entry.expect("folder entry").path();
            let kind = std::fs::symlink_metadata(&path)
                .expect("metadata")
                .file_type();
            if kind.is_dir() && depth < 8 {
                pending.push((path, depth + 1));
            } else if kind.is_file() {
                files.push(path);
            }
        }
    }
    files
}

/// Standard base64 with padding, as in a `Proxy-Authorization: Basic` header.
fn base64(input: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(input)
}

/// A LAN listener with credentials serves other machines, but not this
/// computer's loopback services (a database, a dev server, Veil's own
/// neighbours): those are loopback-only so that the network cannot reach
/// them. The client here is a host in a network namespace behind a veth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_on_other_machines_cannot_reach_this_ones_loopback() {
    let ns = veil_tests::netns::Netns::create().unwrap_or_else(|e| panic!("{e}"));
    let origin = Origin::start().await;
    let engine = Engine::start(EngineConfig {
        listen: SocketAddr::from((ns.host_ip, 0)),
        auth: Some(credentials()),
        ..EngineConfig::default()
    })
    .await
    .expect("a LAN listener with credentials starts");
    let proxy = proxy_url(engine.local_addr());
    let user = format!("{USER}:{PASSWORD}");
    let remote_curl = |args: Vec<String>| {
        let ns = &ns;
        async move {
            let mut all = vec!["-s".to_owned(), "-o".into(), "/dev/null".into()];
            // The CONNECT's own answer for -p, else the request's.
            let code = if args.iter().any(|a| a == "-p") {
                "%{http_connect}"
            } else {
                "%{http_code}"
            };
            all.extend(["-w".into(), code.into(), "-m".into(), "10".into()]);
            all.extend(args);
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            let child = ns.spawn("curl", &refs).expect("curl in the namespace");
            let out = tokio::task::spawn_blocking(move || child.wait_with_output())
                .await
                .expect("join")
                .expect("curl ran");
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    };
    let loopback = origin.url("/ip");
    let localhost = loopback.replace("127.0.0.1", "localhost");
    for (connect, url, what) in [
        (false, &loopback, "plain HTTP to this host's loopback"),
        (true, &loopback, "CONNECT to this host's loopback"),
        (false, &localhost, "by the name localhost"),
    ] {
        let mut args: Vec<String> = vec!["-x".into(), proxy.clone(), "-U".into(), user.clone()];
        if connect {
            args.insert(0, "-p".into());
        }
        args.push(url.clone());
        assert_eq!(remote_curl(args).await, "403", "{what}");
    }
    // Guessing from there: after ten wrong passwords the address waits
    // (429 with Retry-After), even with the right one; locally nothing
    // changes, so nobody can lock the user out of their own proxy.
    let wrong = format!("{USER}:not-the-password");
    for _ in 0..veil_engine::auth::MAX_FAILURES {
        let code = remote_curl(vec![
            "-x".into(),
            proxy.clone(),
            "-U".into(),
            wrong.clone(),
            loopback.clone(),
        ])
        .await;
        assert_eq!(code, "407", "a wrong password");
    }
    let code = remote_curl(vec![
        "-x".into(),
        proxy.clone(),
        "-U".into(),
        user.clone(),
        loopback.clone(),
    ])
    .await;
    assert_eq!(code, "429", "locked out for a while");

    // A local client on the same listener is still served.
    let via = SocketAddr::from((ns.host_ip, engine.local_addr().port()));
    let out = curl(&["-x", &proxy_url(via), "-U", &user, &loopback]).await;
    assert_eq!(out.status, 200, "{out:?}");
}
