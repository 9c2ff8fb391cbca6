//! The system proxy switch as a user lives with it: whatever they had before
//! (a manual proxy with their own ignore list, a PAC URL, KDE's settings)
//! comes back exactly after `off`, after SIGTERM, and after a crash at the
//! next start; a failing gsettings changes nothing; and `on` refuses when no
//! engine runs. Everything happens in a private D-Bus session under a
//! temporary HOME (see `veil_tests::desktop`), never on the real desktop.

use std::time::Duration;

use veil_tests::VeilProcess;
use veil_tests::desktop::{DesktopSession, fake_tool};
use veil_tests::output_text as text;

const ROOT: &str = "org.gnome.system.proxy";

/// The user's own setup: a manual proxy at 127.0.0.9:3128 with an ignore
/// list of their own.
fn set_users_manual_proxy(s: &DesktopSession) {
    s.gsettings_set(ROOT, "mode", "manual");
    s.gsettings_set(&format!("{ROOT}.http"), "host", "127.0.0.9");
    s.gsettings_set(&format!("{ROOT}.http"), "port", "3128");
    s.gsettings_set(&format!("{ROOT}.https"), "host", "127.0.0.9");
    s.gsettings_set(&format!("{ROOT}.https"), "port", "3129");
    s.gsettings_set(
        ROOT,
        "ignore-hosts",
        "['corp.example', '*.internal', '192.0.2.0/24']",
    );
    s.gsettings_set(ROOT, "use-same-proxy", "true");
}

