//! The window comes and goes while the app stays. Closing it destroys the
//! WebView, so no WebKit process is left running in the tray; "Open Veil"
//! in the tray or a second launch builds it again on the page it showed.
//! Where the desktop shows no tray icon, the first close asks whether to
//! keep running (an invisible app is worse than a question).

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tauri::{AppHandle, Emitter, Manager, Runtime, WebviewUrl, WebviewWindowBuilder, Window};

use crate::state::AppState;

/// The one window's label.
pub const MAIN: &str = "main";

/// What outlives the window.
#[derive(Default)]
pub struct WindowMemory {
    /// The page shown when the window closed (its URL's fragment).
    page: Mutex<Option<String>>,
    /// When "Open Veil" asked for a new window, to log how long it took.
    opened_at: Mutex<Option<Instant>>,
    /// A tray icon is shown (created, and the desktop draws it).
    tray: AtomicBool,
    /// The keep-running question is on screen.
    asking: AtomicBool,
}

impl WindowMemory {
    pub fn set_tray(&self, shown: bool) {
        self.tray.store(shown, Ordering::Relaxed);
    }

    pub fn tray(&self) -> bool {
        self.tray.load(Ordering::Relaxed)
    }

    /// How long the last "Open Veil" took to show its page, once.
    pub fn take_opened_at(&self) -> Option<Instant> {
        self.opened_at.lock().ok().and_then(|mut o| o.take())
    }
}

/// Whether closing the window keeps the app: the user's answer, else yes
/// where a tray icon can bring the window back; `None` means ask.
pub fn keeps_running(state: &AppState, tray: bool) -> Option<bool> {
    let chosen = state.config().ok().and_then(|c| c.app.keep_running);
    chosen.or(tray.then_some(true))
}

/// Shows the window, building it (and its WebView) when there is none.
pub fn open<R: Runtime>(app: &AppHandle<R>) {
    if let Some(window) = app.get_webview_window(MAIN) {
        let _ = window.unminimize();
        let _ = window.show();
        let _ = window.set_focus();
        return;
    }
    let memory = app.state::<WindowMemory>();
    if let Ok(mut at) = memory.opened_at.lock() {
        *at = Some(Instant::now());
    }
    let page = memory
        .page
        .lock()
        .ok()
        .and_then(|p| p.clone())
        .unwrap_or_else(|| "overview".to_owned());
    let url = WebviewUrl::App(format!("index.html#/{page}").into());
    match WebviewWindowBuilder::new(app, MAIN, url)
        .title("Veil")
        .inner_size(1040.0, 720.0)
        .min_inner_size(800.0, 560.0)
        .center()
        .build()
    {
        Ok(window) => lighten_webview(&window),
        Err(e) => tracing::error!("cannot open the window: {e}"),
    }
}

/// The window's close button: keep running (the WebView goes), quit, or ask.
pub fn close_requested<R: Runtime>(window: &Window<R>, api: &tauri::CloseRequestApi) {
    if window.label() != MAIN {
        return;
    }
    let app = window.app_handle();
    remember_page(app);
    let memory = app.state::<WindowMemory>();
    let state = app.state::<Arc<AppState>>();
    match keeps_running(&state, memory.tray()) {
        // The window closes; `RunEvent::ExitRequested` keeps the app.
        Some(true) => tracing::info!("window closed; Veil keeps running in the tray"),
        Some(false) => {
            api.prevent_close();
            app.exit(0);
        }
        // A second close while the question is shown (or a window that
        // cannot show it) quits: the user clearly wants it gone.
        None if memory.asking.swap(true, Ordering::Relaxed) => {
            api.prevent_close();
            app.exit(0);
        }
        None => {
            api.prevent_close();
            let _ = window.emit(crate::event::CLOSE_ASKED, ());
        }
    }
}

/// Whether the app stays when its last window has closed.
pub fn stays_without_window<R: Runtime>(app: &AppHandle<R>) -> bool {
    let memory = app.state::<WindowMemory>();
    let Some(state) = app.try_state::<Arc<AppState>>() else {
        return false;
    };
    keeps_running(&state, memory.tray()) == Some(true)
}

/// The answer to the keep-running question: saved, then carried out.
pub fn answered<R: Runtime>(app: &AppHandle<R>, keep_running: bool) {
    app.state::<WindowMemory>()
        .asking
        .store(false, Ordering::Relaxed);
    if keep_running {
        remember_page(app);
        if let Some(window) = app.get_webview_window(MAIN)
            && let Err(e) = window.destroy()
        {
            tracing::warn!("window not closed: {e}");
        }
    } else {
        app.exit(0);
    }
}

fn remember_page<R: Runtime>(app: &AppHandle<R>) {
    let Some(window) = app.get_webview_window(MAIN) else {
        return;
    };
    let page = window.url().ok().and_then(|url| {
        let page = url.fragment()?.trim_start_matches('/').to_owned();
        (!page.is_empty() && page.bytes().all(|b| b.is_ascii_lowercase())).then_some(page)
    });
    if let (Some(page), Ok(mut kept)) = (page, app.state::<WindowMemory>().page.lock()) {
        *kept = Some(page);
    }
}

/// WebKitGTK composites pages on the GPU (or in software without one) by
/// default, which about doubles the web process's memory; this window is
/// tables and one chart, so it draws without it (`make app-metrics`: the
/// web process's PSS falls from about 230 to about 115 MiB under Xvfb).
#[cfg(target_os = "linux")]
fn lighten_webview<R: Runtime>(window: &tauri::WebviewWindow<R>) {
    let result = window.with_webview(|webview| {
        use webkit2gtk::{HardwareAccelerationPolicy, SettingsExt, WebViewExt};
        if let Some(settings) = WebViewExt::settings(&webview.inner()) {
            settings.set_hardware_acceleration_policy(HardwareAccelerationPolicy::Never);
        }
    });
    if let Err(e) = result {
        tracing::warn!("WebKit settings not changed: {e}");
    }
}

#[cfg(not(target_os = "linux"))]
fn lighten_webview<R: Runtime>(_window: &tauri::WebviewWindow<R>) {}
