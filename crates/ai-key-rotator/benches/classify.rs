//! How long classifying a response takes: the common 200 (headers only) and two 429s.
//!
//! Run: `cargo bench --bench classify -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use ai_key_rotator::Timestamp;
use ai_key_rotator::classify::{Family, Response, classify};
use criterion::{Criterion, criterion_group, criterion_main};

const GEMINI_429: &[u8] = br#"{"error":{"code":429,"message":"You exceeded your current quota, please check your plan and billing details. Please retry in 38.922534355s.","status":"RESOURCE_EXHAUSTED","details":[
 {"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests","quotaId":"GenerateRequestsPerDayPerProjectPerModel-FreeTier","quotaDimensions":{"location":"global","model":"gemini-2.0-flash"},"quotaValue":"250"}]},
 {"@type":"type.googleapis.com/google.rpc.Help","links":[{"description":"Learn more about Gemini API quotas","url":"https://ai.google.dev/gemini-api/docs/rate-limits"}]},
 {"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"47s"}]}}"#;

const ANTHROPIC_429: &[u8] = br#"{"type":"error","error":{"type":"rate_limit_error","message":"This request would exceed the rate limit for your organization of 50,000 input tokens per minute."},"request_id":"req_011"}"#;

fn bench(c: &mut Criterion) {
    let now = Timestamp::from_secs(1_786_795_200);
    let openai_headers = [
        ("date", "Sat, 15 Aug 2026 12:00:00 GMT"),
        ("content-type", "application/json"),
        ("openai-processing-ms", "312"),
        ("x-ratelimit-limit-requests", "10000"),
        ("x-ratelimit-limit-tokens", "30000"),
        ("x-ratelimit-remaining-requests", "9999"),
        ("x-ratelimit-remaining-tokens", "29000"),
        ("x-ratelimit-reset-requests", "8.64s"),
        ("x-ratelimit-reset-tokens", "6m0s"),
    ];
    let body = br#"{"id":"chatcmpl-1","object":"chat.completion","choices":[{"message":{"role":"assistant","content":"Hello"}}]}"#;
    c.bench_function("openai_200_six_ratelimit_headers", |b| {
        b.iter(|| {
            classify(
                Family::OpenAi,
                black_box(&Response::new(200, &openai_headers, body)),
                now,
            )
        })
    });

    let no_headers: [(&str, &str); 0] = [];
    c.bench_function("gemini_429_quota_failure", |b| {
        b.iter(|| {
            classify(
                Family::Gemini,
                black_box(&Response::new(429, &no_headers, GEMINI_429)),
                now,
            )
        })
    });

    let anthropic_headers = [
        ("retry-after", "20"),
        ("anthropic-ratelimit-requests-remaining", "49"),
        ("anthropic-ratelimit-requests-reset", "2026-08-15T12:00:30Z"),
        ("anthropic-ratelimit-input-tokens-remaining", "0"),
        (
            "anthropic-ratelimit-input-tokens-reset",
            "2026-08-15T12:00:59Z",
        ),
    ];
    c.bench_function("anthropic_429_rate_limit", |b| {
        b.iter(|| {
            classify(
                Family::Anthropic,
                black_box(&Response::new(429, &anthropic_headers, ANTHROPIC_429)),
                now,
            )
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
