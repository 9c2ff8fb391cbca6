//! The `veil` binary, started as a user would start it, with its own
//! `VEIL_HOME` in a temporary folder.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Path of the `veil` binary built by `cargo build -p veil-cli`.
pub fn veil_bin() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let bin = target.join("debug").join("veil");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p veil-cli` first (`make test` does)",
        bin.display()
    );
    bin
}

/// A `veil run` child process; killed when dropped.
pub struct VeilProcess {
    pub child: Child,
    pub addr: SocketAddr,
    pub home: PathBuf,
    stderr: mpsc::Receiver<String>,
}

impl VeilProcess {
    /// Starts `veil run ARGS` with `VEIL_HOME=home` and waits (up to 20 s)
    /// for its `veil: listening on ADDR` line.
    pub fn start(home: &Path, args: &[&str], envs: &[(&str, &str)]) -> Result<Self, String> {
        let mut command = Command::new(veil_bin());
        command
            .arg("run")
            .args(args)
            .env("VEIL_HOME", home)
            .envs(envs.iter().copied());
        Self::spawn(command, home, Duration::from_secs(20))
    }

    /// Starts `command`, a `veil run` set up by the caller (e.g. `veil.exe`
    /// under Wine), and waits up to `within` for its `veil: listening on ADDR`
    /// line. `home` is the folder that `veil` commands against it use.
    pub fn spawn(mut command: Command, home: &Path, within: Duration) -> Result<Self, String> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start veil: {e}"))?;
        let stdout = child.stdout.take().expect("stdout piped");
        let stderr = child.stderr.take().expect("stderr piped");
        let (line_tx, line_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = line_tx.send(line);
            }
        });
        let (err_tx, err_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = err_tx.send(line);
            }
        });
        let line = match line_rx.recv_timeout(within) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let errors: Vec<String> = err_rx.try_iter().collect();
                return Err(errors.join("\n"));
            }
        };
        let addr = line
            .strip_prefix("veil: listening on ")
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("unexpected first line: {line}"))?;
        Ok(Self {
            child,
            addr,
            home: home.to_path_buf(),
            stderr: err_rx,
        })
    }

    /// Runs another `veil` command against the same `VEIL_HOME`.
    pub fn command(&self, args: &[&str]) -> Output {
        veil_command(&self.home, args)
    }

    /// Sends SIGTERM and waits up to 10 s for the exit; returns whether it
    /// exited successfully.
    pub fn terminate(&mut self) -> bool {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        for _ in 0..200 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Everything written to stderr so far.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.try_iter().collect()
    }
}

impl Drop for VeilProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `veil ARGS` with `VEIL_HOME=home` to completion (30 s at most).
pub fn veil_command(home: &Path, args: &[&str]) -> Output {
    let mut child = Command::new(veil_bin())
        .args(args)
        .env("VEIL_HOME", home)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("veil starts");
    for _ in 0..600 {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    child.wait_with_output().expect("veil output")
}
