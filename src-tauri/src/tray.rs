//! The tray icon and its menu. Linux trays send no click events, so every
//! control is a menu item: the system-proxy check item, the upstream choice
//! (check items used as radio items: exactly one is checked), a disabled
//! line with the state, "Open Veil" and "Quit". The icon shows on and off.

use std::sync::Arc;

use tauri::image::Image;
use tauri::menu::{CheckMenuItem, Menu, MenuEvent, MenuItem, PredefinedMenuItem, Submenu};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager, Runtime};

use veil_system::ipcheck::IpVerdict;
use veil_system::service::DriftChoice;

use crate::state::{AppState, Selection};

const TRAY_ID: &str = "veil";

/// The tray icon for the state. On macOS it is a template image (black and
/// alpha, tinted by the menu bar), so on and off differ in shape, not colour.
#[cfg(target_os = "macos")]
fn icon(on: bool) -> tauri::Result<Image<'static>> {
    if on {
        Image::from_bytes(include_bytes!("../../icons/tray-template-on@2x.png"))
    } else {
        Image::from_bytes(include_bytes!("../../icons/tray-template-off@2x.png"))
    }
}

#[cfg(not(target_os = "macos"))]
fn icon(on: bool) -> tauri::Result<Image<'static>> {
    if on {
        Image::from_bytes(include_bytes!("../../icons/tray-on@2x.png"))
    } else {
        Image::from_bytes(include_bytes!("../../icons/tray-off@2x.png"))
    }
}

pub fn create<R: Runtime>(app: &AppHandle<R>) -> tauri::Result<()> {
    let state = app.state::<Arc<AppState>>();
    let on = in_effect(&state);
    TrayIconBuilder::with_id(TRAY_ID)
        .icon(icon(on)?)
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
    let on = in_effect(&state);
    let result = menu(app, &state)
        .and_then(|menu| tray.set_menu(Some(menu)))
        .and_then(|()| tray.set_icon(Some(icon(on)?)))
        .and_then(|()| tray.set_icon_as_template(cfg!(target_os = "macos")));
    if let Err(e) = result {
        tracing::warn!("tray not updated: {e}");
    }
}

/// The icon shows "on" only while the OS setting reads back as Veil's: a
/// drift (another program, a network change) shows as off at once.
fn in_effect(state: &AppState) -> bool {
    state.system_proxy_on() && state.system_proxy_drift().is_none()
}

/// The disabled line: the masked IP once checked, else where traffic goes.
pub fn state_line(state: &AppState) -> String {
    let Some(stats) = state.stats() else {
        return "Proxy not running".to_owned();
    };
    if let Some(ip) = state.last_ip() {
        return match (ip.verdict, ip.via_proxy.ip) {
            (IpVerdict::Masked, Some(addr)) => format!("Masked: the world sees {addr}"),
            (IpVerdict::NotMasked, Some(addr)) => format!("NOT masked: the world sees {addr}"),
            _ => "Public IP unknown".to_owned(),
        };
    }
    let route = match state.selection() {
        Selection::Direct => "direct".to_owned(),
        Selection::Pool => format!("all upstreams ({})", stats.strategy),
        Selection::One { name } => format!("via {name}"),
    };
    match state.attached() {
        Some(attached) => format!(
            "{} · {route} · veil run pid {}",
            stats.listen,
            attached.pid()
        ),
        None => format!("{} · {route}", stats.listen),
    }
}

fn menu<R: Runtime>(app: &AppHandle<R>, state: &AppState) -> tauri::Result<Menu<R>> {
    let on = state.system_proxy_on();
    let sysproxy = CheckMenuItem::with_id(
        app,
        "sysproxy",
        "System proxy",
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
        "Direct (no upstream)",
        true,
        selection == Selection::Direct,
        None::<&str>,
    )?];
    if servers.0.len() > 1 {
        choices.push(CheckMenuItem::with_id(
            app,
            "sel:pool",
            format!("All upstreams ({})", servers.1),
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
    let upstream = Submenu::with_id_and_items(app, "upstream", "Upstream", true, &choice_refs)?;

    let line = MenuItem::with_id(app, "state", state_line(state), false, None::<&str>)?;
    // The newest alert, so a change Veil made on its own is seen here too.
    let alert = state
        .alerts()
        .pop()
        .map(|a| format!("⚠ {} (open Veil for why)", a.what));
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
                format!("⚠ {}", d.headline()),
                false,
                None::<&str>,
            )?,
            MenuItem::with_id(
                app,
                "drift:reapply",
                "Re-apply Veil's proxy setting",
                true,
                None::<&str>,
            )?,
            MenuItem::with_id(
                app,
                "drift:leave",
                "Leave the new setting",
                true,
                None::<&str>,
            )?,
        ],
        None => Vec::new(),
    };
    let open = MenuItem::with_id(app, "open", "Open Veil", true, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", "Quit Veil", true, None::<&str>)?;
    let separator = PredefinedMenuItem::separator(app)?;
    let mut items: Vec<&dyn tauri::menu::IsMenuItem<R>> = vec![&sysproxy, &upstream, &line];
    if let Some(alert) = &alert {
        items.push(alert);
    }
    items.extend(
        drift_items
            .iter()
            .map(|i| i as &dyn tauri::menu::IsMenuItem<R>),
    );
    items.extend([&separator as &dyn tauri::menu::IsMenuItem<R>, &open, &quit]);
    Menu::with_items(app, &items)
}

fn on_menu_event<R: Runtime>(app: &AppHandle<R>, event: MenuEvent) {
    let id = event.id().as_ref().to_owned();
    let app = app.clone();
    match id.as_str() {
        "open" => crate::show_window(&app),
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
