//! The window as the desktop sees it, on the test's private X display:
//! whether Veil's window is mapped, and its close button pressed the way a
//! window manager does it (a `WM_DELETE_WINDOW` message), which WebDriver
//! cannot do (its "close window" ends the browsing context instead).

use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    AtomEnum, ClientMessageEvent, ConnectionExt, EventMask, MapState, Window,
};
use x11rb::rust_connection::RustConnection;

fn connect(display: &str) -> (RustConnection, Window) {
    let (conn, screen) = x11rb::connect(Some(display)).expect("connect to the test's X display");
    let root = conn.setup().roots[screen].root;
    (conn, root)
}

fn title(conn: &RustConnection, window: Window) -> Option<String> {
    let reply = conn
        .get_property(false, window, AtomEnum::WM_NAME, AtomEnum::STRING, 0, 256)
        .ok()?
        .reply()
        .ok()?;
    String::from_utf8(reply.value).ok()
}

/// Top-level windows titled `name` that are on screen.
pub fn shown_windows(display: &str, name: &str) -> Vec<Window> {
    let (conn, root) = connect(display);
    let Ok(tree) = conn.query_tree(root).map(|c| c.reply()) else {
        return Vec::new();
    };
    let Ok(tree) = tree else {
        return Vec::new();
    };
    tree.children
        .into_iter()
        .filter(|&w| {
            let viewable = conn
                .get_window_attributes(w)
                .ok()
                .and_then(|c| c.reply().ok())
                .is_some_and(|a| a.map_state == MapState::VIEWABLE);
            viewable && title(&conn, w).as_deref() == Some(name)
        })
        .collect()
}

/// Presses the close button of every window titled `name`; returns how
/// many got the message.
pub fn press_close(display: &str, name: &str) -> usize {
    let windows = shown_windows(display, name);
    let (conn, _) = connect(display);
    let atom = |n: &str| {
        conn.intern_atom(false, n.as_bytes())
            .expect("intern_atom")
            .reply()
            .expect("atom")
            .atom
    };
    let (protocols, delete) = (atom("WM_PROTOCOLS"), atom("WM_DELETE_WINDOW"));
    for &window in &windows {
        let event = ClientMessageEvent::new(32, window, protocols, [delete, 0, 0, 0, 0]);
        conn.send_event(false, window, EventMask::NO_EVENT, event)
            .expect("send WM_DELETE_WINDOW");
    }
    conn.flush().expect("flush X requests");
    windows.len()
}

/// The text on the display's clipboard (the `CLIPBOARD` selection as
/// UTF-8), asked of whoever owns it as any app's paste does; `None` when
/// nobody owns it or the owner did not answer within `within`.
pub fn clipboard_text(display: &str, within: std::time::Duration) -> Option<String> {
    use x11rb::protocol::Event;
    use x11rb::protocol::xproto::{CreateWindowAux, WindowClass};
    let (conn, root) = connect(display);
    let atom = |name: &str| -> Option<u32> {
        Some(
            conn.intern_atom(false, name.as_bytes())
                .ok()?
                .reply()
                .ok()?
                .atom,
        )
    };
    let (clipboard, utf8, target) = (
        atom("CLIPBOARD")?,
        atom("UTF8_STRING")?,
        atom("VEIL_TEST_PASTE")?,
    );
    let window = conn.generate_id().ok()?;
    conn.create_window(
        x11rb::COPY_DEPTH_FROM_PARENT,
        window,
        root,
        0,
        0,
        1,
        1,
        0,
        WindowClass::INPUT_OUTPUT,
        x11rb::COPY_FROM_PARENT,
        &CreateWindowAux::new(),
    )
    .ok()?;
    conn.convert_selection(window, clipboard, utf8, target, x11rb::CURRENT_TIME)
        .ok()?;
    conn.flush().ok()?;
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        match conn.poll_for_event().ok()? {
            Some(Event::SelectionNotify(e)) if e.requestor == window => {
                if e.property == u32::from(AtomEnum::NONE) {
                    return None;
                }
                let reply = conn
                    .get_property(true, window, target, AtomEnum::ANY, 0, 1 << 20)
                    .ok()?
                    .reply()
                    .ok()?;
                return String::from_utf8(reply.value).ok();
            }
            Some(_) => {}
            None => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
    None
}
