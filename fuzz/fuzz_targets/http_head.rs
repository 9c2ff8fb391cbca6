//! An HTTP/1.1 request head (and whatever follows) as Veil's inbound sees
//! it: sent to a running engine over TCP, parsed by hyper, answered by the
//! forward and `CONNECT` handlers.
//!
//! Input: one selector byte (odd: the engine that asks for credentials),
//! then what the client sends. Inputs whose first byte would be sniffed as
//! SOCKS are left to `inbound_socks`. Invariants: the engine closes after
//! the client does (no hang), and what it writes is an HTTP response that
//! does not succeed (the only upstream never answers anything).

#![no_main]

use libfuzzer_sys::fuzz_target;
use veil_fuzz::{check_http_response, exchange, harness};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    if matches!(input.first(), None | Some(4 | 5)) {
        return;
    }
    let h = harness();
    let engine = if selector & 1 == 1 { &h.auth } else { &h.open };
    let out = exchange(h, engine, input);
    if let Some(status) = check_http_response(&out)
        && selector & 1 == 1
        && !contains(input, b"fuzzuser")
    {
        // Without the right credentials nothing gets past the login.
        assert!(
            matches!(
                status,
                400 | 407 | 408 | 413 | 414 | 417 | 429 | 431 | 501 | 505
            ),
            "{status} without credentials"
        );
    }
});

/// Whether `needle` occurs in `haystack`, in any case, or base64 of it might:
/// the Basic credentials are base64, so any `Proxy-Authorization` counts.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    let lower = haystack.to_ascii_lowercase();
    lower.windows(needle.len()).any(|w| w == needle)
        || lower.windows(19).any(|w| w == b"proxy-authorization")
}
