//! `config.toml`: what the user can set, checked before anything runs.
//!
//! Unknown keys are errors (a typo must not silently do nothing), and every
//! error names the file, line and column. A missing file means defaults, so
//! a fresh install works with no file at all.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::secrets::{self, SecretKey};
use serde::{Deserialize, Serialize};
use veil_engine::{
    Action, CacheConfig, Credentials, EngineConfig, HealthConfig, Limits, Mode, ProxyKind,
    ProxyUrl, Routing, Strategy, UpstreamSpec,
};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub proxy: ProxySection,
    pub upstreams: UpstreamsSection,
    /// Per-domain rules: `"*.ads.example" = "block"`, `"intranet.example" = "direct"`.
    pub rules: std::collections::BTreeMap<String, Action>,
    pub limits: LimitsSection,
    pub dns: DnsSection,
    pub cache: CacheSection,
    pub app: AppSection,
    pub ipcheck: IpCheckSection,
    pub history: HistorySection,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxySection {
    /// The mixed HTTP/CONNECT/SOCKS5 listener.
    pub listen: SocketAddr,
    pub mode: Mode,
    /// Hosts, `*.suffixes` and CIDRs that always go direct.
    pub bypass: Vec<String>,
    /// Inbound credentials; required for a listener that is not loopback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSection>,
    /// How apps reach Veil when it sets the system proxy: `manual` (a fixed
    /// proxy), `pac` or `pac_fail_open` (Veil's PAC file).
    #[serde(skip_serializing_if = "crate::sysproxy::AppsReach::is_manual")]
    pub apps_reach: crate::sysproxy::AppsReach,
    /// The kill switch: `false` (the default) fails a connection that no
    /// upstream can carry with a 502; `true` lets it go direct instead.
    pub fallback_direct: bool,
}

impl Default for ProxySection {
    fn default() -> Self {
        let engine = EngineConfig::default();
        Self {
            listen: engine.listen,
            mode: engine.mode,
            bypass: engine.bypass,
            auth: None,
            apps_reach: crate::sysproxy::AppsReach::Manual,
            fallback_direct: engine.fallback_direct,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamsSection {
    pub strategy: Strategy,
    pub health_check: HealthCheckSection,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub server: Vec<ServerSection>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthCheckSection {
    pub interval_s: f64,
    /// A plain `http://` URL fetched through each upstream; unset checks
    /// only that the proxy accepts connections.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Consecutive failures that mark an upstream down.
    pub fall: u32,
    /// Consecutive successes that bring it back.
    pub rise: u32,
}

impl Default for HealthCheckSection {
    fn default() -> Self {
        let h = HealthConfig::default();
        Self {
            interval_s: h.interval.as_secs_f64(),
            url: h.check_url,
            fall: h.fall,
            rise: h.rise,
        }
    }
}

/// One upstream proxy. Its password is never in this file: it comes from the
/// OS keyring, or from the environment variable named by `password_env`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    pub name: String,
    pub url: String,
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub weight: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// PEM file of extra CA certificates for an `https://` proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

fn one() -> u32 {
    1
}

fn is_one(v: &u32) -> bool {
    *v == 1
}

/// The password is never in this file: it is read from the environment
/// variable named by `password_env`, else from the OS keyring (entry
/// `inbound:USERNAME`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    pub username: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsSection {
    pub max_connections: usize,
    pub handshake_timeout_s: f64,
    pub connect_timeout_s: f64,
    pub shutdown_grace_s: f64,
    /// Tunnels with no bytes either way for this long are closed.
    pub tunnel_idle_timeout_s: f64,
}

impl Default for LimitsSection {
    fn default() -> Self {
        let l = Limits::default();
        Self {
            max_connections: l.max_connections,
            handshake_timeout_s: l.handshake_timeout.as_secs_f64(),
            connect_timeout_s: l.connect_timeout.as_secs_f64(),
            shutdown_grace_s: l.shutdown_grace.as_secs_f64(),
            tunnel_idle_timeout_s: l.tunnel_idle_timeout.as_secs_f64(),
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

/// The shared HTTP cache for plain-HTTP `GET`/`HEAD` (HTTPS is never cached).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheSection {
    pub enabled: bool,
    pub memory_mb: u64,
    pub disk_mb: u64,
    /// Larger responses pass through without being stored.
    pub max_object_mb: u64,
    /// Serve what was fetched through one route (direct or an upstream) to
    /// requests that now take another; off by default.
    pub share_across_routes: bool,
}

impl Default for CacheSection {
    fn default() -> Self {
        let c = CacheConfig::default();
        Self {
            enabled: c.enabled,
            memory_mb: c.memory_bytes >> 20,
            disk_mb: c.disk_bytes >> 20,
            max_object_mb: c.max_object_bytes >> 20,
            share_across_routes: c.share_across_routes,
        }
    }
}

impl CacheSection {
    /// The engine's cache settings; the disk directory is the caller's to
    /// set (from `Paths`).
    pub fn engine_cache(&self) -> CacheConfig {
        CacheConfig {
            enabled: self.enabled,
            memory_bytes: self.memory_mb << 20,
            disk_bytes: self.disk_mb << 20,
            max_object_bytes: self.max_object_mb << 20,
            dir: None,
            share_across_routes: self.share_across_routes,
        }
    }
}

/// The desktop app's own choices.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AppSection {
    pub theme: Theme,
    /// The window's and the tray's language.
    pub language: Language,
    /// Closing the window keeps Veil running in the tray (`None`: not
    /// chosen yet, which means yes where the desktop shows a tray icon and
    /// a question on the first close where it does not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_running: Option<bool>,
    /// One upstream chosen in the tray or the window instead of the whole
    /// pool (only in mode `proxy`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pinned_upstream: Option<String>,
}

/// The window's colours.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum Theme {
    /// Light or dark as the OS is.
    #[default]
    System,
    Light,
    Dark,
}

impl Theme {
    pub fn as_str(self) -> &'static str {
        match self {
            Theme::System => "system",
            Theme::Light => "light",
            Theme::Dark => "dark",
        }
    }
}

/// The language of the window and the tray.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum Language {
    /// As the OS is: Chinese when the locale says `zh`, else English.
    #[default]
    #[serde(rename = "system")]
    System,
    #[serde(rename = "en")]
    English,
    #[serde(rename = "zh-CN")]
    SimplifiedChinese,
}

impl Language {
    pub fn as_str(self) -> &'static str {
        match self {
            Language::System => "system",
            Language::English => "en",
            Language::SimplifiedChinese => "zh-CN",
        }
    }
}

