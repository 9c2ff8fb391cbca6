//! Running the desktop's own tools (`gsettings`, `kwriteconfig5`, ...),
//! bounded in time so a hung tool cannot hang Veil's exit.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::SysProxyError;

const TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `program args` and returns its standard output. A missing program is
/// [`SysProxyError::ToolMissing`] with `hint`; a failure carries its stderr.
#[cfg_attr(any(target_os = "windows", target_os = "macos"), allow(dead_code))]
pub fn run(
    program: &'static str,
    args: &[&str],
    hint: &'static str,
) -> Result<String, SysProxyError> {
    run_at(Path::new(program), program, args, hint)
}

/// [`run`] with the program at `path` (a full path, or a name looked up on
/// PATH), shown to the user as `tool`. A failure carries its stderr, or its
/// stdout when stderr is empty (`networksetup` reports errors there).
#[cfg_attr(target_os = "windows", allow(dead_code))]
pub fn run_at(
    path: &Path,
    tool: &'static str,
    args: &[&str],
    hint: &'static str,
) -> Result<String, SysProxyError> {
    let shown = || format!("{tool} {}", args.join(" "));
    let mut child = Command::new(path)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => SysProxyError::ToolMissing { tool, hint },
            _ => SysProxyError::Tool {
                command: shown(),
                detail: e.to_string(),
            },
        })?;
    // Output is small (a value or an error line), so reading after exit
    // cannot fill the pipe and stall the child.
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(SysProxyError::Tool {
                    command: shown(),
                    detail: format!("no answer within {}s", TIMEOUT.as_secs()),
                });
            }
            Err(e) => {
                return Err(SysProxyError::Tool {
                    command: shown(),
                    detail: e.to_string(),
                });
            }
        }
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut stdout);
    }
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut stderr);
    }
    if !status.success() {
        let detail = match (stderr.trim(), stdout.trim()) {
            ("", "") => status.to_string(),
            ("", text) | (text, _) => text.lines().take(3).collect::<Vec<_>>().join(" "),
        };
        return Err(SysProxyError::Tool {
            command: shown(),
            detail,
        });
    }
    Ok(stdout)
}

/// Whether `program` is found on PATH.
#[cfg_attr(any(target_os = "windows", target_os = "macos"), allow(dead_code))]
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}
