//! The one error type every command rejects with.

use serde::Serialize;
use veil_engine::EngineError;
use veil_system::ConfigError;
use veil_system::secrets::SecretsError;
use veil_system::sysproxy::SysProxyError;

/// Where it went wrong; the window picks an icon and a hint from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The input was refused; nothing changed.
    Invalid,
    Config,
    Keyring,
    Sysproxy,
    Engine,
    Io,
    Network,
}

/// What a command rejects with: `message` is a sentence for the user that
/// says what failed and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ts_rs::TS, thiserror::Error)]
#[error("{message}")]
pub struct AppError {
    pub kind: ErrorKind,
    pub message: String,
}

impl AppError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, message)
    }

    /// What a promise in the page rejects with (`{kind, message}`), for an
    /// answer that crosses the window socket.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_else(|_| self.message.clone().into())
    }
}

impl From<ConfigError> for AppError {
    fn from(e: ConfigError) -> Self {
        Self::new(ErrorKind::Config, e.to_string())
    }
}

impl From<SecretsError> for AppError {
    fn from(e: SecretsError) -> Self {
        Self::new(ErrorKind::Keyring, e.to_string())
    }
}

impl From<veil_system::upstream_edit::EditError> for AppError {
    fn from(e: veil_system::upstream_edit::EditError) -> Self {
        use veil_system::upstream_edit::EditError;
        match e {
            EditError::Invalid(message) => Self::invalid(message),
            EditError::Config(e) => e.into(),
            EditError::Keyring(e) => e.into(),
        }
    }
}

impl From<SysProxyError> for AppError {
    fn from(e: SysProxyError) -> Self {
        Self::new(ErrorKind::Sysproxy, e.to_string())
    }
}

impl From<EngineError> for AppError {
    fn from(e: EngineError) -> Self {
        let message = match e {
            EngineError::NoUpstream => {
                "No upstream is configured: add one on the Upstreams page first.".to_owned()
            }
            other => other.to_string(),
        };
        Self::new(ErrorKind::Engine, message)
    }
}

impl From<std::io::Error> for AppError {
    fn from(e: std::io::Error) -> Self {
        Self::new(ErrorKind::Io, e.to_string())
    }
}

pub type AppResult<T> = Result<T, AppError>;
