//! `veil leaks [--json]`: the leak checks, from this terminal.
//!
//! They run here rather than in the engine, so that the proxy variables
//! checked are this shell's; the running engine gives its counters (apps
//! that resolved names themselves, its own lookups for upstream traffic)
//! and the last exit address it saw. With no engine running, the checks
//! that need it say "unknown".

use std::time::Instant;

use anyhow::bail;
use veil_system::control::{self, ControlError, Reply, Request};
use veil_system::leaks::{self, LeakInputs, LeakReport, Verdict};
use veil_system::{Config, Paths, coverage};

pub async fn leaks(json: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    let paths = Paths::discover()?;
    let (engine, exit_ip) = match control::request(&paths.control_socket(), &Request::Status).await
    {
        Ok(Reply::Status { status, .. }) => {
            let status = *status;
            (Some(status.engine), status.exit_ip)
        }
        Ok(Reply::Error { error, .. }) => bail!("the engine answered: {error}"),
        Ok(other) => bail!("unexpected answer from the engine: {other:?}"),
        Err(ControlError::NotRunning { .. }) => (None, None),
        Err(e) => return Err(e.into()),
    };
    let listen = match &engine {
        Some(s) => s.listen,
        None if paths.config_file.exists() => Config::load(&paths.config_file)?.proxy.listen,
        None => Config::default().proxy.listen,
    };
    let mut report = tokio::task::spawn_blocking(move || {
        let coverage = coverage::scan(listen).ok();
        leaks::run(&LeakInputs::system(engine, coverage, exit_ip))
    })
    .await?;
    // The whole command, engine round trip and scan included.
    report.took_ms = started.elapsed().as_millis() as u64;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print(&report);
    }
    Ok(())
}

fn mark(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Warn => "WARN",
        Verdict::Fail => "FAIL",
        Verdict::Unknown => " ?? ",
    }
}

fn print(r: &LeakReport) {
    println!("Leak checks: {} ({} ms)", r.summary(), r.took_ms);
    for c in &r.checks {
        println!();
        println!("[{}] {}", mark(c.verdict), c.title);
        println!("  found:  {}", c.found);
        for item in &c.items {
            println!(
                "    [{}] {}: {}",
                mark(item.verdict),
                item.subject,
                item.detail
            );
        }
        if c.verdict != Verdict::Pass {
            println!("  why:    {}", c.why);
        }
        if !c.todo.is_empty() {
            println!("  to do:  {}", c.todo);
        }
        println!("  looked: {}", c.looked_at);
    }
}
