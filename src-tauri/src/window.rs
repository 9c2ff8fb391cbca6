//! The window comes and goes while the app stays. Closing it destroys the
//! WebView, so no WebKit process is left running in the tray; "Open Veil"
//! in the tray or a second launch builds it again on the page it showed.
//! Where the desktop shows no tray icon, the first close asks whether to
//! keep running (an invisible app is worse than a question).

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
    /// When "Open Veil" asked for a new window, and on which page, to log
    /// how long it took.
    opened_at: Mutex<Option<(Instant, String)>>,
    /// A tray icon is shown (created, and the desktop draws it).
    tray: AtomicBool,
    /// The keep-running question is on screen.
    asking: AtomicBool,
    /// A window was asked for and has not been destroyed since: code must
    /// stay (see `go_light`).
    wanted: AtomicBool,
    /// Counts the windows built, so a timer set for one window does nothing
    /// to the next.
    generation: AtomicU64,
}

impl WindowMemory {
    pub fn set_tray(&self, shown: bool) {
        self.tray.store(shown, Ordering::Relaxed);
    }

    pub fn tray(&self) -> bool {
        self.tray.load(Ordering::Relaxed)
    }

    /// When the last "Open Veil" asked for the window, and its page; once.
    pub fn take_opened_at(&self) -> Option<(Instant, String)> {
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
    // Building a window runs much code that `go_light` let go of: read it
    // back in large pieces, and keep it while the window is there.
    memory.wanted.store(true, Ordering::SeqCst);
    memory.generation.fetch_add(1, Ordering::SeqCst);
    veil_engine::go_busy();
    // A page is remembered once a window has closed: this is a reopening.
    let remembered = memory.page.lock().ok().and_then(|p| p.clone());
    if let (Some(page), Ok(mut at)) = (&remembered, memory.opened_at.lock()) {
        *at = Some((Instant::now(), page.clone()));
    }
    let page = remembered.unwrap_or_else(|| "overview".to_owned());
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
            tracing::info!(
                "window closed where no tray icon shows: asking whether to keep running"
            );
            if let Err(e) = app.emit(crate::event::CLOSE_ASKED, ()) {
                tracing::warn!("the keep-running question was not sent: {e}");
            }
        }
    }
}

/// The window is gone: WebKit's web process ends with it, its network
/// process does not (it lives as long as the web context), so it is ended
/// too; the next window starts a new one.
pub fn destroyed<R: Runtime>(window: &Window<R>) {
    if window.label() != MAIN || !stays_without_window(window.app_handle()) {
        return;
    }
    let app = window.app_handle().clone();
    app.state::<WindowMemory>()
        .wanted
        .store(false, Ordering::SeqCst);
    tauri::async_runtime::spawn(async move {
        // After the web process has gone, which still talks to it.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        if app.get_webview_window(MAIN).is_none() {
            let ended = veil_system::children::end_children_named("WebKitNetwork");
            tracing::info!("window closed: {ended} WebKit helper process(es) ended");
            // What the window's toolkit side freed goes back to the system
            // (`make app-metrics`: the tray-only app after a close).
            let _ = tauri::async_runtime::spawn_blocking(veil_engine::release_free_memory).await;
            go_light_twice(&app).await;
        }
    });
}

/// How long after its page has loaded the window counts as settled.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(10);

/// The window's page has loaded. Building it ran much code that will not
/// run again while it stays open (the toolkit's and WebKit's set-up, the
/// app's start): once it has settled, those pages go back to the system,
/// as they do with no window, but faults still read ahead (the window is
/// in use). What the window keeps running stays, or comes straight back.
pub fn settled<R: Runtime>(app: &AppHandle<R>) {
    let app = app.clone();
    let memory = app.state::<WindowMemory>();
    let built = memory.generation.load(Ordering::SeqCst);
    tauri::async_runtime::spawn(async move {
        tokio::time::sleep(SETTLE).await;
        let memory = app.state::<WindowMemory>();
        // The same window, still there (not closed, nor closed and built
        // again in the meantime, which would be reading its code back).
        if memory.generation.load(Ordering::SeqCst) != built
            || app.get_webview_window(MAIN).is_none()
        {
            return;
        }
        let advised = tauri::async_runtime::spawn_blocking(|| {
            veil_engine::release_free_memory();
            veil_engine::page_out_start_up_code()
        })
        .await
        .unwrap_or(0);
        tracing::debug!(
            "window settled: {} MiB of code mappings paged out",
            advised >> 20
        );
    });
}

/// [`go_light`] now, and again a minute later, once the one-off work that
/// going windowless set off (WebKit's teardown; at a `--hidden` start the
/// IP check and the first history sample) is over.
pub async fn go_light_twice<R: Runtime>(app: &AppHandle<R>) {
    go_light(app).await;
    tokio::time::sleep(std::time::Duration::from_secs(60)).await;
    go_light(app).await;
}

/// How often code is let go of while there is no window.
pub const LIGHT_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// With no window, the code that built and drew it (WebKit's, GTK's, the
/// app's own start-up) need not stay in memory: its pages go back to the
/// system and what the tray and the engine still run comes back on its own
/// (`veil_engine::go_idle`; `make app-metrics` shows the effect).
pub async fn go_light<R: Runtime>(app: &AppHandle<R>) {
    let check = app.clone();
    // Decided under the engine's lock, so a window asked for meanwhile
    // wins: its read-ahead comes after this page-out, never before.
    let advised = tauri::async_runtime::spawn_blocking(move || {
        veil_engine::go_idle(|| !check.state::<WindowMemory>().wanted.load(Ordering::SeqCst))
    })
    .await
    .unwrap_or(0);
    tracing::debug!(
        "no window: {} MiB of code mappings paged out",
        advised >> 20
    );
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
/// It is one page loaded once from the app itself, never browsed: WebKit's
/// caches for pages and resources seen before (the back/forward cache,
/// the memory cache sized for a browser) have nothing to keep.
#[cfg(target_os = "linux")]
fn lighten_webview<R: Runtime>(window: &tauri::WebviewWindow<R>) {
    let result = window.with_webview(|webview| {
        use webkit2gtk::{
            CacheModel, HardwareAccelerationPolicy, SettingsExt, WebContextExt, WebViewExt,
        };
        let view = webview.inner();
        if let Some(settings) = WebViewExt::settings(&view) {
            settings.set_hardware_acceleration_policy(HardwareAccelerationPolicy::Never);
            settings.set_enable_page_cache(false);
        }
        if let Some(context) = view.context() {
            context.set_cache_model(CacheModel::DocumentViewer);
        }
    });
    if let Err(e) = result {
        tracing::warn!("WebKit settings not changed: {e}");
    }
}

#[cfg(not(target_os = "linux"))]
fn lighten_webview<R: Runtime>(_window: &tauri::WebviewWindow<R>) {}
