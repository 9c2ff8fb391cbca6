//! A response body that is copied into the cache while it streams to the
//! client: the client never waits for the whole body, and the copy is given
//! up as soon as it passes the object limit.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::HeaderName;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_cache_semantics::CachePolicy;
use pin_project_lite::pin_project;

use super::{Entry, Fill};
use crate::outbound::{Body, BoxError};

struct Pending {
    fill: Fill,
    policy: CachePolicy,
    vary: Vec<HeaderName>,
    /// The origin's `Date` and status, kept with the entry.
    origin: (http::HeaderValue, http::StatusCode),
    copy: BytesMut,
}

pin_project! {
    pub struct TeeBody {
        #[pin]
        inner: Body,
        limit: u64,
        pending: Option<Box<Pending>>,
    }
}

impl TeeBody {
    pub fn new(
        inner: Body,
        limit: u64,
        fill: Fill,
        policy: CachePolicy,
        vary: Vec<HeaderName>,
        origin: (http::HeaderValue, http::StatusCode),
    ) -> Self {
        // A declared length is only a claim: the copy grows with the bytes
        // that really arrive, from a small start.
        let start = inner
            .size_hint()
            .exact()
            .unwrap_or(0)
            .min(limit)
            .min(64 * 1024);
        let pending = Pending {
            fill,
            policy,
            vary,
            origin,
            copy: BytesMut::with_capacity(usize::try_from(start).unwrap_or(0)),
        };
        Self {
            inner,
            limit,
            pending: Some(Box::new(pending)),
        }
    }
}

/// Stores the complete copy off the data path; the fill (and with it the
/// waiters of collapsed forwarding) is released once the entry is in place.
fn finish(pending: Box<Pending>) {
    let Pending {
        fill,
        policy,
        vary,
        origin: (date, status),
        copy,
    } = *pending;
    // The memory tier weighs the body's length: keep no spare capacity
    // that it would not see.
    let body = if copy.capacity() > copy.len() + copy.len() / 16 {
        Bytes::copy_from_slice(&copy)
    } else {
        copy.freeze()
    };
    let entry = Arc::new(Entry {
        policy,
        vary,
        body,
        date,
        status: Some(status),
    });
    tokio::spawn(fill.store(entry));
}

impl HttpBody for TeeBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        let res = this.inner.as_mut().poll_frame(cx);
        match &res {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref()
                    && let Some(pending) = this.pending.as_mut()
                {
                    if (pending.copy.len() + data.len()) as u64 > *this.limit {
                        pending.fill.too_large();
                        *this.pending = None;
                    } else {
                        pending.copy.extend_from_slice(data);
                    }
                }
                // hyper stops polling once the body says it has ended.
                if this.inner.is_end_stream()
                    && let Some(pending) = this.pending.take()
                {
                    finish(pending);
                }
            }
            Poll::Ready(None) => {
                if let Some(pending) = this.pending.take() {
                    finish(pending);
                }
            }
            // A broken body is not stored; dropping the fill releases waiters.
            Poll::Ready(Some(Err(_))) => *this.pending = None,
            Poll::Pending => {}
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
