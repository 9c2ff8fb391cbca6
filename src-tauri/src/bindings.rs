//! The TypeScript types of everything the window sends and receives,
//! generated from the Rust types with ts-rs into `ui/src/bindings.ts`.
//! `make bindings` writes the file; a test fails when the checked-in file
//! differs from what the Rust types say.

use ts_rs::{Config, TS};

/// Where the generated file lives, from the workspace root.
pub const PATH: &str = "ui/src/bindings.ts";

macro_rules! declarations {
    ($cfg:expr; $($ty:ty),* $(,)?) => {
        vec![$(<$ty as TS>::decl($cfg)),*]
    };
}

/// The whole file. Counters are `u64` in Rust and `number` here: byte and
/// connection counts stay far below 2^53.
pub fn render() -> String {
    let cfg = Config::new().with_large_int("number");
    let decls = declarations![&cfg;
        veil_engine::Mode,
        veil_engine::Strategy,
        veil_engine::StatsSnapshot,
        veil_engine::RateSample,
        veil_engine::HostStats,
        veil_engine::ConnectionInfo,
        veil_engine::ClientApp,
        veil_engine::stats::AppStats,
        veil_engine::DnsStats,
        veil_engine::upstream::UpstreamReport,
        veil_engine::CacheStats,
        veil_engine::Invalidations,
        veil_engine::EngineEvent,
        veil_system::config::Theme,
        veil_system::config::Language,
        veil_system::alerts::Alert,
        veil_system::sysproxy::AppsReach,
        veil_system::sysproxy::SettingRow,
        veil_system::service::DriftCause,
        veil_system::service::SystemProxyDrift,
        veil_system::service::DriftChoice,
        veil_system::ipcheck::IpVerdict,
        veil_system::ipcheck::IpProbe,
        veil_system::ipcheck::ExitIp,
        veil_system::ipcheck::EndpointFailure,
        veil_system::ipcheck::IpReport,
        veil_system::history::HistoryRange,
        veil_system::history::HistoryPoint,
        veil_system::history::HistoryRow,
        veil_system::history::HistoryReport,
        veil_system::coverage::CoverageClass,
        veil_system::coverage::KnownApp,
        veil_system::coverage::CoverageApp,
        veil_system::coverage::CoverageTotals,
        veil_system::coverage::CoverageReport,
        veil_system::leaks::Verdict,
        veil_system::leaks::LeakCheckId,
        veil_system::leaks::LeakItem,
        veil_system::leaks::LeakCheck,
        veil_system::leaks::LeakRoute,
        veil_system::leaks::LeakReport,
        crate::ErrorKind,
        crate::AppError,
        crate::Selection,
        crate::SysProxyState,
        crate::AttachedTo,
        crate::AppStatus,
        crate::UpstreamEntry,
        veil_system::upstream_edit::UpstreamChange,
        crate::UpstreamTest,
        veil_system::upstream_import::RefusedLine,
        veil_system::upstream_import::AddedUpstream,
        veil_system::upstream_import::ImportSummary,
        crate::ImportResult,
        veil_system::settings_edit::Settings,
        crate::SettingsSaved,
    ];
    let mut out = String::from(
        "// Generated from the Rust types by `make bindings` (src-tauri/src/bindings.rs).\n\
         // Do not edit: a test fails when this file and the Rust types differ.\n",
    );
    for decl in decls {
        out.push('\n');
        out.push_str("export ");
        out.push_str(&decl);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    fn checked_in() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(super::PATH)
    }

    /// `VEIL_UPDATE_BINDINGS=1` rewrites the file instead (what `make
    /// bindings` runs).
    #[test]
    fn checked_in_bindings_match_the_rust_types() {
        let want = super::render();
        let path = checked_in();
        if std::env::var_os("VEIL_UPDATE_BINDINGS").is_some() {
            std::fs::write(&path, &want).expect("write bindings");
            return;
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "{} is out of date with the Rust types; run `make bindings` and commit it",
            path.display()
        );
    }
}
