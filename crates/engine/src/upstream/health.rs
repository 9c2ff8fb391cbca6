//! Active health checks and the latency test.
//!
//! A check opens a connection to the upstream (TCP, and TLS for `https://`)
//! and, when a check URL is configured, fetches it through the upstream: in
//! absolute form from an HTTP proxy, through a tunnel from a SOCKS5 proxy.
//! The time it takes is the upstream's latency.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::dial::{Dialer, UpstreamError, exchange};
use super::pool::Pool;
use super::{ProxyKind, UpstreamSpec};
use crate::Target;
use crate::dns::DnsCache;

/// Measures one upstream now: connect, and fetch `check_url` through it when
/// given. Returns the time taken.
pub(crate) async fn measure(
    dialer: &Dialer,
    dns: &DnsCache,
    check_url: Option<&str>,
    timeout: Duration,
) -> Result<Duration, UpstreamError> {
    let name = dialer.spec().name.clone();
    let started = Instant::now();
    let work = async {
        match check_url {
            None => dialer.open(dns).await.map(drop),
            Some(url) => fetch_through(dialer, dns, url, timeout).await,
        }
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(Ok(())) => Ok(started.elapsed()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(UpstreamError::Timeout {
            name,
            after: timeout,
        }),
    }
}

/// The latency test for an upstream that is not (yet) in a running engine,
/// as `veil upstream test` does it.
pub async fn probe(
    spec: UpstreamSpec,
    check_url: Option<&str>,
    dns_servers: &[std::net::SocketAddr],
    timeout: Duration,
) -> Result<Duration, String> {
    let dns = DnsCache::new(dns_servers).map_err(|e| e.to_string())?;
    let dialer = Dialer::new(spec)?;
    measure(&dialer, &dns, check_url, timeout)
        .await
        .map_err(|e| e.to_string())
}

/// A tunnel to `target` through this one upstream (not the pool), for a
/// check that must leave through it: its own exit address.
pub async fn tunnel_through(
    spec: UpstreamSpec,
    dns_servers: &[std::net::SocketAddr],
    target: &Target,
    timeout: Duration,
) -> Result<super::OutStream, String> {
    let dns = DnsCache::new(dns_servers).map_err(|e| e.to_string())?;
    let dialer = Dialer::new(spec)?;
    let (stream, early) = dialer
        .tunnel(&dns, target, timeout)
        .await
        .map_err(|e| e.to_string())?;
    if !early.is_empty() {
        return Err(format!(
            "the upstream {} sent bytes before the request",
            dialer.spec().name
        ));
    }
    Ok(stream)
}

async fn fetch_through(
    dialer: &Dialer,
    dns: &DnsCache,
    url: &str,
    timeout: Duration,
) -> Result<(), UpstreamError> {
    let name = dialer.spec().name.clone();
    let bad_url = |reason: &str| UpstreamError::Protocol {
        name: name.clone(),
        reason: format!("check URL {url:?} {reason}"),
    };
    let uri: http::Uri = url.parse().map_err(|_| bad_url("is not a URL"))?;
    // Only plain http:// is ever fetched from a URL the user typed.
    if uri.scheme_str() != Some("http") {
        return Err(bad_url("is not a plain http:// URL"));
    }
    let host = uri.host().ok_or_else(|| bad_url("has no host"))?;
    let port = uri.port_u16().unwrap_or(80);
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let host_header = match uri.port_u16() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    };
    let (mut stream, request) = match dialer.spec().url.kind {
        ProxyKind::Http | ProxyKind::Https => {
            let stream = dialer.open(dns).await?;
            let auth = dialer.auth_line();
            let req = format!(
                "GET {url} HTTP/1.1\r\nHost: {host_header}\r\n{auth}Connection: close\r\n\r\n"
            );
            (stream, req)
        }
        ProxyKind::Socks5 => {
            let target = Target::new(host, port).map_err(|e| bad_url(&e.to_string()))?;
            let (stream, _) = dialer.tunnel(dns, &target, timeout).await?;
            let req =
                format!("GET {path} HTTP/1.1\r\nHost: {host_header}\r\nConnection: close\r\n\r\n");
            (stream, req)
        }
    };
    let status = exchange(&mut stream, request.as_bytes())
        .await
        .map_err(|reason| UpstreamError::Protocol {
            name: name.clone(),
            reason: format!("{reason} (answering the health check)"),
        })?
        .code;
    match status {
        407 => Err(UpstreamError::AuthRejected {
            name,
            detail: "407 Proxy Authentication Required".into(),
        }),
        500..=599 => Err(UpstreamError::TargetFailed {
            name,
            target: url.to_owned(),
            reason: format!("the check URL answered {status} through it"),
        }),
        _ => Ok(()),
    }
}

/// Checks every upstream once per interval until `stop` is cancelled.
pub(crate) async fn run_checks(pool: Arc<Pool>, stop: tokio_util::sync::CancellationToken) {
    let interval = pool.health_config().interval;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        pool.check_now().await;
    }
}

/// One round of active checks, all upstreams at once.
pub(crate) async fn check_all(pool: &Pool, dns: &DnsCache, timeout: Duration) {
    let check_url = pool.health_config().check_url.clone();
    let checks = pool.upstreams().into_iter().map(|upstream| {
        let check_url = check_url.clone();
        async move {
            let result = measure(&upstream.dialer, dns, check_url.as_deref(), timeout).await;
            (upstream, result)
        }
    });
    for (upstream, result) in futures_util::future::join_all(checks).await {
        match result {
            Ok(latency) => {
                upstream.set_latency(latency);
                pool.record_success(&upstream);
            }
            Err(e) => {
                tracing::debug!("health check: {e}");
                pool.record_failure(&upstream, &e.to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_plain_http_check_urls_are_fetched() {
        // Port 9 is never contacted: the URL is refused before any connection.
        let url = "http://127.0.0.1:9".parse().expect("proxy url");
        let spec = UpstreamSpec::new("p", url);
        for check in [
            "ftp://example.com/",
            "https://example.com/",
            "file:///etc/passwd",
        ] {
            let err = probe(spec.clone(), Some(check), &[], Duration::from_secs(2))
                .await
                .expect_err(check);
            assert!(err.contains("check URL"), "{check}: {err}");
        }
    }
}
