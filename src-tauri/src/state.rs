//! What the app holds while it runs: the [`Service`] (engine + system-proxy
//! guard), where the config lives, and which upstream is chosen. Commands
//! and the tray both go through [`AppState`], so they never disagree. When
//! `veil run` already serves this user, the app holds no engine of its own
//! but an [`Attached`] one, driven over the control socket.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use veil_engine::CacheStats;
use veil_engine::{EngineConfig, Mode, StatsSnapshot, Strategy};
use veil_system::alerts::Alert;
use veil_system::config::Theme;
use veil_system::instance::{InstanceError, InstanceLock};
use veil_system::ipcheck::{ExitIp, IpReport};
use veil_system::sysproxy::{self, Recovery, SystemProxyStatus};
use veil_system::{Config, ConfigFile, Paths, Service};

use crate::attached::{Attached, AttachedTo};
use crate::error::{AppError, AppResult, ErrorKind};

/// Which upstream new connections use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Selection {
    /// Straight from this machine (mode `direct`).
    Direct,
    /// Every configured upstream, picked by the strategy.
    Pool,
    /// One upstream only.
    One { name: String },
}

impl Selection {
    fn from_config(config: &Config) -> Self {
        match (config.proxy.mode, &config.app.pinned_upstream) {
            (Mode::Direct, _) => Selection::Direct,
            (Mode::Proxy, Some(name)) => Selection::One { name: name.clone() },
            (Mode::Proxy, None) => Selection::Pool,
        }
    }
}

/// The system proxy as the window shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct SysProxyState {
    /// Veil has pointed the OS at itself.
    pub on: bool,
    /// A desktop backend was found (GNOME, KDE, Windows, macOS).
    pub supported: bool,
    pub backends: Vec<String>,
    /// Why it is unsupported, or what the OS has when it is not Veil.
    pub detail: Option<String>,
    /// The OS setting no longer reads back as Veil's (another program, a
    /// network change): Veil asks before changing it back.
    pub drift: Option<veil_system::service::SystemProxyDrift>,
}

/// Everything the Overview needs in one answer.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct AppStatus {
    pub version: String,
    pub config_path: String,
    pub selection: Selection,
    pub system_proxy: SysProxyState,
    /// The last masked-IP check, if one finished.
    pub ip: Option<IpReport>,
    /// What failed on its own and changed what Veil does (newest last).
    pub alerts: Vec<veil_system::alerts::Alert>,
    pub stats: StatsSnapshot,
    /// Set when the engine is `veil run`'s, not this app's: what works
    /// from the window then.
    pub attached: Option<AttachedTo>,
}

/// Who runs the engine the window shows.
enum Running {
    /// This process: the app's own [`Service`].
    Own(Arc<Service>),
    /// Another process that holds the instance lock (`veil run`).
    Attached(Box<Attached>),
    /// Nothing: the engine could not start (the port is taken, the config
    /// is broken); every command then says why instead of failing silently.
    Failed(String),
}

pub struct AppState {
    pub paths: Paths,
    pub config_path: PathBuf,
    running: Running,
    /// One Veil per user: held while this app runs its own engine.
    _instance: Option<InstanceLock>,
    selection: Mutex<Selection>,
    /// Found once at start: which desktop backends can take the setting.
    backends: Result<Vec<String>, String>,
    last_ip: Mutex<Option<IpReport>>,
    /// Each upstream's exit addresses, as last checked through it alone.
    exits: Mutex<std::collections::HashMap<String, ExitIp>>,
}

