//! The operating system around Veil's engine.
//!
//! [`Paths`] says where Veil keeps its files (one folder with `VEIL_HOME`),
//! [`config`] reads and checks `config.toml` and turns it into an
//! [`veil_engine::EngineConfig`], filling in passwords from [`secrets`] (the
//! OS keyring, never a file), and [`config_file`] edits the file in place,
//! keeping the user's comments. [`sysproxy`] points the desktop's proxy
//! setting at Veil behind a guard file, so the user's own settings always
//! come back, even after a crash; [`env`] gives the same to shells as
//! variables. [`control`] is the local control channel: a Unix domain
//! socket, private to the user, that speaks JSON lines, answered by a running
//! [`Service`] (the engine with its system-proxy guard). There is
//! deliberately no TCP control port, so no web page can reach the controls.
//! [`ipcheck`] compares the public IP seen directly and through Veil's
//! listener; [`history`] keeps per-minute traffic buckets in SQLite.
//! [`sockets`] reads the machine's socket table: the engine's client app
//! attribution and the [`coverage`] scan (which apps go through Veil, which
//! bypass it, which use UDP) both build on it. [`alerts`] keeps what went
//! wrong on its own (the system proxy turned off after a failure), so the
//! user always hears about it. [`leaks`] checks, locally and read-only,
//! the ways names and traffic get past Veil (apps resolving names
//! themselves, the OS's resolvers, IPv6, leftover proxy variables, browser
//! settings, UDP).

pub mod alerts;
pub mod children;
pub mod config;
pub mod config_file;
pub mod control;
pub mod coverage;
pub mod env;
pub mod history;
pub mod instance;
pub mod ipcheck;
pub mod leaks;
pub mod logging;
pub mod notify;
mod paths;
pub mod secrets;
pub mod service;
pub mod settings_edit;
pub mod sockets;
pub mod sysproxy;
pub mod tray_host;
pub mod units;
pub mod upstream_edit;
pub mod upstream_import;
pub mod upstream_test;

pub use config::{Config, ConfigError};
pub use config_file::ConfigFile;
pub use paths::{Paths, PathsError};
pub use service::Service;
