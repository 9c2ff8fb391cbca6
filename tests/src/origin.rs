//! A small origin server for tests, with routes that show what arrived:
//!
//! - `/ip`: the caller's IP address;
//! - `/headers`: the request headers, one `name: value` per line;
//! - `/echo`: the request body streamed back;
//! - `/bytes/N`: N bytes of a repeating pattern;
//! - `/ws`: a WebSocket that echoes every message.
//!
//! It counts the TCP connections it accepted, so tests can prove keep-alive.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

type Body = BoxBody<Bytes, hyper::Error>;

/// A running origin; stops when dropped.
pub struct Origin {
    pub addr: SocketAddr,
    connections: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Origin {
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0").await
    }

    /// Binds `addr` (e.g. `[::1]:0`).
    pub async fn start_on(addr: &str) -> Self {
        let listener = TcpListener::bind(addr).await.expect("origin binds");
        let addr = listener.local_addr().expect("origin addr");
        let connections = Arc::new(AtomicU64::new(0));
        let counter = connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, peer)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| route(req, peer));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Self {
            addr,
            connections,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed()
}

async fn route(mut req: Request<Incoming>, peer: SocketAddr) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    let resp = if path == "/ip" {
        Response::new(full(peer.ip().to_string()))
    } else if path == "/headers" {
        let mut text = String::new();
        for (name, value) in req.headers() {
            text.push_str(&format!("{}: {}\n", name, value.to_str().unwrap_or("?")));
        }
        Response::new(full(text))
    } else if path == "/echo" {
        // Stream the body back frame by frame, never holding all of it.
        let body = req.into_body().map_frame(|f| f).boxed();
        Response::new(body)
    } else if let Some(n) = path.strip_prefix("/bytes/") {
        let n: usize = n.parse().unwrap_or(0);
        let chunk = Bytes::from(vec![b'v'; 64 * 1024]);
        let frames = (0..n.div_ceil(chunk.len())).map(move |i| {
            let len = chunk.len().min(n - i * chunk.len());
            Ok::<_, hyper::Error>(Frame::data(chunk.slice(..len)))
        });
        let body = BodyExt::boxed(StreamBody::new(futures_util::stream::iter(frames)));
        let mut resp = Response::new(body);
        resp.headers_mut()
            .insert("content-length", n.to_string().parse().expect("length"));
        resp
    } else if path == "/ws" {
        websocket(&mut req)
    } else {
        let mut resp = Response::new(full("not found"));
        *resp.status_mut() = StatusCode::NOT_FOUND;
        resp
    };
    Ok(resp)
}

fn websocket(req: &mut Request<Incoming>) -> Response<Body> {
    use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
    use tokio_tungstenite::tungstenite::protocol::Role;
    let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
        let mut resp = Response::new(full("not a websocket request"));
        *resp.status_mut() = StatusCode::BAD_REQUEST;
        return resp;
    };
    let upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            None,
        )
        .await;
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_close() {
                break;
            }
            if ws.send(msg).await.is_err() {
                break;
            }
        }
    });
    let mut resp = Response::new(full(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert("upgrade", "websocket".parse().expect("header"));
    h.insert("connection", "upgrade".parse().expect("header"));
    h.insert(
        "sec-websocket-accept",
        derive_accept_key(key.as_bytes()).parse().expect("header"),
    );
    resp
}
