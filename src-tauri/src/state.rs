//! What the app holds while it runs: the [`Service`] (engine + system-proxy
//! guard), where the config lives, and which upstream is chosen. Commands
//! and the tray both go through [`AppState`], so they never disagree.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use veil_engine::{EngineConfig, Mode, StatsSnapshot, Strategy};
use veil_system::config::Theme;
use veil_system::ipcheck::IpReport;
use veil_system::sysproxy::{self, SystemProxyStatus};
use veil_system::{Config, ConfigFile, Paths, Service};

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
}

pub struct AppState {
    pub paths: Paths,
    pub config_path: PathBuf,
    /// `Err` when the engine could not start (the port is taken, the config
    /// is broken): every command then says why instead of failing silently.
    service: Result<Arc<Service>, String>,
    selection: Mutex<Selection>,
    /// Found once at start: which desktop backends can take the setting.
    backends: Result<Vec<String>, String>,
    last_ip: Mutex<Option<IpReport>>,
}

impl AppState {
    /// Loads the config and starts the engine. Never fails: a start error is
    /// kept and shown.
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
        let service = match loaded {
            Ok(config) => start_service(&paths, config).await.map_err(|e| e.message),
            Err(e) => Err(e),
        };
        if let Err(e) = &service {
            tracing::error!("the proxy engine did not start: {e}");
        }
        let state = Self {
            paths,
            config_path,
            service,
            selection: Mutex::new(selection.clone()),
            backends,
            last_ip: Mutex::new(None),
        };
        // A pinned upstream that no longer exists falls back to the pool.
        if let Selection::One { .. } = selection
            && let Err(e) = state.apply_selection(&selection).await
        {
            tracing::warn!("the chosen upstream is not available ({e}); using all upstreams");
            let _ = state.apply_selection(&Selection::Pool).await;
        }
        state
    }

    pub fn service(&self) -> AppResult<&Arc<Service>> {
        self.service.as_ref().map_err(|e| {
            AppError::new(
                ErrorKind::Engine,
                format!(
                    "The proxy is not running: {e}. Fix this (Settings, or {}) and restart Veil.",
                    self.config_path.display()
                ),
            )
        })
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
        self.selection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Points new connections at `selection` and remembers it in the
    /// config, so the next start uses it too.
    pub async fn select(&self, selection: Selection) -> AppResult<()> {
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
        let engine = self.service()?.engine();
        match selection {
            Selection::Direct => engine.set_mode(Mode::Direct)?,
            Selection::Pool => {
                let upstreams = self.engine_config().await?.upstreams;
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
        if selection == Selection::Pool && servers.is_empty() {
            selection = Selection::Direct;
        }
        if selection == current {
            self.apply_selection(&selection).await
        } else {
            self.select(selection).await
        }
    }

    pub fn set_strategy(&self, strategy: Strategy) -> AppResult<()> {
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
        let on = self.service().is_ok_and(|s| s.system_proxy_on());
        let drift = self.service().ok().and_then(|s| s.system_proxy_drift());
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
        let service = self.service()?;
        Ok(AppStatus {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            config_path: self.config_path.display().to_string(),
            selection: self.selection(),
            system_proxy: self.system_proxy_state(None),
            ip: self.last_ip(),
            alerts: service.alerts(),
            stats: service.engine().stats(),
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

async fn start_service(paths: &Paths, config: Config) -> AppResult<Arc<Service>> {
    let engine_config = engine_config(paths, config.clone()).await?;
    let service = Arc::new(Service::start(paths.data_dir.clone(), &config, engine_config).await?);
    service.watch_new_services(veil_system::service::WATCH_EVERY);
    Ok(service)
}
