//! A private desktop session for the system tests: its own D-Bus session bus
//! (`dbus-run-session`), gnome-keyring unlocked in it, dconf behind
//! gsettings, and `HOME`, `XDG_*` and `VEIL_HOME` in a temporary folder. The
//! real desktop's proxy settings and keyring are never touched: every
//! command a test runs gets this session's variables, not the machine's.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use tempfile::TempDir;

use crate::veil_process::{VeilProcess, veil_bin};

/// A running private session; ends (bus, keyring, dconf) when dropped.
pub struct DesktopSession {
    dir: TempDir,
    session: Child,
    keep_alive: Option<ChildStdin>,
    bus: String,
    /// `XDG_CURRENT_DESKTOP` for the commands run here.
    pub desktop: String,
    /// Folders put first on `PATH` (fake tools).
    pub path_prefix: Vec<PathBuf>,
}

impl DesktopSession {
    /// A GNOME-like session.
    pub fn start() -> Self {
        Self::start_as("GNOME")
    }

    /// A session whose `XDG_CURRENT_DESKTOP` is `desktop`.
    pub fn start_as(desktop: &str) -> Self {
        let dir = TempDir::new().expect("temp session folder");
        for sub in ["home", "config", "data", "cache", "run", "veil"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("session folder");
        }
        set_private(&dir.path().join("run"));
        let mut cmd = Command::new("dbus-run-session");
        cmd.args([
            "--",
            "sh",
            "-c",
            // The keyring's "login" collection is created with this password
            // and left unlocked; the bus address is the first line out; the
            // session lasts until the test closes our stdin.
            "printf pw | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1; \
             echo \"$DBUS_SESSION_BUS_ADDRESS\"; exec cat >/dev/null",
        ]);
        apply_env(&mut cmd, dir.path(), None, desktop, &[]);
        let mut session = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-run-session starts (install it with scripts/bootstrap)");
        let stdout = session.stdout.take().expect("stdout piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let bus = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the private D-Bus session starts")
            .trim()
            .to_owned();
        assert!(bus.starts_with("unix:"), "bus address: {bus:?}");
        let keep_alive = session.stdin.take();
        Self {
            dir,
            session,
            keep_alive,
            bus,
            desktop: desktop.to_owned(),
            path_prefix: Vec::new(),
        }
    }

    /// The private session bus's address.
    pub fn bus_address(&self) -> &str {
        &self.bus
    }

    /// `VEIL_HOME` of this session.
    pub fn veil_home(&self) -> PathBuf {
        self.dir.path().join("veil")
    }

    /// The session's temporary root (`home/`, `config/`, ...).
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The environment every command of this session runs with.
    pub fn envs(&self) -> Vec<(String, String)> {
        let mut cmd = Command::new("true");
        apply_env(
            &mut cmd,
            self.dir.path(),
            Some(&self.bus),
            &self.desktop,
            &self.path_prefix,
        );
        cmd.get_envs()
            .filter_map(|(k, v)| {
                Some((
                    k.to_string_lossy().into_owned(),
                    v?.to_string_lossy().into_owned(),
                ))
            })
            .collect()
    }

