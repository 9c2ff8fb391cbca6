//! A running Veil: the engine, the system-proxy guard that points the OS at
//! it, the IP checker, the traffic-history recorder, and the answers to
//! control requests. `veil run` and the desktop app
//! both run one [`Service`]; the app also swaps the engine when the listener
//! or cache sizes change ([`Service::restart_engine`]).

mod drift;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use veil_engine::{Engine, EngineConfig, EngineError, EngineHandle, Mode, UpstreamSpec};

use crate::Config;
use crate::alerts::{Alert, Alerts};
use crate::control::{Controller, Reply, ReplyFuture, Request, StatusReport};
use crate::history::{self, History, RecorderHandle};
use crate::ipcheck::{IpChecker, IpReport};
use crate::sysproxy::{
    self, AppsReach, SysProxyError, SystemProxyGuard, SystemProxyStatus, VeilProxy,
};

pub use drift::{DriftCause, DriftChoice, SystemProxyDrift};

/// How often a running Veil looks for network services that appeared while
/// the system proxy is on ([`Service::watch_new_services`]).
pub const WATCH_EVERY: std::time::Duration = std::time::Duration::from_secs(20);

/// The engine serving now; shared with the history recorder, which samples
/// whichever engine is in it.
type EngineSlot = Arc<RwLock<Arc<EngineHandle>>>;

pub struct Service {
    data_dir: PathBuf,
    engine: EngineSlot,
    /// The bypass list the OS is given along with Veil's address.
    bypass: RwLock<Vec<String>>,
    /// A fixed proxy or the PAC file (`[proxy] apps_reach`).
    reach: RwLock<AppsReach>,
    guard: Arc<SystemProxyGuard>,
    ipcheck: RwLock<IpChecker>,
    /// `None` when the database could not be opened (logged): the proxy
    /// runs without history rather than not at all.
    history: Option<Arc<History>>,
    recorder: Mutex<Option<RecorderHandle>>,
    /// What failed on its own and changed what Veil does.
    alerts: Alerts,
    /// The exit address the last IP check saw through Veil (the IPv6 leak
    /// check compares it with this machine's addresses).
    last_exit_ip: Mutex<Option<String>>,
    /// Held by each IP check, so a proxied check of an upstream's exit
    /// never runs beside the direct side of the masked-IP check.
    ipcheck_turn: tokio::sync::Mutex<()>,
    /// The OS setting watched while on ([`Service::watch_system_proxy`]).
    drift: drift::DriftState,
    /// Every upstream this Veil may use, for [`Request::Select`] (the
    /// engine holds only the chosen ones).
    upstreams: RwLock<Vec<UpstreamSpec>>,
    /// The one upstream chosen over the control channel, if any.
    pinned: RwLock<Option<String>>,
}

impl Service {
    /// Starts the engine (`engine`, built from `config`) and the history
    /// recorder. The caller recovers a crashed Veil's system proxy settings
    /// first ([`sysproxy::recover`]) and binds the control socket.
    pub async fn start(
        data_dir: PathBuf,
        config: &Config,
        mut engine: EngineConfig,
    ) -> Result<Self, EngineError> {
        let bypass = engine.bypass.clone();
        let upstreams = engine.upstreams.clone();
        if let Some(limit) = raise_fd_limit(engine.limits.max_connections) {
            // What the engine may hold; the rest stays for the history, the
            // cache's files, logs, DNS sockets and the restore at exit.
            let budget = (limit as usize).saturating_sub(FD_RESERVE);
            engine.limits.fd_budget = Some(budget);
            tracing::debug!(limit, budget, "open-file budget");
        }
        let engine: EngineSlot = Arc::new(RwLock::new(Arc::new(Engine::start(engine).await?)));
        let history = match History::open(&data_dir, config.history.retention_days).and_then(|h| {
            h.set_max_bytes(config.history.max_mb.saturating_mul(1024 * 1024))?;
            Ok(h)
        }) {
            Ok(history) => Some(Arc::new(history)),
            Err(e) => {
                tracing::warn!("running without traffic history: {e}");
                None
            }
        };
        let recorder = history.as_ref().map(|history| {
            let slot = engine.clone();
            history::spawn_recorder(history.clone(), history::RECORD_EVERY, move || {
                Some(read(&slot).stats())
            })
        });
        Ok(Self {
            guard: Arc::new(SystemProxyGuard::new(&data_dir)),
            data_dir,
            engine,
            bypass: RwLock::new(bypass),
            reach: RwLock::new(config.proxy.apps_reach),
            ipcheck: RwLock::new(IpChecker::new(config)),
            history,
            recorder: Mutex::new(recorder),
            alerts: Alerts::default(),
            last_exit_ip: Mutex::new(None),
            ipcheck_turn: tokio::sync::Mutex::new(()),
            drift: drift::DriftState::default(),
            upstreams: RwLock::new(upstreams),
            pinned: RwLock::new(None),
        })
    }

