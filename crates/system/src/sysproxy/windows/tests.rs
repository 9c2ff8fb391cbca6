//! The Windows backend against an in-memory registry, through the guard's
//! own restore and read-back check.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::connection::ConnectionSettings;
use super::registry::{FakeRegistry, Key, WinHttp};
use super::value::RegValue;
use super::*;
use crate::sysproxy::guard::{restore_backend, verify};

const PAC: &str = "http://wpad.corp.example/proxy.pac";

fn veil(listen: &str) -> VeilProxy {
    VeilProxy {
        listen: listen.parse().expect("addr"),
        bypass: vec!["localhost".into(), "10.0.0.0/8".into()],
        reach: crate::sysproxy::AppsReach::Manual,
    }
}

fn backend(fake: &Arc<FakeRegistry>) -> WindowsProxy {
    WindowsProxy::new(fake.clone())
}

fn sz(s: &str) -> RegValue {
    RegValue::Sz(s.into())
}

/// A blob as Windows writes it: `flags`, the strings, 32 trailing bytes
/// of which some are not zero (they must survive untouched).
fn blob_value(counter: u32, flags: u32, proxy: &str, pac: &str) -> RegValue {
    let mut c = ConnectionSettings::new();
    c.counter = counter;
    c.flags = flags;
    c.proxy = proxy.as_bytes().to_vec();
    c.bypass = b"<local>".to_vec();
    c.pac_url = pac.as_bytes().to_vec();
    c.rest[0] = 1;
    c.rest[4..8].copy_from_slice(&[192, 168, 1, 2]);
    RegValue::Binary(c.to_bytes())
}

fn stored_blob(fake: &FakeRegistry) -> ConnectionSettings {
    match fake.value(Key::Connections, CONNECTION) {
        Some(RegValue::Binary(b)) => ConnectionSettings::parse(&b).expect("parses"),
        other => panic!("no blob: {other:?}"),
    }
}

/// A user with a PAC URL, auto-detect on, and a per-protocol server kept
/// for when they switch the manual proxy on; no bypass list at all.
fn pac_user() -> Arc<FakeRegistry> {
    let fake = Arc::new(FakeRegistry::default());
    let server = "http=proxy.corp:8080;https=proxy.corp:8443;socks=socks.corp:1080";
    fake.put(Key::InternetSettings, PROXY_ENABLE, RegValue::Dword(0));
    fake.put(Key::InternetSettings, PROXY_SERVER, sz(server));
    fake.put(Key::InternetSettings, AUTO_CONFIG_URL, sz(PAC));
    fake.put(
        Key::Connections,
        CONNECTION,
        blob_value(41, 0x0d, server, PAC),
    );
    fake
}

/// Every value but the blob's change counter.
fn without_counter(all: BTreeMap<(Key, String), RegValue>) -> BTreeMap<(Key, String), RegValue> {
    all.into_iter()
        .map(|(k, v)| match (&k.1[..], &v) {
            (CONNECTION, RegValue::Binary(b)) => {
                let mut c = ConnectionSettings::parse(b).expect("parses");
                c.counter = 0;
                (k, RegValue::Binary(c.to_bytes()))
            }
            _ => (k, v),
        })
        .collect()
}

#[test]
fn turning_on_over_a_pac_and_auto_detect_and_back_restores_every_value() {
    let fake = pac_user();
    let before = fake.all();
    let windows = backend(&fake);
    let saved = windows.read().expect("read");
    assert_eq!(
        windows.describe(&saved),
        ProxyState::Auto {
            pac_url: Some(PAC.into())
        }
    );
    assert_eq!(
        saved[PROXY_OVERRIDE], None,
        "a missing value is saved as not set"
    );
    assert_eq!(saved[AUTO_DETECT].as_deref(), Some("on"));

    let wanted = windows.veil_settings(&veil("127.0.0.1:7890"));
    windows.write(&wanted).expect("on");
    verify(&windows, &wanted).expect("Veil's settings read back");
    assert_eq!(
        fake.value(Key::InternetSettings, PROXY_ENABLE),
        Some(RegValue::Dword(1))
    );
    assert_eq!(
        fake.value(Key::InternetSettings, PROXY_SERVER),
        Some(sz("127.0.0.1:7890"))
    );
    assert_eq!(
        fake.value(Key::InternetSettings, AUTO_CONFIG_URL),
        None,
        "no PAC around Veil"
    );
    let on = stored_blob(&fake);
    assert_eq!(on.modes(), connection::FLAG_DIRECT | connection::FLAG_PROXY);
    assert_eq!(on.counter, 42, "Windows moves the counter on every write");
    assert_eq!(on.proxy, b"127.0.0.1:7890");
    assert!(on.pac_url.is_empty());
    assert_eq!(
        on.rest,
        ConnectionSettings::parse(&blob_bytes(&before))
            .expect("blob")
            .rest
    );
    assert!(fake.notifications() >= 1, "running apps are told");
    let now = windows.read().expect("read");
    assert!(matches!(
        windows.describe(&now),
        ProxyState::Manual { http: Some(ref h), .. } if h == "127.0.0.1:7890"
    ));

    restore_backend(&windows, &saved).expect("restore");
    assert_eq!(without_counter(fake.all()), without_counter(before));
    assert_eq!(
        fake.value(Key::InternetSettings, PROXY_OVERRIDE),
        None,
        "deleted again"
    );
    assert_eq!(
        stored_blob(&fake).counter,
        43,
        "the counter never goes back"
    );
    assert_eq!(
        windows.describe(&windows.read().expect("read")),
        windows.describe(&saved)
    );
}