    /// `program` with this session's environment.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        apply_env(
            &mut cmd,
            self.dir.path(),
            Some(&self.bus),
            &self.desktop,
            &self.path_prefix,
        );
        cmd
    }

    /// Runs `veil ARGS` here to completion (30 s at most), with `stdin`.
    pub fn veil(&self, args: &[&str]) -> Output {
        self.veil_with_stdin(args, "")
    }

    pub fn veil_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let mut cmd = self.command(veil_bin().to_str().expect("utf-8 path"));
        cmd.args(args);
        run_bounded(cmd, stdin)
    }

    /// Starts `veil run ARGS` in this session.
    pub fn veil_run(&self, args: &[&str]) -> Result<VeilProcess, String> {
        let envs = self.envs();
        let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        VeilProcess::start(&self.veil_home(), args, &envs)
    }

    /// Runs a tool here and returns its stdout; panics when it fails.
    pub fn tool(&self, program: &str, args: &[&str]) -> String {
        let mut cmd = self.command(program);
        cmd.args(args);
        let out = run_bounded(cmd, "");
        assert!(
            out.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn gsettings_set(&self, schema: &str, key: &str, value: &str) {
        self.tool("gsettings", &["set", schema, key, value]);
    }

    /// `kwriteconfig5` of one key of KDE's proxy settings (`kioslaverc`).
    pub fn kde_proxy_set(&self, key: &str, value: &str) {
        self.tool(
            "kwriteconfig5",
            &[
                "--file",
                "kioslaverc",
                "--group",
                "Proxy Settings",
                "--key",
                key,
                value,
            ],
        );
    }

    pub fn gsettings_get(&self, schema: &str, key: &str) -> String {
        self.tool("gsettings", &["get", schema, key])
            .trim()
            .to_owned()
    }

    /// Every proxy key and value, as one comparable text.
    pub fn gnome_proxy_settings(&self) -> String {
        self.tool("gsettings", &["list-recursively", "org.gnome.system.proxy"])
    }

    /// The guard file `veil` keeps while it has the system proxy changed.
    pub fn guard_file(&self) -> PathBuf {
        self.veil_home().join("data/system-proxy-guard.json")
    }
}

impl Drop for DesktopSession {
    fn drop(&mut self) {
        // Closing stdin ends `cat`, so dbus-run-session stops the bus, and
        // the keyring and dconf daemons leave with it.
        drop(self.keep_alive.take());
        let mut ended = false;
        for _ in 0..100 {
            if let Ok(Some(_)) = self.session.try_wait() {
                ended = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if !ended {
            let _ = self.session.kill();
            let _ = self.session.wait();
        }
        // gnome-keyring-daemon forks away from the session and now and then
        // outlives its bus; stop whatever still runs with this session's
        // private runtime folder (only processes this session started have it).
        stop_processes_with_env(&format!(
            "XDG_RUNTIME_DIR={}",
            self.dir.path().join("run").display()
        ));
    }
}

/// Sends SIGTERM to every process whose environment holds `entry`.
fn stop_processes_with_env(entry: &str) {
    let me = std::process::id().to_string();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    for p in procs.flatten() {
        let pid = p.file_name().to_string_lossy().into_owned();
        if pid == me || !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(environ) = std::fs::read(p.path().join("environ")) else {
            continue;
        };
        if environ.split(|b| *b == 0).any(|e| e == entry.as_bytes()) {
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
        }
    }
}

fn apply_env(cmd: &mut Command, root: &Path, bus: Option<&str>, desktop: &str, path: &[PathBuf]) {
    let dir = |d: &str| root.join(d);
    // Anything that could lead a tool to the real desktop goes.
    for var in [
        "DBUS_SESSION_BUS_ADDRESS",
        "DISPLAY",
        "WAYLAND_DISPLAY",
        "KDE_FULL_SESSION",
        "DESKTOP_SESSION",
        "GNOME_KEYRING_CONTROL",
        "SSH_AUTH_SOCK",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("HOME", dir("home"))
        .env("XDG_CONFIG_HOME", dir("config"))
        .env("XDG_DATA_HOME", dir("data"))
        .env("XDG_CACHE_HOME", dir("cache"))
        .env("XDG_RUNTIME_DIR", dir("run"))
        .env("VEIL_HOME", dir("veil"))
        .env("GSETTINGS_BACKEND", "dconf")
        .env("XDG_CURRENT_DESKTOP", desktop);
    if let Some(bus) = bus {
        cmd.env("DBUS_SESSION_BUS_ADDRESS", bus);
    }
    if !path.is_empty() {
        let mut all: Vec<PathBuf> = path.to_vec();
        if let Some(p) = std::env::var_os("PATH") {
            all.extend(std::env::split_paths(&p));
        }
        cmd.env("PATH", std::env::join_paths(all).expect("PATH"));
    }
}

/// Runs `cmd` with `stdin` to completion; a command still running after
/// 30 s is killed and fails the test (a hang must not pass for a refusal).
pub fn run_bounded(mut cmd: Command, stdin: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("command starts");
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin.as_bytes());
    }
    for _ in 0..600 {
        if let Ok(Some(_)) = child.try_wait() {
            return child.wait_with_output().expect("command output");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("{cmd:?} did not finish within 30 s");
}

fn set_private(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .expect("private runtime folder");
}

/// A folder holding an executable `name` with `script` (sh) as its body,
/// to put first on PATH in place of a real tool.
pub fn fake_tool(parent: &Path, name: &str, script: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = parent.join(format!("fake-{name}"));
    std::fs::create_dir_all(&dir).expect("fake tool folder");
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).expect("fake tool");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

/// The arguments of a desktop entry's `Exec` line as a launcher splits them
/// (Desktop Entry Specification, "The Exec key"): the value's string escapes
/// first (`\\`, `\s`, ...), then words split on spaces with double-quoted
/// arguments whose `\"`, `` \` ``, `\$` and `\\` are unescaped, then `%%`
/// becomes `%`. Panics on a field code, which the task never uses.
pub fn desktop_exec_args(entry: &str) -> Vec<String> {
    let line = entry
        .lines()
        .find_map(|l| l.strip_prefix("Exec="))
        .expect("the entry has an Exec line");
    let mut value = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            value.push(c);
            continue;
        }
        match chars.next() {
            Some('s') => value.push(' '),
            Some('n') => value.push('\n'),
            Some('t') => value.push('\t'),
            Some('r') => value.push('\r'),
            Some('\\') => value.push('\\'),
            Some(other) => panic!("invalid escape \\{other} in {line:?}"),
            None => panic!("trailing backslash in {line:?}"),
        }
    }
    let mut args = Vec::new();
    let mut current: Option<String> = None;
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' => {
                if let Some(arg) = current.take() {
                    args.push(arg);
                }
            }
            '"' => {
                let arg = current.get_or_insert_with(String::new);
                loop {
                    match chars.next().expect("closing quote") {
                        '"' => break,
                        '\\' => {
                            let e = chars.next().expect("escaped character");
                            assert!("\"`$\\".contains(e), "\\{e} inside quotes");
                            arg.push(e);
                        }
                        c => arg.push(c),
                    }
                }
            }
            c => current.get_or_insert_with(String::new).push(c),
        }
    }
    args.extend(current);
    args.into_iter()
        .map(|a| {
            let mut out = String::new();
            let mut it = a.chars();
            while let Some(c) = it.next() {
                if c == '%' {
                    match it.next() {
                        Some('%') => out.push('%'),
                        code => panic!("field code %{code:?} in {a:?}"),
                    }
                } else {
                    out.push(c);
                }
            }
            out
        })
        .collect()
}
