//! Upstream passwords as a user handles them: `veil upstream add` stores the
//! password in the OS keyring (gnome-keyring, unlocked in a private D-Bus
//! session), the engine takes it from there to log in to a microsocks
//! upstream, and it appears in no file, log or status output. Without a
//! keyring Veil refuses instead of writing it down; a broken `config.toml`
//! is refused with its line number and never reaches a running engine.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Stdio;

use veil_tests::desktop::DesktopSession;
use veil_tests::output_text as text;
use veil_tests::peers::Microsocks;
use veil_tests::{Origin, curl, proxy_url};

/// Distinctive, so a match in a file cannot be a coincidence.
const SECRET: &str = "Kx7-keyring-Secret-2Qp";
const USER: &str = "alice";

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path)
                && bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
            {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

fn config_without_bypass(s: &DesktopSession) {
    // The origin is on loopback, which bypasses upstreams by default.
    std::fs::write(
        s.veil_home().join("config.toml"),
        "# my settings\n[proxy]\nmode = \"proxy\"\nbypass = []\n",
    )
    .expect("config");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyring_round_trip_to_an_authenticated_upstream_leaves_no_password_behind() {
    let s = DesktopSession::start();
    config_without_bypass(&s);
    // Connects out from 127.0.0.3, so the origin can tell traffic went through it.
    let socks = Microsocks::start(Ipv4Addr::new(127, 0, 0, 3), Some((USER, SECRET))).await;
    let url = format!("socks5://{USER}@{}", socks.addr());

    let add = s.veil_with_stdin(
        &["upstream", "add", "home", &url, "--password-stdin"],
        &format!("{SECRET}\n"),
    );
    assert!(add.status.success(), "{}", text(&add));
    let stored = s.tool(
        "secret-tool",
        &["lookup", "service", "veil", "username", "home"],
    );
    assert_eq!(stored, SECRET, "the password is in the keyring");
    let config = std::fs::read_to_string(s.veil_home().join("config.toml")).expect("config");
    assert!(
        config.starts_with("# my settings\n"),
        "comments kept: {config}"
    );
    assert!(config.contains(&url), "{config}");

    let list = s.veil(&["upstream", "list"]);
    assert!(list.status.success(), "{}", text(&list));
    let listed = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(
        listed.contains("home") && listed.contains(&url) && listed.contains("password: keyring"),
        "{listed}"
    );

    // Renamed with `veil upstream edit` (the same code as the window's):
    // the password moves with it; moved to another host it is refused.
    let edit = s.veil(&["upstream", "edit", "home", "--rename", "house"]);
    assert!(edit.status.success(), "{}", text(&edit));
    let stored = s.tool(
        "secret-tool",
        &["lookup", "service", "veil", "username", "house"],
    );
    assert_eq!(stored, SECRET, "the password moved to the new name");
    let elsewhere = format!("socks5://{USER}@127.0.0.9:1080");
    let moved = s.veil(&["upstream", "edit", "house", "--url", &elsewhere]);
    assert!(!moved.status.success(), "{}", text(&moved));
    assert!(
        text(&moved).contains("give the password for it again"),
        "{}",
        text(&moved)
    );

    // The engine reads the password from the keyring and logs in with it.
    let mut veil = s
        .veil_run(&["--listen", "127.0.0.1:0"])
        .expect("veil run starts with the upstream from config + keyring");
    let origin = Origin::start().await;
    let out = curl(&["-x", &proxy_url(veil.addr), &origin.url("/ip")]).await;
    assert_eq!(out.status, 200, "{out:?}");
    assert_eq!(
        out.text(),
        "127.0.0.3",
        "the request left through the authenticated upstream"
    );

    let status = s.veil(&["status", "--json"]);
    assert!(status.status.success(), "{}", text(&status));
    let sysproxy_status = s.veil(&["sysproxy", "status", "--json"]);
    assert!(veil.terminate(), "veil run exits cleanly");
    for out in [&add, &list, &edit, &moved, &status, &sysproxy_status] {
        assert!(!text(out).contains(SECRET), "printed: {}", text(out));
    }
    let leaks = files_containing(&s.veil_home(), SECRET);
    assert!(leaks.is_empty(), "config, data or logs hold it: {leaks:?}");
    assert!(
        s.veil_home()
            .join("logs")
            .read_dir()
            .is_ok_and(|mut d| d.next().is_some()),
        "there were logs to search"
    );

    let remove = s.veil(&["upstream", "remove", "house"]);
    assert!(remove.status.success(), "{}", text(&remove));
    let mut lookup = s.command("secret-tool");
    lookup.args(["lookup", "service", "veil", "username", "house"]);
    let gone = lookup.output().expect("secret-tool");
    // Exit 1 with nothing on stderr is "no such entry"; a broken keyring
    // would also print nothing on stdout, so that alone proves little.
    assert_eq!(gone.status.code(), Some(1), "{}", text(&gone));
    assert!(gone.stderr.is_empty(), "{}", text(&gone));
    assert!(gone.stdout.is_empty(), "the keyring entry went with it");
    let listed = s.veil(&["upstream", "list"]);
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains("no upstreams configured"),
        "{}",
        text(&listed)
    );
}

#[test]
fn a_missing_keyring_entry_names_the_upstream_and_the_fix() {
    let s = DesktopSession::start();
    std::fs::write(
        s.veil_home().join("config.toml"),
        "[[upstreams.server]]\nname = \"work\"\nurl = \"http://bob@127.0.0.2:3128\"\n",
    )
    .expect("config");
    let out = s.veil(&["run", "--listen", "127.0.0.1:0"]);
    assert!(!out.status.success(), "{}", text(&out));
    let err = text(&out);
    assert!(
        err.contains("\"work\"") && err.contains("veil upstream add"),
        "{err}"
    );
}

#[test]
fn without_a_keyring_add_refuses_and_writes_nothing() {
    let s = DesktopSession::start();
    let mut cmd = s.command(veil_tests::veil_process::veil_bin().to_str().expect("path"));
    // A bus where nothing answers: no Secret Service to be had.
    cmd.env(
        "DBUS_SESSION_BUS_ADDRESS",
        format!("unix:path={}", s.root().join("no-bus").display()),
    )
    .args([
        "upstream",
        "add",
        "home",
        "socks5://alice@127.0.0.3:1080",
        "--password-stdin",
    ]);
    let out = veil_tests::desktop::run_bounded(cmd, &format!("{SECRET}\n"));
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("no OS keyring is available"),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains(SECRET));
    assert!(
        !s.veil_home().join("config.toml").exists(),
        "nothing half-added"
    );
    assert!(files_containing(s.root(), SECRET).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_config_is_refused_with_its_line_and_the_engine_keeps_its_own() {
    let s = DesktopSession::start();
    let config = s.veil_home().join("config.toml");
    std::fs::write(&config, "[proxy]\nmode = \"direct\"\n").expect("config");
    let veil = s.veil_run(&["--listen", "127.0.0.1:0"]).expect("starts");

    let broken = "[proxy]\nmode = \"direct\"\nlisten = 42\n";
    std::fs::write(&config, broken).expect("break it");
    let add = s.veil(&["upstream", "add", "x", "http://127.0.0.2:3128"]);
    assert!(!add.status.success(), "{}", text(&add));
    assert!(text(&add).contains("config.toml:3:"), "{}", text(&add));
    assert_eq!(
        std::fs::read_to_string(&config).expect("config"),
        broken,
        "the file is left for the user to fix"
    );
    let second = s.veil(&["run", "--listen", "127.0.0.1:0"]);
    assert!(!second.status.success());
    assert!(
        text(&second).contains("config.toml:3:"),
        "{}",
        text(&second)
    );

    // The running engine never saw the bad file and still serves.
    let origin = Origin::start().await;
    let out = curl(&["-x", &proxy_url(veil.addr), &origin.url("/ip")]).await;
    assert_eq!(out.status, 200, "{out:?}");
    let status = s.veil(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("json");
    assert_eq!(status["listen"], veil.addr.to_string(), "{status}");
}

/// Inbound credentials without `password_env`: the password is the keyring
/// entry `inbound:USER`, stored here the way the README says (secret-tool).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_password_from_the_keyring() {
    let s = DesktopSession::start();
    let mut store = s.command("secret-tool");
    store
        .args([
            "store",
            "--label=Veil inbound",
            "service",
            "veil",
            "username",
            "inbound:me",
        ])
        .stdin(Stdio::piped());
    let mut child = store.spawn().expect("secret-tool");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(SECRET.as_bytes()).expect("password");
    }
    assert!(child.wait().expect("secret-tool").success());
    std::fs::write(
        s.veil_home().join("config.toml"),
        "[proxy.auth]\nusername = \"me\"\n",
    )
    .expect("config");
    let veil = s
        .veil_run(&["--listen", "127.0.0.1:0"])
        .expect("veil run starts with the inbound password from the keyring");
    let origin = Origin::start().await;
    let url = origin.url("/ip");
    let proxy = proxy_url(veil.addr);
    let good = format!("me:{SECRET}");
    let out = curl(&["-x", &proxy, "-U", &good, &url]).await;
    assert_eq!(out.status, 200, "{out:?}");
    let out = curl(&["-x", &proxy, "-U", "me:wrong", &url]).await;
    assert_eq!(out.status, 407, "{out:?}");
}

/// A pasted list, as users keep them: the good lines become upstreams with
/// their passwords in the keyring (and nowhere else), the bad ones are
/// named with their line and reason, and `veil upstream test --all`
/// measures each through a real login, fastest first, failures last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_list_logs_in_with_keyring_passwords_and_test_all_measures_each() {
    let s = DesktopSession::start();
    config_without_bypass(&s);
    let socks = Microsocks::start(Ipv4Addr::new(127, 0, 0, 3), Some((USER, SECRET))).await;
    let open = Microsocks::start(Ipv4Addr::new(127, 0, 0, 4), None).await;
    // Nothing listens there: the one upstream that must fail the test.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead = closed.local_addr().expect("addr");
    drop(closed);
    let list = format!(
        "# my proxies\nsocks5://{USER}:{SECRET}@{socks}\nhttp://{dead}\nftp://{USER}:{SECRET}@127.0.0.9:21\n\nsocks5://{open}\nsocks5://{socks}  # again\n",
        socks = socks.addr(),
        open = open.addr(),
    );
    let import = s.veil_with_stdin(&["upstream", "import", "-"], &list);
    let out = text(&import);
    assert!(import.status.success(), "{out}");
    assert!(out.contains("3 added, 2 refused"), "{out}");
    assert!(out.contains("refused line 4"), "{out}");
    assert!(out.contains("refused line 7"), "{out}");
    assert!(!out.contains(SECRET), "printed: {out}");
    let name = format!("{}", socks.addr());
    let stored = s.tool(
        "secret-tool",
        &["lookup", "service", "veil", "username", &name],
    );
    assert_eq!(
        stored, SECRET,
        "the password is in the keyring under {name}"
    );
    let leaks = files_containing(&s.veil_home(), SECRET);
    assert!(leaks.is_empty(), "written to a file: {leaks:?}");

    // Each test logs in and fetches from the origin through the upstream.
    let origin = Origin::start().await;
    let test = s.veil(&[
        "upstream",
        "test",
        "--all",
        "--check-url",
        &origin.url("/ip"),
    ]);
    let out = text(&test);
    assert!(!test.status.success(), "one upstream is down: {out}");
    assert!(out.contains("1 of 3 upstreams failed"), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    let position = |needle: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(needle))
            .unwrap_or_else(|| panic!("no line for {needle}: {out}"))
    };
    let logged_in = position(&format!("{name} "));
    let anonymous = position(&format!("{} ", open.addr()));
    let failed = position(&format!("{dead} "));
    for ok in [logged_in, anonymous] {
        assert!(lines[ok].contains(" ms "), "{out}");
    }
    assert!(
        failed > logged_in && failed > anonymous,
        "failures last: {out}"
    );
    assert!(lines[failed].contains("failed"), "{out}");
    assert!(!out.contains(SECRET), "printed: {out}");
}
