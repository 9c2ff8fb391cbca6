//! The operating system around Veil's engine.
//!
//! [`Paths`] says where Veil keeps its files (one folder with `VEIL_HOME`),
//! [`config`] reads and checks `config.toml` and turns it into an
//! [`veil_engine::EngineConfig`], and [`control`] is the local control channel:
//! a Unix domain socket, private to the user, that speaks JSON lines. There is
//! deliberately no TCP control port, so no web page can reach the controls.

pub mod config;
pub mod control;
mod paths;

pub use config::{Config, ConfigError};
pub use paths::{Paths, PathsError};