impl AppState {
    /// Takes the instance lock, loads the config and starts the engine;
    /// when another Veil holds the lock, attaches to it instead. Never
    /// fails: a start error is kept and shown.
    pub async fn start(paths: Paths) -> Self {
        let config_path = paths.config_file.clone();
        let backends = sysproxy::detect_backends()
            .map(|b| b.iter().map(|b| b.name().to_owned()).collect())
            .map_err(|e| e.to_string());
        let loaded = Config::load(&config_path).map_err(|e| e.to_string());
        let selection = loaded
            .as_ref()
            .map(Selection::from_config)
            .unwrap_or(Selection::Direct);
        let (running, instance) = match InstanceLock::acquire(&paths) {
            Ok(lock) => {
                recover_from_crash(&paths);
                let running = match loaded {
                    Ok(config) => match start_service(&paths, config).await {
                        Ok(service) => Running::Own(service),
                        Err(e) => Running::Failed(e.message),
                    },
                    Err(e) => Running::Failed(e),
                };
                (running, Some(lock))
            }
            Err(InstanceError::Held { pid, .. }) => {
                match Attached::connect(paths.control_socket(), pid).await {
                    Ok(attached) => {
                        tracing::info!(
                            "attached to the Veil engine of pid {} (one Veil per user)",
                            attached.pid()
                        );
                        (Running::Attached(Box::new(attached)), None)
                    }
                    Err(e) => (Running::Failed(e), None),
                }
            }
            Err(e) => (Running::Failed(e.to_string()), None),
        };
        if let Running::Failed(e) = &running {
            tracing::error!("the proxy engine did not start: {e}");
        }
        let attached = matches!(running, Running::Attached(_));
        let state = Self {
            paths,
            config_path,
            running,
            _instance: instance,
            selection: Mutex::new(selection.clone()),
            backends,
            last_ip: Mutex::new(None),
            exits: Mutex::default(),
        };
        // A pinned upstream that no longer exists falls back to the pool.
        if !attached
            && let Selection::One { .. } = selection
            && let Err(e) = state.apply_selection(&selection).await
        {
            tracing::warn!("the chosen upstream is not available ({e}); using all upstreams");
            let _ = state.apply_selection(&Selection::Pool).await;
            // A route the user did not choose: said where they look.
            if let Ok(service) = state.service() {
                service.raise_alert(
                    "The chosen upstream is not available",
                    format!(
                        "{e}. Veil uses all your upstreams instead (never direct); choose \
                         another route on the Overview or in the tray."
                    ),
                );
            }
        }
        state
    }

    /// This app's own engine; an error that says why when there is none
    /// (it did not start, or the window is attached to `veil run`'s).
    pub fn service(&self) -> AppResult<&Arc<Service>> {
        match &self.running {
            Running::Own(service) => Ok(service),
            Running::Attached(attached) => Err(AppError::new(
                ErrorKind::Engine,
                format!(
                    "Not available while attached to the Veil engine started by `veil run` \
                     (pid {}): this needs the engine in this app. Stop that Veil and start \
                     this one again to change it here.",
                    attached.pid()
                ),
            )),
            Running::Failed(e) => Err(AppError::new(
                ErrorKind::Engine,
                format!(
                    "The proxy is not running: {e}. Fix this (Settings, or {}) and restart Veil.",
                    self.config_path.display()
                ),
            )),
        }
    }

    /// The engine of `veil run` this window drives, when attached.
    pub fn attached(&self) -> Option<&Attached> {
        match &self.running {
            Running::Attached(attached) => Some(attached),
            _ => None,
        }
    }

    /// Whether an engine (this app's or an attached one) is there.
    pub fn engine_running(&self) -> bool {
        !matches!(self.running, Running::Failed(_))
    }

    /// The system proxy points at the engine (this app's or the attached).
    pub fn system_proxy_on(&self) -> bool {
        match &self.running {
            Running::Own(service) => service.system_proxy_on(),
            Running::Attached(attached) => attached.last().is_some_and(|s| s.system_proxy),
            Running::Failed(_) => false,
        }
    }

    /// A change of the OS setting by someone else while Veil had it on.
    pub fn system_proxy_drift(&self) -> Option<veil_system::service::SystemProxyDrift> {
        match &self.running {
            Running::Own(service) => service.system_proxy_drift(),
            Running::Attached(attached) => attached.last().and_then(|s| s.system_proxy_drift),
            Running::Failed(_) => None,
        }
    }

