//! The masked-IP check: which public IP the world sees from this machine
//! directly, and which it sees through Veil's own listener (the path the
//! apps take).
//!
//! Each side asks the configured echo endpoints in order and the first
//! answer wins; an endpoint that fails or says nothing within the timeout is
//! recorded and the next one is tried. An endpoint answers either with the
//! address as plain text, or with `key=value` lines of which one is
//! `ip=ADDRESS` (the `cdn-cgi/trace` style). Only `http://` and `https://`
//! URLs are ever fetched.
//!
//! The two sides must not be linkable by an endpoint: they ask different
//! endpoint lists (`endpoints` through Veil, `direct_endpoints` directly; a
//! direct one with the same host and port as a proxied one is skipped), the
//! proxied check runs first and the direct one after a random pause
//! (2–10 s by default), and no request carries a header of Veil's own. The
//! direct check can be turned off; the verdict then rests on the exit IP
//! and Veil's routing alone, and says so.
//!
//! Through Veil, a plain `http://` endpoint is asked in absolute form and an
//! `https://` one through a `CONNECT` tunnel, exactly as a browser would, so
//! the engine's routing (mode, bypass list, rules, upstream pool) decides
//! where the request leaves from. When the two answers are the same the
//! report says why, from the engine's routing.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use veil_engine::stats::unix_ms;

use bytes::Bytes;
use http::Uri;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use veil_engine::{Action, EngineHandle, Mode, Routing, Target};

use crate::config::IpCheckSection;

/// Asked through Veil when `[ipcheck] endpoints` is not set.
pub const DEFAULT_ENDPOINTS: &[&str] = &[
    "https://api.ipify.org",
    "https://ifconfig.me/ip",
    "https://icanhazip.com",
];

/// Asked through each upstream for its IPv6 exit when `[ipcheck]
/// endpoints_v6` is not set: names with only IPv6 addresses.
pub const DEFAULT_V6_ENDPOINTS: &[&str] = &["https://api6.ipify.org", "https://ipv6.icanhazip.com"];

/// Asked directly when `[ipcheck] direct_endpoints` is not set: other
/// operators than [`DEFAULT_ENDPOINTS`], so no one of them is asked both ways.
pub const DEFAULT_DIRECT_ENDPOINTS: &[&str] = &[
    "https://checkip.amazonaws.com",
    "https://ipinfo.io/ip",
    "https://ipecho.net/plain",
];

/// The longest answer read from an endpoint.
const MAX_BODY: usize = 16 * 1024;

/// What the check concluded.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IpVerdict {
    /// Through Veil the world sees another address than this machine's.
    Masked,
    /// Through Veil the world sees this machine's own address.
    NotMasked,
    /// One side had no answer, so nothing can be compared.
    Unknown,
}

impl std::fmt::Display for IpVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IpVerdict::Masked => "masked",
            IpVerdict::NotMasked => "NOT masked",
            IpVerdict::Unknown => "unknown",
        })
    }
}

/// An endpoint that gave no usable answer, and how it failed.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointFailure {
    pub endpoint: String,
    pub error: String,
}

/// One side of the check.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpProbe {
    /// The public IP this path showed.
    pub ip: Option<String>,
    /// Which endpoint answered.
    pub endpoint: Option<String>,
    pub elapsed_ms: u64,
    /// Endpoints tried before (or instead of) the answer.
    pub failures: Vec<EndpointFailure>,
}

#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpReport {
    pub direct: IpProbe,
    /// Through Veil's own listener, the path apps take.
    pub via_proxy: IpProbe,
    pub verdict: IpVerdict,
    /// One sentence: why masked, NOT masked or unknown.
    pub reason: String,
    pub checked_unix_ms: u64,
    /// The real IP was not checked (the direct check is off): the verdict
    /// rests on the exit IP alone.
    #[serde(default)]
    pub direct_off: bool,
}

