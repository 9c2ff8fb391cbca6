//! HTTP/1.1 on the mixed port: forward requests in absolute form, `CONNECT`
//! tunnels and WebSocket upgrades. Parsing, limits on the request head and the
//! slowloris timeout are hyper's; a request hyper cannot parse gets its 400
//! (or 431 for an oversized head) and the connection closes.

use std::convert::Infallible;
use std::error::Error as StdError;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

use super::headers::{strip_hop_by_hop, wants_upgrade};
use super::relay::{copy, relay};
use super::{ConnGuard, spawn_tunnel};
use crate::Target;
use crate::engine::Shared;
use crate::outbound::{ConnectError, HttpConnector, Outbound, connector::ConnectorError};
use crate::stats::{Counted, CountedBody};

type BoxError = Box<dyn StdError + Send + Sync>;
pub(crate) type Body = BoxBody<Bytes, BoxError>;

/// Forwards plain-HTTP requests over pooled keep-alive connections to origins.
#[derive(Debug, Clone)]
pub struct HttpForwarder {
    client: Client<HttpConnector, Body>,
}

impl HttpForwarder {
    pub fn new(outbound: Outbound) -> Self {
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(std::time::Duration::from_secs(60))
            .pool_max_idle_per_host(64)
            .build(HttpConnector::new(outbound));
        Self { client }
    }
}

pub(super) async fn serve(shared: Arc<Shared>, guard: Arc<ConnGuard>, io: Counted<TcpStream>) {
    let limits = &shared.config.limits;
    let service = {
        let shared = shared.clone();
        service_fn(move |req| handle(shared.clone(), guard.clone(), req))
    };
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.handshake_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        // max_buf_size alone lets a head through when one read carries all of
        // it past the limit; this checks the parsed head's size as well.
        .max_header_size(limits.max_header_bytes)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = shared.shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        if e.is_parse() || e.is_parse_too_large() {
            shared.stats.count_rejected();
            tracing::debug!("malformed request: {e}");
        } else if e.is_timeout() {
            tracing::debug!("client too slow to send its request head");
        } else {
            tracing::debug!("client connection: {e}");
        }
    }
}

async fn handle(
    shared: Arc<Shared>,
    guard: Arc<ConnGuard>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    if let Some(creds) = &shared.config.auth {
        let ok = req
            .headers()
            .get(header::PROXY_AUTHORIZATION)
            .is_some_and(|v| creds.matches_basic_header(v.as_bytes()));
        if !ok {
            shared.stats.count_rejected();
            let mut resp = text(
                StatusCode::PROXY_AUTHENTICATION_REQUIRED,
                "This proxy needs a username and password.",
            );
            resp.headers_mut().insert(
                header::PROXY_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"veil\""),
            );
            return Ok(resp);
        }
    }
    let resp = if req.method() == Method::CONNECT {
        connect(shared, guard, req).await
    } else {
        forward(shared, guard, req).await
    };
    Ok(resp)
}

/// `CONNECT host:port`: reach the target first, so a failure is a 502 the
/// client can read; then answer 200 and relay bytes until either side closes.
async fn connect(
    shared: Arc<Shared>,
    guard: Arc<ConnGuard>,
    req: Request<Incoming>,
) -> Response<Body> {
    let Some(authority) = req.uri().authority() else {
        shared.stats.count_rejected();
        return text(StatusCode::BAD_REQUEST, "CONNECT needs a host:port target.");
    };
    let target = match Target::parse_authority(authority.as_str()) {
        Ok(t) => t,
        Err(e) => {
            shared.stats.count_rejected();
            return text(
                StatusCode::BAD_REQUEST,
                &format!("Bad CONNECT target: {e}."),
            );
        }
    };
    guard.routed("connect", &target);
    let upstream = match shared.outbound.connect(&target).await {
        Ok(s) => s,
        Err(e) => return bad_gateway(&e),
    };
    let host = shared.stats.host(&target.host(), false);
    spawn_tunnel(&shared, async move {
        let _guard = guard;
        match hyper::upgrade::on(req).await {
            // Take the client's socket back from hyper, so the relay can
            // splice it.
            Ok(upgraded) => match upgraded.downcast::<TokioIo<Counted<TcpStream>>>() {
                Ok(parts) => relay(parts.io.into_inner(), parts.read_buf, upstream, host).await,
                Err(upgraded) => {
                    let mut client = TokioIo::new(upgraded);
                    copy(&mut client, upstream, vec![host.bytes.clone()]).await;
                }
            },
            Err(e) => tracing::debug!("CONNECT upgrade failed: {e}"),
        }
    });
    Response::new(empty())
}

