//! The response body: either whole, a list of frames sent back to back, or a channel fed by a
//! task that paces the frames in real time.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

/// The body of every response the mock sends.
///
/// A hand-written enum rather than a boxed trait object: the fast path (a whole body) then
/// costs no allocation beyond the `Bytes`, and the paced stream needs nothing more than a
/// channel receiver.
#[derive(Debug)]
pub(crate) enum MockBody {
    /// A complete body, sent at once. `None` once it has been sent.
    Full(Option<Bytes>),
    /// SSE frames available immediately; each is sent as its own data frame.
    Frames(VecDeque<Bytes>),
    /// Frames produced over time by a pacing task. When the client goes away hyper drops
    /// this body, the receiver closes, and the task notices on its next send.
    Paced(mpsc::Receiver<Bytes>),
}

impl MockBody {
    pub(crate) fn full(bytes: impl Into<Bytes>) -> Self {
        MockBody::Full(Some(bytes.into()))
    }

    pub(crate) fn empty() -> Self {
        MockBody::Full(None)
    }
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        let next = match this {
            MockBody::Full(bytes) => bytes.take(),
            MockBody::Frames(frames) => frames.pop_front(),
            MockBody::Paced(rx) => match rx.poll_recv(cx) {
                Poll::Ready(next) => next,
                Poll::Pending => return Poll::Pending,
            },
        };
        Poll::Ready(next.map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        match self {
            MockBody::Full(bytes) => bytes.is_none(),
            MockBody::Frames(frames) => frames.is_empty(),
            MockBody::Paced(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            // An exact hint lets hyper send `content-length` instead of chunked encoding.
            MockBody::Full(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            MockBody::Full(None) => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}
