//! The settings the window edits, as one record: read from `config.toml`,
//! checked, and written back (comments and formatting kept), with an undo
//! for when the running engine cannot take them. The app's Settings page
//! is a thin caller of this; what the engine does with a change is
//! [`crate::Service::apply_settings`].

use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::Config;
use crate::config::{Language, Theme};
use crate::config_file::ConfigFile;
use crate::sysproxy::AppsReach;
use crate::upstream_edit::{EditError, Undo};

#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    pub listen: String,
    pub bypass: Vec<String>,
    pub cache_enabled: bool,
    pub cache_memory_mb: u64,
    pub cache_disk_mb: u64,
    /// Serve what was fetched through one route to requests taking another.
    pub cache_share_across_routes: bool,
    /// Start at login (the app's autostart entry, not in `config.toml`).
    pub autostart: bool,
    /// `http(s)` URLs only, asked through Veil.
    pub ipcheck_endpoints: Vec<String>,
    /// "Check my real IP directly" (other endpoints, after a random pause).
    pub ipcheck_direct: bool,
    pub history_retention_days: u32,
    pub theme: Theme,
    /// How apps reach Veil when the system proxy is on: a fixed proxy, or
    /// Veil's PAC file (fail-closed or fail-open).
    pub apps_reach: AppsReach,
    pub language: Language,
    /// Closing the window keeps Veil running in the tray.
    pub keep_running: bool,
}

impl Settings {
    /// The settings `config` holds; `autostart` and `keep_running` are the
    /// caller's (they depend on the desktop).
    pub fn of(config: &Config, autostart: bool, keep_running: bool) -> Self {
        Self {
            listen: config.proxy.listen.to_string(),
            bypass: config.proxy.bypass.clone(),
            cache_enabled: config.cache.enabled,
            cache_memory_mb: config.cache.memory_mb,
            cache_disk_mb: config.cache.disk_mb,
            cache_share_across_routes: config.cache.share_across_routes,
            autostart,
            ipcheck_endpoints: config.ipcheck.endpoints.clone(),
            ipcheck_direct: config.ipcheck.direct,
            history_retention_days: config.history.retention_days,
            theme: config.app.theme,
            language: config.app.language,
            apps_reach: config.proxy.apps_reach,
            keep_running,
        }
    }
}

/// What [`write`] did: the config before and after, and how to go back.
#[derive(Debug)]
pub struct Written {
    pub before: Config,
    pub after: Config,
    pub undo: Undo,
}

/// Checks `settings` and writes them to `config_path`. A refused value (an
/// address that is not one, an endpoint that is not `http(s)`, anything
/// the config's own validation refuses) leaves the file as it was.
pub fn write(config_path: &Path, settings: &Settings) -> Result<Written, EditError> {
    let listen: SocketAddr = settings.listen.trim().parse().map_err(|_| {
        EditError::Invalid(format!(
            "{:?} is not an address and port, e.g. 127.0.0.1:7890.",
            settings.listen
        ))
    })?;
    for endpoint in &settings.ipcheck_endpoints {
        crate::ipcheck::check_endpoint_url(endpoint).map_err(|e| {
            EditError::Invalid(format!(
                "IP-check endpoint {e}: only http:// and https:// URLs are fetched."
            ))
        })?;
    }
    let before = Config::load(config_path)?;
    let undo = Undo::before_change(config_path);
    let mut file = ConfigFile::open(config_path)?;
    file.set("proxy", "listen", listen.to_string())?;
    file.set(
        "proxy",
        "bypass",
        settings
            .bypass
            .iter()
            .map(|b| b.trim())
            .filter(|b| !b.is_empty())
            .collect::<toml_edit::Array>(),
    )?;
    file.set("proxy", "apps_reach", settings.apps_reach.as_str())?;
    file.set("cache", "enabled", settings.cache_enabled)?;
    file.set("cache", "memory_mb", settings.cache_memory_mb as i64)?;
    file.set("cache", "disk_mb", settings.cache_disk_mb as i64)?;
    file.set(
        "cache",
        "share_across_routes",
        settings.cache_share_across_routes,
    )?;
    file.set("app", "theme", settings.theme.as_str())?;
    file.set("app", "language", settings.language.as_str())?;
    file.set("app", "keep_running", settings.keep_running)?;
    file.set(
        "ipcheck",
        "endpoints",
        settings
            .ipcheck_endpoints
            .iter()
            .map(|e| e.trim())
            .collect::<toml_edit::Array>(),
    )?;
    file.set("ipcheck", "direct", settings.ipcheck_direct)?;
    file.set(
        "history",
        "retention_days",
        i64::from(settings.history_retention_days),
    )?;
    // Saving validates the whole file; a refusal leaves it untouched.
    file.save()?;
    let after = Config::load(config_path)?;
    Ok(Written {
        before,
        after,
        undo,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).expect("write");
        (dir, path)
    }

    #[test]
    fn settings_round_trip_through_the_file_with_comments_kept() {
        let (_dir, path) = file("# mine\n[proxy]\nlisten = \"127.0.0.1:7890\"\n");
        let config = Config::load(&path).expect("load");
        let mut settings = Settings::of(&config, false, true);
        settings.bypass = vec!["*.corp.example".into(), " ".into()];
        settings.language = Language::SimplifiedChinese;
        settings.history_retention_days = 7;
        let written = write(&path, &settings).expect("written");
        assert_eq!(written.after.proxy.bypass, vec!["*.corp.example"]);
        assert_eq!(written.after.app.language, Language::SimplifiedChinese);
        assert_eq!(written.after.app.keep_running, Some(true));
        assert_eq!(written.before.history.retention_days, 30);
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.starts_with("# mine\n"), "{text}");
        written.undo.undo().expect("undo");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "# mine\n[proxy]\nlisten = \"127.0.0.1:7890\"\n"
        );
    }

    #[test]
    fn refused_values_leave_the_file_as_it_was() {
        let (_dir, path) = file("# mine\n");
        let config = Config::load(&path).expect("load");
        let good = Settings::of(&config, false, true);
        for (bad, why) in [
            (
                Settings {
                    listen: "localhost".into(),
                    ..good.clone()
                },
                "not an address",
            ),
            (
                Settings {
                    ipcheck_endpoints: vec!["file:///etc/passwd".into()],
                    ..good.clone()
                },
                "http",
            ),
            (
                Settings {
                    bypass: vec!["a;b".into()],
                    ..good.clone()
                },
                "bad host pattern",
            ),
        ] {
            let err = write(&path, &bad).expect_err("refused");
            assert!(err.to_string().contains(why), "{bad:?}: {err}");
            assert_eq!(std::fs::read_to_string(&path).expect("read"), "# mine\n");
        }
    }
}
