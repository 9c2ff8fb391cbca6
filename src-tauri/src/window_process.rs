//! The window's own process (`veil-app --window`), started by the app
//! ([`crate::window::open`]). It holds the web view and nothing else: each
//! command the page invokes goes to the app over the window socket, and the
//! app's events come back the same way. When the window closes this
//! process ends, and every WebKit process with it; when the app goes, the
//! window goes too.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use tauri::ipc::{Invoke, InvokeBody};
use tauri::{AppHandle, Emitter, Manager, Runtime, WebviewUrl, WebviewWindowBuilder};
use veil_system::Paths;
use veil_system::control::{self, Reply, Request, WINDOW_EVENTS_WAIT};

use crate::window::{MAIN, internal};

/// The argument that starts this process instead of the app.
pub const ARG: &str = "--window";

/// What the window process tells the app besides the page's commands.
pub const HELLO: &str = "window:hello";
pub const SHOWN: &str = "window:shown";
pub const CLOSING: &str = "window:closing";

/// The longest a command may take in the app (the IP check, "test all"
/// and the scans wait on the network or on other programs).
const COMMAND_WAIT: Duration = Duration::from_secs(300);

/// The longest the window's own questions to the app may take (which page,
/// shown, closing): the app answers them at once.
const QUICK: Duration = Duration::from_secs(10);

/// The app stopped answering this many times in a row: it is gone.
const GONE_AFTER: u32 = 3;

/// Runs the window; returns the exit code.
pub fn run() -> i32 {
    let paths = match Paths::discover() {
        Ok(paths) => paths,
        Err(e) => {
            eprintln!("veil-app --window: {e}");
            return 1;
        }
    };
    // Flushed at exit, which happens inside `run` (Tauri ends the process
    // there without returning).
    let log = std::sync::Mutex::new(veil_system::logging::init(
        &paths.log_dir,
        "veil-window.log",
    ));
    let socket = paths.window_socket();
    let hello = tauri::async_runtime::block_on(ask(&socket, HELLO, Value::Null, QUICK));
    let (page, after, owner) = match hello {
        Ok(hello) => (
            hello["page"].as_str().unwrap_or("overview").to_owned(),
            hello["after"].as_u64().unwrap_or(0),
            hello["app"]
                .as_u64()
                .and_then(|pid| u32::try_from(pid).ok())
                .unwrap_or(0),
        ),
        Err(e) => {
            eprintln!(
                "veil-app --window: no Veil app answers at {} ({e}); start `veil-app`",
                socket.display()
            );
            return 1;
        }
    };

    let forwarded = socket.clone();
    let shown = socket.clone();
    let closing = socket.clone();
    let app = tauri::Builder::default()
        .invoke_handler(move |invoke| forward(&forwarded, invoke))
        .plugin(tauri_plugin_window_state::Builder::default().build())
        .plugin(tauri_plugin_clipboard_manager::init())
        .on_page_load(move |webview, payload| {
            if payload.event() != tauri::webview::PageLoadEvent::Finished {
                return;
            }
            let socket = shown.clone();
            let page = page_of(webview.url().ok());
            tauri::async_runtime::spawn(async move {
                let args = serde_json::json!({ "page": page });
                if let Err(e) = ask(&socket, SHOWN, args, QUICK).await {
                    tracing::warn!("the app did not hear that the window is shown: {e}");
                }
            });
            crate::window::settle("window", || true);
        })
        .on_window_event(move |window, event| match event {
            tauri::WindowEvent::CloseRequested { api, .. } => {
                // The app decides: keep running, quit, or ask first.
                api.prevent_close();
                let page = page_of(
                    window
                        .app_handle()
                        .get_webview_window(MAIN)
                        .and_then(|w| w.url().ok()),
                );
                let window = window.clone();
                let socket = closing.clone();
                tauri::async_runtime::spawn(async move {
                    let args = serde_json::json!({ "page": page });
                    let decided = ask(&socket, CLOSING, args, QUICK).await;
                    // "wait": the question is on its way as an event. An app
                    // that does not answer (it quit) closes the window too.
                    if decided.as_ref().ok().and_then(Value::as_str) != Some("wait") {
                        let _ = window.destroy();
                    }
                });
            }
            tauri::WindowEvent::Destroyed => {
                // Its network process lives as long as the web context;
                // it ends now rather than when it notices.
                veil_system::children::end_children_named("WebKitNetwork");
                window.app_handle().exit(0);
            }
            _ => {}
        })
        .setup(move |app| {
            build(app.handle(), &page);
            tauri::async_runtime::spawn(pump(app.handle().clone(), socket, after, owner));
            Ok(())
        })
        .build(tauri::generate_context!());
    match app {
        Ok(app) => {
            app.run(move |_, event| {
                if let tauri::RunEvent::Exit = event {
                    drop(log.lock().ok().and_then(|mut g| g.take()));
                }
            });
            0
        }
        Err(e) => {
            eprintln!("veil-app --window: cannot start the window: {e}");
            1
        }
    }
}

