//! Plain-HTTP forwarding: a request in absolute form (`GET http://host/path`)
//! is passed on over a pooled keep-alive connection, directly or through an
//! upstream, without hop-by-hop headers and without adding any header that
//! would reveal a proxy (`Via`, `X-Forwarded-For`). WebSocket upgrades over
//! plain HTTP take the same way and then become a two-way copy.

use std::error::Error as StdError;
use std::sync::Arc;

use http::header;
use http::{Request, Response, StatusCode, Version};
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use super::ConnGuard;
use super::headers::{strip_hop_by_hop, wants_upgrade};
use super::http::{empty, refuse, text};
use super::interim::Interim;
use super::spawn_tunnel;
use crate::Target;
use crate::cache::{Lookup, Revalidated};
use crate::engine::Shared;
use crate::outbound::connector::ConnectorError;
use crate::outbound::{Body, BoxError, ConnectError, Direct, HttpConnector};
use crate::routing::Action;
use crate::stats::{ByteCounters, CountedBody};
use crate::upstream::{Lease, PoolError, ProxyKind, UpstreamError};

/// Pooled keep-alive connections to origins, for direct plain HTTP.
#[derive(Debug, Clone)]
pub struct HttpForwarder {
    client: Client<HttpConnector, Body>,
}

impl HttpForwarder {
    pub(crate) fn new(direct: Direct, fds: crate::fd_budget::FdBudget) -> Self {
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(std::time::Duration::from_secs(60))
            .pool_max_idle_per_host(64)
            .build(HttpConnector::new(direct, fds));
        Self { client }
    }
}