/// Which endpoints to ask, how long each may take, and the pause between
/// the two sides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpCheckSettings {
    /// Asked through Veil.
    pub endpoints: Vec<String>,
    /// Asked directly.
    pub direct_endpoints: Vec<String>,
    /// IPv6-only names, asked through each upstream for its IPv6 exit.
    pub endpoints_v6: Vec<String>,
    /// Whether the direct side runs at all.
    pub direct: bool,
    pub timeout: Duration,
    /// The pause before the direct side is drawn from this range.
    pub delay: (Duration, Duration),
}

impl IpCheckSettings {
    pub fn from_config(section: &IpCheckSection) -> Self {
        Self {
            endpoints: section.endpoints.clone(),
            direct_endpoints: section.direct_endpoints.clone(),
            endpoints_v6: section.endpoints_v6.clone(),
            direct: section.direct,
            timeout: Duration::from_millis(section.timeout_ms),
            // Config validation keeps min <= max.
            delay: (
                Duration::from_millis(section.delay_min_ms),
                Duration::from_millis(section.delay_max_ms),
            ),
        }
    }

    /// An upper bound for a whole check: the side through Veil, the pause,
    /// then the direct side.
    pub fn worst_case(&self) -> Duration {
        self.timeout * self.endpoints.len().max(1) as u32
            + self.delay.1
            + self.timeout * self.direct_endpoints.len().max(1) as u32
    }

    /// A pause in the delay range, different each time (the hasher's keys
    /// are random per process and per call), so an endpoint operator
    /// watching two lists cannot pair the two sides by their timing.
    pub fn pick_delay(&self) -> Duration {
        use std::hash::{BuildHasher, Hasher};
        let (min, max) = self.delay;
        let span = max.saturating_sub(min).as_millis() as u64;
        if span == 0 {
            return min;
        }
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        min + Duration::from_millis(hasher.finish() % (span + 1))
    }
}

/// "host:port" of an endpoint URL, lower-cased, to tell two lists apart.
fn endpoint_authority(url: &str) -> Option<String> {
    let uri: Uri = url.parse().ok()?;
    let host = uri.host()?.to_ascii_lowercase();
    Some(format!(
        "{host}:{}",
        uri.port_u16().unwrap_or(default_port(&uri))
    ))
}

impl Default for IpCheckSettings {
    fn default() -> Self {
        Self::from_config(&IpCheckSection::default())
    }
}

/// The running engine as the check needs it: where it listens, and how it
/// routes (to explain a NOT masked verdict).
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyRoute {
    pub listen: SocketAddr,
    pub mode: Mode,
    pub bypass: Vec<String>,
    pub rules: Vec<(String, Action)>,
}

impl ProxyRoute {
    /// The engine's listener and current mode, with the bypass list and
    /// rules it was given (the handle does not hand those back).
    pub fn of(engine: &EngineHandle, bypass: &[String], rules: &[(String, Action)]) -> Self {
        Self {
            listen: engine.local_addr(),
            mode: engine.mode(),
            bypass: bypass.to_vec(),
            rules: rules.to_vec(),
        }
    }

    /// Why a request to `endpoint` does not go through the upstream, or
    /// `None` when it does.
    pub fn why_direct(&self, endpoint: &str) -> Option<String> {
        if self.mode == Mode::Direct {
            return Some(
                "Veil is in direct mode: traffic leaves from this machine's own address".into(),
            );
        }
        let target = endpoint_target(endpoint).ok()?;
        let routing = Routing::new(&self.bypass, &self.rules).ok()?;
        if routing.decide(Mode::Proxy, &target) != Action::Direct {
            return None;
        }
        let host = target.host();
        let sends_direct = |bypass: &[String], rules: &[(String, Action)]| {
            Routing::new(bypass, rules)
                .map(|r| r.decide(Mode::Proxy, &target) == Action::Direct)
                .unwrap_or(false)
        };
        if let Some((pattern, _)) = self
            .rules
            .iter()
            .find(|(p, a)| *a == Action::Direct && sends_direct(&[], &[(p.clone(), *a)]))
        {
            return Some(format!(
                "the rule \"{pattern}\" = \"direct\" sends {host} past the upstream, from this \
                 machine's own address"
            ));
        }
        if let Some(pattern) = self
            .bypass
            .iter()
            .find(|p| sends_direct(std::slice::from_ref(p), &[]))
        {
            return Some(format!(
                "{host} matches the bypass entry \"{pattern}\", so it goes direct, from this \
                 machine's own address"
            ));
        }
        Some(format!("{host} is routed direct, past the upstream"))
    }
}

