//! [`SystemProxyGuard`]: the one place that changes the system proxy, and
//! the guard file that lets any later Veil undo the change.
//!
//! The order matters and is the point of this file: read the user's
//! settings, write them to the guard file (flushed to disk), only then
//! change the OS, read the change back, and undo everything if any step
//! fails. Restoring writes the saved values back, checks them, and only then
//! deletes the guard file, so a failed restore can be tried again.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::state::{BackendStatus, ProxyState, SystemProxyStatus};
use super::{
    Backend, Owner, Settings, SysProxyError, VeilProxy, backend_named, detect_backends, login_task,
};

/// The guard file's name in the data folder.
pub const GUARD_FILE: &str = "system-proxy-guard.json";

pub fn guard_path(data_dir: &Path) -> PathBuf {
    data_dir.join(GUARD_FILE)
}

/// What the guard file holds: who changed the system proxy, to what, and
/// what the user had before.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuardFile {
    pub owner: Owner,
    /// The listener the OS was pointed at.
    pub proxy: String,
    pub saved_at_unix: u64,
    pub saved: Vec<SavedSettings>,
}

/// One backend's settings as they were before Veil changed them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedSettings {
    pub backend: String,
    pub settings: Settings,
}

impl GuardFile {
    /// The guard file in `path`; `None` when there is none.
    pub fn load(path: &Path) -> Result<Option<Self>, SysProxyError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(SysProxyError::GuardIo {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| SysProxyError::GuardCorrupt {
                path: path.to_path_buf(),
                message: e.to_string(),
            })
    }

