//! Turning a [`Behavior`] into the response a provider would send, in the dialect of the
//! route that was called. One file per provider family; this one holds what they share.

mod anthropic;
mod gemini;
mod openai;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::{Response, StatusCode};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::body::MockBody;
use crate::route::{Dialect, Op};
use crate::script::Behavior;

/// What a reply needs to know about the request.
#[derive(Debug, Clone)]
pub(crate) struct Ctx<'a> {
    pub(crate) dialect: Dialect,
    pub(crate) op: &'a Op,
    /// The model named in the body (or the path, for Gemini and Azure).
    pub(crate) model: String,
    /// The request asked for a stream (`"stream": true`, or Gemini's stream method).
    pub(crate) stream: bool,
    /// OpenAI's `stream_options.include_usage`.
    pub(crate) include_usage: bool,
    /// Gemini's `alt=sse`; without it Gemini streams one JSON array.
    pub(crate) sse: bool,
    pub(crate) key: Option<&'a str>,
    pub(crate) chunks: &'a [String],
    /// A rough prompt size, for plausible usage numbers.
    pub(crate) prompt_tokens: u64,
    /// A per-request sequence number, for unique ids.
    pub(crate) seq: u64,
    pub(crate) now: u64,
}

impl Ctx<'_> {
    pub(crate) fn text(&self) -> String {
        self.chunks.concat()
    }

    pub(crate) fn completion_tokens(&self) -> u64 {
        self.chunks.len() as u64
    }

    fn generates(&self) -> bool {
        matches!(
            self.op,
            Op::ChatCompletions | Op::Responses | Op::Messages | Op::Generate { .. }
        )
    }
}

/// Errors with a documented shape in every dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    RateLimited(Duration),
    InsufficientQuota,
    SpendCap,
    InvalidKey,
    Overloaded,
    ServerError,
    NotFound,
    /// Anthropic only: the `anthropic-version` header is required.
    MissingVersion,
    RegionBlocked,
}

/// Counters the server keeps whatever the recording mode, because they cost one atomic add
/// on rare paths only.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// Paced streams whose client went away before the end.
    pub(crate) cancelled_streams: AtomicU64,
}

