//! How connections leave the machine.
//!
//! [`Outbound`] opens a TCP connection to a [`Target`]: directly, through the
//! DNS cache. [`HttpConnector`] adapts it for hyper's pooled client, so plain
//! HTTP forwarding and tunnels take the same path out.

pub(crate) mod connector;
mod direct;

use std::io;
use std::time::Duration;

pub use connector::HttpConnector;
pub use direct::Outbound;

use crate::Target;

/// Why a target could not be reached. The message is shown to the client in
/// a 502, so it names the target and says what went wrong, and nothing else.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot resolve {target}: {reason}")]
    Dns { target: Target, reason: String },
    #[error("{target} refused the connection")]
    Refused { target: Target },
    #[error("{target} did not answer within {}s", .timeout.as_secs())]
    Timeout { target: Target, timeout: Duration },
    #[error("cannot connect to {target}: {source}")]
    Io {
        target: Target,
        #[source]
        source: io::Error,
    },
    #[error("{target} is this proxy's own listener; refusing to loop")]
    Loop { target: Target },
}

impl ConnectError {
    /// The SOCKS5 reply code (RFC 1928, section 6) that says the same.
    pub fn socks_reply(&self) -> fast_socks5::ReplyError {
        use fast_socks5::ReplyError;
        match self {
            ConnectError::Dns { .. } => ReplyError::HostUnreachable,
            ConnectError::Refused { .. } => ReplyError::ConnectionRefused,
            ConnectError::Timeout { .. } => ReplyError::TtlExpired,
            ConnectError::Loop { .. } => ReplyError::ConnectionNotAllowed,
            ConnectError::Io { source, .. } => match source.kind() {
                io::ErrorKind::NetworkUnreachable => ReplyError::NetworkUnreachable,
                io::ErrorKind::HostUnreachable => ReplyError::HostUnreachable,
                _ => ReplyError::GeneralFailure,
            },
        }
    }
}
