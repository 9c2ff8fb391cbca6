//! The app beside a `veil run`: one Veil per user holds the instance lock,
//! so when the app starts while `veil run` serves, it does not start a second
//! engine (the two would fight over the system proxy's guard file and the
//! control socket). It attaches instead: the window shows that engine's
//! status and drives it over the control channel, which carries what an
//! engine in another process can do (the system proxy, the route, the IP
//! check, the cache, the alerts). What needs the engine in this process
//! (settings, upstream edits, history) says so and is refused.

use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;
use veil_engine::{CacheStats, Mode};
use veil_system::control::{self, Reply, Request, StatusReport};
use veil_system::ipcheck::IpReport;
use veil_system::sysproxy::SystemProxyStatus;

use crate::error::{AppError, AppResult, ErrorKind};

/// How long the app waits for the lock holder's control socket to answer
/// at start (it may be starting too): 40 tries, 250 ms apart.
const ANSWER_TRIES: u32 = 40;
const ANSWER_PAUSE: Duration = Duration::from_millis(250);

/// The IP check fetches two endpoints with a pause between them.
const IP_CHECK_WAIT: Duration = Duration::from_secs(90);

/// What the window shows when the engine runs in another process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct AttachedTo {
    /// The process that runs the engine (`veil run`).
    pub pid: u32,
    /// A sentence for the window: whose engine this is and what works.
    pub note: String,
    /// Set when that engine stopped answering.
    pub error: Option<String>,
}

/// The engine of another process, reached over its control socket.
#[derive(Debug)]
pub struct Attached {
    pid: u32,
    socket: PathBuf,
    /// The last status it sent, refreshed by [`Attached::refresh`].
    last: Mutex<Option<StatusReport>>,
    /// Why the last refresh failed, if it did.
    error: Mutex<Option<String>>,
}

impl Attached {
    /// Waits (bounded) for the engine behind `socket` to answer; `Err`
    /// says why it did not.
    pub async fn connect(socket: PathBuf, holder: Option<u32>) -> Result<Self, String> {
        let mut last_error = String::new();
        for _ in 0..ANSWER_TRIES {
            match control::request(&socket, &Request::Status).await {
                Ok(Reply::Status { status, .. }) => {
                    return Ok(Self {
                        pid: status.pid,
                        socket,
                        last: Mutex::new(Some(*status)),
                        error: Mutex::new(None),
                    });
                }
                Ok(other) => last_error = format!("unexpected answer {other:?}"),
                Err(e) => last_error = e.to_string(),
            }
            tokio::time::sleep(ANSWER_PAUSE).await;
        }
        let who = holder.map_or("another Veil".to_owned(), |pid| {
            format!("another Veil (pid {pid})")
        });
        Err(format!(
            "{who} runs the engine for this user, but it does not answer on its control \
             socket ({last_error}). Quit it (or wait for it to finish starting) and start Veil \
             again."
        ))
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn describe(&self) -> AttachedTo {
        AttachedTo {
            pid: self.pid,
            note: format!(
                "Attached to the Veil engine started by `veil run` (pid {}). The system proxy, \
                 the route, the IP check and the cache work from here; settings, upstream edits \
                 and the traffic history belong to that process (stop it and start Veil to \
                 change them here).",
                self.pid
            ),
            error: self
                .error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }

    /// The engine's status as last received.
    pub fn last(&self) -> Option<StatusReport> {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Asks for the status again (the window's once-a-second tick).
    pub async fn refresh(&self) -> AppResult<StatusReport> {
        let result = match self.ask(&Request::Status, None).await {
            Ok(Reply::Status { status, .. }) => Ok(*status),
            Ok(other) => Err(unexpected(other)),
            Err(e) => Err(e),
        };
        let mut error = self.error.lock().unwrap_or_else(PoisonError::into_inner);
        match &result {
            Ok(status) => {
                *error = None;
                *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(status.clone());
            }
            Err(e) => *error = Some(e.message.clone()),
        }
        result
    }

    pub async fn set_system_proxy(&self, on: bool) -> AppResult<SystemProxyStatus> {
        let request = if on {
            Request::SysproxyOn
        } else {
            Request::SysproxyOff
        };
        let reply = self.ask(&request, None).await?;
        self.refresh().await.ok();
        match reply {
            Reply::Sysproxy { sysproxy, .. } => Ok(*sysproxy),
            other => Err(unexpected(other)),
        }
    }

    pub async fn select(&self, mode: Mode, upstream: Option<String>) -> AppResult<StatusReport> {
        match self.ask(&Request::Select { mode, upstream }, None).await? {
            Reply::Status { status, .. } => {
                *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(*status.clone());
                Ok(*status)
            }
            other => Err(unexpected(other)),
        }
    }

    pub async fn clear_alerts(&self) -> AppResult<()> {
        self.ask(&Request::ClearAlerts, None).await?;
        self.refresh().await.map(drop)
    }

    pub async fn check_ip(&self) -> AppResult<IpReport> {
        match self.ask(&Request::Ip, Some(IP_CHECK_WAIT)).await? {
            Reply::Ip { ip, .. } => Ok(*ip),
            other => Err(unexpected(other)),
        }
    }

    pub async fn cache_clear(&self) -> AppResult<CacheStats> {
        match self.ask(&Request::CacheClear, None).await? {
            Reply::Cache { cache, .. } => Ok(*cache),
            other => Err(unexpected(other)),
        }
    }

    pub async fn close_connections(&self, ids: Option<Vec<u64>>) -> AppResult<usize> {
        match self.ask(&Request::CloseConnections { ids }, None).await? {
            Reply::Closed { closed, .. } => Ok(closed),
            other => Err(unexpected(other)),
        }
    }

    /// One request; an error reply becomes an [`AppError`] naming the
    /// engine that sent it.
    async fn ask(&self, request: &Request, wait: Option<Duration>) -> AppResult<Reply> {
        let sent = match wait {
            Some(wait) => control::request_within(&self.socket, request, wait).await,
            None => control::request(&self.socket, request).await,
        };
        match sent {
            Ok(Reply::Error { error, .. }) => Err(AppError::new(
                ErrorKind::Engine,
                format!("The Veil engine of pid {}: {error}", self.pid),
            )),
            Ok(reply) => Ok(reply),
            Err(e) => Err(AppError::new(
                ErrorKind::Engine,
                format!(
                    "The Veil engine of pid {} did not answer: {e}. Restart Veil once it has \
                     stopped.",
                    self.pid
                ),
            )),
        }
    }
}

fn unexpected(reply: Reply) -> AppError {
    AppError::new(
        ErrorKind::Engine,
        format!("The Veil engine sent an unexpected answer: {reply:?}"),
    )
}
