//! The guard beyond on and off: the login-time repair that puts a stranded
//! setting back at the next login, the OS setting watched while Veil has it
//! on, and the PAC file Veil serves. Everything runs in a private D-Bus
//! session under a temporary HOME (see `veil_tests::desktop`).

use veil_tests::VeilProcess;
use veil_tests::desktop::{DesktopSession, desktop_exec_args, run_bounded};
use veil_tests::output_text as text;

const ROOT: &str = "org.gnome.system.proxy";

fn set_users_manual_proxy(s: &DesktopSession) {
    s.gsettings_set(ROOT, "mode", "manual");
    s.gsettings_set(&format!("{ROOT}.http"), "host", "127.0.0.9");
    s.gsettings_set(&format!("{ROOT}.http"), "port", "3128");
    s.gsettings_set(ROOT, "ignore-hosts", "['corp.example', '*.internal']");
}

fn start_engine(s: &DesktopSession, extra: &[&str]) -> VeilProcess {
    let mut args = vec!["--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    s.veil_run(&args).expect("veil run starts")
}

fn autostart_file(s: &DesktopSession) -> std::path::PathBuf {
    s.root().join("config/autostart/veil-restore-proxy.desktop")
}

/// Runs the command line of the autostart entry, as a desktop session
/// would at login: split per the spec, in this session's environment
/// without `VEIL_HOME` (a login has none; the entry names the home itself).
fn run_login_task(s: &DesktopSession) -> std::process::Output {
    let entry = std::fs::read_to_string(autostart_file(s)).expect("autostart entry");
    let args = desktop_exec_args(&entry);
    let mut cmd = s.command(&args[0]);
    cmd.args(&args[1..]).env_remove("VEIL_HOME");
    run_bounded(cmd, "")
}

#[test]
fn after_sigkill_the_login_task_puts_the_settings_back_and_goes() {
    let s = DesktopSession::start();
    set_users_manual_proxy(&s);
    let before = s.gnome_proxy_settings();
    let mut veil = start_engine(&s, &["--system-proxy"]);
    assert!(autostart_file(&s).exists(), "installed with the change");
    let entry = std::fs::read_to_string(autostart_file(&s)).expect("entry");
    let args = desktop_exec_args(&entry);
    assert_eq!(
        args[1..5],
        ["sysproxy", "restore", "--if-stranded", "--veil-home"],
        "{entry}"
    );

    // While the owner lives, the task changes nothing.
    let early = run_login_task(&s);
    assert!(early.status.success(), "{}", text(&early));
    assert_ne!(s.gnome_proxy_settings(), before, "Veil's settings stay");
    assert!(autostart_file(&s).exists());

    veil.child.kill().expect("SIGKILL");
    veil.child.wait().expect("reaped");
    assert_ne!(s.gnome_proxy_settings(), before, "stranded");

    let login = run_login_task(&s);
    assert!(login.status.success(), "{}", text(&login));
    assert_eq!(
        s.gnome_proxy_settings(),
        before,
        "the user's settings are back"
    );
    assert!(!s.guard_file().exists());
    assert!(
        !autostart_file(&s).exists(),
        "the task is gone with the guard file"
    );

    // Run again by a launcher that kept a copy: nothing saved, success.
    let nothing = s.veil(&["sysproxy", "restore", "--if-stranded"]);
    assert!(nothing.status.success(), "{}", text(&nothing));
    assert_eq!(String::from_utf8_lossy(&nothing.stdout), "");
}

#[test]
fn turning_off_removes_the_login_task() {
    let s = DesktopSession::start();
    let _veil = start_engine(&s, &[]);
    let on = s.veil(&["sysproxy", "on"]);
    assert!(on.status.success(), "{}", text(&on));
    assert!(autostart_file(&s).exists());
    let off = s.veil(&["sysproxy", "off"]);
    assert!(off.status.success(), "{}", text(&off));
    assert!(!autostart_file(&s).exists());
}

/// `veil status --json`, parsed.
fn status(s: &DesktopSession) -> serde_json::Value {
    let out = s.veil(&["status", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).expect("status json")
}

/// Polls `veil status` (bounded) until `done` holds; the status and when.
fn status_until(
    s: &DesktopSession,
    done: impl Fn(&serde_json::Value) -> bool,
) -> (serde_json::Value, std::time::Instant) {
    let mut last = serde_json::Value::Null;
    for _ in 0..400 {
        last = status(s);
        if done(&last) {
            return (last, std::time::Instant::now());
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("status never reached the expected state: {last}");
}

#[test]
fn another_programs_change_is_shown_and_asked_about_never_undone_silently() {
    use std::time::{Duration, Instant};
    use veil_tests::notifications::NotificationServer;

    let s = DesktopSession::start();
    set_users_manual_proxy(&s);
    let notifications = NotificationServer::start(s.bus_address());
    let veil = start_engine(&s, &["--system-proxy"]);
    let port = veil.addr.port().to_string();
    let on = status(&s);
    assert_eq!(on["system_proxy"], true, "{on}");
    assert!(on.get("system_proxy_drift").is_none(), "{on}");

    // Another program turns the proxy off.
    let changed = Instant::now();
    s.gsettings_set(ROOT, "mode", "none");
    let (drifted, seen) = status_until(&s, |st| st.get("system_proxy_drift").is_some());
    let latency = seen - changed;
    println!("drift-to-alert latency (gsettings set -> veil status): {latency:?}");
    let drift = &drifted["system_proxy_drift"];
    assert_eq!(drift["cause"], "other_program", "{drifted}");
    assert_eq!(drift["backend"], "gnome", "{drifted}");
    assert!(
        drift["detail"].as_str().unwrap_or("").contains("mode"),
        "{drifted}"
    );
    let alerts = drifted["alerts"].as_array().expect("alerts");
    assert!(
        alerts.iter().any(|a| a["what"]
            .as_str()
            .is_some_and(|w| w.contains("Another program changed your proxy setting"))),
        "{drifted}"
    );
    let shown = s.veil(&["status"]);
    assert!(
        String::from_utf8_lossy(&shown.stdout).contains("CHANGED under Veil"),
        "{}",
        text(&shown)
    );

    let first = notifications
        .wait_for(1, Duration::from_secs(10))
        .expect("a desktop notification");
    println!(
        "drift-to-notification latency: {:?}",
        first.at.duration_since(changed)
    );
    assert_eq!(first.app, "Veil");
    assert!(
        first
            .summary
            .contains("Another program changed your proxy setting")
    );
    assert_eq!(
        first.actions,
        ["reapply", "Re-apply", "leave", "Leave it"],
        "{first:?}"
    );
    // Asked, not undone: the other program's setting stays.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.gsettings_get(ROOT, "mode"), "'none'");

    // Re-apply: Veil's settings are back and the question goes away.
    notifications.press(first.id, "reapply");
    let (again, _) = status_until(&s, |st| st.get("system_proxy_drift").is_none());
    assert_eq!(again["system_proxy"], true, "{again}");
    assert_eq!(s.gsettings_get(ROOT, "mode"), "'manual'");
    assert_eq!(s.gsettings_get(&format!("{ROOT}.http"), "port"), port);
    assert!(notifications.closed().contains(&first.id));

    // A second change, and Leave it: the OS keeps it, Veil lets go.
    s.gsettings_set(ROOT, "mode", "none");
    status_until(&s, |st| st.get("system_proxy_drift").is_some());
    let second = notifications
        .wait_for(2, Duration::from_secs(10))
        .expect("a second notification");
    notifications.press(second.id, "leave");
    let (left, _) = status_until(&s, |st| st["system_proxy"] == false);
    assert!(left.get("system_proxy_drift").is_none(), "{left}");
    assert_eq!(s.gsettings_get(ROOT, "mode"), "'none'", "left as it was");
    assert!(!s.guard_file().exists());
    assert!(!autostart_file(&s).exists());
    drop(veil);
}

/// What `pactester` (pacparser, a real PAC engine) says for `host`. The
/// host is passed as a browser passes it (`-h`): pactester's own URL
/// parsing cuts an IPv6 literal at its first colon.
fn pac_answer(pac: &std::path::Path, host: &str) -> String {
    let url = format!("http://{host}/");
    let out = std::process::Command::new("pactester")
        .args(["-p", pac.to_str().expect("utf-8"), "-u", &url, "-h", host])
        .output()
        .expect("pactester runs (Debian package libpacparser1, in scripts/bootstrap)");
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pac_served_by_veil_routes_bypass_direct_and_the_rest_to_veil() {
    let s = DesktopSession::start();
    // The user's own automatic setup, which must come back.
    let own_pac = "http://wpad.corp.example/own.pac";
    s.gsettings_set(ROOT, "mode", "auto");
    s.gsettings_set(ROOT, "autoconfig-url", own_pac);
    let before = s.gnome_proxy_settings();
    std::fs::write(
        s.veil_home().join("config.toml"),
        "[proxy]\napps_reach = \"pac\"\n\
         bypass = [\"localhost\", \"*.local\", \"10.0.0.0/8\", \"fe80::/10\", \"corp.example\"]\n\
         [rules]\n\"intranet.example\" = \"direct\"\n\"*.ads.example\" = \"block\"\n",
    )
    .expect("config");
    let mut veil = start_engine(&s, &["--system-proxy"]);
    let port = veil.addr.port();
    let url = format!("http://127.0.0.1:{port}/proxy.pac");
    assert_eq!(s.gsettings_get(ROOT, "mode"), "'auto'");
    assert_eq!(s.gsettings_get(ROOT, "autoconfig-url"), format!("'{url}'"));

    let fetched = veil_tests::curl(&["--noproxy", "*", "-D", "-", &url]).await;
    assert_eq!(fetched.status, 200, "{}", fetched.stderr);
    let body = String::from_utf8_lossy(&fetched.body).into_owned();
    let (head, script) = body.split_once("\r\n\r\n").expect("headers then body");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/x-ns-proxy-autoconfig"),
        "{head}"
    );
    let file = s.root().join("veil.pac");
    std::fs::write(&file, script).expect("pac file");
    let veil_proxy = format!("PROXY 127.0.0.1:{port}");
    for (target, want) in [
        ("localhost", "DIRECT"),
        ("printer.local", "DIRECT"),
        ("10.1.2.3", "DIRECT"),
        ("fe80::1", "DIRECT"),
        ("[fe80::1:2]", "DIRECT"),
        ("corp.example", "DIRECT"),
        ("intranet.example", "DIRECT"),
        ("example.org", veil_proxy.as_str()),
        ("www.example.com", veil_proxy.as_str()),
        ("93.184.216.34", veil_proxy.as_str()),
        ("2001:db8::1", veil_proxy.as_str()),
        ("x.ads.example", veil_proxy.as_str()),
        ("notcorp.example", veil_proxy.as_str()),
    ] {
        assert_eq!(pac_answer(&file, target), want, "{target}\n{script}");
    }

    // The fail-open variant keeps apps online without Veil.
    let open = veil_tests::curl(&["--noproxy", "*", &format!("{url}?fail-open")]).await;
    std::fs::write(&file, &open.body).expect("pac file");
    assert_eq!(
        pac_answer(&file, "example.org"),
        format!("{veil_proxy}; DIRECT")
    );

    // A proxy request for the same path is a proxy request, not the PAC.
    let proxied = veil_tests::curl(&[
        "-sS",
        "-x",
        &format!("http://127.0.0.1:{port}"),
        "http://127.0.0.1:9/proxy.pac",
    ])
    .await;
    assert_ne!(
        proxied.status,
        200,
        "{}",
        String::from_utf8_lossy(&proxied.body)
    );

    assert!(veil.terminate());
    assert_eq!(
        s.gnome_proxy_settings(),
        before,
        "the user's own PAC URL is back"
    );
}

/// On KDE the watch is a look at `kioslaverc`: a `kwriteconfig5` from
/// outside shows as a drift of the KDE setting.
#[test]
fn a_kde_change_from_outside_is_seen_too() {
    let s = DesktopSession::start_as("KDE");
    let veil = start_engine(&s, &["--system-proxy"]);
    let on = status(&s);
    assert_eq!(on["system_proxy"], true, "{on}");
    assert!(on.get("system_proxy_drift").is_none(), "{on}");
    s.kde_proxy_set("ProxyType", "0");
    let (drifted, _) = status_until(&s, |st| st.get("system_proxy_drift").is_some());
    assert_eq!(drifted["system_proxy_drift"]["backend"], "kde", "{drifted}");
    assert_eq!(
        drifted["system_proxy_drift"]["cause"], "other_program",
        "{drifted}"
    );
    drop(veil);
}
