//! Answering one request: recognise, record, pick a behaviour, reply.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response};
use serde_json::Value;

use crate::body::MockBody;
use crate::config::Config;
use crate::record::{RecordedRequest, Recorder};
use crate::reply::{self, Ctx, Failure, Stats};
use crate::route::{Dialect, Op, Route};
use crate::script::{Behavior, Script};
use crate::time::unix_now;

/// State shared by every connection of one mock.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) script: Script,
    pub(crate) recorder: Recorder,
    pub(crate) stats: Arc<Stats>,
    seq: AtomicU64,
    /// The body of `Config::fast`, serialised once so the fast path only clones a `Bytes`.
    fixed: Bytes,
}

impl Shared {
    pub(crate) fn new(config: Config) -> Shared {
        let fixed = serde_json::to_vec(&serde_json::json!({
            "id": "chatcmpl-mockfast",
            "object": "chat.completion",
            "created": 1_700_000_000u64,
            "model": "gpt-4o-mini",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": config.chunks.concat()},
                "logprobs": null,
                "finish_reason": "stop"
            }],
            "usage": {"prompt_tokens": 9, "completion_tokens": config.chunks.len(), "total_tokens": 9 + config.chunks.len()}
        }))
        .expect("a serde_json::Value always serialises");
        Shared {
            recorder: Recorder::new(config.recording),
            config,
            script: Script::new(),
            stats: Arc::default(),
            seq: AtomicU64::new(0),
            fixed: fixed.into(),
        }
    }
}

/// The service's refusal to answer: hyper closes the connection without a response
/// ([`Behavior::CloseConnection`]).
#[derive(Debug)]
pub(crate) struct HangUp;

impl std::fmt::Display for HangUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("scripted to close the connection without answering")
    }
}

impl std::error::Error for HangUp {}

/// The service function: every request of every connection goes through here.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<MockBody>, HangUp> {
    let (parts, body) = req.into_parts();
    // The body is read whole even on the fast path: an unread body would stop hyper from
    // reusing the connection.
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Ok(Response::new(MockBody::empty())),
    };
    if shared.config.fixed {
        let mut resp = Response::new(MockBody::full(shared.fixed.clone()));
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        return Ok(resp);
    }

    let path = parts.uri.path();
    let query = parts.uri.query();
    let route = Route::recognise(&parts.method, path, query, &parts.headers);
    let seq = shared.seq.fetch_add(1, Ordering::Relaxed) + 1;
    let json: Option<Value> = serde_json::from_slice(&body).ok();

    // Problems a real provider rejects before looking at the key's quota do not consume a
    // scripted rule.
    let failure = if route.op == Op::NotFound {
        Some(Failure::NotFound)
    } else if route.key.is_none() {
        Some(Failure::InvalidKey)
    } else if route.dialect == Dialect::Anthropic
        && !parts.headers.contains_key("anthropic-version")
    {
        Some(Failure::MissingVersion)
    } else {
        None
    };
    let behavior = match failure {
        None => shared.script.next_for(route.key.as_deref()),
        Some(_) => Behavior::Ok,
    };

    if shared.recorder.is_on() {
        shared.recorder.record(RecordedRequest {
            method: parts.method.clone(),
            path: path.to_owned(),
            query: query.map(str::to_owned),
            headers: parts.headers.clone(),
            body: body.clone(),
            dialect: route.dialect,
            key: route.key.clone(),
        });
    }

    if behavior == Behavior::CloseConnection {
        return Err(HangUp);
    }
    if let Behavior::Delay(wait) = behavior {
        tokio::time::sleep(wait).await;
    }

    let field = |name: &str| json.as_ref().and_then(|j| j.get(name));
    let (model, stream) = match &route.op {
        Op::Generate { model, stream } => (model.clone(), *stream),
        _ => (
            field("model")
                .and_then(Value::as_str)
                .map_or_else(|| default_model(route.dialect).to_owned(), str::to_owned),
            field("stream").and_then(Value::as_bool).unwrap_or(false),
        ),
    };
    let ctx = Ctx {
        dialect: route.dialect,
        op: &route.op,
        model,
        stream,
        include_usage: field("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false),
        sse: query.is_some_and(|q| q.split('&').any(|p| p == "alt=sse")),
        key: route.key.as_deref(),
        chunks: &shared.config.chunks,
        prompt_tokens: (body.len() as u64 / 4).max(1),
        seq,
        now: unix_now(),
    };
    Ok(match failure {
        Some(f) => reply::failure(&ctx, f),
        None => reply::answer(&ctx, &behavior, &shared.stats),
    })
}

fn default_model(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Anthropic => "claude-sonnet-4-5",
        Dialect::Gemini => "gemini-2.0-flash",
        _ => "gpt-4o-mini",
    }
}
