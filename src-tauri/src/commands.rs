//! The commands the window may call (listed in `build.rs` for the ACL, and
//! allowed for the main window in `capabilities/default.json`). Each is a
//! thin wrapper over `veil-system`/`veil-engine` through [`AppState`].

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use tauri::{AppHandle, Manager, Runtime, State};
use tauri_plugin_autostart::ManagerExt;
use veil_engine::{CacheStats, ProxyUrl, Strategy};
use veil_system::ConfigFile;
use veil_system::coverage::CoverageReport;
use veil_system::history::{History, HistoryRange, HistoryReport};
use veil_system::ipcheck::IpReport;
use veil_system::leaks::LeakReport;
use veil_system::secrets::{self, SecretKey};
use veil_system::settings_edit::{self, Settings};
use veil_system::upstream_import;

use crate::error::{AppError, AppResult, ErrorKind};
use crate::state::{AppState, AppStatus, Selection, SysProxyState};

type AppStateRef<'a> = State<'a, Arc<AppState>>;

/// Runs keyring or file work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> AppResult<T> + Send + 'static,
) -> AppResult<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| AppError::new(ErrorKind::Io, e.to_string()))?
}

/// An upstream as configured. The password never reaches the window; it
/// only learns whether one is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct UpstreamEntry {
    pub name: String,
    pub url: String,
    pub username: Option<String>,
    pub has_password: bool,
    pub weight: u32,
    /// Its exit addresses, once checked through it ([`check_exit_ip`]).
    pub exit: Option<veil_system::ipcheck::ExitIp>,
}

