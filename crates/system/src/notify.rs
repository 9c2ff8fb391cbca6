//! Desktop notifications with buttons, for what the user must decide at
//! once (the system proxy changed under Veil). A choice comes back as the
//! action's key; only the notification shown now can answer.
//!
//! - Linux and the BSDs: `org.freedesktop.Notifications` on the session bus
//!   (GNOME, KDE and most desktops), which both `veil run` and the app can
//!   reach; the choice comes through the `ActionInvoked` signal.
//! - Windows: a toast (WinRT `ToastNotificationManager`) with buttons, in the
//!   reminder scenario so it stays until answered; the choice comes through
//!   the toast's `Activated` event while Veil runs.
//! - macOS: the UserNotifications framework with a category whose actions
//!   are the buttons, when Veil runs as an app bundle (the framework refuses
//!   a bare executable); `veil run` outside a bundle shows a plain
//!   notification through `osascript`, without buttons.
//!
//! Without a notification service there is no notifier, and the alert in
//! the window, the tray and `veil status` carries the news alone (it always
//! does, with Re-apply and Leave it beside it).

use std::sync::Arc;

/// One notification: a title, a sentence, and buttons as (key, label).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub summary: String,
    pub body: String,
    pub actions: Vec<(String, String)>,
}

/// Called with an action's key when the user presses its button.
pub type OnAction = Arc<dyn Fn(String) + Send + Sync>;

#[cfg_attr(
    not(any(
        target_os = "linux",
        target_os = "freebsd",
        target_os = "openbsd",
        target_os = "macos",
        windows
    )),
    allow(dead_code)
)]
enum Command {
    Show(Notice),
    Close,
}

/// Shows one notification at a time (a new one replaces the last); its
/// thread ends when this is dropped.
pub struct Notifier {
    commands: std::sync::mpsc::Sender<Command>,
}

impl Notifier {
    /// `None` when this platform or session has no notification service.
    pub fn start(on_action: OnAction) -> Option<Self> {
        match platform::start(on_action) {
            Ok(commands) => Some(Self { commands }),
            Err(e) => {
                tracing::info!("no desktop notifications: {e}");
                None
            }
        }
    }

    pub fn show(&self, notice: Notice) {
        let _ = self.commands.send(Command::Show(notice));
    }

    /// Takes the shown notification away (the question answered itself).
    pub fn close(&self) {
        let _ = self.commands.send(Command::Close);
    }
}

#[cfg(any(target_os = "linux", target_os = "freebsd", target_os = "openbsd"))]
mod platform {
    use std::sync::mpsc::{self, TryRecvError};
    use std::time::Duration;

    use dbus::arg::PropMap;
    use dbus::blocking::Connection;
    use dbus::message::MatchRule;

    use super::{Command, Notice, OnAction};

    const NAME: &str = "org.freedesktop.Notifications";
    const PATH: &str = "/org/freedesktop/Notifications";
    const CALL_TIMEOUT: Duration = Duration::from_secs(5);

    pub fn start(on_action: OnAction) -> Result<mpsc::Sender<Command>, String> {
        if !crate::sysproxy::watch::session_bus_known() {
            return Err("no session bus in this environment".into());
        }
        let conn = Connection::new_session().map_err(|e| format!("no session bus: {e}"))?;
        let (tx, rx) = mpsc::channel();
        // The id of the notification shown now: its buttons are the only
        // ones that count.
        let shown = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let current = shown.clone();
        conn.add_match(
            MatchRule::new_signal(NAME, "ActionInvoked"),
            move |(id, key): (u32, String), _, _| {
                if id != 0 && id == current.load(std::sync::atomic::Ordering::SeqCst) {
                    on_action(key);
                }
                true
            },
        )
        .map_err(|e| format!("listening for notification buttons: {e}"))?;
        std::thread::Builder::new()
            .name("veil-notify".into())
            .spawn(move || {
                loop {
                    match rx.try_recv() {
                        Ok(Command::Show(notice)) => {
                            let replaces = shown.load(std::sync::atomic::Ordering::SeqCst);
                            match notify(&conn, replaces, &notice) {
                                Ok(id) => shown.store(id, std::sync::atomic::Ordering::SeqCst),
                                Err(e) => tracing::warn!("desktop notification not shown: {e}"),
                            }
                            continue;
                        }
                        Ok(Command::Close) => {
                            let id = shown.swap(0, std::sync::atomic::Ordering::SeqCst);
                            if id != 0 {
                                let proxy = conn.with_proxy(NAME, PATH, CALL_TIMEOUT);
                                let closed: Result<(), _> =
                                    proxy.method_call(NAME, "CloseNotification", (id,));
                                if let Err(e) = closed {
                                    tracing::debug!("closing notification {id}: {e}");
                                }
                            }
                            continue;
                        }
                        Err(TryRecvError::Disconnected) => return,
                        Err(TryRecvError::Empty) => {}
                    }
                    if let Err(e) = conn.process(Duration::from_millis(100)) {
                        tracing::warn!("desktop notifications stopped: {e}");
                        return;
                    }
                }
            })
            .map_err(|e| format!("starting the notification thread: {e}"))?;
        Ok(tx)
    }

