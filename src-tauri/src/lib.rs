//! Veil's desktop app: the engine runs inside it (a [`veil_system::Service`])
//! and the tray holds the switches. The window (`ui/`) runs in a process of
//! its own ([`window_process`], started by [`window`]), so this one never
//! loads a web view. The app serves the control socket, so `veil status`
//! works against it, and the window socket its window talks to. Quitting
//! (the window, the tray, a signal) puts the user's system proxy settings
//! back.

mod attached;
pub mod bindings;
mod commands;
mod error;
pub mod gl;
mod i18n;
mod state;
#[cfg(test)]
mod tests;
mod tray;
mod window;
pub mod window_process;

use std::sync::Arc;
use std::time::Instant;

use tauri::{Emitter, Manager, RunEvent, Runtime};
use veil_system::Paths;
use veil_system::control::ControlServer;
use veil_system::ipcheck::IpReport;

pub use attached::AttachedTo;
pub use commands::{ImportResult, SettingsSaved, UpstreamEntry, UpstreamInput, UpstreamTest};
pub use error::{AppError, ErrorKind};
pub use state::{AppState, AppStatus, Selection, SysProxyState};
pub use veil_system::settings_edit::Settings;

/// Events the window listens to.
pub mod event {
    pub const STATS: &str = "veil://stats";
    pub const ENGINE: &str = "veil://engine";
    pub const STATUS: &str = "veil://status";
    pub const IP: &str = "veil://ip";
    /// The window was closed where no tray icon shows: ask whether to keep
    /// running.
    pub const CLOSE_ASKED: &str = "veil://close-asked";
}

/// `builder` with Veil's commands; `run` adds the plugins, the tray and the
/// engine to the default builder, the tests use the mock runtime's.
pub fn builder_on<R: Runtime>(builder: tauri::Builder<R>) -> tauri::Builder<R> {
    builder.invoke_handler(tauri::generate_handler![
        commands::get_status,
        commands::dismiss_alerts,
        commands::set_system_proxy,
        commands::system_proxy_settings,
        commands::answer_drift,
        commands::set_selection,
        commands::set_strategy,
        commands::list_upstreams,
        commands::save_upstream,
        commands::remove_upstream,
        commands::test_upstream,
        commands::import_upstreams,
        commands::cache_clear,
        commands::get_settings,
        commands::save_settings,
        commands::check_ip,
        commands::get_history,
        commands::export_history_csv,
        commands::scan_coverage,
        commands::check_leaks,
        commands::get_fallback_direct,
        commands::set_fallback_direct,
        commands::answer_close,
        commands::quit_app,
        commands::close_connections,
        commands::check_exit_ip,
    ])
}

/// Tells the window and the tray that something changed (from either).
/// Keeps a finished IP check for the tray and new windows, and sends it to
/// the open ones.
pub(crate) fn ip_checked<R: Runtime>(app: &tauri::AppHandle<R>, report: &IpReport) {
    if app.state::<Arc<AppState>>().set_last_ip(report.clone()) {
        let _ = app.emit(event::IP, report);
        tray::refresh(app);
    }
}

/// Checks the IP again in the background (after the route changed).
pub(crate) fn recheck_ip<R: Runtime>(app: &tauri::AppHandle<R>) {
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let state = app.state::<Arc<AppState>>().inner().clone();
        if let Ok(report) = state.check_ip().await {
            ip_checked(&app, &report);
        }
    });
}

pub(crate) fn notify_changed<R: Runtime>(app: &tauri::AppHandle<R>) {
    let state = app.state::<Arc<AppState>>();
    if let Ok(status) = state.status() {
        let _ = app.emit(event::STATUS, status);
    }
    tray::refresh(app);
}

/// The login-time repair (`veil-app sysproxy restore --if-stranded`): puts
/// back settings a Veil left behind when no Veil owns them any more, and
/// exits without a window. Returns the exit code.
pub fn repair_at_login(home: Option<std::path::PathBuf>) -> i32 {
    let paths = match home {
        Some(home) => Ok(Paths::under(&home)),
        None => Paths::discover(),
    };
    let result = paths
        .map_err(|e| e.to_string())
        .and_then(|p| veil_system::sysproxy::recover(&p.data_dir).map_err(|e| e.to_string()));
    match result {
        Ok(veil_system::sysproxy::Recovery::Restored { pid, .. }) => {
            eprintln!("veil-app: restored the proxy settings a Veil (pid {pid}) left behind");
            0
        }
        Ok(_) => 0,
        Err(e) => {
            eprintln!("veil-app: restoring the proxy settings failed: {e}");
            1
        }
    }
}