/// What a running engine's owner (`veil run`, the app) keeps to answer IP
/// checks: the settings, and the routing it gave the engine. Call
/// [`IpChecker::check`] at start and whenever the mode or the upstreams
/// change; replace the checker when the bypass list or rules change.
#[derive(Debug, Clone, PartialEq)]
pub struct IpChecker {
    pub settings: IpCheckSettings,
    pub bypass: Vec<String>,
    pub rules: Vec<(String, Action)>,
}

impl IpChecker {
    pub fn new(config: &crate::Config) -> Self {
        Self {
            settings: IpCheckSettings::from_config(&config.ipcheck),
            bypass: config.proxy.bypass.clone(),
            rules: config.rules.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        }
    }

    /// Both paths, through `engine`'s listener with its current mode.
    pub async fn check(&self, engine: &EngineHandle) -> IpReport {
        let route = ProxyRoute::of(engine, &self.bypass, &self.rules);
        check(&self.settings, Some(&route)).await
    }
}

/// One upstream to leave through, on its own (not the pool), with what the
/// engine needs to dial it: for that upstream's exit address.
#[derive(Debug, Clone)]
pub struct Through {
    pub spec: veil_engine::UpstreamSpec,
    pub dns_servers: Vec<SocketAddr>,
    pub timeout: Duration,
}

/// The addresses the world sees for traffic that leaves through one
/// upstream, by address family, and when they were checked.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitIp {
    pub v4: Option<String>,
    pub v6: Option<String>,
    /// Why there is no IPv6 answer (no IPv6 route behind the upstream, or
    /// an endpoint failure).
    pub v6_error: Option<String>,
    /// Why there is no answer at all.
    pub error: Option<String>,
    pub checked_unix_ms: u64,
}

/// Asks the proxied endpoints, then the IPv6-only ones, through `through`
/// alone. Never a direct request: nothing here can pair the exit with the
/// real address.
pub async fn exit_of(through: &Through, settings: &IpCheckSettings) -> ExitIp {
    let mut exit = ExitIp {
        checked_unix_ms: unix_ms(SystemTime::now()),
        ..ExitIp::default()
    };
    if settings.endpoints.is_empty() {
        exit.error = Some("the IP check is off: no endpoints are configured".into());
        return exit;
    }
    let any = probe(
        &settings.endpoints,
        settings.timeout,
        Path::Through(through),
    )
    .await;
    match any.ip.as_deref().map(str::parse::<IpAddr>) {
        Some(Ok(IpAddr::V4(v4))) => exit.v4 = Some(v4.to_string()),
        Some(Ok(IpAddr::V6(v6))) => exit.v6 = Some(v6.to_string()),
        _ => exit.error = Some(failures_text(&any)),
    }
    if exit.v6.is_none() && !settings.endpoints_v6.is_empty() {
        let v6 = probe(
            &settings.endpoints_v6,
            settings.timeout,
            Path::Through(through),
        )
        .await;
        match v6.ip.as_deref().map(str::parse::<IpAddr>) {
            Some(Ok(IpAddr::V6(v6))) => exit.v6 = Some(v6.to_string()),
            Some(Ok(IpAddr::V4(_))) => {
                exit.v6_error = Some("the IPv6 endpoint answered over IPv4".into())
            }
            _ => exit.v6_error = Some(failures_text(&v6)),
        }
    }
    exit
}