    pub async fn set_system_proxy(&self, on: bool) -> AppResult<SystemProxyStatus> {
        match &self.running {
            Running::Attached(attached) => attached.set_system_proxy(on).await,
            _ => Ok(self.service()?.set_system_proxy(on).await?),
        }
    }

    pub fn alerts(&self) -> Vec<Alert> {
        match &self.running {
            Running::Own(service) => service.alerts(),
            Running::Attached(attached) => attached.last().map(|s| s.alerts).unwrap_or_default(),
            Running::Failed(_) => Vec::new(),
        }
    }

    pub async fn clear_alerts(&self) -> AppResult<()> {
        match &self.running {
            Running::Attached(attached) => attached.clear_alerts().await,
            _ => {
                self.service()?.clear_alerts();
                Ok(())
            }
        }
    }

    /// The counters now (the attached engine's as last received).
    pub fn stats(&self) -> Option<StatsSnapshot> {
        match &self.running {
            Running::Own(service) => Some(service.engine().stats()),
            Running::Attached(attached) => attached.last().map(|s| s.engine),
            Running::Failed(_) => None,
        }
    }

    /// The counters for the window's tick: an attached engine is asked
    /// again, and `None` when it no longer answers.
    pub async fn fresh_stats(&self) -> Option<StatsSnapshot> {
        match &self.running {
            Running::Attached(attached) => attached.refresh().await.ok().map(|s| s.engine),
            _ => self.stats(),
        }
    }

    pub async fn check_ip(&self) -> AppResult<IpReport> {
        match &self.running {
            Running::Attached(attached) => attached.check_ip().await,
            _ => Ok(self.service()?.check_ip().await),
        }
    }

    pub async fn cache_clear(&self) -> AppResult<CacheStats> {
        match &self.running {
            Running::Attached(attached) => attached.cache_clear().await,
            _ => {
                let engine = self.service()?.engine();
                engine.cache_clear().await;
                Ok(engine.stats().cache)
            }
        }
    }

    /// Closes client connections (these ids, or all) in whichever engine
    /// runs, this app's or the `veil run` it is attached to.
    pub async fn close_connections(&self, ids: Option<&[u64]>) -> AppResult<usize> {
        match &self.running {
            Running::Attached(attached) => {
                attached.close_connections(ids.map(<[u64]>::to_vec)).await
            }
            _ => Ok(self.service()?.engine().close_connections(ids)),
        }
    }

    pub fn config(&self) -> AppResult<Config> {
        Ok(Config::load(&self.config_path)?)
    }

    /// The engine's config from the file as it is now.
    pub async fn engine_config(&self) -> AppResult<EngineConfig> {
        engine_config(&self.paths, self.config()?).await
    }

    /// The engine's config from `config`.
    pub async fn engine_config_of(&self, config: Config) -> AppResult<EngineConfig> {
        engine_config(&self.paths, config).await
    }