/// Headers in the order they are sent; values are owned because most are computed.
pub(crate) type Headers = Vec<(&'static str, String)>;

/// The answer to one request.
pub(crate) fn answer(ctx: &Ctx<'_>, behavior: &Behavior, stats: &Arc<Stats>) -> Response<MockBody> {
    match behavior {
        Behavior::Ok | Behavior::Delay(_) => ok(ctx, None),
        Behavior::SlowStream { chunk_interval } if ctx.generates() => {
            let ctx = Ctx {
                stream: true,
                ..ctx.clone()
            };
            ok(&ctx, Some((*chunk_interval, stats)))
        }
        Behavior::StreamErrorMidway if ctx.generates() => {
            let ctx = Ctx {
                stream: true,
                ..ctx.clone()
            };
            let frames = match ctx.dialect {
                Dialect::OpenAi | Dialect::Azure => openai::midway_error(&ctx),
                Dialect::Anthropic => anthropic::midway_error(&ctx),
                Dialect::Gemini => gemini::midway_error(&ctx),
            };
            let headers = success_headers(&ctx);
            sse(headers, frames, None)
        }
        Behavior::StreamErrorAtStart if ctx.generates() => {
            let ctx = Ctx {
                stream: true,
                ..ctx.clone()
            };
            let frames = match ctx.dialect {
                Dialect::OpenAi | Dialect::Azure => openai::error_at_start(&ctx),
                Dialect::Anthropic => anthropic::error_at_start(&ctx),
                Dialect::Gemini => gemini::error_at_start(&ctx),
            };
            let headers = success_headers(&ctx);
            sse(headers, frames, None)
        }
        Behavior::StreamBrokenAtStart if ctx.generates() => {
            let ctx = Ctx {
                stream: true,
                ..ctx.clone()
            };
            let mut frames = match ctx.dialect {
                Dialect::OpenAi | Dialect::Azure => openai::error_at_start(&ctx),
                Dialect::Anthropic => anthropic::error_at_start(&ctx),
                Dialect::Gemini => Vec::new(),
            };
            // The opening without its error event.
            frames.pop();
            let mut resp = sse(success_headers(&ctx), Vec::new(), None);
            *resp.body_mut() = MockBody::Broken(VecDeque::from(frames), false);
            resp
        }
        Behavior::SlowStream { .. }
        | Behavior::StreamErrorMidway
        | Behavior::StreamErrorAtStart
        | Behavior::StreamBrokenAtStart => ok(ctx, None),
        // The service closes the connection before asking for an answer.
        Behavior::CloseConnection => ok(ctx, None),
        Behavior::RateLimited { retry_after } => failure(ctx, Failure::RateLimited(*retry_after)),
        Behavior::RateLimitedFor { model, retry_after } => {
            // Gemini's path names the model as `models/{model}` or bare; compare bare names.
            let asked = ctx.model.strip_prefix("models/").unwrap_or(&ctx.model);
            if asked == model.strip_prefix("models/").unwrap_or(model) {
                failure(ctx, Failure::RateLimited(*retry_after))
            } else {
                ok(ctx, None)
            }
        }
        Behavior::RegionBlocked => failure(ctx, Failure::RegionBlocked),
        Behavior::InsufficientQuota => failure(ctx, Failure::InsufficientQuota),
        Behavior::SpendCap => failure(ctx, Failure::SpendCap),
        Behavior::InvalidKey => failure(ctx, Failure::InvalidKey),
        Behavior::Overloaded => failure(ctx, Failure::Overloaded),
        Behavior::ServerError => failure(ctx, Failure::ServerError),
        Behavior::Raw {
            status,
            headers,
            body,
        } => {
            let mut resp = Response::new(MockBody::full(body.clone()));
            *resp.status_mut() =
                StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            for (name, value) in headers {
                if let (Ok(n), Ok(v)) = (
                    HeaderName::from_bytes(name.as_bytes()),
                    HeaderValue::from_str(value),
                ) {
                    resp.headers_mut().append(n, v);
                }
            }
            resp
        }
    }
}

/// The documented error response of the dialect.
pub(crate) fn failure(ctx: &Ctx<'_>, failure: Failure) -> Response<MockBody> {
    let (status, headers, body) = match ctx.dialect {
        Dialect::OpenAi => openai::failure(ctx, failure),
        Dialect::Azure => openai::azure_failure(ctx, failure),
        Dialect::Anthropic => anthropic::failure(ctx, failure),
        Dialect::Gemini => gemini::failure(ctx, failure),
    };
    json(status, headers, &body)
}

fn ok(ctx: &Ctx<'_>, pace: Option<(Duration, &Arc<Stats>)>) -> Response<MockBody> {
    let headers = success_headers(ctx);
    if ctx.stream && ctx.generates() {
        let frames = match ctx.dialect {
            Dialect::OpenAi | Dialect::Azure => openai::stream(ctx),
            Dialect::Anthropic => anthropic::stream(ctx),
            Dialect::Gemini if !ctx.sse => {
                // Without `alt=sse` Gemini sends the chunks as one JSON array.
                let body = Value::Array(gemini::chunks(ctx));
                return json(StatusCode::OK, headers, &body);
            }
            Dialect::Gemini => gemini::stream(ctx),
        };
        return sse(headers, frames, pace);
    }
    let body = match ctx.dialect {
        Dialect::OpenAi | Dialect::Azure => openai::body(ctx),
        Dialect::Anthropic => anthropic::body(ctx),
        Dialect::Gemini => gemini::body(ctx),
    };
    json(StatusCode::OK, headers, &body)
}

fn success_headers(ctx: &Ctx<'_>) -> Headers {
    match ctx.dialect {
        Dialect::OpenAi => openai::headers(ctx),
        Dialect::Azure => openai::azure_headers(ctx),
        Dialect::Anthropic => anthropic::headers(ctx),
        Dialect::Gemini => Vec::new(),
    }
}

fn content_type(dialect_json: bool) -> &'static str {
    if dialect_json {
        "application/json"
    } else {
        "text/event-stream"
    }
}

fn json(status: StatusCode, headers: Headers, body: &Value) -> Response<MockBody> {
    let bytes = serde_json::to_vec(body).expect("a serde_json::Value always serialises");
    let mut resp = Response::new(MockBody::full(bytes));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type(true)));
    add_headers(&mut resp, headers);
    resp
}

fn sse(
    headers: Headers,
    frames: Vec<Bytes>,
    pace: Option<(Duration, &Arc<Stats>)>,
) -> Response<MockBody> {
    let body = match pace {
        None => MockBody::Frames(VecDeque::from(frames)),
        Some((interval, stats)) => {
            // A channel of one: the pacing task cannot run ahead of the client, so each
            // chunk really leaves `interval` after the previous one.
            let (tx, rx) = mpsc::channel(1);
            let stats = Arc::clone(stats);
            tokio::spawn(async move {
                for (i, frame) in frames.into_iter().enumerate() {
                    if i > 0 {
                        tokio::time::sleep(interval).await;
                    }
                    if tx.send(frame).await.is_err() {
                        stats.cancelled_streams.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
            });
            MockBody::Paced(rx)
        }
    };
    let mut resp = Response::new(body);
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type(false)));
    resp.headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-cache"));
    add_headers(&mut resp, headers);
    resp
}

fn add_headers(resp: &mut Response<MockBody>, headers: Headers) {
    for (name, value) in headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            resp.headers_mut().insert(name, v);
        }
    }
}

/// One SSE event with only a data line (OpenAI chat, Gemini).
pub(crate) fn data_frame(value: &Value) -> Bytes {
    format!("data: {value}\n\n").into()
}

/// One SSE event with an event name (Anthropic, OpenAI Responses).
pub(crate) fn event_frame(event: &str, value: &Value) -> Bytes {
    format!("event: {event}\ndata: {value}\n\n").into()
}

/// A request id in the providers' `req_…` style.
pub(crate) fn request_id(seq: u64) -> String {
    format!("req_mock{seq:016x}")
}