/// Refuses anything but an absolute `http://` or `https://` URL with a host
/// (and without a user name or password in it).
pub fn check_endpoint_url(url: &str) -> Result<(), String> {
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return Err(format!("{url:?} must be an http:// or https:// URL"));
    }
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(format!("{url:?} must be an http:// or https:// URL")),
    }
    let authority = uri
        .authority()
        .ok_or_else(|| format!("{url:?} has no host"))?;
    if authority.as_str().contains('@') {
        return Err(format!("{url:?} must not carry a user name or password"));
    }
    if authority.host().is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    Ok(())
}

fn endpoint_target(url: &str) -> Result<Target, String> {
    let uri: Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
    let host = uri.host().ok_or("no host")?;
    let port = uri.port_u16().unwrap_or(default_port(&uri));
    Target::new(host, port).map_err(|e| e.to_string())
}

fn default_port(uri: &Uri) -> u16 {
    if uri.scheme_str() == Some("https") {
        443
    } else {
        80
    }
}

/// The address in an endpoint's answer: an `ip=` line (`cdn-cgi/trace`
/// style), else the whole answer as one address. IPv4-mapped IPv6 addresses
/// are given as IPv4.
pub fn parse_ip_answer(body: &str) -> Option<IpAddr> {
    let text = body.trim_start_matches('\u{feff}');
    let found = match text
        .lines()
        .find_map(|line| line.trim().strip_prefix("ip="))
    {
        Some(value) => value.trim().parse::<IpAddr>().ok(),
        None => text.trim().parse::<IpAddr>().ok(),
    };
    found.map(|ip| ip.to_canonical())
}

/// Checks the path through Veil, then, after a random pause, the direct
/// one (when on) against the other endpoint list. Without `route` (no
/// engine runs) only the direct side is checked and the verdict is unknown.
pub async fn check(settings: &IpCheckSettings, route: Option<&ProxyRoute>) -> IpReport {
    let checked_unix_ms = unix_ms(SystemTime::now());
    let report = |direct, via_proxy, verdict, reason: String| IpReport {
        direct,
        via_proxy,
        verdict,
        reason,
        checked_unix_ms,
        direct_off: !settings.direct,
    };
    if settings.endpoints.is_empty() {
        return report(
            IpProbe::default(),
            IpProbe::default(),
            IpVerdict::Unknown,
            "the IP check is off: no endpoints are configured ([ipcheck] endpoints, or the \
             app's Settings)"
                .into(),
        );
    }
    let Some(route) = route else {
        let (direct, reason) = if settings.direct {
            (
                probe_direct(settings).await,
                "no Veil engine is running, so there is no proxy path to check; start one with \
                 `veil run` or the Veil app",
            )
        } else {
            (
                IpProbe::default(),
                "no Veil engine is running and the direct check is off, so nothing was checked",
            )
        };
        return report(
            direct,
            IpProbe::default(),
            IpVerdict::Unknown,
            reason.into(),
        );
    };
    let via_proxy = probe(
        &settings.endpoints,
        settings.timeout,
        Path::Via(route.listen),
    )
    .await;
    if !settings.direct {
        let (verdict, reason) = verdict_exit_only(&via_proxy, route);
        return report(IpProbe::default(), via_proxy, verdict, reason);
    }
    tokio::time::sleep(settings.pick_delay()).await;
    let direct = probe_direct(settings).await;
    let (verdict, reason) = verdict(&direct, &via_proxy, route);
    report(direct, via_proxy, verdict, reason)
}

/// The direct side, skipping any endpoint that is also asked through Veil.
async fn probe_direct(settings: &IpCheckSettings) -> IpProbe {
    let proxied: Vec<_> = settings
        .endpoints
        .iter()
        .filter_map(|e| endpoint_authority(e))
        .collect();
    let (shared, own): (Vec<_>, Vec<_>) = settings
        .direct_endpoints
        .iter()
        .cloned()
        .partition(|e| endpoint_authority(e).is_some_and(|a| proxied.contains(&a)));
    let mut probe = probe(&own, settings.timeout, Path::Direct).await;
    probe.failures.extend(shared.into_iter().map(|endpoint| {
        EndpointFailure {
            endpoint,
            error: "skipped: it is also asked through Veil, and one endpoint must never see both \
                addresses"
                .into(),
        }
    }));
    probe
}

