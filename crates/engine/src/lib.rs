//! Veil's proxy engine.
//!
//! One listener speaks three protocols on the same port: HTTP/1.1 forward
//! requests in absolute form, `CONNECT` tunnels, and SOCKS5; the first byte a
//! client sends tells them apart ([`inbound`]). Every accepted connection is
//! routed to a [`Target`] and reaches it through [`outbound`], which today
//! connects directly through the caching resolver in [`dns`]. Bytes are counted
//! by stream wrappers that add to atomics ([`stats`]), so the data path takes no
//! locks. Plain-HTTP `GET`/`HEAD` responses go through the shared cache in
//! [`cache`]. [`Engine::start`] returns an [`EngineHandle`] that reports statistics,
//! streams [`EngineEvent`]s and shuts the engine down gracefully.
//!
//! The engine knows nothing about the operating system's proxy settings, files
//! or the GUI; `veil-system` and the front ends build on it.

mod attribution;
pub mod auth;
pub mod cache;
mod config;
pub mod dns;
mod engine;
mod error;
mod events;
mod fd_budget;
pub mod inbound;
mod keepalive;
pub mod outbound;
pub mod peer_user;
mod routing;
pub mod stats;
mod target;
mod trim;
/// Gives free heap pages back to the system (after a burst, or when the
/// desktop app's window closes).
pub use trim::{go_busy, go_idle, page_out_start_up_code, release as release_free_memory};
pub mod upstream;

pub use attribution::{ClientApp, ClientLookup};
pub use auth::Credentials;
pub use cache::{CacheConfig, CacheStats, Invalidations};
pub use config::{EngineConfig, Limits, Mode};
pub use engine::{Engine, EngineHandle};
pub use error::EngineError;
pub use events::EngineEvent;
pub use peer_user::ClientUser;
pub use routing::{Action, DEFAULT_BYPASS, HostPattern, Routing};
pub use stats::{AppStats, ConnectionInfo, DnsStats, HostStats, RateSample, StatsSnapshot};
pub use target::{Target, TargetError, canonical_ip, host_reaches_listener, reaches_listener};
pub use upstream::{HealthConfig, ProxyKind, ProxyUrl, ProxyUrlError, Strategy, UpstreamSpec};
