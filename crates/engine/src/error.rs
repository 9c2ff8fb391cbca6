use std::io;
use std::net::SocketAddr;

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "refusing to listen on {addr}: it is not a loopback address and no inbound credentials \
         are configured, which would make this machine an open proxy that anyone on the network \
         can abuse. Listen on 127.0.0.1, or set inbound credentials."
    )]
    OpenProxyRefused { addr: SocketAddr },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error(
        "mode \"proxy\" needs at least one upstream proxy, and none is configured; \
         add one, or use mode \"direct\""
    )]
    NoUpstream,
    /// Traffic sent to it would come straight back in, until the connection
    /// cap, while its health checks (also looping) call it healthy.
    #[error(
        "upstream {name:?} ({url}) is Veil's own listener {listen}; an upstream must be another \
         proxy"
    )]
    UpstreamIsSelf {
        name: String,
        url: String,
        listen: SocketAddr,
    },
    #[error("cannot start the thread that checks which user each client is: {0}")]
    UserCheck(#[source] io::Error),
    #[error("cannot set up the DNS resolver: {0}")]
    Resolver(String),
    #[error("{0}")]
    Config(String),
}
