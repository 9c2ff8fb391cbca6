use std::io::Write;
use std::sync::Arc;

use anyhow::Context;
use veil_engine::Mode;
use veil_system::control::{ControlServer, Reply, Request};
use veil_system::instance::{InstanceError, InstanceLock};
use veil_system::sysproxy::{self, Recovery};
use veil_system::{Config, Paths, Service};

use crate::RunArgs;

/// A guard file whose owner is gone means a Veil died with the system
/// proxy pointing at it: put the user's settings back before anything else.
pub fn recover_from_crash(paths: &Paths) {
    match sysproxy::recover(&paths.data_dir) {
        Ok(Recovery::Restored { pid, restored, .. }) => {
            eprintln!(
                "veil: a Veil that stopped unexpectedly (pid {pid}) had left the system proxy \
                 pointing at it; your previous settings are restored:"
            );
            for (backend, state) in restored {
                eprintln!("veil:   {backend}: {state}");
            }
        }
        Ok(Recovery::Nothing | Recovery::OwnerRunning { .. }) => {}
        Err(e) => eprintln!(
            "veil: a Veil that stopped unexpectedly left the system proxy changed, and restoring \
             your previous settings failed: {e}. Try `veil sysproxy restore`."
        ),
    }
}

/// Takes the instance lock, or fails naming the Veil that holds it (asked
/// over the control socket when the lock file cannot be read, on Windows).
pub async fn lock_instance(paths: &Paths) -> anyhow::Result<InstanceLock> {
    match InstanceLock::acquire(paths) {
        Err(InstanceError::Held { pid: None, path }) => {
            let pid = running_pid(paths).await;
            Err(InstanceError::Held { pid, path }.into())
        }
        other => Ok(other?),
    }
}

/// The pid of the engine that answers the control socket, if one does.
pub async fn running_pid(paths: &Paths) -> Option<u32> {
    match veil_system::control::request(&paths.control_socket(), &Request::Status).await {
        Ok(Reply::Status { status, .. }) => Some(status.pid),
        _ => None,
    }
}

/// How long after start the start-up code is let go of.
const SETTLE_BEFORE_PAGE_OUT: std::time::Duration = std::time::Duration::from_secs(3);

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let paths = Paths::discover()?;
    paths.create_dirs()?;
    let _log_guard = veil_system::logging::init(&paths.log_dir, "veil.log");

    let config_path = args.config.unwrap_or_else(|| paths.config_file.clone());
    let mut config = Config::load(&config_path)?;
    if !args.upstreams.is_empty() {
        // --upstream replaces the configured upstreams, so their passwords
        // are not needed (and a missing one must not stop this run).
        config.upstreams.server.clear();
    }
    let mut engine_config = config.engine_config()?;
    engine_config.cache.dir = Some(paths.cache_dir.join("http"));
    if let Some(listen) = args.listen {
        engine_config.listen = listen;
    }
    if !args.upstreams.is_empty() {
        engine_config.upstreams = crate::upstream::specs_from_flags(&args.upstreams)?;
        engine_config.mode = Mode::Proxy;
    }
    if let Some(mode) = args.mode {
        engine_config.mode = mode;
    }
    if let Some(strategy) = args.strategy {
        engine_config.strategy = strategy;
    }

    // One Veil per user: the lock comes before the control socket, the
    // guard and the port, so a second `veil run` names the running one and
    // touches nothing.
    let _instance = lock_instance(&paths).await?;
    let control = ControlServer::bind(&paths.control_socket()).await?;
    recover_from_crash(&paths);
    // Signals are caught from here on, so one that arrives right after the
    // system proxy is switched on still restores it.
    let mut signals = Signals::install()?;
    let service = Arc::new(Service::start(paths.data_dir.clone(), &config, engine_config).await?);
    service.watch_new_services(veil_system::service::WATCH_EVERY);
    service.watch_system_proxy();
    let listen = service.engine().local_addr();
    if args.system_proxy {
        if let Err(e) = service.set_system_proxy(true).await {
            service.engine().shutdown().await;
            anyhow::bail!("system proxy not changed: {e}");
        }
        eprintln!(
            "veil: system proxy on: apps that follow it now use {}",
            service.proxy().client_addr()
        );
    }
    let stop = Arc::new(tokio::sync::Notify::new());
    let control_task = tokio::spawn(control.serve(service.clone(), {
        let stop = stop.clone();
        async move { stop.notified().await }
    }));

    println!("veil: listening on {listen}");
    std::io::stdout().flush().context("writing to stdout")?;
    // Start-up code (the config, certificates, the store) is not run
    // again: once it has settled, its pages go back to the system.
    // The same once each burst of connections is over.
    tokio::spawn(async {
        tokio::time::sleep(SETTLE_BEFORE_PAGE_OUT).await;
        let _ = tokio::task::spawn_blocking(|| veil_engine::go_idle(|| true)).await;
    });

    let signal = signals.recv().await;
    tracing::info!("{signal}: shutting down");
    stop.notify_one();
    match service.shutdown().await {
        Ok(true) => eprintln!("veil: system proxy off: your previous settings are restored"),
        Ok(false) => {}
        Err(e) => eprintln!(
            "veil: could not restore your system proxy settings: {e}. Run `veil sysproxy restore`."
        ),
    }
    let _ = control_task.await;
    Ok(())
}

/// The signals that stop `veil run`, caught from the moment they are
/// installed.
#[cfg(unix)]
struct Signals {
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            hup: signal(SignalKind::hangup()).context("installing the SIGHUP handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.hup.recv() => "SIGHUP",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// Ctrl-C, closing the console window, logging off and shutting down (the
/// last two reach console programs only where Windows delivers them).
#[cfg(windows)]
struct Signals {
    c: tokio::signal::windows::CtrlC,
    close: tokio::signal::windows::CtrlClose,
    logoff: tokio::signal::windows::CtrlLogoff,
    shutdown: tokio::signal::windows::CtrlShutdown,
}

#[cfg(windows)]
impl Signals {
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::windows::{ctrl_c, ctrl_close, ctrl_logoff, ctrl_shutdown};
        Ok(Self {
            c: ctrl_c().context("installing the Ctrl-C handler")?,
            close: ctrl_close().context("installing the console-close handler")?,
            logoff: ctrl_logoff().context("installing the log-off handler")?,
            shutdown: ctrl_shutdown().context("installing the shutdown handler")?,
        })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.c.recv() => "Ctrl-C",
            _ = self.close.recv() => "console close",
            _ = self.logoff.recv() => "log off",
            _ = self.shutdown.recv() => "shutdown",
        }
    }
}

#[cfg(not(any(unix, windows)))]
struct Signals;

#[cfg(not(any(unix, windows)))]
impl Signals {
    fn install() -> anyhow::Result<Self> {
        Ok(Self)
    }

    async fn recv(&mut self) -> &'static str {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}
