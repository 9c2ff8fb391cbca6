//! The `veil` binary as a user runs it: `veil run` serves and reports through
//! `veil status`, stops cleanly on SIGTERM, keeps its files where `VEIL_HOME`
//! says, refuses a second engine and explains a broken config file.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::process::Output;

use tempfile::TempDir;
use veil_tests::veil_process::veil_command;
use veil_tests::{Origin, VeilProcess, curl, proxy_url};

fn start(home: &Path) -> VeilProcess {
    VeilProcess::start(home, &["--listen", "127.0.0.1:0"], &[]).expect("veil run starts")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_serves_and_status_reports_the_traffic() {
    let home = TempDir::new().expect("temp VEIL_HOME");
    let veil = start(home.path());
    assert!(veil.addr.ip().is_loopback(), "{}", veil.addr);
    assert_ne!(veil.addr.port(), 0, "prints the real port");

    let origin = Origin::start().await;
    let out = curl(&["-x", &proxy_url(veil.addr), &origin.url("/bytes/1048576")]).await;
    assert_eq!(out.status, 200, "{}", out.stderr);
    assert_eq!(out.body.len(), 1_048_576);

    let json = veil.command(&["status", "--json"]);
    assert!(json.status.success(), "{json:?}");
    let report: serde_json::Value =
        serde_json::from_slice(&json.stdout).expect("veil status --json prints JSON");
    let number = |key: &str| {
        report[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{key}: {report}"))
    };
    assert!(number("bytes_down") >= 1_048_576, "{report}");
    assert!(number("connections_total") >= 1, "{report}");
    assert_eq!(report["listen"], veil.addr.to_string(), "{report}");
    assert_eq!(report["mode"], "direct", "{report}");
    assert_eq!(number("pid"), u64::from(veil.child.id()), "{report}");
    let hosts = report["hosts"].as_array().expect("hosts is a list");
    let origin_host = hosts
        .iter()
        .find(|h| h["host"] == "127.0.0.1")
        .unwrap_or_else(|| panic!("a hosts entry for the origin: {report}"));
    assert!(
        origin_host["bytes_down"].as_u64().unwrap_or(0) >= 1_048_576,
        "{report}"
    );

    let human = veil.command(&["status"]);
    assert!(human.status.success(), "{human:?}");
    let text = stdout(&human);
    assert!(text.contains(&veil.addr.to_string()), "{text}");
    assert!(text.contains("mode direct"), "{text}");
    assert!(text.contains("1.0 MiB down"), "{text}");
}

#[test]
fn status_without_an_engine_says_how_to_start_one() {
    let home = TempDir::new().expect("temp VEIL_HOME");
    for args in [&["status"][..], &["status", "--json"][..]] {
        let out = veil_command(home.path(), args);
        assert!(!out.status.success(), "{args:?}: {out:?}");
        let err = stderr(&out);
        assert!(err.contains("no running Veil engine"), "{err}");
        assert!(err.contains("veil run"), "says how to start one: {err}");
        assert!(stdout(&out).is_empty(), "{out:?}");
    }
}

#[test]
fn sigterm_stops_cleanly_and_files_are_private() {
    let home = TempDir::new().expect("temp VEIL_HOME");
    let mut veil = start(home.path());
    let run_dir = home.path().join("run");
    let socket = run_dir.join("veil.sock");

    let socket_meta = std::fs::metadata(&socket).expect("control socket exists while running");
    assert!(socket_meta.file_type().is_socket());
    assert_eq!(mode(&socket), 0o600, "control socket is private");
    assert_eq!(mode(&run_dir), 0o700, "runtime folder is private");

    assert!(
        veil.terminate(),
        "exits successfully within 10 s of SIGTERM"
    );
    assert!(!socket.exists(), "control socket removed on exit");
    assert!(run_dir.is_dir(), "VEIL_HOME/run stays");
    let logs: Vec<String> = std::fs::read_dir(home.path().join("logs"))
        .expect("VEIL_HOME/logs exists")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        logs.iter().any(|name| name.starts_with("veil.log")),
        "a veil.log file in VEIL_HOME/logs: {logs:?}"
    );
    let out = veil_command(home.path(), &["status"]);
    assert!(!out.status.success(), "nothing answers after exit: {out:?}");
}

#[test]
fn a_second_engine_on_the_same_home_is_refused() {
    let home = TempDir::new().expect("temp VEIL_HOME");
    let mut first = start(home.path());

    let second = veil_command(home.path(), &["run", "--listen", "127.0.0.1:0"]);
    assert!(!second.status.success(), "{second:?}");
    let err = stderr(&second);
    assert!(
        err.contains(&format!(
            "another Veil is already running for this user (pid {})",
            first.child.id()
        )),
        "{err}"
    );
    assert!(!stdout(&second).contains("listening"), "{second:?}");

    // The refused second run left the first one's control socket alone.
    let status = first.command(&["status", "--json"]);
    assert!(status.status.success(), "{status:?}");
    let report: serde_json::Value = serde_json::from_slice(&status.stdout).expect("JSON");
    assert_eq!(report["pid"], first.child.id(), "{report}");
    assert!(first.terminate());
}

/// The instance lock, not the control socket, decides: with the socket file
/// gone (deleted by a cleaner, or the first still starting), a second run is
/// still refused and names the first, which keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_engine_is_refused_even_without_the_control_socket() {
    let home = TempDir::new().expect("temp VEIL_HOME");
    let mut first = start(home.path());
    std::fs::remove_file(home.path().join("run/veil.sock")).expect("remove the socket file");

    let second = veil_command(home.path(), &["run", "--listen", "127.0.0.1:0"]);
    assert!(!second.status.success(), "{second:?}");
    let err = stderr(&second);
    assert!(
        err.contains(&format!("(pid {})", first.child.id())),
        "names the running one: {err}"
    );
    assert!(
        !home.path().join("run/veil.sock").exists(),
        "the refused run bound nothing"
    );

    let origin = Origin::start().await;
    let out = curl(&["-x", &proxy_url(first.addr), &origin.url("/bytes/10")]).await;
    assert_eq!(out.status, 200, "the first still serves: {}", out.stderr);
    assert!(first.terminate());

    // Released on a clean exit: the next start takes it.
    let mut next = start(home.path());
    assert!(next.terminate());
}

