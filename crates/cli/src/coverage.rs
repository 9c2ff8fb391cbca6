//! `veil coverage [--json]`: which apps go through Veil, which bypass it,
//! which use UDP, and what a full-system VPN would capture instead.
//!
//! The running engine scans (it knows its listener, and is left out of the
//! list itself); with no engine running, the scan runs here against the
//! configured listener, and nothing can be covered.

use anyhow::bail;
use veil_system::control::{self, ControlError, Reply, Request};
use veil_system::coverage::{self, CoverageReport};
use veil_system::{Config, Paths};

pub async fn coverage(json: bool) -> anyhow::Result<()> {
    let paths = Paths::discover()?;
    let (report, running) =
        match control::request(&paths.control_socket(), &Request::Coverage).await {
            Ok(Reply::Coverage { coverage, .. }) => (*coverage, true),
            Ok(Reply::Error { error, .. }) => bail!("the engine answered: {error}"),
            Ok(other) => bail!("unexpected answer from the engine: {other:?}"),
            Err(ControlError::NotRunning { .. }) => {
                let listen = if paths.config_file.exists() {
                    Config::load(&paths.config_file)?.proxy.listen
                } else {
                    Config::default().proxy.listen
                };
                let report = tokio::task::spawn_blocking(move || coverage::scan(listen)).await??;
                (report, false)
            }
            Err(e) => return Err(e.into()),
        };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print(&report, running);
    }
    Ok(())
}

fn print(r: &CoverageReport, running: bool) {
    if !running {
        println!(
            "No Veil engine is running, so no app is covered (scanned against {}).",
            r.listen
        );
    }
    println!("{}", r.summary());
    println!(
        "{} apps with network sockets, {} local only; scanned in {} ms.",
        r.totals.apps, r.totals.local_only, r.scan_ms
    );
    if r.apps.is_empty() {
        return;
    }
    println!();
    println!(
        "{:<24} {:<13} {:>5} {:>6} {:>4} {:>6}  {:<4}  reaches directly",
        "app", "class", "veil", "direct", "udp", "local", "vpn"
    );
    for a in &r.apps {
        println!(
            "{:<24} {:<13} {:>5} {:>6} {:>4} {:>6}  {:<4}  {}",
            truncate(&a.name, 24),
            a.class.label(),
            a.through_veil,
            a.bypassing,
            a.udp,
            a.local_only,
            if a.vpn_captures { "yes" } else { "no" },
            a.remotes.join(" ")
        );
        if let Some(k) = &a.known {
            if a.vpn_captures && a.class != coverage::CoverageClass::ThroughVeil {
                println!("    {}: {}", k.family, k.why);
                println!("    remedy: {}", k.remedy);
            } else {
                println!("    {}", k.family);
            }
        }
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}
