//! The mixed listener's first byte and the SOCKS5 handshake (RFC 1928,
//! RFC 1929), through a running engine.
//!
//! Input: one selector byte (odd: the engine that asks for credentials),
//! then what the client sends. Invariants: a SOCKS4 client gets exactly the
//! SOCKS4 refusal; a SOCKS5 client gets only a method it offered, passes
//! the password check only with the right user name and password, and never
//! gets a success reply (the only upstream never answers); anything else is
//! answered as HTTP.

#![no_main]

use libfuzzer_sys::fuzz_target;
use veil_fuzz::{PASSWORD, USER, check_http_response, exchange, harness};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    let h = harness();
    let with_auth = selector & 1 == 1;
    let engine = if with_auth { &h.auth } else { &h.open };
    let out = exchange(h, engine, input);
    match input.first() {
        None => assert!(out.is_empty(), "an answer to nothing: {out:?}"),
        Some(4) => assert_eq!(out, [0, 0x5b, 0, 0, 0, 0, 0, 0], "SOCKS4 refusal"),
        Some(5) => check_socks5(input, &out, with_auth),
        Some(_) => {
            check_http_response(&out);
        }
    }
});

fn check_socks5(input: &[u8], out: &[u8], with_auth: bool) {
    if out.is_empty() {
        return;
    }
    assert!(out.len() >= 2, "a short method reply: {out:?}");
    assert_eq!(out[0], 5, "method reply version");
    let offered: &[u8] = match input.get(1) {
        Some(&n) => input.get(2..2 + usize::from(n)).unwrap_or(&[]),
        None => &[],
    };
    let chosen = out[1];
    match chosen {
        0xff => {
            assert_eq!(out.len(), 2, "more after refusing every method: {out:?}");
            return;
        }
        0 => assert!(
            !with_auth,
            "no authentication chosen although credentials are set"
        ),
        2 => assert!(with_auth, "a password asked for although none is set"),
        other => panic!("method {other:#x} chosen"),
    }
    assert!(
        offered.contains(&chosen),
        "method {chosen} chosen, not offered: {offered:?}"
    );
    let mut rest = &out[2..];
    if chosen == 2 {
        if rest.is_empty() {
            return;
        }
        assert!(rest.len() >= 2, "a short password reply: {out:?}");
        let accepted = rest[1] == 0;
        if accepted {
            let sent = &input[2 + offered.len()..];
            let ulen = usize::from(sent[1]);
            let user = &sent[2..2 + ulen];
            let plen = usize::from(sent[2 + ulen]);
            let pass = &sent[3 + ulen..3 + ulen + plen];
            assert_eq!(user, USER.as_bytes(), "accepted a wrong user name");
            assert_eq!(pass, PASSWORD.as_bytes(), "accepted a wrong password");
        } else {
            assert_eq!(rest.len(), 2, "more after refusing the password: {out:?}");
            return;
        }
        rest = &rest[2..];
    }
    if rest.is_empty() {
        return;
    }
    assert!(rest.len() >= 2, "a short command reply: {out:?}");
    assert_eq!(rest[0], 5, "command reply version: {out:?}");
    assert_ne!(
        rest[1], 0,
        "a SOCKS5 connect succeeded although the only upstream never answers"
    );
}
