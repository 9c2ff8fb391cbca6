use anyhow::bail;
use veil_system::Paths;
use veil_system::control::{self, Reply, Request};
use veil_system::units::bytes;

pub async fn status(json: bool) -> anyhow::Result<()> {
    let paths = Paths::discover()?;
    let reply = control::request(&paths.control_socket(), &Request::Status).await?;
    let report = match reply {
        Reply::Status { status, .. } => status,
        Reply::Error { error, .. } => bail!("the engine answered: {error}"),
        other => bail!("unexpected answer from the engine: {other:?}"),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let e = &report.engine;
    println!(
        "Veil {} (pid {}), up {}",
        report.version,
        report.pid,
        duration(e.uptime_s)
    );
    println!("listening on {}, mode {}", e.listen, e.mode);
    match (&report.system_proxy_drift, report.system_proxy) {
        (Some(d), _) => println!(
            "system proxy: CHANGED under Veil: {} ({}: {}); now {}. `veil sysproxy on` re-applies",
            d.headline(),
            d.backend,
            d.detail,
            d.now
        ),
        (None, true) => println!("system proxy: on, pointing at Veil"),
        (None, false) => println!("system proxy: off (Veil has not changed it)"),
    }
    for alert in &report.alerts {
        println!("ATTENTION: {}: {}", alert.what, alert.why);
    }
    println!(
        "connections: {} open, {} total; HTTP requests: {}; refused: {}",
        e.connections_open, e.connections_total, e.requests_total, e.rejected_total
    );
    println!(
        "traffic: {} up, {} down",
        bytes(e.bytes_up),
        bytes(e.bytes_down)
    );
    println!(
        "DNS cache: {} hits, {} misses, {} entries",
        e.dns.hits, e.dns.misses, e.dns.entries
    );
    let c = &e.cache;
    println!(
        "HTTP cache (plain HTTP only): {}, {} hits, {} misses, {} revalidated, {} objects",
        if c.enabled { "on" } else { "off" },
        c.hits_memory + c.hits_disk,
        c.misses,
        c.revalidated_not_modified + c.revalidated_changed,
        c.memory_objects.max(c.disk_objects)
    );
    if !e.upstreams.is_empty() {
        println!("upstreams ({}):", e.strategy);
        for u in &e.upstreams {
            let health = if u.healthy { "up" } else { "DOWN" };
            let latency = u
                .latency_ms
                .map(|ms| format!("{ms} ms"))
                .unwrap_or_else(|| "-".into());
            println!(
                "  {:<12} {:<4} {:<40} {} open, {} total, {} up, {} down, latency {latency}",
                u.name,
                health,
                u.url,
                u.open_connections,
                u.total_connections,
                bytes(u.bytes_up),
                bytes(u.bytes_down)
            );
            if let (false, Some(err)) = (u.healthy, &u.last_error) {
                println!("               {err}");
            }
        }
    }
    if !e.hosts.is_empty() {
        println!("busiest hosts:");
        for h in e.hosts.iter().take(5) {
            println!(
                "  {:<40} {} up, {} down",
                h.host,
                bytes(h.bytes_up),
                bytes(h.bytes_down)
            );
        }
    }
    if !e.apps.is_empty() {
        println!("busiest apps:");
        for a in e.apps.iter().take(5) {
            println!(
                "  {:<40} {} up, {} down, {} connections",
                a.app,
                bytes(a.bytes_up),
                bytes(a.bytes_down),
                a.connections
            );
        }
    }
    Ok(())
}

fn duration(s: u64) -> String {
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        _ => format!("{}h {}m", s / 3600, (s % 3600) / 60),
    }
}
