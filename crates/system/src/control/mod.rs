//! The control channel of a running engine: one JSON object per line each
//! way, over a transport that only this user can open.
//!
//! It is local and private to the user on purpose. A TCP port, even on
//! loopback, can be reached by any web page the user opens; these cannot:
//! - Unix (Linux, macOS): a Unix domain socket, mode 0600, in the runtime
//!   folder (mode 0700) — [`unix`].
//! - Windows: a named pipe whose security descriptor admits only the
//!   current user's SID and refuses remote clients; its name is derived from
//!   the runtime folder, so two `VEIL_HOME`s never share one — [`windows`].
//!
//! [`ControlServer`], [`request`] and [`request_within`] are the same on
//! every OS; only the byte stream under them differs.

#[cfg(unix)]
mod unix;
#[cfg(windows)]
mod windows;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

#[cfg(unix)]
use unix as transport;
use veil_engine::{CacheStats, StatsSnapshot};
#[cfg(windows)]
use windows as transport;

use crate::sysproxy::SystemProxyStatus;

/// What a client can ask.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    Status,
    /// Point the OS at this engine (saving the user's settings first).
    SysproxyOn,
    /// Put the user's own settings back.
    SysproxyOff,
    /// The OS's settings now and the saved ones.
    SysproxyStatus,
    /// The HTTP cache's counters.
    CacheStats,
    /// Drop every stored response.
    CacheClear,
    /// Drop the stored responses of one `http://` URL.
    CachePurge {
        url: String,
    },
    /// The masked-IP check: the public IP directly and through this engine.
    Ip,
    /// Scan which apps go through this engine, bypass it or use UDP.
    Coverage,
    /// The leak checks, as the engine's process sees the machine.
    Leaks,
    /// Route new connections: `direct`, or `proxy` through every upstream
    /// the engine started with, or only `upstream` (a name) when given.
    Select {
        mode: veil_engine::Mode,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        upstream: Option<String>,
    },
    /// Forget the alerts (the user has seen them).
    ClearAlerts,
    /// Close client connections: these ids, or every one.
    CloseConnections {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ids: Option<Vec<u64>>,
    },
    /// The app's window, which runs in a process of its own, calls one of
    /// the app's commands (`command`, with the arguments the page gave).
    /// Only the app's window socket ([`crate::Paths::window_socket`])
    /// answers it; an engine's control socket refuses it.
    Window {
        command: String,
        #[serde(default)]
        args: serde_json::Value,
    },
    /// The window process waits (at most [`WINDOW_EVENTS_WAIT`]) for the
    /// app's events numbered above `after`; `app` is the pid of the app
    /// that started it (another app refuses it).
    WindowEvents {
        after: u64,
        #[serde(default)]
        app: u32,
    },
}

/// How long a [`Request::WindowEvents`] is held open when nothing happens.
pub const WINDOW_EVENTS_WAIT: Duration = Duration::from_secs(20);

/// One event the app sent its window ([`Reply::WindowEvents`]). The
/// payload is the JSON text the app emitted, passed on as it is (never
/// parsed on the way: the replies are an untagged enum, which cannot carry
/// raw JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowEvent {
    pub seq: u64,
    pub name: String,
    pub payload: String,
}

