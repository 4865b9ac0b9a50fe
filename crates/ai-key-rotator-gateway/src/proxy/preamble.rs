//! Holding a stream's preamble: the events a provider sends before the first content (OpenAI
//! Responses' `response.created`, Anthropic's `message_start` and `ping`, an OpenAI chat chunk
//! that only names the role), so that an `error` event among them (a quota error after
//! `response.created`, `overloaded_error` after `message_start`) can be answered by retrying
//! on another key instead of reaching the client as a broken answer.
//!
//! Nothing is changed: the held frames are handed on exactly as they came, followed by the
//! rest of the stream. Holding ends at the first content event, at the byte or time bound
//! (then the stream is passed on as it is), or at the end of the stream. A stream whose first
//! event is content (Gemini, most chat completions) is held for the time it takes to read one
//! frame.

use ai_key_rotator::Timestamp;
use ai_key_rotator::classify::{Family, Verdict, classify_stream_event};
use bytes::Bytes;
use http_body_util::BodyExt;

use super::body::{BoxError, SseScanner};
use crate::config::PreambleLimits;
use crate::upstream::TimedBody;

/// How holding ended.
#[derive(Debug)]
pub(crate) enum Held {
    /// Content came, a bound was reached or the stream ended: pass the held frames on, then
    /// the rest.
    Pass,
    /// An error event came before any content: the attempt failed with this verdict.
    Error(Verdict),
    /// The upstream broke the stream (or went silent past the read timeout) before any
    /// content: a transport failure, retried like one.
    Broken(BoxError),
}

/// What was read while holding.
#[derive(Debug, Default)]
pub(crate) struct Preamble {
    /// The frames read, unchanged.
    pub(crate) frames: Vec<Bytes>,
    /// The scanner, mid-stream: whoever watches the rest goes on from here.
    pub(crate) scanner: SseScanner,
    /// The stream ended while held.
    pub(crate) ended: bool,
    /// Error events that came after the first content but in the same frame, for the watch to
    /// report.
    pub(crate) late_errors: Vec<Verdict>,
    /// The usage the held events carried (Anthropic's `message_start` has the input tokens),
    /// for the watch to go on from.
    pub(crate) usage: super::tokens::StreamUsage,
}

/// What one event means while holding.
enum Seen {
    Preamble,
    Content,
    Error(Verdict),
}

/// Reads `body` until its first content event, an error event, a bound or its end.
pub(crate) async fn hold(
    body: &mut TimedBody,
    family: Family,
    limits: PreambleLimits,
    now: impl Fn() -> Timestamp,
) -> (Held, Preamble) {
    let mut held = Preamble::default();
    let mut bytes = 0usize;
    let mut decided: Option<Seen> = None;
    let timer = tokio::time::sleep(limits.max_wait);
    tokio::pin!(timer);
    loop {
        let frame = tokio::select! {
            biased;
            frame = body.frame() => frame,
            () = &mut timer => return (Held::Pass, held),
        };
        let frame = match frame {
            None => {
                held.ended = true;
                held.scanner.finish(&mut |event, data| {
                    held.usage.on_event(data);
                    see(
                        family,
                        &now,
                        event,
                        data,
                        &mut decided,
                        &mut held.late_errors,
                    );
                });
                return match decided {
                    Some(Seen::Error(v)) => (Held::Error(v), held),
                    _ => (Held::Pass, held),
                };
            }
            Some(Err(e)) => return (Held::Broken(e), held),
            Some(Ok(frame)) => frame,
        };
        // Trailers do not occur in event streams; a frame that is not data is dropped.
        let Ok(data) = frame.into_data() else {
            continue;
        };
        held.scanner.feed(&data, &mut |event, data| {
            held.usage.on_event(data);
            see(
                family,
                &now,
                event,
                data,
                &mut decided,
                &mut held.late_errors,
            );
        });
        bytes += data.len();
        held.frames.push(data);
        match decided {
            Some(Seen::Error(v)) => return (Held::Error(v), held),
            Some(Seen::Content) => return (Held::Pass, held),
            _ if bytes >= limits.max_bytes => return (Held::Pass, held),
            _ => {}
        }
    }
}

/// Notes one event: the first that is not preamble decides; error events after content are
/// kept for the watch.
fn see(
    family: Family,
    now: &impl Fn() -> Timestamp,
    event: Option<&str>,
    data: &[u8],
    decided: &mut Option<Seen>,
    late_errors: &mut Vec<Verdict>,
) {
    match decided {
        None | Some(Seen::Preamble) => *decided = Some(classify_event(family, event, data, now())),
        Some(Seen::Content) => late_errors.extend(stream_error(family, event, data, now())),
        Some(Seen::Error(_)) => {}
    }
}

fn classify_event(family: Family, event: Option<&str>, data: &[u8], now: Timestamp) -> Seen {
    if let Some(v) = stream_error(family, event, data, now) {
        return Seen::Error(v);
    }
    if is_preamble(event, data) {
        Seen::Preamble
    } else {
        Seen::Content
    }
}

