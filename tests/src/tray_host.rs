//! A tray on a test's private session bus. A Linux tray icon is a
//! StatusNotifierItem that registers with whoever owns
//! `org.kde.StatusNotifierWatcher`; the desktop's tray then draws it and
//! shows its menu, which the item exports with the `com.canonical.dbusmenu`
//! interface. [`TrayHost`] is that watcher, and [`TrayMenu`] reads the
//! menu and clicks its items the way a desktop's tray does.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use dbus::arg::{PropMap, RefArg, Variant};
use dbus::blocking::Connection;
use dbus::message::Message;
use dbus::strings::Path;

const WATCHER: &str = "org.kde.StatusNotifierWatcher";
const PROPERTIES: &str = "org.freedesktop.DBus.Properties";
const CALL_LIMIT: Duration = Duration::from_secs(5);

/// A registered tray icon: the bus name that owns it and its object path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub service: String,
    pub path: String,
}

pub struct TrayHost {
    items: Arc<Mutex<Vec<Item>>>,
    address: String,
    _serving: crate::bus::Serving,
}

impl TrayHost {
    /// Owns the watcher's name on the bus at `address` (a session's), so
    /// apps started after it see a tray.
    pub fn start(address: &str) -> Self {
        let items = Arc::new(Mutex::new(Vec::new()));
        let kept = items.clone();
        let serving = crate::bus::serve(address, WATCHER, move |msg| answer(msg, &kept), |_| {});
        Self {
            items,
            address: address.to_owned(),
            _serving: serving,
        }
    }

    /// The first icon to register, waiting up to `within`.
    pub fn wait_for_item(&self, within: Duration) -> Option<Item> {
        crate::poll_until(within, Duration::from_millis(50), || {
            let items = self.items.lock().unwrap_or_else(PoisonError::into_inner);
            items.first().cloned()
        })
    }

    /// The menu of `item`, as the tray would open it.
    pub fn menu(&self, item: &Item) -> TrayMenu {
        let conn = crate::bus::connect(&self.address);
        let menu: Path<'static> = {
            use dbus::blocking::stdintf::org_freedesktop_dbus::Properties;
            conn.with_proxy(&item.service, &item.path, CALL_LIMIT)
                .get("org.kde.StatusNotifierItem", "Menu")
                .expect("the tray icon has a menu")
        };
        TrayMenu {
            conn: Mutex::new(conn),
            service: item.service.clone(),
            path: menu.to_string(),
        }
    }
}

fn answer(msg: &Message, items: &Mutex<Vec<Item>>) -> Option<Message> {
    let interface = msg.interface()?;
    let member = msg.member()?;
    match (&*interface, &*member) {
        (WATCHER, "RegisterStatusNotifierItem") => {
            let (Ok(arg), Some(sender)) = (msg.read1::<String>(), msg.sender()) else {
                return Some(invalid_args(msg));
            };
            let sender = sender.to_string();
            // The argument is the item's path (its service is the sender)
            // or a bus name (with the specification's default path).
            let item = if arg.starts_with('/') {
                Item {
                    service: sender,
                    path: arg,
                }
            } else {
                Item {
                    service: arg,
                    path: "/StatusNotifierItem".to_owned(),
                }
            };
            let mut items = items.lock().unwrap_or_else(PoisonError::into_inner);
            if !items.contains(&item) {
                items.push(item);
            }
            Some(msg.method_return())
        }
        (WATCHER, "RegisterStatusNotifierHost") => Some(msg.method_return()),
        (PROPERTIES, "Get") => Some(
            match msg
                .read2::<String, String>()
                .ok()
                .and_then(|(_, name)| watcher_property(&name, items))
            {
                Some(value) => msg.method_return().append1(value),
                None => invalid_args(msg),
            },
        ),
        (PROPERTIES, "GetAll") => {
            let mut all = PropMap::new();
            for name in [
                "IsStatusNotifierHostRegistered",
                "ProtocolVersion",
                "RegisteredStatusNotifierItems",
            ] {
                if let Some(value) = watcher_property(name, items) {
                    all.insert(name.to_owned(), value);
                }
            }
            Some(msg.method_return().append1(all))
        }
        _ => Some(msg.error(
            &"org.freedesktop.DBus.Error.UnknownMethod".into(),
            &std::ffi::CString::new(format!("no {interface}.{member} here")).ok()?,
        )),
    }
}

/// The error a D-Bus service sends for arguments it cannot take, so the
/// caller never waits out its timeout.
fn invalid_args(msg: &Message) -> Message {
    msg.error(
        &"org.freedesktop.DBus.Error.InvalidArgs".into(),
        c"no such argument or property here",
    )
}

fn watcher_property(name: &str, items: &Mutex<Vec<Item>>) -> Option<Variant<Box<dyn RefArg>>> {
    Some(match name {
        "IsStatusNotifierHostRegistered" => Variant(Box::new(true)),
        "ProtocolVersion" => Variant(Box::new(0i32)),
        "RegisteredStatusNotifierItems" => Variant(Box::new(
            items
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .map(|i| format!("{}{}", i.service, i.path))
                .collect::<Vec<_>>(),
        )),
        _ => return None,
    })
}

/// A `GetLayout` node: id, properties, children (each a variant).
type Layout = (i32, PropMap, Vec<Variant<Box<dyn RefArg>>>);

