//! `GET /proxy.pac` on the mixed port: the PAC file made from the routing
//! in force, for apps and desktops set to "automatic" with Veil's URL. Only
//! an origin-form request for exactly this path is answered here (a proxy
//! request always names a host), and only to clients on this computer: the
//! bypass list and rules are the user's business. It is answered before
//! the proxy login, since a desktop fetching a PAC URL sends none.
//! `?fail-open` gives the variant that falls back to `DIRECT`.

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use super::ConnGuard;
use super::http::{refuse, text};
use crate::engine::Shared;
use crate::outbound::Body;

pub const PATH: &str = "/proxy.pac";
const CONTENT_TYPE: &str = "application/x-ns-proxy-autoconfig";

/// The answer when `req` asks for the PAC file; `None` for anything else.
pub(super) fn answer(
    shared: &Shared,
    guard: &ConnGuard,
    req: &Request<Incoming>,
) -> Option<Response<Body>> {
    let uri = req.uri();
    if uri.authority().is_some() || uri.path() != PATH {
        return None;
    }
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return Some(refuse(
            shared,
            StatusCode::METHOD_NOT_ALLOWED,
            "The PAC file is fetched with GET.",
        ));
    }
    if !crate::target::canonical_ip(guard.entry.client.ip()).is_loopback() {
        return Some(refuse(
            shared,
            StatusCode::FORBIDDEN,
            "Veil serves its PAC file to this computer only.",
        ));
    }
    let fail_open = uri
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "fail-open"));
    let proxy = loopback_if_unspecified(shared.listen);
    let mut resp = text(
        StatusCode::OK,
        &shared.outbound.routing().pac(proxy, fail_open),
    );
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    // A rule change must reach the next fetch.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Some(resp)
}

/// The address a client on this computer dials for a wildcard listener.
fn loopback_if_unspecified(mut addr: std::net::SocketAddr) -> std::net::SocketAddr {
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    addr
}
