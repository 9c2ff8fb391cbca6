//! Upstream proxies: what they are ([`UpstreamSpec`]), how to reach a target
//! through one (`dial`), the [`Pool`] that picks among several and watches
//! their health, and the active checks and latency test (`health`).

mod connector;
mod dial;
mod health;
mod pool;
mod spec;
mod stream;

pub use connector::UpstreamConnector;
pub use dial::UpstreamError;
pub(crate) use health::{check_all, measure, run_checks};
pub use health::{probe, tunnel_through};
pub(crate) use pool::EngineSide;
pub use pool::{Lease, Pool, PoolError, Upstream, UpstreamReport};
pub use spec::{
    HealthConfig, ProxyKind, ProxyUrl, ProxyUrlError, Strategy, UpstreamSpec, percent_decode,
    redact,
};
pub use stream::{ClientConn, OutStream};
