//! The commands through Tauri's IPC on the mock runtime, with the app's real
//! context (so the ACL of `capabilities/default.json` applies) and a real
//! engine on a free loopback port under a temporary `VEIL_HOME`.

use std::sync::Arc;

use serde_json::{Value, json};
use tauri::Manager;
use tauri::ipc::{CallbackFn, InvokeBody};
use tauri::test::{INVOKE_KEY, MockRuntime, get_ipc_response, mock_builder};
use tauri::webview::InvokeRequest;
use tauri::{App, WebviewWindow, WebviewWindowBuilder};
use veil_system::Paths;

use crate::AppState;

struct TestApp {
    _dir: tempfile::TempDir,
    paths: Paths,
    _app: App<MockRuntime>,
    main: WebviewWindow<MockRuntime>,
    other: WebviewWindow<MockRuntime>,
}

fn start() -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let paths = Paths::under(dir.path());
    paths.create_dirs().expect("dirs");
    std::fs::write(
        &paths.config_file,
        "# test settings\n[proxy]\nlisten = \"127.0.0.1:0\"\n",
    )
    .expect("config");
    let state = tauri::async_runtime::block_on(AppState::start(paths.clone()));
    assert!(state.service().is_ok(), "the engine starts");
    let app = crate::builder_on(mock_builder())
        .plugin(tauri_plugin_autostart::init(
            tauri_plugin_autostart::MacosLauncher::LaunchAgent,
            None,
        ))
        .build(tauri::generate_context!())
        .expect("mock app");
    app.manage(Arc::new(state));
    let main = WebviewWindowBuilder::new(&app, "main", Default::default())
        .build()
        .expect("main window");
    let other = WebviewWindowBuilder::new(&app, "other", Default::default())
        .build()
        .expect("second window");
    TestApp {
        _dir: dir,
        paths,
        _app: app,
        main,
        other,
    }
}

fn invoke(window: &WebviewWindow<MockRuntime>, cmd: &str, args: Value) -> Result<Value, Value> {
    get_ipc_response(
        window,
        InvokeRequest {
            cmd: cmd.into(),
            callback: CallbackFn(0),
            error: CallbackFn(1),
            // On Linux the webview's own pages are tauri://localhost.
            url: "tauri://localhost".parse().expect("url"),
            body: InvokeBody::Json(args),
            headers: Default::default(),
            invoke_key: INVOKE_KEY.to_string(),
        },
    )
    .map(|body| body.deserialize::<Value>().expect("JSON reply"))
}

impl TestApp {
    fn ok(&self, cmd: &str, args: Value) -> Value {
        invoke(&self.main, cmd, args).unwrap_or_else(|e| panic!("{cmd}: {e}"))
    }

    fn err(&self, cmd: &str, args: Value) -> Value {
        match invoke(&self.main, cmd, args) {
            Ok(v) => panic!("{cmd} should have failed, gave {v}"),
            Err(e) => e,
        }
    }

    fn config(&self) -> String {
        std::fs::read_to_string(&self.paths.config_file).expect("config")
    }
}

#[test]
fn status_reports_the_running_engine_on_loopback() {
    let t = start();
    let status = t.ok("get_status", json!({}));
    let listen = status["stats"]["listen"].as_str().expect("listen");
    assert!(listen.starts_with("127.0.0.1:"), "{listen}");
    assert!(!listen.ends_with(":0"), "the real port: {listen}");
    assert_eq!(status["selection"], json!({"kind": "direct"}));
    assert_eq!(status["system_proxy"]["on"], json!(false));
}

#[test]
fn only_the_main_window_may_call_commands() {
    let t = start();
    let refused = invoke(&t.other, "get_status", json!({}));
    assert!(
        refused.is_err(),
        "a window outside the capability: {refused:?}"
    );
}

