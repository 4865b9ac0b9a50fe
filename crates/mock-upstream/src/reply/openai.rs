//! OpenAI (and OpenAI-compatible) and Azure OpenAI bodies, headers and streams.

use bytes::Bytes;
use hyper::StatusCode;
use serde_json::{Value, json};

use super::{Ctx, Failure, Headers, data_frame, event_frame, request_id};
use crate::route::Op;
use crate::time::{ceil_secs, go_duration};

/// The `x-ratelimit-*` headers OpenAI sends on every response, with plenty of room left.
pub(super) fn headers(ctx: &Ctx<'_>) -> Headers {
    vec![
        ("x-request-id", request_id(ctx.seq)),
        ("openai-version", "2020-10-01".into()),
        ("openai-processing-ms", "1".into()),
        ("x-ratelimit-limit-requests", "10000".into()),
        ("x-ratelimit-limit-tokens", "30000000".into()),
        ("x-ratelimit-remaining-requests", "9999".into()),
        ("x-ratelimit-remaining-tokens", "29999990".into()),
        ("x-ratelimit-reset-requests", "6ms".into()),
        ("x-ratelimit-reset-tokens", "0s".into()),
    ]
}

/// Azure sends fewer rate-limit headers and its own request id.
pub(super) fn azure_headers(ctx: &Ctx<'_>) -> Headers {
    vec![
        ("apim-request-id", request_id(ctx.seq)),
        ("x-request-id", request_id(ctx.seq)),
        ("x-ratelimit-remaining-requests", "9999".into()),
        ("x-ratelimit-remaining-tokens", "29999990".into()),
    ]
}

fn usage(ctx: &Ctx<'_>) -> Value {
    let (p, c) = (ctx.prompt_tokens, ctx.completion_tokens());
    json!({
        "prompt_tokens": p,
        "completion_tokens": c,
        "total_tokens": p + c,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0, "audio_tokens": 0,
            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0
        }
    })
}

fn chat_id(ctx: &Ctx<'_>) -> String {
    format!("chatcmpl-mock{:016x}", ctx.seq)
}

/// The non-streaming body for the route.
pub(super) fn body(ctx: &Ctx<'_>) -> Value {
    match ctx.op {
        Op::Responses => response_object(ctx, "completed"),
        Op::ListModels => json!({
            "object": "list",
            "data": [
                {"id": "gpt-4o-mini", "object": "model", "created": 1_721_172_741, "owned_by": "system"},
                {"id": "gpt-4o", "object": "model", "created": 1_715_367_049, "owned_by": "system"}
            ]
        }),
        _ => json!({
            "id": chat_id(ctx),
            "object": "chat.completion",
            "created": ctx.now,
            "model": ctx.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": ctx.text(), "refusal": null, "annotations": []},
                "logprobs": null,
                "finish_reason": "stop"
            }],
            "usage": usage(ctx),
            "service_tier": "default",
            "system_fingerprint": "fp_mock"
        }),
    }
}

fn chunk(ctx: &Ctx<'_>, delta: Value, finish: Option<&str>) -> Value {
    let mut v = json!({
        "id": chat_id(ctx),
        "object": "chat.completion.chunk",
        "created": ctx.now,
        "model": ctx.model,
        "system_fingerprint": "fp_mock",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]
    });
    if ctx.include_usage {
        v["usage"] = Value::Null;
    }
    v
}

/// The SSE frames of a streamed completion: a role chunk, one chunk per text piece, a finish
/// chunk, the usage chunk when asked for, and `data: [DONE]`.
pub(super) fn stream(ctx: &Ctx<'_>) -> Vec<Bytes> {
    if *ctx.op == Op::Responses {
        return responses_stream(ctx, false);
    }
    let mut frames = vec![data_frame(&chunk(
        ctx,
        json!({"role": "assistant", "content": "", "refusal": null}),
        None,
    ))];
    for piece in ctx.chunks {
        frames.push(data_frame(&chunk(ctx, json!({"content": piece}), None)));
    }
    frames.push(data_frame(&chunk(ctx, json!({}), Some("stop"))));
    if ctx.include_usage {
        let mut last = chunk(ctx, json!({}), None);
        last["choices"] = json!([]);
        last["usage"] = usage(ctx);
        frames.push(data_frame(&last));
    }
    frames.push(Bytes::from_static(b"data: [DONE]\n\n"));
    frames
}

/// A stream that breaks after two text pieces with an error object, as OpenAI sends when a
/// server fails mid-generation; no finish chunk and no `[DONE]` follow.
pub(super) fn midway_error(ctx: &Ctx<'_>) -> Vec<Bytes> {
    if *ctx.op == Op::Responses {
        return responses_stream(ctx, true);
    }
    let mut frames = vec![data_frame(&chunk(
        ctx,
        json!({"role": "assistant", "content": ""}),
        None,
    ))];
    for piece in ctx.chunks.iter().take(2) {
        frames.push(data_frame(&chunk(ctx, json!({"content": piece}), None)));
    }
    frames.push(data_frame(&json!({"error": server_error_object()})));
    frames
}

