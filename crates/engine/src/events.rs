use std::net::SocketAddr;

use serde::Serialize;

/// Something that happened in the engine, for front ends to show as it happens.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EngineEvent {
    ConnectionOpened {
        id: u64,
        client: SocketAddr,
    },
    /// The connection's target is known (after the request head or handshake).
    ConnectionRouted {
        id: u64,
        protocol: &'static str,
        target: String,
    },
    ConnectionClosed {
        id: u64,
        bytes_up: u64,
        bytes_down: u64,
    },
    /// An upstream passed enough checks to carry traffic again.
    UpstreamUp {
        name: String,
    },
    /// An upstream failed too often and is out of rotation.
    UpstreamDown {
        name: String,
        reason: String,
    },
    ShuttingDown,
}
