//! `config.toml`: what the user can set, checked before anything runs.
//!
//! Unknown keys are errors (a typo must not silently do nothing), and every
//! error names the file, line and column. A missing file means defaults, so
//! a fresh install works with no file at all.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use veil_engine::{Credentials, EngineConfig, Limits, Mode};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub proxy: ProxySection,
    pub limits: LimitsSection,
    pub dns: DnsSection,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxySection {
    /// The mixed HTTP/CONNECT/SOCKS5 listener.
    pub listen: SocketAddr,
    pub mode: Mode,
    /// Inbound credentials; required for a listener that is not loopback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSection>,
}

impl Default for ProxySection {
    fn default() -> Self {
        let engine = EngineConfig::default();
        Self {
            listen: engine.listen,
            mode: engine.mode,
            auth: None,
        }
    }
}

/// The password is never in this file: it is read from the environment
/// variable named here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    pub username: String,
    pub password_env: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsSection {
    pub max_connections: usize,
    pub handshake_timeout_s: f64,
    pub connect_timeout_s: f64,
    pub shutdown_grace_s: f64,
}

impl Default for LimitsSection {
    fn default() -> Self {
        let l = Limits::default();
        Self {
            max_connections: l.max_connections,
            handshake_timeout_s: l.handshake_timeout.as_secs_f64(),
            connect_timeout_s: l.connect_timeout.as_secs_f64(),
            shutdown_grace_s: l.shutdown_grace.as_secs_f64(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnsSection {
    /// DNS servers for direct traffic (`"9.9.9.9:53"`); empty means the
    /// system's configuration.
    pub servers: Vec<SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error(
        "inbound password: the environment variable {var} named by proxy.auth.password_env is not set"
    )]
    MissingPassword { var: String },
}

impl Config {
    /// Reads `path`; a file that does not exist gives the defaults.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Parses and checks config text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map(|span| line_column(text, span.start))
                .unwrap_or((0, 0));
            ConfigError::Syntax {
                path: path.to_path_buf(),
                line,
                column,
                message: e.message().trim().to_owned(),
            }
        })?;
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let l = &self.limits;
        if l.max_connections == 0 {
            return Err(invalid("limits.max_connections must be at least 1".into()));
        }
        for (name, value) in [
            ("handshake_timeout_s", l.handshake_timeout_s),
            ("connect_timeout_s", l.connect_timeout_s),
            ("shutdown_grace_s", l.shutdown_grace_s),
        ] {
            if !(value.is_finite() && value > 0.0 && value <= 3600.0) {
                return Err(invalid(format!(
                    "limits.{name} must be a number of seconds between 0 and 3600, not {value}"
                )));
            }
        }
        if let Some(auth) = &self.proxy.auth
            && (auth.username.is_empty() || auth.password_env.is_empty())
        {
            return Err(invalid(
                "proxy.auth needs a non-empty username and password_env".into(),
            ));
        }
        Ok(())
    }

    /// The engine's view of this config. Reads the inbound password from its
    /// environment variable.
    pub fn engine_config(&self) -> Result<EngineConfig, ConfigError> {
        let auth = match &self.proxy.auth {
            Some(a) => {
                let password = std::env::var(&a.password_env)
                    .ok()
                    .filter(|p| !p.is_empty())
                    .ok_or_else(|| ConfigError::MissingPassword {
                        var: a.password_env.clone(),
                    })?;
                Some(Credentials::new(a.username.clone(), password))
            }
            None => None,
        };
        let l = &self.limits;
        Ok(EngineConfig {
            listen: self.proxy.listen,
            mode: self.proxy.mode,
            auth,
            limits: Limits {
                max_connections: l.max_connections,
                handshake_timeout: Duration::from_secs_f64(l.handshake_timeout_s),
                connect_timeout: Duration::from_secs_f64(l.connect_timeout_s),
                shutdown_grace: Duration::from_secs_f64(l.shutdown_grace_s),
                ..Limits::default()
            },
            dns_servers: self.dns.servers.clone(),
        })
    }
}

/// 1-based line and column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("config.toml"))
    }

    #[test]
    fn empty_file_gives_loopback_defaults() {
        let c = parse("").expect("defaults");
        assert_eq!(c.proxy.listen.to_string(), "127.0.0.1:7890");
        assert_eq!(c.proxy.mode, Mode::Direct);
    }

    #[test]
    fn errors_name_the_line_and_column() {
        let err = parse("[proxy]\nmode = \"direct\"\nlisten = 42\n").expect_err("bad type");
        let msg = err.to_string();
        assert!(msg.starts_with("config.toml:3:10:"), "{msg}");
        let err = parse("[proxy]\nlisten = \"127.0.0.1:1\"\ncolour = \"red\"\n").expect_err("key");
        assert!(err.to_string().starts_with("config.toml:3:1:"), "{err}");
        assert!(err.to_string().contains("colour"), "{err}");
        let err = parse("[proxy\n").expect_err("syntax");
        assert!(err.to_string().starts_with("config.toml:1:"), "{err}");
    }

    #[test]
    fn refuses_nonsense_limits() {
        assert!(parse("[limits]\nmax_connections = 0\n").is_err());
        assert!(parse("[limits]\nconnect_timeout_s = -1\n").is_err());
    }

    #[test]
    fn saves_what_it_loads() {
        let c = parse("[proxy]\nlisten = \"127.0.0.1:9000\"\nmode = \"direct\"\n").expect("ok");
        let text = toml::to_string(&c).expect("serialise");
        assert_eq!(parse(&text).expect("round trip"), c);
    }
}
