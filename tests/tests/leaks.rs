//! The leak checks end to end, with real clients: curl that resolves names
//! itself (`CONNECT <ip>:port`, `--socks5`) is listed by `veil leaks`, curl
//! with `--socks5-hostname` is not; Veil makes no lookup of its own for
//! traffic routed to an upstream (its counter reads 0, the test DNS server
//! hears no proxied name, and strace sees no DNS packet); a leftover
//! `http_proxy` in `.bashrc` pointing at a closed port and a Firefox profile
//! with DNS over HTTPS on and remote DNS off are warned about.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use veil_tests::peers::RecordingDns;
use veil_tests::veil_process::veil_bin;
use veil_tests::{Origin, VeilProcess, curl, output_text, proxy_url};

/// A child process killed (and reaped) when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback listener that never accepts: connections to it stay open,
/// waiting for an answer, while the test looks.
fn silent_origin() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    (listener, port)
}

/// `veil ARGS` with `VEIL_HOME=home`, `HOME=user_home` and exactly `env`
/// besides `PATH`, so the session's own proxy variables do not leak in.
fn veil_with_env(home: &Path, user_home: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let out = Command::new(veil_bin())
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("VEIL_HOME", home)
        .env("HOME", user_home)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("veil runs");
    assert!(out.status.success(), "{}", output_text(&out));
    out
}

fn leaks_json(home: &Path, user_home: &Path, env: &[(&str, &str)]) -> Value {
    let out = veil_with_env(home, user_home, env, &["leaks", "--json"]);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", output_text(&out)))
}

fn check<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["id"] == id))
        .unwrap_or_else(|| panic!("no check {id}: {report:#}"))
}

fn item<'a>(check: &'a Value, subject: &str) -> Option<&'a Value> {
    check["items"]
        .as_array()?
        .iter()
        .find(|i| i["subject"].as_str().is_some_and(|s| s.contains(subject)))
}

/// Starts curl with `args` against a silent origin, in the background.
fn curl_held(args: &[&str]) -> Killed {
    Killed(
        Command::new("curl")
            .args(["-sS", "--max-time", "30", "-o", "/dev/null"])
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("curl runs"),
    )
}

/// Polls `veil status --json` (at most 10 s) until a connection of `pid`
/// is attributed to curl with target `target`.
fn wait_attributed(veil: &VeilProcess, pid: u32, target: &str) {
    let seen = |status: &Value| {
        status["connections"].as_array().is_some_and(|c| {
            c.iter().any(|c| {
                c["app"]["pid"].as_u64() == Some(u64::from(pid))
                    && c["app"]["name"] == "curl"
                    && c["target"] == target
            })
        })
    };
    let mut status = Value::Null;
    for _ in 0..100 {
        let out = veil.command(&["status", "--json"]);
        status = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        if seen(&status) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("curl ({pid}) to {target} never showed: {status:#}");
}

#[test]
fn curl_that_resolves_names_itself_is_listed_and_socks5_hostname_is_not() {
    let home = tempfile::tempdir().expect("tempdir");
    let user = tempfile::tempdir().expect("tempdir");
    let veil = VeilProcess::start(home.path(), &["--listen", "127.0.0.1:0"], &[]).expect("veil");
    let (_silent, port) = silent_origin();
    let proxy = proxy_url(veil.addr);
    let socks = format!("{}", veil.addr);

    // --socks5-hostname: curl sends the name; Veil resolves it.
    let named = curl_held(&[
        "--socks5-hostname",
        &socks,
        &format!("http://localhost:{port}/"),
    ]);
    wait_attributed(&veil, named.0.id(), &format!("localhost:{port}"));
    let report = leaks_json(home.path(), user.path(), &[]);
    let apps = check(&report, "resolving_apps");
    assert_eq!(apps["verdict"], "pass", "{apps:#}");
    assert!(item(apps, "curl").is_none(), "{apps:#}");
    drop(named);

    // CONNECT to an address, and SOCKS5 with curl resolving localhost.
    let connect = curl_held(&["-p", "-x", &proxy, &format!("http://127.0.0.1:{port}/")]);
    wait_attributed(&veil, connect.0.id(), &format!("127.0.0.1:{port}"));
    let socks5 = curl_held(&[
        "-4",
        "--socks5",
        &socks,
        &format!("http://localhost:{port}/"),
    ]);
    wait_attributed(&veil, socks5.0.id(), &format!("127.0.0.1:{port}"));
    let report = leaks_json(home.path(), user.path(), &[]);
    let apps = check(&report, "resolving_apps");
    assert_eq!(apps["verdict"], "warn", "{apps:#}");
    let curl = item(apps, "curl").unwrap_or_else(|| panic!("curl listed: {apps:#}"));
    assert_eq!(curl["subject"], "curl");
    let detail = curl["detail"].as_str().expect("detail");
    assert!(
        detail.starts_with(&format!("2 requests to an address (127.0.0.1:{port})")),
        "{detail}"
    );
    assert!(detail.contains("--socks5-hostname"), "{detail}");
    assert_eq!(
        apps["found"],
        "curl looked names up itself before using Veil."
    );
    // The same counter is in the status report, per app.
    let out = veil.command(&["status", "--json"]);
    let status: Value = serde_json::from_slice(&out.stdout).expect("status json");
    let curl_app = status["apps"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["app"] == "curl"))
        .expect("curl in apps");
    assert_eq!(curl_app["resolved_locally"], 2, "{curl_app:#}");

    // The control request `leaks` runs the checks in the engine's process,
    // with the same counters.
    let mut control = std::os::unix::net::UnixStream::connect(home.path().join("run/veil.sock"))
        .expect("control socket");
    control
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    control
        .write_all(b"{\"cmd\":\"leaks\"}\n")
        .expect("request");
    let mut line = String::new();
    BufReader::new(&control)
        .read_line(&mut line)
        .expect("reply");
    let reply: Value = serde_json::from_str(&line).expect("reply json");
    assert_eq!(reply["ok"], true, "{reply:#}");
    assert_eq!(reply["leaks"]["checks"].as_array().map(Vec::len), Some(7));
    assert_eq!(reply["leaks"]["route"], "direct");
    let apps = check(&reply["leaks"], "resolving_apps");
    assert!(item(apps, "curl").is_some(), "{apps:#}");
    drop((connect, socks5));
}

