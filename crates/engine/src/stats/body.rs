use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::ByteCounters;

pin_project! {
    /// An HTTP body that adds the size of each data frame to a counter, up
    /// for request bodies and down for response bodies.
    pub struct CountedBody<B> {
        #[pin]
        inner: B,
        counters: Arc<ByteCounters>,
        up: bool,
    }
}

impl<B> CountedBody<B> {
    pub fn up(inner: B, counters: Arc<ByteCounters>) -> Self {
        Self {
            inner,
            counters,
            up: true,
        }
    }
    pub fn down(inner: B, counters: Arc<ByteCounters>) -> Self {
        Self {
            inner,
            counters,
            up: false,
        }
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
            if *this.up {
                this.counters.add_up(data.len() as u64);
            } else {
                this.counters.add_down(data.len() as u64);
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
