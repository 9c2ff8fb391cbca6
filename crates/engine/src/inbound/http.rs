//! HTTP/1.1 on the mixed port: forward requests in absolute form, `CONNECT`
//! tunnels and WebSocket upgrades. Parsing, limits on the request head and the
//! slowloris timeout are hyper's; a request hyper cannot parse gets its 400
//! (or 431 for an oversized head) and the connection closes.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;

use super::forward::forward;
use super::interim::InterimIo;
use super::relay::{copy, relay};
use super::{ConnGuard, spawn_tunnel};
use crate::Target;
use crate::engine::Shared;
use crate::outbound::{Body, ConnectError, OpenError};
use crate::stats::Counted;

pub(super) async fn serve(shared: Arc<Shared>, guard: Arc<ConnGuard>, io: Counted<TcpStream>) {
    let limits = &shared.config.limits;
    let (io, interim) = InterimIo::new(io);
    let service = {
        let shared = shared.clone();
        service_fn(move |mut req: Request<Incoming>| {
            // RFC 9110 15.2: never a 1xx to an HTTP/1.0 client.
            if req.version() == http::Version::HTTP_11 {
                req.extensions_mut().insert(interim.clone());
            }
            handle(shared.clone(), guard.clone(), req)
        })
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
    if let Some(why) = guard.refusal.get() {
        return Ok(text(StatusCode::FORBIDDEN, &format!("{why}.")));
    }
    if let Some(pac) = super::pac::answer(&shared, &guard, &req) {
        return Ok(pac);
    }
    if let Some(creds) = &shared.config.auth {
        if let Some(Err(wait)) = guard.throttled_ip.map(|ip| shared.logins.check(ip)) {
            shared.stats.count_rejected();
            let mut resp = text(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many wrong passwords from this address; try again later.",
            );
            resp.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(wait.as_secs().max(1)),
            );
            return Ok(resp);
        }
        let given = req.headers().get(header::PROXY_AUTHORIZATION);
        let ok = given.is_some_and(|v| creds.matches_basic_header(v.as_bytes()));
        if let Some(ip) = guard.throttled_ip {
            match (given.is_some(), ok) {
                (_, true) => shared.logins.succeeded(ip),
                (true, false) => shared.logins.failed(ip),
                // Asking without credentials first is how HTTP clients log in.
                (false, false) => {}
            }
        }
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
    mut req: Request<Incoming>,
) -> Response<Body> {
    let Some(authority) = req.uri().authority() else {
        return refuse(
            &shared,
            StatusCode::BAD_REQUEST,
            "CONNECT needs a host:port target.",
        );
    };
    let target = match Target::parse_authority(authority.as_str()) {
        Ok(t) => t,
        Err(e) => {
            return refuse(
                &shared,
                StatusCode::BAD_REQUEST,
                &format!("Bad CONNECT target: {e}."),
            );
        }
    };
    guard.routed("connect", &target);
    if guard.wants_host_loopback(&target) {
        return refuse(&shared, StatusCode::FORBIDDEN, super::HOST_ITSELF);
    }
    let opened = match shared.outbound.open(&target).await {
        Ok(o) => o,
        Err(e) => return open_error(&e),
    };
    guard.carried_by(opened.lease.as_ref());
    let fell_back = opened.fell_back.is_some();
    let host = shared.stats.host(&target.host(), false);
    // Only the upgrade goes into the tunnel's task, not the whole request
    // (its head and headers would stay there for the tunnel's life).
    let upgrade = hyper::upgrade::on(&mut req);
    drop(req);
    spawn_tunnel(&shared, async move {
        let tunnel = async {
            match upgrade.await {
                // Take the client's socket back from hyper, so the relay can
                // splice it.
                Ok(upgraded) => match upgraded.downcast::<TokioIo<InterimIo<Counted<TcpStream>>>>()
                {
                    Ok(parts) => {
                        let io = parts.io.into_inner().into_inner();
                        relay(io, parts.read_buf, opened, host, &guard.shared.fds).await;
                    }
                    Err(upgraded) => {
                        let mut client = TokioIo::new(upgraded);
                        let mut counters = vec![host.bytes.clone()];
                        counters.extend(opened.lease.as_ref().map(|l| l.upstream().bytes.clone()));
                        let mut target = opened.stream;
                        copy(&mut client, &mut target, &counters).await;
                    }
                },
                Err(e) => tracing::debug!("CONNECT upgrade failed: {e}"),
            }
        };
        guard.unless_idle(tunnel).await;
    });
    let mut resp = Response::new(empty());
    if fell_back {
        resp.headers_mut()
            .insert(crate::outbound::FALLBACK_HEADER, fallback_value());
    }
    resp
}

/// The fallback header's value: what happened, in words.
pub(super) fn fallback_value() -> HeaderValue {
    HeaderValue::from_static("direct; no upstream could carry this, and fallback_direct is on")
}

/// The answer when a target cannot be opened: 403 for a blocked target, a
/// 502 that says what failed otherwise.
pub(super) fn open_error(err: &OpenError) -> Response<Body> {
    tracing::debug!("cannot open target: {err}");
    match err {
        OpenError::Blocked { .. } | OpenError::Direct(ConnectError::Internal { .. }) => {
            text(StatusCode::FORBIDDEN, &format!("{err}."))
        }
        _ => text(
            StatusCode::BAD_GATEWAY,
            &format!("Veil could not connect: {err}."),
        ),
    }
}

/// Answers a request Veil will not serve, counting it as refused.
pub(super) fn refuse(shared: &Shared, status: StatusCode, message: &str) -> Response<Body> {
    shared.stats.count_rejected();
    text(status, message)
}

pub(super) fn text(status: StatusCode, message: &str) -> Response<Body> {
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

pub(super) fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}
