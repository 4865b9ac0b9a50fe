//! Anthropic Messages API bodies, headers and streams.

use bytes::Bytes;
use hyper::StatusCode;
use serde_json::{Value, json};

use super::{Ctx, Failure, Headers, event_frame, request_id};
use crate::route::Op;
use crate::time::{ceil_secs, first_of_next_month, rfc3339};

/// `request-id` and the `anthropic-ratelimit-*` headers, with plenty of room left.
pub(super) fn headers(ctx: &Ctx<'_>) -> Headers {
    ratelimit_headers(ctx, None)
}

/// The rate-limit headers; when `exhausted_for` is set, requests are at zero and reset then.
fn ratelimit_headers(ctx: &Ctx<'_>, exhausted_for: Option<u64>) -> Headers {
    let soon = rfc3339(ctx.now + 1);
    let reset = exhausted_for.map_or_else(|| soon.clone(), |s| rfc3339(ctx.now + s));
    let requests_left = if exhausted_for.is_some() { "0" } else { "3999" };
    vec![
        ("request-id", request_id(ctx.seq)),
        (
            "anthropic-organization-id",
            "00000000-0000-4000-8000-000000000000".into(),
        ),
        ("anthropic-ratelimit-requests-limit", "4000".into()),
        (
            "anthropic-ratelimit-requests-remaining",
            requests_left.into(),
        ),
        ("anthropic-ratelimit-requests-reset", reset),
        ("anthropic-ratelimit-tokens-limit", "480000".into()),
        ("anthropic-ratelimit-tokens-remaining", "480000".into()),
        ("anthropic-ratelimit-tokens-reset", soon.clone()),
        ("anthropic-ratelimit-input-tokens-limit", "400000".into()),
        (
            "anthropic-ratelimit-input-tokens-remaining",
            "400000".into(),
        ),
        ("anthropic-ratelimit-input-tokens-reset", soon.clone()),
        ("anthropic-ratelimit-output-tokens-limit", "80000".into()),
        (
            "anthropic-ratelimit-output-tokens-remaining",
            "80000".into(),
        ),
        ("anthropic-ratelimit-output-tokens-reset", soon),
    ]
}

fn message_id(ctx: &Ctx<'_>) -> String {
    format!("msg_mock{:016x}", ctx.seq)
}

fn usage(ctx: &Ctx<'_>, output_tokens: u64) -> Value {
    json!({
        "input_tokens": ctx.prompt_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
        "service_tier": "standard"
    })
}

/// The non-streaming body for the route.
pub(super) fn body(ctx: &Ctx<'_>) -> Value {
    match ctx.op {
        Op::ListModels => json!({
            "data": [
                {"type": "model", "id": "claude-sonnet-4-5", "display_name": "Claude Sonnet 4.5", "created_at": "2025-09-29T00:00:00Z"},
                {"type": "model", "id": "claude-3-5-haiku-20241022", "display_name": "Claude Haiku 3.5", "created_at": "2024-10-22T00:00:00Z"}
            ],
            "has_more": false,
            "first_id": "claude-sonnet-4-5",
            "last_id": "claude-3-5-haiku-20241022"
        }),
        _ => json!({
            "id": message_id(ctx),
            "type": "message",
            "role": "assistant",
            "model": ctx.model,
            "content": [{"type": "text", "text": ctx.text()}],
            "stop_reason": "end_turn",
            "stop_sequence": null,
            "usage": usage(ctx, ctx.completion_tokens())
        }),
    }
}

/// The opening events every stream shares: `message_start`, `content_block_start`, `ping`.
fn opening(ctx: &Ctx<'_>) -> Vec<Bytes> {
    vec![
        event_frame(
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": message_id(ctx),
                "type": "message",
                "role": "assistant",
                "model": ctx.model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": usage(ctx, 1)
            }}),
        ),
        event_frame(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        event_frame("ping", &json!({"type": "ping"})),
    ]
}

fn delta(piece: &str) -> Bytes {
    event_frame(
        "content_block_delta",
        &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}),
    )
}