/// A request in absolute form (`GET http://host/path`): pass it on over a
/// pooled connection, without hop-by-hop headers and without adding any that
/// would reveal a proxy (`Via`, `X-Forwarded-For`).
async fn forward(
    shared: Arc<Shared>,
    guard: Arc<ConnGuard>,
    mut req: Request<Incoming>,
) -> Response<Body> {
    let uri = req.uri();
    let (Some(host), Some(scheme)) = (uri.host(), uri.scheme_str()) else {
        shared.stats.count_rejected();
        return text(
            StatusCode::BAD_REQUEST,
            "This is a proxy: send requests in absolute form (GET http://host/path), or use CONNECT.",
        );
    };
    if scheme != "http" {
        shared.stats.count_rejected();
        return text(
            StatusCode::BAD_REQUEST,
            "Only http:// requests are forwarded in absolute form; use CONNECT for https.",
        );
    }
    let target = match Target::new(host, uri.port_u16().unwrap_or(80)) {
        Ok(t) => t,
        Err(e) => {
            shared.stats.count_rejected();
            return text(
                StatusCode::BAD_REQUEST,
                &format!("Bad request target: {e}."),
            );
        }
    };
    guard.routed("http", &target);
    let host = shared.stats.host(&target.host(), true);

    let upgrade = wants_upgrade(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    strip_hop_by_hop(&mut parts.headers, upgrade);
    parts.version = Version::HTTP_11;
    let body = CountedBody::up(body, host.bytes.clone())
        .map_err(|e| Box::new(e) as BoxError)
        .boxed();
    let out = Request::from_parts(parts, body);

    let mut resp = match shared.forwarder.client.request(out).await {
        Ok(r) => r,
        Err(e) => return forward_error(&target, &e),
    };
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS
        && let Some(client_upgrade) = client_upgrade
    {
        let origin_upgrade = hyper::upgrade::on(&mut resp);
        let host = host.clone();
        spawn_tunnel(&shared, async move {
            let _guard = guard;
            match tokio::try_join!(client_upgrade, origin_upgrade) {
                Ok((client, origin)) => {
                    let mut client = TokioIo::new(client);
                    let mut origin = TokioIo::new(origin);
                    let mut origin = Counted::new(
                        &mut origin,
                        crate::stats::Side::Target,
                        vec![host.bytes.clone()],
                    );
                    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut origin).await {
                        tracing::debug!("upgraded connection ended: {e}");
                    }
                }
                Err(e) => tracing::debug!("protocol upgrade failed: {e}"),
            }
        });
        let (mut parts, _) = resp.into_parts();
        strip_hop_by_hop(&mut parts.headers, true);
        return Response::from_parts(parts, empty());
    }
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers, false);
    let body = CountedBody::down(body, host.bytes.clone())
        .map_err(|e| Box::new(e) as BoxError)
        .boxed();
    Response::from_parts(parts, body)
}

fn forward_error(target: &Target, err: &hyper_util::client::legacy::Error) -> Response<Body> {
    let mut source: Option<&(dyn StdError + 'static)> = err.source();
    while let Some(e) = source {
        if let Some(ConnectorError::Connect(connect)) = e.downcast_ref::<ConnectorError>() {
            return bad_gateway(connect);
        }
        source = e.source();
    }
    let detail = err
        .source()
        .map(|s| s.to_string())
        .unwrap_or_else(|| err.to_string());
    tracing::debug!(%target, "forwarding failed: {detail}");
    text(
        StatusCode::BAD_GATEWAY,
        &format!("Veil could not get a response from {target}: {detail}."),
    )
}

fn bad_gateway(err: &ConnectError) -> Response<Body> {
    tracing::debug!("connect failed: {err}");
    text(
        StatusCode::BAD_GATEWAY,
        &format!("Veil could not connect: {err}."),
    )
}

fn text(status: StatusCode, message: &str) -> Response<Body> {
    let mut resp = Response::new(
        Full::new(Bytes::from(format!("{message}\n")))
            .map_err(|never| match never {})
            .boxed(),
    );
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}