/// To add an upstream (`original_name` null) or edit one: the same record
/// `veil upstream add|edit` builds.
pub use veil_system::upstream_edit::UpstreamChange as UpstreamInput;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct UpstreamTest {
    pub name: String,
    pub latency_ms: Option<u64>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct SettingsSaved {
    pub settings: Settings,
    /// What changed that the user should know, e.g. the new listener.
    pub notice: Option<String>,
}

#[tauri::command]
pub async fn get_status(state: AppStateRef<'_>) -> AppResult<AppStatus> {
    state.status()
}

/// The user has read the alerts: forget them (window and tray).
#[tauri::command]
pub async fn dismiss_alerts<R: Runtime>(
    app: AppHandle<R>,
    state: AppStateRef<'_>,
) -> AppResult<AppStatus> {
    state.clear_alerts().await?;
    crate::notify_changed(&app);
    state.status()
}

#[tauri::command]
pub async fn set_system_proxy<R: Runtime>(
    app: AppHandle<R>,
    state: AppStateRef<'_>,
    on: bool,
) -> AppResult<SysProxyState> {
    let status = state.set_system_proxy(on).await?;
    crate::notify_changed(&app);
    Ok(state.system_proxy_state(Some(&status)))
}

/// The OS's proxy settings now beside the user's own that Veil saved, one
/// row per field (what `veil sysproxy status` prints).
#[tauri::command]
pub async fn system_proxy_settings(
    state: AppStateRef<'_>,
) -> AppResult<Vec<veil_system::sysproxy::SettingRow>> {
    let status = state.service()?.system_proxy_status().await?;
    Ok(status.rows())
}

/// The user's answer to a drift of the OS setting (the window's buttons;
/// the notification's and the tray's go the same way).
#[tauri::command]
pub async fn answer_drift<R: Runtime>(
    app: AppHandle<R>,
    state: AppStateRef<'_>,
    choice: veil_system::service::DriftChoice,
) -> AppResult<AppStatus> {
    state.service()?.answer_drift(choice).await;
    crate::notify_changed(&app);
    state.status()
}

#[tauri::command]
pub async fn set_selection<R: Runtime>(
    app: AppHandle<R>,
    state: AppStateRef<'_>,
    selection: Selection,
) -> AppResult<AppStatus> {
    state.select(selection).await?;
    crate::notify_changed(&app);
    crate::recheck_ip(&app);
    state.status()
}

#[tauri::command]
pub async fn set_strategy<R: Runtime>(
    app: AppHandle<R>,
    state: AppStateRef<'_>,
    strategy: Strategy,
) -> AppResult<AppStatus> {
    state.set_strategy(strategy)?;
    crate::notify_changed(&app);
    state.status()
}

#[tauri::command]
pub async fn list_upstreams(state: AppStateRef<'_>) -> AppResult<Vec<UpstreamEntry>> {
    let servers = state.config()?.upstreams.server;
    let mut exits = state.exit_ips();
    // Asking the keyring is a blocking D-Bus call on Linux.
    blocking(move || {
        servers
            .into_iter()
            .map(|s| {
                let username = s.url.parse::<ProxyUrl>().ok().and_then(|u| u.username);
                let has_password = s.password_env.is_some()
                    || (username.is_some()
                        && secrets::get(&SecretKey::Upstream(s.name.clone()))?.is_some());
                Ok(UpstreamEntry {
                    exit: exits.remove(&s.name),
                    name: s.name,
                    url: s.url,
                    username,
                    has_password,
                    weight: s.weight,
                })
            })
            .collect()
    })
    .await
}

#[tauri::command]
pub async fn save_upstream<R: Runtime>(
    app: AppHandle<R>,
    state: AppStateRef<'_>,
    upstream: UpstreamInput,
) -> AppResult<Vec<UpstreamEntry>> {
    use veil_system::upstream_edit;
    // Refused up front when attached to `veil run`, before the file changes.
    state.service()?;
    let change = UpstreamInput {
        name: upstream.name.trim().to_owned(),
        ..upstream
    };
    let path = state.config_path.clone();
    let (saved, change) = blocking(move || {
        let saved = upstream_edit::save(&path, &change, &upstream_import::OsKeyring)?;
        Ok((saved, change))
    })
    .await?;
    if let Selection::One { name: chosen } = state.selection()
        && Some(&chosen) == change.original_name.as_ref()
        && chosen != change.name
    {
        state
            .select(Selection::One {
                name: change.name.clone(),
            })
            .await?;
    }
    upstreams_changed(&app, state, saved.undo).await
}

/// After the upstream list changed: the engine, the window, the tray and the
/// IP check follow, and the window gets the new list.
async fn upstreams_changed<R: Runtime>(
    app: &AppHandle<R>,
    state: AppStateRef<'_>,
    undo: veil_system::upstream_edit::Undo,
) -> AppResult<Vec<UpstreamEntry>> {
    if let Err(e) = state.reload_upstreams().await {
        // Fail closed: the engine still carries the route it had, and the
        // file goes back to match it, so the next start does too.
        if let Err(io) = undo.undo() {
            tracing::error!("config.toml could not be put back: {io}");
        }
        crate::notify_changed(app);
        return Err(AppError::new(
            e.kind,
            format!(
                "{} The change was not applied: Veil keeps the upstreams and the route it had.",
                e.message
            ),
        ));
    }
    crate::notify_changed(app);
    crate::recheck_ip(app);
    list_upstreams(state).await
}

#[tauri::command]
pub async fn remove_upstream<R: Runtime>(
    app: AppHandle<R>,
    state: AppStateRef<'_>,
    name: String,
) -> AppResult<Vec<UpstreamEntry>> {
    use veil_system::upstream_edit;
    state.service()?;
    // Fail closed: removing the last upstream of a route through upstreams
    // would send traffic from the user's own address. They say so first.
    let servers = state.config()?.upstreams.server;
    if state.selection() != Selection::Direct
        && servers.len() == 1
        && servers.iter().any(|s| s.name == name)
    {
        return Err(AppError::invalid(format!(
            "{name:?} is the last upstream and your traffic goes through it: removing it would \
             send traffic from your own address. Choose Direct first (Overview or tray), or add \
             another upstream."
        )));
    }
    let path = state.config_path.clone();
    let removed = name.clone();
    let undo = blocking(move || Ok(upstream_edit::remove(&path, &removed)?)).await?;
    // The password goes only once the removal took effect, so a refused
    // change leaves the upstream whole.
    let list = upstreams_changed(&app, state, undo).await?;
    let forgotten = name.clone();
    let keyring = blocking(move || {
        Ok(upstream_edit::forget(
            &upstream_import::OsKeyring,
            &forgotten,
        )?)
    });
    if let Err(e) = keyring.await {
        tracing::warn!("the keyring entry of upstream {name:?} could not be deleted: {e}");
    }
    Ok(list)
}

/// What an import did, and the upstream list after it.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct ImportResult {
    pub summary: veil_system::upstream_import::ImportSummary,
    pub upstreams: Vec<UpstreamEntry>,
}