/// The documented event sequence: `message_start`, `content_block_start`, `ping`,
/// `content_block_delta`…, `content_block_stop`, `message_delta`, `message_stop`.
pub(super) fn stream(ctx: &Ctx<'_>) -> Vec<Bytes> {
    let mut frames = opening(ctx);
    frames.extend(ctx.chunks.iter().map(|p| delta(p)));
    frames.push(event_frame(
        "content_block_stop",
        &json!({"type": "content_block_stop", "index": 0}),
    ));
    frames.push(event_frame(
        "message_delta",
        &json!({"type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                "usage": {"output_tokens": ctx.completion_tokens()}}),
    ));
    frames.push(event_frame(
        "message_stop",
        &json!({"type": "message_stop"}),
    ));
    frames
}

/// A 200 stream that sends its opening and two deltas, then `event: error` with
/// `overloaded_error`, as Anthropic does when it runs out of capacity mid-generation.
pub(super) fn midway_error(ctx: &Ctx<'_>) -> Vec<Bytes> {
    let mut frames = opening(ctx);
    frames.extend(ctx.chunks.iter().take(2).map(|p| delta(p)));
    frames.push(event_frame(
        "error",
        &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    ));
    frames
}

/// A 200 stream that sends `message_start` and `ping`, then `event: error` with
/// `overloaded_error` before any content, as Anthropic does when capacity runs out before the
/// first token.
pub(super) fn error_at_start(ctx: &Ctx<'_>) -> Vec<Bytes> {
    let mut frames = opening(ctx);
    // `message_start` and `ping`; the content block has not started.
    frames.remove(1);
    frames.push(event_frame(
        "error",
        &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    ));
    frames
}

fn error(ctx: &Ctx<'_>, kind: &str, message: impl Into<String>) -> Value {
    json!({"type": "error", "error": {"type": kind, "message": message.into()}, "request_id": request_id(ctx.seq)})
}

/// Anthropic's documented error responses.
pub(super) fn failure(ctx: &Ctx<'_>, failure: Failure) -> (StatusCode, Headers, Value) {
    let id = || vec![("request-id", request_id(ctx.seq))];
    match failure {
        Failure::RateLimited(wait) => {
            let secs = ceil_secs(wait);
            let mut headers = ratelimit_headers(ctx, Some(secs));
            headers.push(("retry-after", secs.to_string()));
            let message = "This request would exceed the rate limit for your organization \
                (00000000-0000-4000-8000-000000000000) of 4,000 requests per minute. For details, \
                refer to: https://docs.claude.com/en/api/rate-limits. You can see the response \
                headers for current usage. Please reduce the prompt length or the maximum tokens \
                requested, or try again later. You may also contact sales at \
                https://www.anthropic.com/contact-sales to discuss your options for a rate limit increase.";
            (
                StatusCode::TOO_MANY_REQUESTS,
                headers,
                error(ctx, "rate_limit_error", message),
            )
        }
        Failure::InsufficientQuota => (
            StatusCode::BAD_REQUEST,
            id(),
            error(
                ctx,
                "invalid_request_error",
                "Your credit balance is too low to access the Anthropic API. \
                 Please go to Plans & Billing to upgrade or purchase credits.",
            ),
        ),
        Failure::SpendCap => {
            let message = format!(
                "You have reached your API usage limits: your organization's monthly spend limit \
                 has been reached. You will regain access on {} at 00:00 UTC.",
                first_of_next_month(ctx.now)
            );
            let mut body = error(ctx, "rate_limit_error", message);
            body["error"]["details"] = json!({"error_code": "enforced_spend_limit_reached"});
            // Deliberately no `retry-after`: waiting a few seconds does not help.
            (StatusCode::TOO_MANY_REQUESTS, id(), body)
        }
        Failure::InvalidKey => (
            StatusCode::UNAUTHORIZED,
            id(),
            error(ctx, "authentication_error", "invalid x-api-key"),
        ),
        Failure::Overloaded => (
            StatusCode::from_u16(529).expect("529 is a valid status code"),
            id(),
            error(ctx, "overloaded_error", "Overloaded"),
        ),
        Failure::ServerError => (
            StatusCode::INTERNAL_SERVER_ERROR,
            id(),
            error(ctx, "api_error", "Internal server error"),
        ),
        Failure::NotFound => (
            StatusCode::NOT_FOUND,
            id(),
            error(ctx, "not_found_error", "Not found"),
        ),
        Failure::RegionBlocked => (
            StatusCode::FORBIDDEN,
            id(),
            error(ctx, "permission_error", "Request not allowed"),
        ),
        Failure::MissingVersion => (
            StatusCode::BAD_REQUEST,
            id(),
            error(
                ctx,
                "invalid_request_error",
                "anthropic-version: header is required",
            ),
        ),
    }
}
