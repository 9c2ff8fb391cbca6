//! The window comes and goes while the app stays, and it runs in a process
//! of its own (`veil-app --window`, [`crate::window_process`]). The app's
//! process (the engine, the tray, the control socket) never loads a web
//! view: WebKit's UI side sets up an EGL display at the first web view,
//! which loads Mesa and all of LLVM for the rest of the process's life, so a
//! window in this process would leave about 35 MiB behind when it closed.
//! Closing the window ends its process and every WebKit process with it;
//! "Open Veil" in the tray or a second launch starts it again on the page
//! it showed. Where the desktop shows no tray icon, the first close asks
//! whether to keep running (an invisible app is worse than a question).
//!
//! The window process reaches this one over the window socket
//! ([`veil_system::Paths::window_socket`], private to the user like the
//! control socket): it forwards each command the page invokes
//! ([`crate::commands::dispatch`]) and waits for the events the app emits
//! ([`WindowChannel`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tauri::{AppHandle, Emitter, Listener, Manager, Runtime};
use veil_system::control::{
    Controller, Reply, ReplyFuture, Request, WINDOW_EVENTS_WAIT, WindowEvent,
};

use crate::state::AppState;

/// The one window's label (the capability names it).
pub const MAIN: &str = "main";

/// Events only the window process acts on, never shown to the page.
pub mod internal {
    /// Bring the window to the front (a second "Open Veil").
    pub const RAISE: &str = "veil://window/raise";
    /// Close the window (the user answered "keep running").
    pub const CLOSE: &str = "veil://window/close";
}

/// The app's events the window listens to, forwarded to its process.
const FORWARDED: [&str; 5] = [
    crate::event::STATS,
    crate::event::ENGINE,
    crate::event::STATUS,
    crate::event::IP,
    crate::event::CLOSE_ASKED,
];

/// Events kept for a window process that has not asked yet; older ones go.
const KEPT_EVENTS: usize = 64;

/// Events whose newest one says all (a snapshot): an older one still
/// waiting is dropped when a new one comes. The stats carry five minutes
/// of rates each second; 64 of them kept were several MiB.
const NEWEST_ONLY: [&str; 3] = [crate::event::STATS, crate::event::STATUS, crate::event::IP];

/// How often the app looks whether the window process is still there.
const CHILD_POLL: Duration = Duration::from_millis(250);

/// A window being started: when it was asked for, and how long its process
/// took to ask for its page (the start of a process, its toolkit and its
/// libraries).
struct Opening {
    asked: Instant,
    hello_after: Option<Duration>,
}

/// What outlives the window.
pub struct WindowMemory {
    /// The page shown when the window closed (its URL's fragment).
    page: Mutex<Option<String>>,
    /// The window asked for and not shown yet, to log how long it took.
    opening: Mutex<Option<Opening>>,
    /// A tray icon is shown (created, and the desktop draws it).
    tray: AtomicBool,
    /// The keep-running question is on screen.
    asking: AtomicBool,
    /// The window was told to close: its process is ending.
    closing: AtomicBool,
    /// A window process was started and has not ended since: code must
    /// stay (see `go_light`), and the counters are sent each second.
    wanted: AtomicBool,
    /// Counts the window processes started, so a watcher of one leaves
    /// the next alone.
    generation: AtomicU64,
    /// The window's process.
    child: Mutex<Option<std::process::Child>>,
    /// The last events for the window, numbered.
    events: Mutex<VecDeque<WindowEvent>>,
    /// The number of the newest event.
    newest: tokio::sync::watch::Sender<u64>,
}