    fn store(&self, path: &Path) -> Result<(), SysProxyError> {
        let io = |source| SysProxyError::GuardIo {
            path: path.to_path_buf(),
            source,
        };
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| io(std::io::Error::other(e.to_string())))?;
        crate::config_file::write_atomically(path, &json).map_err(io)
    }

    fn remove(path: &Path) -> Result<(), SysProxyError> {
        match std::fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(SysProxyError::GuardIo {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Points every saved backend at `proxy` and reads each back. What a
    /// backend gained since it was saved (a network service plugged in while
    /// on) is added to the file on disk first, so nothing is changed that
    /// the file cannot put back.
    fn apply(
        &mut self,
        path: &Path,
        backends: &dyn Backends,
        proxy: &VeilProxy,
    ) -> Result<(), SysProxyError> {
        for at in 0..self.saved.len() {
            let backend = backends.named(&self.saved[at].backend)?;
            let new = backend.read_new(&self.saved[at].settings)?;
            if !new.is_empty() {
                tracing::info!(
                    "saving the {} proxy settings of {} new keys before pointing them at Veil",
                    backend.name(),
                    new.len()
                );
                for (key, value) in new {
                    // A value saved earlier is the user's; never Veil's own.
                    self.saved[at].settings.entry(key).or_insert(value);
                }
                self.store(path)?;
            }
            let wanted = backend.veil_settings(proxy);
            backend.write(&wanted)?;
            verify(backend.as_ref(), &wanted)?;
        }
        Ok(())
    }

    /// Writes every saved backend's settings back and checks them. All
    /// backends are tried; the first failure is returned.
    fn restore(&self, backends: &dyn Backends) -> Result<(), SysProxyError> {
        let mut first_error = None;
        for saved in &self.saved {
            let result = backends
                .named(&saved.backend)
                .and_then(|backend| restore_backend(backend.as_ref(), &saved.settings));
            if let Err(e) = result {
                tracing::error!("restoring the {} proxy settings failed: {e}", saved.backend);
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Settings that already point at this Veil's address are not the user's
/// own (an earlier Veil changed them and its guard file is gone): saved as
/// the user's, they would be "restored" to a port where nothing listens.
fn refuse_veils_own(
    backend: &dyn Backend,
    settings: &Settings,
    proxy: &VeilProxy,
) -> Result<(), SysProxyError> {
    let veil = proxy.client_addr().to_string();
    let pac = proxy.pac_base();
    // Any spelling of Veil's address counts (`localhost:PORT`, `[::1]`
    // for a wildcard listener, a scheme in front), not just the one Veil
    // writes itself.
    let reaches_veil = |server: &String| {
        let bare = server.split_once("://").map_or(server.as_str(), |(_, r)| r);
        let bare = bare.trim_end_matches('/');
        bare.rsplit_once(':').is_some_and(|(host, port)| {
            port.parse()
                .is_ok_and(|port| veil_engine::host_reaches_listener(proxy.listen, host, port))
        })
    };
    let points_at_veil = match backend.describe(settings) {
        ProxyState::Manual {
            http, https, socks, ..
        } => [http, https, socks].iter().flatten().any(reaches_veil),
        ProxyState::Auto { pac_url: Some(url) } => url.starts_with(&pac),
        _ => false,
    };
    if points_at_veil {
        return Err(SysProxyError::AlreadyVeil {
            backend: backend.name(),
            addr: veil,
        });
    }
    Ok(())
}

/// Where the guard gets its backends: this desktop's ([`Platform`]), or
/// fakes in tests.
pub(super) trait Backends: Send + Sync + std::fmt::Debug {
    fn detect(&self) -> Result<Vec<Box<dyn Backend>>, SysProxyError>;
    fn named(&self, name: &str) -> Result<Box<dyn Backend>, SysProxyError>;
    /// Installs the login-time repair ([`login_task`]); fakes have none.
    fn install_login_task(&self) {}
    /// Removes it, once the guard file is gone.
    fn remove_login_task(&self) {}
}

#[derive(Debug)]
struct Platform;

impl Backends for Platform {
    fn detect(&self) -> Result<Vec<Box<dyn Backend>>, SysProxyError> {
        detect_backends()
    }

    fn named(&self, name: &str) -> Result<Box<dyn Backend>, SysProxyError> {
        backend_named(name)
    }

    /// A failure is logged, not fatal: the next start of any Veil repairs
    /// a stranded setting too; the task only adds the login.
    fn install_login_task(&self) {
        match login_task::install() {
            Ok(at) => tracing::info!("login-time repair installed: {at}"),
            Err(e) => tracing::warn!("the login-time repair could not be installed: {e}"),
        }
    }

    fn remove_login_task(&self) {
        if let Err(e) = login_task::remove() {
            tracing::warn!("the login-time repair could not be removed: {e}");
        }
    }
}

/// Removes the guard file and, with it, the login-time repair.
fn release(path: &Path, backends: &dyn Backends) -> Result<(), SysProxyError> {
    GuardFile::remove(path)?;
    backends.remove_login_task();
    Ok(())
}

/// Puts `saved` back into `backend` and checks it. Only what differs is
/// written: a key Veil never managed to change (a write that failed
/// half-way) needs no write, and one the tool refuses to write must not
/// block the rest. Read-only keys are left alone.
pub(super) fn restore_backend(
    backend: &dyn Backend,
    saved: &Settings,
) -> Result<(), SysProxyError> {
    let saved = writable(backend, saved);
    let changed: Settings = match backend.read() {
        Ok(now) => saved
            .iter()
            .filter(|(k, v)| now.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        Err(_) => saved.clone(),
    };
    if changed.is_empty() {
        // The read above already shows the saved settings.
        return Ok(());
    }
    backend.write(&changed)?;
    verify(backend, &saved)
}

/// Reads `backend` back and fails if it does not hold `wanted` (its
/// read-only keys aside).
pub(super) fn verify(backend: &dyn Backend, wanted: &Settings) -> Result<(), SysProxyError> {
    let found = backend.read()?;
    match backend.mismatch(&writable(backend, wanted), &found) {
        Some(mismatch) => Err(SysProxyError::NotTaken {
            backend: backend.name(),
            mismatch,
        }),
        None => Ok(()),
    }
}

/// `settings` without the keys `backend` only reports.
fn writable(backend: &dyn Backend, settings: &Settings) -> Settings {
    let read_only = backend.read_only_keys();
    settings
        .iter()
        .filter(|(k, _)| !read_only.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// What [`recover`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Recovery {
    /// No guard file: the system proxy is the user's own.
    Nothing,
    /// A running Veil owns the guard file; it was left alone.
    OwnerRunning { pid: u32 },
    /// The owner had died (a crash, SIGKILL, power loss) with Veil's settings
    /// in place; the user's own were put back.
    Restored {
        pid: u32,
        saved_at_unix: u64,
        restored: Vec<(String, ProxyState)>,
    },
}

/// Puts the user's settings back from a guard file whose owner is gone.
/// Every start of an engine does this first, and `veil sysproxy restore`
/// does it on demand.
pub fn recover(data_dir: &Path) -> Result<Recovery, SysProxyError> {
    let path = guard_path(data_dir);
    let Some(file) = GuardFile::load(&path)? else {
        // A task left by a Veil whose guard file went another way.
        Platform.remove_login_task();
        return Ok(Recovery::Nothing);
    };
    if file.owner.is_running() {
        return Ok(Recovery::OwnerRunning {
            pid: file.owner.pid,
        });
    }
    file.restore(&Platform)?;
    release(&path, &Platform)?;
    let restored = file
        .saved
        .iter()
        .map(|s| {
            let state = backend_named(&s.backend)
                .map(|b| b.describe(&s.settings))
                .unwrap_or(ProxyState::Other {
                    detail: "unknown".into(),
                });
            (s.backend.clone(), state)
        })
        .collect();
    tracing::warn!(
        "restored the system proxy settings saved by Veil pid {}, which stopped without restoring them",
        file.owner.pid
    );
    Ok(Recovery::Restored {
        pid: file.owner.pid,
        saved_at_unix: file.saved_at_unix,
        restored,
    })
}

/// The OS's settings now, beside the saved ones from the guard file.
pub fn status(data_dir: &Path) -> Result<SystemProxyStatus, SysProxyError> {
    let file = GuardFile::load(&guard_path(data_dir))?;
    let running = file.as_ref().is_some_and(|f| f.owner.is_running());
    let backends: Vec<Box<dyn Backend>> = match &file {
        Some(f) => f
            .saved
            .iter()
            .map(|s| backend_named(&s.backend))
            .collect::<Result<_, _>>()?,
        None => detect_backends()?,
    };
    let backends = backends
        .iter()
        .map(|backend| {
            let saved_values = file
                .as_ref()
                .and_then(|f| f.saved.iter().find(|s| s.backend == backend.name()))
                .map(|s| s.settings.clone());
            let (current_values, error) = match backend.read() {
                Ok(v) => (Some(v), None),
                Err(e) => (None, Some(e.to_string())),
            };
            BackendStatus {
                backend: backend.name().to_owned(),
                current: current_values.as_ref().map(|v| backend.describe(v)),
                error,
                saved: saved_values.as_ref().map(|v| backend.describe(v)),
                current_values: current_values.unwrap_or_default(),
                saved_values: saved_values.unwrap_or_default(),
            }
        })
        .collect();
    Ok(SystemProxyStatus {
        on: running,
        owner_pid: file.as_ref().map(|f| f.owner.pid),
        stale: file.is_some() && !running,
        proxy: file.map(|f| f.proxy),
        backends,
    })
}

/// What [`SystemProxyGuard::drift`] found: one backend no longer points
/// at Veil.
#[derive(Debug, Clone, PartialEq)]
pub struct Drifted {
    pub backend: String,
    /// The first key that differs from what Veil applied.
    pub mismatch: super::Mismatch,
    /// What the OS has now, in the user's words.
    pub now: ProxyState,
    /// The backend also gained network services since Veil saved it (a
    /// new network): the change came with the network.
    pub new_services: bool,
}

/// Points the OS at Veil and gives the user's settings back. Held by the
/// running engine; dropping it while on restores.
#[derive(Debug)]
pub struct SystemProxyGuard {
    path: PathBuf,
    /// Read without waiting (status, the tray) while a change runs.
    on: AtomicBool,
    /// One change at a time: the desktop tools take a moment.
    changing: Mutex<()>,
    backends: Box<dyn Backends>,
}

impl SystemProxyGuard {
    pub fn new(data_dir: &Path) -> Self {
        Self::with_backends(data_dir, Box::new(Platform))
    }

    pub(super) fn with_backends(data_dir: &Path, backends: Box<dyn Backends>) -> Self {
        Self {
            path: guard_path(data_dir),
            on: AtomicBool::new(false),
            changing: Mutex::new(()),
            backends,
        }
    }

    pub fn is_on(&self) -> bool {
        self.on.load(Ordering::SeqCst)
    }

    /// Saves the user's settings (the first time), points every backend at
    /// `proxy` and checks that each took it. On any failure the user's
    /// settings are put back and the error says what went wrong. When
    /// already on, this is [`refresh`](Self::refresh).
    pub fn enable(&self, proxy: &VeilProxy) -> Result<(), SysProxyError> {
        let _changing = self.changing.lock().unwrap_or_else(PoisonError::into_inner);
        let file = match GuardFile::load(&self.path)? {
            Some(file) if file.owner.is_current() => file,
            Some(file) if file.owner.is_running() => {
                return Err(SysProxyError::OwnedByOther {
                    pid: file.owner.pid,
                });
            }
            stale => {
                // The file's owner is gone: put its saved settings back
                // before saving the user's settings again.
                if let Some(stale) = stale {
                    stale.restore(self.backends.as_ref())?;
                    release(&self.path, self.backends.as_ref())?;
                    tracing::warn!(
                        "restored the system proxy settings saved by Veil pid {}, which stopped \
                         without restoring them",
                        stale.owner.pid
                    );
                }
                let backends = self.backends.detect()?;
                // Nothing is changed until every backend could be read and
                // the result is safely on disk.
                let saved = backends
                    .iter()
                    .map(|b| {
                        let settings = b.read()?;
                        refuse_veils_own(b.as_ref(), &settings, proxy)?;
                        Ok(SavedSettings {
                            backend: b.name().to_owned(),
                            settings,
                        })
                    })
                    .collect::<Result<Vec<_>, SysProxyError>>()?;
                let file = GuardFile {
                    owner: Owner::current(),
                    proxy: proxy.client_addr().to_string(),
                    saved_at_unix: SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs()),
                    saved,
                };
                file.store(&self.path)?;
                self.backends.install_login_task();
                file
            }
        };
        self.apply(file, proxy)
    }

    /// While on, points the OS at `proxy` again and covers what appeared
    /// since (a network service plugged in): its own settings are saved
    /// first, so `off` puts them back too. `false` when off. Cheap enough to
    /// call now and then; on failure everything is put back, as in
    /// [`enable`](Self::enable).
    pub fn refresh(&self, proxy: &VeilProxy) -> Result<bool, SysProxyError> {
        let _changing = self.changing.lock().unwrap_or_else(PoisonError::into_inner);
        match GuardFile::load(&self.path)? {
            Some(file) if file.owner.is_current() => self.apply(file, proxy).map(|()| true),
            _ => Ok(false),
        }
    }

    /// While on, covers only what appeared since the settings were saved (a
    /// network service plugged in, a dock): when some backend has new keys,
    /// they are saved and everything is pointed at `proxy` again. When
    /// nothing is new nothing is written, so this never fights another
    /// program's change. `true` when something new was covered.
    pub fn cover_new(&self, proxy: &VeilProxy) -> Result<bool, SysProxyError> {
        let _changing = self.changing.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(file) = GuardFile::load(&self.path)? else {
            return Ok(false);
        };
        if !file.owner.is_current() {
            return Ok(false);
        }
        let mut gained = false;
        for saved in &file.saved {
            let backend = self.backends.named(&saved.backend)?;
            if !backend.read_new(&saved.settings)?.is_empty() {
                gained = true;
                break;
            }
        }
        if !gained {
            return Ok(false);
        }
        self.apply(file, proxy).map(|()| true)
    }

    /// Points the OS at `proxy` with `file` on disk; on failure puts back
    /// what the file saved.
    fn apply(&self, mut file: GuardFile, proxy: &VeilProxy) -> Result<(), SysProxyError> {
        let applied = file.apply(&self.path, self.backends.as_ref(), proxy);
        match applied {
            Ok(()) => {
                self.on.store(true, Ordering::SeqCst);
                tracing::info!("system proxy on: {}", proxy.client_addr());
                Ok(())
            }
            Err(failure) => match file.restore(self.backends.as_ref()) {
                Ok(()) => {
                    release(&self.path, self.backends.as_ref())?;
                    self.on.store(false, Ordering::SeqCst);
                    Err(failure)
                }
                Err(restore) => {
                    // The guard file stays, so `off`, exit or the next start
                    // try again.
                    self.on.store(true, Ordering::SeqCst);
                    Err(SysProxyError::RollbackFailed {
                        failure: failure.to_string(),
                        restore: restore.to_string(),
                    })
                }
            },
        }
    }

    /// While on, the first backend whose settings no longer read back as
    /// what Veil applied for `proxy` (another program, or the network,
    /// changed them). Waits for a change of Veil's own to finish first, so
    /// Veil's half-written settings are never taken for a drift.
    pub fn drift(&self, proxy: &VeilProxy) -> Result<Option<Drifted>, SysProxyError> {
        let _changing = self.changing.lock().unwrap_or_else(PoisonError::into_inner);
        if !self.is_on() {
            return Ok(None);
        }
        let Some(file) = GuardFile::load(&self.path)? else {
            return Ok(None);
        };
        if !file.owner.is_current() {
            return Ok(None);
        }
        for saved in &file.saved {
            let backend = self.backends.named(&saved.backend)?;
            let found = backend.read()?;
            let wanted = writable(backend.as_ref(), &backend.veil_settings(proxy));
            if let Some(mismatch) = backend.mismatch(&wanted, &found) {
                return Ok(Some(Drifted {
                    backend: backend.name().to_owned(),
                    now: backend.describe(&found),
                    new_services: !backend.read_new(&saved.settings)?.is_empty(),
                    mismatch,
                }));
            }
        }
        Ok(None)
    }

    /// "Leave it": the OS keeps what another program set; Veil forgets the
    /// saved settings without writing anything (restoring them now would
    /// undo that program's change) and no longer counts as on. `false`
    /// when there was nothing to let go.
    pub fn release_as_is(&self) -> Result<bool, SysProxyError> {
        let _changing = self.changing.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(file) = GuardFile::load(&self.path)? else {
            self.on.store(false, Ordering::SeqCst);
            return Ok(false);
        };
        if !file.owner.is_current() {
            return Ok(false);
        }
        release(&self.path, self.backends.as_ref())?;
        self.on.store(false, Ordering::SeqCst);
        tracing::info!("system proxy left as another program set it; Veil's saved copy dropped");
        Ok(true)
    }

    /// Puts the user's saved settings back and removes the guard file.
    /// `false` when there was nothing to restore.
    pub fn disable(&self) -> Result<bool, SysProxyError> {
        let _changing = self.changing.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(file) = GuardFile::load(&self.path)? else {
            self.on.store(false, Ordering::SeqCst);
            return Ok(false);
        };
        if !file.owner.is_current() && file.owner.is_running() {
            return Err(SysProxyError::OwnedByOther {
                pid: file.owner.pid,
            });
        }
        file.restore(self.backends.as_ref())?;
        release(&self.path, self.backends.as_ref())?;
        self.on.store(false, Ordering::SeqCst);
        tracing::info!("system proxy off: the previous settings are back");
        Ok(true)
    }
}

impl Drop for SystemProxyGuard {
    fn drop(&mut self) {
        if self.is_on()
            && let Err(e) = self.disable()
        {
            tracing::error!(
                "could not restore the system proxy settings: {e}; run `veil sysproxy restore`"
            );
        }
    }
}