pub fn run() {
    let launched = Instant::now();
    // Autostart starts Veil in the tray: no window, no WebView, until the
    // first "Open Veil".
    let hidden = std::env::args().skip(1).any(|a| a == "--hidden");
    let paths = match Paths::discover().and_then(|p| p.create_dirs().map(|()| p)) {
        Ok(paths) => paths,
        Err(e) => {
            eprintln!("veil-app: {e}");
            std::process::exit(1);
        }
    };
    // Kept in the app's state and dropped at the end of `shutdown`, so the
    // last lines (the system proxy restored or not) reach the log file:
    // Tauri ends the process without returning here.
    let log_guard = LogGuard(std::sync::Mutex::new(veil_system::logging::init(
        &paths.log_dir,
        "veil-app.log",
    )));

    let started = start_proxy(paths, launched);
    let app = builder_on(tauri::Builder::default())
        // First, so a second launch only brings this window forward.
        .plugin(tauri_plugin_single_instance::init(|app, args, _cwd| {
            if !args.iter().any(|a| a == "--hidden") {
                window::open(app);
            }
        }))
        .plugin(tauri_plugin_autostart::init(
            tauri_plugin_autostart::MacosLauncher::LaunchAgent,
            Some(vec!["--hidden"]),
        ))
        .plugin(tauri_plugin_clipboard_manager::init())
        .setup(move |app| {
            app.manage(log_guard);
            app.manage(window::WindowMemory::default());
            setup(app, started, hidden, launched);
            Ok(())
        })
        .build(tauri::generate_context!())
        .unwrap_or_else(|e| {
            eprintln!("veil-app: cannot start the window: {e}");
            std::process::exit(1);
        });

    app.run(|app, event| {
        if let RunEvent::Exit = event {
            shutdown(app);
        }
    });
}

/// The log file's writer, flushed when dropped.
struct LogGuard(std::sync::Mutex<Option<tracing_appender::non_blocking::WorkerGuard>>);

/// Holds the control server's stop signal until exit.
struct ControlStop(Arc<tokio::sync::Notify>);

/// The proxy, started before the window toolkit so apps can use it as soon
/// as possible; `setup` then attaches it to the app.
struct Started {
    state: Arc<AppState>,
    /// `None` when this app runs no engine of its own (attached to
    /// `veil run`'s, or none started): nothing to answer for.
    control: Option<Result<ControlServer, veil_system::control::ControlError>>,
    control_path: std::path::PathBuf,
}

fn start_proxy(paths: Paths, launched: Instant) -> Started {
    let control_path = paths.control_socket();
    // The instance lock first (in `AppState::start`): the control socket is
    // bound only by the Veil that holds it, after crash recovery.
    let state = Arc::new(tauri::async_runtime::block_on(AppState::start(paths)));
    let control = state
        .service()
        .is_ok()
        .then(|| tauri::async_runtime::block_on(ControlServer::bind(&control_path)));
    if let Ok(service) = state.service() {
        tracing::info!(
            "proxy ready on {} {} ms after launch",
            service.engine().local_addr(),
            launched.elapsed().as_millis()
        );
    }
    Started {
        state,
        control,
        control_path,
    }
}

fn setup(app: &mut tauri::App, started: Started, hidden: bool, launched: Instant) {
    // This process shows no window (the window has a process of its own,
    // which has the Dock icon while it is open): on macOS it lives in the
    // menu bar only.
    #[cfg(target_os = "macos")]
    app.set_activation_policy(tauri::ActivationPolicy::Accessory);
    let Started {
        state,
        control,
        control_path,
    } = started;
    let stop = Arc::new(tokio::sync::Notify::new());
    match (control, state.service()) {
        (Some(Ok(control)), Ok(service)) => {
            let stop = stop.clone();
            tauri::async_runtime::spawn(
                control.serve(service.clone(), async move { stop.notified().await }),
            );
        }
        (Some(Err(e)), _) => {
            tracing::error!("no control socket at {}: {e}", control_path.display())
        }
        (_, Err(e)) => tracing::warn!("{e}"),
        (None, Ok(_)) => {}
    }
    app.manage(state.clone());
    let handle = app.handle().clone();
    // The window's own process talks to this one here, also when the
    // engine is `veil run`'s (attached).
    let window_socket = state.paths.window_socket();
    match tauri::async_runtime::block_on(ControlServer::bind(&window_socket)) {
        Ok(server) => {
            let stop = stop.clone();
            let channel = Arc::new(window::WindowChannel {
                app: handle.clone(),
                launched,
            });
            tauri::async_runtime::spawn(
                server.serve(channel, async move { stop.notified().await }),
            );
        }
        Err(e) => tracing::error!("no window socket at {}: {e}", window_socket.display()),
    }
    app.manage(ControlStop(stop));
    window::forward_events(&handle);

    tauri::async_runtime::spawn(tick_stats(handle.clone(), state.clone()));
    tauri::async_runtime::spawn(forward_engine_events(handle.clone(), state.clone()));
    tauri::async_runtime::spawn(exit_on_signal(handle.clone()));
    if let Ok(service) = state.service() {
        // The watch's tasks need the async runtime, which runs from here.
        let service = service.clone();
        let handle = handle.clone();
        tauri::async_runtime::spawn(async move {
            service.watch_system_proxy();
            let mut changes = service.watch_drift();
            while changes.changed().await.is_ok() {
                notify_changed(&handle);
            }
        });
    }
    let tray = match tray::create(&handle) {
        Ok(()) => veil_system::tray_host::available(),
        Err(e) => {
            tracing::warn!("no tray icon: {e}");
            false
        }
    };
    if !tray {
        tracing::info!("the desktop shows no tray icon: closing the window will ask first");
    }
    handle.state::<window::WindowMemory>().set_tray(tray);
    // While there is no window, what the tray and the engine have not
    // touched lately goes back to the system now and then.
    let app = handle.clone();
    tauri::async_runtime::spawn(async move {
        let mut every = tokio::time::interval(window::LIGHT_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
        loop {
            every.tick().await;
            window::go_light(&app).await;
        }
    });
    if hidden {
        // Started for the tray (autostart): once start-up has settled.
        let app = handle.clone();
        tauri::async_runtime::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            window::go_light_twice(&app).await;
        });
    } else {
        window::open(&handle);
    }
    recheck_ip(&handle);
}

