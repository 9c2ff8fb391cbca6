//! The guard watches: while Veil has the system proxy on, every change
//! signal of the OS setting (`sysproxy::watch`), and a slow poll besides,
//! reads the settings back. When they no longer point at Veil (another
//! program, a network change), the user hears it at once: an alert (the
//! window, the tray, `veil status`) and a desktop notification with
//! **Re-apply** and **Leave it**. Veil never fights another program on its
//! own; only after a network change, and only once the user has said
//! "always" for that case (kept in the data folder), does it re-apply by
//! itself, and says so.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Service, blocking};
use crate::notify::{Notice, Notifier};
use crate::sysproxy::{self, Drifted};

/// The slow poll behind the change signals.
pub const POLL_EVERY: Duration = Duration::from_secs(30);
/// Writes come in bursts (one per key): they are read back once.
const SETTLE: Duration = Duration::from_millis(50);

/// Why the setting no longer points at Veil.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftCause {
    /// Another program wrote the setting.
    OtherProgram,
    /// The network changed (a new network service, another default route)
    /// and the setting with it.
    Network,
}

/// The system proxy read back differently from what Veil applied.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemProxyDrift {
    pub cause: DriftCause,
    /// The desktop backend (`gnome`, `kde`, `windows`, `macos`).
    pub backend: String,
    /// The first setting that differs, as read back.
    pub detail: String,
    /// What the OS has now, in words.
    pub now: String,
    /// When it was seen (Unix milliseconds).
    pub since_unix_ms: u64,
}

impl SystemProxyDrift {
    pub fn headline(&self) -> &'static str {
        match self.cause {
            DriftCause::OtherProgram => "Another program changed your proxy setting",
            DriftCause::Network => "The network changed, and your proxy setting with it",
        }
    }
}

/// The user's answer to a drift: a notification button or the window's.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftChoice {
    /// Point the OS at Veil again.
    Reapply,
    /// Re-apply, and from now on re-apply by itself after a network change.
    AlwaysAfterNetworkChange,
    /// Keep what the OS has; Veil's switch goes off without restoring.
    Leave,
}

impl DriftChoice {
    fn key(self) -> &'static str {
        match self {
            DriftChoice::Reapply => "reapply",
            DriftChoice::AlwaysAfterNetworkChange => "always",
            DriftChoice::Leave => "leave",
        }
    }

    fn from_key(key: &str) -> Option<Self> {
        [Self::Reapply, Self::AlwaysAfterNetworkChange, Self::Leave]
            .into_iter()
            .find(|c| c.key() == key)
    }
}

/// Standing answers, in the data folder.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Choices {
    #[serde(default)]
    reapply_after_network_change: bool,
}

const CHOICES_FILE: &str = "system-proxy-choices.json";

