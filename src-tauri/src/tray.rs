//! The tray icon and its menu. Linux trays send no click events, so every
//! control is a menu item: the system-proxy check item, the upstream choice
//! (check items used as radio items: exactly one is checked), "Test all
//! upstreams" with the results, a disabled line with the state, "Close all
//! connections", "Copy shell exports", "Open Veil" and "Quit". The icon's
//! shape says on, off, drifted or upstream down (readable without colour);
//! the tooltip carries the current rate as text.

use std::sync::{Arc, Mutex};

use tauri::image::Image;
use tauri::menu::{CheckMenuItem, Menu, MenuEvent, MenuItem, PredefinedMenuItem, Submenu};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager, Runtime};

use veil_system::ipcheck::IpVerdict;
use veil_system::service::DriftChoice;

use crate::error::{AppError, AppResult, ErrorKind};
use crate::i18n::Locale;
use crate::state::{AppState, Selection};

const TRAY_ID: &str = "veil";

/// What the icon shows, from the read-back state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look {
    /// The system proxy is Veil's and traffic can flow.
    On,
    Off,
    /// The OS setting no longer points at Veil (another program, a network
    /// change).
    Drifted,
    /// The route is upstreams and none of them is up: requests fail.
    Down,
}

/// The tray icon for `look`. On macOS it is a template image (black and
/// alpha, tinted by the menu bar); everywhere the state shows in the shape:
/// arcs (on), a bare shield (off), "!" (drifted), "x" (down).
#[cfg(target_os = "macos")]
fn icon(look: Look) -> tauri::Result<Image<'static>> {
    Image::from_bytes(match look {
        Look::On => include_bytes!("../../icons/tray-template-on@2x.png").as_slice(),
        Look::Off => include_bytes!("../../icons/tray-template-off@2x.png"),
        Look::Drifted => include_bytes!("../../icons/tray-template-drifted@2x.png"),
        Look::Down => include_bytes!("../../icons/tray-template-down@2x.png"),
    })
}

#[cfg(not(target_os = "macos"))]
fn icon(look: Look) -> tauri::Result<Image<'static>> {
    Image::from_bytes(match look {
        Look::On => include_bytes!("../../icons/tray-on@2x.png").as_slice(),
        Look::Off => include_bytes!("../../icons/tray-off@2x.png"),
        Look::Drifted => include_bytes!("../../icons/tray-drifted@2x.png"),
        Look::Down => include_bytes!("../../icons/tray-down@2x.png"),
    })
}

/// What the tray keeps between updates: the last "Test all upstreams"
/// (running, or its results as menu lines), and the language and tooltip
/// last shown, so the once-a-second rate neither reads `config.toml` nor
/// sets an unchanged tooltip.
#[derive(Default)]
pub struct TrayMemory {
    tests: Mutex<Tests>,
    words: Mutex<Locale>,
    tooltip: Mutex<String>,
}

#[derive(Default)]
struct Tests {
    running: bool,
    lines: Vec<String>,
}

pub fn create<R: Runtime>(app: &AppHandle<R>) -> tauri::Result<()> {
    app.manage(TrayMemory::default());
    let state = app.state::<Arc<AppState>>();
    TrayIconBuilder::with_id(TRAY_ID)
        .icon(icon(look(&state))?)
        .icon_as_template(cfg!(target_os = "macos"))
        .tooltip("Veil")
        .menu(&menu(app, &state)?)
        .show_menu_on_left_click(true)
        .on_menu_event(on_menu_event)
        .build(app)?;
    Ok(())
}

/// Rebuilds the menu and icon from the state (after any change).
pub fn refresh<R: Runtime>(app: &AppHandle<R>) {
    let Some(tray) = app.tray_by_id(TRAY_ID) else {
        return;
    };
    let state = app.state::<Arc<AppState>>();
    let result = menu(app, &state)
        .and_then(|menu| tray.set_menu(Some(menu)))
        .and_then(|()| tray.set_icon(Some(icon(look(&state))?)))
        .and_then(|()| tray.set_icon_as_template(cfg!(target_os = "macos")));
    if let Err(e) = result {
        tracing::warn!("tray not updated: {e}");
    }
}

