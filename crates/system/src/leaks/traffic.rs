//! The checks that read Veil's own counters and the coverage scan: apps that
//! resolved names themselves, Veil's lookups for upstream traffic, and UDP.

use veil_engine::stats::UNKNOWN_APP;

use super::{LeakCheck, LeakCheckId, LeakInputs, LeakItem, LeakRoute, Verdict, join_names};

const NO_ENGINE: &str = "No Veil engine is running, so there are no counters to read. Start Veil \
                         (veil run, or the app) and use your apps for a while, then check again.";

/// What to tell the user of `app` so that it passes names to Veil.
pub fn remote_dns_hint(app: &str) -> &'static str {
    let app = app.to_ascii_lowercase();
    let app = app.trim_end_matches(".exe");
    match app {
        "curl" => {
            "use --socks5-hostname (or a socks5h:// proxy URL), or -x http://… so curl sends the name"
        }
        "firefox" | "firefox-esr" | "firefox-bin" | "librewolf" => {
            "turn on 'Proxy DNS when using SOCKS v5' in Firefox's connection settings"
        }
        "wget" => "use Veil as an HTTP proxy (https_proxy=http://…): wget then sends names",
        "git" | "git-remote-https" => {
            "use socks5h:// (not socks5://) in http.proxy, or an http:// proxy URL"
        }
        "python" | "python3" | "pip" | "pip3" => {
            "use socks5h:// (not socks5://) in the proxy URL, or an http:// proxy URL"
        }
        "chrome" | "chromium" | "chromium-browser" | "google-chrome" | "brave" | "msedge" => {
            "start it with --proxy-server=socks5://… (Chromium sends names over SOCKS5) or use the system proxy"
        }
        _ => "set it to send host names: an http:// proxy, or socks5h:// / 'remote DNS' for SOCKS5",
    }
}

/// Apps that handed Veil an IP address: they asked a resolver themselves.
pub fn resolving_apps(inputs: &LeakInputs) -> LeakCheck {
    let mut check = LeakCheck {
        id: LeakCheckId::ResolvingApps,
        title: "Apps that look names up themselves".into(),
        verdict: Verdict::Unknown,
        looked_at: "The targets apps gave Veil since it started: a name (the upstream or Veil \
                    resolves it) or an IP address (CONNECT 1.2.3.4:443, SOCKS5 with an \
                    IPv4/IPv6 address, plain HTTP to an address)."
            .into(),
        found: String::new(),
        why: "An app that sends an address has already asked a resolver for the name, usually \
              your network's: that resolver saw the site's name even though the traffic went \
              through Veil. That is a DNS leak. (An address typed by hand counts too.)"
            .into(),
        todo: String::new(),
        items: Vec::new(),
    };
    let Some(stats) = &inputs.engine else {
        check.found = NO_ENGINE.into();
        return check;
    };
    let mut apps: Vec<_> = stats
        .apps
        .iter()
        .filter(|a| a.resolved_locally > 0)
        .collect();
    apps.sort_by_key(|a| std::cmp::Reverse(a.resolved_locally));
    if apps.is_empty() {
        check.verdict = Verdict::Pass;
        check.found = format!(
            "Every one of the {} apps that used Veil sent host names, not addresses.",
            stats.apps.len()
        );
        return check;
    }
    check.verdict = Verdict::Warn;
    let names: Vec<String> = apps.iter().map(|a| a.app.clone()).collect();
    check.found = format!(
        "{} looked names up {} before using Veil.",
        join_names(&names, 3),
        if names.len() == 1 {
            "itself"
        } else {
            "themselves"
        }
    );
    for a in &apps {
        let requests = if a.resolved_locally == 1 {
            "1 request".to_owned()
        } else {
            format!("{} requests", a.resolved_locally)
        };
        let hint = if a.app == UNKNOWN_APP {
            "Veil could not tell which program this was; the Traffic page lists its connections"
        } else {
            remote_dns_hint(&a.app)
        };
        check.items.push(LeakItem::new(
            a.app.clone(),
            format!(
                "{requests} to an address ({}): {hint}.",
                a.resolved_locally_targets.join(", ")
            ),
            Verdict::Warn,
        ));
    }
    check.todo = match apps.as_slice() {
        [one] => format!(
            "{} looked these names up itself before using Veil: {}.",
            one.app,
            remote_dns_hint(&one.app)
        ),
        _ => "Set each app listed to send host names: an http:// proxy, or SOCKS5 with remote \
              DNS (socks5h://)."
            .into(),
    };
    check
}

/// Local lookups made for traffic that went to an upstream: must be 0.
pub fn veil_lookups(inputs: &LeakInputs) -> LeakCheck {
    let mut check = LeakCheck {
        id: LeakCheckId::VeilLookups,
        title: "Veil's own lookups for upstream traffic".into(),
        verdict: Verdict::Unknown,
        looked_at: "Veil's counter of local DNS lookups made while opening connections routed to \
                    an upstream (the upstream's own address is not counted)."
            .into(),
        found: String::new(),
        why: "Through an upstream, Veil passes the host name on (CONNECT host, SOCKS5 with a \
              name), so the upstream resolves it. A lookup here would show your network's \
              resolver the name: a DNS leak by Veil itself."
            .into(),
        todo: String::new(),
        items: Vec::new(),
    };
    let Some(stats) = &inputs.engine else {
        check.found = NO_ENGINE.into();
        return check;
    };
    let proxied: u64 = stats.upstreams.iter().map(|u| u.total_connections).sum();
    let lookups = stats.dns.proxied_lookups;
    let direct_lookups = stats.dns.misses;
    if lookups == 0 {
        check.verdict = Verdict::Pass;
        check.found = format!(
            "0 local lookups for {proxied} {} through upstreams.",
            if proxied == 1 {
                "connection"
            } else {
                "connections"
            }
        );
    } else {
        check.verdict = Verdict::Fail;
        check.found = format!(
            "{lookups} local {} for traffic routed to an upstream.",
            if lookups == 1 { "lookup" } else { "lookups" }
        );
        check.todo = "This is a defect in Veil: please report it with Veil's log (it names the \
                      host looked up)."
            .into();
    }
    if inputs.route() == LeakRoute::Direct {
        check.found.push_str(&format!(
            " Veil is in direct mode: it resolves names on this computer ({direct_lookups} \
             lookups so far), as any direct connection must."
        ));
    }
    check
}