/// The engine's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Reply {
    Status {
        ok: bool,
        status: Box<StatusReport>,
    },
    /// The answer to the `sysproxy_*` requests: what the OS has now.
    Sysproxy {
        ok: bool,
        sysproxy: Box<SystemProxyStatus>,
    },
    /// The answer to the `cache_*` requests: the cache's counters after it.
    Cache {
        ok: bool,
        cache: Box<CacheStats>,
    },
    /// The answer to `ip`.
    Ip {
        ok: bool,
        ip: Box<crate::ipcheck::IpReport>,
    },
    /// The answer to `coverage`.
    Coverage {
        ok: bool,
        coverage: Box<crate::coverage::CoverageReport>,
    },
    /// The answer to `leaks`.
    Leaks {
        ok: bool,
        leaks: Box<crate::leaks::LeakReport>,
    },
    /// The answer to `close_connections`: how many were open and closed.
    Closed {
        ok: bool,
        closed: usize,
    },
    /// The answer to [`Request::Window`]: the command's value, or (with
    /// `ok` false) what it rejected with.
    Window {
        ok: bool,
        answer: serde_json::Value,
    },
    /// The answer to [`Request::WindowEvents`]: possibly none.
    WindowEvents {
        ok: bool,
        events: Vec<WindowEvent>,
    },
    Error {
        ok: bool,
        error: String,
    },
}

impl Reply {
    pub fn error(message: impl Into<String>) -> Self {
        Reply::Error {
            ok: false,
            error: message.into(),
        }
    }
}

/// `veil status`: who is running, and its counters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    pub version: String,
    pub pid: u32,
    /// Whether this engine has pointed the OS's proxy setting at itself.
    #[serde(default)]
    pub system_proxy: bool,
    /// The OS setting no longer reads back as what Veil applied (another
    /// program or a network change), seen by the guard's watch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_proxy_drift: Option<crate::service::SystemProxyDrift>,
    /// What failed on its own and changed what Veil does (newest last).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<crate::alerts::Alert>,
    /// The exit address the last IP check saw through this engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_ip: Option<String>,
    /// The one upstream chosen with [`Request::Select`], if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned_upstream: Option<String>,
    #[serde(flatten)]
    pub engine: StatsSnapshot,
}

impl StatusReport {
    pub fn new(engine: StatsSnapshot) -> Self {
        Self {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            pid: std::process::id(),
            system_proxy: false,
            system_proxy_drift: None,
            alerts: Vec::new(),
            exit_ip: None,
            pinned_upstream: None,
            engine,
        }
    }
}

/// Whatever runs the engine (the CLI, the app) answers requests through this.
pub trait Controller: Send + Sync + 'static {
    fn handle(&self, request: Request) -> ReplyFuture<'_>;
}

/// What [`Controller::handle`] returns: answering may wait on the engine.
pub type ReplyFuture<'a> = std::pin::Pin<Box<dyn Future<Output = Reply> + Send + 'a>>;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error(
        "no running Veil engine: nothing answers at {path}. Start one with `veil run` (or the Veil app)."
    )]
    NotRunning { path: PathBuf },
    #[error("another Veil engine is already running (its control socket {path} answers)")]
    AlreadyRunning { path: PathBuf },
    #[error("control socket {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the engine at {path} did not answer within {}s", .after.as_secs())]
    Timeout { path: PathBuf, after: Duration },
    #[error("the engine sent an answer this veil does not understand: {0}")]
    BadReply(String),
    #[error(
        "the request is {size} bytes, more than the {} a Veil reads",
        MAX_REQUEST
    )]
    TooLarge { size: usize },
}

/// The most a server reads from one client. Room for the largest request
/// the window sends: a pasted list of upstreams to import (its first 2,000
/// lines are read).
pub const MAX_REQUEST: u64 = 1024 * 1024;
const MAX_LINE: u64 = MAX_REQUEST;
/// Longest reply a client reads. Far above a request's limit: a status
/// lists every open connection, about 200 bytes each, so a few thousand
/// tunnels pass 64 KiB (the soak found `veil status` failing there).
const MAX_REPLY: u64 = 64 * 1024 * 1024;

/// A bound control endpoint, answering with [`ControlServer::serve`]. On
/// Unix its socket file is removed when it is dropped.
#[derive(Debug)]
pub struct ControlServer {
    inner: transport::Server,
}