/// A stand-in HTTP upstream proxy that resolves nothing: it records each
/// request line and answers `CONNECT` with 200 and any request with "ok".
fn fake_upstream() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let record = record.clone();
            std::thread::spawn(move || {
                let Ok(mut writer) = stream.try_clone() else {
                    return;
                };
                let mut reader = BufReader::new(stream);
                // Each request head: CONNECT (then the tunnelled request) or
                // an absolute-form request.
                loop {
                    let mut first = String::new();
                    if reader.read_line(&mut first).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                            break;
                        }
                    }
                    record
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(first.trim().to_owned());
                    let answer: &[u8] = if first.starts_with("CONNECT ") {
                        b"HTTP/1.1 200 Connection established\r\n\r\n"
                    } else {
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                    };
                    if writer.write_all(answer).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn veil_looks_up_no_name_of_upstream_traffic_counter_dns_server_and_strace_agree() {
    let home = tempfile::tempdir().expect("tempdir");
    let user = tempfile::tempdir().expect("tempdir");
    let dns = RecordingDns::start().await;
    let origin = Origin::start().await;
    // Direct traffic for one name, as a control: its lookup must be seen.
    std::fs::write(
        home.path().join("config.toml"),
        format!(
            "[dns]\nservers = [\"{}\"]\n[rules]\n\"direct-control.example\" = \"direct\"\n",
            dns.addr
        ),
    )
    .expect("config");
    let (up_port, upstream_seen) = fake_upstream();
    let trace = home.path().join("strace.txt");
    let strace_works = Command::new("strace")
        .args(["-o", "/dev/null", "true"])
        .status()
        .is_ok_and(|s| s.success());
    let mut command = if strace_works {
        let mut c = Command::new("strace");
        c.args(["-f", "-e", "trace=connect,sendto,sendmsg,sendmmsg", "-o"])
            .arg(&trace)
            .arg(veil_bin());
        c
    } else {
        eprintln!("strace cannot trace here; checking the counter and the DNS server only");
        Command::new(veil_bin())
    };
    command
        .args(["run", "--listen", "127.0.0.1:0"])
        .args(["--upstream", &format!("http://127.0.0.1:{up_port}")])
        .env("VEIL_HOME", home.path());
    let veil = VeilProcess::spawn(command, home.path(), Duration::from_secs(60)).expect("veil");
    let proxy = proxy_url(veil.addr);
    let socks = format!("socks5h://{}", veil.addr);

    for args in [
        vec!["-x", proxy.as_str(), "http://proxied-plain.example/"],
        vec![
            "-p",
            "-x",
            proxy.as_str(),
            "http://proxied-connect.example:80/",
        ],
        vec!["-x", socks.as_str(), "http://proxied-socks.example/"],
    ] {
        let out = curl(&args).await;
        assert_eq!(
            (out.status, out.text().as_str()),
            (200, "ok"),
            "{args:?}: {out:?}"
        );
    }
    let control = format!("http://direct-control.example:{}/ip", origin.addr.port());
    let out = curl(&["-x", &proxy, &control]).await;
    assert_eq!(out.status, 200, "the direct control request: {out:?}");

    let seen = upstream_seen
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    for name in [
        "proxied-plain.example",
        "proxied-connect.example",
        "proxied-socks.example",
    ] {
        assert!(
            seen.iter().any(|l| l.contains(name)),
            "{name} reached the upstream: {seen:?}"
        );
    }
    let queries = dns.queries();
    assert!(
        queries.iter().all(|q| !q.starts_with("proxied-")),
        "no proxied name was looked up: {queries:?}"
    );
    assert!(
        queries.iter().any(|q| q == "direct-control.example"),
        "the control lookup was heard: {queries:?}"
    );

    let report = leaks_json(home.path(), user.path(), &[]);
    let lookups = check(&report, "veil_lookups");
    assert_eq!(lookups["verdict"], "pass", "{lookups:#}");
    assert_eq!(
        lookups["found"],
        "0 local lookups for 3 connections through upstreams."
    );
    // strace detaches from (and so leaves running) a tracee when it is
    // killed itself: stop veil by its own pid, and strace ends with it.
    let out = veil.command(&["status", "--json"]);
    let status: Value = serde_json::from_slice(&out.stdout).expect("status json");
    let pid = status["pid"].as_u64().expect("pid").to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let mut veil = veil;
    let mut ended = false;
    for _ in 0..200 {
        if matches!(veil.child.try_wait(), Ok(Some(_))) {
            ended = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(ended, "veil (and strace with it) ended on SIGTERM");
    drop(veil);

    if strace_works {
        let text = std::fs::read_to_string(&trace).expect("trace");
        let dns_port = format!("htons({})", dns.addr.port());
        let to_dns: Vec<&str> = text.lines().filter(|l| l.contains(&dns_port)).collect();
        assert!(!to_dns.is_empty(), "strace sees the control lookup");
        assert!(
            !text.contains("htons(53)"),
            "no packet to a DNS port 53: {}",
            text.lines()
                .filter(|l| l.contains("htons(53)"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        // Every packet to the DNS server belongs to the one control lookup
        // (A and AAAA, perhaps retried): at most a handful, not one per
        // proxied request too.
        assert!(to_dns.len() <= 8, "{}", to_dns.join("\n"));
    }
}

#[test]
fn a_leftover_http_proxy_and_a_firefox_profile_with_doh_and_no_remote_dns_are_warned() {
    let home = tempfile::tempdir().expect("tempdir");
    let user = tempfile::tempdir().expect("tempdir");
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    std::fs::write(
        user.path().join(".bashrc"),
        format!("# proxy app leftovers\nexport http_proxy=http://127.0.0.1:{closed}\n"),
    )
    .expect("bashrc");
    let profiles = user.path().join(".mozilla/firefox");
    std::fs::create_dir_all(profiles.join("x1.default-release")).expect("profile dir");
    std::fs::write(
        profiles.join("profiles.ini"),
        "[Profile0]\nName=default-release\nIsRelative=1\nPath=x1.default-release\nDefault=1\n",
    )
    .expect("profiles.ini");
    std::fs::write(
        profiles.join("x1.default-release/prefs.js"),
        "user_pref(\"network.trr.mode\", 3);\nuser_pref(\"network.proxy.socks_remote_dns\", false);\n",
    )
    .expect("prefs.js");

    let report = leaks_json(home.path(), user.path(), &[]);
    let vars = check(&report, "proxy_variables");
    assert_eq!(vars["verdict"], "warn", "{vars:#}");
    let bashrc = item(vars, "~/.bashrc line 2").unwrap_or_else(|| panic!("{vars:#}"));
    assert_eq!(bashrc["verdict"], "warn");
    assert_eq!(
        bashrc["detail"],
        format!("nothing listens on 127.0.0.1:{closed}: tools that read it fail to connect")
    );
    let browsers = check(&report, "browsers");
    assert_eq!(browsers["verdict"], "warn", "{browsers:#}");
    for subject in [
        "Firefox (default-release): DNS over HTTPS",
        "Firefox (default-release): Proxy DNS when using SOCKS v5",
    ] {
        let i = item(browsers, subject).unwrap_or_else(|| panic!("{subject}: {browsers:#}"));
        assert_eq!(i["verdict"], "warn", "{i:#}");
    }
    assert_eq!(report["route"], "unknown", "no engine runs");

    // The same variable in the session, pointing at a live listener: fine.
    let live = TcpListener::bind("127.0.0.1:0").expect("bind");
    let live_url = format!(
        "http://127.0.0.1:{}",
        live.local_addr().expect("addr").port()
    );
    std::fs::remove_file(user.path().join(".bashrc")).expect("rm");
    let report = leaks_json(home.path(), user.path(), &[("HTTPS_PROXY", &live_url)]);
    let vars = check(&report, "proxy_variables");
    assert_eq!(vars["verdict"], "pass", "{vars:#}");
    assert!(item(vars, "HTTPS_PROXY").is_some(), "{vars:#}");

    // The text form says the same.
    let out = veil_with_env(home.path(), user.path(), &[], &["leaks"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("Leak checks: "), "{text}");
    assert!(
        text.contains("[WARN] Browser settings that undo the proxy"),
        "{text}"
    );
}