/// The verdict of an error event, by the core's classifier. OpenAI Responses' `response.failed`
/// carries its error inside the response object (`response.error`); it is classified as that
/// error, and as a server error when it names none.
pub(crate) fn stream_error(
    family: Family,
    event: Option<&str>,
    data: &[u8],
    now: Timestamp,
) -> Option<Verdict> {
    if event.is_some_and(|e| e.trim() == "response.failed") {
        let error = serde_json::from_slice::<serde_json::Value>(data)
            .ok()
            .and_then(|mut v| v.get_mut("response")?.get_mut("error").map(std::mem::take))
            .filter(|e| !e.is_null());
        return Some(match error {
            Some(e) => {
                let body = serde_json::json!({ "error": e }).to_string();
                classify_stream_event(family, Some("error"), body.as_bytes(), now)
                    .unwrap_or(Verdict::ServerError { retry_after: None })
            }
            None => Verdict::ServerError { retry_after: None },
        });
    }
    classify_stream_event(family, event, data, now)
}

/// Whether an event comes before any content: the opening events of Anthropic and of OpenAI's
/// Responses API, and an OpenAI chat chunk whose choices carry no content yet (the first chunk
/// names the role with `"content": ""`; Azure's first has no choices, only filter results).
/// Anything else (a Gemini candidate, a delta, `[DONE]`, an unknown event) counts as content.
fn is_preamble(event: Option<&str>, data: &[u8]) -> bool {
    match event.map(str::trim) {
        Some(
            "message_start"
            | "ping"
            | "content_block_start"
            | "response.created"
            | "response.queued"
            | "response.in_progress"
            | "response.output_item.added"
            | "response.content_part.added",
        ) => true,
        Some(_) => false,
        None => chat_chunk_without_content(data),
    }
}

fn chat_chunk_without_content(data: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return false;
    };
    let Some(choices) = v.get("choices").and_then(|c| c.as_array()) else {
        return false;
    };
    choices.iter().all(|c| {
        let empty = |name: &str| match c.get("delta").and_then(|d| d.get(name)) {
            None | Some(serde_json::Value::Null) => true,
            Some(serde_json::Value::String(s)) => s.is_empty(),
            Some(serde_json::Value::Array(a)) => a.is_empty(),
            Some(_) => false,
        };
        c.get("finish_reason").is_none_or(|f| f.is_null())
            && [
                "content",
                "tool_calls",
                "function_call",
                "refusal",
                "reasoning_content",
            ]
            .iter()
            .all(|n| empty(n))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(family: Family, event: Option<&str>, data: &str) -> &'static str {
        match classify_event(
            family,
            event,
            data.as_bytes(),
            Timestamp::from_secs(1_790_000_000),
        ) {
            Seen::Preamble => "preamble",
            Seen::Content => "content",
            Seen::Error(v) if v.blames_key() => "error (key)",
            Seen::Error(_) => "error",
        }
    }

    #[test]
    fn events_are_told_apart() {
        let rows: &[(Family, Option<&str>, &str, &str)] = &[
            (
                Family::Anthropic,
                Some("message_start"),
                r#"{"type":"message_start"}"#,
                "preamble",
            ),
            (
                Family::Anthropic,
                Some("ping"),
                r#"{"type":"ping"}"#,
                "preamble",
            ),
            (
                Family::Anthropic,
                Some("content_block_delta"),
                r#"{"type":"content_block_delta","delta":{"type":"text_delta","text":"error"}}"#,
                "content",
            ),
            (
                Family::Anthropic,
                Some("error"),
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
                "error",
            ),
            (
                Family::OpenAi,
                Some("response.created"),
                r#"{"type":"response.created"}"#,
                "preamble",
            ),
            (
                Family::OpenAi,
                Some("response.output_text.delta"),
                r#"{"type":"response.output_text.delta","delta":"Hi"}"#,
                "content",
            ),
            (
                Family::OpenAi,
                Some("error"),
                r#"{"type":"error","code":"insufficient_quota","message":"You exceeded your current quota, please check your plan and billing details.","param":null}"#,
                "error (key)",
            ),
            (
                Family::OpenAi,
                Some("response.failed"),
                r#"{"type":"response.failed","response":{"status":"failed","error":{"code":"insufficient_quota","message":"You exceeded your current quota"}}}"#,
                "error (key)",
            ),
            (
                Family::OpenAi,
                Some("response.failed"),
                r#"{"type":"response.failed","response":{"status":"failed","error":null}}"#,
                "error",
            ),
            (
                Family::OpenAi,
                None,
                r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
                "preamble",
            ),
            (
                Family::OpenAi,
                None,
                r#"{"choices":[],"prompt_filter_results":[]}"#,
                "preamble",
            ),
            (
                Family::OpenAi,
                None,
                r#"{"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#,
                "content",
            ),
            (
                Family::OpenAi,
                None,
                r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#,
                "error (key)",
            ),
            (Family::OpenAi, None, "[DONE]", "content"),
            (
                Family::Gemini,
                None,
                r#"{"candidates":[{"content":{"parts":[{"text":"Hi"}],"role":"model"}}]}"#,
                "content",
            ),
            (
                Family::Gemini,
                None,
                r#"{"error":{"code":429,"message":"You exceeded your current quota","status":"RESOURCE_EXHAUSTED"}}"#,
                "error (key)",
            ),
        ];
        let failures: Vec<String> = rows
            .iter()
            .filter_map(|(family, event, data, want)| {
                let got = seen(*family, *event, data);
                (got != *want).then(|| format!("{family:?} {event:?} {data}: {got}, want {want}"))
            })
            .collect();
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