    /// Every upstream this Veil may choose from (after the list changed).
    pub fn set_upstream_list(&self, upstreams: Vec<UpstreamSpec>) {
        *self
            .upstreams
            .write()
            .unwrap_or_else(PoisonError::into_inner) = upstreams;
    }

    /// Routes new connections directly, through every upstream, or through
    /// the one named; refused (nothing changes) when that one is unknown or
    /// there is no upstream to go through.
    pub fn select(&self, mode: Mode, upstream: Option<&str>) -> Result<(), String> {
        let engine = self.engine();
        if mode == Mode::Direct {
            engine.set_mode(Mode::Direct).map_err(|e| e.to_string())?;
        } else {
            let all = self
                .upstreams
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            let chosen: Vec<_> = match upstream {
                Some(name) => all.into_iter().filter(|u| u.name == name).collect(),
                None => all,
            };
            if chosen.is_empty() {
                return Err(match upstream {
                    Some(name) => format!("no upstream is named {name:?}"),
                    None => "no upstream is configured".to_owned(),
                });
            }
            engine.set_upstreams(chosen).map_err(|e| e.to_string())?;
            engine.set_mode(Mode::Proxy).map_err(|e| e.to_string())?;
        }
        *self.pinned.write().unwrap_or_else(PoisonError::into_inner) =
            upstream.filter(|_| mode == Mode::Proxy).map(str::to_owned);
        Ok(())
    }

    /// The engine serving now (a restart swaps it; holders of the old one
    /// see it shut down).
    pub fn engine(&self) -> Arc<EngineHandle> {
        read(&self.engine)
    }

    /// The traffic history, when its database opened.
    pub fn history(&self) -> Option<&Arc<History>> {
        self.history.as_ref()
    }

    /// The public IP directly and through this engine's listener.
    pub async fn check_ip(&self) -> IpReport {
        let checker = self
            .ipcheck
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let report = {
            let _turn = self.ipcheck_turn.lock().await;
            checker.check(&self.engine()).await
        };
        *self
            .last_exit_ip
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = report.via_proxy.ip.clone();
        report
    }

    /// The exit addresses of one upstream, asked through it alone, never
    /// while the masked-IP check runs.
    pub async fn exit_ip(&self, through: &crate::ipcheck::Through) -> crate::ipcheck::ExitIp {
        let settings = self
            .ipcheck
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .settings
            .clone();
        let _turn = self.ipcheck_turn.lock().await;
        crate::ipcheck::exit_of(through, &settings).await
    }

