use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::ByteCounters;

pin_project! {
    /// An HTTP body that adds the size of each data frame to counters, up for
    /// request bodies and down for response bodies. It can also keep
    /// something alive for as long as the body streams (an upstream's lease).
    pub struct CountedBody<B> {
        #[pin]
        inner: B,
        counters: Vec<Arc<ByteCounters>>,
        up: bool,
        keep: Option<Box<dyn std::any::Any + Send + Sync>>,
    }
}

impl<B> CountedBody<B> {
    pub fn up(inner: B, counters: Vec<Arc<ByteCounters>>) -> Self {
        Self {
            inner,
            counters,
            up: true,
            keep: None,
        }
    }

    pub fn down(inner: B, counters: Vec<Arc<ByteCounters>>) -> Self {
        Self {
            inner,
            counters,
            up: false,
            keep: None,
        }
    }

    /// Keeps `value` until the body is dropped.
    pub fn keeping(mut self, value: impl std::any::Any + Send + Sync) -> Self {
        self.keep = Some(Box::new(value));
        self
    }
}

impl<B: Body<Data = Bytes>> Body for CountedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        let res = this.inner.poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &res
            && let Some(data) = frame.data_ref()
        {
            let n = data.len() as u64;
            for c in this.counters.iter() {
                if *this.up {
                    c.add_up(n);
                } else {
                    c.add_down(n);
                }
            }
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