/// A 200 stream that fails before its first content with `insufficient_quota`. Chat
/// completions: the role chunk, then a `data: {"error":…}` chunk. Responses API:
/// `response.created` and `response.in_progress`, then `event: error`.
pub(super) fn error_at_start(ctx: &Ctx<'_>) -> Vec<Bytes> {
    let message = "You exceeded your current quota, please check your plan and billing details. \
        For more information on this error, read the docs: \
        https://platform.openai.com/docs/guides/error-codes/api-errors.";
    if *ctx.op == Op::Responses {
        let mut frames = responses_stream(ctx, false);
        frames.truncate(2);
        frames.push(event_frame(
            "error",
            &json!({"type": "error", "code": "insufficient_quota", "message": message,
                    "param": null, "sequence_number": 2}),
        ));
        return frames;
    }
    vec![
        data_frame(&chunk(
            ctx,
            json!({"role": "assistant", "content": ""}),
            None,
        )),
        data_frame(&error(
            message,
            "insufficient_quota",
            Some("insufficient_quota"),
        )),
    ]
}

fn server_error_object() -> Value {
    json!({
        "message": "The server had an error while processing your request. Sorry about that!",
        "type": "server_error",
        "param": null,
        "code": null
    })
}

fn response_object(ctx: &Ctx<'_>, status: &str) -> Value {
    let done = status == "completed";
    let (p, c) = (ctx.prompt_tokens, ctx.completion_tokens());
    json!({
        "id": format!("resp_mock{:016x}", ctx.seq),
        "object": "response",
        "created_at": ctx.now,
        "status": status,
        "error": null,
        "incomplete_details": null,
        "instructions": null,
        "max_output_tokens": null,
        "model": ctx.model,
        "output": if done { json!([message_item(ctx, true)]) } else { json!([]) },
        "parallel_tool_calls": true,
        "previous_response_id": null,
        "reasoning": {"effort": null, "summary": null},
        "store": true,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": if done { json!({
            "input_tokens": p,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": c,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": p + c
        }) } else { Value::Null },
        "user": null,
        "metadata": {}
    })
}

fn message_item(ctx: &Ctx<'_>, done: bool) -> Value {
    json!({
        "id": format!("msg_mock{:016x}", ctx.seq),
        "type": "message",
        "status": if done { "completed" } else { "in_progress" },
        "role": "assistant",
        "content": if done {
            json!([{"type": "output_text", "text": ctx.text(), "annotations": []}])
        } else {
            json!([])
        }
    })
}

/// The Responses API's named-event stream, or its `error` event after two deltas.
fn responses_stream(ctx: &Ctx<'_>, fail: bool) -> Vec<Bytes> {
    let item_id = format!("msg_mock{:016x}", ctx.seq);
    let mut seq = 0u64;
    let mut frames = Vec::new();
    let mut push = |name: &str, mut v: Value| {
        v["type"] = json!(name);
        v["sequence_number"] = json!(seq);
        seq += 1;
        frames.push(event_frame(name, &v));
    };
    push(
        "response.created",
        json!({"response": response_object(ctx, "in_progress")}),
    );
    push(
        "response.in_progress",
        json!({"response": response_object(ctx, "in_progress")}),
    );
    push(
        "response.output_item.added",
        json!({"output_index": 0, "item": message_item(ctx, false)}),
    );
    let part = |text: String| json!({"type": "output_text", "text": text, "annotations": []});
    let at = json!({"item_id": item_id, "output_index": 0, "content_index": 0});
    let with = |extra: Value| {
        let mut v = at.clone();
        for (k, val) in extra.as_object().into_iter().flatten() {
            v[k] = val.clone();
        }
        v
    };
    push(
        "response.content_part.added",
        with(json!({"part": part(String::new())})),
    );
    let pieces = if fail {
        &ctx.chunks[..ctx.chunks.len().min(2)]
    } else {
        ctx.chunks
    };
    for piece in pieces {
        push(
            "response.output_text.delta",
            with(json!({"delta": piece, "logprobs": []})),
        );
    }
    if fail {
        push(
            "error",
            json!({"code": "server_error", "message": server_error_object()["message"], "param": null}),
        );
        return frames;
    }
    push(
        "response.output_text.done",
        with(json!({"text": ctx.text(), "logprobs": []})),
    );
    push(
        "response.content_part.done",
        with(json!({"part": part(ctx.text())})),
    );
    push(
        "response.output_item.done",
        json!({"output_index": 0, "item": message_item(ctx, true)}),
    );
    push(
        "response.completed",
        json!({"response": response_object(ctx, "completed")}),
    );
    frames
}

fn error(message: impl Into<String>, kind: &str, code: Option<&str>) -> Value {
    json!({"error": {"message": message.into(), "type": kind, "param": null, "code": code}})
}

/// Masks a key the way OpenAI echoes it in a 401: `sk-abc***…***wxyz`.
fn masked(key: Option<&str>) -> String {
    match key {
        // Byte slicing is safe only on ASCII; a non-ASCII key is echoed whole.
        Some(k) if k.is_ascii() && k.len() > 8 => format!(
            "{}{}{}",
            &k[..3],
            "*".repeat(k.len() - 7),
            &k[k.len() - 4..]
        ),
        Some(k) => k.to_owned(),
        None => String::new(),
    }
}

