//! The login-time repair: while Veil has the system proxy changed, a small
//! task that the desktop runs at the next login puts the user's settings
//! back if no Veil is running by then (a crash, a power cut, an app the
//! user never opens again). The task runs this same program with
//! `sysproxy restore --if-stranded`, which does nothing while a live Veil
//! owns the setting or when nothing is saved; it is installed when the
//! guard file is written and removed with it.
//!
//! Where it lives: an XDG autostart entry (`$XDG_CONFIG_HOME/autostart`)
//! on Linux, a value under `HKCU\...\CurrentVersion\Run` on Windows, a
//! LaunchAgent in `~/Library/LaunchAgents` on macOS.

use std::path::PathBuf;

/// The arguments that make `veil` (or the app) repair a stranded setting.
pub const RESTORE_ARGS: [&str; 3] = ["sysproxy", "restore", "--if-stranded"];
/// Names the Veil home the task repairs when it is not the default one
/// (`VEIL_HOME` is not in the environment of a login task).
pub const HOME_FLAG: &str = "--veil-home";

#[derive(Debug, thiserror::Error)]
pub enum LoginTaskError {
    #[error("cannot find this program's path for the login task: {0}")]
    NoExe(std::io::Error),
    #[error("cannot find the folder for login tasks (no home folder)")]
    NoHome,
    #[error("login task {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("login task: {0}")]
    Registry(String),
}

/// The command line the task runs: this program, [`RESTORE_ARGS`], and
/// `--veil-home DIR` when `VEIL_HOME` is set.
pub fn restore_command() -> Result<Vec<String>, LoginTaskError> {
    let exe = std::env::current_exe().map_err(LoginTaskError::NoExe)?;
    let mut args = vec![exe.to_string_lossy().into_owned()];
    args.extend(RESTORE_ARGS.iter().map(|a| (*a).to_owned()));
    if let Some(home) = std::env::var_os(crate::paths::VEIL_HOME).filter(|v| !v.is_empty()) {
        args.push(HOME_FLAG.to_owned());
        args.push(home.to_string_lossy().into_owned());
    }
    Ok(args)
}

/// The Veil home to repair when `args` (after the program name) are the
/// task's command line ([`RESTORE_ARGS`], then maybe `--veil-home DIR`):
/// `Some(None)` for the default home. The desktop app, which has no
/// command-line parser of its own, checks its arguments with this.
pub fn restore_request(args: &[String]) -> Option<Option<PathBuf>> {
    let (head, rest) = args.split_at_checked(RESTORE_ARGS.len())?;
    if head != RESTORE_ARGS {
        return None;
    }
    match rest {
        [] => Some(None),
        [flag, dir] if flag == HOME_FLAG => Some(Some(PathBuf::from(dir))),
        _ => None,
    }
}

/// Installs (or rewrites) the task; returns where it is, for the log.
pub fn install() -> Result<String, LoginTaskError> {
    platform::install(&restore_command()?)
}

/// Removes the task; one that is not there is not an error.
pub fn remove() -> Result<(), LoginTaskError> {
    platform::remove()
}

/// Where the task lives on this platform, for the user to see.
pub fn location() -> Option<String> {
    platform::location()
}

/// Writes `bytes` to `path`, creating its folder.
#[cfg(any(unix, test))]
fn write_file(path: &std::path::Path, bytes: &[u8]) -> Result<(), LoginTaskError> {
    let io = |source| LoginTaskError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    crate::config_file::write_atomically(path, bytes).map_err(io)
}