#[test]
fn bad_upstream_input_is_refused_and_changes_nothing() {
    let t = start();
    let before = t.config();
    for (url, why) in [
        ("ftp://host:21", "scheme"),
        ("socks5://", "host"),
        ("not a url", "form"),
    ] {
        let e = t.err(
            "save_upstream",
            json!({"upstream": {"original_name": null, "name": "x", "url": url, "password": null, "weight": 1}}),
        );
        assert_eq!(e["kind"], "invalid", "{why}: {e}");
        assert!(!e["message"].as_str().unwrap_or("").is_empty());
    }
    let e = t.err(
        "save_upstream",
        json!({"upstream": {"original_name": null, "name": "  ", "url": "socks5://127.0.0.1:1080", "password": null, "weight": 1}}),
    );
    assert_eq!(e["kind"], "invalid", "{e}");
    assert_eq!(t.config(), before, "config.toml untouched");
    assert_eq!(t.ok("list_upstreams", json!({})), json!([]));
}

#[test]
fn choosing_the_pool_without_upstreams_says_what_to_do() {
    let t = start();
    let e = t.err("set_selection", json!({"selection": {"kind": "pool"}}));
    assert!(
        e["message"]
            .as_str()
            .unwrap_or("")
            .contains("Upstreams page"),
        "{e}"
    );
    let status = t.ok("get_status", json!({}));
    assert_eq!(status["selection"], json!({"kind": "direct"}));
    assert_eq!(status["stats"]["mode"], "direct");
}

#[test]
fn upstreams_are_added_chosen_edited_and_removed_live() {
    let t = start();
    // No user in the URL, so the keyring is not needed.
    let list = t.ok(
        "save_upstream",
        json!({"upstream": {"original_name": null, "name": "exit-a", "url": "socks5://127.0.0.1:1080", "password": null, "weight": 1}}),
    );
    assert_eq!(list[0]["name"], "exit-a");
    assert_eq!(list[0]["has_password"], false);
    assert!(t.config().starts_with("# test settings\n"), "comments kept");
    assert!(t.config().contains("socks5://127.0.0.1:1080"));

    let e = t.err(
        "save_upstream",
        json!({"upstream": {"original_name": null, "name": "needs-pw", "url": "socks5://alice@127.0.0.1:1080", "password": "", "weight": 1}}),
    );
    assert_eq!(e["kind"], "invalid", "a user without a password: {e}");
    assert!(!t.config().contains("needs-pw"));

    let status = t.ok(
        "set_selection",
        json!({"selection": {"kind": "one", "name": "exit-a"}}),
    );
    assert_eq!(status["stats"]["mode"], "proxy");
    assert_eq!(status["stats"]["upstreams"][0]["name"], "exit-a");
    assert!(t.config().contains("pinned_upstream = \"exit-a\""));

    // Renaming keeps it chosen only by the new name; the engine follows.
    let list = t.ok(
        "save_upstream",
        json!({"upstream": {"original_name": "exit-a", "name": "exit-b", "url": "http://127.0.0.1:3128", "password": null, "weight": 3}}),
    );
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(list[0]["name"], "exit-b");
    assert_eq!(list[0]["weight"], 3);
    let status = t.ok("get_status", json!({}));
    assert_eq!(status["stats"]["upstreams"][0]["name"], "exit-b");
    assert_eq!(
        status["selection"],
        json!({"kind": "one", "name": "exit-b"}),
        "the renamed upstream stays chosen"
    );
    assert!(t.config().contains("pinned_upstream = \"exit-b\""));

    let status = t.ok("set_strategy", json!({"strategy": "leastconn"}));
    assert_eq!(status["stats"]["strategy"], "leastconn");
    assert!(t.config().contains("strategy = \"leastconn\""));

    let list = t.ok("remove_upstream", json!({"name": "exit-b"}));
    assert_eq!(list, json!([]));
    let status = t.ok("get_status", json!({}));
    assert_eq!(
        status["stats"]["mode"], "direct",
        "nothing left to proxy through"
    );
}

