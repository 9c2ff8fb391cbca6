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
use veil_system::control::{Controller, Reply, Request};

struct TestApp {
    _dir: tempfile::TempDir,
    paths: Paths,
    _app: App<MockRuntime>,
    main: WebviewWindow<MockRuntime>,
    other: WebviewWindow<MockRuntime>,
}

fn start() -> TestApp {
    let (dir, paths) = home();
    let state = tauri::async_runtime::block_on(AppState::start(paths.clone()));
    assert!(state.service().is_ok(), "the engine starts");
    with_state(dir, paths, state)
}

/// A temporary `VEIL_HOME` whose engine listens on a free loopback port.
fn home() -> (tempfile::TempDir, Paths) {
    let dir = tempfile::tempdir().expect("temp dir");
    let paths = Paths::under(dir.path());
    paths.create_dirs().expect("dirs");
    std::fs::write(
        &paths.config_file,
        "# test settings\n[proxy]\nlisten = \"127.0.0.1:0\"\n",
    )
    .expect("config");
    (dir, paths)
}

fn with_state(dir: tempfile::TempDir, paths: Paths, state: AppState) -> TestApp {
    let app = crate::builder_on(mock_builder())
        .plugin(tauri_plugin_autostart::init(
            tauri_plugin_autostart::MacosLauncher::LaunchAgent,
            None,
        ))
        .build(tauri::generate_context!())
        .expect("mock app");
    app.manage(Arc::new(state));
    app.manage(crate::window::WindowMemory::default());
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
fn the_leak_checks_answer_through_the_acl_with_the_engines_route() {
    let t = start();
    let report = t.ok("check_leaks", json!({}));
    assert_eq!(report["route"], "direct", "{report}");
    let ids: Vec<&str> = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    for id in [
        "resolving_apps",
        "veil_lookups",
        "os_resolvers",
        "ipv6",
        "proxy_variables",
        "browsers",
        "udp",
    ] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
    assert!(invoke(&t.other, "check_leaks", json!({})).is_err());
}

/// A file of this crate (or, with `../`, of the repository).
fn source(path: &str) -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(dir.join(path)).expect(path)
}

/// The commands build.rs registers with the ACL.
fn registered_commands() -> Vec<String> {
    source("build.rs")
        .split_once("const COMMANDS: &[&str] = &[")
        .and_then(|(_, rest)| rest.split_once("];"))
        .map(|(list, _)| list)
        .expect("COMMANDS in build.rs")
        .split(',')
        .map(|c| c.trim().trim_matches('"').to_owned())
        .filter(|c| !c.is_empty())
        .collect()
}

/// The arms of `commands::dispatch`, as written.
fn dispatch_source() -> String {
    source("src/commands.rs")
        .split_once("pub async fn dispatch")
        .and_then(|(_, rest)| rest.split_once("other =>"))
        .map(|(body, _)| body.to_owned())
        .expect("dispatch in src/commands.rs")
}

/// Every command the handler serves is registered with the ACL (build.rs)
/// and allowed for the main window, and nothing else is: a command missing
/// from either is refused in the real window while the mock-runtime tests
/// above would still pass.
#[test]
fn every_command_is_registered_and_allowed_exactly_once() {
    let lib = source("src/lib.rs");
    let handler = lib
        .split_once("generate_handler![")
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(list, _)| list)
        .expect("generate_handler! in src/lib.rs");
    let mut served: Vec<String> = handler
        .split(',')
        .filter_map(|c| c.trim().strip_prefix("commands::"))
        .map(str::to_owned)
        .collect();
    let mut registered = registered_commands();
    let capability: serde_json::Value =
        serde_json::from_str(&source("capabilities/default.json")).expect("capability JSON");
    let mut allowed: Vec<String> = capability["permissions"]
        .as_array()
        .expect("permissions")
        .iter()
        .filter_map(|p| p.as_str()?.strip_prefix("allow-"))
        .map(|p| p.replace('-', "_"))
        .collect();
    served.sort();
    registered.sort();
    allowed.sort();
    assert_eq!(served, registered, "src/lib.rs against build.rs");
    assert_eq!(
        served, allowed,
        "src/lib.rs against capabilities/default.json"
    );
}