fn start_engine(s: &DesktopSession, extra: &[&str]) -> VeilProcess {
    let mut args = vec!["--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    s.veil_run(&args).expect("veil run starts")
}

/// Veil's settings are in place: every protocol to the engine's port.
fn assert_points_at(s: &DesktopSession, veil: &VeilProcess) {
    let port = veil.addr.port().to_string();
    assert_eq!(s.gsettings_get(ROOT, "mode"), "'manual'");
    for kind in ["http", "https", "socks"] {
        let schema = format!("{ROOT}.{kind}");
        assert_eq!(s.gsettings_get(&schema, "host"), "'127.0.0.1'", "{kind}");
        assert_eq!(s.gsettings_get(&schema, "port"), port, "{kind}");
    }
    let ignore = s.gsettings_get(ROOT, "ignore-hosts");
    assert!(
        ignore.contains("'localhost'") && ignore.contains("'10.0.0.0/8'"),
        "Veil's bypass list: {ignore}"
    );
}

async fn eventually_stderr(veil: &VeilProcess, needle: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for _ in 0..100 {
        lines.extend(veil.stderr_lines());
        if lines.iter().any(|l| l.contains(needle)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    lines
}

#[test]
fn manual_proxy_with_a_custom_ignore_list_comes_back_exactly() {
    let s = DesktopSession::start();
    set_users_manual_proxy(&s);
    let before = s.gnome_proxy_settings();
    let veil = start_engine(&s, &[]);

    let on = s.veil(&["sysproxy", "on"]);
    assert!(on.status.success(), "{}", text(&on));
    assert_points_at(&s, &veil);
    assert!(
        s.guard_file().exists(),
        "the user's settings are saved first"
    );
    let status = s.veil(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("json");
    assert_eq!(status["system_proxy"], true, "{status}");

    let shown = s.veil(&["sysproxy", "status"]);
    let shown_text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown_text.contains("127.0.0.9:3128") && shown_text.contains("corp.example"),
        "status shows the saved settings beside the current ones: {}",
        text(&shown)
    );

    let off = s.veil(&["sysproxy", "off"]);
    assert!(off.status.success(), "{}", text(&off));
    assert_eq!(
        s.gnome_proxy_settings(),
        before,
        "exactly what the user had"
    );
    assert!(
        !s.guard_file().exists(),
        "the guard file goes with the change"
    );

    // On and off again work the same (the second save is fresh).
    assert!(s.veil(&["sysproxy", "on"]).status.success());
    assert!(s.veil(&["sysproxy", "off"]).status.success());
    assert_eq!(s.gnome_proxy_settings(), before);
}

const PAC_URL: &str = "http://wpad.corp.example/proxy.pac";

/// A session whose user has automatic proxy configuration from a PAC URL,
/// and those settings as they were before Veil.
fn session_with_pac() -> (DesktopSession, String) {
    let s = DesktopSession::start();
    s.gsettings_set(ROOT, "mode", "auto");
    s.gsettings_set(ROOT, "autoconfig-url", PAC_URL);
    let before = s.gnome_proxy_settings();
    (s, before)
}

#[test]
fn automatic_with_a_pac_url_comes_back_exactly() {
    let (s, before) = session_with_pac();
    let veil = start_engine(&s, &[]);

    let on = s.veil(&["sysproxy", "on"]);
    assert!(on.status.success(), "{}", text(&on));
    assert_points_at(&s, &veil);

    let status = s.veil(&["sysproxy", "status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("json");
    let gnome = &status["backends"][0];
    assert_eq!(gnome["saved"]["mode"], "auto", "{status}");
    assert_eq!(gnome["saved"]["pac_url"], PAC_URL, "{status}");
    assert_eq!(gnome["current"]["mode"], "manual", "{status}");

    let off = s.veil(&["sysproxy", "off"]);
    assert!(off.status.success(), "{}", text(&off));
    assert_eq!(s.gnome_proxy_settings(), before);
    assert_eq!(s.gsettings_get(ROOT, "mode"), "'auto'");
}

#[test]
fn sigterm_restores_at_once() {
    let s = DesktopSession::start();
    set_users_manual_proxy(&s);
    let before = s.gnome_proxy_settings();
    let mut veil = start_engine(&s, &["--system-proxy"]);
    // `--system-proxy` is on by the time the listener is announced.
    assert_points_at(&s, &veil);

    assert!(veil.terminate(), "veil run exits cleanly on SIGTERM");
    assert_eq!(
        s.gnome_proxy_settings(),
        before,
        "restored before the process exited"
    );
    assert!(!s.guard_file().exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_sigkill_the_next_run_restores_and_says_so() {
    let s = DesktopSession::start();
    set_users_manual_proxy(&s);
    let before = s.gnome_proxy_settings();
    let mut crashed = start_engine(&s, &["--system-proxy"]);
    assert_points_at(&s, &crashed);
    crashed.child.kill().expect("SIGKILL");
    crashed.child.wait().expect("reaped");
    assert_ne!(
        s.gnome_proxy_settings(),
        before,
        "a killed process cannot restore anything"
    );
    assert!(s.guard_file().exists());
    let status = s.veil(&["sysproxy", "status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("json");
    assert_eq!(status["stale"], true, "{status}");

    let next = start_engine(&s, &[]);
    assert_eq!(s.gnome_proxy_settings(), before, "restored at start");
    assert!(!s.guard_file().exists());
    let lines = eventually_stderr(&next, "restored").await;
    assert!(
        lines
            .iter()
            .any(|l| l.contains("stopped unexpectedly") && l.contains("restored")),
        "the user is told: {lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("127.0.0.9:3128")),
        "and what came back: {lines:?}"
    );
}

#[test]
fn after_sigkill_sysproxy_restore_puts_the_settings_back_without_an_engine() {
    let (s, before) = session_with_pac();
    let mut veil = start_engine(&s, &["--system-proxy"]);

    let refused = s.veil(&["sysproxy", "restore"]);
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(
        text(&refused).contains("is running and owns"),
        "{}",
        text(&refused)
    );
    assert_points_at(&s, &veil);

    veil.child.kill().expect("SIGKILL");
    veil.child.wait().expect("reaped");
    let restored = s.veil(&["sysproxy", "restore"]);
    assert!(restored.status.success(), "{}", text(&restored));
    assert!(
        String::from_utf8_lossy(&restored.stdout).contains("stopped unexpectedly"),
        "{}",
        text(&restored)
    );
    assert_eq!(s.gnome_proxy_settings(), before);

    let again = s.veil(&["sysproxy", "restore"]);
    assert!(again.status.success(), "{}", text(&again));
    assert!(String::from_utf8_lossy(&again.stdout).contains("nothing to restore"));
}

#[test]
fn on_without_an_engine_refuses_and_changes_nothing() {
    let s = DesktopSession::start();
    set_users_manual_proxy(&s);
    let before = s.gnome_proxy_settings();
    let out = s.veil(&["sysproxy", "on"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("no Veil engine is running"),
        "{}",
        text(&out)
    );
    assert_eq!(s.gnome_proxy_settings(), before);
    assert!(!s.guard_file().exists());
}

/// Settings that already point at Veil (an earlier Veil left them and its
/// guard file is gone) are not saved as "the user's": they would be put
/// back as a dead port when Veil stops. `on` refuses and says why.
#[test]
fn settings_already_pointing_at_veil_are_not_saved_as_the_users() {
    let s = DesktopSession::start();
    let veil = start_engine(&s, &[]);
    // Veil's own spelling, and another one of the same listener.
    for host in ["127.0.0.1", "localhost"] {
        s.gsettings_set(ROOT, "mode", "manual");
        s.gsettings_set(&format!("{ROOT}.http"), "host", host);
        s.gsettings_set(
            &format!("{ROOT}.http"),
            "port",
            &veil.addr.port().to_string(),
        );
        let before = s.gnome_proxy_settings();
        let out = s.veil(&["sysproxy", "on"]);
        assert!(!out.status.success(), "{host}: {}", text(&out));
        assert!(
            text(&out).contains("already points at Veil"),
            "{host}: {}",
            text(&out)
        );
        assert_eq!(s.gnome_proxy_settings(), before, "{host}: nothing changed");
        assert!(!s.guard_file().exists(), "{host}");
    }
}

/// gsettings that reads fine but fails to write the SOCKS host, after Veil
/// has already written other keys: everything must be rolled back.
#[test]
fn a_failing_gsettings_changes_nothing() {
    let mut s = DesktopSession::start();
    set_users_manual_proxy(&s);
    let before = s.gnome_proxy_settings();
    let real = s.tool("sh", &["-c", "command -v gsettings"]);
    let fake = fake_tool(
        s.root(),
        "gsettings",
        &format!(
            "case \"$*\" in *\"set {ROOT}.socks\"*) echo 'fake: writing is broken' >&2; exit 1;; esac\n\
             exec {} \"$@\"",
            real.trim()
        ),
    );
    s.path_prefix = vec![fake];
    let veil = start_engine(&s, &[]);

    let out = s.veil(&["sysproxy", "on"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("writing is broken"),
        "the error says why: {}",
        text(&out)
    );
    assert_eq!(s.gnome_proxy_settings(), before, "rolled back");
    assert!(!s.guard_file().exists());
    let status = s.veil(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("json");
    assert_eq!(status["system_proxy"], false, "{status}");
    drop(veil);
}

#[test]
fn without_gsettings_run_system_proxy_fails_and_changes_nothing() {
    let mut s = DesktopSession::start();
    set_users_manual_proxy(&s);
    let before = s.gnome_proxy_settings();
    let broken = fake_tool(
        s.root(),
        "gsettings",
        "echo 'No schemas installed' >&2; exit 1",
    );
    s.path_prefix = vec![broken];
    let out = s.veil(&["run", "--listen", "127.0.0.1:0", "--system-proxy"]);
    assert!(!out.status.success(), "{}", text(&out));
    let err = text(&out);
    assert!(
        err.contains("system proxy not changed") && err.contains("No schemas installed"),
        "{err}"
    );
    s.path_prefix.clear();
    assert_eq!(s.gnome_proxy_settings(), before);
    assert!(!s.guard_file().exists());
}

/// On KDE both kioslaverc (KDE apps) and gsettings (Firefox, GTK apps) are
/// set, and both come back; keys that were not in kioslaverc are removed.
#[test]
fn kde_settings_come_back_too() {
    let s = DesktopSession::start_as("KDE");
    s.kde_proxy_set("ProxyType", "2");
    s.kde_proxy_set("Proxy Config Script", PAC_URL);
    let kioslaverc = s.root().join("config/kioslaverc");
    let kde_before = std::fs::read_to_string(&kioslaverc).expect("kioslaverc");
    s.gsettings_set(ROOT, "mode", "auto");
    let gnome_before = s.gnome_proxy_settings();
    let veil = start_engine(&s, &[]);

    let on = s.veil(&["sysproxy", "on"]);
    assert!(on.status.success(), "{}", text(&on));
    let kread = |key: &str| {
        s.tool(
            "kreadconfig5",
            &[
                "--file",
                "kioslaverc",
                "--group",
                "Proxy Settings",
                "--key",
                key,
            ],
        )
        .trim()
        .to_owned()
    };
    assert_eq!(kread("ProxyType"), "1");
    assert_eq!(
        kread("httpProxy"),
        format!("http://127.0.0.1 {}", veil.addr.port())
    );
    assert_eq!(
        kread("socksProxy"),
        format!("socks://127.0.0.1 {}", veil.addr.port())
    );
    assert_points_at(&s, &veil);

    let off = s.veil(&["sysproxy", "off"]);
    assert!(off.status.success(), "{}", text(&off));
    assert_eq!(
        std::fs::read_to_string(&kioslaverc).expect("kioslaverc"),
        kde_before
    );
    assert_eq!(s.gnome_proxy_settings(), gnome_before);
}