#[test]
fn settings_are_checked_before_they_are_saved() {
    let t = start();
    let mut settings = t.ok("get_settings", json!({}));
    assert_eq!(settings["theme"], "system");
    let before = t.config();

    settings["listen"] = json!("not-an-address");
    let e = t.err("save_settings", json!({"settings": settings.clone()}));
    assert_eq!(e["kind"], "invalid", "{e}");

    settings["listen"] = json!("127.0.0.1:0");
    settings["ipcheck_endpoints"] = json!(["file:///etc/passwd"]);
    let e = t.err("save_settings", json!({"settings": settings.clone()}));
    assert!(e["message"].as_str().unwrap_or("").contains("http"), "{e}");
    assert_eq!(t.config(), before, "nothing written");

    settings["ipcheck_endpoints"] = json!([]);
    settings["theme"] = json!("dark");
    settings["bypass"] = json!(["*.internal.example", "10.0.0.0/8"]);
    let saved = t.ok("save_settings", json!({"settings": settings}));
    assert_eq!(saved["settings"]["theme"], "dark");
    assert_eq!(
        saved["settings"]["bypass"],
        json!(["*.internal.example", "10.0.0.0/8"])
    );
    assert!(t.config().contains("theme = \"dark\""));
}

/// An upstream edit the engine cannot apply is refused as a whole: the
/// route, the engine's upstreams and config.toml stay as they were. Before,
/// any such failure switched to direct and saved `mode = "direct"`, so
/// traffic left from the real IP from then on.
#[test]
fn an_upstream_edit_that_cannot_be_applied_never_falls_back_to_direct() {
    let t = start();
    t.ok(
        "save_upstream",
        json!({"upstream": {"original_name": null, "name": "exit-a", "url": "socks5://127.0.0.1:1080", "password": null, "weight": 1}}),
    );
    let status = t.ok(
        "set_selection",
        json!({"selection": {"kind": "one", "name": "exit-a"}}),
    );
    let listen = status["stats"]["listen"]
        .as_str()
        .expect("listen")
        .to_owned();
    let before = t.config();

    // Veil's own listener as the upstream: the engine refuses it.
    let e = t.err(
        "save_upstream",
        json!({"upstream": {"original_name": "exit-a", "name": "exit-a", "url": format!("http://{listen}"), "password": null, "weight": 1}}),
    );
    let message = e["message"].as_str().unwrap_or_default();
    assert!(message.contains("own listener"), "{e}");
    assert!(message.contains("not applied"), "{e}");

    let status = t.ok("get_status", json!({}));
    assert_eq!(
        status["stats"]["mode"], "proxy",
        "still through the upstream"
    );
    assert_eq!(
        status["selection"],
        json!({"kind": "one", "name": "exit-a"})
    );
    assert_eq!(
        status["stats"]["upstreams"][0]["url"], "socks5://127.0.0.1:1080",
        "the engine keeps the upstream it had"
    );
    assert_eq!(t.config(), before, "config.toml is put back");
}

/// A stored password is not carried to another host, port, kind or user
/// when an upstream's URL is edited: the window asks for it again.
#[test]
fn editing_an_upstream_to_another_proxy_asks_for_the_password_again() {
    let t = start();
    t.ok(
        "save_upstream",
        json!({"upstream": {"original_name": null, "name": "exit", "url": "socks5://127.0.0.1:1080", "password": null, "weight": 1}}),
    );
    let before = t.config();
    for url in [
        "socks5://alice@127.0.0.2:1080",
        "socks5://alice@127.0.0.1:1081",
        "http://alice@127.0.0.1:1080",
    ] {
        let e = t.err(
            "save_upstream",
            json!({"upstream": {"original_name": "exit", "name": "exit", "url": url, "password": null, "weight": 1}}),
        );
        assert!(
            e["message"]
                .as_str()
                .unwrap_or_default()
                .contains("another proxy"),
            "{url}: {e}"
        );
        assert_eq!(t.config(), before, "nothing changed for {url}");
    }
}

#[test]
fn the_kill_switch_is_on_until_the_user_allows_direct() {
    let t = start();
    assert_eq!(t.ok("get_fallback_direct", json!({})), json!(false));
    assert_eq!(
        t.ok("set_fallback_direct", json!({"allowed": true})),
        json!(true)
    );
    assert!(
        t.config().contains("fallback_direct = true"),
        "{}",
        t.config()
    );
    assert_eq!(t.ok("get_fallback_direct", json!({})), json!(true));
    t.ok("set_fallback_direct", json!({"allowed": false}));
    assert_eq!(t.ok("get_fallback_direct", json!({})), json!(false));
}