/// The verdict without the real IP (the direct check is off): from the
/// exit IP and Veil's routing, and the reason says so.
pub fn verdict_exit_only(via: &IpProbe, route: &ProxyRoute) -> (IpVerdict, String) {
    const ALONE: &str = "based on the exit IP alone: your real IP is not checked directly \
                         (Settings: \"Check my real IP directly\")";
    match via.ip.as_deref() {
        None => (
            IpVerdict::Unknown,
            format!(
                "no endpoint answered through Veil ({}); {ALONE}",
                failures_text(via)
            ),
        ),
        Some(ip) => match via.endpoint.as_deref().and_then(|e| route.why_direct(e)) {
            Some(why) => (
                IpVerdict::NotMasked,
                format!("{why}: the world sees {ip}; {ALONE}"),
            ),
            None => (
                IpVerdict::Masked,
                format!("through Veil the world sees {ip}, by way of the upstream; {ALONE}"),
            ),
        },
    }
}

/// The verdict and its reason from the two probes.
pub fn verdict(direct: &IpProbe, via: &IpProbe, route: &ProxyRoute) -> (IpVerdict, String) {
    let parse = |p: &IpProbe| p.ip.as_deref().and_then(|ip| ip.parse::<IpAddr>().ok());
    match (parse(direct), parse(via)) {
        (Some(d), Some(v)) => {
            let why_direct = via.endpoint.as_deref().and_then(|e| route.why_direct(e));
            if d == v {
                let reason = why_direct.unwrap_or_else(|| {
                    format!("the upstream leaves from the same address as this machine ({d})")
                });
                (IpVerdict::NotMasked, reason)
            } else if let Some(why) = why_direct {
                // Both answers left from this machine (e.g. over IPv4 and
                // IPv6): a different address is not a masked one.
                (
                    IpVerdict::NotMasked,
                    format!("{why} (the endpoints saw {d} and {v}, both this machine's)"),
                )
            } else if d.is_ipv4() != v.is_ipv4() {
                (
                    IpVerdict::Masked,
                    format!(
                        "through Veil the world sees {v} instead of {d} (different address \
                         families, so this machine's other address was not compared)"
                    ),
                )
            } else {
                (
                    IpVerdict::Masked,
                    format!("through Veil the world sees {v} instead of this machine's {d}"),
                )
            }
        }
        (None, None) => (
            IpVerdict::Unknown,
            format!(
                "no endpoint answered, directly ({}) or through Veil ({})",
                failures_text(direct),
                failures_text(via)
            ),
        ),
        (Some(_), None) => (
            IpVerdict::Unknown,
            format!("no endpoint answered through Veil: {}", failures_text(via)),
        ),
        (None, Some(_)) => (
            IpVerdict::Unknown,
            format!(
                "no endpoint answered directly, so there is nothing to compare with: {}",
                failures_text(direct)
            ),
        ),
    }
}

fn failures_text(probe: &IpProbe) -> String {
    if probe.failures.is_empty() {
        return "no endpoints configured".into();
    }
    probe
        .failures
        .iter()
        .map(|f| format!("{}: {}", f.endpoint, f.error))
        .collect::<Vec<_>>()
        .join("; ")
}

#[derive(Debug, Clone, Copy)]
enum Path<'a> {
    Direct,
    /// Through an HTTP proxy (Veil's listener).
    Via(SocketAddr),
    /// Through one upstream only, for its own exit address.
    Through(&'a Through),
}

async fn probe(endpoints: &[String], timeout: Duration, path: Path<'_>) -> IpProbe {
    let started = Instant::now();
    let mut failures = Vec::new();
    for endpoint in endpoints {
        let result = match tokio::time::timeout(timeout, fetch_ip(endpoint, path)).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
        };
        match result {
            Ok(ip) => {
                return IpProbe {
                    ip: Some(ip.to_string()),
                    endpoint: Some(endpoint.clone()),
                    elapsed_ms: started.elapsed().as_millis() as u64,
                    failures,
                };
            }
            Err(error) => failures.push(EndpointFailure {
                endpoint: endpoint.clone(),
                error,
            }),
        }
    }
    IpProbe {
        ip: None,
        endpoint: None,
        elapsed_ms: started.elapsed().as_millis() as u64,
        failures,
    }
}