/// Adds every good line of a pasted or opened list (the same code path as
/// `veil upstream import`); the engine then carries the new upstreams. When
/// it cannot, the file goes back and the imported passwords leave the
/// keyring again: nothing half-imported stays behind.
#[tauri::command]
pub async fn import_upstreams<R: Runtime>(
    app: AppHandle<R>,
    state: AppStateRef<'_>,
    text: String,
) -> AppResult<ImportResult> {
    let undo = veil_system::upstream_edit::Undo::before_change(&state.config_path);
    let path = state.config_path.clone();
    let summary = blocking(move || {
        let mut file = ConfigFile::open(&path)?;
        let plan = upstream_import::plan(&text, &file.config()?);
        upstream_import::apply(&mut file, plan, &upstream_import::OsKeyring)
            .map_err(|e| AppError::new(ErrorKind::Config, e.to_string()))
    })
    .await?;
    if summary.added.is_empty() {
        let upstreams = list_upstreams(state).await?;
        return Ok(ImportResult { summary, upstreams });
    }
    let added: Vec<String> = summary.added.iter().map(|a| a.name.clone()).collect();
    match upstreams_changed(&app, state, undo).await {
        Ok(upstreams) => Ok(ImportResult { summary, upstreams }),
        Err(e) => {
            let _ = blocking(move || {
                for name in added {
                    if let Err(e) = secrets::delete(&SecretKey::Upstream(name)) {
                        tracing::warn!("an imported password could not be removed again: {e}");
                    }
                }
                Ok(())
            })
            .await;
            Err(e)
        }
    }
}

#[tauri::command]
pub async fn test_upstream(state: AppStateRef<'_>, name: String) -> AppResult<UpstreamTest> {
    let engine = state.service()?.engine();
    // A pinned selection leaves the others out of the engine's pool: test
    // them from the config.
    if !engine.upstreams().iter().any(|u| u.name == name) {
        let config = state.engine_config().await?;
        let spec = config
            .upstreams
            .into_iter()
            .find(|u| u.name == name)
            .ok_or_else(|| AppError::invalid(format!("No upstream is named {name:?}.")))?;
        let probe = veil_engine::upstream::probe(
            spec,
            config.health.check_url.as_deref(),
            &config.dns_servers,
            config.limits.connect_timeout,
        )
        .await;
        return Ok(test_result(name, probe));
    }
    Ok(test_result(name.clone(), engine.test_upstream(&name).await))
}

fn test_result(name: String, result: Result<std::time::Duration, String>) -> UpstreamTest {
    match result {
        Ok(latency) => UpstreamTest {
            name,
            latency_ms: Some(latency.as_millis() as u64),
            error: None,
        },
        Err(error) => UpstreamTest {
            name,
            latency_ms: None,
            error: Some(error),
        },
    }
}

#[tauri::command]
pub async fn cache_clear(state: AppStateRef<'_>) -> AppResult<CacheStats> {
    state.cache_clear().await
}

#[tauri::command]
pub async fn get_settings<R: Runtime>(
    app: AppHandle<R>,
    state: AppStateRef<'_>,
) -> AppResult<Settings> {
    let keep_running = crate::window::keeps_running(&state, tray_shown(&app)).unwrap_or(false);
    let autostart = app.autolaunch().is_enabled().unwrap_or(false);
    Ok(Settings::of(&state.config()?, autostart, keep_running))
}