    pub fn selection(&self) -> Selection {
        if let Some(attached) = self.attached() {
            return match attached.last() {
                Some(s) if s.engine.mode == Mode::Proxy => match s.pinned_upstream {
                    Some(name) => Selection::One { name },
                    None => Selection::Pool,
                },
                _ => Selection::Direct,
            };
        }
        self.selection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Points new connections at `selection` and remembers it in the
    /// config, so the next start uses it too.
    /// Attached, the route changes in `veil run`'s engine only: its
    /// config is its own (command-line flags included), so nothing is saved.
    pub async fn select(&self, selection: Selection) -> AppResult<()> {
        if let Some(attached) = self.attached() {
            let (mode, upstream) = match selection {
                Selection::Direct => (Mode::Direct, None),
                Selection::Pool => (Mode::Proxy, None),
                Selection::One { name } => (Mode::Proxy, Some(name)),
            };
            attached.select(mode, upstream).await?;
            return Ok(());
        }
        self.apply_selection(&selection).await?;
        let mut file = ConfigFile::open(&self.config_path)?;
        match &selection {
            Selection::Direct => file.set("proxy", "mode", "direct")?,
            Selection::Pool => {
                file.set("proxy", "mode", "proxy")?;
                file.unset("app", "pinned_upstream")?;
            }
            Selection::One { name } => {
                file.set("proxy", "mode", "proxy")?;
                file.set("app", "pinned_upstream", name.as_str())?;
            }
        }
        file.save()?;
        Ok(())
    }

    async fn apply_selection(&self, selection: &Selection) -> AppResult<()> {
        let service = self.service()?;
        let engine = service.engine();
        match selection {
            Selection::Direct => engine.set_mode(Mode::Direct)?,
            Selection::Pool => {
                let upstreams = self.engine_config().await?.upstreams;
                service.set_upstream_list(upstreams.clone());
                engine.set_upstreams(upstreams)?;
                engine.set_mode(Mode::Proxy)?;
            }
            Selection::One { name } => {
                let upstream = self
                    .engine_config()
                    .await?
                    .upstreams
                    .into_iter()
                    .find(|u| &u.name == name)
                    .ok_or_else(|| AppError::invalid(format!("No upstream is named {name:?}.")))?;
                engine.set_upstreams(vec![upstream])?;
                engine.set_mode(Mode::Proxy)?;
            }
        }
        *self
            .selection
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = selection.clone();
        Ok(())
    }

    /// After the upstream list changed: the engine gets the new list (for
    /// the current selection), so no restart is needed. A pinned upstream
    /// that is gone falls back to the pool, and removing the last one to
    /// direct (what the user did, saved so the next start works). When the
    /// new list cannot be applied (a locked keyring, a bad upstream) the
    /// engine keeps the route it had and the error is returned: it never
    /// falls back to direct on its own. The caller puts the file back.
    pub async fn reload_upstreams(&self) -> AppResult<()> {
        let current = self.selection();
        let servers = self.config()?.upstreams.server;
        let mut selection = current.clone();
        if let Selection::One { name } = &selection
            && !servers.iter().any(|s| &s.name == name)
        {
            selection = Selection::Pool;
        }
        let last_removed = selection == Selection::Pool && servers.is_empty();
        if last_removed {
            selection = Selection::Direct;
        }
        if selection == current {
            self.apply_selection(&selection).await
        } else {
            self.select(selection).await?;
            // Never direct without saying so: the window, the tray and
            // `veil status` show it until dismissed.
            if last_removed && let Ok(service) = self.service() {
                service.raise_alert(
                    "Veil now connects directly",
                    "the last upstream was removed, so there is nothing to go through: traffic \
                     leaves from this machine's own address. Add an upstream to be masked again.",
                );
            }
            Ok(())
        }
    }

    pub fn set_strategy(&self, strategy: Strategy) -> AppResult<()> {
        self.service()?;
        let mut file = ConfigFile::open(&self.config_path)?;
        file.set("upstreams", "strategy", strategy.to_string())?;
        file.save()?;
        self.service()?.engine().set_strategy(strategy);
        Ok(())
    }

    pub fn theme(&self) -> Theme {
        self.config().map(|c| c.app.theme).unwrap_or_default()
    }

    pub fn system_proxy_state(&self, last: Option<&SystemProxyStatus>) -> SysProxyState {
        let on = self.system_proxy_on();
        let drift = self.system_proxy_drift();
        let (supported, backends, mut detail) = match &self.backends {
            Ok(names) => (!names.is_empty(), names.clone(), None),
            Err(e) => (false, Vec::new(), Some(e.clone())),
        };
        if let Some(status) = last
            && let Some(error) = status.backends.iter().find_map(|b| b.error.clone())
        {
            detail = Some(error);
        }
        SysProxyState {
            on,
            supported,
            backends,
            detail,
            drift,
        }
    }

    /// The exit addresses of one configured upstream, asked through it
    /// alone (never directly, never beside the masked-IP check); kept for
    /// the Upstreams page.
    pub async fn check_exit_ip(&self, name: &str) -> AppResult<ExitIp> {
        use veil_system::ipcheck::{IpCheckSettings, Through};
        let engine = self.engine_config().await?;
        let spec = engine
            .upstreams
            .iter()
            .find(|u| u.name == name)
            .cloned()
            .ok_or_else(|| AppError::invalid(format!("No upstream is named {name:?}.")))?;
        let through = Through {
            spec,
            dns_servers: engine.dns_servers.clone(),
            timeout: engine
                .limits
                .connect_timeout
                .max(std::time::Duration::from_secs(5)),
        };
        let exit = match &self.running {
            Running::Own(service) => service.exit_ip(&through).await,
            _ => {
                let settings = IpCheckSettings::from_config(&self.config()?.ipcheck);
                veil_system::ipcheck::exit_of(&through, &settings).await
            }
        };
        self.exits
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), exit.clone());
        Ok(exit)
    }

    /// The exit addresses checked so far, by upstream name.
    pub fn exit_ips(&self) -> std::collections::HashMap<String, ExitIp> {
        self.exits
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn last_ip(&self) -> Option<IpReport> {
        self.last_ip
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Keeps `report` unless a check started later already finished (a
    /// slow check of an old route must not replace the current answer).
    /// `false` when it was older.
    pub fn set_last_ip(&self, report: IpReport) -> bool {
        let mut last = self.last_ip.lock().unwrap_or_else(PoisonError::into_inner);
        if last
            .as_ref()
            .is_some_and(|l| l.checked_unix_ms > report.checked_unix_ms)
        {
            return false;
        }
        *last = Some(report);
        true
    }

    pub fn status(&self) -> AppResult<AppStatus> {
        let stats = match self.stats() {
            Some(stats) => stats,
            // Says why: not started, or the attached one never answered.
            None => {
                self.service()?;
                return Err(AppError::new(ErrorKind::Engine, "No engine status yet."));
            }
        };
        Ok(AppStatus {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            config_path: self.config_path.display().to_string(),
            selection: self.selection(),
            system_proxy: self.system_proxy_state(None),
            ip: self.last_ip(),
            alerts: self.alerts(),
            stats,
            attached: self.attached().map(Attached::describe),
        })
    }
}

/// The engine's config from `config`, with passwords from the keyring (a
/// blocking D-Bus call on Linux, so off the async threads) and the HTTP
/// cache in the cache folder.
async fn engine_config(paths: &Paths, config: Config) -> AppResult<EngineConfig> {
    let cache_dir = paths.cache_dir.join("http");
    tokio::task::spawn_blocking(move || {
        let mut engine = config.engine_config()?;
        engine.cache.dir = Some(cache_dir);
        Ok(engine)
    })
    .await
    .map_err(|e| AppError::new(ErrorKind::Engine, e.to_string()))?
}

/// A guard file whose owner is gone means a Veil died with the system
/// proxy pointing at it: the user's settings go back before anything else.
/// Only the lock holder does this (an attached app must not touch it).
fn recover_from_crash(paths: &Paths) {
    match sysproxy::recover(&paths.data_dir) {
        Ok(Recovery::Restored { pid, .. }) => tracing::warn!(
            "a Veil that stopped unexpectedly (pid {pid}) had left the system proxy pointing \
             at it; the previous settings are restored"
        ),
        Ok(_) => {}
        Err(e) => tracing::error!("restoring the system proxy after a crash failed: {e}"),
    }
}

async fn start_service(paths: &Paths, config: Config) -> AppResult<Arc<Service>> {
    let engine_config = engine_config(paths, config.clone()).await?;
    let service = Arc::new(Service::start(paths.data_dir.clone(), &config, engine_config).await?);
    service.watch_new_services(veil_system::service::WATCH_EVERY);
    Ok(service)
}