/// One entry of a tray menu.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: i32,
    /// Without the mnemonic's underscore.
    pub label: String,
    pub enabled: bool,
    /// `Some(on)` for a check item.
    pub checked: Option<bool>,
    pub children: Vec<Entry>,
}

impl Entry {
    /// This entry and every entry below it, depth first.
    pub fn walk(&self) -> Vec<&Entry> {
        let mut all = vec![self];
        for child in &self.children {
            all.extend(child.walk());
        }
        all
    }
}

pub struct TrayMenu {
    /// Behind a lock so the menu can be shared with blocking tasks.
    conn: Mutex<Connection>,
    service: String,
    path: String,
}

impl TrayMenu {
    /// The whole menu as the tray reads it now (`GetLayout` from the root).
    pub fn read(&self) -> Entry {
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let proxy = conn.with_proxy(&self.service, &self.path, CALL_LIMIT);
        let (_revision, root): (u32, Layout) = proxy
            .method_call(
                "com.canonical.dbusmenu",
                "GetLayout",
                (0i32, -1i32, Vec::<String>::new()),
            )
            .expect("the tray menu's layout");
        let children = root.2.iter().filter_map(|v| entry(&*v.0)).collect();
        Entry {
            id: root.0,
            label: String::new(),
            enabled: true,
            checked: None,
            children,
        }
    }

    /// Every entry, flattened.
    pub fn entries(&self) -> Vec<Entry> {
        self.read().walk().into_iter().cloned().collect()
    }

    /// The entry whose label is `label`, if the menu has one.
    pub fn find(&self, label: &str) -> Option<Entry> {
        self.entries().into_iter().find(|e| e.label == label)
    }

    /// Clicks the entry labelled `label`, as the tray does when the user
    /// picks it; panics when there is none. The app rebuilds its menu on
    /// every change (new ids), so a click that lands on an id that just went
    /// is tried again on the menu as it is now, within a few seconds.
    pub fn click(&self, label: &str) {
        let deadline = Instant::now() + CALL_LIMIT;
        loop {
            let found = self.find(label).unwrap_or_else(|| {
                let labels: Vec<String> = self.entries().into_iter().map(|e| e.label).collect();
                panic!("no {label:?} in the tray menu: {labels:?}")
            });
            let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
            let proxy = conn.with_proxy(&self.service, &self.path, CALL_LIMIT);
            let unix_time = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as u32);
            let clicked: Result<(), dbus::Error> = proxy.method_call(
                "com.canonical.dbusmenu",
                "Event",
                (found.id, "clicked", Variant(0i32), unix_time),
            );
            match clicked {
                Ok(()) => return,
                Err(e) if Instant::now() < deadline => {
                    eprintln!(
                        "tray click on {label:?} (id {}) missed: {e}; again",
                        found.id
                    );
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("the tray did not take the click on {label:?}: {e}"),
            }
        }
    }

    /// Reads the menu until `check` finds what it wants in it, for at most
    /// `within`; `None` when it never did.
    pub fn wait_for<T>(
        &self,
        within: Duration,
        mut check: impl FnMut(&[Entry]) -> Option<T>,
    ) -> Option<T> {
        crate::poll_until(within, Duration::from_millis(100), || {
            check(&self.entries())
        })
    }
}

/// One `(ia{sv}av)` layout node.
fn entry(node: &dyn RefArg) -> Option<Entry> {
    let mut fields = node.as_iter()?;
    let id = fields.next()?.as_i64()? as i32;
    let props = fields.next()?;
    let mut label = String::new();
    let mut enabled = true;
    let mut toggle = false;
    let mut state = 0i64;
    let mut pairs = props.as_iter()?;
    while let (Some(key), Some(value)) = (pairs.next(), pairs.next()) {
        match key.as_str()? {
            "label" => label = without_mnemonic(value.as_str().unwrap_or_default()),
            "enabled" => enabled = value.as_i64().is_none_or(|v| v != 0),
            "toggle-type" => toggle = value.as_str() == Some("checkmark"),
            "toggle-state" => state = value.as_i64().unwrap_or(0),
            _ => {}
        }
    }
    let children = fields
        .next()
        .and_then(|c| c.as_iter())
        .map(|c| c.filter_map(|child| entry(unwrap_variant(child))).collect())
        .unwrap_or_default();
    Some(Entry {
        id,
        label,
        enabled,
        checked: toggle.then_some(state == 1),
        children,
    })
}

/// A dbusmenu label as shown: `_x` marks the mnemonic, `__` is one `_`.
fn without_mnemonic(label: &str) -> String {
    let mut shown = String::with_capacity(label.len());
    let mut chars = label.chars();
    while let Some(c) = chars.next() {
        if c == '_' {
            if let Some(next) = chars.next() {
                shown.push(next);
            }
        } else {
            shown.push(c);
        }
    }
    shown
}

/// A child comes as a variant holding the node.
fn unwrap_variant(arg: &dyn RefArg) -> &dyn RefArg {
    match arg.as_iter().map(|mut i| (i.next(), i.next())) {
        Some((Some(inner), None)) if arg.arg_type() == dbus::arg::ArgType::Variant => inner,
        _ => arg,
    }
}