impl ControlServer {
    /// Binds `path` (from [`crate::Paths::control_socket`]). A leftover
    /// socket file from a crashed engine is replaced; an endpoint that still
    /// answers means another engine runs, and is an error.
    pub async fn bind(path: &Path) -> Result<Self, ControlError> {
        Ok(Self {
            inner: transport::Server::bind(path).await?,
        })
    }

    /// Where clients reach this server.
    pub fn path(&self) -> &Path {
        self.inner.path()
    }

    /// Answers clients until `stop` resolves.
    pub async fn serve(self, controller: Arc<dyn Controller>, stop: impl Future<Output = ()>) {
        self.inner.serve(controller, stop).await
    }
}

/// Answers one client: a request per line, a reply per line, until the
/// client closes or stays silent for 30 s.
async fn answer<S>(stream: S, controller: Arc<dyn Controller>)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read, mut write) = tokio::io::split(stream);
    let mut lines = BufReader::new(read.take(MAX_LINE)).lines();
    while let Ok(Ok(Some(line))) =
        tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await
    {
        let reply = match serde_json::from_str::<Request>(&line) {
            Ok(request) => controller.handle(request).await,
            Err(e) => Reply::error(format!("bad request: {e}")),
        };
        let mut out = match serde_json::to_vec(&reply) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!("cannot encode control reply: {e}");
                return;
            }
        };
        out.push(b'\n');
        if write.write_all(&out).await.is_err() {
            return;
        }
    }
}

/// Answers `input` as if a client had sent it and closed, and returns what
/// the server wrote back: the line handler without a socket, for the fuzz
/// target (fuzz/fuzz_targets/control_line.rs).
#[doc(hidden)]
pub async fn answer_bytes(input: &[u8], controller: Arc<dyn Controller>) -> Vec<u8> {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let (mut read, mut write) = tokio::io::split(client);
    let client = async {
        // Written and read at once: the server blocks on a full pipe.
        let send = async {
            let _ = write.write_all(input).await;
            let _ = write.shutdown().await;
        };
        let mut out = Vec::new();
        let receive = read.read_to_end(&mut out);
        let (_, _) = tokio::join!(send, receive);
        out
    };
    let (_, out) = tokio::join!(answer(server, controller), client);
    out
}

/// Sends one request to the engine behind `path` and waits for its reply.
pub async fn request(path: &Path, request: &Request) -> Result<Reply, ControlError> {
    request_within(path, request, Duration::from_secs(10)).await
}

/// [`request`] with another bound on the wait (the IP check may take a
/// timeout per endpoint).
pub async fn request_within(
    path: &Path,
    request: &Request,
    after: Duration,
) -> Result<Reply, ControlError> {
    let exchange = async {
        let stream = transport::connect(path).await?;
        let (read, mut write) = tokio::io::split(stream);
        let mut line =
            serde_json::to_vec(request).map_err(|e| ControlError::BadReply(e.to_string()))?;
        line.push(b'\n');
        if line.len() as u64 > MAX_REQUEST {
            return Err(ControlError::TooLarge { size: line.len() });
        }
        let io_err = |source| ControlError::Io {
            path: path.to_path_buf(),
            source,
        };
        write.write_all(&line).await.map_err(io_err)?;
        let mut reply = String::new();
        BufReader::new(read.take(MAX_REPLY))
            .read_line(&mut reply)
            .await
            .map_err(io_err)?;
        serde_json::from_str(&reply).map_err(|e| ControlError::BadReply(e.to_string()))
    };
    tokio::time::timeout(after, exchange)
        .await
        .unwrap_or_else(|_| {
            Err(ControlError::Timeout {
                path: path.to_path_buf(),
                after,
            })
        })
}

/// The error for a client whose connect failed with `source`.
fn connect_error(path: &Path, source: io::Error) -> ControlError {
    match source.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => ControlError::NotRunning {
            path: path.to_path_buf(),
        },
        _ => ControlError::Io {
            path: path.to_path_buf(),
            source,
        },
    }
}

#[cfg(test)]
mod tests;
