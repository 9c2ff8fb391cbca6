use std::time::Duration;

use anyhow::{Context, bail};
use veil_engine::{ProxyUrl, UpstreamSpec};
use veil_system::{Config, Paths};

/// The environment variable `--upstream` URLs with a user take their password from.
pub const PASSWORD_VAR: &str = "VEIL_UPSTREAM_PASSWORD";

/// Upstreams given as `--upstream URL` flags, named `flag-1`, `flag-2`, ...
pub fn specs_from_flags(urls: &[String]) -> anyhow::Result<Vec<UpstreamSpec>> {
    urls.iter()
        .enumerate()
        .map(|(i, url)| spec_from_url(&format!("flag-{}", i + 1), url))
        .collect()
}

fn spec_from_url(name: &str, url: &str) -> anyhow::Result<UpstreamSpec> {
    let url: ProxyUrl = url.parse()?;
    let mut spec = UpstreamSpec::new(name, url);
    if let Some(user) = &spec.url.username {
        let password = std::env::var(PASSWORD_VAR).ok().filter(|p| !p.is_empty());
        if password.is_none() {
            bail!(
                "{} names the user {user:?}: set {PASSWORD_VAR} to its password \
                 (passwords are never taken on the command line)",
                spec.url
            );
        }
        spec.password = password;
    }
    Ok(spec)
}

/// `veil upstream test URL`: the latency test, without a running engine.
pub async fn test(url: &str, check_url: Option<String>) -> anyhow::Result<()> {
    let paths = Paths::discover()?;
    let config = Config::load(&paths.config_file)?;
    let check_url = check_url.or(config.upstreams.health_check.url.clone());
    let spec = spec_from_url(url, url)?;
    let shown = spec.url.to_string();
    let what = match &check_url {
        Some(u) => format!("connect and fetch {u}"),
        None => "connect".to_owned(),
    };
    let latency = veil_engine::upstream::probe(
        spec,
        check_url.as_deref(),
        &config.dns.servers,
        Duration::from_secs(10),
    )
    .await
    .map_err(anyhow::Error::msg)
    .with_context(|| format!("testing {shown}"))?;
    println!("{shown}: {} ms ({what})", latency.as_millis());
    Ok(())
}

/// `veil upstream test --all`: every configured upstream, with its stored
/// password, a few at a time; printed fastest first, then the failures with
/// their reasons. Fails when any upstream failed.
pub async fn test_all(check_url: Option<String>) -> anyhow::Result<()> {
    let paths = Paths::discover()?;
    let config = Config::load(&paths.config_file)?;
    let engine = config.engine_config()?;
    if engine.upstreams.is_empty() {
        bail!("no upstreams configured; add one with `veil upstream add NAME URL`");
    }
    let results = veil_system::upstream_test::all(&engine, check_url.as_deref()).await;
    let check_url = check_url.or(engine.health.check_url.clone());
    let failed = results.iter().filter(|t| t.result.is_err()).count();
    for tested in &results {
        let (name, url) = (&tested.name, &tested.url);
        match &tested.result {
            Ok(latency) => println!("{name:<24} {:>6} ms  {url}", latency.as_millis()),
            Err(reason) => println!("{name:<24} {:>9}  {url}: {reason}", "failed"),
        }
    }
    match &check_url {
        Some(u) => println!("each connected and fetched {u}"),
        None => println!("each was connected to (no health-check URL configured)"),
    }
    if failed > 0 {
        bail!("{failed} of {} upstreams failed", results.len());
    }
    Ok(())
}