#[test]
fn toasts_are_sent_under_the_bundle_identifier() {
    let conf = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tauri.conf.json"),
    )
    .expect("tauri.conf.json");
    let conf: serde_json::Value = serde_json::from_str(&conf).expect("tauri.conf.json");
    assert_eq!(
        conf["identifier"].as_str(),
        Some(veil_system::notify::APP_USER_MODEL_ID),
        "the installer's shortcut registers the identifier as the AppUserModelID"
    );
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

    // The last upstream of a route through upstreams is not removed: that
    // would send traffic direct. The user chooses Direct first.
    let before = t.config();
    let e = t.err("remove_upstream", json!({"name": "exit-b"}));
    assert_eq!(e["kind"], "invalid");
    assert!(
        e["message"].as_str().unwrap_or("").contains("Direct"),
        "the refusal says what to do: {e}"
    );
    assert_eq!(t.config(), before, "nothing changed");
    let status = t.ok("get_status", json!({}));
    assert_eq!(
        status["stats"]["mode"], "proxy",
        "still through the upstream"
    );

    t.ok("set_selection", json!({"selection": {"kind": "direct"}}));
    let list = t.ok("remove_upstream", json!({"name": "exit-b"}));
    assert_eq!(list, json!([]));
    let status = t.ok("get_status", json!({}));
    assert_eq!(status["stats"]["mode"], "direct");
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
    settings["language"] = json!("zh-CN");
    settings["bypass"] = json!(["*.internal.example", "10.0.0.0/8"]);
    let saved = t.ok("save_settings", json!({"settings": settings}));
    assert_eq!(saved["settings"]["theme"], "dark");
    assert_eq!(
        saved["settings"]["bypass"],
        json!(["*.internal.example", "10.0.0.0/8"])
    );
    assert!(t.config().contains("theme = \"dark\""));
    assert!(t.config().contains("language = \"zh-CN\""));
    assert_eq!(t.ok("get_settings", json!({}))["language"], "zh-CN");
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

/// What `veil run` holds: the instance lock, its engine and the control
/// socket answering for it (here in the test's process).
struct VeilRun {
    _lock: veil_system::instance::InstanceLock,
    service: Arc<veil_system::Service>,
    stop: Arc<tokio::sync::Notify>,
}

impl VeilRun {
    fn start(paths: &Paths) -> Self {
        use veil_system::control::ControlServer;
        let lock = veil_system::instance::InstanceLock::acquire(paths).expect("the lock");
        let mut config = veil_system::Config::load(&paths.config_file).expect("config");
        config
            .upstreams
            .server
            .push(veil_system::config::ServerSection {
                name: "up".into(),
                url: "http://127.0.0.1:9".into(),
                weight: 1,
                password_env: None,
                ca_file: None,
            });
        let engine = config.engine_config().expect("engine config");
        let service = Arc::new(
            tauri::async_runtime::block_on(veil_system::Service::start(
                paths.data_dir.clone(),
                &config,
                engine,
            ))
            .expect("engine"),
        );
        let control = tauri::async_runtime::block_on(ControlServer::bind(&paths.control_socket()))
            .expect("control socket");
        let stop = Arc::new(tokio::sync::Notify::new());
        let until = stop.clone();
        tauri::async_runtime::spawn(
            control.serve(service.clone(), async move { until.notified().await }),
        );
        Self {
            _lock: lock,
            service,
            stop,
        }
    }
}

impl Drop for VeilRun {
    fn drop(&mut self) {
        self.stop.notify_one();
        tauri::async_runtime::block_on(self.service.engine().shutdown());
    }
}

