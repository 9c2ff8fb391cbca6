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