/// The page a window shows, from its URL's fragment (`#/cache`).
fn page_of(url: Option<tauri::Url>) -> Option<String> {
    let page = url?.fragment()?.trim_start_matches('/').to_owned();
    (!page.is_empty()).then_some(page)
}

fn build<R: Runtime>(app: &AppHandle<R>, page: &str) {
    let url = WebviewUrl::App(format!("index.html#/{page}").into());
    match WebviewWindowBuilder::new(app, MAIN, url)
        .title("Veil")
        .inner_size(1040.0, 720.0)
        .min_inner_size(800.0, 560.0)
        .center()
        .build()
    {
        Ok(window) => lighten_webview(&window),
        Err(e) => {
            tracing::error!("cannot open the window: {e}");
            app.exit(1);
        }
    }
}

/// One command of the page, answered by the app.
fn forward<R: Runtime>(socket: &std::path::Path, invoke: Invoke<R>) -> bool {
    let command = invoke.message.command().to_owned();
    let args = match invoke.message.payload() {
        InvokeBody::Json(args) => args.clone(),
        InvokeBody::Raw(_) => Value::Null,
    };
    let socket = socket.to_path_buf();
    invoke.resolver.respond_async(async move {
        ask(&socket, &command, args, COMMAND_WAIT)
            .await
            .map_err(tauri::ipc::InvokeError::from)
    });
    true
}

/// Sends one command to the app; `Err` is what the page's promise rejects
/// with (the app's error, or one saying the app did not answer).
async fn ask(
    socket: &std::path::Path,
    command: &str,
    args: Value,
    wait: Duration,
) -> Result<Value, Value> {
    let request = Request::Window {
        command: command.to_owned(),
        args,
    };
    match control::request_within(socket, &request, wait).await {
        Ok(Reply::Window { ok: true, answer }) => Ok(answer),
        Ok(Reply::Window { answer, .. }) => Err(answer),
        Ok(other) => Err(unanswered(format!("an unexpected answer {other:?}"))),
        Err(control::ControlError::TooLarge { size }) => Err(crate::AppError::invalid(format!(
            "That is too much to send at once ({} KiB; at most {} KiB). Send it in parts.",
            size / 1024,
            control::MAX_REQUEST / 1024
        ))
        .to_json()),
        Err(e) => Err(unanswered(e.to_string())),
    }
}

fn unanswered(why: String) -> Value {
    crate::AppError::new(
        crate::ErrorKind::Engine,
        format!("The Veil app did not answer the window: {why}"),
    )
    .to_json()
}

/// Waits for the app's events and hands them to the page; ends the window
/// when the app is gone.
async fn pump<R: Runtime>(app: AppHandle<R>, socket: PathBuf, mut after: u64, owner: u32) {
    let mut failed = 0;
    loop {
        let request = Request::WindowEvents { after, app: owner };
        let wait = WINDOW_EVENTS_WAIT + Duration::from_secs(10);
        match control::request_within(&socket, &request, wait).await {
            Ok(Reply::WindowEvents { events, .. }) => {
                failed = 0;
                for event in events {
                    after = event.seq;
                    deliver(&app, &event.name, event.payload);
                }
            }
            other => {
                failed += 1;
                if failed >= GONE_AFTER {
                    tracing::info!("the Veil app is gone ({other:?}): the window closes");
                    app.exit(0);
                    return;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

fn deliver<R: Runtime>(app: &AppHandle<R>, name: &str, payload: String) {
    let window = app.get_webview_window(MAIN);
    match (name, window) {
        (internal::RAISE, Some(window)) => {
            let _ = window.unminimize();
            let _ = window.show();
            let _ = window.set_focus();
            tracing::info!("window brought forward");
        }
        (internal::CLOSE, Some(window)) => {
            let _ = window.destroy();
        }
        (internal::RAISE | internal::CLOSE, None) => {}
        // Emitted as the JSON the app sent (Tauri carries raw JSON).
        (name, _) => match serde_json::value::RawValue::from_string(payload) {
            Ok(payload) => {
                let _ = app.emit(name, payload);
            }
            Err(e) => tracing::warn!("event {name} dropped: {e}"),
        },
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
