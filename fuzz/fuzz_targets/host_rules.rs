//! Host patterns (bypass entries and rule keys) and routing decisions.
//!
//! Input: lines. A line starting with `b` is a bypass entry, `d`/`p`/`k` a
//! rule (direct, proxy, block), `t` a target (`host:port`); the rest of the
//! line is the text. Invariants: a pattern that parses prints as text that
//! parses to the same pattern; a target prints as an authority that parses to
//! the same target; every pattern covers the host it names, so a rule alone
//! decides for it and a bypass entry alone sends it direct; the routing
//! compiles exactly when every pattern parses, and decides for every target.

#![no_main]

use std::net::SocketAddr;

use libfuzzer_sys::fuzz_target;
use veil_engine::{Action, HostPattern, Mode, Routing, Target, canonical_ip};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut bypass = Vec::new();
    let mut rules = Vec::new();
    let mut targets = Vec::new();
    let mut all_parse = true;
    for line in text.lines().take(64) {
        let Some(kind) = line.chars().next() else {
            continue;
        };
        let rest = &line[kind.len_utf8()..];
        let action = match kind {
            'b' => None,
            'd' => Some(Action::Direct),
            'p' => Some(Action::Proxy),
            'k' => Some(Action::Block),
            't' => {
                if let Ok(t) = Target::parse_authority(rest) {
                    check_target(&t);
                    targets.push(t);
                }
                continue;
            }
            _ => continue,
        };
        match rest.parse::<HostPattern>() {
            Ok(pattern) => check_pattern(rest, &pattern),
            Err(_) => all_parse = false,
        }
        match action {
            Some(a) => rules.push((rest.to_owned(), a)),
            None => bypass.push(rest.to_owned()),
        }
    }
    let routing = Routing::new(&bypass, &rules);
    assert_eq!(
        routing.is_ok(),
        all_parse,
        "routing compiles iff every pattern parses"
    );
    if let Ok(routing) = routing {
        for target in &targets {
            for mode in [Mode::Direct, Mode::Proxy] {
                let action = routing.decide(mode, target);
                if mode == Mode::Direct {
                    assert_ne!(action, Action::Proxy, "proxy chosen in direct mode");
                }
            }
            let _ = routing.allows_internal(target);
        }
    }
});

fn check_target(t: &Target) {
    let shown = t.to_string();
    let again = Target::parse_authority(&shown)
        .unwrap_or_else(|e| panic!("{t:?} printed as {shown:?}, which fails: {e}"));
    assert_eq!(*t, again, "target printed as {shown:?}");
}

fn check_pattern(text: &str, pattern: &HostPattern) {
    let shown = pattern.to_string();
    let again: HostPattern = shown
        .parse()
        .unwrap_or_else(|e| panic!("{text:?} printed as {shown:?}, which fails: {e}"));
    assert_eq!(*pattern, again, "{text:?} printed as {shown:?}");
    // The host the pattern names, as a client would ask for it.
    let target = match pattern {
        HostPattern::Exact(h) => Target::new(h, 443)
            .unwrap_or_else(|e| panic!("pattern {text:?} names {h:?}, not a valid target: {e}")),
        // A name under the suffix: the suffix alone may spell an address
        // (`*.10.0.0.1`), which is an IP target, not a name.
        HostPattern::Suffix(h) => Target::new(&format!("a.{h}"), 443)
            .or_else(|_| Target::new(h, 443))
            .unwrap_or_else(|e| panic!("pattern {text:?} names {h:?}, not a valid target: {e}")),
        // An address of the net that targets spell the same way: not the
        // unspecified address (a target spells it as loopback) nor an
        // IPv4-mapped one (a target spells it as IPv4), when there is one.
        HostPattern::Net(net) => {
            let Some(ip) = [net.broadcast(), net.network()]
                .into_iter()
                .find(|ip| net.contains(&canonical_ip(*ip)))
            else {
                return;
            };
            Target::from_addr(SocketAddr::new(ip, 443)).expect("an address with a port is a target")
        }
    };
    assert!(
        pattern.matches(&target),
        "{text:?} does not cover {target}, the host it names"
    );
    let rule = Routing::new(&[], &[(text.to_owned(), Action::Block)]).expect("the pattern parses");
    assert_eq!(
        rule.decide(Mode::Proxy, &target),
        Action::Block,
        "a block rule {text:?} lets {target} through"
    );
    let bypass = Routing::new(&[text.to_owned()], &[]).expect("the pattern parses");
    assert_eq!(
        bypass.decide(Mode::Proxy, &target),
        Action::Direct,
        "bypass {text:?} proxies {target}"
    );
    assert!(bypass.allows_internal(&target));
}