async fn fetch_ip(url: &str, path: Path<'_>) -> Result<IpAddr, String> {
    check_endpoint_url(url)?;
    let uri: Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
    let https = uri.scheme_str() == Some("https");
    let authority = uri.authority().ok_or("no host")?.as_str().to_owned();
    let host = uri.host().ok_or("no host")?;
    let bare_host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(default_port(&uri));
    let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
    let stream = match path {
        Path::Direct => connect_direct(bare_host, port).await?,
        Path::Via(proxy) => TcpStream::connect(proxy)
            .await
            .map_err(|e| format!("cannot connect to Veil at {proxy}: {e}"))?,
        Path::Through(upstream) => {
            let target = Target::new(bare_host, port).map_err(|e| e.to_string())?;
            let stream = veil_engine::upstream::tunnel_through(
                upstream.spec.clone(),
                &upstream.dns_servers,
                &target,
                upstream.timeout,
            )
            .await?;
            return if https {
                get(
                    tls_connect(stream, bare_host).await?,
                    path_and_query,
                    &authority,
                )
                .await
            } else {
                get(stream, path_and_query, &authority).await
            };
        }
    };
    let _ = stream.set_nodelay(true);
    if https {
        let stream = match path {
            Path::Via(_) => connect_tunnel(stream, &format!("{host}:{port}")).await?,
            Path::Direct | Path::Through(_) => stream,
        };
        let tls = tls_connect(stream, bare_host).await?;
        get(tls, path_and_query, &authority).await
    } else {
        let target = match path {
            Path::Via(_) => format!("http://{authority}{path_and_query}"),
            Path::Direct | Path::Through(_) => path_and_query.to_owned(),
        };
        get(stream, &target, &authority).await
    }
}

/// Resolves `host` and connects, IPv4 addresses first (most upstreams leave
/// over IPv4, and the two answers should be comparable).
async fn connect_direct(host: &str, port: u16) -> Result<TcpStream, String> {
    let mut addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    addrs.sort_by_key(|a| !a.is_ipv4());
    let mut last = format!("{host} has no address");
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => return Ok(s),
            Err(e) => last = format!("cannot connect to {addr}: {e}"),
        }
    }
    Err(last)
}

/// Sends `CONNECT authority` and reads the answer's head byte by byte, so
/// nothing after it is taken from the tunnel.
async fn connect_tunnel(mut stream: TcpStream, authority: &str) -> Result<TcpStream, String> {
    let request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("sending CONNECT to Veil: {e}"))?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 {
            return Err("Veil's answer to CONNECT is too long".into());
        }
        let n = stream
            .read(&mut byte)
            .await
            .map_err(|e| format!("reading Veil's answer to CONNECT: {e}"))?;
        if n == 0 {
            return Err("Veil closed the connection during CONNECT".into());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    let status_line = head.lines().next().unwrap_or_default();
    match status_line.split_whitespace().nth(1) {
        Some("200") => Ok(stream),
        _ => Err(format!("Veil refused the tunnel: {}", status_line.trim())),
    }
}

fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            let _ = roots.add_parsable_certificates(found.certs);
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = match rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
            {
                Ok(b) => b.with_root_certificates(roots).with_no_client_auth(),
                // ring supports the default versions; this is unreachable in
                // practice, and an empty config fails each handshake loudly.
                Err(_) => rustls::ClientConfig::builder()
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth(),
            };
            Arc::new(config)
        })
        .clone()
}

async fn tls_connect<S>(stream: S, host: &str) -> Result<tokio_rustls::client::TlsStream<S>, String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let name = rustls_pki_types::ServerName::try_from(host.to_owned())
        .map_err(|_| format!("{host:?} is not a valid TLS server name"))?;
    tokio_rustls::TlsConnector::from(tls_config())
        .connect(name, stream)
        .await
        .map_err(|e| format!("TLS with {host}: {e}"))
}