/// UDP and QUIC sockets per app, from the coverage scan.
pub fn udp(inputs: &LeakInputs) -> LeakCheck {
    let mut check = LeakCheck {
        id: LeakCheckId::Udp,
        title: "UDP and QUIC".into(),
        verdict: Verdict::Unknown,
        looked_at: "This computer's socket table: UDP sockets bound or connected to anything but \
                    loopback, per app."
            .into(),
        found: String::new(),
        why: "HTTP and SOCKS5 proxies like Veil carry TCP only. QUIC (HTTP/3), DNS, calls and \
              games use UDP and leave from this computer's own address. A proxy cannot carry \
              these; a VPN would."
            .into(),
        todo: String::new(),
        items: Vec::new(),
    };
    let Some(coverage) = &inputs.coverage else {
        check.found = "The socket table could not be read.".into();
        return check;
    };
    let apps: Vec<_> = coverage.apps.iter().filter(|a| a.udp > 0).collect();
    if apps.is_empty() {
        check.verdict = Verdict::Pass;
        check.found = "No app has a UDP socket off this computer right now.".into();
        return check;
    }
    check.verdict = Verdict::Warn;
    let names: Vec<String> = apps.iter().map(|a| a.name.clone()).collect();
    check.found = format!(
        "{} {} UDP sockets that Veil cannot carry.",
        join_names(&names, 3),
        if names.len() == 1 { "has" } else { "have" }
    );
    for a in apps {
        let remotes = if a.remotes.is_empty() {
            String::new()
        } else {
            format!(" (reaches {})", a.remotes.join(", "))
        };
        check.items.push(LeakItem::new(
            a.name.clone(),
            format!(
                "{} UDP {}{remotes}.",
                a.udp,
                if a.udp == 1 { "socket" } else { "sockets" }
            ),
            Verdict::Warn,
        ));
    }
    check.todo = "Turn off QUIC (HTTP/3) in browsers that should go through Veil (Chrome: \
                  chrome://flags 'Experimental QUIC protocol'; Firefox: network.http.http3.enable \
                  = false) so they fall back to TCP; for everything else, use a VPN."
        .into();
    check
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leaks::tests_support::{engine, inputs};
    use veil_engine::AppStats;

    fn app(name: &str, resolved: u64, targets: &[&str]) -> AppStats {
        AppStats {
            app: name.into(),
            bytes_up: 0,
            bytes_down: 0,
            connections: 1,
            resolved_locally: resolved,
            resolved_locally_targets: targets.iter().map(|t| t.to_string()).collect(),
        }
    }

    #[test]
    fn apps_that_sent_addresses_are_listed_with_what_to_do() {
        let mut stats = engine(veil_engine::Mode::Direct);
        stats.apps = vec![app("firefox", 0, &[]), app("curl", 2, &["127.0.0.1:8080"])];
        let mut i = inputs();
        i.engine = Some(stats);
        let check = resolving_apps(&i);
        assert_eq!(check.verdict, Verdict::Warn);
        assert_eq!(check.items.len(), 1, "{check:?}");
        assert_eq!(check.items[0].subject, "curl");
        assert!(
            check.items[0]
                .detail
                .starts_with("2 requests to an address (127.0.0.1:8080)")
        );
        assert!(check.todo.contains("--socks5-hostname"), "{}", check.todo);

        if let Some(s) = i.engine.as_mut() {
            s.apps.truncate(1);
        }
        assert_eq!(resolving_apps(&i).verdict, Verdict::Pass);
        i.engine = None;
        assert_eq!(resolving_apps(&i).verdict, Verdict::Unknown);
    }

    #[test]
    fn firefox_is_told_about_remote_dns() {
        assert!(remote_dns_hint("firefox").contains("Proxy DNS when using SOCKS v5"));
        assert!(remote_dns_hint("curl.exe").contains("--socks5-hostname"));
    }

    #[test]
    fn a_lookup_for_upstream_traffic_fails_the_check() {
        let mut stats = engine(veil_engine::Mode::Proxy);
        let mut i = inputs();
        i.engine = Some(stats.clone());
        let check = veil_lookups(&i);
        assert_eq!(check.verdict, Verdict::Pass);
        assert!(
            check.found.starts_with("0 local lookups for 0 connections"),
            "{}",
            check.found
        );
        stats.dns.proxied_lookups = 1;
        i.engine = Some(stats);
        assert_eq!(veil_lookups(&i).verdict, Verdict::Fail);
    }

    #[test]
    fn direct_mode_says_names_are_resolved_here() {
        let mut i = inputs();
        i.engine = Some(engine(veil_engine::Mode::Direct));
        let check = veil_lookups(&i);
        assert!(check.found.contains("direct mode"), "{}", check.found);
    }
}