#[cfg(any(unix, test))]
fn remove_file(path: &std::path::Path) -> Result<(), LoginTaskError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(LoginTaskError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The autostart file's name (`veil-restore-proxy.desktop`).
pub const DESKTOP_FILE: &str = "veil-restore-proxy.desktop";

/// The XDG autostart entry for `args`.
pub fn desktop_entry(args: &[String]) -> String {
    format!(
        "[Desktop Entry]\n\
         Type=Application\n\
         Name=Veil: put your proxy settings back\n\
         Comment=Restores your own proxy settings if Veil stopped without doing so; removed by \
         Veil when nothing is left to restore\n\
         Exec={}\n\
         Terminal=false\n\
         NoDisplay=true\n\
         X-GNOME-Autostart-enabled=true\n",
        desktop_string(&desktop_exec(args))
    )
}

/// The `Exec` value for `args` per the Desktop Entry Specification: an
/// argument holding a reserved character is double-quoted, with `"`,
/// `` ` ``, `$` and `\` escaped inside; `%` is doubled (field codes).
pub fn desktop_exec(args: &[String]) -> String {
    const RESERVED: &[char] = &[
        ' ', '\t', '\n', '"', '\'', '\\', '>', '<', '~', '|', '&', ';', '$', '*', '?', '#', '(',
        ')', '`',
    ];
    args.iter()
        .map(|arg| {
            let arg = arg.replace('%', "%%");
            if arg.is_empty() || arg.contains(RESERVED) {
                let mut quoted = String::from('"');
                for c in arg.chars() {
                    if matches!(c, '"' | '`' | '$' | '\\') {
                        quoted.push('\\');
                    }
                    quoted.push(c);
                }
                quoted.push('"');
                quoted
            } else {
                arg
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A desktop entry `string` value: `\` and control characters escaped.
fn desktop_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

/// The LaunchAgent's label and file name.
pub const LAUNCH_AGENT: &str = "net.veil.restore-proxy";

/// The LaunchAgent property list for `args`: run once at login.
pub fn launch_agent(args: &[String]) -> String {
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let program: String = args
        .iter()
        .map(|a| format!("    <string>{}</string>\n", escape(a)))
        .collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \
         \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
         <plist version=\"1.0\">\n<dict>\n\
         \x20 <key>Label</key>\n  <string>{LAUNCH_AGENT}</string>\n\
         \x20 <key>ProgramArguments</key>\n  <array>\n{program}  </array>\n\
         \x20 <key>RunAtLoad</key>\n  <true/>\n\
         </dict>\n</plist>\n"
    )
}

/// The `Run` value's name.
pub const RUN_VALUE: &str = "Veil restore proxy settings";

/// One command line for `args` as Windows programs split it
/// (`CommandLineToArgvW`): arguments with spaces, tabs or quotes are
/// quoted; quotes and the backslashes before them are escaped.
pub fn windows_command_line(args: &[String]) -> String {
    args.iter()
        .map(|arg| {
            if !arg.is_empty() && !arg.contains([' ', '\t', '"']) {
                return arg.clone();
            }
            let mut out = String::from('"');
            let mut backslashes = 0;
            for c in arg.chars() {
                match c {
                    '\\' => backslashes += 1,
                    '"' => {
                        out.extend(std::iter::repeat_n('\\', backslashes * 2 + 1));
                        out.push('"');
                        backslashes = 0;
                    }
                    c => {
                        out.extend(std::iter::repeat_n('\\', backslashes));
                        out.push(c);
                        backslashes = 0;
                    }
                }
            }
            out.extend(std::iter::repeat_n('\\', backslashes * 2));
            out.push('"');
            out
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(all(unix, not(target_os = "macos")))]
mod platform {
    use std::path::PathBuf;

    use super::{DESKTOP_FILE, LoginTaskError, desktop_entry, remove_file, write_file};

    /// `$XDG_CONFIG_HOME/autostart/`, else `~/.config/autostart/`.
    fn path() -> Result<PathBuf, LoginTaskError> {
        let config = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|v| !v.is_empty())
                    .map(|h| PathBuf::from(h).join(".config"))
            })
            .ok_or(LoginTaskError::NoHome)?;
        Ok(config.join("autostart").join(DESKTOP_FILE))
    }

    pub fn install(args: &[String]) -> Result<String, LoginTaskError> {
        let path = path()?;
        write_file(&path, desktop_entry(args).as_bytes())?;
        Ok(path.display().to_string())
    }

    pub fn remove() -> Result<(), LoginTaskError> {
        remove_file(&path()?)
    }

    pub fn location() -> Option<String> {
        path().ok().map(|p| p.display().to_string())
    }
}

#[cfg(target_os = "macos")]
mod platform {
    use std::path::PathBuf;

    use super::{LAUNCH_AGENT, LoginTaskError, launch_agent, remove_file, write_file};

    fn path() -> Result<PathBuf, LoginTaskError> {
        let home = std::env::var_os("HOME")
            .filter(|v| !v.is_empty())
            .ok_or(LoginTaskError::NoHome)?;
        Ok(PathBuf::from(home)
            .join("Library/LaunchAgents")
            .join(format!("{LAUNCH_AGENT}.plist")))
    }

    pub fn install(args: &[String]) -> Result<String, LoginTaskError> {
        let path = path()?;
        write_file(&path, launch_agent(args).as_bytes())?;
        Ok(path.display().to_string())
    }

    pub fn remove() -> Result<(), LoginTaskError> {
        remove_file(&path()?)
    }

    pub fn location() -> Option<String> {
        path().ok().map(|p| p.display().to_string())
    }
}

#[cfg(windows)]
mod platform {
    use super::super::windows::run_key::{Key, RegValue, Registry, SystemRegistry};
    use super::{LoginTaskError, RUN_VALUE, windows_command_line};

    pub fn install(args: &[String]) -> Result<String, LoginTaskError> {
        SystemRegistry
            .set(
                Key::Run,
                RUN_VALUE,
                &RegValue::Sz(windows_command_line(args)),
            )
            .map_err(|e| LoginTaskError::Registry(e.to_string()))?;
        Ok(location().unwrap_or_default())
    }

    pub fn remove() -> Result<(), LoginTaskError> {
        SystemRegistry
            .delete(Key::Run, RUN_VALUE)
            .map_err(|e| LoginTaskError::Registry(e.to_string()))
    }

    pub fn location() -> Option<String> {
        Some(format!("HKCU\\{}\\{RUN_VALUE}", Key::Run.path()))
    }
}

#[cfg(not(any(unix, windows)))]
mod platform {
    use super::LoginTaskError;

    pub fn install(_args: &[String]) -> Result<String, LoginTaskError> {
        Err(LoginTaskError::NoHome)
    }

    pub fn remove() -> Result<(), LoginTaskError> {
        Ok(())
    }

    pub fn location() -> Option<String> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn exec_lines_quote_what_the_spec_reserves() {
        let line = desktop_exec(&args(&[
            "/opt/My Apps/veil",
            "sysproxy",
            "--veil-home",
            "/home/a$b/50%",
        ]));
        assert_eq!(
            line,
            r#""/opt/My Apps/veil" sysproxy --veil-home "/home/a\$b/50%%""#
        );
        // In the file, the value's own backslashes are escaped once more.
        let entry = desktop_entry(&args(&["/a b/veil", "x"]));
        assert!(entry.contains("\nExec=\"/a b/veil\" x\n"), "{entry}");
        let entry = desktop_entry(&args(&["/a\\b/veil"]));
        assert!(entry.contains(r#"Exec="/a\\\\b/veil""#), "{entry}");
    }

    #[test]
    fn windows_lines_split_back_as_written() {
        assert_eq!(
            windows_command_line(&args(&[
                r"C:\Program Files\Veil\veil.exe",
                "sysproxy",
                r"C:\x y\",
                r#"a"b"#
            ])),
            r#""C:\Program Files\Veil\veil.exe" sysproxy "C:\x y\\" "a\"b""#
        );
    }

    #[test]
    fn launch_agents_escape_xml() {
        let plist = launch_agent(&args(&["/Applications/Veil & Co.app/veil", "sysproxy"]));
        assert!(plist.contains("<string>/Applications/Veil &amp; Co.app/veil</string>"));
        assert!(plist.contains("<key>RunAtLoad</key>\n  <true/>"), "{plist}");
    }

    #[test]
    fn the_app_recognises_the_task_command_only() {
        assert_eq!(restore_request(&args(&RESTORE_ARGS)), Some(None));
        let mut with_home = args(&RESTORE_ARGS);
        with_home.extend(args(&[HOME_FLAG, "/h"]));
        assert_eq!(restore_request(&with_home), Some(Some(PathBuf::from("/h"))));
        assert_eq!(restore_request(&args(&["sysproxy", "restore"])), None);
        assert_eq!(restore_request(&args(&[])), None);
        with_home.push("extra".into());
        assert_eq!(restore_request(&with_home), None);
    }

    #[test]
    fn files_are_written_and_removed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("autostart").join(DESKTOP_FILE);
        write_file(&path, b"x").expect("write");
        assert!(path.exists());
        remove_file(&path).expect("remove");
        remove_file(&path).expect("removing again is fine");
        assert!(!path.exists());
    }
}
