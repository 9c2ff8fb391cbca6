//! Shared pieces for Veil's end-to-end tests: a scriptable origin server, an
//! engine started in-process, the `veil` binary started as a user would, and
//! `curl`. Everything binds `127.0.0.1:0` (or `[::1]:0`) and talks to nothing
//! but this machine.

#[cfg(target_os = "linux")]
pub mod bus;
pub mod desktop;
pub mod gui;
pub mod netns;
#[cfg(target_os = "linux")]
pub mod notifications;
pub mod origin;
pub mod peers;
pub mod scripted;
#[cfg(target_os = "linux")]
pub mod tray_host;
pub mod veil_process;
#[cfg(target_os = "linux")]
pub mod x11;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

pub use origin::Origin;
pub use scripted::{Script, ScriptedOrigin};
use veil_engine::{Engine, EngineConfig, EngineHandle};
pub use veil_process::VeilProcess;

/// Starts an engine on a free loopback port with `tweak` applied to the
/// default config.
pub async fn start_engine(tweak: impl FnOnce(&mut EngineConfig)) -> EngineHandle {
    let mut config = EngineConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        ..EngineConfig::default()
    };
    tweak(&mut config);
    Engine::start(config).await.expect("engine starts")
}

/// What curl printed and how it ended.
#[derive(Debug)]
pub struct CurlOutput {
    pub status: u16,
    pub body: Vec<u8>,
    pub stderr: String,
    pub exit_code: i32,
}

impl CurlOutput {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Runs `curl` with `args` (plus a status-code trailer) off the async runtime,
/// bounded to 30 seconds.
pub async fn curl(args: &[&str]) -> CurlOutput {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "30", "-w", "\n%{http_code}"])
            .args(&args)
            .output()
            .expect("curl runs (install it with scripts/bootstrap)");
        let mut body = out.stdout;
        let split = body.iter().rposition(|b| *b == b'\n').unwrap_or(0);
        let status = String::from_utf8_lossy(&body[split..])
            .trim()
            .parse()
            .unwrap_or(0);
        body.truncate(split);
        CurlOutput {
            status,
            body,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            exit_code: out.status.code().unwrap_or(-1),
        }
    })
    .await
    .expect("curl task")
}

/// A command's exit status and output, for assertion messages.
pub fn output_text(out: &std::process::Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `http://ADDR` for curl's `-x`.
pub fn proxy_url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

/// Calls `check` every `pause` until it returns something or `within`
/// passes (blocking: for threads that wait on D-Bus or X).
pub fn poll_until<T>(
    within: Duration,
    pause: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(found) = check() {
            return Some(found);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(pause);
    }
}

/// Polls `check` every 20 ms until it holds or `within` passes.
pub async fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
