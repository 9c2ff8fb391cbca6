//! "Test all upstreams", shared by `veil upstream test --all`, the window's
//! Upstreams page and the tray: every configured upstream, with its stored
//! password, a few at a time.

use std::time::Duration;

use futures_util::StreamExt as _;
use veil_engine::EngineConfig;

/// How many upstreams are measured at once: enough to finish a long list
/// quickly, few enough not to look like a scan.
pub const AT_ONCE: usize = 4;

/// One upstream's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tested {
    pub name: String,
    pub url: String,
    /// The time to connect (and fetch the check URL), or why it failed.
    pub result: Result<Duration, String>,
}

/// Tests every upstream of `engine`, fetching `check_url` through each when
/// given (else the configured health-check URL, else only connecting).
/// Sorted fastest first, then the failures by name.
pub async fn all(engine: &EngineConfig, check_url: Option<&str>) -> Vec<Tested> {
    let check_url = check_url.or(engine.health.check_url.as_deref());
    let timeout = engine.limits.connect_timeout.max(Duration::from_secs(5));
    let dns = &engine.dns_servers;
    let mut results: Vec<Tested> =
        futures_util::stream::iter(engine.upstreams.iter().cloned().map(|spec| async move {
            let name = spec.name.clone();
            let url = spec.url.to_string();
            let result = veil_engine::upstream::probe(spec, check_url, dns, timeout).await;
            Tested { name, url, result }
        }))
        .buffer_unordered(AT_ONCE)
        .collect()
        .await;
    results.sort_by(|a, b| {
        (a.result.is_err(), a.result.as_ref().ok(), &a.name).cmp(&(
            b.result.is_err(),
            b.result.as_ref().ok(),
            &b.name,
        ))
    });
    results
}