    fn notify(conn: &Connection, replaces: u32, notice: &Notice) -> Result<u32, dbus::Error> {
        let actions: Vec<&str> = notice
            .actions
            .iter()
            .flat_map(|(key, label)| [key.as_str(), label.as_str()])
            .collect();
        let mut hints = PropMap::new();
        // Stays until answered, where the server honours it.
        hints.insert("resident".into(), dbus::arg::Variant(Box::new(true)));
        hints.insert("urgency".into(), dbus::arg::Variant(Box::new(2u8)));
        let proxy = conn.with_proxy(NAME, PATH, CALL_TIMEOUT);
        let (id,): (u32,) = proxy.method_call(
            NAME,
            "Notify",
            (
                "Veil",
                replaces,
                "network-error",
                notice.summary.as_str(),
                notice.body.as_str(),
                actions,
                hints,
                0i32,
            ),
        )?;
        Ok(id)
    }
}

#[cfg(windows)]
mod platform {
    //! Windows shows toasts only for an AppUserModelID that a Start-menu
    //! shortcut registers. The installer's shortcut carries Veil's bundle
    //! identifier; a build run from a cargo `target` folder has no shortcut
    //! and borrows PowerShell's registered id (the toast then names
    //! PowerShell as its sender).
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, mpsc};

    use windows::Data::Xml::Dom::XmlDocument;
    use windows::Foundation::TypedEventHandler;
    use windows::UI::Notifications::{
        ToastActivatedEventArgs, ToastNotification, ToastNotificationManager, ToastNotifier,
    };
    use windows::core::{HSTRING, IInspectable, Interface};

    use super::{Command, Notice, OnAction};

    const POWERSHELL_APP_ID: &str =
        "{1AC14E77-02E7-4E5D-B744-2EB1AE5198B7}\\WindowsPowerShell\\v1.0\\powershell.exe";

    fn app_id() -> &'static str {
        let from_build_folder = std::env::current_exe().ok().is_some_and(|exe| {
            exe.ancestors()
                .any(|dir| dir.file_name().is_some_and(|name| name == "target"))
        });
        if from_build_folder {
            POWERSHELL_APP_ID
        } else {
            super::APP_USER_MODEL_ID
        }
    }

    pub fn start(on_action: OnAction) -> Result<mpsc::Sender<Command>, String> {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("veil-notify".into())
            .spawn(move || {
                let app_id = HSTRING::from(app_id());
                // The serial of the toast shown now: a button of any other
                // toast does nothing.
                let current = Arc::new(AtomicU64::new(0));
                let mut serial = 0u64;
                let mut shown: Option<(ToastNotifier, ToastNotification)> = None;
                for command in rx {
                    current.store(0, Ordering::SeqCst);
                    if let Some((notifier, toast)) = shown.take() {
                        if let Err(e) = notifier.Hide(&toast) {
                            tracing::debug!("hiding the last toast: {e}");
                        }
                    }
                    let Command::Show(notice) = command else {
                        continue;
                    };
                    serial += 1;
                    let on = {
                        let current = current.clone();
                        let on_action = on_action.clone();
                        let this = serial;
                        move |key: String| {
                            if current.load(Ordering::SeqCst) == this {
                                on_action(key);
                            }
                        }
                    };
                    match show(&app_id, &notice, on) {
                        Ok(pair) => {
                            current.store(serial, Ordering::SeqCst);
                            shown = Some(pair);
                        }
                        Err(e) => tracing::warn!("desktop notification not shown: {e}"),
                    }
                }
            })
            .map_err(|e| format!("starting the notification thread: {e}"))?;
        Ok(tx)
    }

    fn show(
        app_id: &HSTRING,
        notice: &Notice,
        on_action: impl Fn(String) + Send + 'static,
    ) -> windows::core::Result<(ToastNotifier, ToastNotification)> {
        let xml = XmlDocument::new()?;
        xml.LoadXml(&HSTRING::from(super::toast_xml(notice)))?;
        let toast = ToastNotification::CreateToastNotification(&xml)?;
        toast.Activated(&TypedEventHandler::<ToastNotification, IInspectable>::new(
            move |_, args| {
                let key = args
                    .as_ref()
                    .and_then(|args| args.cast::<ToastActivatedEventArgs>().ok())
                    .and_then(|args| args.Arguments().ok())
                    .map(|key| key.to_string())
                    .unwrap_or_default();
                // A click on the toast's body has no arguments.
                if !key.is_empty() {
                    on_action(key);
                }
                Ok(())
            },
        ))?;
        let notifier = ToastNotificationManager::CreateToastNotifierWithId(app_id)?;
        notifier.Show(&toast)?;
        Ok((notifier, toast))
    }
}