/// The masked-IP check: echo endpoints that answer with the caller's public
/// IP, as plain text or as an `ip=` line (`cdn-cgi/trace` style). Tried in
/// order; the first answer wins. The check through Veil and the direct one
/// ask different endpoints, a random pause apart, so no single endpoint
/// sees the exit address and the real one together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IpCheckSection {
    /// Asked through Veil. `http://` or `https://` URLs only (checked while
    /// parsing, so an error names the line).
    #[serde(deserialize_with = "http_urls")]
    pub endpoints: Vec<String>,
    /// Asked directly; one whose host and port is also in `endpoints` is
    /// skipped.
    #[serde(deserialize_with = "http_urls")]
    pub direct_endpoints: Vec<String>,
    /// Names with only IPv6 addresses, asked through each upstream (never
    /// directly) for the upstream's IPv6 exit.
    #[serde(deserialize_with = "http_urls")]
    pub endpoints_v6: Vec<String>,
    /// Whether the real IP is checked directly at all ("Check my real IP
    /// directly" in Settings). Off, the verdict rests on the exit IP alone.
    pub direct: bool,
    /// How long one endpoint may take before the next is tried.
    pub timeout_ms: u64,
    /// The random pause between the check through Veil and the direct one
    /// is drawn from `delay_min_ms..=delay_max_ms`.
    pub delay_min_ms: u64,
    pub delay_max_ms: u64,
}

impl Default for IpCheckSection {
    fn default() -> Self {
        let urls = |list: &[&str]| list.iter().map(|s| s.to_string()).collect();
        Self {
            endpoints: urls(crate::ipcheck::DEFAULT_ENDPOINTS),
            direct_endpoints: urls(crate::ipcheck::DEFAULT_DIRECT_ENDPOINTS),
            endpoints_v6: urls(crate::ipcheck::DEFAULT_V6_ENDPOINTS),
            direct: true,
            timeout_ms: 4000,
            delay_min_ms: 2000,
            delay_max_ms: 10_000,
        }
    }
}

