//! The response body the gateway sends: either bytes it made itself, or an upstream body
//! passed through frame by frame as it arrives (nothing buffered), watched for a mid-stream
//! `event: error` so that the key's state still learns of it.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

use super::attempt::StreamWatch;

/// The error type of response bodies.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A response body of the gateway.
#[derive(Debug)]
pub(crate) enum GatewayBody {
    /// A body made whole, such as an error the gateway answers itself.
    Full(Option<Bytes>),
    /// An upstream body, passed through as it arrives.
    Upstream(Box<Upstream>),
}

/// An upstream body and, for event streams, the scanner that watches it.
#[derive(Debug)]
pub(crate) struct Upstream {
    /// Frames already read (a stream's held preamble), sent first and unchanged. The watch
    /// has seen them.
    pub(crate) held: VecDeque<Bytes>,
    pub(crate) inner: crate::upstream::TimedBody,
    pub(crate) watch: Option<StreamWatch>,
}

impl GatewayBody {
    /// A whole body.
    pub(crate) fn full(bytes: impl Into<Bytes>) -> Self {
        GatewayBody::Full(Some(bytes.into()))
    }
}

impl Body for GatewayBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            GatewayBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            GatewayBody::Upstream(up) => {
                if let Some(b) = up.held.pop_front() {
                    return Poll::Ready(Some(Ok(Frame::data(b))));
                }
                let frame = ready!(Pin::new(&mut up.inner).poll_frame(cx));
                if let (Some(Ok(f)), Some(w)) = (&frame, &mut up.watch)
                    && let Some(data) = f.data_ref()
                {
                    w.feed(data);
                }
                if frame.is_none()
                    && let Some(w) = &mut up.watch
                {
                    w.finish();
                }
                Poll::Ready(frame)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            GatewayBody::Full(b) => b.is_none(),
            GatewayBody::Upstream(up) => up.held.is_empty() && up.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            GatewayBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            GatewayBody::Full(None) => SizeHint::with_exact(0),
            GatewayBody::Upstream(up) if up.held.is_empty() => up.inner.size_hint(),
            // The held frames' length is known, the rest's is not: no exact hint.
            GatewayBody::Upstream(_) => SizeHint::default(),
        }
    }
}

/// Splits a server-sent event stream into events, keeping only what classification needs:
/// the `event:` name and the `data:` payload of the event being read. Lines longer than
/// [`MAX_EVENT`] are cut, so a hostile stream cannot grow it.
#[derive(Debug, Default)]
pub(crate) struct SseScanner {
    line: Vec<u8>,
    event: Option<String>,
    data: Vec<u8>,
}

/// The most of one event kept for classification; error events are far smaller.
const MAX_EVENT: usize = 64 * 1024;

impl SseScanner {
    /// Feeds bytes; calls `on_event(event, data)` for each complete event.
    pub(crate) fn feed(
        &mut self,
        mut bytes: &[u8],
        on_event: &mut impl FnMut(Option<&str>, &[u8]),
    ) {
        while !bytes.is_empty() {
            match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.push(&bytes[..i]);
                    bytes = &bytes[i + 1..];
                    let line = std::mem::take(&mut self.line);
                    self.line_done(&line, on_event);
                    self.line = line;
                    self.line.clear();
                }
                None => {
                    self.push(bytes);
                    break;
                }
            }
        }
    }

    fn push(&mut self, part: &[u8]) {
        let room = MAX_EVENT.saturating_sub(self.line.len());
        self.line.extend_from_slice(&part[..part.len().min(room)]);
    }

    fn line_done(&mut self, line: &[u8], on_event: &mut impl FnMut(Option<&str>, &[u8])) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            if !self.data.is_empty() || self.event.is_some() {
                on_event(self.event.as_deref(), &self.data);
            }
            self.event = None;
            self.data.clear();
        } else if let Some(v) = line.strip_prefix(b"event:") {
            self.event = Some(String::from_utf8_lossy(v.trim_ascii()).into_owned());
        } else if let Some(v) = line.strip_prefix(b"data:") {
            if !self.data.is_empty() {
                self.data.push(b'\n');
            }
            let v = v.strip_prefix(b" ").unwrap_or(v);
            let room = MAX_EVENT.saturating_sub(self.data.len());
            self.data.extend_from_slice(&v[..v.len().min(room)]);
        }
    }

    /// Ends the stream: an event not followed by a blank line still counts.
    pub(crate) fn finish(&mut self, on_event: &mut impl FnMut(Option<&str>, &[u8])) {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.line_done(&line, on_event);
        }
        self.line_done(b"", on_event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(chunks: &[&[u8]]) -> Vec<(Option<String>, String)> {
        let mut s = SseScanner::default();
        let mut out = Vec::new();
        let mut f = |e: Option<&str>, d: &[u8]| {
            out.push((
                e.map(str::to_owned),
                String::from_utf8_lossy(d).into_owned(),
            ))
        };
        for c in chunks {
            s.feed(c, &mut f);
        }
        s.finish(&mut f);
        out
    }

    #[test]
    fn splits_events_across_chunk_boundaries() {
        let got = events(&[
            b"event: message_start\ndata: {\"a\":1}\n\nev",
            b"ent: error\r\ndata: {\"type\":\"error\"",
            b"}\r\n\r\ndata: [DONE]\n\n",
        ]);
        assert_eq!(
            got,
            vec![
                (Some("message_start".into()), "{\"a\":1}".into()),
                (Some("error".into()), "{\"type\":\"error\"}".into()),
                (None, "[DONE]".into()),
            ]
        );
    }

    #[test]
    fn keeps_a_trailing_event_without_blank_line() {
        assert_eq!(events(&[b"data: x"]), vec![(None, "x".into())]);
    }
}
