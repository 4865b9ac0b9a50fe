//! Errors that arrive inside a streamed 200 response.

use ai_key_rotator::classify::Family::{self, *};
use ai_key_rotator::classify::LimitKind::*;
use ai_key_rotator::classify::LimitScope::*;
use ai_key_rotator::classify::{Verdict, classify_stream_event};

use super::*;

fn check_event(
    family: Family,
    event: Option<&str>,
    data: &str,
    expected: Option<Verdict>,
) -> Result<(), String> {
    let got = classify_stream_event(family, event, data.as_bytes(), NOW);
    if got == expected {
        Ok(())
    } else {
        Err(format!(
            "{family} {event:?} {data}\n    expected {expected:?}\n    got      {got:?}"
        ))
    }
}

#[test]
fn stream_events() {
    let rows: Vec<(Family, Option<&str>, &str, Option<Verdict>)> = vec![
        // OpenAI's Responses API: `response.created`, then an `error` event naming the quota.
        (
            OpenAi,
            Some("error"),
            r#"{"type":"error","code":"insufficient_quota","message":"You exceeded your current quota, please check your plan and billing details.","param":null,"sequence_number":2}"#,
            Some(Verdict::QuotaExhausted {
                until: None,
                scope: Shared,
                limit: Credits,
            }),
        ),
        // A chat stream's error chunk naming the quota.
        (
            OpenAi,
            None,
            r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#,
            Some(Verdict::QuotaExhausted {
                until: None,
                scope: Shared,
                limit: Credits,
            }),
        ),
        (
            Anthropic,
            Some("error"),
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            Some(Verdict::Overloaded { retry_after: None }),
        ),
        (
            Anthropic,
            Some("error"),
            r#"{"type":"error","error":{"type":"api_error","message":"Internal server error"}}"#,
            Some(Verdict::ServerError { retry_after: None }),
        ),
        (
            Anthropic,
            Some("error"),
            r#"{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}"#,
            Some(rate(None, Shared, Unknown)),
        ),
        (
            Anthropic,
            None,
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            Some(Verdict::Overloaded { retry_after: None }),
        ),
        (
            Anthropic,
            Some("error"),
            "not json",
            Some(Verdict::ServerError { retry_after: None }),
        ),
        (
            Anthropic,
            Some("content_block_delta"),
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"an error occurred"}}"#,
            None,
        ),
        (Anthropic, Some("ping"), r#"{"type": "ping"}"#, None),
        (
            Anthropic,
            Some("message_stop"),
            r#"{"type":"message_stop"}"#,
            None,
        ),
        (
            OpenRouter,
            None,
            r#"{"id":"gen-1","choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}],"error":{"code":502,"message":"Provider disconnected"}}"#,
            Some(Verdict::ServerError { retry_after: None }),
        ),
        (
            OpenRouter,
            None,
            r#"{"id":"gen-1","choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}]}"#,
            Some(Verdict::ServerError { retry_after: None }),
        ),
        (
            OpenRouter,
            None,
            r#"{"error":{"code":429,"message":"Rate limit exceeded"}}"#,
            Some(rate(None, Shared, Unknown)),
        ),
        (
            OpenRouter,
            None,
            r#"{"id":"gen-1","choices":[{"index":0,"delta":{"content":"error handling in Rust"},"finish_reason":null}]}"#,
            None,
        ),
        (
            OpenRouter,
            None,
            r#"{"id":"gen-1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
            None,
        ),
        (OpenAi, None, "[DONE]", None),
        (
            OpenAi,
            None,
            r#"{"error":{"message":"The server had an error","type":"server_error"}}"#,
            Some(Verdict::ServerError { retry_after: None }),
        ),
        (DeepSeek, None, ": keep-alive", None),
        (
            Gemini,
            None,
            r#"{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}"#,
            Some(Verdict::Overloaded { retry_after: None }),
        ),
    ];
    let failures: Vec<String> = rows
        .into_iter()
        .filter_map(|(f, e, d, x)| check_event(f, e, d, x).err())
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