/// OpenAI's documented error responses.
pub(super) fn failure(ctx: &Ctx<'_>, failure: Failure) -> (StatusCode, Headers, Value) {
    let mut headers = headers(ctx);
    let (status, body) = match failure {
        Failure::RateLimited(wait) => {
            let wait_text = go_duration(wait);
            for (name, value) in &mut headers {
                match *name {
                    "x-ratelimit-remaining-tokens" => *value = "0".into(),
                    "x-ratelimit-reset-tokens" => value.clone_from(&wait_text),
                    _ => {}
                }
            }
            let message = format!(
                "Rate limit reached for {} in organization org-mock on tokens per min (TPM): \
                 Limit 30000, Used 29000, Requested 1601. Please try again in {wait_text}. \
                 Visit https://platform.openai.com/account/rate-limits to learn more.",
                ctx.model
            );
            (
                StatusCode::TOO_MANY_REQUESTS,
                error(message, "tokens", Some("rate_limit_exceeded")),
            )
        }
        Failure::InsufficientQuota => (
            StatusCode::TOO_MANY_REQUESTS,
            error(
                "You exceeded your current quota, please check your plan and billing details. \
                 For more information on this error, read the docs: \
                 https://platform.openai.com/docs/guides/error-codes/api-errors.",
                "insufficient_quota",
                Some("insufficient_quota"),
            ),
        ),
        Failure::SpendCap => (
            StatusCode::TOO_MANY_REQUESTS,
            error(
                "You have reached your organization's spend limit. \
                 Raise the limit in your billing settings to continue.",
                "insufficient_quota",
                Some("organization_spend_limit_exceeded"),
            ),
        ),
        Failure::InvalidKey => {
            let message = match ctx.key {
                Some(_) => format!(
                    "Incorrect API key provided: {}. You can find your API key at \
                     https://platform.openai.com/account/api-keys.",
                    masked(ctx.key)
                ),
                None => "You didn't provide an API key. You need to provide your API key in an \
                         Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), \
                         or as the password field (with blank username) if you're accessing the API \
                         from your browser and are prompted for a username and password. You can \
                         obtain an API key from https://platform.openai.com/account/api-keys."
                    .to_owned(),
            };
            headers.retain(|(n, _)| !n.starts_with("x-ratelimit"));
            let code = ctx.key.map(|_| "invalid_api_key");
            (
                StatusCode::UNAUTHORIZED,
                error(message, "invalid_request_error", code),
            )
        }
        Failure::Overloaded => (
            StatusCode::SERVICE_UNAVAILABLE,
            error(
                "That model is currently overloaded with other requests. You can retry your \
                 request, or contact us through our help center at help.openai.com if the error \
                 persists.",
                "server_error",
                Some("server_is_overloaded"),
            ),
        ),
        Failure::ServerError => (
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": server_error_object()}),
        ),
        Failure::NotFound | Failure::MissingVersion => (
            StatusCode::NOT_FOUND,
            error("Invalid URL", "invalid_request_error", None),
        ),
        Failure::RegionBlocked => {
            headers.retain(|(n, _)| !n.starts_with("x-ratelimit"));
            (
                StatusCode::FORBIDDEN,
                error(
                    "Country, region, or territory not supported",
                    "request_forbidden",
                    Some("unsupported_country_region_territory"),
                ),
            )
        }
    };
    (status, headers, body)
}

/// Azure's documented error responses; where Azure documents nothing of its own it answers
/// like OpenAI.
pub(super) fn azure_failure(ctx: &Ctx<'_>, failure: Failure) -> (StatusCode, Headers, Value) {
    match failure {
        Failure::RateLimited(wait) => {
            let secs = ceil_secs(wait);
            let mut headers = azure_headers(ctx);
            headers.push(("retry-after", secs.to_string()));
            headers.push(("retry-after-ms", wait.as_millis().to_string()));
            for (name, value) in &mut headers {
                if *name == "x-ratelimit-remaining-tokens" {
                    *value = "0".into();
                }
            }
            let message = format!(
                "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version \
                 2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. \
                 Please retry after {secs} seconds. Please go here: \
                 https://aka.ms/oai/quotaincrease if you would like to further increase the default rate limit."
            );
            (
                StatusCode::TOO_MANY_REQUESTS,
                headers,
                json!({"error": {"code": "429", "message": message}}),
            )
        }
        Failure::InvalidKey => (
            StatusCode::UNAUTHORIZED,
            vec![("apim-request-id", request_id(ctx.seq))],
            json!({"error": {"code": "401", "message": "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."}}),
        ),
        Failure::NotFound => (
            StatusCode::NOT_FOUND,
            vec![("apim-request-id", request_id(ctx.seq))],
            json!({"error": {"code": "404", "message": "Resource not found"}}),
        ),
        other => {
            let (status, _, body) = self::failure(ctx, other);
            (status, azure_headers(ctx), body)
        }
    }
}
