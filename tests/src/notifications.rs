//! A desktop notification server (`org.freedesktop.Notifications`) on a
//! test's private session bus: it records every notification, answers as a
//! real server does, and presses buttons (`ActionInvoked`) on request.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

use dbus::channel::Sender;
use dbus::message::Message;

const NAME: &str = "org.freedesktop.Notifications";
const PATH: &str = "/org/freedesktop/Notifications";

/// One notification as the server received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: u32,
    pub app: String,
    pub summary: String,
    pub body: String,
    /// Key, label, key, label, ...
    pub actions: Vec<String>,
    pub at: Instant,
}

pub struct NotificationServer {
    received: Arc<Mutex<Vec<Received>>>,
    closed: Arc<Mutex<Vec<u32>>>,
    presses: mpsc::Sender<(u32, String)>,
    _serving: crate::bus::Serving,
}

impl NotificationServer {
    /// Owns the notification name on the bus at `address` (a session's).
    pub fn start(address: &str) -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let closed = Arc::new(Mutex::new(Vec::new()));
        let next = Arc::new(AtomicU32::new(1));
        let (rec, clo) = (received.clone(), closed.clone());
        let (presses, pressed) = mpsc::channel::<(u32, String)>();
        let serving = crate::bus::serve(
            address,
            NAME,
            move |msg| answer(msg, &rec, &clo, &next),
            move |conn| {
                while let Ok((id, key)) = pressed.try_recv() {
                    let signal = Message::new_signal(PATH, NAME, "ActionInvoked")
                        .expect("signal")
                        .append2(id, key);
                    let _ = conn.send(signal);
                }
            },
        );
        Self {
            received,
            closed,
            presses,
            _serving: serving,
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Ids the client closed (`CloseNotification`).
    pub fn closed(&self) -> Vec<u32> {
        self.closed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The `n`th notification (from 1), waiting up to `within`.
    pub fn wait_for(&self, n: usize, within: Duration) -> Option<Received> {
        crate::poll_until(within, Duration::from_millis(20), || {
            self.received().get(n - 1).cloned()
        })
    }

    /// Presses the button `key` of notification `id`.
    pub fn press(&self, id: u32, key: &str) {
        let _ = self.presses.send((id, key.to_owned()));
    }
}

fn answer(
    msg: &Message,
    received: &Mutex<Vec<Received>>,
    closed: &Mutex<Vec<u32>>,
    next: &AtomicU32,
) -> Option<Message> {
    if msg.interface().as_deref() != Some(NAME) {
        return None;
    }
    match msg.member()?.as_ref() {
        "Notify" => {
            let mut args = msg.iter_init();
            let app: String = args.read().ok()?;
            let replaces: u32 = args.read().ok()?;
            let _icon: String = args.read().ok()?;
            let summary: String = args.read().ok()?;
            let body: String = args.read().ok()?;
            let actions: Vec<String> = args.read().ok()?;
            let id = if replaces != 0 {
                replaces
            } else {
                next.fetch_add(1, Ordering::SeqCst)
            };
            received
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(Received {
                    id,
                    app,
                    summary,
                    body,
                    actions,
                    at: Instant::now(),
                });
            Some(msg.method_return().append1(id))
        }
        "CloseNotification" => {
            let id: u32 = msg.read1().ok()?;
            closed
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(id);
            Some(msg.method_return())
        }
        "GetCapabilities" => Some(
            msg.method_return()
                .append1(vec!["actions".to_owned(), "body".to_owned()]),
        ),
        "GetServerInformation" => Some(
            msg.method_return()
                .append3("veil-tests", "veil", "1")
                .append1("1.2"),
        ),
        _ => None,
    }
}
