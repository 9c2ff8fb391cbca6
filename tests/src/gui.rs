//! The desktop app driven for real: `veil-app` on a private X display
//! (Xvfb), inside a [`DesktopSession`] (its own D-Bus, keyring and
//! settings), started and driven by `tauri-driver` + WebKitWebDriver through
//! the WebDriver protocol ([`fantoccini`]).

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};

use crate::desktop::DesktopSession;

/// The debug `veil-app` binary (`cargo build -p veil-app`, which `make test`
/// runs first).
pub fn app_bin() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let bin = target.join("debug/veil-app");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p veil-app` (make test does)",
        bin.display()
    );
    bin
}

fn tauri_driver_bin() -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    if let Some(bin) = home.map(|h| h.join("bin/tauri-driver"))
        && bin.exists()
    {
        return bin;
    }
    PathBuf::from("tauri-driver")
}

/// Keeps one nearly transparent pixel in a corner of the page changing every
/// 40 ms for 5 s, so the WebView paints again while the snapshot waits for
/// its next paint. (One change was not enough: its paint could land before
/// the snapshot asked, which then waited for a paint that never came.)
const NUDGE_PAINT: &str = "let d = document.getElementById('webdriver-nudge');\
    if (!d) { d = document.createElement('div'); d.id = 'webdriver-nudge';\
    d.style.cssText = 'position:fixed;right:0;bottom:0;width:1px;height:1px;pointer-events:none';\
    document.body.appendChild(d); }\
    clearInterval(window.__veilNudge); let n = 0;\
    window.__veilNudge = setInterval(() => {\
      d.style.background = n % 2 ? 'rgba(0, 0, 0, 0.01)' : 'rgba(0, 0, 0, 0.02)';\
      if (++n > 125) clearInterval(window.__veilNudge);\
    }, 40);";

/// `target/gui-screenshots/`, created on first use.
fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/gui-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot folder");
    dir
}

/// A port nobody listens on now (the driver needs numbers up front).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A virtual X display; it stops when dropped.
pub struct Xvfb {
    child: Child,
    pub display: String,
}

impl Xvfb {
    pub fn start() -> Self {
        // -displayfd: Xvfb picks a free display number and writes it to
        // stdout once it accepts clients.
        let mut child = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1280x860x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb starts (scripts/bootstrap installs it)");
        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let number = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("Xvfb reports its display");
        Self {
            child,
            display: format!(":{}", number.trim()),
        }
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The longest one WebDriver call may take. WebDriver has no timeout of its
/// own for a click or a screenshot, so a WebView that stops answering would
/// otherwise stall the whole suite.
const CALL_LIMIT: Duration = Duration::from_secs(30);

/// `tauri-driver` in the session's environment (so the app it starts gets
/// the private HOME, D-Bus and `VEIL_HOME`), and a WebDriver client on it.
pub struct AppDriver {
    driver: Child,
    pub client: Client,
    /// What explains a failure: the app's log folder and the driver's log.
    logs: Diagnostics,
}

/// Where a failed GUI test finds what to show.
#[derive(Clone)]
pub struct Diagnostics {
    app_logs: PathBuf,
    driver_log: PathBuf,
}

impl Diagnostics {
    pub fn of(session: &DesktopSession) -> Self {
        Self {
            app_logs: session.veil_home().join("logs"),
            driver_log: session.root().join("tauri-driver.log"),
        }
    }

    /// The last lines of the app's logs and of the driver's log.
    pub fn tail(&self) -> String {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.app_logs)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.sort();
        files.push(self.driver_log.clone());
        let mut out = String::new();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(40);
            out.push_str(&format!("--- last lines of {} ---\n", file.display()));
            for line in &lines[from..] {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

/// Runs a whole GUI test, failing it with the logs if it takes longer than
/// `limit` (a stuck WebView, a child that never answers).
pub async fn within<T>(
    session: &DesktopSession,
    limit: Duration,
    test: impl std::future::Future<Output = T>,
) -> T {
    match tokio::time::timeout(limit, test).await {
        Ok(value) => value,
        Err(_) => panic!(
            "the GUI test did not finish within {}s\n{}",
            limit.as_secs(),
            Diagnostics::of(session).tail()
        ),
    }
}

impl AppDriver {
    pub async fn launch(session: &DesktopSession, xvfb: &Xvfb) -> Self {
        let port = free_port();
        let native_port = free_port();
        let mut cmd = session.command(tauri_driver_bin().to_str().expect("utf-8 path"));
        cmd.args([
            "--port",
            &port.to_string(),
            "--native-port",
            &native_port.to_string(),
        ])
        .env("DISPLAY", &xvfb.display)
        // No GPU here; WebKit's software path is steadier under Xvfb.
        .env("WEBKIT_DISABLE_COMPOSITING_MODE", "1")
        .env("WEBKIT_DISABLE_DMABUF_RENDERER", "1")
        .env("RUST_LOG", "info");
        let logs = Diagnostics::of(session);
        let log = std::fs::File::create(&logs.driver_log).expect("driver log file");
        cmd.stdout(log.try_clone().expect("driver log file"))
            .stderr(log);
        // Its own process group, so WebKitWebDriver and the app it starts
        // end with it even when a test fails halfway.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let driver = cmd
            .spawn()
            .expect("tauri-driver starts (scripts/bootstrap installs it)");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "tauri:options".into(),
            serde_json::json!({ "application": app_bin() }),
        );
        caps.insert("browserName".into(), serde_json::json!("wry"));
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(60);
        let client = loop {
            let mut builder = ClientBuilder::native();
            builder.capabilities(caps.clone());
            match tokio::time::timeout(CALL_LIMIT, builder.connect(&url)).await {
                Ok(Ok(client)) => break client,
                Ok(Err(_)) | Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Ok(Err(e)) => panic!("no WebDriver session with veil-app: {e}\n{}", logs.tail()),
                Err(_) => panic!(
                    "no WebDriver session with veil-app: the driver did not answer\n{}",
                    logs.tail()
                ),
            }
        };
        Self {
            driver,
            client,
            logs,
        }
    }

    /// Awaits one WebDriver call, at most [`CALL_LIMIT`]; past that the test
    /// fails with a screenshot (if the WebView still gives one) and the logs.
    async fn bounded<T>(&self, what: &str, call: impl std::future::Future<Output = T>) -> T {
        match tokio::time::timeout(CALL_LIMIT, call).await {
            Ok(value) => value,
            Err(_) => {
                self.fail(&format!(
                    "WebDriver call `{what}` did not answer within {}s",
                    CALL_LIMIT.as_secs()
                ))
                .await
            }
        }
    }

    /// Fails the test with what explains it: a screenshot (saved as
    /// `target/gui-screenshots/failed.png`, bounded too) and the logs.
    async fn fail(&self, why: &str) -> ! {
        let shot =
            match tokio::time::timeout(Duration::from_secs(10), self.client.screenshot()).await {
                Ok(Ok(png)) => {
                    let path = screenshot_dir().join("failed.png");
                    std::fs::write(&path, png).map_or_else(
                        |e| format!("screenshot not saved: {e}"),
                        |()| format!("screenshot: {}", path.display()),
                    )
                }
                Ok(Err(e)) => format!("no screenshot: {e}"),
                Err(_) => "no screenshot: the WebView did not answer".to_owned(),
            };
        panic!("{why}\n{shot}\n{}", self.logs.tail())
    }

    /// The element for `css`, waiting up to 20 s for it to appear. A node
    /// the page redraws between WebKitWebDriver's find and its handle (the
    /// once-a-second tables) is "stale": looked for again, in the same 20 s.
    pub async fn find(&self, css: &str) -> Element {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let wait = self
                .client
                .wait()
                .at_most(left.max(Duration::from_millis(100)))
                .for_element(Locator::Css(css));
            match self.bounded(&format!("find {css}"), wait).await {
                Ok(element) => return element,
                Err(e) if e.is_stale_element_reference() && !left.is_zero() => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => {
                    self.fail(&format!("no element {css:?} in the window: {e}"))
                        .await
                }
            }
        }
    }

    pub async fn click(&self, css: &str) {
        let element = self.find(css).await;
        if let Err(e) = self.bounded(&format!("click {css}"), element.click()).await {
            self.fail(&format!("clicking {css:?}: {e}")).await;
        }
    }

    pub async fn text(&self, css: &str) -> String {
        let element = self.find(css).await;
        self.bounded(&format!("text of {css}"), element.text())
            .await
            .unwrap_or_default()
    }

    pub async fn attr(&self, css: &str, name: &str) -> Option<String> {
        let element = self.find(css).await;
        self.bounded(&format!("attribute {name} of {css}"), element.attr(name))
            .await
            .ok()
            .flatten()
    }

    /// Types into the input `css`, replacing what it held.
    pub async fn fill(&self, css: &str, text: &str) {
        let input = self.find(css).await;
        self.bounded(&format!("clear {css}"), input.clear())
            .await
            .ok();
        if let Err(e) = self
            .bounded(&format!("type into {css}"), input.send_keys(text))
            .await
        {
            self.fail(&format!("typing into {css:?}: {e}")).await;
        }
    }

    /// Scrolls the element `css` into view (for a screenshot of a section
    /// below the fold).
    pub async fn scroll_to(&self, css: &str) {
        let element = self.find(css).await;
        let script = "arguments[0].scrollIntoView({block: 'start'})";
        let arg = match serde_json::to_value(&element) {
            Ok(arg) => arg,
            Err(e) => self.fail(&format!("scrolling to {css:?}: {e}")).await,
        };
        if let Err(e) = self
            .bounded(
                &format!("scroll to {css}"),
                self.client.execute(script, vec![arg]),
            )
            .await
        {
            self.fail(&format!("scrolling to {css:?}: {e}")).await;
        }
    }

    /// Waits (20 s at most) until `check` returns `Some`.
    pub async fn until<T, F, Fut>(&self, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(value) = check().await {
                return value;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Runs a script in the page (bounded); fails the test when it throws.
    pub async fn script(&self, what: &str, js: &str) -> serde_json::Value {
        match self.bounded(what, self.client.execute(js, vec![])).await {
            Ok(value) => value,
            Err(e) => self.fail(&format!("{what}: {e}")).await,
        }
    }

    /// Presses keys as a keyboard does, one after the other: characters,
    /// or special keys as `char::from(fantoccini::key::Key::Tab)`.
    pub async fn keys(&self, keys: &[char]) {
        use fantoccini::actions::{InputSource, KeyAction, KeyActions};
        let mut actions = KeyActions::new("keyboard".to_owned());
        for &value in keys {
            actions = actions
                .then(KeyAction::Down { value })
                .then(KeyAction::Up { value });
        }
        if let Err(e) = self
            .bounded("press keys", self.client.perform_actions(actions))
            .await
        {
            self.fail(&format!("pressing keys: {e}")).await;
        }
    }

    /// Types `text` key by key into whatever has the focus.
    pub async fn type_text(&self, text: &str) {
        let chars: Vec<char> = text.chars().collect();
        self.keys(&chars).await;
    }

    /// Shift+Tab: focus goes back one control.
    pub async fn shift_tab(&self) {
        use fantoccini::actions::{InputSource, KeyAction, KeyActions};
        use fantoccini::key::Key;
        let (shift, tab): (char, char) = (Key::Shift.into(), Key::Tab.into());
        let actions = KeyActions::new("keyboard".to_owned())
            .then(KeyAction::Down { value: shift })
            .then(KeyAction::Down { value: tab })
            .then(KeyAction::Up { value: tab })
            .then(KeyAction::Up { value: shift });
        if let Err(e) = self
            .bounded("press Shift+Tab", self.client.perform_actions(actions))
            .await
        {
            self.fail(&format!("pressing Shift+Tab: {e}")).await;
        }
    }

    /// The focused control: its id (or test id, or tag and text), and
    /// whether its focus shows (a `:focus-visible` outline or ring).
    pub async fn focused(&self) -> (String, bool) {
        let found = self.script("read the focused control", FOCUSED).await;
        let name = found["name"].as_str().unwrap_or("").to_owned();
        (name, found["visible"].as_bool().unwrap_or(false))
    }

    /// Runs axe-core (from `ui/node_modules`) on the page as it is now and
    /// returns its critical and serious violations, one line each.
    pub async fn axe(&self) -> Vec<String> {
        let loaded = self.script("is axe loaded", "return typeof axe;").await;
        if loaded.as_str() != Some("object") {
            let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../ui/node_modules/axe-core/axe.min.js");
            let source = std::fs::read_to_string(&path).unwrap_or_else(|e| {
                panic!("{}: {e} (scripts/bootstrap runs npm ci)", path.display())
            });
            self.script("load axe-core", &format!("{source}\nreturn typeof axe;"))
                .await;
        }
        let run = self.client.execute_async(AXE_RUN, vec![]);
        match self.bounded("axe.run", run).await {
            Ok(serde_json::Value::Array(lines)) => lines
                .into_iter()
                .map(|l| l.as_str().unwrap_or("?").to_owned())
                .collect(),
            Ok(other) => self.fail(&format!("axe.run answered {other}")).await,
            Err(e) => self.fail(&format!("axe.run: {e}")).await,
        }
    }

    /// Saves a PNG of the window to `target/gui-screenshots/NAME.png`.
    pub async fn screenshot(&self, name: &str) {
        // WebKitGTK without accelerated compositing (how the app and these
        // tests run it) answers a snapshot only after its next paint, and a
        // page where nothing changes (Learn) never paints again: the call
        // then waits forever. A pixel that keeps changing makes that paint
        // happen.
        let nudge = self.client.execute(NUDGE_PAINT, vec![]);
        if let Err(e) = self.bounded("repaint before a screenshot", nudge).await {
            self.fail(&format!("screenshot {name}: {e}")).await;
        }
        let png = match self
            .bounded(&format!("screenshot {name}"), self.client.screenshot())
            .await
        {
            Ok(png) => png,
            Err(e) => self.fail(&format!("screenshot {name}: {e}")).await,
        };
        std::fs::write(screenshot_dir().join(format!("{name}.png")), png)
            .expect("write screenshot");
    }

    /// Ends the WebDriver session and the driver (bounded: the driver is
    /// killed on drop either way).
    pub async fn quit(self) {
        let _ = tokio::time::timeout(Duration::from_secs(10), self.client.clone().close()).await;
    }
}

impl Drop for AppDriver {
    fn drop(&mut self) {
        // SIGTERM to the whole group: the app quits the normal way.
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.driver.id())])
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The WebKit processes (web, network, GPU) below `pid`, by pid and name.
pub fn webkit_processes(pid: u32) -> Vec<(u32, String)> {
    below(pid)
        .into_iter()
        .filter(|(_, name)| name.starts_with("WebKit"))
        .collect()
}

/// The window's own processes (`veil-app --window`) below the app `pid`.
pub fn window_processes(pid: u32) -> Vec<u32> {
    below(pid)
        .into_iter()
        .filter(|(p, _)| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| c.split(|&b| b == 0).any(|arg| arg == b"--window"))
        })
        .map(|(p, _)| p)
        .collect()
}

/// Whether process `pid` has mapped a file whose name contains `name`.
pub fn maps_library(pid: u32, name: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/maps")).is_ok_and(|m| m.contains(name))
}

/// Every process below `pid`, by pid and name.
fn below(pid: u32) -> Vec<(u32, String)> {
    let table = veil_system::children::processes();
    let mut below = vec![pid];
    let mut found = Vec::new();
    // Breadth first; each process is visited once.
    let mut i = 0;
    while i < below.len() {
        let parent = below[i];
        for p in &table {
            if p.parent == parent && !below.contains(&p.pid) {
                below.push(p.pid);
                found.push((p.pid, p.name.clone()));
            }
        }
        i += 1;
    }
    found
}

/// The focused element's name and whether its focus can be seen.
const FOCUSED: &str = r#"
const e = document.activeElement;
if (!e || e === document.body) return { name: "", visible: false };
const s = getComputedStyle(e);
const ring = (s.outlineStyle !== "none" && parseFloat(s.outlineWidth) > 0)
  || (s.boxShadow && s.boxShadow !== "none");
const name = e.id || e.getAttribute("data-testid")
  || (e.tagName.toLowerCase() + ":" + (e.textContent || "").trim().slice(0, 30));
return { name, visible: !!ring && e.matches(":focus-visible") };
"#;

/// axe-core on the whole document: critical and serious violations only.
const AXE_RUN: &str = r#"
const done = arguments[arguments.length - 1];
axe.run(document, { resultTypes: ["violations"] })
  .then((r) => done(r.violations
    .filter((v) => v.impact === "critical" || v.impact === "serious")
    .map((v) => v.id + " (" + v.impact + "): " + v.help + " at "
      + v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(", "))))
  .catch((e) => done(["axe failed: " + e]));
"#;