    /// The exit address the last IP check saw through Veil, if any.
    pub fn last_exit_ip(&self) -> Option<String> {
        self.last_exit_ip
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// What the Settings page changed, from `before` to `after` (both
    /// already in `config.toml`). Without `restarted` the running engine
    /// takes the routing and cache switches in place; with it, a new engine
    /// started from `after` has them already. The OS side (bypass list,
    /// how apps reach Veil), history retention and the IP check follow
    /// either way.
    pub async fn apply_settings(
        &self,
        before: &Config,
        after: &Config,
        restarted: bool,
    ) -> Result<(), veil_engine::EngineError> {
        if !restarted {
            let engine = self.engine();
            let rules: Vec<_> = after.rules.iter().map(|(k, v)| (k.clone(), *v)).collect();
            engine.set_routing(&after.proxy.bypass, &rules)?;
            engine.set_cache_enabled(after.cache.enabled);
            engine.set_cache_share_across_routes(after.cache.share_across_routes);
        }
        if after.proxy.bypass != before.proxy.bypass {
            self.set_bypass(after.proxy.bypass.clone()).await;
        }
        self.set_apps_reach(after.proxy.apps_reach).await;
        if let Some(history) = self.history()
            && let Err(e) = history.set_retention_days(after.history.retention_days)
        {
            tracing::warn!("traffic history not pruned: {e}");
        }
        self.set_ipcheck(after);
        Ok(())
    }

    /// New IP-check endpoints, bypass list or rules (after a settings change).
    pub fn set_ipcheck(&self, config: &Config) {
        *self.ipcheck.write().unwrap_or_else(PoisonError::into_inner) = IpChecker::new(config);
    }

    /// While the system proxy is on, covers network services that appear
    /// (a dock, a new Wi-Fi service on macOS) every `every`: their own
    /// settings are saved first, then pointed at Veil. Nothing is written
    /// when nothing is new. Stops when the service is dropped.
    pub fn watch_new_services(self: &Arc<Self>, every: std::time::Duration) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(service) = weak.upgrade() else {
                    return;
                };
                if !service.system_proxy_on() {
                    continue;
                }
                let guard = service.guard.clone();
                let proxy = service.proxy();
                match blocking(move || guard.cover_new(&proxy)).await {
                    Ok(true) => tracing::info!("a new network service now goes through Veil"),
                    Ok(false) => {}
                    Err(e) => {
                        let now = if service.system_proxy_on() {
                            "the system proxy stays on for the others"
                        } else {
                            "the system proxy is off now and your own settings are back"
                        };
                        service.alerts.raise(
                            "A new network service is not covered",
                            format!("pointing it at Veil failed ({e}); {now}"),
                        );
                    }
                }
            }
        });
    }

    /// What the OS is pointed at when the system proxy is on.
    pub fn proxy(&self) -> VeilProxy {
        VeilProxy {
            listen: self.engine().local_addr(),
            bypass: self
                .bypass
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            reach: *self.reach.read().unwrap_or_else(PoisonError::into_inner),
        }
    }

    /// How apps reach Veil (a fixed proxy or the PAC file, after a settings
    /// change); re-applied at once when the system proxy is on.
    pub async fn set_apps_reach(&self, reach: AppsReach) {
        let before = std::mem::replace(
            &mut *self.reach.write().unwrap_or_else(PoisonError::into_inner),
            reach,
        );
        if before != reach
            && self.system_proxy_on()
            && let Err(e) = self.set_system_proxy(true).await
        {
            self.alerts.raise(
                "The system proxy keeps the previous way to reach Veil",
                format!("switching to {reach:?} could not be applied: {e}"),
            );
        }
    }

    pub fn system_proxy_on(&self) -> bool {
        self.guard.is_on()
    }

    /// `veil status`: who runs, whether it owns the system proxy, counters.
    pub fn status(&self) -> StatusReport {
        let mut status = StatusReport::new(self.engine().stats());
        status.system_proxy = self.system_proxy_on();
        status.system_proxy_drift = self.system_proxy_drift();
        status.alerts = self.alerts();
        status.exit_ip = self.last_exit_ip();
        status.pinned_upstream = self
            .pinned
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        status
    }

    /// What failed on its own and changed what Veil does, newest last.
    pub fn alerts(&self) -> Vec<Alert> {
        self.alerts.all()
    }

    /// Forgets the alerts (the user dismissed them).
    pub fn clear_alerts(&self) {
        self.alerts.clear();
    }

    /// Records something the user must hear about (shown by `veil status`,
    /// the window and the tray).
    pub fn raise_alert(&self, what: impl Into<String>, why: impl Into<String>) {
        self.alerts.raise(what, why);
    }

    /// Points the OS at this engine (saving the user's settings first) or
    /// puts the user's settings back. The desktop tools are separate
    /// processes that take a moment, so this runs on a blocking thread.
    pub async fn set_system_proxy(&self, on: bool) -> Result<SystemProxyStatus, SysProxyError> {
        let guard = self.guard.clone();
        let proxy = self.proxy();
        let data_dir = self.data_dir.clone();
        let result = blocking(move || {
            if on {
                guard.enable(&proxy)?;
            } else {
                guard.disable()?;
            }
            sysproxy::status(&data_dir)
        })
        .await;
        if result.is_ok() {
            self.drift_settled();
        }
        result
    }

    /// The OS's proxy settings now and the ones Veil saved.
    pub async fn system_proxy_status(&self) -> Result<SystemProxyStatus, SysProxyError> {
        let data_dir = self.data_dir.clone();
        blocking(move || sysproxy::status(&data_dir)).await
    }

    /// Replaces the engine with one built from `config` (a new listener or
    /// cache sizes). The old engine stops first so its port is free. When
    /// the new one cannot start, `previous` (what ran before) starts again
    /// and the error is returned; if even that fails, the system proxy is
    /// turned off so nothing points at a closed port. The OS follows the
    /// listener that runs in the end.
    pub async fn restart_engine(
        &self,
        config: EngineConfig,
        previous: EngineConfig,
    ) -> Result<(), EngineError> {
        self.engine().shutdown().await;
        let (engine, bypass, result) = match Engine::start(config.clone()).await {
            Ok(engine) => (engine, config.bypass, Ok(())),
            Err(e) => match Engine::start(previous.clone()).await {
                Ok(engine) => (engine, previous.bypass, Err(e)),
                Err(again) => {
                    // Nothing listens now: leaving the OS pointed here would
                    // strand every app, so the user's settings come back,
                    // and the user is told.
                    let off = if self.system_proxy_on() {
                        match self.set_system_proxy(false).await {
                            Ok(_) => {
                                "; the system proxy is off (your own settings are back)".to_owned()
                            }
                            Err(off) => format!("; turning the system proxy off failed too: {off}"),
                        }
                    } else {
                        String::new()
                    };
                    self.alerts.raise(
                        "Veil is not listening",
                        format!(
                            "the new listener did not start ({e}) and the previous one did not \
                             start again ({again}){off}"
                        ),
                    );
                    return Err(e);
                }
            },
        };
        *self.engine.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(engine);
        self.set_bypass(bypass).await;
        result
    }

    /// The bypass list the OS gets with Veil's address (after a settings
    /// change); re-applied at once when the system proxy is on.
    pub async fn set_bypass(&self, bypass: Vec<String>) {
        *self.bypass.write().unwrap_or_else(PoisonError::into_inner) = bypass;
        if self.system_proxy_on()
            && let Err(e) = self.set_system_proxy(true).await
        {
            self.alerts.raise(
                "The system proxy keeps the previous bypass list",
                format!("the new bypass list could not be applied: {e}"),
            );
        }
    }

    /// Puts the user's proxy settings back (first: once the listener
    /// closes, anything still pointing at it is stranded), then stops the
    /// engine. `Ok(true)` when settings were restored.
    pub async fn shutdown(&self) -> Result<bool, SysProxyError> {
        let guard = self.guard.clone();
        let restored = blocking(move || guard.disable()).await;
        self.engine().shutdown().await;
        let recorder = self
            .recorder
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(recorder) = recorder {
            // The last counters, after the engine stopped.
            recorder.stop().await;
        }
        restored
    }

    fn cache_reply(&self) -> Reply {
        Reply::Cache {
            ok: true,
            cache: Box::new(self.engine().stats().cache),
        }
    }
}