/// Aborts the connection task when the exchange ends or is dropped (a
/// timeout), so a hanging endpoint leaves nothing behind.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn get<S>(stream: S, target: &str, host: &str) -> Result<IpAddr, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    let _conn = AbortOnDrop(tokio::spawn(async move {
        let _ = conn.await;
    }));
    // Nothing that tells the endpoint this is Veil (no User-Agent of its
    // own), and never an answer from a cache on the way, Veil's own
    // included: a stored answer would show an old exit address.
    let request = http::Request::get(target)
        .header(http::header::HOST, host)
        .header(http::header::ACCEPT, "text/plain")
        .header(http::header::CACHE_CONTROL, "no-store, no-cache")
        .header(http::header::PRAGMA, "no-cache")
        .header(http::header::CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("bad request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let status = response.status();
    let body = Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?
        .to_bytes();
    let text = String::from_utf8_lossy(&body);
    if !status.is_success() {
        let first = text.lines().next().unwrap_or_default().trim();
        let first: String = first.chars().take(200).collect();
        return Err(format!("HTTP {status}: {first}"));
    }
    parse_ip_answer(&text).ok_or_else(|| {
        let shown: String = text.trim().chars().take(60).collect();
        format!("the answer is not an IP address: {shown:?}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn no_endpoints_turns_the_check_off_without_fetching() {
        let settings = IpCheckSettings {
            endpoints: Vec::new(),
            direct_endpoints: vec!["http://127.0.0.1:9/".into()],
            endpoints_v6: Vec::new(),
            direct: true,
            timeout: Duration::from_secs(1),
            delay: (Duration::ZERO, Duration::ZERO),
        };
        let report = check(&settings, None).await;
        assert_eq!(report.verdict, IpVerdict::Unknown);
        assert!(report.reason.contains("off"), "{}", report.reason);
        assert!(report.direct.failures.is_empty() && report.direct.ip.is_none());
    }

    #[test]
    fn the_pause_stays_in_its_range_and_varies() {
        let settings = IpCheckSettings {
            delay: (Duration::from_secs(2), Duration::from_secs(10)),
            ..IpCheckSettings::default()
        };
        let picks: Vec<_> = (0..50).map(|_| settings.pick_delay()).collect();
        assert!(
            picks
                .iter()
                .all(|d| *d >= Duration::from_secs(2) && *d <= Duration::from_secs(10)),
            "{picks:?}"
        );
        assert!(picks.iter().any(|d| *d != picks[0]), "random: {picks:?}");
        let none = IpCheckSettings {
            delay: (Duration::ZERO, Duration::ZERO),
            ..IpCheckSettings::default()
        };
        assert_eq!(none.pick_delay(), Duration::ZERO);
    }

    #[test]
    fn the_default_lists_share_no_endpoint() {
        let settings = IpCheckSettings::default();
        assert!(settings.direct, "on by default");
        for direct in &settings.direct_endpoints {
            assert!(
                !settings
                    .endpoints
                    .iter()
                    .any(|p| endpoint_authority(p) == endpoint_authority(direct)),
                "{direct}"
            );
        }
    }

    #[test]
    fn parses_plain_and_trace_answers() {
        assert_eq!(
            parse_ip_answer("203.0.113.7\n"),
            Some("203.0.113.7".parse().expect("ip"))
        );
        assert_eq!(
            parse_ip_answer("  2001:db8::1 "),
            Some("2001:db8::1".parse().expect("ip"))
        );
        assert_eq!(
            parse_ip_answer("::ffff:127.0.0.2"),
            Some("127.0.0.2".parse().expect("ip"))
        );
        let trace = "fl=1f1\nh=example.com\nip=198.51.100.4\nts=1700000000.1\nvisit_scheme=https\n";
        assert_eq!(
            parse_ip_answer(trace),
            Some("198.51.100.4".parse().expect("ip"))
        );
        assert_eq!(parse_ip_answer("fl=1\nip=nonsense\n"), None);
        assert_eq!(parse_ip_answer("<html>hello</html>"), None);
        assert_eq!(parse_ip_answer(""), None);
    }

    #[test]
    fn only_http_urls() {
        assert!(check_endpoint_url("https://api.ipify.org").is_ok());
        assert!(check_endpoint_url("http://127.0.0.1:8080/ip").is_ok());
        assert!(check_endpoint_url("http://[::1]:8080/").is_ok());
        for bad in [
            "file:///etc/passwd",
            "ftp://a.example/",
            "api.ipify.org",
            "/ip",
            "https://user:pw@a.example/",
            "gopher://a.example/",
        ] {
            assert!(check_endpoint_url(bad).is_err(), "{bad}");
        }
    }

    fn route(mode: Mode, bypass: &[&str], rules: &[(&str, Action)]) -> ProxyRoute {
        ProxyRoute {
            listen: "127.0.0.1:7890".parse().expect("addr"),
            mode,
            bypass: bypass.iter().map(|s| s.to_string()).collect(),
            rules: rules.iter().map(|(p, a)| (p.to_string(), *a)).collect(),
        }
    }

    fn answered(ip: &str, endpoint: &str) -> IpProbe {
        IpProbe {
            ip: Some(ip.into()),
            endpoint: Some(endpoint.into()),
            ..IpProbe::default()
        }
    }

    #[test]
    fn verdicts_and_reasons() {
        let ep = "https://api.ipify.org";
        let proxy = route(Mode::Proxy, &["127.0.0.0/8", "*.local"], &[]);
        let (v, reason) = verdict(
            &answered("192.0.2.1", ep),
            &answered("198.51.100.9", ep),
            &proxy,
        );
        assert_eq!(v, IpVerdict::Masked);
        assert!(
            reason.contains("198.51.100.9") && reason.contains("192.0.2.1"),
            "{reason}"
        );

        let (v, reason) = verdict(
            &answered("192.0.2.1", ep),
            &answered("192.0.2.1", ep),
            &proxy,
        );
        assert_eq!(v, IpVerdict::NotMasked);
        assert!(reason.contains("same address"), "{reason}");

        let direct = route(Mode::Direct, &[], &[]);
        let (v, reason) = verdict(
            &answered("192.0.2.1", ep),
            &answered("192.0.2.1", ep),
            &direct,
        );
        assert_eq!(v, IpVerdict::NotMasked);
        assert!(reason.contains("direct mode"), "{reason}");

        let local = "http://127.0.0.1:9/ip";
        let (v, reason) = verdict(
            &answered("127.0.0.1", local),
            &answered("127.0.0.1", local),
            &proxy,
        );
        assert_eq!(v, IpVerdict::NotMasked);
        assert!(reason.contains("bypass entry \"127.0.0.0/8\""), "{reason}");

        let ruled = route(Mode::Proxy, &[], &[("*.ipify.org", Action::Direct)]);
        let (v, reason) = verdict(
            &answered("192.0.2.1", ep),
            &answered("192.0.2.1", ep),
            &ruled,
        );
        assert_eq!(v, IpVerdict::NotMasked);
        assert!(reason.contains("rule \"*.ipify.org\""), "{reason}");

        let failed = IpProbe {
            failures: vec![EndpointFailure {
                endpoint: ep.into(),
                error: "no answer within 4000 ms".into(),
            }],
            ..IpProbe::default()
        };
        let (v, reason) = verdict(&answered("192.0.2.1", ep), &failed, &proxy);
        assert_eq!(v, IpVerdict::Unknown);
        assert!(
            reason.contains("through Veil") && reason.contains("4000 ms"),
            "{reason}"
        );
    }

    #[test]
    fn verdict_serialises_snake_case() {
        assert_eq!(
            serde_json::to_string(&IpVerdict::NotMasked).expect("json"),
            "\"not_masked\""
        );
    }
}
