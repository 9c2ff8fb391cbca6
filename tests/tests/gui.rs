//! The desktop app end to end: the built `veil-app` under Xvfb in a private
//! desktop session, driven through tauri-driver + WebKitWebDriver. Each run
//! saves a screenshot of every page to `target/gui-screenshots/`.

use std::net::Ipv4Addr;

use veil_tests::curl;
use veil_tests::desktop::DesktopSession;
use veil_tests::gui::{AppDriver, Xvfb, within};

/// A whole GUI test's bound: far above a normal run (under a minute), so
/// only a hang reaches it, and it fails with the logs instead of stalling.
const TEST_LIMIT: std::time::Duration = std::time::Duration::from_secs(300);
use veil_tests::origin::Origin;
use veil_tests::peers::Microsocks;

const PAGES: &[&str] = &[
    "overview",
    "upstreams",
    "coverage",
    "traffic",
    "cache",
    "learn",
    "settings",
];

/// A session whose config listens on a free port and proxies loopback
/// targets too (the test origin is on loopback, which bypasses by default).
fn session(extra: &str) -> DesktopSession {
    let s = DesktopSession::start();
    std::fs::write(
        s.veil_home().join("config.toml"),
        format!(
            "# written by the GUI test\n[proxy]\nlisten = \"127.0.0.1:0\"\nbypass = []\n{extra}"
        ),
    )
    .expect("config");
    s
}

/// The app's status, asked over its control socket (`veil status --json`).
fn status_of_app(s: &DesktopSession) -> serde_json::Value {
    let out = s.veil(&["status", "--json"]);
    assert!(
        out.status.success(),
        "veil status against the app: {}",
        veil_tests::output_text(&out)
    );
    serde_json::from_slice(&out.stdout).expect("status JSON")
}

/// The app's listener and pid, from its status.
fn listen_of_app(s: &DesktopSession) -> (String, u32) {
    let status = status_of_app(s);
    (
        status["listen"].as_str().expect("listen").to_owned(),
        status["pid"].as_u64().expect("pid") as u32,
    )
}

/// A child process that ends with the test, even when it fails.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits (bounded) until the Overview's system-proxy switch shows `on`.
async fn switch_shows(app: &AppDriver, on: bool) {
    let want = if on { "true" } else { "false" };
    app.until(
        &format!("the switch to show {}", if on { "on" } else { "off" }),
        || async {
            (app.attr("#sysproxy-switch", "aria-checked")
                .await
                .as_deref()
                == Some(want))
            .then_some(())
        },
    )
    .await;
}