fn blob_bytes(all: &BTreeMap<(Key, String), RegValue>) -> Vec<u8> {
    match all.get(&(Key::Connections, CONNECTION.to_owned())) {
        Some(RegValue::Binary(b)) => b.clone(),
        other => panic!("no blob: {other:?}"),
    }
}

#[test]
fn a_fresh_account_gets_every_value_deleted_again() {
    let fake = Arc::new(FakeRegistry::default());
    let windows = backend(&fake);
    let saved = windows.read().expect("read");
    assert!(saved.values().all(Option::is_none), "{saved:?}");
    assert_eq!(windows.describe(&saved), ProxyState::Off);
    let wanted = windows.veil_settings(&veil("127.0.0.1:7890"));
    windows.write(&wanted).expect("on");
    verify(&windows, &wanted).expect("read back");
    assert!(
        !stored_blob(&fake).auto_detect(),
        "auto-detect is off, not left to the default"
    );
    restore_backend(&windows, &saved).expect("restore");
    assert!(fake.all().is_empty(), "{:?}", fake.all());
}

#[test]
fn an_ipv6_listener_is_bracketed() {
    let fake = Arc::new(FakeRegistry::default());
    let windows = backend(&fake);
    for listen in ["[::1]:7890", "[::]:7890"] {
        let s = windows.veil_settings(&veil(listen));
        assert_eq!(s[PROXY_SERVER].as_deref(), Some("[::1]:7890"));
        windows.write(&s).expect("on");
        assert_eq!(
            fake.value(Key::InternetSettings, PROXY_SERVER),
            Some(sz("[::1]:7890"))
        );
        assert_eq!(stored_blob(&fake).proxy, b"[::1]:7890");
    }
}

/// The old backend read `[::1]:8080` into host `::1` and port 8080 and
/// wrote `::1:8080` back, which WinINet cannot use.
#[test]
fn a_saved_ipv6_server_goes_back_verbatim() {
    let fake = Arc::new(FakeRegistry::default());
    fake.put(Key::InternetSettings, PROXY_ENABLE, RegValue::Dword(1));
    fake.put(Key::InternetSettings, PROXY_SERVER, sz("[::1]:8080"));
    fake.put(Key::InternetSettings, PROXY_OVERRIDE, sz("<local>"));
    let windows = backend(&fake);
    let saved = windows.read().expect("read");
    assert_eq!(saved[PROXY_SERVER].as_deref(), Some("[::1]:8080"));
    windows
        .write(&windows.veil_settings(&veil("127.0.0.1:7890")))
        .expect("on");
    restore_backend(&windows, &saved).expect("restore");
    assert_eq!(
        fake.value(Key::InternetSettings, PROXY_SERVER),
        Some(sz("[::1]:8080"))
    );
    assert!(matches!(
        windows.describe(&windows.read().expect("read")),
        ProxyState::Manual { https: Some(ref h), .. } if h == "[::1]:8080"
    ));
}

#[test]
fn a_value_of_another_type_comes_back_as_that_type() {
    let fake = Arc::new(FakeRegistry::default());
    // Written by some other tool: a string switch and an expandable PAC.
    fake.put(Key::InternetSettings, PROXY_ENABLE, sz("1"));
    fake.put(
        Key::InternetSettings,
        AUTO_CONFIG_URL,
        RegValue::ExpandSz("file://%USERPROFILE%/p.pac".into()),
    );
    // A string without its terminating NUL.
    fake.put(
        Key::InternetSettings,
        PROXY_OVERRIDE,
        RegValue::from_raw(value::REG_SZ, b"<\0l\0>\0".to_vec()),
    );
    let before = fake.all();
    let windows = backend(&fake);
    let saved = windows.read().expect("read");
    windows
        .write(&windows.veil_settings(&veil("127.0.0.1:7890")))
        .expect("on");
    restore_backend(&windows, &saved).expect("restore");
    let mut after = fake.all();
    after.remove(&(Key::Connections, CONNECTION.to_owned()));
    assert_eq!(after, before);
}

