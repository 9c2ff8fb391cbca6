//! `veil.exe`, the Windows build of the CLI, run under Wine on this machine
//! and used by Linux curl through its mixed port: plain HTTP, CONNECT and
//! SOCKS5 to a loopback origin.
//!
//! It runs when `VEIL_WINE_EXE` names the exe: `scripts/cross wine-test` (and
//! so `make test`) builds veil.exe first and sets it, with `WINEPREFIX` set to
//! the prefix that script prepared. Without it the test prints why it did
//! nothing (a stale or missing exe must not be tested by accident).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use tempfile::TempDir;
use veil_tests::{Origin, VeilProcess, curl, proxy_url};

/// Wine starts its server and loads the prefix on the first run: slower than
/// a native start, so more time than the Linux tests give `veil run`.
const START_WITHIN: Duration = Duration::from_secs(90);

fn wine_exe() -> Option<PathBuf> {
    std::env::var_os("VEIL_WINE_EXE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The Windows name of a Linux path: Wine maps `/` to drive `Z:`.
fn windows_path(path: &Path) -> String {
    format!("Z:{}", path.display()).replace('/', "\\")
}

/// Ends every Wine process of the prefix (veil.exe and wineserver) when the
/// test ends, passed or not, so nothing outlives it.
struct WineServer;

impl Drop for WineServer {
    fn drop(&mut self) {
        let _ = Command::new("timeout")
            .args(["30", "wineserver", "-k"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn wine_command(exe: &Path, home: &Path, args: &[&str]) -> Command {
    let mut command = Command::new("wine");
    command
        .arg(exe)
        .args(args)
        .env("VEIL_HOME", windows_path(home))
        .env("WINEDEBUG", "-all")
        .env_remove("DISPLAY");
    command
}

/// Runs `veil.exe ARGS` under Wine to completion (60 s at most).
fn run_to_end(exe: &Path, home: &Path, args: &[&str]) -> Output {
    let mut child = wine_command(exe, home, args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("wine starts (scripts/cross setup installs it)");
    for _ in 0..1200 {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    child.wait_with_output().expect("veil.exe output")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn veil_exe_under_wine_serves_http_connect_and_socks5() {
    let Some(exe) = wine_exe() else {
        eprintln!(
            "skipped: VEIL_WINE_EXE is not set. `scripts/cross wine-test` (or `make wine-test`) \
             builds veil.exe for Windows and runs this test under Wine."
        );
        return;
    };
    assert!(
        exe.is_file(),
        "VEIL_WINE_EXE={} is not a file: build it with `scripts/cross wine-test`",
        exe.display()
    );
    // Declared first so it is dropped last, after veil.exe is killed.
    let _wine = WineServer;
    let home = TempDir::new().expect("temp VEIL_HOME");
    let command = wine_command(&exe, home.path(), &["run", "--listen", "127.0.0.1:0"]);
    let veil = VeilProcess::spawn(command, home.path(), START_WITHIN)
        .unwrap_or_else(|e| panic!("veil.exe run under wine did not start: {e}"));
    assert!(veil.addr.ip().is_loopback(), "{}", veil.addr);
    let origin = Origin::start().await;
    let proxy = proxy_url(veil.addr);

    let plain = curl(&["-x", &proxy, &origin.url("/bytes/1048576")]).await;
    assert_eq!(plain.status, 200, "plain HTTP: {plain:?}");
    assert_eq!(plain.body.len(), 1_048_576, "plain HTTP body");

    let tunnel = curl(&["-v", "-p", "-x", &proxy, &origin.url("/ip")]).await;
    assert_eq!(
        (tunnel.status, tunnel.text().as_str()),
        (200, "127.0.0.1"),
        "CONNECT: {tunnel:?}"
    );
    assert!(
        tunnel.stderr.contains("CONNECT 127.0.0.1:"),
        "curl tunnelled: {}",
        tunnel.stderr
    );

    // A name that veil.exe resolves itself (Windows' resolver under Wine).
    let socks_url = format!("http://localhost:{}/ip", origin.addr.port());
    let socks = curl(&["--socks5-hostname", &veil.addr.to_string(), &socks_url]).await;
    assert_eq!(socks.status, 200, "SOCKS5: {socks:?}");
    assert!(
        ["127.0.0.1", "::1"].contains(&socks.text().as_str()),
        "SOCKS5: {socks:?}"
    );
    assert!(
        origin.connections() >= 3,
        "each client reached the origin through veil.exe"
    );

    // `veil.exe status` reaches the engine over the named pipe.
    let status = run_to_end(&exe, home.path(), &["status", "--json"]);
    assert!(status.status.success(), "veil.exe status: {status:?}");
    let report: serde_json::Value =
        serde_json::from_slice(&status.stdout).expect("veil status --json prints JSON");
    assert_eq!(report["listen"], veil.addr.to_string(), "{report}");
    assert!(
        report["bytes_down"].as_u64().unwrap_or(0) >= 1_048_576,
        "{report}"
    );
    assert!(
        report["connections_total"].as_u64().unwrap_or(0) >= 3,
        "{report}"
    );

    // The system proxy through the running veil.exe (asked over the pipe):
    // WinINet's values in Wine's registry, as `wine reg query` reads them,
    // point at Veil with the user's PAC URL off, and come back exactly.
    let _cleanup = RegCleanup;
    reg(&[
        "add",
        INTERNET_SETTINGS,
        "/v",
        "AutoConfigURL",
        "/t",
        "REG_SZ",
        "/d",
        USER_PAC,
        "/f",
    ]);
    reg(&[
        "add",
        INTERNET_SETTINGS,
        "/v",
        "ProxyEnable",
        "/t",
        "REG_DWORD",
        "/d",
        "0",
        "/f",
    ]);
    let before = proxy_values();
    assert_eq!(
        before.get("AutoConfigURL").map(String::as_str),
        Some(USER_PAC)
    );
    let on = run_to_end(&exe, home.path(), &["sysproxy", "on"]);
    assert!(on.status.success(), "veil.exe sysproxy on: {on:?}");
    let now = proxy_values();
    assert_eq!(
        now.get("ProxyEnable").map(String::as_str),
        Some("0x1"),
        "{now:?}"
    );
    assert_eq!(
        now.get("ProxyServer").map(String::as_str),
        Some(veil.addr.to_string().as_str()),
        "{now:?}"
    );
    assert!(
        !now.contains_key("AutoConfigURL"),
        "the PAC is off while on: {now:?}"
    );
    let off = run_to_end(&exe, home.path(), &["sysproxy", "off"]);
    assert!(off.status.success(), "veil.exe sysproxy off: {off:?}");
    assert_eq!(proxy_values(), before, "the user's values are back exactly");
    drop(veil);
}

const INTERNET_SETTINGS: &str = r"HKCU\Software\Microsoft\Windows\CurrentVersion\Internet Settings";
const USER_PAC: &str = "http://wpad.example/own.pac";

/// `wine reg ARGS`, which must succeed.
fn reg(args: &[&str]) -> String {
    let out = Command::new("timeout")
        .args(["60", "wine", "reg"])
        .args(args)
        .env("WINEDEBUG", "-all")
        .env_remove("DISPLAY")
        .stdin(Stdio::null())
        .output()
        .expect("wine reg runs");
    assert!(out.status.success(), "wine reg {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The WinINet proxy values as `wine reg query` prints them (name to data).
fn proxy_values() -> std::collections::BTreeMap<String, String> {
    reg(&["query", INTERNET_SETTINGS])
        .lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let name = parts.next()?;
            let kind = parts.next()?;
            let wanted = [
                "ProxyEnable",
                "ProxyServer",
                "ProxyOverride",
                "AutoConfigURL",
            ];
            (wanted.contains(&name) && kind.starts_with("REG_"))
                .then(|| (name.to_owned(), parts.collect::<Vec<_>>().join(" ")))
        })
        .collect()
}

/// Takes the test's own values out of the shared Wine prefix at the end.
struct RegCleanup;

impl Drop for RegCleanup {
    fn drop(&mut self) {
        for name in [
            "AutoConfigURL",
            "ProxyEnable",
            "ProxyServer",
            "ProxyOverride",
        ] {
            let _ = Command::new("timeout")
                .args([
                    "60",
                    "wine",
                    "reg",
                    "delete",
                    INTERNET_SETTINGS,
                    "/v",
                    name,
                    "/f",
                ])
                .env("WINEDEBUG", "-all")
                .env_remove("DISPLAY")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}
