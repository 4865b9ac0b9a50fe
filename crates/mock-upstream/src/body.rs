//! The response body: either whole, a list of frames sent back to back, or a channel fed by a
//! task that paces the frames in real time.

use std::collections::VecDeque;
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
    /// SSE frames available immediately, then a failure: the connection is cut where the
    /// next frame would be ([`Behavior::StreamBrokenAtStart`](crate::Behavior::StreamBrokenAtStart)).
    /// The flag says whether the body has paused once after its frames: hyper writes what it
    /// holds when a body is not ready, so the frames reach the client before the cut.
    Broken(VecDeque<Bytes>, bool),
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
    type Error = Cut;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Cut>>> {
        let this = self.get_mut();
        let next = match this {
            MockBody::Broken(frames, paused) => {
                if let Some(f) = frames.pop_front() {
                    return Poll::Ready(Some(Ok(Frame::data(f))));
                }
                if !*paused {
                    *paused = true;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                return Poll::Ready(Some(Err(Cut)));
            }
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
            MockBody::Broken(..) => false,
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

/// The failure a [`MockBody::Broken`] body ends with: hyper then drops the connection without
/// finishing the response.
#[derive(Debug)]
pub(crate) struct Cut;

impl std::fmt::Display for Cut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("scripted to cut the stream")
    }
}

impl std::error::Error for Cut {}
