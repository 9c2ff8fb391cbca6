//! An origin whose answers are set by the test, path by path, for the HTTP
//! cache tests. It records every request it receives (method and headers),
//! so a test can count what reached the origin, and it answers conditional
//! requests the way a real origin does: `304 Not Modified` when
//! `If-None-Match` names the current `ETag`, or `If-Modified-Since` equals the
//! current `Last-Modified`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

type Body = BoxBody<Bytes, Infallible>;

/// The answer for one path.
#[derive(Debug, Clone)]
pub struct Script {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// Wait this long before answering.
    pub delay: Duration,
    /// Send the body in 1 KiB chunks without `Content-Length`.
    pub chunked: bool,
}

impl Script {
    /// `200` with `body` and the given headers.
    pub fn ok(body: impl Into<Bytes>, headers: &[(&str, &str)]) -> Self {
        Self {
            status: 200,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.into(),
            delay: Duration::ZERO,
            chunked: false,
        }
    }

    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    pub fn chunked(mut self) -> Self {
        self.chunked = true;
        self
    }
}

/// One request as the origin saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub headers: HeaderMap,
}

#[derive(Default)]
struct State {
    scripts: Mutex<HashMap<String, Script>>,
    seen: Mutex<HashMap<String, Vec<Seen>>>,
}

/// A running scripted origin; stops when dropped.
pub struct ScriptedOrigin {
    pub addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl ScriptedOrigin {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("origin binds");
        let addr = listener.local_addr().expect("origin addr");
        let state = Arc::new(State::default());
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| answer(state.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, state, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sets (or replaces) the answer for `path`.
    pub fn script(&self, path: &str, script: Script) {
        lock(&self.state.scripts).insert(path.to_owned(), script);
    }

    /// Requests for `path` that reached the origin, oldest first.
    pub fn seen(&self, path: &str) -> Vec<Seen> {
        lock(&self.state.seen)
            .get(path)
            .cloned()
            .unwrap_or_default()
    }

    /// How many requests for `path` reached the origin.
    pub fn hits(&self, path: &str) -> usize {
        self.seen(path).len()
    }
}

impl Drop for ScriptedOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn answer(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    lock(&state.seen)
        .entry(path.clone())
        .or_default()
        .push(Seen {
            method: req.method().clone(),
            headers: req.headers().clone(),
        });
    let script = lock(&state.scripts).get(&path).cloned();
    let Some(script) = script else {
        let mut resp = Response::new(full(Bytes::from_static(b"no script")));
        *resp.status_mut() = StatusCode::NOT_FOUND;
        return Ok(resp);
    };
    if !script.delay.is_zero() {
        tokio::time::sleep(script.delay).await;
    }
    let mut headers = HeaderMap::new();
    for (k, v) in &script.headers {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            headers.append(k, v);
        }
    }
    let not_modified = validator_matches(req.headers(), &headers);
    let mut resp = if not_modified {
        let mut resp = Response::new(full(Bytes::new()));
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        resp
    } else if script.chunked {
        let body = script.body.clone();
        let frames = (0..body.len().div_ceil(1024)).map(move |i| {
            let end = body.len().min((i + 1) * 1024);
            Ok::<_, Infallible>(Frame::data(body.slice(i * 1024..end)))
        });
        Response::new(BodyExt::boxed(StreamBody::new(futures_util::stream::iter(
            frames,
        ))))
    } else {
        let mut resp = Response::new(full(script.body.clone()));
        *resp.status_mut() = StatusCode::from_u16(script.status).unwrap_or(StatusCode::OK);
        resp
    };
    resp.headers_mut().extend(headers);
    Ok(resp)
}

fn validator_matches(req: &HeaderMap, resp: &HeaderMap) -> bool {
    let text =
        |h: &HeaderMap, n: HeaderName| h.get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
    if let (Some(tags), Some(etag)) = (text(req, header::IF_NONE_MATCH), text(resp, header::ETAG)) {
        return tags.split(',').any(|t| t.trim() == etag);
    }
    matches!(
        (text(req, header::IF_MODIFIED_SINCE), text(resp, header::LAST_MODIFIED)),
        (Some(a), Some(b)) if a == b
    )
}

fn full(data: Bytes) -> Body {
    Full::new(data).boxed()
}