/// Each value Veil changes is checked after the write: one the OS keeps
/// (a policy-locked value) is named in the error.
#[test]
fn the_read_back_check_names_every_value_that_did_not_change() {
    let cases = [
        (PROXY_ENABLE, PROXY_ENABLE),
        (PROXY_SERVER, PROXY_SERVER),
        (PROXY_OVERRIDE, PROXY_OVERRIDE),
        (AUTO_CONFIG_URL, AUTO_CONFIG_URL),
        // The blob holds auto-detect, which the user had on.
        (CONNECTION, AUTO_DETECT),
    ];
    for (stuck, named) in cases {
        let fake = pac_user();
        fake.put(Key::InternetSettings, PROXY_OVERRIDE, sz("*.corp"));
        fake.stuck.lock().expect("lock").push(stuck.to_owned());
        let windows = backend(&fake);
        let wanted = windows.veil_settings(&veil("127.0.0.1:7890"));
        windows.write(&wanted).expect("write");
        match verify(&windows, &wanted) {
            Err(SysProxyError::NotTaken { mismatch, .. }) => {
                assert_eq!(mismatch.key, named, "{stuck} stuck: {mismatch}")
            }
            other => panic!("{stuck} stuck: {other:?}"),
        }
    }
}

/// With auto-detect already off, a blob that did not take Veil's server
/// is caught by comparing it with the plain values.
#[test]
fn a_blob_that_disagrees_with_the_plain_values_is_caught() {
    let fake = Arc::new(FakeRegistry::default());
    fake.put(Key::Connections, CONNECTION, blob_value(3, 0x01, "", ""));
    fake.stuck.lock().expect("lock").push(CONNECTION.to_owned());
    let windows = backend(&fake);
    let wanted = windows.veil_settings(&veil("127.0.0.1:7890"));
    windows.write(&wanted).expect("write");
    match verify(&windows, &wanted) {
        Err(SysProxyError::NotTaken { mismatch, .. }) => {
            assert_eq!(mismatch.key, CONNECTION, "{mismatch}");
            assert!(
                mismatch.to_string().contains("127.0.0.1:7890"),
                "{mismatch}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_restore_that_did_not_take_is_caught() {
    let fake = pac_user();
    let windows = backend(&fake);
    let saved = windows.read().expect("read");
    windows
        .write(&windows.veil_settings(&veil("127.0.0.1:7890")))
        .expect("on");
    fake.stuck
        .lock()
        .expect("lock")
        .push(AUTO_CONFIG_URL.to_owned());
    match restore_backend(&windows, &saved) {
        Err(SysProxyError::NotTaken { mismatch, .. }) => assert_eq!(mismatch.key, AUTO_CONFIG_URL),
        other => panic!("{other:?}"),
    }
}

/// WinHTTP is reported when it differs and never written, even when it
/// changed between saving and restoring.
#[test]
fn winhttp_is_reported_and_left_alone() {
    let fake = pac_user();
    *fake.winhttp.lock().expect("lock") = Some(WinHttp::Proxy {
        server: "proxy.corp:8080".into(),
        bypass: Some("<local>".into()),
    });
    let windows = backend(&fake);
    let saved = windows.read().expect("read");
    assert_eq!(
        saved[WINHTTP].as_deref(),
        Some("proxy proxy.corp:8080, bypass <local>")
    );
    windows
        .write(&windows.veil_settings(&veil("127.0.0.1:7890")))
        .expect("on");
    *fake.winhttp.lock().expect("lock") = None;
    let now = windows.read().expect("read");
    assert!(
        now[WINHTTP]
            .as_deref()
            .is_some_and(|w| w.starts_with("direct")),
        "{now:?}"
    );
    restore_backend(&windows, &saved).expect("restore ignores winhttp");
    assert!(fake.all().keys().all(|(_, name)| name != WINHTTP));

    // The same setting as the user's is not worth a line.
    let fake = Arc::new(FakeRegistry::default());
    fake.put(Key::InternetSettings, PROXY_ENABLE, RegValue::Dword(1));
    fake.put(Key::InternetSettings, PROXY_SERVER, sz("proxy.corp:8080"));
    *fake.winhttp.lock().expect("lock") = Some(WinHttp::Proxy {
        server: "proxy.corp:8080".into(),
        bypass: None,
    });
    assert!(!backend(&fake).read().expect("read").contains_key(WINHTTP));
}

#[test]
fn describes_what_the_user_sees() {
    let fake = Arc::new(FakeRegistry::default());
    let windows = backend(&fake);
    let settings = |pairs: &[(&str, &str)]| -> Settings {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Some((*v).to_owned())))
            .collect()
    };
    assert_eq!(
        windows.describe(&settings(&[(PROXY_ENABLE, "0"), (PROXY_SERVER, "a:1")])),
        ProxyState::Off
    );
    assert_eq!(
        windows.describe(&settings(&[
            (PROXY_ENABLE, "1"),
            (PROXY_SERVER, "http=a:1;https=[::1]:2;socks=c:3;ftp=d:4"),
            (PROXY_OVERRIDE, "*.corp;<local>"),
        ])),
        ProxyState::Manual {
            http: Some("a:1".into()),
            https: Some("[::1]:2".into()),
            socks: Some("c:3".into()),
            bypass: vec!["*.corp".into(), "<local>".into()],
        }
    );
    assert_eq!(
        windows.describe(&settings(&[(PROXY_ENABLE, "1"), (AUTO_DETECT, "on")])),
        ProxyState::Auto { pac_url: None }
    );
    assert_eq!(
        windows.describe(&settings(&[(AUTO_DETECT, "off"), (AUTO_CONFIG_URL, PAC)])),
        ProxyState::Auto {
            pac_url: Some(PAC.into())
        }
    );
}

/// The same round trip in the real registry. It changes the account's
/// proxy setting for a moment, so it runs under Wine (whose registry is a
/// throwaway prefix) or when asked with `VEIL_TEST_WINDOWS_REGISTRY=1`; the
/// account's own values are put back at the end, even on failure.
/// `VEIL_TEST_LEAVE_VEIL_ON=1` stops with Veil's values in place, for
/// `wine reg query` to look at.
#[cfg(windows)]
#[test]
fn the_real_registry_takes_veil_and_gives_a_pac_back() {
    if !super::win32::under_wine() && std::env::var_os("VEIL_TEST_WINDOWS_REGISTRY").is_none() {
        eprintln!(
            "skipped: changes this account's proxy setting; runs under Wine or with \
             VEIL_TEST_WINDOWS_REGISTRY=1"
        );
        return;
    }
    let leave_on = std::env::var_os("VEIL_TEST_LEAVE_VEIL_ON").is_some();
    let windows = WindowsProxy::system();

    /// Puts the account's values back when the test ends, however it ends.
    struct PutBack<'a>(&'a WindowsProxy, Settings);
    impl Drop for PutBack<'_> {
        fn drop(&mut self) {
            if let Err(e) = restore_backend(self.0, &self.1) {
                eprintln!("could not put this account's proxy setting back: {e}");
            }
        }
    }
    let original = windows.read().expect("read the account's setting");
    let put_back = PutBack(&windows, original);

    let server = "http=proxy.corp:8080;https=[::1]:8443;socks=socks.corp:1080";
    let user: Settings = [
        (PROXY_ENABLE, Some("0")),
        (PROXY_SERVER, Some(server)),
        (PROXY_OVERRIDE, None),
        (AUTO_CONFIG_URL, Some(PAC)),
        (AUTO_DETECT, Some("on")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.map(str::to_owned)))
    .collect();
    windows.write(&user).expect("write a PAC user's setting");
    verify(&windows, &user).expect("the PAC user's setting reads back");
    let saved = windows.read().expect("read");
    assert_eq!(
        windows.describe(&saved),
        ProxyState::Auto {
            pac_url: Some(PAC.into())
        }
    );

    let wanted = windows.veil_settings(&veil("[::1]:7890"));
    windows.write(&wanted).expect("turn on");
    verify(&windows, &wanted).expect("Veil's setting reads back from the registry");
    let on = windows.read().expect("read");
    assert_eq!(on[PROXY_SERVER].as_deref(), Some("[::1]:7890"));
    assert_eq!(on[AUTO_CONFIG_URL], None);
    assert_eq!(on[AUTO_DETECT].as_deref(), Some("off"));
    if leave_on {
        std::mem::forget(put_back);
        eprintln!("left Veil's setting in place (VEIL_TEST_LEAVE_VEIL_ON)");
        return;
    }

    restore_backend(&windows, &saved).expect("restore");
    let back = windows.read().expect("read");
    assert_eq!(windows.mismatch(&saved, &back), None);
    assert_eq!(back[PROXY_SERVER].as_deref(), Some(server));
    assert_eq!(back[AUTO_CONFIG_URL].as_deref(), Some(PAC));
    assert_eq!(
        back[PROXY_OVERRIDE], None,
        "a value that was not there is deleted"
    );
    assert_eq!(back[AUTO_DETECT].as_deref(), Some("on"));
    drop(put_back);
}