#[cfg(target_os = "macos")]
#[allow(unsafe_code)]
mod platform {
    //! The UserNotifications framework needs the app bundle's identity;
    //! without one (`veil run` from a terminal) `osascript` shows the news
    //! without buttons.
    use std::sync::{Arc, Mutex, PoisonError, mpsc};

    use block2::RcBlock;
    use objc2::rc::Retained;
    use objc2::runtime::{Bool, ProtocolObject};
    use objc2::{AllocAnyThread, DefinedClass, define_class, msg_send};
    use objc2_foundation::{
        NSArray, NSBundle, NSError, NSObject, NSObjectProtocol, NSSet, NSString,
    };
    use objc2_user_notifications::{
        UNAuthorizationOptions, UNMutableNotificationContent, UNNotification, UNNotificationAction,
        UNNotificationActionOptions, UNNotificationCategory, UNNotificationCategoryOptions,
        UNNotificationPresentationOptions, UNNotificationRequest, UNNotificationResponse,
        UNUserNotificationCenter, UNUserNotificationCenterDelegate,
    };

    use super::{Command, Notice, OnAction};

    struct AnswerIvars {
        on_action: OnAction,
        /// The identifier of the notification shown now ("" when none).
        shown: Arc<Mutex<String>>,
    }

    define_class!(
        // SAFETY: NSObject has no subclassing requirements, and `Answers`
        // does not implement Drop.
        #[unsafe(super(NSObject))]
        #[name = "VeilNotificationAnswers"]
        #[ivars = AnswerIvars]
        struct Answers;

        // SAFETY: NSObjectProtocol has no safety requirements.
        unsafe impl NSObjectProtocol for Answers {}

        // SAFETY: the signatures match the protocol's.
        unsafe impl UNUserNotificationCenterDelegate for Answers {
            #[unsafe(method(userNotificationCenter:didReceiveNotificationResponse:withCompletionHandler:))]
            fn did_receive(
                &self,
                _center: &UNUserNotificationCenter,
                response: &UNNotificationResponse,
                done: &block2::DynBlock<dyn Fn()>,
            ) {
                let id = response.notification().request().identifier().to_string();
                let key = response.actionIdentifier().to_string();
                let shown = self
                    .ivars()
                    .shown
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                if !shown.is_empty() && id == shown {
                    (self.ivars().on_action)(key);
                }
                done.call(());
            }

            // Shown even while Veil is the active app.
            #[unsafe(method(userNotificationCenter:willPresentNotification:withCompletionHandler:))]
            fn will_present(
                &self,
                _center: &UNUserNotificationCenter,
                _notification: &UNNotification,
                done: &block2::DynBlock<dyn Fn(UNNotificationPresentationOptions)>,
            ) {
                done.call((UNNotificationPresentationOptions::Banner
                    | UNNotificationPresentationOptions::List
                    | UNNotificationPresentationOptions::Sound,));
            }
        }
    );