/// The current rate as the tooltip's text (no redrawn icon: it flickers).
pub fn show_rate<R: Runtime>(app: &AppHandle<R>, state: &AppState) {
    let Some(tray) = app.tray_by_id(TRAY_ID) else {
        return;
    };
    let memory = app.state::<TrayMemory>();
    let words = *memory.words.lock().unwrap_or_else(|e| e.into_inner());
    let text = match state.stats().and_then(|s| s.rates.last().cloned()) {
        Some(rate) => words.text(
            "tray.tooltip",
            &[
                ("down", &veil_system::units::bytes(rate.down_bps)),
                ("up", &veil_system::units::bytes(rate.up_bps)),
            ],
        ),
        None => words.text("tray.tooltip_off", &[]),
    };
    let mut shown = memory.tooltip.lock().unwrap_or_else(|e| e.into_inner());
    if *shown == text {
        return;
    }
    match tray.set_tooltip(Some(text.as_str())) {
        Ok(()) => *shown = text,
        Err(e) => tracing::debug!("tray tooltip not updated: {e}"),
    }
}

/// The icon says "on" only while the OS setting reads back as Veil's: a
/// drift (another program, a network change) shows at once.
pub fn look(state: &AppState) -> Look {
    if state.system_proxy_drift().is_some() {
        return Look::Drifted;
    }
    let all_down = state.selection() != Selection::Direct
        && state
            .stats()
            .is_some_and(|s| !s.upstreams.is_empty() && s.upstreams.iter().all(|u| !u.healthy));
    match (state.system_proxy_on(), all_down) {
        (_, true) => Look::Down,
        (true, false) => Look::On,
        (false, false) => Look::Off,
    }
}

/// The disabled line: the masked IP once checked, else where traffic goes.
pub fn state_line(state: &AppState) -> String {
    let words = locale(state);
    let Some(stats) = state.stats() else {
        return words.text("tray.not_running", &[]);
    };
    if let Some(ip) = state.last_ip() {
        return match (ip.verdict, ip.via_proxy.ip) {
            (IpVerdict::Masked, Some(addr)) => {
                words.text("tray.masked", &[("addr", &addr.to_string())])
            }
            (IpVerdict::NotMasked, Some(addr)) => {
                words.text("tray.not_masked", &[("addr", &addr.to_string())])
            }
            _ => words.text("tray.ip_unknown", &[]),
        };
    }
    let route = match state.selection() {
        Selection::Direct => words.text("tray.route_direct", &[]),
        Selection::Pool => words.text(
            "tray.route_pool",
            &[("strategy", &strategy_name(words, stats.strategy))],
        ),
        Selection::One { name } => words.text("tray.route_via", &[("name", &name)]),
    };
    let listen = stats.listen.to_string();
    match state.attached() {
        Some(attached) => words.text(
            "tray.state_line_attached",
            &[
                ("listen", &listen),
                ("route", &route),
                ("pid", &attached.pid().to_string()),
            ],
        ),
        None => words.text("tray.state_line", &[("listen", &listen), ("route", &route)]),
    }
}

/// The tray's language: the setting, or the OS's.
fn locale(state: &AppState) -> Locale {
    Locale::of(state.config().map(|c| c.app.language).unwrap_or_default())
}

fn strategy_name(words: Locale, strategy: veil_engine::Strategy) -> String {
    words.text(&format!("tray.strategy_{strategy}"), &[])
}