/// Each element checked on its own, so the error points at its line.
fn http_urls<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct HttpUrl(String);
    impl<'de> Deserialize<'de> for HttpUrl {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let url = String::deserialize(d)?;
            crate::ipcheck::check_endpoint_url(&url).map_err(serde::de::Error::custom)?;
            Ok(HttpUrl(url))
        }
    }
    Ok(Vec::<HttpUrl>::deserialize(d)?
        .into_iter()
        .map(|u| u.0)
        .collect())
}

/// The traffic history (`history.sqlite3` in the data folder).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HistorySection {
    /// Minute buckets older than this are deleted; 0 turns the history off
    /// (nothing is written, and what was kept is deleted).
    pub retention_days: u32,
    /// The database's size cap: past it, the oldest minutes are deleted.
    pub max_mb: u64,
}

impl Default for HistorySection {
    fn default() -> Self {
        Self {
            retention_days: 30,
            // A month of per-minute buckets for ~50 apps and hosts is a
            // few MiB; the cap stops a machine talking to thousands of
            // hosts from filling the disk.
            max_mb: 64,
        }
    }
}

/// Finds the stored password for a keyring entry; `None` when there is none.
pub type SecretLookup<'a> =
    dyn Fn(&SecretKey) -> Result<Option<String>, secrets::SecretsError> + 'a;

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
    #[error("upstream {name:?}: the environment variable {var} named by password_env is not set")]
    MissingUpstreamPassword { name: String, var: String },
    #[error(
        "upstream {name:?} logs in as {user:?}, but the OS keyring has no password for it; store \
         one with `veil upstream add {name} URL` (it asks for the password), or name an \
         environment variable with password_env"
    )]
    NoStoredUpstreamPassword { name: String, user: String },
    #[error(
        "inbound user {user:?} has no password in the OS keyring (entry \"inbound:{user}\" of \
         service \"veil\"); store one, or name an environment variable with proxy.auth.password_env"
    )]
    NoStoredInboundPassword { user: String },
    /// RFC 1929 gives SOCKS5 user names and passwords one length byte.
    #[error(
        "{whom}: the {what} is {len} bytes long; SOCKS5 allows at most 255 (RFC 1929), so it \
         could never log in"
    )]
    SocksCredentialTooLong {
        whom: String,
        what: &'static str,
        len: usize,
    },
    #[error(transparent)]
    Secrets(#[from] crate::secrets::SecretsError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
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
        let idle = l.tunnel_idle_timeout_s;
        if !(idle.is_finite() && (1.0..=7.0 * 86_400.0).contains(&idle)) {
            return Err(invalid(format!(
                "limits.tunnel_idle_timeout_s must be between 1 second and 7 days, not {idle}"
            )));
        }
        let h = &self.upstreams.health_check;
        if !(h.interval_s.is_finite() && h.interval_s >= 1.0 && h.interval_s <= 86_400.0) {
            return Err(invalid(format!(
                "upstreams.health_check.interval_s must be between 1 and 86400 seconds, not {}",
                h.interval_s
            )));
        }
        if h.fall == 0 || h.rise == 0 {
            return Err(invalid(
                "upstreams.health_check.fall and rise must be at least 1".into(),
            ));
        }
        if let Some(url) = &h.url
            && !url.starts_with("http://")
        {
            return Err(invalid(format!(
                "upstreams.health_check.url must be a plain http:// URL, not {url:?}"
            )));
        }
        let mut names = std::collections::HashSet::new();
        for server in &self.upstreams.server {
            if server.name.trim().is_empty() {
                return Err(invalid("every [[upstreams.server]] needs a name".into()));
            }
            // Keyring entries of inbound users are named `inbound:USER`; an
            // upstream of that name would read or overwrite one.
            if server.name.starts_with("inbound:") {
                return Err(invalid(format!(
                    "upstream {:?}: names may not start with \"inbound:\" (Veil keeps the \
                     passwords of its own inbound users under that prefix)",
                    server.name
                )));
            }
            if !names.insert(server.name.as_str()) {
                return Err(invalid(format!(
                    "two upstreams are named {:?}; names must be unique",
                    server.name
                )));
            }
            let url = server
                .url
                .parse::<ProxyUrl>()
                .map_err(|e| invalid(format!("upstream {:?}: {e}", server.name)))?;
            // Port 0 (a free port picked at start) is checked by the engine.
            if self.proxy.listen.port() != 0
                && veil_engine::host_reaches_listener(self.proxy.listen, &url.host, url.port)
            {
                return Err(invalid(format!(
                    "upstream {:?} ({url}) is Veil's own listener {}; an upstream must be \
                     another proxy",
                    server.name, self.proxy.listen
                )));
            }
            if server.weight == 0 {
                return Err(invalid(format!(
                    "upstream {:?}: weight must be at least 1",
                    server.name
                )));
            }
        }
        // No endpoints turns the check off (nothing is fetched).
        let ipcheck = &self.ipcheck;
        for url in &ipcheck.endpoints {
            crate::ipcheck::check_endpoint_url(url)
                .map_err(|e| invalid(format!("ipcheck.endpoints: {e}")))?;
        }
        if !(100..=120_000).contains(&ipcheck.timeout_ms) {
            return Err(invalid(format!(
                "ipcheck.timeout_ms must be between 100 and 120000, not {}",
                ipcheck.timeout_ms
            )));
        }
        if self.history.retention_days > 3650 {
            return Err(invalid(format!(
                "history.retention_days must be between 0 (off) and 3650, not {}",
                self.history.retention_days
            )));
        }
        if self.history.max_mb == 0 {
            return Err(invalid(
                "history.max_mb must be at least 1 (turn the history off with retention_days = 0)"
                    .to_owned(),
            ));
        }
        let ipcheck = &self.ipcheck;
        if ipcheck.delay_min_ms > ipcheck.delay_max_ms || ipcheck.delay_max_ms > 600_000 {
            return Err(invalid(format!(
                "ipcheck.delay_min_ms ({}) must not exceed delay_max_ms ({}), at most 600000",
                ipcheck.delay_min_ms, ipcheck.delay_max_ms
            )));
        }
        let rules: Vec<(String, Action)> =
            self.rules.iter().map(|(k, v)| (k.clone(), *v)).collect();
        Routing::new(&self.proxy.bypass, &rules).map_err(invalid)?;
        if let Some(auth) = &self.proxy.auth
            && (auth.username.is_empty() || auth.password_env.as_deref() == Some(""))
        {
            return Err(invalid(
                "proxy.auth needs a non-empty username, and password_env must not be empty \
                 when given"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The engine's view of this config, with passwords filled in from
    /// their environment variables or the OS keyring.
    pub fn engine_config(&self) -> Result<EngineConfig, ConfigError> {
        self.engine_config_with(&secrets::get)
    }

    /// [`Self::engine_config`] with another place to look passwords up
    /// (tests, or a front end that already holds them).
    pub fn engine_config_with(
        &self,
        secret: &SecretLookup<'_>,
    ) -> Result<EngineConfig, ConfigError> {
        let auth = match &self.proxy.auth {
            Some(a) => {
                let password = match &a.password_env {
                    Some(var) => std::env::var(var)
                        .ok()
                        .filter(|p| !p.is_empty())
                        .ok_or_else(|| ConfigError::MissingPassword { var: var.clone() })?,
                    None => secret(&SecretKey::Inbound(a.username.clone()))?.ok_or_else(|| {
                        ConfigError::NoStoredInboundPassword {
                            user: a.username.clone(),
                        }
                    })?,
                };
                // The inbound listener speaks SOCKS5 too.
                socks_fits("inbound credentials", &a.username, &password)?;
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
                tunnel_idle_timeout: Duration::from_secs_f64(l.tunnel_idle_timeout_s),
                ..Limits::default()
            },
            dns_servers: self.dns.servers.clone(),
            upstreams: self.upstream_specs(secret)?,
            fallback_direct: self.proxy.fallback_direct,
            strategy: self.upstreams.strategy,
            health: HealthConfig {
                interval: Duration::from_secs_f64(self.upstreams.health_check.interval_s),
                check_url: self.upstreams.health_check.url.clone(),
                fall: self.upstreams.health_check.fall,
                rise: self.upstreams.health_check.rise,
            },
            bypass: self.proxy.bypass.clone(),
            rules: self.rules.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            cache: self.cache.engine_cache(),
            client_lookup: Some(std::sync::Arc::new(crate::sockets::SocketTable::new())),
        })
    }

    /// The configured upstreams with their passwords filled in: from the
    /// variable named by `password_env` when set, else from the OS keyring
    /// when the URL names a user. A URL without a user needs no password and
    /// never touches the keyring.
    fn upstream_specs(&self, secret: &SecretLookup<'_>) -> Result<Vec<UpstreamSpec>, ConfigError> {
        self.upstreams
            .server
            .iter()
            .map(|s| {
                let url: ProxyUrl = s.url.parse().map_err(|e| ConfigError::Invalid {
                    path: PathBuf::from("config.toml"),
                    message: format!("upstream {:?}: {e}", s.name),
                })?;
                let password = match &s.password_env {
                    Some(var) => Some(
                        std::env::var(var)
                            .ok()
                            .filter(|p| !p.is_empty())
                            .ok_or_else(|| ConfigError::MissingUpstreamPassword {
                                name: s.name.clone(),
                                var: var.clone(),
                            })?,
                    ),
                    None => match &url.username {
                        Some(user) => {
                            Some(secret(&SecretKey::Upstream(s.name.clone()))?.ok_or_else(
                                || ConfigError::NoStoredUpstreamPassword {
                                    name: s.name.clone(),
                                    user: user.clone(),
                                },
                            )?)
                        }
                        None => None,
                    },
                };
                if url.kind == ProxyKind::Socks5 {
                    socks_fits(
                        &format!("upstream {:?}", s.name),
                        url.username.as_deref().unwrap_or_default(),
                        password.as_deref().unwrap_or_default(),
                    )?;
                }
                Ok(UpstreamSpec {
                    name: s.name.clone(),
                    url,
                    password,
                    weight: s.weight,
                    ca_file: s.ca_file.clone(),
                })
            })
            .collect()
    }
}

/// Refuses a SOCKS5 user name or password longer than its length byte.
fn socks_fits(whom: &str, user: &str, password: &str) -> Result<(), ConfigError> {
    for (what, value) in [("user name", user), ("password", password)] {
        if value.len() > 255 {
            return Err(ConfigError::SocksCredentialTooLong {
                whom: whom.to_owned(),
                what,
                len: value.len(),
            });
        }
    }
    Ok(())
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
    fn upstreams_and_rules() {
        let c = parse(
            "[upstreams]\nstrategy = \"leastconn\"\n[[upstreams.server]]\nname = \"home\"\n\
             url = \"socks5://alice@127.0.0.3:1080\"\n[rules]\n\"*.ads.example\" = \"block\"\n",
        )
        .expect("ok");
        let e = c
            .engine_config_with(&|_| Ok(Some("pw".into())))
            .expect("engine config");
        assert_eq!(e.strategy, Strategy::LeastConn);
        assert_eq!(
            e.upstreams[0].url.to_string(),
            "socks5://alice@127.0.0.3:1080"
        );
        assert_eq!(e.rules, vec![("*.ads.example".to_string(), Action::Block)]);
        let err = parse("[[upstreams.server]]\nname = \"a\"\nurl = \"http://u:pw@h:1\"\n")
            .expect_err("password in url");
        assert!(!err.to_string().contains("pw@"), "{err}");
        assert!(parse("[rules]\n\"a*b\" = \"block\"\n").is_err());
        assert!(parse("[rules]\n\"a.example\" = \"maybe\"\n").is_err());
    }

    #[test]
    fn upstream_names_cannot_reach_inbound_keyring_entries() {
        let err = parse(
            "[[upstreams.server]]\nname = \"inbound:alice\"\nurl = \"socks5://alice@127.0.0.3:1080\"\n",
        )
        .expect_err("inbound: prefix");
        assert!(err.to_string().contains("inbound:"), "{err}");
    }

    #[test]
    fn an_upstream_may_not_be_veil_itself() {
        for url in [
            "http://127.0.0.1:7890",
            "socks5://localhost:7890",
            "http://[::ffff:127.0.0.1]:7890",
            "http://0.0.0.0:7890",
        ] {
            let err = parse(&format!(
                "[proxy]\nlisten = \"127.0.0.1:7890\"\n[[upstreams.server]]\nname = \"me\"\nurl = \"{url}\"\n"
            ))
            .expect_err(url);
            assert!(err.to_string().contains("own listener"), "{url}: {err}");
        }
        assert!(
            parse(
                "[proxy]\nlisten = \"127.0.0.1:7890\"\n[[upstreams.server]]\nname = \"a\"\nurl = \"http://127.0.0.2:7890\"\n"
            )
            .is_ok(),
            "another loopback address is another listener"
        );
    }

    #[test]
    fn socks5_passwords_over_255_bytes_are_refused_before_they_wrap() {
        let c = parse(
            "[[upstreams.server]]\nname = \"home\"\nurl = \"socks5://alice@127.0.0.3:1080\"\n\
             [[upstreams.server]]\nname = \"web\"\nurl = \"http://alice@127.0.0.2:3128\"\n",
        )
        .expect("ok");
        let err = c
            .engine_config_with(&|_| Ok(Some("p".repeat(256))))
            .expect_err("256 bytes");
        let msg = err.to_string();
        assert!(msg.contains("\"home\"") && msg.contains("255"), "{msg}");
        assert!(!msg.contains("ppp"), "the password is not shown: {msg}");
        assert!(c.engine_config_with(&|_| Ok(Some("p".repeat(255)))).is_ok());
    }

    #[test]
    fn upstream_passwords_come_from_the_keyring_only_when_a_user_is_named() {
        let c = parse(
            "[[upstreams.server]]\nname = \"home\"\nurl = \"socks5://alice@127.0.0.3:1080\"\n\
             [[upstreams.server]]\nname = \"open\"\nurl = \"http://127.0.0.2:3128\"\n",
        )
        .expect("ok");
        let asked = std::cell::RefCell::new(Vec::new());
        let e = c
            .engine_config_with(&|key| {
                asked.borrow_mut().push(key.clone());
                Ok(Some("s3cret".into()))
            })
            .expect("engine config");
        assert_eq!(*asked.borrow(), vec![SecretKey::Upstream("home".into())]);
        assert_eq!(e.upstreams[0].password.as_deref(), Some("s3cret"));
        assert_eq!(e.upstreams[1].password, None);

        let err = c.engine_config_with(&|_| Ok(None)).expect_err("no entry");
        let msg = err.to_string();
        assert!(
            msg.contains("\"home\"") && msg.contains("veil upstream add"),
            "{msg}"
        );
    }

    #[test]
    fn inbound_password_from_the_keyring_when_no_variable_is_named() {
        let c = parse("[proxy.auth]\nusername = \"me\"\n").expect("ok");
        let e = c
            .engine_config_with(&|key| {
                assert_eq!(key, &SecretKey::Inbound("me".into()));
                Ok(Some("pw".into()))
            })
            .expect("engine config");
        assert!(e.auth.is_some());
        let err = c.engine_config_with(&|_| Ok(None)).expect_err("no entry");
        assert!(err.to_string().contains("inbound:me"), "{err}");
        assert!(parse("[proxy.auth]\nusername = \"me\"\npassword_env = \"\"\n").is_err());
    }

    #[test]
    fn ipcheck_and_history_sections() {
        let c = parse("").expect("defaults");
        assert_eq!(c.ipcheck.endpoints.len(), 3);
        assert_eq!(c.ipcheck.timeout_ms, 4000);
        assert_eq!(c.history.retention_days, 30);
        let c = parse(
            "[ipcheck]\nendpoints = [\"http://127.0.0.1:8/\", \"https://a.example/cdn-cgi/trace\"]\n\
             timeout_ms = 500\n[history]\nretention_days = 7\n",
        )
        .expect("ok");
        assert_eq!(c.ipcheck.endpoints[1], "https://a.example/cdn-cgi/trace");
        assert_eq!(c.history.retention_days, 7);
        let err = parse(
            "[ipcheck]\nendpoints = [\n  \"https://ok.example\",\n  \"file:///etc/passwd\",\n]\n",
        )
        .expect_err("file URL");
        // The array's line: toml gives an element's error the array's span.
        assert!(err.to_string().starts_with("config.toml:2:"), "{err}");
        assert!(err.to_string().contains("http"), "{err}");
        assert!(parse("[ipcheck]\nendpoints = [\"ftp://x.example/\"]\n").is_err());
        // No endpoints: the check is off.
        assert!(parse("[ipcheck]\nendpoints = []\n").is_ok());
        assert!(parse("[ipcheck]\ntimeout_ms = 0\n").is_err());
        // 0: history off.
        assert!(parse("[history]\nretention_days = 0\n").is_ok());
        assert!(parse("[history]\nretention_days = 3651\n").is_err());
        assert!(parse("[history]\nmax_mb = 0\n").is_err());
        assert!(parse("[ipcheck]\ndelay_min_ms = 5\ndelay_max_ms = 1\n").is_err());
        assert!(parse("[history]\nkeep = 1\n").is_err());
    }

    #[test]
    fn saves_what_it_loads() {
        let c = parse("[proxy]\nlisten = \"127.0.0.1:9000\"\nmode = \"direct\"\n").expect("ok");
        let text = toml::to_string(&c).expect("serialise");
        assert_eq!(parse(&text).expect("round trip"), c);
    }
}