impl Choices {
    fn load(data_dir: &Path) -> Self {
        std::fs::read(data_dir.join(CHOICES_FILE))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    fn store(&self, data_dir: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        crate::config_file::write_atomically(&data_dir.join(CHOICES_FILE), &json)
    }
}

/// What the service keeps for the watch.
#[derive(Default)]
pub(super) struct DriftState {
    current: Mutex<Option<SystemProxyDrift>>,
    /// The network as it was when the setting last read back as Veil's.
    network: Mutex<Option<String>>,
    watcher: Mutex<Option<sysproxy::watch::Watcher>>,
    notifier: Mutex<Option<Notifier>>,
    /// Bumped on every change of the drift, for the app to redraw.
    changed: Mutex<Option<tokio::sync::watch::Sender<u64>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

enum Trigger {
    Look,
    Answer(DriftChoice),
}

impl Service {
    /// Starts watching the OS setting (call once, after start). Stops when
    /// the service is dropped.
    pub fn watch_system_proxy(self: &Arc<Self>) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let look = tx.clone();
        let watcher = sysproxy::watch::start(Arc::new(move || {
            let _ = look.send(Trigger::Look);
        }));
        let answer = tx;
        let notifier = Notifier::start(Arc::new(move |key: String| {
            if let Some(choice) = DriftChoice::from_key(&key) {
                let _ = answer.send(Trigger::Answer(choice));
            }
        }));
        *lock(&self.drift.watcher) = Some(watcher);
        *lock(&self.drift.notifier) = notifier;
        *lock(&self.drift.network) = network_fingerprint();
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut poll = tokio::time::interval(POLL_EVERY);
            poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            poll.tick().await;
            loop {
                let trigger = tokio::select! {
                    t = rx.recv() => match t {
                        Some(t) => t,
                        None => return,
                    },
                    _ = poll.tick() => Trigger::Look,
                };
                let Some(service) = weak.upgrade() else {
                    return;
                };
                match trigger {
                    Trigger::Look => {
                        tokio::time::sleep(SETTLE).await;
                        let mut answers = Vec::new();
                        while let Ok(t) = rx.try_recv() {
                            if let Trigger::Answer(choice) = t {
                                answers.push(choice);
                            }
                        }
                        service.check_drift().await;
                        for choice in answers {
                            service.answer_drift(choice).await;
                        }
                    }
                    Trigger::Answer(choice) => service.answer_drift(choice).await,
                }
            }
        });
    }

    /// The drift seen at the last read-back, if the setting drifted.
    pub fn system_proxy_drift(&self) -> Option<SystemProxyDrift> {
        lock(&self.drift.current).clone()
    }

    /// Told (a new number) whenever the drift appears or goes.
    pub fn watch_drift(&self) -> tokio::sync::watch::Receiver<u64> {
        let mut sender = lock(&self.drift.changed);
        sender
            .get_or_insert_with(|| tokio::sync::watch::channel(0).0)
            .subscribe()
    }

    fn publish_drift(&self) {
        if let Some(sender) = lock(&self.drift.changed).as_ref() {
            sender.send_modify(|n| *n += 1);
        }
    }

    /// Reads the setting back and reports a drift that is new.
    pub async fn check_drift(&self) {
        let guard = self.guard.clone();
        let proxy = self.proxy();
        match blocking(move || guard.drift(&proxy)).await {
            Err(e) => tracing::warn!("reading the system proxy back failed: {e}"),
            Ok(None) => {
                *lock(&self.drift.network) = network_fingerprint();
                if lock(&self.drift.current).take().is_some() {
                    tracing::info!("the system proxy points at Veil again");
                    self.close_notification();
                    self.publish_drift();
                }
            }
            Ok(Some(found)) => self.drifted(found).await,
        }
    }

    async fn drifted(&self, found: Drifted) {
        let network_moved = *lock(&self.drift.network) != network_fingerprint();
        let cause = if found.new_services || network_moved {
            DriftCause::Network
        } else {
            DriftCause::OtherProgram
        };
        let drift = SystemProxyDrift {
            cause,
            backend: found.backend.clone(),
            detail: found.mismatch.to_string(),
            now: found.now.to_string(),
            since_unix_ms: veil_engine::stats::unix_ms(std::time::SystemTime::now()),
        };
        if lock(&self.drift.current)
            .as_ref()
            .is_some_and(|d| d.backend == drift.backend && d.detail == drift.detail)
        {
            return;
        }
        if cause == DriftCause::Network
            && Choices::load(&self.data_dir).reapply_after_network_change
        {
            let result = self.set_system_proxy(true).await;
            match result {
                Ok(_) => self.alerts.raise(
                    "Veil pointed the system proxy at itself again",
                    format!(
                        "the network changed and your proxy setting with it ({}: {}); you \
                         allowed Veil to re-apply after a network change",
                        drift.backend, drift.detail
                    ),
                ),
                Err(e) => self.alerts.raise(
                    "The system proxy could not be re-applied after a network change",
                    e.to_string(),
                ),
            }
            self.publish_drift();
            return;
        }
        self.alerts.raise(
            drift.headline(),
            format!(
                "{}: {}; the OS now has: {}. Veil has not changed it back: choose Re-apply or \
                 Leave it",
                drift.backend, drift.detail, drift.now
            ),
        );
        if let Some(notifier) = lock(&self.drift.notifier).as_ref() {
            notifier.show(notice(&drift));
        }
        *lock(&self.drift.current) = Some(drift);
        self.publish_drift();
    }

    /// The user's answer to the drift (a notification button, the window).
    pub async fn answer_drift(&self, choice: DriftChoice) {
        tracing::info!("system proxy drift answered: {}", choice.key());
        match choice {
            DriftChoice::Reapply | DriftChoice::AlwaysAfterNetworkChange => {
                if choice == DriftChoice::AlwaysAfterNetworkChange {
                    let choices = Choices {
                        reapply_after_network_change: true,
                    };
                    if let Err(e) = choices.store(&self.data_dir) {
                        tracing::warn!("the choice to re-apply was not kept: {e}");
                    }
                }
                if let Err(e) = self.set_system_proxy(true).await {
                    self.alerts
                        .raise("The system proxy was not re-applied", e.to_string());
                }
            }
            DriftChoice::Leave => {
                let guard = self.guard.clone();
                if let Err(e) = blocking(move || guard.release_as_is()).await {
                    self.alerts
                        .raise("Veil could not let go of the system proxy", e.to_string());
                }
            }
        }
        self.drift_settled();
    }

    /// The setting is Veil's again, or the user's: no drift to show.
    pub(super) fn drift_settled(&self) {
        *lock(&self.drift.network) = network_fingerprint();
        if lock(&self.drift.current).take().is_some() {
            self.close_notification();
            self.publish_drift();
        }
    }

    fn close_notification(&self) {
        if let Some(notifier) = lock(&self.drift.notifier).as_ref() {
            notifier.close();
        }
    }
}