/// Puts the system proxy settings back and stops the engine; runs once, on
/// the way out, whatever asked the app to quit.
fn shutdown<R: Runtime>(app: &tauri::AppHandle<R>) {
    window::end(app);
    if let Some(stop) = app.try_state::<ControlStop>() {
        stop.0.notify_waiters();
    }
    let Some(state) = app.try_state::<Arc<AppState>>() else {
        return;
    };
    let Ok(service) = state.service() else {
        return;
    };
    match tauri::async_runtime::block_on(service.shutdown()) {
        Ok(true) => tracing::info!("system proxy off: the previous settings are restored"),
        Ok(false) => {}
        Err(e) => tracing::error!(
            "could not restore the system proxy settings: {e}; run `veil sysproxy restore`"
        ),
    }
    if let Some(guard) = app.try_state::<LogGuard>() {
        drop(guard.0.lock().ok().and_then(|mut g| g.take()));
    }
}

/// The counters once a second, for the Overview chart, the tables and the
/// tray's tooltip; nothing is sent while there is no window.
async fn tick_stats<R: Runtime>(app: tauri::AppHandle<R>, state: Arc<AppState>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Attached to `veil run`, its switches may change from the CLI: the
    // window and the tray follow when they do.
    let mut seen = None;
    loop {
        tick.tick().await;
        let stats = state.fresh_stats().await;
        tray::show_rate(&app, &state);
        if let Some(stats) = stats
            && app.state::<window::WindowMemory>().is_open()
        {
            let _ = app.emit(event::STATS, stats);
        }
        if let Some(attached) = state.attached() {
            let now = (
                state.system_proxy_on(),
                attached.describe().error,
                state.alerts(),
            );
            if seen.as_ref() != Some(&now) {
                seen = Some(now);
                notify_changed(&app);
            }
        }
    }
}

/// Upstream health as it changes. Connection events are not forwarded: a
/// busy browser opens hundreds a second, and the window gets the connection
/// list with the stats tick. A restarted engine is a new sender, so the loop
/// subscribes again when one closes.
async fn forward_engine_events<R: Runtime>(app: tauri::AppHandle<R>, state: Arc<AppState>) {
    use tokio::sync::broadcast::error::RecvError;
    use veil_engine::EngineEvent;
    let Ok(service) = state.service() else {
        return;
    };
    loop {
        let mut events = service.engine().subscribe();
        loop {
            match events.recv().await {
                Ok(event @ (EngineEvent::UpstreamUp { .. } | EngineEvent::UpstreamDown { .. })) => {
                    let _ = app.emit(event::ENGINE, &event);
                    tray::refresh(&app);
                }
                Ok(_) | Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => break,
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// SIGTERM, SIGINT and SIGHUP quit the app the normal way, so the system
/// proxy settings are restored.
#[cfg(unix)]
async fn exit_on_signal<R: Runtime>(app: tauri::AppHandle<R>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot catch signals; quit from the window or the tray");
        return;
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
        _ = hup.recv() => "SIGHUP",
    };
    tracing::info!("{name}: quitting");
    app.exit(0);
}

#[cfg(not(unix))]
async fn exit_on_signal<R: Runtime>(app: tauri::AppHandle<R>) {
    if tokio::signal::ctrl_c().await.is_ok() {
        app.exit(0);
    }
}