/// One Veil per user: beside a running `veil run` the app starts no engine
/// of its own. It attaches: the window shows that engine, its route and
/// alerts are driven over the control channel, and what needs an engine in
/// the app (settings, upstream edits, history) is refused with the reason.
#[test]
fn beside_veil_run_the_app_attaches_instead_of_starting_an_engine() {
    let (dir, paths) = home();
    let run = VeilRun::start(&paths);
    let state = tauri::async_runtime::block_on(AppState::start(paths.clone()));
    assert!(state.attached().is_some(), "attached, not a second engine");
    let t = with_state(dir, paths, state);

    let status = t.ok("get_status", json!({}));
    let pid = std::process::id();
    assert_eq!(status["attached"]["pid"], json!(pid), "{status}");
    let note = status["attached"]["note"].as_str().expect("note");
    assert!(
        note.contains(&format!("started by `veil run` (pid {pid})")),
        "{note}"
    );
    assert_eq!(
        status["stats"]["listen"],
        json!(run.service.engine().local_addr().to_string()),
        "the window shows veil run's engine"
    );

    // The route, over the control channel: veil run's engine follows.
    let status = t.ok(
        "set_selection",
        json!({"selection": {"kind": "one", "name": "up"}}),
    );
    assert_eq!(status["selection"], json!({"kind": "one", "name": "up"}));
    assert_eq!(run.service.engine().mode(), veil_engine::Mode::Proxy);
    let status = t.ok("set_selection", json!({"selection": {"kind": "direct"}}));
    assert_eq!(status["selection"], json!({"kind": "direct"}));
    assert_eq!(run.service.engine().mode(), veil_engine::Mode::Direct);
    let e = t.err(
        "set_selection",
        json!({"selection": {"kind": "one", "name": "nope"}}),
    );
    assert!(e["message"].as_str().unwrap_or("").contains("nope"), "{e}");
    assert_eq!(run.service.engine().mode(), veil_engine::Mode::Direct);

    // Its alerts are shown and dismissed there.
    run.service.raise_alert("The system proxy is off", "a test");
    let state = t._app.state::<Arc<AppState>>().inner().clone();
    tauri::async_runtime::block_on(state.fresh_stats()).expect("it answers");
    let status = t.ok("get_status", json!({}));
    assert_eq!(status["alerts"][0]["what"], "The system proxy is off");
    t.ok("dismiss_alerts", json!({}));
    assert!(run.service.alerts().is_empty());

    // The cache is its cache.
    t.ok("cache_clear", json!({}));

    // What needs the engine in this process is refused, and says why;
    // the config file is not touched.
    let before = t.config();
    let settings = t.ok("get_settings", json!({}));
    for (cmd, args) in [
        ("save_settings", json!({"settings": settings})),
        (
            "save_upstream",
            json!({"upstream": {"original_name": null, "name": "x", "url": "socks5://127.0.0.1:1080", "password": null, "weight": 1}}),
        ),
        ("set_strategy", json!({"strategy": "first"})),
        ("get_history", json!({"range": "hour"})),
    ] {
        let e = t.err(cmd, args);
        let message = e["message"].as_str().unwrap_or("");
        assert!(
            message.contains(&format!(
                "attached to the Veil engine started by `veil run` (pid {pid})"
            )),
            "{cmd}: {e}"
        );
    }
    assert_eq!(t.config(), before, "config.toml untouched");
}