/// Each tunnel holds up to six descriptors (two sockets, and on Linux two
/// splice pipes of two ends each), and the history, cache, logs and the
/// desktop tools need some of their own. The soft limit (often 1024) is
/// raised towards that, never past the hard limit; a limit that cannot be
/// raised is logged, and the engine's descriptor budget (the limit less
/// [`FD_RESERVE`]) then answers new clients past it with a 503. Returns the
/// soft limit now in force, when it is known.
fn raise_fd_limit(max_connections: usize) -> Option<u64> {
    #[cfg(unix)]
    {
        let wanted = (max_connections as u64)
            .saturating_mul(6)
            .saturating_add(FD_RESERVE as u64);
        match rlimit::increase_nofile_limit(wanted) {
            Ok(got) => {
                if got < wanted {
                    tracing::warn!(
                        "open files limited to {got} (wanted {wanted} for {max_connections} \
                         connections); past it new clients get a 503"
                    );
                }
                Some(got)
            }
            Err(e) => {
                tracing::warn!("the open-file limit could not be raised: {e}");
                rlimit::getrlimit(rlimit::Resource::NOFILE)
                    .ok()
                    .map(|(soft, _)| soft)
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = max_connections;
        None
    }
}

/// Descriptors kept out of the engine's budget for everything else: the
/// history database, the cache's files, log files, DNS sockets, the control
/// socket and the desktop tools the system-proxy restore runs at exit.
const FD_RESERVE: usize = 128;

fn read(slot: &EngineSlot) -> Arc<EngineHandle> {
    slot.read().unwrap_or_else(PoisonError::into_inner).clone()
}

/// Runs desktop-tool work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, SysProxyError> + Send + 'static,
) -> Result<T, SysProxyError> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
        Err(SysProxyError::Tool {
            command: "system proxy task".to_owned(),
            detail: e.to_string(),
        })
    })
}