/// Checks and writes the settings (`veil_system::settings_edit`), then the
/// engine takes them: in place, or as a new engine when the listener or
/// the cache's size changed. When it cannot, the file goes back and the
/// running engine is left as it was.
#[tauri::command]
pub async fn save_settings<R: Runtime>(
    app: AppHandle<R>,
    state: AppStateRef<'_>,
    settings: Settings,
) -> AppResult<SettingsSaved> {
    let service = state.service()?.clone();
    let path = state.config_path.clone();
    let wanted = settings.clone();
    let written = blocking(move || Ok(settings_edit::write(&path, &wanted)?)).await?;
    let (before, after) = (&written.before, &written.after);
    let undo = |e: AppError| -> AppError {
        if let Err(io) = written.undo.undo() {
            tracing::error!("config.toml could not be put back: {io}");
        }
        e
    };

    let autostart = app.autolaunch();
    let autostart_result = if settings.autostart {
        autostart.enable()
    } else {
        autostart.disable()
    };
    if let Err(e) = autostart_result {
        tracing::warn!("autostart not changed: {e}");
    }

    // Sharing across routes is switched in place; the other cache settings
    // size the tiers, which takes a new engine.
    let cache_resized = {
        let mut cache = after.cache.clone();
        cache.share_across_routes = before.cache.share_across_routes;
        cache != before.cache
    };
    let restart = after.proxy.listen != before.proxy.listen || cache_resized;
    let mut notice = None;
    if restart {
        let new = state.engine_config().await.map_err(undo)?;
        let previous = state.engine_config_of(before.clone()).await?;
        if let Err(e) = service.restart_engine(new, previous).await {
            let message = format!(
                "Veil could not listen on {}: {e}. It still listens on {}; nothing was changed.",
                after.proxy.listen,
                service.engine().local_addr()
            );
            // The previous engine runs again: give it the chosen route, and
            // say so loudly if even that fails (never a silent direct).
            let undone = undo(AppError::new(ErrorKind::Engine, message));
            if let Err(e) = state.reload_upstreams().await {
                service.raise_alert(
                    "The route could not be restored",
                    format!("after a failed restart: {e}"),
                );
                crate::notify_changed(&app);
            }
            return Err(undone);
        }
        if let Err(e) = state.reload_upstreams().await {
            service.raise_alert(
                "The route could not be applied after the restart",
                e.to_string(),
            );
        }
        notice = Some(format!(
            "Veil restarted and listens on {}.",
            service.engine().local_addr()
        ));
    }
    service
        .apply_settings(before, after, restart)
        .await
        .map_err(|e| undo(e.into()))?;
    crate::notify_changed(&app);
    crate::recheck_ip(&app);
    Ok(SettingsSaved {
        settings: get_settings(app.clone(), state).await?,
        notice,
    })
}

/// Compares the public IP seen directly and through Veil's listener; the
/// result also goes to the tray and to every window (`veil://ip`).
#[tauri::command]
pub async fn check_ip<R: Runtime>(
    app: AppHandle<R>,
    state: AppStateRef<'_>,
) -> AppResult<IpReport> {
    let report = state.check_ip().await?;
    crate::ip_checked(&app, &report);
    Ok(report)
}

fn history(state: &AppState) -> AppResult<Arc<History>> {
    let history = state.service()?.history().cloned();
    if history.as_ref().is_some_and(|h| h.is_off()) {
        return Err(AppError::new(
            ErrorKind::Invalid,
            "The traffic history is off: nothing is recorded (Settings: keep traffic history \
             0 days). Set a number of days to turn it on.",
        ));
    }
    history.ok_or_else(|| {
        AppError::new(
            ErrorKind::Io,
            "The traffic history is off: its database could not be opened (see the log).",
        )
    })
}

#[tauri::command]
pub async fn get_history(state: AppStateRef<'_>, range: HistoryRange) -> AppResult<HistoryReport> {
    let history = history(&state)?;
    blocking(move || {
        history
            .query(range)
            .map_err(|e| AppError::new(ErrorKind::Io, e.to_string()))
    })
    .await
}