pub(super) async fn forward(
    shared: Arc<Shared>,
    guard: Arc<ConnGuard>,
    mut req: Request<Incoming>,
) -> Response<Body> {
    let uri = req.uri();
    let (Some(host), Some(scheme)) = (uri.host(), uri.scheme_str()) else {
        return refuse(
            &shared,
            StatusCode::BAD_REQUEST,
            "This is a proxy: send requests in absolute form (GET http://host/path), or use CONNECT.",
        );
    };
    if scheme != "http" {
        return refuse(
            &shared,
            StatusCode::BAD_REQUEST,
            "Only http:// requests are forwarded in absolute form; use CONNECT for https.",
        );
    }
    let target = match Target::new(host, uri.port_u16().unwrap_or(80)) {
        Ok(t) => t,
        Err(e) => {
            return refuse(
                &shared,
                StatusCode::BAD_REQUEST,
                &format!("Bad request target: {e}."),
            );
        }
    };
    guard.routed("http", &target);
    if guard.wants_host_loopback(&target) {
        return refuse(&shared, StatusCode::FORBIDDEN, super::HOST_ITSELF);
    }
    let action = shared.outbound.route(&target);
    if action == Action::Block {
        let blocked = format!("{target} is blocked by a rule in Veil's config.");
        return refuse(&shared, StatusCode::FORBIDDEN, &blocked);
    }
    let host = shared.stats.host(&target.host(), true);

    let upgrade = wants_upgrade(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    strip_hop_by_hop(&mut parts.headers, upgrade);
    set_host_from_target(&mut parts);
    parts.version = Version::HTTP_11;
    let (method, uri) = (parts.method.clone(), parts.uri.clone());
    // Requests Veil makes on its own behalf (a revalidation, a refetch after
    // a 304 that matched nothing) pass the origin's 1xx on too.
    let interim = parts.extensions.get::<Interim>().cloned();
    let lookup = if upgrade {
        Lookup::Bypass
    } else {
        let route = shared.cache.route_id(&route_of(&shared, action));
        shared.cache.lookup(&parts, &route).await
    };
    let body = body.map_err(|e| Box::new(e) as BoxError).boxed();
    let (mut out, mut fill, mut stale) = match lookup {
        Lookup::Serve(resp) => return resp,
        Lookup::Bypass => (Request::from_parts(parts, body), None, None),
        Lookup::Miss(fill) => (Request::from_parts(parts, body), Some(fill), None),
        Lookup::Revalidate { request, stale } => (
            with_interim(Request::from_parts(*request, empty()), &interim),
            None,
            Some(stale),
        ),
    };

    // Twice at most: a revalidation whose 304 matches nothing is fetched
    // again in full (the second round has no `stale`).
    let mut client_upgrade = client_upgrade;
    loop {
        let sent = match action {
            Action::Proxy => {
                let sent = send_upstream(&shared, &target, out, &host.bytes);
                match crate::dns::for_upstream_traffic(sent).await {
                    Ok(sent) => Ok(sent),
                    Err(Failed::Answered(resp)) => Err(resp),
                    Err(Failed::Pool { error, unsent }) => match unsent {
                        Some(out) if shared.outbound.may_fall_back(&error) => {
                            tracing::warn!(
                                %target,
                                "no upstream could carry the request ({error}); going direct, \
                                 as proxy.fallback_direct allows"
                            );
                            send_direct(&shared, &target, out, &host.bytes).await.map(
                                |(mut resp, lease)| {
                                    resp.headers_mut().insert(
                                        crate::outbound::FALLBACK_HEADER,
                                        super::http::fallback_value(),
                                    );
                                    (resp, lease)
                                },
                            )
                        }
                        _ => Err(pool_error(error)),
                    },
                }
            }
            _ => send_direct(&shared, &target, out, &host.bytes).await,
        };
        let (mut resp, lease) = match sent {
            Ok(r) => r,
            Err(resp) => return resp,
        };
        guard.carried_by(lease.as_ref());
        let mut counters = vec![host.bytes.clone()];
        counters.extend(lease.as_ref().map(|l| l.upstream().bytes.clone()));
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS
            && let Some(client_upgrade) = client_upgrade.take()
        {
            let origin_upgrade = hyper::upgrade::on(&mut resp);
            spawn_tunnel(&shared, async move {
                let _lease = lease;
                let tunnel = async {
                    match tokio::try_join!(client_upgrade, origin_upgrade) {
                        Ok((client, origin)) => {
                            let mut client = TokioIo::new(client);
                            let mut origin = TokioIo::new(origin);
                            super::relay::copy(&mut client, &mut origin, &counters).await;
                        }
                        Err(e) => tracing::debug!("protocol upgrade failed: {e}"),
                    }
                };
                guard.unless_idle(tunnel).await;
            });
            let (mut parts, _) = resp.into_parts();
            strip_hop_by_hop(&mut parts.headers, true);
            return Response::from_parts(parts, empty());
        }
        let (mut parts, body) = resp.into_parts();
        strip_hop_by_hop(&mut parts.headers, false);
        let status = parts.status;
        let body = CountedBody::down(body, counters).keeping(lease);
        let resp = Response::from_parts(parts, body.map_err(|e| Box::new(e) as BoxError).boxed());
        if let Some(stale) = stale.take() {
            match shared.cache.revalidated(stale, resp).await {
                Revalidated::Done(resp) => return resp,
                Revalidated::Refetch { request, fill: f } => {
                    out = with_interim(Request::from_parts(*request, empty()), &interim);
                    fill = Some(f);
                    continue;
                }
            }
        }
        if let Some(fill) = fill {
            return fill.response(resp);
        }
        shared
            .cache
            .invalidate_after(&method, &uri, status, resp.headers())
            .await;
        return resp;
    }
}

/// What the cache keeps as the route of a response: `direct`, or the
/// upstreams the request may take (all of them, in a stable order: which one
/// of the set carries a request is the pool's choice, not a change of route).
fn route_of(shared: &Shared, action: Action) -> String {
    if action != Action::Proxy {
        return "direct".to_owned();
    }
    let mut urls: Vec<String> = shared
        .outbound
        .pool
        .upstreams()
        .iter()
        .map(|u| u.spec().url.to_string())
        .collect();
    urls.sort();
    format!("proxy {}", urls.join(" "))
}

/// RFC 9112 §3.2.2: a proxy replaces the `Host` of an absolute-form request
/// with the target's authority. The cache keys stored responses by the URL,
/// so a client's own `Host` (another site on a shared IP or CDN) would put
/// that site's answer in every other client's cache under this URL.
fn set_host_from_target(parts: &mut http::request::Parts) {
    let Some(authority) = parts.uri.authority() else {
        return;
    };
    // Any userinfo is not part of the Host.
    let host = authority.as_str().rsplit('@').next().unwrap_or_default();
    match http::HeaderValue::from_str(host) {
        Ok(value) => {
            parts.headers.insert(http::header::HOST, value);
        }
        Err(_) => {
            parts.headers.remove(http::header::HOST);
        }
    }
}

/// `req` with the client's 1xx queue, so the origin's interim responses to
/// it reach the client.
fn with_interim(mut req: Request<Body>, interim: &Option<Interim>) -> Request<Body> {
    if let Some(interim) = interim {
        req.extensions_mut().insert(interim.clone());
    }
    req
}

type Sent = Result<(Response<Incoming>, Option<Lease>), Response<Body>>;

/// Why no upstream gave an answer.
enum Failed {
    /// No upstream could carry the request; `unsent` is the request when it
    /// can still go another way (its body was not consumed).
    Pool {
        error: PoolError,
        unsent: Option<Request<Body>>,
    },
    /// The answer for the client is already known.
    Answered(Response<Body>),
}

fn counted(body: Body, counters: Vec<Arc<ByteCounters>>) -> Body {
    CountedBody::up(body, counters).boxed()
}

async fn send_direct(
    shared: &Shared,
    target: &Target,
    req: Request<Body>,
    host: &Arc<ByteCounters>,
) -> Sent {
    let mut req = req.map(|b| counted(b, vec![host.clone()]));
    if let Some(interim) = req.extensions().get::<Interim>().cloned() {
        interim.watch(&mut req);
    }
    match shared.forwarder.client.request(req).await {
        Ok(resp) => Ok((resp, None)),
        Err(e) => Err(direct_error(target, &e)),
    }
}

/// Sends through the pool's upstreams in strategy order. A request without
/// a body is retried on the next upstream when one fails before answering;
/// one with a body cannot be replayed, so its failure is final.
async fn send_upstream(
    shared: &Shared,
    target: &Target,
    req: Request<Body>,
    host: &Arc<ByteCounters>,
) -> Result<(Response<Incoming>, Option<Lease>), Failed> {
    let pool = &shared.outbound.pool;
    let candidates = pool.candidates();
    if candidates.is_empty() {
        return Err(Failed::Pool {
            error: pool.all_down(),
            unsent: Some(req),
        });
    }
    let replayable = req.body().is_end_stream();
    let (parts, body) = req.into_parts();
    let interim = parts.extensions.get::<Interim>().cloned();
    let mut body = Some(body);
    let mut errors = Vec::new();
    for upstream in candidates {
        let this_body = match body.take() {
            Some(b) => counted(b, vec![host.clone(), upstream.bytes.clone()]),
            None if replayable => empty(),
            None => break,
        };
        let mut req = Request::from_parts(clone_parts(&parts), this_body);
        if let Some(interim) = &interim {
            interim.watch(&mut req);
        }
        if let Some(auth) = &upstream.dialer.auth_header {
            req.headers_mut()
                .insert(header::PROXY_AUTHORIZATION, auth.clone());
        }
        let lease = upstream.lease();
        let failure = match upstream.client.request(req).await {
            Ok(resp)
                if resp.status() == StatusCode::PROXY_AUTHENTICATION_REQUIRED
                    && upstream.spec().url.kind != ProxyKind::Socks5 =>
            {
                UpstreamError::AuthRejected {
                    name: upstream.name().to_owned(),
                    detail: "407 Proxy Authentication Required".into(),
                }
            }
            Ok(resp) => {
                pool.record_success(&upstream);
                return Ok((resp, Some(lease)));
            }
            Err(e) => match find_source::<UpstreamError>(&e).cloned() {
                Some(e) => e,
                None => {
                    // The upstream took the request and the exchange broke
                    // later: not something another upstream can fix.
                    return Err(Failed::Answered(direct_error(target, &e)));
                }
            },
        };
        if failure.is_upstream_fault() {
            pool.record_failure(&upstream, &failure.to_string());
        }
        let retry = failure.is_upstream_fault() && replayable;
        errors.push(failure);
        if !retry {
            break;
        }
    }
    Err(Failed::Pool {
        error: PoolError(errors),
        // A request without a body can be sent again, another way.
        unsent: replayable.then(|| Request::from_parts(parts, empty())),
    })
}

fn clone_parts(parts: &http::request::Parts) -> http::request::Parts {
    let mut req = Request::new(());
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = parts.uri.clone();
    *req.version_mut() = parts.version;
    *req.headers_mut() = parts.headers.clone();
    req.into_parts().0
}

/// The first error of type `E` in `err`'s chain of sources: how the
/// connector's own error comes back out of hyper's client error.
fn find_source<E: StdError + 'static>(err: &hyper_util::client::legacy::Error) -> Option<&E> {
    let mut source: Option<&(dyn StdError + 'static)> = err.source();
    while let Some(e) = source {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        source = e.source();
    }
    None
}

fn pool_error(err: PoolError) -> Response<Body> {
    let err = crate::outbound::OpenError::Upstream(err);
    tracing::debug!("no upstream could carry the request: {err}");
    text(
        StatusCode::BAD_GATEWAY,
        &format!("Veil could not connect: {err}."),
    )
}

fn direct_error(target: &Target, err: &hyper_util::client::legacy::Error) -> Response<Body> {
    if let Some(ConnectorError::Connect(connect)) = find_source::<ConnectorError>(err) {
        tracing::debug!("connect failed: {connect}");
        if matches!(connect, ConnectError::Internal { .. }) {
            return text(StatusCode::FORBIDDEN, &format!("{connect}."));
        }
        return text(
            StatusCode::BAD_GATEWAY,
            &format!("Veil could not connect: {connect}."),
        );
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