/// Keep traffic history 0 days: history off. Saved, and the Traffic page's
/// command says it is off instead of showing an empty chart.
#[test]
fn history_can_be_turned_off() {
    let t = start();
    let mut settings = t.ok("get_settings", json!({}));
    settings["history_retention_days"] = json!(0);
    t.ok("save_settings", json!({"settings": settings}));
    assert!(t.config().contains("retention_days = 0"), "{}", t.config());
    let e = t.err("get_history", json!({"range": "hour"}));
    assert!(
        e["message"]
            .as_str()
            .unwrap_or("")
            .contains("history is off"),
        "{e}"
    );
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

/// Asks the app what the window process asks over the window socket.
fn through_window_socket(t: &TestApp, request: Request) -> Reply {
    let channel = crate::window::WindowChannel {
        app: t._app.handle().clone(),
        launched: std::time::Instant::now(),
    };
    tauri::async_runtime::block_on(channel.handle(request))
}

fn window_command(t: &TestApp, command: &str, args: Value) -> (bool, Value) {
    let request = Request::Window {
        command: command.into(),
        args,
    };
    match through_window_socket(t, request) {
        Reply::Window { ok, answer } => (ok, answer),
        other => panic!("{command}: {other:?}"),
    }
}

/// The window's own process reaches the commands over the window socket:
/// the same answers and the same refusals as through Tauri's invoke, and
/// anything else is refused without touching a thing.
#[test]
fn the_window_socket_answers_as_the_invoke_handler_does() {
    let t = start();
    let before = t.config();
    let add = json!({"upstream": {"original_name": null, "name": "exit-a", "url": "socks5://127.0.0.1:1080", "password": null, "weight": 1}});
    let (ok, list) = window_command(&t, "save_upstream", add);
    assert!(ok, "{list}");
    assert_eq!(list, t.ok("list_upstreams", json!({})));
    assert_eq!(list[0]["name"], "exit-a");
    assert_ne!(t.config(), before, "saved as through invoke");

    let bad = json!({"upstream": {"original_name": null, "name": "x", "url": "ftp://host:21", "password": null, "weight": 1}});
    let (ok, e) = window_command(&t, "save_upstream", bad.clone());
    assert!(!ok);
    assert_eq!(e, t.err("save_upstream", bad), "the same refusal");

    let (ok, status) = window_command(&t, "get_status", json!({}));
    assert!(ok, "{status}");
    assert_eq!(
        status["selection"],
        t.ok("get_status", json!({}))["selection"]
    );

    // A missing argument and an unknown command are refused by name.
    let (ok, e) = window_command(&t, "test_upstream", json!({}));
    assert!(!ok);
    assert_eq!(e["kind"], "invalid", "{e}");
    assert!(
        e["message"].as_str().unwrap_or("").contains("`name`"),
        "{e}"
    );
    let (ok, e) = window_command(&t, "plugin:shell|open", json!({"path": "/bin/sh"}));
    assert!(!ok);
    assert!(
        e["message"]
            .as_str()
            .unwrap_or("")
            .contains("not a Veil command"),
        "{e}"
    );
    // The engine's requests are for the control socket.
    assert!(matches!(
        through_window_socket(&t, Request::SysproxyOn),
        Reply::Error { .. }
    ));
}

/// Events reach the window process only while it runs, numbered, and only
/// what came after the number it gives.
#[test]
fn the_window_process_gets_the_apps_events_while_it_runs() {
    use tauri::Emitter;
    let t = start();
    let app = t._app.handle().clone();
    crate::window::forward_events(&app);
    let memory = app.state::<crate::window::WindowMemory>();
    app.emit(crate::event::STATUS, json!({"n": 1}))
        .expect("emit");
    memory.opened_for_test();
    app.emit(crate::event::STATUS, json!({"n": 2}))
        .expect("emit");
    app.emit(crate::event::IP, json!({"n": 3})).expect("emit");
    let Reply::WindowEvents { events, .. } =
        through_window_socket(&t, Request::WindowEvents { after: 0, app: 0 })
    else {
        panic!("no events reply");
    };
    let got: Vec<(u64, &str, Value)> = events
        .iter()
        .map(|e| {
            let payload = serde_json::from_str(&e.payload).expect("JSON payload");
            (e.seq, e.name.as_str(), payload)
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (1, crate::event::STATUS, json!({"n": 2})),
            (2, crate::event::IP, json!({"n": 3})),
        ],
        "nothing from before the window"
    );
    let Reply::WindowEvents { events, .. } =
        through_window_socket(&t, Request::WindowEvents { after: 1, app: 0 })
    else {
        panic!("no events reply");
    };
    assert_eq!(events.len(), 1, "only what came after");
    // A snapshot replaces the one still waiting: the window gets the
    // newest stats, not a minute of them.
    for n in 0..100 {
        app.emit(crate::event::STATS, json!({"n": n}))
            .expect("emit");
    }
    app.emit(crate::event::ENGINE, json!({"kind": "upstream_down"}))
        .expect("emit");
    let Reply::WindowEvents { events, .. } =
        through_window_socket(&t, Request::WindowEvents { after: 2, app: 0 })
    else {
        panic!("no events reply");
    };
    let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, [crate::event::STATS, crate::event::ENGINE]);
    assert_eq!(events[0].payload, r#"{"n":99}"#);
}

/// Every command the window may call is forwarded by the window socket's
/// dispatcher: one missing would fail only in the real window.
#[test]
fn every_command_is_forwarded_from_the_window_process() {
    let body = dispatch_source();
    let mut forwarded: Vec<String> = body
        .lines()
        .filter_map(|l| l.trim().strip_prefix('"')?.split_once("\" =>"))
        .map(|(name, _)| name.to_owned())
        .collect();
    let mut registered = registered_commands();
    forwarded.sort_unstable();
    registered.sort_unstable();
    assert_eq!(forwarded, registered);
}

/// The window process forwards the page's arguments by the names the page
/// gives them (`ui/src/lib/api.ts`): each command's dispatch arm reads
/// exactly those names, so a renamed argument fails here, not in the field.
#[test]
fn the_dispatcher_reads_the_arguments_the_page_sends() {
    use std::collections::{BTreeMap, BTreeSet};
    let api = source("../ui/src/lib/api.ts");
    let mut sent: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for call in api.split("call<").skip(1) {
        let Some((_, rest)) = call.split_once(">(\"") else {
            continue;
        };
        let Some((command, rest)) = rest.split_once('"') else {
            continue;
        };
        let args = rest
            .trim_start()
            .strip_prefix(", {")
            .map_or(String::new(), |a| {
                a.split_once('}')
                    .map_or(String::new(), |(a, _)| a.to_owned())
            });
        let names = args
            .split(',')
            .map(|a| a.split(':').next().unwrap_or("").trim().to_owned())
            .filter(|a| !a.is_empty())
            .collect();
        sent.insert(command.to_owned(), names);
    }
    let body = dispatch_source();
    let mut read_by_arm: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut current = String::new();
    for line in body.lines() {
        if let Some((name, _)) = line
            .trim()
            .strip_prefix('"')
            .and_then(|l| l.split_once("\" =>"))
        {
            current = name.to_owned();
            read_by_arm.entry(current.clone()).or_default();
        }
        for piece in line.split("arg(args, \"").skip(1) {
            if let Some((name, _)) = piece.split_once('"') {
                read_by_arm
                    .entry(current.clone())
                    .or_default()
                    .insert(name.to_owned());
            }
        }
    }
    assert!(sent.len() >= 20, "api.ts parsed: {sent:?}");
    assert_eq!(sent, read_by_arm);
}