impl Default for WindowMemory {
    fn default() -> Self {
        Self {
            page: Mutex::default(),
            opening: Mutex::default(),
            tray: AtomicBool::default(),
            asking: AtomicBool::default(),
            closing: AtomicBool::default(),
            wanted: AtomicBool::default(),
            generation: AtomicU64::default(),
            child: Mutex::default(),
            events: Mutex::default(),
            newest: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl WindowMemory {
    pub fn set_tray(&self, shown: bool) {
        self.tray.store(shown, Ordering::Relaxed);
    }

    pub fn tray(&self) -> bool {
        self.tray.load(Ordering::Relaxed)
    }

    /// A window process runs (or is starting).
    pub fn is_open(&self) -> bool {
        self.wanted.load(Ordering::SeqCst)
    }

    /// As if a window process had started (the tests have none).
    #[cfg(test)]
    pub(crate) fn opened_for_test(&self) {
        self.wanted.store(true, Ordering::SeqCst);
    }

    /// Drops what a window process left: its question, its events, its
    /// closing.
    fn forget_window(&self) {
        self.closing.store(false, Ordering::SeqCst);
        self.asking.store(false, Ordering::Relaxed);
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Queues an event for the window process (none is kept while there is
    /// no window).
    fn send(&self, name: &str, payload: &str) {
        if !self.is_open() {
            return;
        }
        let payload = payload.to_owned();
        let mut events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        if NEWEST_ONLY.contains(&name) {
            events.retain(|e| e.name != name);
        }
        let seq = *self.newest.borrow() + 1;
        events.push_back(WindowEvent {
            seq,
            name: name.to_owned(),
            payload,
        });
        // Past the bound, upstream events go first (they come in floods
        // when an upstream flaps); the question and the internal events
        // are never dropped.
        while events.len() > KEPT_EVENTS {
            match events.iter().position(|e| e.name == crate::event::ENGINE) {
                Some(i) => events.remove(i),
                None => events.pop_front(),
            };
        }
        self.newest.send_replace(seq);
    }

    /// The answer to a window process that starts: which page to show,
    /// from which event on it listens, and whose window it is.
    fn hello(&self) -> Value {
        if let Some(opening) = self
            .opening
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            opening.hello_after = Some(opening.asked.elapsed());
        }
        let page = self
            .page
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unwrap_or_else(|| "overview".to_owned());
        json!({
            "page": page,
            "after": *self.newest.borrow(),
            "app": std::process::id(),
        })
    }

    /// The events numbered above `after`, waiting for one when there are
    /// none yet (at most [`WINDOW_EVENTS_WAIT`]).
    async fn events_after(&self, after: u64) -> Vec<WindowEvent> {
        let mut newest = self.newest.subscribe();
        let _ = tokio::time::timeout(WINDOW_EVENTS_WAIT, newest.wait_for(|&n| n > after)).await;
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|e| e.seq > after)
            .cloned()
            .collect()
    }
}

/// Whether closing the window keeps the app: the user's answer, else yes
/// where a tray icon can bring the window back; `None` means ask.
pub fn keeps_running(state: &AppState, tray: bool) -> Option<bool> {
    let chosen = state.config().ok().and_then(|c| c.app.keep_running);
    chosen.or(tray.then_some(true))
}

/// Sends the app's events to the window process while there is one.
pub fn forward_events<R: Runtime>(app: &AppHandle<R>) {
    for name in FORWARDED {
        let memory = app.clone();
        app.listen_any(name, move |event| {
            memory.state::<WindowMemory>().send(name, event.payload());
        });
    }
}

/// Shows the window: brings it forward when its process runs, else starts
/// the process.
pub fn open<R: Runtime>(app: &AppHandle<R>) {
    let memory = app.state::<WindowMemory>();
    let mut child = memory.child.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(running) = child.as_mut()
        && matches!(running.try_wait(), Ok(None))
    {
        if !memory.closing.load(Ordering::SeqCst) {
            drop(child);
            memory.send(internal::RAISE, "null");
            return;
        }
        // Its window is gone and the process is on its way out (WebKit
        // takes a moment): end it now and start a new one, or this "Open
        // Veil" would be sent to a process with no window.
        let _ = running.kill();
        let _ = running.wait();
    }
    // A new window: what an old one left (a question, events) goes.
    memory.forget_window();
    // Serving the window runs code `go_light` let go of: read it back in
    // large pieces, and keep it while the window is there.
    memory.wanted.store(true, Ordering::SeqCst);
    let generation = memory.generation.fetch_add(1, Ordering::SeqCst) + 1;
    veil_engine::go_busy();
    *memory
        .opening
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = Some(Opening {
        asked: Instant::now(),
        hello_after: None,
    });
    let started = std::env::current_exe().and_then(|exe| {
        std::process::Command::new(exe)
            .arg(crate::window_process::ARG)
            .stdin(std::process::Stdio::null())
            .spawn()
    });
    match started {
        Ok(process) => {
            tracing::info!("window process {} started", process.id());
            *child = Some(process);
            drop(child);
            tauri::async_runtime::spawn(watch_child(app.clone(), generation));
        }
        Err(e) => {
            *child = None;
            drop(child);
            tracing::error!("cannot open the window: {e}");
            memory.wanted.store(false, Ordering::SeqCst);
            let app = app.clone();
            tauri::async_runtime::spawn(async move { go_light(&app).await });
        }
    }
}

/// Waits for the window process `generation` to end, then lets go of what
/// serving it needed.
async fn watch_child<R: Runtime>(app: AppHandle<R>, generation: u64) {
    loop {
        tokio::time::sleep(CHILD_POLL).await;
        let memory = app.state::<WindowMemory>();
        if memory.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        let ended = {
            let mut child = memory.child.lock().unwrap_or_else(PoisonError::into_inner);
            let ended = match child.as_mut().map(std::process::Child::try_wait) {
                Some(Ok(None)) => None,
                Some(Ok(Some(status))) => Some(status.to_string()),
                Some(Err(e)) => Some(e.to_string()),
                None => Some("gone".to_owned()),
            };
            if ended.is_some() {
                *child = None;
            }
            ended
        };
        let Some(ended) = ended else {
            continue;
        };
        memory.wanted.store(false, Ordering::SeqCst);
        memory.forget_window();
        tracing::info!("window closed: its process ended ({ended})");
        // What answering the window used goes back to the system.
        let _ = tauri::async_runtime::spawn_blocking(veil_engine::release_free_memory).await;
        go_light_twice(&app).await;
        return;
    }
}

/// How long a quitting app waits for its window to close by itself (so it
/// keeps its size and place) before it ends the window's process.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Ends the window's process (the app quits): asked to close first, ended
/// if it has not within [`CLOSE_WAIT`].
pub fn end<R: Runtime>(app: &AppHandle<R>) {
    let Some(memory) = app.try_state::<WindowMemory>() else {
        return;
    };
    memory.generation.fetch_add(1, Ordering::SeqCst);
    let Some(mut child) = memory
        .child
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
    else {
        return;
    };
    memory.send(internal::CLOSE, "null");
    let deadline = Instant::now() + CLOSE_WAIT;
    while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The window's close button, as its process reports it: `"close"` (keep
/// running, the window goes), `"quit"`, or `"wait"` (the question is
/// shown in the window).
fn close_requested<R: Runtime>(app: &AppHandle<R>, page: Option<String>) -> &'static str {
    remember_page(app, page);
    let memory = app.state::<WindowMemory>();
    let state = app.state::<Arc<AppState>>();
    match keeps_running(&state, memory.tray()) {
        Some(true) => {
            tracing::info!("window closed; Veil keeps running in the tray");
            memory.closing.store(true, Ordering::SeqCst);
            "close"
        }
        Some(false) => {
            app.exit(0);
            "quit"
        }
        // A second close while the question is shown (or a window that
        // cannot show it) quits: the user clearly wants it gone.
        None if memory.asking.swap(true, Ordering::Relaxed) => {
            app.exit(0);
            "quit"
        }
        None => {
            tracing::info!(
                "window closed where no tray icon shows: asking whether to keep running"
            );
            if let Err(e) = app.emit(crate::event::CLOSE_ASKED, ()) {
                tracing::warn!("the keep-running question was not sent: {e}");
            }
            "wait"
        }
    }
}

/// The window's page has loaded: how long it took, as the app saw it. A
/// page is remembered once a window has closed: this one is a reopening.
fn shown<R: Runtime>(app: &AppHandle<R>, page: &str, launched: Instant) {
    let memory = app.state::<WindowMemory>();
    let reopening = memory
        .page
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .is_some();
    let opening = memory
        .opening
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    let Some(Opening { asked, hello_after }) = opening else {
        tracing::info!("window shown on {page}");
        return;
    };
    let started = hello_after.map_or_else(String::new, |d| {
        format!("; its process started in {} ms", d.as_millis())
    });
    let after = asked.elapsed().as_millis();
    if reopening {
        tracing::info!(
            "window reopened on {page}: shown {after} ms after it was asked for{started}"
        );
    } else {
        tracing::info!(
            "window shown {} ms after launch ({after} ms after it was asked for{started})",
            launched.elapsed().as_millis()
        );
    }
}

/// How long after its page has loaded the window counts as settled.
const SETTLE: Duration = Duration::from_secs(10);

/// The window's page has loaded. Starting the app (in its process) and
/// building the window (in the window's) ran much code that will not run
/// again while the window stays open: once it has settled (and `still`
/// says it is the same window), those pages go back to the system, as they
/// do with no window, but faults still read ahead (the window is in use).
/// What keeps running stays, or comes straight back. Each process calls
/// this for itself.
pub fn settle(who: &'static str, still: impl FnOnce() -> bool + Send + 'static) {
    tauri::async_runtime::spawn(async move {
        tokio::time::sleep(SETTLE).await;
        if !still() {
            return;
        }
        let advised = tauri::async_runtime::spawn_blocking(|| {
            veil_engine::release_free_memory();
            veil_engine::page_out_start_up_code()
        })
        .await
        .unwrap_or(0);
        tracing::debug!(
            "{who} settled: {} MiB of code mappings paged out",
            advised >> 20
        );
    });
}

/// [`go_light`] now, and again a minute later, once the one-off work that
/// going windowless set off (at a `--hidden` start the IP check and the
/// first history sample) is over.
pub async fn go_light_twice<R: Runtime>(app: &AppHandle<R>) {
    go_light(app).await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    go_light(app).await;
}

/// How often code is let go of while there is no window.
pub const LIGHT_EVERY: Duration = Duration::from_secs(600);

/// With no window, the code that started the app and served the window
/// need not stay in memory: its pages go back to the system and what the
/// tray and the engine still run comes back on its own
/// (`veil_engine::go_idle`; `make app-metrics` shows the effect).
pub async fn go_light<R: Runtime>(app: &AppHandle<R>) {
    let check = app.clone();
    // Decided under the engine's lock, so a window asked for meanwhile
    // wins: its read-ahead comes after this page-out, never before.
    let advised = tauri::async_runtime::spawn_blocking(move || {
        veil_engine::go_idle(|| !check.state::<WindowMemory>().is_open())
    })
    .await
    .unwrap_or(0);
    tracing::debug!(
        "no window: {} MiB of code mappings paged out",
        advised >> 20
    );
}

/// The answer to the keep-running question: saved, then carried out.
pub fn answered<R: Runtime>(app: &AppHandle<R>, keep_running: bool) {
    let memory = app.state::<WindowMemory>();
    memory.asking.store(false, Ordering::Relaxed);
    if keep_running {
        memory.send(internal::CLOSE, "null");
        memory.closing.store(true, Ordering::SeqCst);
    } else {
        app.exit(0);
    }
}

/// Keeps the page the window showed (a name of lowercase letters only).
fn remember_page<R: Runtime>(app: &AppHandle<R>, page: Option<String>) {
    let page = page.filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()));
    if let Some(page) = page {
        *app.state::<WindowMemory>()
            .page
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(page);
    }
}

/// What the app answers on the window socket: the window process's
/// commands and its wait for events. Nothing else is asked here (the
/// engine's requests go to the control socket).
pub struct WindowChannel<R: Runtime> {
    pub app: AppHandle<R>,
    /// When the app was started, for the first window's timing.
    pub launched: Instant,
}

impl<R: Runtime> Controller for WindowChannel<R> {
    fn handle(&self, request: Request) -> ReplyFuture<'_> {
        Box::pin(async move {
            match request {
                Request::Window { command, args } => {
                    let answered = self.window(&command, &args).await;
                    Reply::Window {
                        ok: answered.is_ok(),
                        answer: answered.unwrap_or_else(|e| e),
                    }
                }
                // A window of an app that has gone (killed, then started
                // again) is not this app's: it hears so and ends.
                Request::WindowEvents { app, .. } if app != 0 && app != std::process::id() => {
                    Reply::error(format!(
                        "this window belongs to the Veil app of pid {app}, which has gone"
                    ))
                }
                Request::WindowEvents { after, .. } => Reply::WindowEvents {
                    ok: true,
                    events: self.app.state::<WindowMemory>().events_after(after).await,
                },
                other => Reply::error(format!(
                    "the window socket answers the window only; ask the control socket for \
                     {other:?}"
                )),
            }
        })
    }
}

impl<R: Runtime> WindowChannel<R> {
    async fn window(&self, command: &str, args: &Value) -> Result<Value, Value> {
        let app = &self.app;
        let page = || args.get("page").and_then(Value::as_str).map(str::to_owned);
        match command {
            // The window process starts: which page to show, and from which
            // event on it listens.
            crate::window_process::HELLO => Ok(app.state::<WindowMemory>().hello()),
            crate::window_process::SHOWN => {
                shown(app, &page().unwrap_or_default(), self.launched);
                // Only for this window: a close and a new window within
                // the 10 s leave the new one's read-ahead alone.
                let built = app
                    .state::<WindowMemory>()
                    .generation
                    .load(Ordering::SeqCst);
                let check = app.clone();
                settle("the app, its window shown,", move || {
                    let memory = check.state::<WindowMemory>();
                    memory.is_open() && memory.generation.load(Ordering::SeqCst) == built
                });
                Ok(Value::Null)
            }
            crate::window_process::CLOSING => Ok(json!(close_requested(app, page()))),
            _ => crate::commands::dispatch(app, command, args).await,
        }
    }
}