async fn open_page(app: &AppDriver, page: &str) {
    app.click(&format!("#nav-{page}")).await;
    app.find(&format!("#nav-{page}[aria-current=\"page\"]"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overview_switch_points_the_desktop_at_veil_and_quitting_restores_it() {
    // No IP-check endpoints: the app checks at start, and tests reach
    // nothing outside this machine.
    let s = session("[ipcheck]\nendpoints = []\ndirect_endpoints = []\n");
    // The user's own settings before Veil: a manual proxy elsewhere.
    s.gsettings_set("org.gnome.system.proxy", "mode", "'manual'");
    s.gsettings_set("org.gnome.system.proxy.http", "host", "'corp.example'");
    s.gsettings_set("org.gnome.system.proxy.http", "port", "3128");
    let before = s.gnome_proxy_settings();

    within(&s, TEST_LIMIT, async {
        let xvfb = Xvfb::start();
        let app = AppDriver::launch(&s, &xvfb).await;
        // The switch is enabled once the window has the app's status.
        let switch = "#sysproxy-switch";
        app.find("#sysproxy-switch:not([disabled])").await;
        let (listen, pid) = listen_of_app(&s);
        let port = listen.rsplit(':').next().expect("port").to_owned();
        assert_eq!(
            app.attr(switch, "aria-checked").await.as_deref(),
            Some("false")
        );

        app.click(switch).await;
        switch_shows(&app, true).await;
        assert_eq!(
            s.gsettings_get("org.gnome.system.proxy.http", "port"),
            port,
            "GNOME's HTTP proxy port is Veil's"
        );
        assert_eq!(
            s.gsettings_get("org.gnome.system.proxy.http", "host"),
            "'127.0.0.1'"
        );
        assert_eq!(
            s.gsettings_get("org.gnome.system.proxy", "mode"),
            "'manual'"
        );

        // Another program turns the proxy off behind Veil's back: the window
        // says so from the read-back (the figure is printed, not asserted),
        // and Re-apply points the desktop at Veil again.
        let changed = std::time::Instant::now();
        s.gsettings_set("org.gnome.system.proxy", "mode", "'none'");
        app.find("[data-testid=\"sysproxy-drift\"]").await;
        eprintln!(
            "drift shown in the window {} ms after gsettings set",
            changed.elapsed().as_millis()
        );
        app.find("[data-testid=\"sysproxy-drift-badge\"]").await;
        app.screenshot("overview-drift").await;
        app.click("#drift-reapply").await;
        app.until("Re-apply to point the desktop at Veil again", || async {
            (s.gsettings_get("org.gnome.system.proxy", "mode") == "'manual'").then_some(())
        })
        .await;
        app.until("the drift notice to go", || async {
            app.client
                .find_all(fantoccini::Locator::Css("[data-testid=\"sysproxy-drift\"]"))
                .await
                .ok()
                .filter(|found| found.is_empty())
                .map(drop)
        })
        .await;
        assert_eq!(
            s.gsettings_get("org.gnome.system.proxy.http", "port"),
            port,
            "Re-apply put Veil's port back"
        );

        app.click(switch).await;
        switch_shows(&app, false).await;
        assert_eq!(
            s.gnome_proxy_settings(),
            before,
            "the user's settings are back"
        );

        // On again, then quit the app with a signal: the settings come back.
        app.click(switch).await;
        switch_shows(&app, true).await;
        assert_ne!(s.gnome_proxy_settings(), before);
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(killed.success());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while s.gnome_proxy_settings() != before {
            assert!(
                std::time::Instant::now() < deadline,
                "quitting did not restore the settings: {}",
                s.gnome_proxy_settings()
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        assert!(!s.guard_file().exists(), "no guard file is left behind");
        app.quit().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_added_in_the_window_keeps_its_password_in_the_keyring_and_carries_traffic() {
    const SECRET: &str = "gui-s3cret";
    let origin = Origin::start().await;
    // The masked-IP check asks the origin, which answers with the caller's
    // address: 127.0.0.1 directly, 127.0.0.3 through microsocks.
    // The direct side asks the same origin under another name (the two
    // sides never share an endpoint), without the usual random delay.
    let s = session(&format!(
        "[ipcheck]\nendpoints = [\"{}\"]\ndirect_endpoints = [\"{}\"]\ntimeout_ms = 3000\n\
         delay_min_ms = 0\ndelay_max_ms = 0\n",
        origin.url("/ip"),
        origin.url("/ip").replacen("127.0.0.1", "localhost", 1)
    ));
    // Connects out from 127.0.0.3, so the origin sees traffic went through it.
    let socks = Microsocks::start(Ipv4Addr::new(127, 0, 0, 3), Some(("alice", SECRET))).await;

    within(&s, TEST_LIMIT, async {
        let xvfb = Xvfb::start();
        let app = AppDriver::launch(&s, &xvfb).await;
        app.find("#sysproxy-switch").await;
        let (listen, _) = listen_of_app(&s);
        app.screenshot("overview-empty").await;

        open_page(&app, "upstreams").await;
        app.fill("#upstream-name", "home").await;
        app.fill("#upstream-url", &socks.url()).await;
        app.fill("#upstream-password", SECRET).await;
        app.click("#upstream-save").await;
        app.until("the new upstream in the list", || async {
            app.text("[data-testid=\"upstream-row\"][data-name=\"home\"]")
                .await
                .contains("home")
                .then_some(())
        })
        .await;
        let stored = s.tool(
            "secret-tool",
            &["lookup", "service", "veil", "username", "home"],
        );
        assert_eq!(stored, SECRET, "the password is in the keyring");
        let config = std::fs::read_to_string(s.veil_home().join("config.toml")).expect("config");
        assert!(!config.contains(SECRET), "never in the file: {config}");

        // Send traffic through it: choose the upstream on the Overview.
        open_page(&app, "overview").await;
        // The option appears once the window has listed the upstreams.
        app.find("#selection option[value=\"one:home\"]").await;
        let select = app.find("#selection").await;
        select
            .select_by_value("one:home")
            .await
            .expect("choose the upstream");
        let proxy = format!("http://{listen}");
        let seen = app
            .until("a request through the upstream", || async {
                let out = curl(&["-x", &proxy, &origin.url("/ip")]).await;
                (out.status == 200 && out.text().starts_with("127.0.0.3")).then(|| out.text())
            })
            .await;
        assert!(
            seen.starts_with("127.0.0.3"),
            "left through microsocks: {seen}"
        );

        // The route changed, so the app checked the IP again: both addresses.
        app.until("the masked-IP card to show both addresses", || async {
            let verdict = app
                .attr("[data-testid=\"ip-verdict\"]", "data-verdict")
                .await;
            (verdict.as_deref() == Some("masked")).then_some(())
        })
        .await;
        assert!(
            app.text("[data-testid=\"ip-direct\"]")
                .await
                .contains("127.0.0.1")
        );
        assert!(
            app.text("[data-testid=\"ip-proxy\"]")
                .await
                .contains("127.0.0.3")
        );

        // A bigger download, then the counters and the chart move.
        let big = curl(&[
            "-x",
            &proxy,
            &origin.url("/bytes/2000000"),
            "-o",
            "/dev/null",
        ])
        .await;
        assert_eq!(big.status, 200, "{}", big.stderr);
        app.until("the down counter to count the download", || async {
            let text = app.text("[data-testid=\"bytes-down\"]").await;
            (text.contains("MB") || text.contains("MiB")).then_some(text)
        })
        .await;
        app.find("[data-testid=\"live-chart\"] canvas").await;

        // A curl that stays connected through Veil for a few seconds is listed
        // as covered on the Coverage page.
        let url = origin.url("/bytes/1000");
        let slow = KillOnDrop(
            std::process::Command::new("curl")
                .args(["-sS", "--max-time", "30", "-x", &proxy, "--rate", "1/s"])
                .args(std::iter::repeat_n(["-o", "/dev/null", url.as_str()], 12).flatten())
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("curl runs"),
        );
        open_page(&app, "coverage").await;
        app.until("curl listed as going through Veil", || async {
            let rows = app
                .client
                .find_all(fantoccini::Locator::Css(
                    "[data-testid=\"coverage-app\"][data-class=\"through_veil\"]",
                ))
                .await
                .ok()?;
            for row in rows {
                if row.text().await.ok()?.contains("curl") {
                    return Some(());
                }
            }
            None
        })
        .await;
        app.screenshot("coverage-with-curl").await;
        drop(slow);

        // The leak checks ran when the page opened; curl was listed as an
        // app, so its check reads from the engine's live counters.
        app.find("[data-testid=\"leaks-summary\"]").await;
        app.find("[data-testid=\"leak-check\"][data-id=\"resolving_apps\"]")
            .await;
        app.scroll_to("[data-testid=\"leaks-summary\"]").await;
        app.screenshot("coverage-leaks").await;

        for page in PAGES {
            open_page(&app, page).await;
            // Give live data a tick to arrive before the picture.
            tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
            app.screenshot(page).await;
        }
        app.quit().await;
    })
    .await;
}

/// The app's pid, from its control socket.
fn app_pid(s: &DesktopSession) -> u32 {
    listen_of_app(s).1
}

/// The app's log so far (the newest file under VEIL_HOME/logs).
fn app_log(s: &DesktopSession) -> String {
    let mut files: Vec<_> = std::fs::read_dir(s.veil_home().join("logs"))
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap_or_default())
        .collect()
}

/// Waits (bounded) until `check` holds, failing with `what` and the logs.
async fn wait_for(s: &DesktopSession, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            veil_tests::gui::Diagnostics::of(s).tail()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Presses the window's close button (as a window manager does) until the
/// app logs `seen` (it took it). While WebDriver drives the WebView, the
/// X press is now and then never taken under load (without WebDriver it
/// always is: 6 of 6 launches through scripts/app-metrics' press_close),
/// so after two presses the window asks Tauri to close itself, which is
/// the same close request the button makes.
async fn press_close(s: &DesktopSession, xvfb: &Xvfb, app: &AppDriver, seen: &str) {
    let taken = |s: &DesktopSession| app_log(s).contains(seen);
    for _ in 0..2 {
        assert_eq!(
            veil_tests::x11::press_close(&xvfb.display, "Veil"),
            1,
            "one Veil window on screen"
        );
        for _ in 0..25 {
            if taken(s) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
    eprintln!("the close button was not taken: closing through Tauri's window API");
    // Not awaited in the page: the window (and this session) may be gone
    // before an answer could come back.
    let close = "window.__TAURI_INTERNALS__.invoke('plugin:window|close', { label: 'main' })\
                 .catch(() => {}); return 1;";
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        app.client.execute(close, vec![]),
    )
    .await;
    for _ in 0..150 {
        if taken(s) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!(
        "the app never took the close (no {seen:?} in its log)\n{}",
        veil_tests::gui::Diagnostics::of(s).tail()
    );
}

/// Starts `veil-app` again, as a user does from the menu: it hands over to
/// the running app and exits.
async fn second_launch(s: &DesktopSession, xvfb: &Xvfb) {
    let mut second = s.command(veil_tests::gui::app_bin().to_str().expect("path"));
    second.env("DISPLAY", &xvfb.display);
    let second = tokio::task::spawn_blocking(move || second.output())
        .await
        .expect("second launch")
        .expect("second launch runs");
    assert!(
        second.status.success(),
        "the second launch hands over and exits"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_window_leaves_no_webkit_process_and_a_second_launch_brings_it_back() {
    use veil_tests::gui::{maps_library, webkit_processes, window_processes};
    use veil_tests::x11;
    let origin = Origin::start().await;
    // The user chose "keep running" before (this session has no tray host).
    let s =
        session("[ipcheck]\nendpoints = []\ndirect_endpoints = []\n[app]\nkeep_running = true\n");
    within(&s, TEST_LIMIT, async {
        let xvfb = Xvfb::start();
        let app = AppDriver::launch(&s, &xvfb).await;
        app.find("#sysproxy-switch:not([disabled])").await;
        open_page(&app, "cache").await;
        let (listen, pid) = listen_of_app(&s);
        assert!(
            !webkit_processes(pid).is_empty(),
            "the open window has its WebKit processes"
        );
        // The window is a process of its own: WebKit's EGL display (Mesa,
        // LLVM) is set up there, never in the app's process.
        let window = window_processes(pid);
        assert_eq!(window.len(), 1, "one window process: {window:?}");
        assert!(maps_library(window[0], "libwebkit2gtk"));
        assert!(
            maps_library(window[0], "libEGL_mesa"),
            "the check below can fail"
        );
        assert!(
            !maps_library(pid, "libEGL_mesa") && !maps_library(pid, "libLLVM"),
            "the app's own process loads no EGL driver"
        );
        // A second launch while the window is open brings it forward: still
        // one window, one window process.
        second_launch(&s, &xvfb).await;
        wait_for(&s, "the open window to be brought forward", || {
            app_log(&s).contains("window brought forward")
        })
        .await;
        assert_eq!(window_processes(pid), window, "the same window process");
        assert_eq!(x11::shown_windows(&xvfb.display, "Veil").len(), 1);

        press_close(&s, &xvfb, &app, "Veil keeps running in the tray").await;
        wait_for(&s, "the window to go", || {
            x11::shown_windows(&xvfb.display, "Veil").is_empty()
        })
        .await;
        wait_for(
            &s,
            "the window's process and every WebKit process to end",
            || {
                let left = webkit_processes(pid);
                if !left.is_empty() {
                    eprintln!("still running: {left:?}");
                }
                left.is_empty() && window_processes(pid).is_empty()
            },
        )
        .await;
        assert!(!maps_library(pid, "libLLVM"), "nothing of it left behind");
        // The engine still serves, and it is the same app.
        assert_eq!(app_pid(&s), pid, "the app keeps running");
        let through = curl(&["-x", &format!("http://{listen}"), &origin.url("/echo")]).await;
        assert_eq!(
            through.status, 200,
            "the engine still serves: {}",
            through.stderr
        );

        // "Open Veil": a second launch hands over to the running app, which
        // builds the window again on the page it showed.
        second_launch(&s, &xvfb).await;
        wait_for(&s, "the window to come back", || {
            !x11::shown_windows(&xvfb.display, "Veil").is_empty()
        })
        .await;
        wait_for(&s, "the page to load again", || {
            app_log(&s).contains("window reopened on cache")
        })
        .await;
        assert!(!webkit_processes(pid).is_empty(), "a new WebView");
        let log = app_log(&s);
        if let Some(line) = log.lines().find(|l| l.contains("window reopened on")) {
            eprintln!("{line}");
        }
        // An app that dies without a word (killed, crashed) leaves no window
        // behind: its window process notices and ends.
        let window = window_processes(pid);
        assert_eq!(window.len(), 1, "the new window's process: {window:?}");
        let killed = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(killed.success());
        wait_for(&s, "the window process of a killed app to end", || {
            std::fs::read_to_string(format!("/proc/{}/stat", window[0]))
                .map_or(true, |stat| stat.contains(") Z "))
        })
        .await;
        drop(app);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_tray_closing_the_window_asks_once_and_keeps_running_when_told() {
    use veil_tests::gui::webkit_processes;
    use veil_tests::x11;
    // No StatusNotifierWatcher on this session's bus: no tray icon shows.
    let s = session("[ipcheck]\nendpoints = []\ndirect_endpoints = []\n");
    within(&s, TEST_LIMIT, async {
        let xvfb = Xvfb::start();
        let app = AppDriver::launch(&s, &xvfb).await;
        app.find("#sysproxy-switch:not([disabled])").await;
        // As a user would, use the window before closing it. (Presses sent
        // while WebDriver had only just attached were, under load, now and
        // then never taken; without WebDriver the first press always is:
        // 6 of 6 launches, scripts/app-metrics' press_close.)
        open_page(&app, "settings").await;
        let pid = app_pid(&s);
        press_close(&s, &xvfb, &app, "asking whether to keep running").await;
        app.find("[data-testid=\"close-ask\"]").await;
        assert!(
            !x11::shown_windows(&xvfb.display, "Veil").is_empty(),
            "the window stays while it asks"
        );
        app.screenshot("close-ask").await;
        app.click("[data-testid=\"close-ask-keep\"]").await;
        wait_for(&s, "the window to go", || {
            x11::shown_windows(&xvfb.display, "Veil").is_empty()
        })
        .await;
        wait_for(&s, "every WebKit process to end", || {
            webkit_processes(pid).is_empty()
        })
        .await;
        assert_eq!(app_pid(&s), pid, "the app keeps running");
        let config = std::fs::read_to_string(s.veil_home().join("config.toml")).expect("config");
        assert!(
            config.contains("keep_running = true"),
            "the answer is kept: {config}"
        );
        drop(app);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_connection_in_the_window_ends_the_curl_that_used_it() {
    // A server that accepts and never answers: the tunnel stays open.
    let silent = veil_tests::peers::Silent::start().await;
    let target = silent.addr;
    let s = session("[ipcheck]\nendpoints = []\ndirect_endpoints = []\n");
    within(&s, TEST_LIMIT, async {
        let xvfb = Xvfb::start();
        let app = AppDriver::launch(&s, &xvfb).await;
        app.find("#sysproxy-switch:not([disabled])").await;
        let (listen, _) = listen_of_app(&s);
        let client = std::process::Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "120",
                "-p",
                "-x",
                &format!("http://{listen}"),
                &format!("http://{target}/held"),
            ])
            .spawn()
            .expect("curl starts");
        let mut client = KillOnDrop(client);
        open_page(&app, "traffic").await;
        app.find("[data-testid=\"connection-row\"]").await;
        app.fill(
            "[data-testid=\"connections-filter\"]",
            &target.port().to_string(),
        )
        .await;
        app.scroll_to("[data-testid=\"connection-close\"]").await;
        app.screenshot("traffic-connections").await;
        app.click("[data-testid=\"connection-close\"]").await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let ended = loop {
            if let Some(status) = client.0.try_wait().expect("curl status") {
                break status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "curl did not end when its connection was closed"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        assert!(!ended.success(), "curl saw its connection end");
        app.until("the window to say the connection was closed", || async {
            let notice = app.text("[data-testid=\"connections-notice\"]").await;
            notice.contains("1 connection closed").then_some(())
        })
        .await;
        app.quit().await;
    })
    .await;
}

/// Sets the theme the way the Settings page applies it (`data-theme`).
async fn set_theme(app: &AppDriver, theme: &str) {
    app.script(
        "set the theme",
        &format!("document.documentElement.setAttribute('data-theme', '{theme}'); return 1;"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_passes_axe_in_both_themes_and_renders_in_chinese() {
    let s = session(
        "[ipcheck]\nendpoints = []\ndirect_endpoints = []\n\
         [[upstreams.server]]\nname = \"exit\"\nurl = \"socks5://127.0.0.1:9\"\n",
    );
    within(&s, TEST_LIMIT, async {
        let xvfb = Xvfb::start();
        let app = AppDriver::launch(&s, &xvfb).await;
        app.find("#sysproxy-switch:not([disabled])").await;
        let mut violations = Vec::new();
        for theme in ["light", "dark"] {
            set_theme(&app, theme).await;
            for page in PAGES {
                open_page(&app, page).await;
                for v in app.axe().await {
                    violations.push(format!("{theme} {page}: {v}"));
                }
            }
        }

        // Simplified Chinese, chosen in Settings: every page renders in it.
        open_page(&app, "settings").await;
        let select = app.find("#settings-language").await;
        select
            .select_by_value("zh-CN")
            .await
            .expect("choose 简体中文");
        app.click("#settings-save").await;
        app.until("the window to switch to Chinese", || async {
            let lang = app
                .script("read lang", "return document.documentElement.lang;")
                .await;
            (lang.as_str() == Some("zh-CN")).then_some(())
        })
        .await;
        set_theme(&app, "light").await;
        for page in PAGES {
            open_page(&app, page).await;
            let title = app.text(&format!("#nav-{page}")).await;
            assert!(
                title
                    .chars()
                    .any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
                "the {page} button reads {title:?} in Chinese"
            );
            app.screenshot(&format!("zh-{page}")).await;
            for v in app.axe().await {
                violations.push(format!("zh-CN {page}: {v}"));
            }
        }
        assert!(
            violations.is_empty(),
            "axe found critical or serious violations:\n{}",
            violations.join("\n")
        );
        app.quit().await;
    })
    .await;
}

/// Tab (or Shift+Tab) until the control named `target` has the focus, at
/// most `limit` presses; every control passed on the way must show its
/// focus. Returns the controls whose focus did not show.
async fn tab_to(app: &AppDriver, target: &str, back: bool, limit: usize) -> Vec<String> {
    use fantoccini::key::Key;
    let mut unseen = Vec::new();
    let mut path = Vec::new();
    for _ in 0..limit {
        if back {
            app.shift_tab().await;
        } else {
            app.keys(&[char::from(Key::Tab)]).await;
        }
        let (name, visible) = app.focused().await;
        if !name.is_empty() && !visible {
            unseen.push(name.clone());
        }
        if name == target {
            return unseen;
        }
        path.push(name);
    }
    panic!("{target} not reached in {limit} presses; focus went {path:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_main_tasks_work_with_the_keyboard_alone_and_focus_always_shows() {
    use fantoccini::key::Key;
    let (space, enter, down) = (
        char::from(Key::Space),
        char::from(Key::Enter),
        char::from(Key::Down),
    );
    let s = session(
        "[ipcheck]\nendpoints = []\ndirect_endpoints = []\n\
         [[upstreams.server]]\nname = \"exit\"\nurl = \"socks5://127.0.0.1:9\"\n",
    );
    within(&s, TEST_LIMIT, async {
        let xvfb = Xvfb::start();
        let app = AppDriver::launch(&s, &xvfb).await;
        app.find("#sysproxy-switch:not([disabled])").await;
        let mut unseen = Vec::new();

        // Switch the system proxy on.
        unseen.extend(tab_to(&app, "sysproxy-switch", false, 30).await);
        app.keys(&[space]).await;
        switch_shows(&app, true).await;

        // Choose an upstream: the route list, with the arrow keys.
        unseen.extend(tab_to(&app, "selection", false, 10).await);
        app.keys(&[down, down]).await;
        app.until("the route to be the upstream", || async {
            let summary = app.text("[data-testid=\"selection-summary\"]").await;
            summary.contains("exit").then_some(())
        })
        .await;

        // Add an upstream: the Upstreams page, its form, Enter to save.
        unseen.extend(tab_to(&app, "nav-upstreams", true, 40).await);
        app.keys(&[enter]).await;
        app.find("#nav-upstreams[aria-current=\"page\"]").await;
        unseen.extend(tab_to(&app, "upstream-name", false, 60).await);
        app.type_text("keyboard").await;
        unseen.extend(tab_to(&app, "upstream-url", false, 3).await);
        app.type_text("socks5://127.0.0.1:10").await;
        app.keys(&[enter]).await;
        app.find("[data-testid=\"upstream-row\"][data-name=\"keyboard\"]")
            .await;

        // Change a setting: the Settings page, a checkbox, Save.
        unseen.extend(tab_to(&app, "nav-settings", true, 80).await);
        app.keys(&[enter]).await;
        app.find("#nav-settings[aria-current=\"page\"]").await;
        unseen.extend(tab_to(&app, "settings-keep-running", false, 60).await);
        let was = app
            .script(
                "read the checkbox",
                "return document.activeElement.checked;",
            )
            .await;
        app.keys(&[space]).await;
        let now = app
            .script(
                "read the checkbox",
                "return document.activeElement.checked;",
            )
            .await;
        assert_ne!(was, now, "Space toggles the checkbox");
        unseen.extend(tab_to(&app, "settings-save", false, 40).await);
        app.keys(&[enter]).await;
        let saved = format!("keep_running = {now}");
        app.until("the setting to be saved", || async {
            std::fs::read_to_string(s.veil_home().join("config.toml"))
                .ok()
                .filter(|c| c.contains(&saved))
                .map(drop)
        })
        .await;
        app.screenshot("keyboard-walk").await;
        unseen.sort();
        unseen.dedup();
        assert!(unseen.is_empty(), "focus did not show on {unseen:?}");
        app.quit().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn importing_a_list_then_testing_all_shows_each_upstreams_result_and_exit() {
    let origin = Origin::start().await;
    // The exit check asks the origin, which answers with the caller's
    // address: 127.0.0.3 through microsocks.
    let s = session(&format!(
        "[ipcheck]\nendpoints = [\"{}\"]\ndirect_endpoints = []\nendpoints_v6 = []\n\
         direct = false\ntimeout_ms = 3000\n",
        origin.url("/ip"),
    ));
    let socks = Microsocks::start(Ipv4Addr::new(127, 0, 0, 3), None).await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_url = format!("socks5://{}", dead.local_addr().expect("addr"));
    drop(dead);
    within(&s, TEST_LIMIT, async {
        let xvfb = Xvfb::start();
        let app = AppDriver::launch(&s, &xvfb).await;
        app.find("#sysproxy-switch:not([disabled])").await;
        open_page(&app, "upstreams").await;
        let list = format!("# two proxies and a typo\n{}\n{dead_url}\nsocks://typo:1080\n", socks.url());
        // Typed as a user types it: Enter between the lines.
        let enter = char::from(fantoccini::key::Key::Enter).to_string();
        app.fill("#upstream-import-text", &list.replace('\n', &enter))
            .await;
        app.click("[data-testid=\"upstream-import\"]").await;
        let result = app
            .until("the import's summary", || async {
                let text = app.text("[data-testid=\"upstream-import-result\"]").await;
                text.contains("typo").then_some(text)
            })
            .await;
        assert!(result.contains("Added 2"), "{result}");
        app.until("two imported rows", || async {
            let rows = app
                .client
                .find_all(fantoccini::Locator::Css("[data-testid=\"upstream-row\"]"))
                .await
                .ok()?;
            (rows.len() == 2).then_some(())
        })
        .await;
        // The exit of the working one, checked through it after the import.
        app.until("the exit IP through microsocks", || async {
            let v4 = app
                .client
                .find(fantoccini::Locator::Css("[data-testid=\"upstream-exit-v4\"]"))
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            v4.contains("127.0.0.3").then_some(())
        })
        .await;

        app.click("[data-testid=\"upstream-test-all\"]").await;
        app.until("a result for each upstream", || async {
            let results = app
                .client
                .find_all(fantoccini::Locator::Css("[data-testid=\"upstream-test-result\"]"))
                .await
                .ok()?;
            let mut texts = Vec::new();
            for r in results {
                texts.push(r.text().await.ok()?);
            }
            (texts.len() == 2).then_some(texts)
        })
        .await;
        app.scroll_to("[data-testid=\"upstream-test-result\"]").await;
        app.screenshot("upstreams-import-test-all").await;
        let works = app
            .text(&format!(
                "[data-testid=\"upstream-row\"][data-name=\"{}\"] [data-testid=\"upstream-test-result\"]",
                socks.url().trim_start_matches("socks5://")
            ))
            .await;
        assert!(works.contains("Works"), "microsocks works: {works}");
        let failed = app
            .text(&format!(
                "[data-testid=\"upstream-row\"][data-name=\"{}\"] [data-testid=\"upstream-test-result\"]",
                dead_url.trim_start_matches("socks5://")
            ))
            .await;
        assert!(failed.contains("Failed"), "the dead one says why: {failed}");
        app.quit().await;
    })
    .await;
}

/// Runs a blocking D-Bus step (bounded by its own call limits) off the
/// runtime, so the test's time limit keeps running.
async fn on_bus<T: Send + 'static>(step: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(step).await.expect("D-Bus step")
}

/// Picks `label` in the tray's menu.
async fn tray_click(menu: &std::sync::Arc<veil_tests::tray_host::TrayMenu>, label: &'static str) {
    let menu = menu.clone();
    on_bus(move || menu.click(label)).await;
}

/// "System proxy" from the tray, until GNOME's proxy is Veil's `port`.
async fn tray_switches_on(
    s: &DesktopSession,
    menu: &std::sync::Arc<veil_tests::tray_host::TrayMenu>,
    port: &str,
) {
    tray_click(menu, "System proxy").await;
    wait_for(s, "GNOME's proxy to point at Veil", || {
        s.gsettings_get("org.gnome.system.proxy.http", "port") == port
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tray_menu_switches_the_proxy_tests_upstreams_and_brings_the_window_back() {
    use std::sync::Arc;
    use veil_tests::gui::webkit_processes;
    use veil_tests::tray_host::TrayHost;
    use veil_tests::x11;
    let s = session(
        "[ipcheck]\nendpoints = []\ndirect_endpoints = []\n\
         [[upstreams.server]]\nname = \"exit\"\nurl = \"socks5://127.0.0.1:9\"\n",
    );
    // A desktop whose tray shows icons (KDE, or GNOME with the AppIndicator
    // extension): closing the window keeps Veil without asking.
    let host = Arc::new(TrayHost::start(s.bus_address()));
    let before = s.gnome_proxy_settings();
    within(&s, TEST_LIMIT, async {
        let xvfb = Xvfb::start();
        let app = AppDriver::launch(&s, &xvfb).await;
        app.find("#sysproxy-switch:not([disabled])").await;
        let (listen, pid) = listen_of_app(&s);
        let port = listen.rsplit(':').next().expect("port").to_owned();
        let found = host.clone();
        let item = on_bus(move || found.wait_for_item(std::time::Duration::from_secs(20)))
            .await
            .unwrap_or_else(|| {
                panic!(
                    "Veil's tray icon never registered with the tray\n{}",
                    veil_tests::gui::Diagnostics::of(&s).tail()
                )
            });
        let menu = {
            let host = host.clone();
            Arc::new(on_bus(move || host.menu(&item)).await)
        };
        let read = menu.clone();
        let entries = on_bus(move || read.entries()).await;
        let labels: Vec<&str> = entries.iter().map(|e| e.label.as_str()).collect();
        for wanted in [
            "System proxy",
            "Test all upstreams",
            "Close all connections",
            "Copy shell exports",
            "Open Veil",
            "Quit Veil",
        ] {
            assert!(
                labels.contains(&wanted),
                "{wanted:?} in the tray menu: {labels:?}"
            );
        }
        let switch = entries
            .iter()
            .find(|e| e.label == "System proxy")
            .expect("switch");
        assert_eq!(
            switch.checked,
            Some(false),
            "the tray reads the proxy as off"
        );

        // The system proxy, switched on from the tray.
        tray_switches_on(&s, &menu, &port).await;
        switch_shows(&app, true).await;
        let read = menu.clone();
        let switch_reads = |on: bool| {
            let read = read.clone();
            on_bus(move || {
                read.wait_for(std::time::Duration::from_secs(10), |entries| {
                    entries
                        .iter()
                        .any(|e| e.label == "System proxy" && e.checked == Some(on))
                        .then_some(())
                })
            })
        };
        assert!(
            switch_reads(true).await.is_some(),
            "the tray's check reads on"
        );
        // Off from the window: the tray follows what Veil read back (GTK
        // flips a clicked check by itself, so this is the half that shows
        // the tray is told).
        app.click("#sysproxy-switch").await;
        wait_for(&s, "GNOME's proxy to be the user's again", || {
            s.gnome_proxy_settings() == before
        })
        .await;
        assert!(
            switch_reads(false).await.is_some(),
            "the tray's check reads off after the window switched it off"
        );

        // Every upstream tested from the tray: the dead one shows its reason.
        tray_click(&menu, "Test now").await;
        let read = menu.clone();
        let result = on_bus(move || {
            read.wait_for(std::time::Duration::from_secs(20), |entries| {
                entries
                    .iter()
                    .find(|e| e.label.starts_with("exit: "))
                    .map(|e| e.label.clone())
            })
        })
        .await;
        let result = result.expect("the tray shows the upstream's result");
        eprintln!("tray menu: {labels:?}; test all: {result}");
        assert!(
            !result.contains(" ms"),
            "a dead upstream has no latency: {result}"
        );

        // Closed: no WebView; "Open Veil" in the tray builds it again.
        press_close(&s, &xvfb, &app, "Veil keeps running in the tray").await;
        wait_for(&s, "every WebKit process to end", || {
            webkit_processes(pid).is_empty()
        })
        .await;
        tray_click(&menu, "Open Veil").await;
        wait_for(&s, "the window to come back from the tray", || {
            !x11::shown_windows(&xvfb.display, "Veil").is_empty()
        })
        .await;
        wait_for(&s, "the page to load again", || {
            app_log(&s).contains("window reopened on")
        })
        .await;
        assert_eq!(app_pid(&s), pid, "the same app");

        // "Copy shell exports": what a paste in a terminal gets points at Veil.
        tray_click(&menu, "Copy shell exports").await;
        let display = xvfb.display.clone();
        let pasted = on_bus(move || {
            veil_tests::poll_until(
                std::time::Duration::from_secs(10),
                std::time::Duration::from_millis(200),
                || {
                    x11::clipboard_text(&display, std::time::Duration::from_secs(2))
                        .filter(|t| t.contains("_proxy="))
                },
            )
        })
        .await
        .unwrap_or_default();
        assert!(
            pasted.contains(&format!("http://{listen}")),
            "the clipboard holds the exports for Veil's address {listen}: {pasted:?}"
        );

        // "Close all connections": a download held open through Veil ends.
        let silent = veil_tests::peers::Silent::start().await;
        let held = std::process::Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "60",
                "-p",
                "-x",
                &format!("http://{listen}"),
                &format!("http://{}/held", silent.addr),
            ])
            .spawn()
            .expect("curl starts");
        let mut held = KillOnDrop(held);
        wait_for(&s, "the held connection to be open in Veil", || {
            status_of_app(&s)["connections_open"]
                .as_u64()
                .is_some_and(|n| n >= 1)
        })
        .await;
        assert!(
            held.0.try_wait().expect("curl status").is_none(),
            "curl is still waiting before the tray closes its connection"
        );
        tray_click(&menu, "Close all connections").await;
        wait_for(
            &s,
            "curl to end when the tray closed its connection",
            || held.0.try_wait().expect("curl status").is_some(),
        )
        .await;
        // The log is written by a background thread: its line may come a
        // moment after curl has seen the close.
        wait_for(&s, "the app to say the tray closed the connection", || {
            app_log(&s)
                .lines()
                .filter_map(|l| l.split("tray: closed ").nth(1))
                .filter_map(|rest| rest.split(' ').next()?.parse::<u64>().ok())
                .next_back()
                .is_some_and(|n| n >= 1)
        })
        .await;

        // Quit from the tray with the proxy on: the app ends and the user's
        // settings are back.
        tray_switches_on(&s, &menu, &port).await;
        tray_click(&menu, "Quit Veil").await;
        wait_for(&s, "the app to end", || {
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
        })
        .await;
        assert_eq!(
            s.gnome_proxy_settings(),
            before,
            "settings restored on quit"
        );
        drop(app);
    })
    .await;
}
