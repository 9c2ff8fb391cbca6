//! The macOS backend under the real guard, against a recording fake of
//! `networksetup` (fake-networksetup.sh) that keeps each service's settings
//! in files: what a Mac user lives with when Veil turns the system proxy on
//! and off over several network services, a dock plugged in or pulled out
//! while on, and a crash.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::MacProxy;
use crate::sysproxy::guard::{Backends, GuardFile, guard_path};
use crate::sysproxy::{Backend, ProxyState, Settings, SysProxyError, SystemProxyGuard, VeilProxy};

const FAKE: &str = include_str!("fake-networksetup.sh");
const DOCK: &str = "USB 10/100/1000 LAN";
const USER_PAC: &str = "http://wpad.corp.example:8080/proxy.pac?site=lab";

/// A fake `networksetup` with its state in a temporary folder.
struct FakeMac {
    dir: tempfile::TempDir,
}

impl FakeMac {
    /// `services` as -listallnetworkservices prints them (`*` = disabled).
    fn new(services: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let fake = Self { dir };
        std::fs::create_dir_all(fake.state().join("svc")).expect("state dir");
        fake.write_services(services);
        let program = fake.program();
        std::fs::write(&program, FAKE).expect("write the fake");
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755))
            .expect("make the fake executable");
        // Another test thread forking while the script was open for writing
        // makes exec fail with ETXTBSY for a moment; wait that out.
        for _ in 0..200 {
            match std::process::Command::new(&program).arg("-help").output() {
                Err(e) if e.raw_os_error() == Some(26) => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => break,
            }
        }
        std::fs::remove_file(fake.dir.path().join("calls")).ok();
        fake
    }

    fn program(&self) -> PathBuf {
        self.dir.path().join("networksetup")
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn write_services(&self, services: &[&str]) {
        let text: String = services.iter().map(|s| format!("{s}\n")).collect();
        std::fs::write(self.state().join("services"), text).expect("services");
    }

    fn service_dir(&self, service: &str) -> PathBuf {
        let dir = self.state().join("svc").join(service.replace('/', "%2F"));
        std::fs::create_dir_all(&dir).expect("service dir");
        dir
    }

    /// Sets a field the way the user's own settings would be.
    fn set(&self, service: &str, field: &str, value: &str) {
        std::fs::write(self.service_dir(service).join(field), value).expect("set a field");
    }

    fn field(&self, service: &str, field: &str) -> Option<String> {
        std::fs::read_to_string(self.service_dir(service).join(field)).ok()
    }

    fn backend(&self) -> MacProxy {
        MacProxy::with_program(self.program()).expect("the fake lists its services")
    }

    fn guard(&self, data_dir: &Path) -> SystemProxyGuard {
        SystemProxyGuard::with_backends(
            data_dir,
            Box::new(FakeBackends {
                program: self.program(),
            }),
        )
    }

    /// Every call so far, as argument lists.
    fn calls(&self) -> Vec<Vec<String>> {
        std::fs::read_to_string(self.dir.path().join("calls"))
            .unwrap_or_default()
            .lines()
            .map(|line| {
                line.split('\t')
                    .filter(|a| !a.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .collect()
    }

    /// Calls that change something on `service`.
    fn sets_on(&self, service: &str) -> Vec<Vec<String>> {
        self.calls()
            .into_iter()
            .filter(|c| c[0].starts_with("-set") && c.get(1).map(String::as_str) == Some(service))
            .collect()
    }
}

/// The guard's backends: the macOS one on the fake.
#[derive(Debug)]
struct FakeBackends {
    program: PathBuf,
}

impl Backends for FakeBackends {
    fn detect(&self) -> Result<Vec<Box<dyn Backend>>, SysProxyError> {
        Ok(vec![Box::new(MacProxy::with_program(
            self.program.clone(),
        )?)])
    }

    fn named(&self, name: &str) -> Result<Box<dyn Backend>, SysProxyError> {
        match name {
            "macos" => Ok(Box::new(MacProxy::with_program(self.program.clone())?)),
            other => Err(SysProxyError::UnknownBackend(other.to_owned())),
        }
    }
}

fn veil() -> VeilProxy {
    VeilProxy {
        listen: "127.0.0.1:7890".parse().expect("addr"),
        bypass: vec!["localhost".into(), "*.local".into(), "10.0.0.0/8".into()],
        reach: crate::sysproxy::AppsReach::Manual,
    }
}

/// Wi-Fi follows the office PAC with auto-discovery on (and a manual web
/// proxy, switched off, left from elsewhere) and has its own bypass list.
fn users_wifi(fake: &FakeMac) {
    fake.set("Wi-Fi", "pac.url", USER_PAC);
    fake.set("Wi-Fi", "pac.enabled", "Yes");
    fake.set("Wi-Fi", "discovery", "On");
    fake.set("Wi-Fi", "web.server", "proxy.corp.example");
    fake.set("Wi-Fi", "web.port", "3128");
    fake.set("Wi-Fi", "web.enabled", "No");
    fake.set("Wi-Fi", "bypass", "*.corp.example\n169.254/16\n");
}

fn assert_points_at_veil(fake: &FakeMac, service: &str) {
    for kind in ["web", "secure", "socks"] {
        assert_eq!(
            fake.field(service, &format!("{kind}.enabled")).as_deref(),
            Some("Yes"),
            "{service} {kind}"
        );
        assert_eq!(
            fake.field(service, &format!("{kind}.server")).as_deref(),
            Some("127.0.0.1"),
            "{service} {kind}"
        );
        assert_eq!(
            fake.field(service, &format!("{kind}.port")).as_deref(),
            Some("7890"),
            "{service} {kind}"
        );
    }
    assert_eq!(
        fake.field(service, "pac.enabled").as_deref(),
        Some("No"),
        "{service}: PAC off"
    );
    assert_eq!(
        fake.field(service, "discovery").as_deref(),
        Some("Off"),
        "{service}: discovery off"
    );
    assert_eq!(
        fake.field(service, "bypass").as_deref(),
        Some("localhost\n*.local\n10.0.0.0/8\n"),
        "{service}"
    );
}

fn saved(data_dir: &Path) -> Settings {
    let file = GuardFile::load(&guard_path(data_dir))
        .expect("guard file readable")
        .expect("guard file there");
    assert_eq!(file.saved.len(), 1);
    assert_eq!(file.saved[0].backend, "macos");
    file.saved[0].settings.clone()
}

#[test]
fn every_service_is_covered_and_comes_back_exactly_with_its_pac_and_discovery() {
    let fake = FakeMac::new(&["Wi-Fi", "Ethernet", "*Bluetooth PAN"]);
    users_wifi(&fake);
    // On the same host as Veil: only the port and state differ from Veil's,
    // so the restore writes the port with the server it reads back.
    fake.set("Ethernet", "secure.server", "127.0.0.1");
    fake.set("Ethernet", "secure.port", "3129");
    fake.set("Ethernet", "secure.enabled", "No");
    let before = fake.backend().read().expect("read");
    let data = tempfile::tempdir().expect("data dir");
    let guard = fake.guard(data.path());

    guard.enable(&veil()).expect("on");
    assert_points_at_veil(&fake, "Wi-Fi");
    assert_points_at_veil(&fake, "Ethernet");
    assert_eq!(
        fake.field("Wi-Fi", "pac.url").as_deref(),
        Some(USER_PAC),
        "Veil turns PAC off and leaves the URL alone"
    );
    assert!(
        fake.sets_on("Bluetooth PAN").is_empty(),
        "a disabled service is left alone"
    );
    // The guard file names each service it changed, with its own values.
    let saved = saved(data.path());
    assert_eq!(saved, before);
    assert_eq!(saved.get("Wi-Fi/pac.url"), Some(&Some(USER_PAC.to_owned())));
    assert_eq!(saved.get("Wi-Fi/pac.enabled"), Some(&Some("Yes".into())));
    assert_eq!(saved.get("Wi-Fi/discovery"), Some(&Some("On".into())));
    assert_eq!(saved.get("Ethernet/web.server"), Some(&Some(String::new())));
    assert_eq!(saved.get("Ethernet/pac.url"), Some(&None));
    let mac = fake.backend();
    assert_eq!(
        mac.describe(&mac.read().expect("read")),
        ProxyState::Manual {
            http: Some("127.0.0.1:7890".into()),
            https: Some("127.0.0.1:7890".into()),
            socks: Some("127.0.0.1:7890".into()),
            bypass: vec!["localhost".into(), "*.local".into(), "10.0.0.0/8".into()],
        }
    );

    assert!(guard.disable().expect("off"));
    assert_eq!(
        fake.backend().read().expect("read"),
        before,
        "exactly as before"
    );
    assert_eq!(fake.field("Wi-Fi", "pac.enabled").as_deref(), Some("Yes"));
    assert_eq!(fake.field("Wi-Fi", "discovery").as_deref(), Some("On"));
    assert_eq!(fake.field("Ethernet", "web.server").as_deref(), Some(""));
    assert_eq!(
        fake.field("Ethernet", "secure.port").as_deref(),
        Some("3129")
    );
    assert_eq!(
        fake.field("Ethernet", "secure.enabled").as_deref(),
        Some("No")
    );
    assert!(
        !fake.calls().iter().any(|c| c[0] == "-setautoproxyurl"),
        "the PAC URL was never rewritten"
    );
    assert!(!guard_path(data.path()).exists());
}

#[test]
fn a_service_that_appears_while_on_is_saved_covered_and_restored() {
    let fake = FakeMac::new(&["Wi-Fi"]);
    users_wifi(&fake);
    let mut before = fake.backend().read().expect("read");
    let data = tempfile::tempdir().expect("data dir");
    let guard = fake.guard(data.path());
    guard.enable(&veil()).expect("on");

    // The laptop is docked: a new service with the user's own proxy on it.
    fake.write_services(&["Wi-Fi", DOCK]);
    fake.set(DOCK, "web.server", "10.1.2.3");
    fake.set(DOCK, "web.port", "8080");
    fake.set(DOCK, "web.enabled", "Yes");
    fake.set(DOCK, "bypass", "printer.lan\n");
    before.extend(
        fake.backend()
            .read()
            .expect("read")
            .into_iter()
            .filter(|(k, _)| k.starts_with(DOCK)),
    );

    // What the service's watcher calls: the new service is covered...
    assert!(
        guard.cover_new(&veil()).expect("cover new"),
        "the dock is new"
    );
    assert_points_at_veil(&fake, DOCK);
    // ...and with nothing new, nothing is written (no fighting a change).
    let calls = fake.calls().len();
    assert!(!guard.cover_new(&veil()).expect("cover new"));
    assert!(
        fake.calls()[calls..]
            .iter()
            .all(|c| !c[0].starts_with("-set")),
        "nothing written when nothing is new"
    );
    assert_points_at_veil(&fake, "Wi-Fi");
    let saved = saved(data.path());
    assert_eq!(
        saved.get(&format!("{DOCK}/web.server")),
        Some(&Some("10.1.2.3".into())),
        "the dock's own settings were saved before Veil changed them"
    );

    // `on` again while on does the same (nothing new now), and off brings
    // both services back.
    guard.enable(&veil()).expect("on again");
    assert!(guard.disable().expect("off"));
    assert_eq!(fake.backend().read().expect("read"), before);
    assert_eq!(fake.field("Wi-Fi", "pac.url").as_deref(), Some(USER_PAC));
    assert_eq!(fake.field("Wi-Fi", "pac.enabled").as_deref(), Some("Yes"));
    assert_eq!(fake.field(DOCK, "web.server").as_deref(), Some("10.1.2.3"));
    assert_eq!(fake.field(DOCK, "web.enabled").as_deref(), Some("Yes"));
}

#[test]
fn refresh_when_off_changes_nothing() {
    let fake = FakeMac::new(&["Wi-Fi"]);
    let data = tempfile::tempdir().expect("data dir");
    let guard = fake.guard(data.path());
    assert!(!guard.refresh(&veil()).expect("refresh"));
    assert!(fake.sets_on("Wi-Fi").is_empty());
    assert!(!guard_path(data.path()).exists());
}

#[test]
fn a_service_that_goes_away_while_on_does_not_block_the_others() {
    let fake = FakeMac::new(&["Wi-Fi", DOCK]);
    users_wifi(&fake);
    let before = fake.backend().read().expect("read");
    let data = tempfile::tempdir().expect("data dir");
    let guard = fake.guard(data.path());
    guard.enable(&veil()).expect("on");
    assert_points_at_veil(&fake, DOCK);

    // Undocked: the dock's service is gone.
    fake.write_services(&["Wi-Fi"]);
    let calls_before = fake.calls().len();
    assert!(guard.refresh(&veil()).expect("refresh without the dock"));
    assert!(guard.disable().expect("off restores the rest"));

    let wifi_before: Settings = before
        .into_iter()
        .filter(|(k, _)| k.starts_with("Wi-Fi/"))
        .collect();
    assert_eq!(fake.backend().read().expect("read"), wifi_before);
    assert!(
        fake.calls()[calls_before..]
            .iter()
            .all(|c| c.get(1).map(String::as_str) != Some(DOCK)),
        "nothing is asked of a service that is gone"
    );
    assert!(!guard_path(data.path()).exists(), "the guard file is done");
}

#[test]
fn after_a_crash_a_new_veil_restores_every_service_from_the_guard_file() {
    let fake = FakeMac::new(&["Wi-Fi", "Ethernet"]);
    users_wifi(&fake);
    fake.set("Ethernet", "socks.server", "::1");
    fake.set("Ethernet", "socks.port", "1080");
    fake.set("Ethernet", "socks.enabled", "Yes");
    let before = fake.backend().read().expect("read");
    let data = tempfile::tempdir().expect("data dir");

    let crashed = fake.guard(data.path());
    crashed.enable(&veil()).expect("on");
    // The process dies without restoring: no Drop, and its owner record no
    // longer matches a running process.
    std::mem::forget(crashed);
    let path = guard_path(data.path());
    let mut file = GuardFile::load(&path).expect("load").expect("there");
    file.owner.started = Some("a process that is gone".into());
    std::fs::write(&path, serde_json::to_vec(&file).expect("json")).expect("store");
    assert_points_at_veil(&fake, "Ethernet");

    // A new Veil with new backends knows only what the file says.
    let next = fake.guard(data.path());
    assert!(next.disable().expect("restore"));
    assert_eq!(fake.backend().read().expect("read"), before);
    assert_eq!(
        fake.field("Ethernet", "socks.server").as_deref(),
        Some("::1")
    );
    assert_eq!(fake.field("Wi-Fi", "pac.enabled").as_deref(), Some("Yes"));
    assert!(!path.exists());
}

#[test]
fn a_write_refused_half_way_puts_every_service_back() {
    let fake = FakeMac::new(&["Ethernet", "Wi-Fi"]);
    users_wifi(&fake);
    let before = fake.backend().read().expect("read");
    let data = tempfile::tempdir().expect("data dir");
    let guard = fake.guard(data.path());
    // Ethernet is written first; Wi-Fi then refuses its SOCKS proxy after
    // its bypass list and web proxies were changed.
    fake.set("Wi-Fi", "refuse", "-setsocksfirewallproxy");

    let err = guard.enable(&veil()).expect_err("refused");
    assert!(
        err.to_string().contains("-setsocksfirewallproxy Wi-Fi"),
        "{err}"
    );
    assert!(
        fake.sets_on("Ethernet").len() > 1,
        "Ethernet had been changed"
    );
    assert_eq!(fake.backend().read().expect("read"), before, "all put back");
    assert!(!guard.is_on());
    assert!(!guard_path(data.path()).exists());
}

#[test]
fn ipv6_listeners_and_mixed_services_read_well() {
    let fake = FakeMac::new(&["Wi-Fi", "Ethernet"]);
    users_wifi(&fake);
    let mac = fake.backend();
    let now = mac.read().expect("read");
    match mac.describe(&now) {
        ProxyState::Other { detail } => {
            assert!(
                detail.contains("Wi-Fi: automatic, PAC http://wpad"),
                "{detail}"
            );
            assert!(detail.contains("Ethernet: off"), "{detail}");
        }
        other => panic!("two services that differ: {other:?}"),
    }
    let v6 = VeilProxy {
        listen: "[::]:7890".parse().expect("addr"),
        bypass: vec![],
        reach: crate::sysproxy::AppsReach::Manual,
    };
    let wanted = mac.veil_settings(&v6);
    assert_eq!(wanted.get("Ethernet/web.server"), Some(&Some("::1".into())));
    assert_eq!(wanted.get("Ethernet/bypass"), Some(&Some(String::new())));
    mac.write(&wanted).expect("write");
    assert_eq!(
        fake.field("Ethernet", "bypass").as_deref(),
        Some(""),
        "`Empty` clears it"
    );
    let now = mac.read().expect("read");
    assert_eq!(mac.mismatch(&wanted, &now), None);
    assert_eq!(
        mac.describe(&now),
        ProxyState::Manual {
            http: Some("[::1]:7890".into()),
            https: Some("[::1]:7890".into()),
            socks: Some("[::1]:7890".into()),
            bypass: vec![],
        }
    );
}

#[test]
fn a_key_that_is_not_service_and_field_is_refused_before_any_write() {
    let fake = FakeMac::new(&["Wi-Fi"]);
    for bad in ["web.enabled", "Wi-Fi/http.enable", "Wi-Fi/web.host"] {
        let mut s = Settings::new();
        s.insert("Wi-Fi/pac.enabled".into(), Some("No".into()));
        s.insert(bad.into(), Some("Yes".into()));
        let err = fake.backend().write(&s).expect_err("refused");
        assert!(err.to_string().contains("malformed key"), "{err}");
    }
    assert!(fake.sets_on("Wi-Fi").is_empty(), "nothing was written");
}