#[test]
fn a_crashed_engine_leaves_nothing_in_the_way() {
    let home = TempDir::new().expect("temp VEIL_HOME");
    let mut crashed = start(home.path());
    crashed.child.kill().expect("SIGKILL");
    crashed.child.wait().expect("reaped");
    let socket = home.path().join("run/veil.sock");
    assert!(socket.exists(), "SIGKILL leaves the socket file behind");
    assert!(
        home.path().join("run/veil.lock").exists(),
        "and the lock file, whose lock the kernel released"
    );

    let out = veil_command(home.path(), &["status"]);
    assert!(!out.status.success(), "{out:?}");
    assert!(stderr(&out).contains("no running Veil engine"), "{out:?}");

    let mut again = start(home.path());
    let out = again.command(&["status"]);
    assert!(out.status.success(), "the new engine answers: {out:?}");
    assert!(stdout(&out).contains(&again.addr.to_string()), "{out:?}");
    assert!(again.terminate());
}

/// `veil run --config FILE` with `text` in FILE; returns FILE and the failure.
fn run_with_config(home: &Path, text: &str) -> (String, Output) {
    let path = home.join("broken.toml");
    std::fs::write(&path, text).expect("write config");
    let path = path.to_str().expect("utf-8 path").to_owned();
    let out = veil_command(home, &["run", "--config", &path]);
    (path, out)
}

#[test]
fn a_broken_config_file_is_explained_with_its_line() {
    let home = TempDir::new().expect("temp VEIL_HOME");

    // A value of the wrong type on line 3.
    let (path, out) = run_with_config(
        home.path(),
        "# Veil\n[proxy]\nlisten = 42\nmode = \"direct\"\n",
    );
    assert!(!out.status.success(), "{out:?}");
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{path}:3:")),
        "names file and line: {err}"
    );
    assert!(!stdout(&out).contains("listening"), "{out:?}");

    // A key Veil does not know, on line 4: a typo must not be ignored.
    let (path, out) = run_with_config(
        home.path(),
        "[proxy]\nlisten = \"127.0.0.1:0\"\nmode = \"direct\"\ncolour = \"red\"\n",
    );
    assert!(!out.status.success(), "{out:?}");
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{path}:4:")),
        "names file and line: {err}"
    );
    assert!(err.contains("colour"), "names the key: {err}");

    // Not TOML at all.
    let (path, out) = run_with_config(home.path(), "[proxy\nlisten = 1\n");
    assert!(!out.status.success(), "{out:?}");
    assert!(stderr(&out).contains(&format!("{path}:1:")), "{out:?}");

    assert!(
        !home.path().join("run/veil.sock").exists(),
        "a refused config starts nothing"
    );
}

/// Each tunnel may hold six descriptors: started with the common soft
/// limit of 512 open files, `veil run` raises it towards what its
/// connection cap needs (4096 connections by default), within the hard limit.
#[test]
fn veil_run_raises_a_low_open_file_limit() {
    let home = TempDir::new().expect("temp VEIL_HOME");
    let mut command = std::process::Command::new("bash");
    command
        .args([
            "-c",
            "ulimit -Sn 512 && exec \"$0\" run --listen 127.0.0.1:0",
        ])
        .arg(veil_tests::veil_process::veil_bin())
        .env("VEIL_HOME", home.path());
    let veil = VeilProcess::spawn(command, home.path(), std::time::Duration::from_secs(30))
        .expect("veil run starts");
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", veil.child.id()))
        .expect("limits of veil");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("open files line");
    let soft: u64 = line
        .split_whitespace()
        .nth(3)
        .and_then(|v| v.parse().ok())
        .expect("soft limit");
    let hard: u64 = line
        .split_whitespace()
        .nth(4)
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX);
    assert!(
        soft >= (4096 * 6 + 256).min(hard),
        "soft limit {soft} (hard {hard}): {line}"
    );
}
