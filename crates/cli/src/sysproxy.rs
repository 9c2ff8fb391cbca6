//! `veil sysproxy on|off|status|restore`.
//!
//! `on` and `off` go through the running engine, which owns the setting:
//! pointing the OS at a port where nothing listens would cut the user off.
//! `status` asks the engine when one runs and reads the OS directly when
//! none does; `restore` needs no engine at all, since it exists for the
//! case where the engine died.

use std::path::PathBuf;

use anyhow::bail;
use veil_system::Paths;
use veil_system::control::{self, ControlError, Reply, Request};
use veil_system::sysproxy::{self, ProxyState, Recovery, SystemProxyStatus};

pub async fn on() -> anyhow::Result<()> {
    let report = ask(&Request::SysproxyOn, || {
        "no Veil engine is running, so the system proxy was not changed: pointing your apps at a \
         port where nothing listens would cut them off. Start one with `veil run --system-proxy` \
         (or `veil run`, then `veil sysproxy on`)."
            .to_owned()
    })
    .await?;
    println!(
        "system proxy on: apps that follow it now use {}",
        report.proxy.as_deref().unwrap_or("Veil")
    );
    print_status(&report);
    Ok(())
}

pub async fn off() -> anyhow::Result<()> {
    let report = ask(&Request::SysproxyOff, || {
        "no Veil engine is running. If one stopped without restoring your proxy settings, \
         `veil sysproxy restore` puts them back."
            .to_owned()
    })
    .await?;
    println!("system proxy off: your previous settings are restored");
    print_status(&report);
    Ok(())
}

pub async fn status(json: bool) -> anyhow::Result<()> {
    let paths = Paths::discover()?;
    let report = match control::request(&paths.control_socket(), &Request::SysproxyStatus).await {
        Ok(Reply::Sysproxy { sysproxy, .. }) => *sysproxy,
        Ok(Reply::Error { error, .. }) => bail!("the engine answered: {error}"),
        Ok(other) => bail!("unexpected answer from the engine: {other:?}"),
        Err(ControlError::NotRunning { .. }) => sysproxy::status(&paths.data_dir)?,
        Err(e) => return Err(e.into()),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_status(&report);
    }
    Ok(())
}

/// `if_stranded` is the login-time repair: a live owner or nothing saved
/// is success, and says nothing.
pub fn restore(if_stranded: bool, veil_home: Option<PathBuf>) -> anyhow::Result<()> {
    let paths = match veil_home {
        Some(home) => Paths::under(&home),
        None => Paths::discover()?,
    };
    match sysproxy::recover(&paths.data_dir)? {
        Recovery::Nothing | Recovery::OwnerRunning { .. } if if_stranded => {}
        Recovery::Nothing => {
            println!("nothing to restore: Veil has not changed your system proxy settings");
        }
        Recovery::OwnerRunning { pid } => bail!(
            "Veil (pid {pid}) is running and owns the system proxy setting; turn it off with \
             `veil sysproxy off` (or stop that Veil, which restores your settings)"
        ),
        Recovery::Restored { pid, restored, .. } => {
            println!(
                "restored the settings saved by a Veil that stopped unexpectedly (pid {pid}):"
            );
            for (backend, state) in restored {
                println!("  {backend}: {state}");
            }
        }
    }
    Ok(())
}

async fn ask(
    request: &Request,
    not_running: impl FnOnce() -> String,
) -> anyhow::Result<SystemProxyStatus> {
    let paths = Paths::discover()?;
    match control::request(&paths.control_socket(), request).await {
        Ok(Reply::Sysproxy { sysproxy, .. }) => Ok(*sysproxy),
        Ok(Reply::Error { error, .. }) => bail!("{error}"),
        Ok(other) => bail!("unexpected answer from the engine: {other:?}"),
        Err(ControlError::NotRunning { .. }) => bail!("{}", not_running()),
        Err(e) => Err(e.into()),
    }
}

/// The OS's settings now and the saved ones side by side, one row per field.
fn print_status(report: &SystemProxyStatus) {
    match (report.on, report.stale, report.owner_pid) {
        (true, _, Some(pid)) => println!(
            "Veil (pid {pid}) points the system proxy at {}; your own settings are saved",
            report.proxy.as_deref().unwrap_or("?")
        ),
        (_, true, pid) => println!(
            "a Veil that is no longer running (pid {}) left the system proxy changed; \
             `veil sysproxy restore` puts your settings back",
            pid.map_or("?".into(), |p| p.to_string())
        ),
        _ => println!("Veil has not changed the system proxy: these are your own settings"),
    }
    for b in &report.backends {
        println!();
        println!("{:<10} {:<36} saved by Veil", b.backend, "now");
        let now = rows(b.current.as_ref());
        let saved = rows(b.saved.as_ref());
        for ((label, now), (_, saved)) in now.iter().zip(saved.iter()) {
            if now.chars().count() <= 36 {
                println!("  {label:<8} {now:<36} {saved}");
            } else {
                // Too wide for a column (a long bypass list): one line each.
                println!("  {label:<8} now:   {now}");
                println!("  {:<8} saved: {saved}", "");
            }
        }
        if let Some(err) = &b.error {
            println!("  cannot read the current settings: {err}");
        }
    }
}

fn rows(state: Option<&ProxyState>) -> Vec<(&'static str, String)> {
    ProxyState::fields(state)
}
