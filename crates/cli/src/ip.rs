//! `veil ip`: the public IP seen directly and through the running engine.

use std::time::Duration;

use anyhow::bail;
use veil_system::control::{self, ControlError, Reply, Request};
use veil_system::ipcheck::{self, IpCheckSettings, IpProbe, IpReport};
use veil_system::{Config, Paths};

pub async fn ip(json: bool) -> anyhow::Result<()> {
    let paths = Paths::discover()?;
    // The engine checks with its own settings; these bound the wait, and
    // are what a check without an engine uses.
    let settings = match Config::load(&paths.config_file) {
        Ok(config) => IpCheckSettings::from_config(&config.ipcheck),
        Err(e) => {
            eprintln!("veil: {e}; using the default IP check endpoints");
            IpCheckSettings::default()
        }
    };
    let bound = (settings.worst_case() + Duration::from_secs(10)).max(Duration::from_secs(30));
    let report = match control::request_within(&paths.control_socket(), &Request::Ip, bound).await {
        Ok(Reply::Ip { ip, .. }) => *ip,
        Ok(Reply::Error { error, .. }) => bail!("the engine answered: {error}"),
        Ok(other) => bail!("unexpected answer from the engine: {other:?}"),
        Err(ControlError::NotRunning { .. }) => ipcheck::check(&settings, None).await,
        Err(e) => return Err(e.into()),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(())
}

fn print_report(report: &IpReport) {
    if report.direct_off {
        println!("direct:       not checked (the direct check is off: [ipcheck] direct = false)");
    } else {
        println!("direct:       {}", probe_line(&report.direct));
    }
    println!("through Veil: {}", probe_line(&report.via_proxy));
    println!("verdict:      {}: {}", report.verdict, report.reason);
    for (side, probe) in [
        ("direct", &report.direct),
        ("through Veil", &report.via_proxy),
    ] {
        for f in &probe.failures {
            println!("  {side}: {} failed: {}", f.endpoint, f.error);
        }
    }
}

fn probe_line(probe: &IpProbe) -> String {
    match (&probe.ip, &probe.endpoint) {
        (Some(ip), Some(endpoint)) => format!("{ip}  (from {endpoint}, {} ms)", probe.elapsed_ms),
        (Some(ip), None) => ip.clone(),
        _ if probe.failures.is_empty() => "not checked".into(),
        _ => "no answer".into(),
    }
}
