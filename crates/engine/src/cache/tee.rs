//! A response body that is copied into the cache while it streams to the
//! client: the client never waits for the whole body, and the copy is given
//! up as soon as it passes the object limit.
//!
//! The origin's body is read by a task of its own, not by the client's
//! connection: a client that stops reading cannot stall the fill, so the
//! requests waiting for it (collapsed forwarding) get the stored response
//! as soon as the origin has sent it. Up to the object limit the frames the
//! client has not read yet wait in a channel; they are the very buffers the
//! copy holds (reference-counted), so this costs no memory beyond the copy.
//! Past the limit the copy is given up (which releases the waiters, who
//! fetch for themselves) and the client reads the rest of the origin's body
//! directly, at its own pace. A client that goes away ends the fill too.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::HeaderName;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use http_cache_semantics::CachePolicy;
use tokio::sync::mpsc;

use super::{Entry, Fill};
use crate::outbound::{Body, BoxError};

struct Pending {
    fill: Fill,
    policy: CachePolicy,
    vary: Vec<HeaderName>,
    /// The origin's `Date` and status, kept with the entry.
    origin: (http::HeaderValue, http::StatusCode),
    /// The body so far, as the frames arrived (shared with the client's
    /// channel); joined once when the body ends.
    copy: Vec<Bytes>,
    len: u64,
}

/// What the reading task sends the client.
enum Msg {
    Frame(Result<Frame<Bytes>, BoxError>),
    /// The copy was given up: read the rest yourself.
    Rest(Body),
}

/// The client's side: frames from the reading task, then possibly the rest
/// of the origin's body.
pub struct TeeBody {
    rx: mpsc::UnboundedReceiver<Msg>,
    rest: Option<Body>,
    hint: SizeHint,
    done: bool,
}

impl TeeBody {
    /// Starts reading `inner` for the cache and returns the client's body.
    pub fn spawn(
        inner: Body,
        limit: u64,
        fill: Fill,
        policy: CachePolicy,
        vary: Vec<HeaderName>,
        origin: (http::HeaderValue, http::StatusCode),
    ) -> Self {
        let hint = inner.size_hint();
        let pending = Pending {
            fill,
            policy,
            vary,
            origin,
            copy: Vec::new(),
            len: 0,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(read_for_cache(inner, limit, Box::new(pending), tx));
        Self {
            rx,
            rest: None,
            hint,
            done: false,
        }
    }
}

/// Reads the origin's body into the copy and the client's channel until it
/// ends (stores the copy), passes the limit (hands the rest to the client),
/// fails, or the client goes away (stores nothing).
async fn read_for_cache(
    mut inner: Body,
    limit: u64,
    mut pending: Box<Pending>,
    tx: mpsc::UnboundedSender<Msg>,
) {
    loop {
        let Some(frame) = inner.frame().await else {
            finish(pending).await;
            return;
        };
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) => {
                // A broken body is not stored; dropping the fill releases
                // the waiters.
                let _ = tx.send(Msg::Frame(Err(e)));
                return;
            }
        };
        if let Some(data) = frame.data_ref() {
            let len = pending.len + data.len() as u64;
            if len > limit {
                pending.fill.too_large();
                drop(pending);
                let _ = tx.send(Msg::Frame(Ok(frame)));
                let _ = tx.send(Msg::Rest(inner));
                return;
            }
            pending.len = len;
            pending.copy.push(data.clone());
            pending.fill.progress(len);
        }
        if inner.is_end_stream() {
            // The last frame goes to the client once the entry is in place:
            // a client that has the whole response and asks again finds it.
            finish(pending).await;
            let _ = tx.send(Msg::Frame(Ok(frame)));
            return;
        }
        if tx.send(Msg::Frame(Ok(frame))).is_err() {
            // The client is gone.
            return;
        }
    }
}

/// Stores the complete copy; the fill (and with it the waiters of collapsed
/// forwarding) is released once the entry is in place.
async fn finish(pending: Box<Pending>) {
    let Pending {
        fill,
        policy,
        vary,
        origin: (date, status),
        copy,
        len,
    } = *pending;
    let body = match copy.len() {
        0 => Bytes::new(),
        // Copied even when one frame: a frame may be a slice of a larger
        // read buffer, which the memory tier (weighing the length) would
        // not see.
        _ => {
            let mut joined = BytesMut::with_capacity(usize::try_from(len).unwrap_or(0));
            for part in copy {
                joined.extend_from_slice(&part);
            }
            joined.freeze()
        }
    };
    let route = Some(fill.route.clone());
    let entry = Arc::new(Entry {
        policy,
        vary,
        body,
        date,
        status: Some(status),
        route,
    });
    fill.store(entry).await;
}

impl HttpBody for TeeBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            if let Some(rest) = self.rest.as_mut() {
                let polled = Pin::new(rest).poll_frame(cx);
                if let Poll::Ready(None) = polled {
                    self.done = true;
                }
                return polled;
            }
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(Msg::Frame(frame))) => return Poll::Ready(Some(frame)),
                Poll::Ready(Some(Msg::Rest(body))) => self.rest = Some(body),
                Poll::Ready(None) => {
                    self.done = true;
                    return Poll::Ready(None);
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.rest {
            Some(rest) => rest.is_end_stream(),
            None => self.done,
        }
    }

    fn size_hint(&self) -> SizeHint {
        self.hint
    }
}
