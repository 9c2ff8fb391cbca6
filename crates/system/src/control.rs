//! The control channel of a running engine: a Unix domain socket in the
//! runtime folder, mode 0600, one JSON object per line each way.
//!
//! It is local and private to the user on purpose. A TCP port, even on
//! loopback, can be reached by any web page the user opens; a socket file in a
//! 0700 folder cannot.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
#[cfg(unix)]
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use veil_engine::{CacheStats, StatsSnapshot};

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
    #[serde(flatten)]
    pub engine: StatsSnapshot,
}

impl StatusReport {
    pub fn new(engine: StatsSnapshot) -> Self {
        Self {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            pid: std::process::id(),
            system_proxy: false,
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
}

#[cfg(unix)]
const MAX_LINE: u64 = 64 * 1024;

/// A bound control socket; removes its file when dropped.
#[derive(Debug)]
pub struct ControlServer {
    #[cfg(unix)]
    listener: tokio::net::UnixListener,
    path: PathBuf,
}

#[cfg(unix)]
impl ControlServer {
    /// Binds `path`. A leftover socket file from a crashed engine is replaced;
    /// one that still answers means another engine runs, and is an error.
    pub async fn bind(path: &Path) -> Result<Self, ControlError> {
        use std::os::unix::fs::PermissionsExt;
        let io_err = |source| ControlError::Io {
            path: path.to_path_buf(),
            source,
        };
        if path.exists() {
            if tokio::net::UnixStream::connect(path).await.is_ok() {
                return Err(ControlError::AlreadyRunning {
                    path: path.to_path_buf(),
                });
            }
            std::fs::remove_file(path).map_err(io_err)?;
        }
        let listener = tokio::net::UnixListener::bind(path).map_err(io_err)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io_err)?;
        Ok(Self {
            listener,
            path: path.to_path_buf(),
        })
    }

    /// Answers clients until `stop` resolves.
    pub async fn serve(self, controller: Arc<dyn Controller>, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            let accepted = tokio::select! {
                r = self.listener.accept() => r,
                _ = &mut stop => break,
            };
            match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(answer(stream, controller.clone()));
                }
                Err(e) => {
                    tracing::warn!("control socket accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

#[cfg(unix)]
async fn answer(stream: tokio::net::UnixStream, controller: Arc<dyn Controller>) {
    use tokio::io::AsyncReadExt;
    let (read, mut write) = stream.into_split();
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

// Stand-in until the Windows named pipe lands: `veil run` and the app start
// without a control channel, and clients are told it is not available.
#[cfg(not(unix))]
impl ControlServer {
    pub async fn bind(path: &Path) -> Result<Self, ControlError> {
        Ok(Self {
            path: path.to_path_buf(),
        })
    }

    pub async fn serve(self, _controller: Arc<dyn Controller>, stop: impl Future<Output = ()>) {
        stop.await;
    }
}

#[cfg(not(unix))]
pub async fn request(path: &Path, request: &Request) -> Result<Reply, ControlError> {
    request_within(path, request, Duration::from_secs(10)).await
}

#[cfg(not(unix))]
pub async fn request_within(
    path: &Path,
    _request: &Request,
    _after: Duration,
) -> Result<Reply, ControlError> {
    Err(ControlError::Io {
        path: path.to_path_buf(),
        source: io::Error::new(
            io::ErrorKind::Unsupported,
            "the control channel is not available on this system yet",
        ),
    })
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Sends one request to the engine behind `path` and waits for its reply.
#[cfg(unix)]
pub async fn request(path: &Path, request: &Request) -> Result<Reply, ControlError> {
    request_within(path, request, Duration::from_secs(10)).await
}

/// [`request`] with another bound on the wait (the IP check may take a
/// timeout per endpoint).
#[cfg(unix)]
pub async fn request_within(
    path: &Path,
    request: &Request,
    after: Duration,
) -> Result<Reply, ControlError> {
    let exchange = async {
        let stream = tokio::net::UnixStream::connect(path)
            .await
            .map_err(|source| match source.kind() {
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
                    ControlError::NotRunning {
                        path: path.to_path_buf(),
                    }
                }
                _ => ControlError::Io {
                    path: path.to_path_buf(),
                    source,
                },
            })?;
        let (read, mut write) = stream.into_split();
        let mut line =
            serde_json::to_vec(request).map_err(|e| ControlError::BadReply(e.to_string()))?;
        line.push(b'\n');
        let io_err = |source| ControlError::Io {
            path: path.to_path_buf(),
            source,
        };
        write.write_all(&line).await.map_err(io_err)?;
        let mut reply = String::new();
        BufReader::new(read)
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