/// Writes the history of `range` as CSV into the user's Downloads folder
/// (the home folder when there is none) and says where.
#[tauri::command]
pub async fn export_history_csv(state: AppStateRef<'_>, range: HistoryRange) -> AppResult<String> {
    let history = history(&state)?;
    let dir = directories::UserDirs::new()
        .and_then(|d| d.download_dir().map(Path::to_path_buf))
        .or_else(|| directories::UserDirs::new().map(|d| d.home_dir().to_path_buf()))
        .ok_or_else(|| AppError::new(ErrorKind::Io, "No Downloads or home folder was found."))?;
    let stamp = veil_system::history::iso_utc(history.now_ms() / 1000).replace(':', "-");
    let path = dir.join(format!("veil-traffic-{range}-{stamp}.csv"));
    let target = path.clone();
    blocking(move || {
        std::fs::create_dir_all(target.parent().unwrap_or(Path::new(".")))?;
        // Which hosts were visited is private: only the user may read it.
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = std::io::BufWriter::new(options.open(&target)?);
        history
            .export_csv(range, file)
            .map_err(|e| AppError::new(ErrorKind::Io, e.to_string()))?;
        Ok(())
    })
    .await?;
    Ok(path.display().to_string())
}

/// Which apps on this machine go through Veil, bypass it or use UDP, and
/// what a full-system VPN would capture.
#[tauri::command]
pub async fn scan_coverage(state: AppStateRef<'_>) -> AppResult<CoverageReport> {
    let listen = state.service()?.engine().local_addr();
    blocking(move || {
        veil_system::coverage::scan(listen).map_err(|e| {
            AppError::new(
                ErrorKind::Io,
                format!("The socket table could not be read: {e}"),
            )
        })
    })
    .await
}

/// The leak checks: apps that resolved names themselves, Veil's own lookups
/// for upstream traffic, the OS's resolvers, IPv6, leftover proxy
/// variables, browser settings and UDP, as this app's session sees them.
#[tauri::command]
pub async fn check_leaks(state: AppStateRef<'_>) -> AppResult<LeakReport> {
    let engine = state.service()?.engine().stats();
    let exit_ip = state.last_ip().and_then(|r| r.via_proxy.ip);
    blocking(move || {
        let coverage = veil_system::coverage::scan(engine.listen).ok();
        Ok(veil_system::leaks::run(
            &veil_system::leaks::LeakInputs::system(Some(engine), coverage, exit_ip),
        ))
    })
    .await
}

/// The kill switch (`proxy.fallback_direct`): whether a connection that no
/// upstream can carry may go direct. Off by default.
#[tauri::command]
pub async fn get_fallback_direct(state: AppStateRef<'_>) -> AppResult<bool> {
    Ok(state.config()?.proxy.fallback_direct)
}

/// Saves the kill switch and applies it to the running engine at once.
#[tauri::command]
pub async fn set_fallback_direct<R: Runtime>(
    app: AppHandle<R>,
    state: AppStateRef<'_>,
    allowed: bool,
) -> AppResult<bool> {
    // The engine first: attached to another Veil, or without an engine,
    // the change is refused (with the reason) instead of saved for a start
    // that may never come while the running engine keeps the old switch.
    let service = state.service()?;
    let mut file = ConfigFile::open(&state.config_path)?;
    file.set("proxy", "fallback_direct", allowed)?;
    file.save()?;
    service.engine().set_fallback_direct(allowed);
    crate::notify_changed(&app);
    Ok(allowed)
}

fn tray_shown<R: Runtime>(app: &AppHandle<R>) -> bool {
    app.try_state::<crate::window::WindowMemory>()
        .is_some_and(|m| m.tray())
}

/// The answer to "keep running without a tray icon?" (asked on the first
/// close where the desktop shows none), saved as `[app] keep_running`,
/// then carried out: the window goes, or the app quits.
#[tauri::command]
pub async fn answer_close<R: Runtime>(
    app: AppHandle<R>,
    state: AppStateRef<'_>,
    keep_running: bool,
) -> AppResult<()> {
    let mut file = ConfigFile::open(&state.config_path)?;
    file.set("app", "keep_running", keep_running)?;
    file.save()?;
    if app.try_state::<crate::window::WindowMemory>().is_some() {
        crate::window::answered(&app, keep_running);
    }
    Ok(())
}

/// Quits the app from the window (the tray has its own item): the system
/// proxy settings are put back on the way out.
#[tauri::command]
pub fn quit_app<R: Runtime>(app: AppHandle<R>) {
    app.exit(0);
}

/// Closes open client connections (the given ids, or every one): the
/// engine ends their tunnels and requests; returns how many it closed.
#[tauri::command]
pub async fn close_connections(state: AppStateRef<'_>, ids: Option<Vec<u64>>) -> AppResult<usize> {
    state.close_connections(ids.as_deref()).await
}

