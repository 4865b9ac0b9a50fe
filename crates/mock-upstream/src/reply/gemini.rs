//! Google Gemini API bodies and streams. Gemini sends no rate-limit headers at all.

use bytes::Bytes;
use hyper::StatusCode;
use serde_json::{Value, json};

use super::{Ctx, Failure, Headers, data_frame};
use crate::route::Op;
use crate::time::proto_duration;

fn model_name<'a>(ctx: &'a Ctx<'_>) -> &'a str {
    ctx.model.strip_prefix("models/").unwrap_or(&ctx.model)
}

fn usage(ctx: &Ctx<'_>, candidates: u64) -> Value {
    json!({
        "promptTokenCount": ctx.prompt_tokens,
        "candidatesTokenCount": candidates,
        "totalTokenCount": ctx.prompt_tokens + candidates,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": ctx.prompt_tokens}]
    })
}

fn response(ctx: &Ctx<'_>, text: &str, finish: bool, candidates: u64) -> Value {
    let mut candidate =
        json!({"content": {"parts": [{"text": text}], "role": "model"}, "index": 0});
    if finish {
        candidate["finishReason"] = json!("STOP");
    }
    json!({
        "candidates": [candidate],
        "usageMetadata": usage(ctx, candidates),
        "modelVersion": model_name(ctx),
        "responseId": format!("mock{:016x}", ctx.seq)
    })
}

fn model_info(name: &str, display: &str) -> Value {
    json!({
        "name": format!("models/{name}"),
        "version": "001",
        "displayName": display,
        "description": display,
        "inputTokenLimit": 1_048_576,
        "outputTokenLimit": 8192,
        "supportedGenerationMethods": ["generateContent", "countTokens"],
        "temperature": 1.0,
        "topP": 0.95,
        "topK": 40
    })
}

/// The non-streaming body for the route.
pub(super) fn body(ctx: &Ctx<'_>) -> Value {
    match ctx.op {
        Op::ListModels => json!({"models": [
            model_info("gemini-2.0-flash", "Gemini 2.0 Flash"),
            model_info("gemini-2.5-flash", "Gemini 2.5 Flash")
        ]}),
        Op::GetModel { model } => model_info(model, model),
        _ => response(ctx, &ctx.text(), true, ctx.completion_tokens()),
    }
}

/// The chunks of a streamed answer: one response object per text piece, the last with
/// `finishReason`.
pub(super) fn chunks(ctx: &Ctx<'_>) -> Vec<Value> {
    let n = ctx.chunks.len();
    ctx.chunks
        .iter()
        .enumerate()
        .map(|(i, piece)| response(ctx, piece, i + 1 == n, i as u64 + 1))
        .collect()
}

/// The `alt=sse` stream: `data: {...}` events, no terminator.
pub(super) fn stream(ctx: &Ctx<'_>) -> Vec<Bytes> {
    chunks(ctx).iter().map(data_frame).collect()
}

/// Two chunks, then an `UNAVAILABLE` error object, and the stream ends.
pub(super) fn midway_error(ctx: &Ctx<'_>) -> Vec<Bytes> {
    let mut frames: Vec<Bytes> = chunks(ctx)
        .iter()
        .take(2.min(ctx.chunks.len().saturating_sub(1)).max(1))
        .map(|c| {
            let mut c = c.clone();
            if let Some(cand) = c["candidates"][0].as_object_mut() {
                cand.remove("finishReason");
            }
            data_frame(&c)
        })
        .collect();
    frames.push(data_frame(&error(
        503,
        "The model is overloaded. Please try again later.",
        "UNAVAILABLE",
        None,
    )));
    frames
}

/// A 200 stream whose first chunk is an error: the per-minute quota of the model, 429
/// `RESOURCE_EXHAUSTED` with its `QuotaFailure` and `RetryInfo`.
pub(super) fn error_at_start(ctx: &Ctx<'_>) -> Vec<Bytes> {
    vec![data_frame(&quota_exhausted(
        ctx,
        "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
        15,
        std::time::Duration::from_secs(47),
    ))]
}

fn error(code: u16, message: &str, status: &str, details: Option<Value>) -> Value {
    let mut v = json!({"error": {"code": code, "message": message, "status": status}});
    if let Some(d) = details {
        v["error"]["details"] = d;
    }
    v
}

fn quota_exhausted(ctx: &Ctx<'_>, quota_id: &str, limit: u32, wait: std::time::Duration) -> Value {
    let model = model_name(ctx);
    let delay = proto_duration(wait);
    let message = format!(
        "You exceeded your current quota, please check your plan and billing details. For more \
         information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits. \
         To monitor your current usage, head to: https://ai.dev/usage?tab=rate-limit. \n* Quota \
         exceeded for metric: generativelanguage.googleapis.com/generate_content_free_tier_requests, \
         limit: {limit}, model: {model}\nPlease retry in {delay}."
    );
    error(
        429,
        &message,
        "RESOURCE_EXHAUSTED",
        Some(json!([
            {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{
                "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                "quotaId": quota_id,
                "quotaDimensions": {"location": "global", "model": model},
                "quotaValue": limit.to_string()
            }]},
            {"@type": "type.googleapis.com/google.rpc.Help", "links": [{
                "description": "Learn more about Gemini API quotas",
                "url": "https://ai.google.dev/gemini-api/docs/rate-limits"
            }]},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}
        ])),
    )
}

/// Google's documented error responses; never a `retry-after` header.
pub(super) fn failure(ctx: &Ctx<'_>, failure: Failure) -> (StatusCode, Headers, Value) {
    let (status, body) = match failure {
        Failure::RateLimited(wait) => (
            StatusCode::TOO_MANY_REQUESTS,
            quota_exhausted(
                ctx,
                "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                15,
                wait,
            ),
        ),
        // `limit: 0`: the tier has no quota for this model at all; waiting does not help.
        Failure::InsufficientQuota | Failure::SpendCap => (
            StatusCode::TOO_MANY_REQUESTS,
            quota_exhausted(
                ctx,
                "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
                0,
                std::time::Duration::from_secs(47),
            ),
        ),
        Failure::InvalidKey => (
            StatusCode::BAD_REQUEST,
            error(
                400,
                "API key not valid. Please pass a valid API key.",
                "INVALID_ARGUMENT",
                Some(json!([{
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"}
                }])),
            ),
        ),
        Failure::Overloaded => (
            StatusCode::SERVICE_UNAVAILABLE,
            error(
                503,
                "The model is overloaded. Please try again later.",
                "UNAVAILABLE",
                None,
            ),
        ),
        Failure::ServerError => (
            StatusCode::INTERNAL_SERVER_ERROR,
            error(
                500,
                "An internal error has occurred. Please retry or report in \
                 https://developers.generativeai.google/guide/troubleshooting",
                "INTERNAL",
                None,
            ),
        ),
        Failure::NotFound | Failure::MissingVersion => (
            StatusCode::NOT_FOUND,
            error(404, "Requested entity was not found.", "NOT_FOUND", None),
        ),
        Failure::RegionBlocked => (
            StatusCode::BAD_REQUEST,
            error(
                400,
                "User location is not supported for the API use.",
                "FAILED_PRECONDITION",
                None,
            ),
        ),
    };
    (status, Vec::new(), body)
}