    impl Answers {
        fn new(ivars: AnswerIvars) -> Retained<Self> {
            let this = Self::alloc().set_ivars(ivars);
            // SAFETY: NSObject's `init` has this signature.
            unsafe { msg_send![super(this), init] }
        }
    }

    pub fn start(on_action: OnAction) -> Result<mpsc::Sender<Command>, String> {
        let bundled = NSBundle::mainBundle().bundleIdentifier().is_some();
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new().name("veil-notify".into());
        let started = if bundled {
            thread.spawn(move || in_bundle(on_action, rx))
        } else {
            thread.spawn(move || {
                for command in rx {
                    if let Command::Show(notice) = command {
                        with_osascript(&notice);
                    }
                }
            })
        };
        started.map_err(|e| format!("starting the notification thread: {e}"))?;
        Ok(tx)
    }

    fn in_bundle(on_action: OnAction, commands: mpsc::Receiver<Command>) {
        let center = UNUserNotificationCenter::currentNotificationCenter();
        let shown = Arc::new(Mutex::new(String::new()));
        let answers = Answers::new(AnswerIvars {
            on_action,
            shown: shown.clone(),
        });
        // The delegate is a weak reference: `answers` lives on this thread.
        center.setDelegate(Some(ProtocolObject::from_ref(&*answers)));
        let mut serial = 0u64;
        let mut asked = false;
        for command in commands {
            let last = std::mem::take(&mut *shown.lock().unwrap_or_else(PoisonError::into_inner));
            if !last.is_empty() {
                let ids = NSArray::from_retained_slice(&[NSString::from_str(&last)]);
                center.removeDeliveredNotificationsWithIdentifiers(&ids);
            }
            let Command::Show(notice) = command else {
                continue;
            };
            // Permission is asked when there is first something to show, not
            // at every start.
            if !asked {
                asked = true;
                let answered = RcBlock::new(|granted: Bool, _error: *mut NSError| {
                    if !granted.as_bool() {
                        tracing::info!(
                            "notifications are off for Veil in System Settings; the window \
                             and the tray still show a changed system proxy"
                        );
                    }
                });
                center.requestAuthorizationWithOptions_completionHandler(
                    UNAuthorizationOptions::Alert | UNAuthorizationOptions::Sound,
                    &answered,
                );
            }
            serial += 1;
            let id = format!("veil-system-proxy-{serial}");
            let category = NSString::from_str(&format!("veil-{}", super::action_keys(&notice)));
            let actions: Vec<_> = notice
                .actions
                .iter()
                .map(|(key, label)| {
                    UNNotificationAction::actionWithIdentifier_title_options(
                        &NSString::from_str(key),
                        &NSString::from_str(label),
                        UNNotificationActionOptions::empty(),
                    )
                })
                .collect();
            center.setNotificationCategories(&NSSet::from_retained_slice(&[
                UNNotificationCategory::categoryWithIdentifier_actions_intentIdentifiers_options(
                    &category,
                    &NSArray::from_retained_slice(&actions),
                    &NSArray::new(),
                    UNNotificationCategoryOptions::empty(),
                ),
            ]));
            let content = UNMutableNotificationContent::new();
            content.setTitle(&NSString::from_str(&notice.summary));
            content.setBody(&NSString::from_str(&notice.body));
            content.setCategoryIdentifier(&category);
            let request = UNNotificationRequest::requestWithIdentifier_content_trigger(
                &NSString::from_str(&id),
                &content,
                None,
            );
            *shown.lock().unwrap_or_else(PoisonError::into_inner) = id;
            let added = RcBlock::new(|error: *mut NSError| {
                // SAFETY: the framework passes a valid NSError or null.
                if let Some(error) = unsafe { error.as_ref() } {
                    tracing::warn!(
                        "desktop notification not shown: {}",
                        error.localizedDescription()
                    );
                }
            });
            center.addNotificationRequest_withCompletionHandler(&request, Some(&added));
        }
        center.setDelegate(None);
    }