/// The exit addresses (IPv4 and IPv6) of one upstream, checked through it
/// alone; kept and shown with the upstream list.
#[tauri::command]
pub async fn check_exit_ip(
    state: AppStateRef<'_>,
    name: String,
) -> AppResult<veil_system::ipcheck::ExitIp> {
    state.check_exit_ip(&name).await
}

/// One command the window process sent over the window socket (the window
/// runs in a process of its own): the same functions the invoke handler
/// calls, with the arguments by the names the page gives them (camelCase,
/// as Tauri passes them). `Err` is what the page's promise rejects with.
/// `tests.rs` checks that every command in build.rs has its arm here.
pub async fn dispatch<R: Runtime>(
    app: &AppHandle<R>,
    command: &str,
    args: &serde_json::Value,
) -> Result<serde_json::Value, serde_json::Value> {
    let a = app.clone();
    let s = || app.state::<Arc<AppState>>();
    match command {
        "get_status" => answer(get_status(s()).await),
        "dismiss_alerts" => answer(dismiss_alerts(a, s()).await),
        "set_system_proxy" => answer(set_system_proxy(a, s(), arg(args, "on")?).await),
        "system_proxy_settings" => answer(system_proxy_settings(s()).await),
        "answer_drift" => answer(answer_drift(a, s(), arg(args, "choice")?).await),
        "set_selection" => answer(set_selection(a, s(), arg(args, "selection")?).await),
        "set_strategy" => answer(set_strategy(a, s(), arg(args, "strategy")?).await),
        "list_upstreams" => answer(list_upstreams(s()).await),
        "save_upstream" => answer(save_upstream(a, s(), arg(args, "upstream")?).await),
        "remove_upstream" => answer(remove_upstream(a, s(), arg(args, "name")?).await),
        "test_upstream" => answer(test_upstream(s(), arg(args, "name")?).await),
        "import_upstreams" => answer(import_upstreams(a, s(), arg(args, "text")?).await),
        "cache_clear" => answer(cache_clear(s()).await),
        "get_settings" => answer(get_settings(a, s()).await),
        "save_settings" => answer(save_settings(a, s(), arg(args, "settings")?).await),
        "check_ip" => answer(check_ip(a, s()).await),
        "scan_coverage" => answer(scan_coverage(s()).await),
        "check_leaks" => answer(check_leaks(s()).await),
        "get_history" => answer(get_history(s(), arg(args, "range")?).await),
        "export_history_csv" => answer(export_history_csv(s(), arg(args, "range")?).await),
        "get_fallback_direct" => answer(get_fallback_direct(s()).await),
        "set_fallback_direct" => answer(set_fallback_direct(a, s(), arg(args, "allowed")?).await),
        "answer_close" => answer(answer_close(a, s(), arg(args, "keepRunning")?).await),
        "quit_app" => {
            quit_app(a);
            Ok(serde_json::Value::Null)
        }
        "close_connections" => answer(close_connections(s(), arg(args, "ids")?).await),
        "check_exit_ip" => answer(check_exit_ip(s(), arg(args, "name")?).await),
        other => Err(AppError::invalid(format!(
            "the window asked for `{other}`, which is not a Veil command"
        ))
        .to_json()),
    }
}

/// The argument `name` of a forwarded command; a missing one reads as
/// `null` (an `Option` takes it, anything else is refused).
fn arg<T: serde::de::DeserializeOwned>(
    args: &serde_json::Value,
    name: &str,
) -> Result<T, serde_json::Value> {
    let value = args.get(name).cloned().unwrap_or(serde_json::Value::Null);
    serde_json::from_value(value)
        .map_err(|e| AppError::invalid(format!("the window sent a bad `{name}`: {e}")).to_json())
}

fn answer<T: Serialize>(result: AppResult<T>) -> Result<serde_json::Value, serde_json::Value> {
    match result {
        Ok(value) => serde_json::to_value(value)
            .map_err(|e| AppError::new(ErrorKind::Io, e.to_string()).to_json()),
        Err(e) => Err(e.to_json()),
    }
}