fn menu<R: Runtime>(app: &AppHandle<R>, state: &AppState) -> tauri::Result<Menu<R>> {
    // Read once per change (a saved language reaches the tooltip here too).
    let words = locale(state);
    *app.state::<TrayMemory>()
        .words
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = words;
    let on = state.system_proxy_on();
    let sysproxy = CheckMenuItem::with_id(
        app,
        "sysproxy",
        words.text("tray.system_proxy", &[]),
        state.engine_running(),
        on,
        None::<&str>,
    )?;

    let selection = state.selection();
    let servers = state
        .config()
        .map(|c| (c.upstreams.server, c.upstreams.strategy))
        .unwrap_or_default();
    let mut choices = vec![CheckMenuItem::with_id(
        app,
        "sel:direct",
        words.text("tray.direct_item", &[]),
        true,
        selection == Selection::Direct,
        None::<&str>,
    )?];
    if servers.0.len() > 1 {
        choices.push(CheckMenuItem::with_id(
            app,
            "sel:pool",
            words.text(
                "tray.pool_item",
                &[("strategy", &strategy_name(words, servers.1))],
            ),
            true,
            selection == Selection::Pool,
            None::<&str>,
        )?);
    }
    for server in &servers.0 {
        let chosen = match &selection {
            Selection::One { name } => *name == server.name,
            // With one upstream there is no "all" item: the pool is it.
            Selection::Pool => servers.0.len() == 1,
            Selection::Direct => false,
        };
        choices.push(CheckMenuItem::with_id(
            app,
            format!("sel:one:{}", server.name),
            &server.name,
            true,
            chosen,
            None::<&str>,
        )?);
    }
    let choice_refs: Vec<&dyn tauri::menu::IsMenuItem<R>> = choices
        .iter()
        .map(|c| c as &dyn tauri::menu::IsMenuItem<R>)
        .collect();
    let upstream = Submenu::with_id_and_items(
        app,
        "upstream",
        words.text("tray.upstream", &[]),
        true,
        &choice_refs,
    )?;

    let line = MenuItem::with_id(app, "state", state_line(state), false, None::<&str>)?;
    // The newest alert, so a change Veil made on its own is seen here too.
    let alert = state
        .alerts()
        .pop()
        .map(|a| words.text("tray.alert", &[("what", &a.what)]));
    let alert = alert
        .map(|text| MenuItem::with_id(app, "alert", text, false, None::<&str>))
        .transpose()?;
    // A drift asks the same question as the notification.
    let drift = state.service().ok().and_then(|s| s.system_proxy_drift());
    let drift_items = match &drift {
        Some(d) => vec![
            MenuItem::with_id(
                app,
                "drift",
                words.text("tray.drift", &[("headline", d.headline())]),
                false,
                None::<&str>,
            )?,
            MenuItem::with_id(
                app,
                "drift:reapply",
                words.text("tray.drift_reapply", &[]),
                true,
                None::<&str>,
            )?,
            MenuItem::with_id(
                app,
                "drift:leave",
                words.text("tray.drift_leave", &[]),
                true,
                None::<&str>,
            )?,
        ],
        None => Vec::new(),
    };
    let tests = test_menu(app, words, !servers.0.is_empty())?;
    let close_all = MenuItem::with_id(
        app,
        "close-all",
        words.text("tray.close_all", &[]),
        state.engine_running(),
        None::<&str>,
    )?;
    let exports = MenuItem::with_id(
        app,
        "copy-env",
        words.text("tray.copy_exports", &[]),
        state.engine_running(),
        None::<&str>,
    )?;
    let open = MenuItem::with_id(
        app,
        "open",
        words.text("tray.open", &[]),
        true,
        None::<&str>,
    )?;
    let quit = MenuItem::with_id(
        app,
        "quit",
        words.text("tray.quit", &[]),
        true,
        None::<&str>,
    )?;
    let separator = PredefinedMenuItem::separator(app)?;
    let mut items: Vec<&dyn tauri::menu::IsMenuItem<R>> = vec![&sysproxy, &upstream, &tests, &line];
    if let Some(alert) = &alert {
        items.push(alert);
    }
    items.extend(
        drift_items
            .iter()
            .map(|i| i as &dyn tauri::menu::IsMenuItem<R>),
    );
    items.extend([
        &separator as &dyn tauri::menu::IsMenuItem<R>,
        &close_all,
        &exports,
        &open,
        &quit,
    ]);
    Menu::with_items(app, &items)
}

/// "Test all upstreams": the button (or "Testing…"), then the last results.
fn test_menu<R: Runtime>(
    app: &AppHandle<R>,
    words: Locale,
    any: bool,
) -> tauri::Result<Submenu<R>> {
    let memory = app.state::<TrayMemory>();
    let tests = memory.tests.lock().unwrap_or_else(|e| e.into_inner());
    let start = if tests.running {
        MenuItem::with_id(
            app,
            "test-all",
            words.text("tray.testing", &[]),
            false,
            None::<&str>,
        )?
    } else {
        MenuItem::with_id(
            app,
            "test-all",
            words.text("tray.test_now", &[]),
            any,
            None::<&str>,
        )?
    };
    let lines = tests
        .lines
        .iter()
        .enumerate()
        .map(|(i, line)| MenuItem::with_id(app, format!("tested:{i}"), line, false, None::<&str>))
        .collect::<tauri::Result<Vec<_>>>()?;
    let mut items: Vec<&dyn tauri::menu::IsMenuItem<R>> = vec![&start];
    items.extend(lines.iter().map(|l| l as &dyn tauri::menu::IsMenuItem<R>));
    Submenu::with_id_and_items(app, "tests", words.text("tray.test_all", &[]), any, &items)
}

