//! A service on a test's private session bus: its own connection, a
//! well-known name it must own, and a thread that answers method calls
//! until the service is dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dbus::blocking::Connection;
use dbus::blocking::stdintf::org_freedesktop_dbus::RequestNameReply;
use dbus::channel::{Channel, MatchingReceiver, Sender};
use dbus::message::{MatchRule, Message};

/// A connection of its own to the bus at `address` (a session's).
pub fn connect(address: &str) -> Connection {
    let mut channel = Channel::open_private(address).expect("connect to the session bus");
    channel.register().expect("register on the bus");
    Connection::from(channel)
}

/// A service's thread; it stops when this is dropped.
pub struct Serving(Arc<AtomicBool>);

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Owns `name` on the bus at `address`, answers each method call with what
/// `answer` returns, and runs `between` after each turn of the loop (for
/// signals the test asks for), until the returned guard is dropped.
pub fn serve(
    address: &str,
    name: &str,
    answer: impl Fn(&Message) -> Option<Message> + Send + 'static,
    mut between: impl FnMut(&Connection) + Send + 'static,
) -> Serving {
    let conn = connect(address);
    let owned = conn
        .request_name(name, false, true, true)
        .unwrap_or_else(|e| panic!("ask for {name}: {e}"));
    assert_eq!(
        owned,
        RequestNameReply::PrimaryOwner,
        "this test owns {name}"
    );
    conn.start_receive(
        MatchRule::new_method_call(),
        Box::new(move |msg: Message, conn: &Connection| {
            if let Some(reply) = answer(&msg) {
                let _ = conn.send(reply);
            }
            true
        }),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    std::thread::spawn(move || {
        while !stopped.load(Ordering::SeqCst) {
            if conn.process(Duration::from_millis(20)).is_err() {
                return;
            }
            between(&conn);
        }
    });
    Serving(stop)
}