fn notice(drift: &SystemProxyDrift) -> Notice {
    let mut actions = vec![("reapply".to_owned(), "Re-apply".to_owned())];
    if drift.cause == DriftCause::Network {
        actions.push((
            "always".to_owned(),
            "Always after a network change".to_owned(),
        ));
    }
    actions.push(("leave".to_owned(), "Leave it".to_owned()));
    Notice {
        summary: drift.headline().to_owned(),
        body: format!(
            "Apps that follow the system proxy no longer go through Veil (now: {}). Re-apply \
             points them at Veil again; Leave it keeps this setting and turns Veil's switch off.",
            drift.now
        ),
        actions,
    }
}

/// The default routes (interface and gateway): what changes when the
/// machine moves to another network. `None` where it is not read.
fn network_fingerprint() -> Option<String> {
    #[cfg(target_os = "linux")]
    {
        let table = std::fs::read_to_string("/proc/net/route").ok()?;
        let defaults: Vec<String> = table
            .lines()
            .skip(1)
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                (fields.get(1) == Some(&"00000000"))
                    .then(|| format!("{} {}", fields[0], fields.get(2).unwrap_or(&"")))
            })
            .collect();
        Some(defaults.join(";"))
    }
    #[cfg(not(target_os = "linux"))]
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_are_kept_and_keys_round_trip() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(!Choices::load(dir.path()).reapply_after_network_change);
        Choices {
            reapply_after_network_change: true,
        }
        .store(dir.path())
        .expect("store");
        assert!(Choices::load(dir.path()).reapply_after_network_change);
        for c in [
            DriftChoice::Reapply,
            DriftChoice::AlwaysAfterNetworkChange,
            DriftChoice::Leave,
        ] {
            assert_eq!(DriftChoice::from_key(c.key()), Some(c));
        }
        assert_eq!(DriftChoice::from_key("other"), None);
    }

    #[test]
    fn only_a_network_change_offers_always() {
        let mut drift = SystemProxyDrift {
            cause: DriftCause::OtherProgram,
            backend: "gnome".into(),
            detail: "mode reads back as 'none', expected 'manual'".into(),
            now: "off (direct)".into(),
            since_unix_ms: 0,
        };
        let keys = |n: &Notice| n.actions.iter().map(|a| a.0.clone()).collect::<Vec<_>>();
        assert_eq!(keys(&notice(&drift)), ["reapply", "leave"]);
        assert!(notice(&drift).summary.contains("Another program"));
        drift.cause = DriftCause::Network;
        assert_eq!(keys(&notice(&drift)), ["reapply", "always", "leave"]);
    }
}