fn sysproxy_reply(result: Result<SystemProxyStatus, SysProxyError>, doing: &str) -> Reply {
    match result {
        Ok(status) => Reply::Sysproxy {
            ok: true,
            sysproxy: Box::new(status),
        },
        Err(e) => Reply::error(format!("{doing}: {e}")),
    }
}

impl Controller for Service {
    fn handle(&self, request: Request) -> ReplyFuture<'_> {
        Box::pin(async move {
            match request {
                Request::Status => Reply::Status {
                    ok: true,
                    status: Box::new(self.status()),
                },
                Request::SysproxyOn => sysproxy_reply(
                    self.set_system_proxy(true).await,
                    "system proxy not changed",
                ),
                Request::SysproxyOff => sysproxy_reply(
                    self.set_system_proxy(false).await,
                    "could not restore your settings",
                ),
                Request::SysproxyStatus => sysproxy_reply(
                    self.system_proxy_status().await,
                    "could not read the system proxy settings",
                ),
                Request::CacheStats => self.cache_reply(),
                Request::CloseConnections { ids } => Reply::Closed {
                    ok: true,
                    closed: self.engine().close_connections(ids.as_deref()),
                },
                Request::CacheClear => {
                    self.engine().cache_clear().await;
                    self.cache_reply()
                }
                Request::CachePurge { url } => match self.engine().cache_purge(&url).await {
                    Ok(()) => self.cache_reply(),
                    Err(e) => Reply::error(e.to_string()),
                },
                Request::Ip => Reply::Ip {
                    ok: true,
                    ip: Box::new(self.check_ip().await),
                },
                Request::Coverage => crate::coverage::reply(self.engine().local_addr()).await,
                Request::Leaks => {
                    let status = self.status();
                    crate::leaks::reply(status.engine, status.exit_ip).await
                }
                Request::Select { mode, upstream } => {
                    match self.select(mode, upstream.as_deref()) {
                        Ok(()) => Reply::Status {
                            ok: true,
                            status: Box::new(self.status()),
                        },
                        Err(e) => Reply::error(format!("route not changed: {e}")),
                    }
                }
                Request::ClearAlerts => {
                    self.clear_alerts();
                    Reply::Status {
                        ok: true,
                        status: Box::new(self.status()),
                    }
                }
                Request::Window { .. } | Request::WindowEvents { .. } => Reply::error(
                    "this is an engine's control socket: the window talks to the Veil app on its \
                     window socket",
                ),
            }
        })
    }
}
