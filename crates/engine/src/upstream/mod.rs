//! Upstream proxies: what they are ([`spec`]), how to reach a target through
//! one, and the pool that picks among several and watches their health.

mod spec;

pub use spec::{HealthConfig, ProxyKind, ProxyUrl, ProxyUrlError, Strategy, UpstreamSpec};