/// Runs "Test all upstreams" and puts the results in the submenu.
async fn test_all<R: Runtime>(app: &AppHandle<R>, state: &AppState) -> AppResult<()> {
    {
        let memory = app.state::<TrayMemory>();
        let mut tests = memory.tests.lock().unwrap_or_else(|e| e.into_inner());
        if tests.running {
            return Ok(());
        }
        tests.running = true;
    }
    refresh(app);
    let results = match state.engine_config().await {
        Ok(engine) => Ok(veil_system::upstream_test::all(&engine, None).await),
        Err(e) => Err(e),
    };
    let memory = app.state::<TrayMemory>();
    let mut tests = memory.tests.lock().unwrap_or_else(|e| e.into_inner());
    tests.running = false;
    let results = results?;
    let words = locale(state);
    tests.lines = results
        .iter()
        .map(|t| match &t.result {
            Ok(latency) => words.text(
                "tray.test_ok",
                &[("name", &t.name), ("ms", &latency.as_millis().to_string())],
            ),
            Err(reason) => words.text("tray.test_failed", &[("name", &t.name), ("reason", reason)]),
        })
        .collect();
    Ok(())
}

/// `veil env` for the user's shell, on the clipboard.
fn copy_exports<R: Runtime>(app: &AppHandle<R>, state: &AppState) -> AppResult<()> {
    use tauri_plugin_clipboard_manager::ClipboardExt;
    let config = state.config()?;
    let listen = state
        .stats()
        .map(|s| s.listen)
        .unwrap_or(config.proxy.listen);
    let user = config.proxy.auth.as_ref().map(|a| a.username.as_str());
    let vars = veil_system::env::ProxyVars::new(listen, &config.proxy.bypass, user);
    let text = vars.render(veil_system::env::Shell::detect());
    app.clipboard().write_text(text).map_err(|e| {
        let words = locale(state);
        AppError::new(
            ErrorKind::Io,
            words.text("tray.clipboard_refused", &[("error", &e.to_string())]),
        )
    })
}

fn on_menu_event<R: Runtime>(app: &AppHandle<R>, event: MenuEvent) {
    let id = event.id().as_ref().to_owned();
    let app = app.clone();
    match id.as_str() {
        "open" => crate::window::open(&app),
        "quit" => app.exit(0),
        _ => {
            tauri::async_runtime::spawn(async move {
                let state = app.state::<Arc<AppState>>().inner().clone();
                let result = match id.as_str() {
                    "sysproxy" => {
                        let on = !state.system_proxy_on();
                        state.set_system_proxy(on).await.map(drop)
                    }
                    "drift:reapply" | "drift:leave" => match state.service() {
                        Ok(service) => {
                            let choice = if id == "drift:leave" {
                                DriftChoice::Leave
                            } else {
                                DriftChoice::Reapply
                            };
                            service.answer_drift(choice).await;
                            Ok(())
                        }
                        Err(e) => Err(e),
                    },
                    "test-all" => test_all(&app, &state).await,
                    "close-all" => state.close_connections(None).await.map(|n| {
                        tracing::info!("tray: closed {n} connections");
                    }),
                    "copy-env" => copy_exports(&app, &state),
                    "sel:direct" => state.select(Selection::Direct).await,
                    "sel:pool" => state.select(Selection::Pool).await,
                    other => match other.strip_prefix("sel:one:") {
                        Some(name) => {
                            state
                                .select(Selection::One {
                                    name: name.to_owned(),
                                })
                                .await
                        }
                        None => Ok(()),
                    },
                };
                match result {
                    Ok(()) if id.starts_with("sel:") => crate::recheck_ip(&app),
                    Ok(()) => {}
                    Err(e) => tracing::warn!("tray: {e}"),
                }
                // Also undoes the check mark the menu toggled by itself when
                // the change failed.
                crate::notify_changed(&app);
            });
        }
    }
}
