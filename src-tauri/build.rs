//! Registers Veil's own commands with Tauri's access control, so each one is
//! checked against `capabilities/default.json` before the window may call it.

/// Every command in `src/commands.rs`; `tests` in `src/lib.rs` checks this
/// list against the invoke handler.
const COMMANDS: &[&str] = &[
    "get_status",
    "dismiss_alerts",
    "set_system_proxy",
    "system_proxy_settings",
    "answer_drift",
    "set_selection",
    "set_strategy",
    "list_upstreams",
    "save_upstream",
    "remove_upstream",
    "test_upstream",
    "import_upstreams",
    "cache_clear",
    "get_settings",
    "save_settings",
    "check_ip",
    "scan_coverage",
    "check_leaks",
    "get_history",
    "export_history_csv",
    "get_fallback_direct",
    "set_fallback_direct",
    "answer_close",
    "quit_app",
    "close_connections",
    "check_exit_ip",
];

fn main() {
    tauri_build::try_build(
        tauri_build::Attributes::new()
            .app_manifest(tauri_build::AppManifest::new().commands(COMMANDS)),
    )
    .expect("tauri build step failed");
}