    /// `veil run` outside an app bundle: the title and the sentence are
    /// passed as arguments, never spliced into the script.
    fn with_osascript(notice: &Notice) {
        let shown = std::process::Command::new("/usr/bin/osascript")
            .args([
                "-e",
                "on run argv",
                "-e",
                "display notification (item 2 of argv) with title (item 1 of argv)",
                "-e",
                "end run",
                &notice.summary,
                &notice.body,
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        match shown {
            Ok(status) if status.success() => {}
            Ok(status) => tracing::warn!("desktop notification not shown: osascript {status}"),
            Err(e) => tracing::warn!("desktop notification not shown: osascript: {e}"),
        }
    }
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "freebsd",
    target_os = "openbsd",
    target_os = "macos",
    windows
)))]
mod platform {
    use super::{Command, OnAction};

    pub fn start(_on_action: OnAction) -> Result<std::sync::mpsc::Sender<Command>, String> {
        Err("not on this platform (the alert in the window and tray shows it)".into())
    }
}

/// Veil's AppUserModelID on Windows: the bundle identifier, which the
/// installer's Start-menu shortcut carries (a test keeps it equal to
/// `tauri.conf.json`'s).
pub const APP_USER_MODEL_ID: &str = "app.veil.desktop";

/// The notice's button keys, joined: names the macOS category with exactly
/// these buttons.
#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
fn action_keys(notice: &Notice) -> String {
    notice
        .actions
        .iter()
        .map(|(key, _)| key.as_str())
        .collect::<Vec<_>>()
        .join("-")
}

/// A Windows toast for the notice: title, sentence, one button per action
/// (its key comes back as the activation's arguments), in the reminder
/// scenario so it stays on screen until answered.
#[cfg_attr(not(windows), allow(dead_code))]
fn toast_xml(notice: &Notice) -> String {
    let mut xml =
        String::from(r#"<toast scenario="reminder"><visual><binding template="ToastGeneric">"#);
    xml.push_str(&format!(
        "<text>{}</text><text>{}</text></binding></visual>",
        xml_escape(&notice.summary),
        xml_escape(&notice.body)
    ));
    if !notice.actions.is_empty() {
        xml.push_str("<actions>");
        for (key, label) in &notice.actions {
            xml.push_str(&format!(
                r#"<action activationType="background" content="{}" arguments="{}"/>"#,
                xml_escape(label),
                xml_escape(key)
            ));
        }
        xml.push_str("</actions>");
    }
    xml.push_str("</toast>");
    xml
}

#[cfg_attr(not(windows), allow(dead_code))]
fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 has no way to carry other control characters.
            c if c.is_control() && !matches!(c, '\t' | '\n' | '\r') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(summary: &str, actions: &[(&str, &str)]) -> Notice {
        Notice {
            summary: summary.into(),
            body: "Apps <no longer> go \"through\" Veil & co".into(),
            actions: actions
                .iter()
                .map(|(k, l)| ((*k).to_owned(), (*l).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn a_toast_carries_the_text_escaped_and_one_button_per_action() {
        let xml = toast_xml(&notice(
            "It's <changed>",
            &[("reapply", "Re-apply"), ("leave", "Leave \"it\"")],
        ));
        assert_eq!(
            xml,
            concat!(
                r#"<toast scenario="reminder"><visual><binding template="ToastGeneric">"#,
                "<text>It&apos;s &lt;changed&gt;</text>",
                "<text>Apps &lt;no longer&gt; go &quot;through&quot; Veil &amp; co</text>",
                "</binding></visual><actions>",
                r#"<action activationType="background" content="Re-apply" arguments="reapply"/>"#,
                r#"<action activationType="background" content="Leave &quot;it&quot;" arguments="leave"/>"#,
                "</actions></toast>"
            )
        );
    }

    #[test]
    fn control_characters_never_reach_the_toast() {
        assert_eq!(xml_escape("a\u{1}b\tc"), "a b\tc");
        assert!(!toast_xml(&notice("x", &[])).contains("<actions>"));
    }

    #[test]
    fn a_category_is_named_by_its_buttons() {
        assert_eq!(
            action_keys(&notice(
                "x",
                &[("reapply", "R"), ("always", "A"), ("leave", "L")]
            )),
            "reapply-always-leave"
        );
    }
}
