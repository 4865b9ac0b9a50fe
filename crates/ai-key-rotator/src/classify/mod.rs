//! Classify provider responses: status, headers and body in, a [`Verdict`] out, as data.
//!
//! [`classify`] reads what one response says about the key that sent it: a success with the
//! remaining budget, a rate limit with the time it lifts, a spent quota, a bad key, or a
//! failure that is nobody's key's fault. [`classify_stream_event`] does the same for an error
//! that arrives inside a streamed 200 response. Neither has side effects; applying a verdict
//! (cooling a key or its quota scope) is the caller's business.
//!
//! ```
//! use ai_key_rotator::Timestamp;
//! use ai_key_rotator::classify::{classify, Family, LimitKind, LimitScope, Response, Verdict};
//!
//! let now = Timestamp::from_secs(1_790_000_000);
//! let headers = [("retry-after", "20"), ("x-ratelimit-remaining-tokens", "0")];
//! let body = br#"{"error":{"message":"Rate limit reached for gpt-4o in organization org-x on
//!     tokens per min (TPM): Limit 30000, Used 29000, Requested 1601. Please try again in
//!     3.202s.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}"#;
//! let verdict = classify(Family::OpenAi, &Response::new(429, &headers, body), now);
//!
//! // The explicit `retry-after` header wins over the wait written in the message.
//! assert_eq!(
//!     verdict,
//!     Verdict::RateLimited {
//!         until: Some(Timestamp::from_secs(1_790_000_020)),
//!         scope: LimitScope::Shared,
//!         limit: LimitKind::TokensPerMinute,
//!     }
//! );
//! assert!(verdict.blames_key());
//! assert_eq!(verdict.reason(), "rate limited (tokens per minute)");
//! ```
//!
//! # Where the wait comes from
//! For a limit, `until` is taken from the first of these that is present and well-formed:
//! 1. `retry-after-ms`, then `retry-after` as seconds, then `retry-after` as an HTTP-date (the
//!    order of the official SDKs);
//! 2. the provider's reset headers for the limit that was hit (`x-ratelimit-reset-tokens`,
//!    `anthropic-ratelimit-tokens-reset`, OpenRouter's `X-RateLimit-Reset`, ...);
//! 3. Gemini's `google.rpc.RetryInfo.retryDelay`;
//! 4. a wait written in the message ("Please try again in 1m26.4s").
//!
//! Explicit headers come first because they are meant for machines and are what the
//! providers' own SDKs obey; message text is a fallback. Calendar caps ignore all of these:
//! a Gemini per-day quota lifts at the next midnight America/Los_Angeles whatever `RetryInfo`
//! says, an Anthropic monthly spend cap at 00:00 UTC on the 1st.
//!
//! # Robustness
//! No input panics. A malformed or implausible wait (`-5`, `abc`, more than
//! 31 days) is ignored, not trusted. Only the first [`MAX_BODY`] bytes of a body are read, and
//! only for non-2xx responses: a 2xx reads headers alone and does not allocate.
//!
//! # Judgement calls
//! - OpenAI's 403 "unsupported country, region, or territory", Gemini's 400 "User location is
//!   not supported" and Anthropic's 403 "Request not allowed" are [`Verdict::RegionBlocked`]:
//!   every key fails the same way from the same place, so rotating, cooling or disabling keys
//!   is wrong; the provider's circuit backs off instead.
//! - OpenRouter's 403 is its moderation refusal, also a [`Verdict::ClientError`]; a 429 that
//!   OpenRouter relays from an upstream provider (`metadata.provider_code`) is
//!   [`Verdict::Overloaded`]: the upstream is saturated for everyone, not this key.
//! - Gemini per-day quotas are [`Verdict::QuotaExhausted`] (nothing helps before midnight
//!   Pacific); per-minute quotas are [`Verdict::RateLimited`].
//! - A per-minute limit without any stated wait lifts one minute after `now`, which is late
//!   enough for both fixed and rolling windows.
//!
//! The README's "What each provider's responses lead to" has the full table of responses and
//! verdicts.

mod anthropic;
mod body;
mod cohere;
mod family;
mod gemini;
mod headers;
mod model;
mod openai;
mod openrouter;
mod usage;
mod verdict;
mod wait;

use std::fmt;

pub use body::MAX_BODY;
use family::Classifier;
pub use family::{Api, FAMILIES, Family, FamilyInfo, UnknownFamily};
pub use headers::Headers;
pub use model::{InvalidModelName, MAX_MODEL_NAME, ModelName};
pub use verdict::{InvalidKeyCause, LimitKind, LimitScope, Usage, Verdict};

use crate::clock::Timestamp;
use body::Facts;

/// A borrowed view of one provider response.
pub struct Response<'a, H: Headers + ?Sized> {
    /// The HTTP status code.
    pub status: u16,
    /// The response headers.
    pub headers: &'a H,
    /// The body, or a prefix of it: only the first [`MAX_BODY`] bytes are read.
    pub body: &'a [u8],
}

impl<'a, H: Headers + ?Sized> Response<'a, H> {
    /// A view of a response.
    pub fn new(status: u16, headers: &'a H, body: &'a [u8]) -> Self {
        Response {
            status,
            headers,
            body,
        }
    }
}

impl<H: Headers + ?Sized> fmt::Debug for Response<'_, H> {
    // Neither headers nor body are printed: both can carry a key (an echoed `Authorization`,
    // OpenAI's "Incorrect API key provided: sk-...").
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// Classifies one response from a provider of `family`, received at `now`.
///
/// A 2xx reads only the headers (without allocating); anything else also reads the first
/// [`MAX_BODY`] bytes of the body. See the [module docs](self) for how waits are chosen.
pub fn classify<H: Headers + ?Sized>(
    family: Family,
    response: &Response<'_, H>,
    now: Timestamp,
) -> Verdict {
    let h = response.headers;
    let usage = usage::usage(family, h, now);
    if (200..300).contains(&response.status) {
        return Verdict::Ok(usage);
    }
    let ctx = Ctx {
        family,
        status: response.status,
        now,
        header_wait: usage::header_wait(h, now),
        usage,
        facts: Facts::parse(response.body),
    };
    ctx.classify()
}

/// Classifies one server-sent event of a streamed response that began with a 200.
///
/// `event` is the SSE `event:` field, `data` its `data:` payload. Returns `None` for a normal
/// event, or a verdict when the stream carries an error: Anthropic's `event: error` (for example
/// `overloaded_error` mid-stream), OpenRouter's chunk with `finish_reason: "error"`, or any
/// family's `{"error": {...}}` chunk.
///
/// ```
/// use ai_key_rotator::Timestamp;
/// use ai_key_rotator::classify::{classify_stream_event, Family, Verdict};
///
/// let now = Timestamp::from_secs(1_790_000_000);
/// let data = br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
/// assert_eq!(
///     classify_stream_event(Family::Anthropic, Some("error"), data, now),
///     Some(Verdict::Overloaded { retry_after: None })
/// );
/// let delta = br#"{"type":"content_block_delta","delta":{"type":"text_delta","text":"error"}}"#;
/// assert_eq!(classify_stream_event(Family::Anthropic, Some("content_block_delta"), delta, now), None);
/// ```
pub fn classify_stream_event(
    family: Family,
    event: Option<&str>,
    data: &[u8],
    now: Timestamp,
) -> Option<Verdict> {
    let error_event = event.is_some_and(|e| e.trim() == "error");
    // Most events are content deltas: skip them without parsing.
    if !error_event && wait::find_ignore_case(data, b"error").is_none() {
        return None;
    }
    let facts = Facts::parse(data);
    if !(error_event || facts.has_error || facts.finish_error) {
        return None;
    }
    let status = match family {
        Family::Anthropic => anthropic::status_of(facts.kind.as_deref()),
        // An error with no usable code inside a stream that began well is the server's failure,
        // unless its code or type names a limit or the key (OpenAI's Responses API sends
        // `{"type":"error","code":"insufficient_quota",…}`, a chat stream `{"error":{"code":
        // "insufficient_quota",…}}`): then it is read as the status such an answer comes with.
        _ => facts
            .code
            .as_deref()
            .and_then(|c| c.parse::<u16>().ok())
            .filter(|c| (400..600).contains(c))
            .or_else(|| status_named(&facts))
            .unwrap_or(500),
    };
    let ctx = Ctx {
        family,
        status,
        now,
        header_wait: None,
        usage: Usage::default(),
        facts,
    };
    Some(ctx.classify())
}

/// The HTTP status an OpenAI-shaped error in a stream stands for, from its code or type.
fn status_named(facts: &Facts<'_>) -> Option<u16> {
    [facts.code.as_deref(), facts.kind.as_deref()]
        .into_iter()
        .flatten()
        .find_map(|name| match name {
            "insufficient_quota"
            | "rate_limit_exceeded"
            | "rate_limit_error"
            | "credit_balance_exhausted"
            | "organization_usage_limit_exceeded" => Some(429),
            n if n.ends_with("_spend_limit_exceeded") => Some(429),
            "invalid_api_key" | "authentication_error" => Some(401),
            _ => None,
        })
}

/// Everything one error response says, read once.
struct Ctx<'a> {
    family: Family,
    status: u16,
    now: Timestamp,
    /// `retry-after-ms` / `retry-after`, already absolute.
    header_wait: Option<Timestamp>,
    usage: Usage,
    facts: Facts<'a>,
}

impl Ctx<'_> {
    fn classify(&self) -> Verdict {
        match self.family.info().classifier {
            Classifier::Anthropic => anthropic::classify(self),
            Classifier::Gemini => gemini::classify(self),
            Classifier::OpenRouter => openrouter::classify(self),
            Classifier::Cohere => cohere::classify(self),
            Classifier::OpenAi => openai::classify(self),
        }
    }

    /// When a limit of `kind` lifts: the retry headers, the reset header for that kind, Gemini's
    /// `RetryInfo`, then a wait in the message.
    fn limit_until(&self, kind: LimitKind) -> Option<Timestamp> {
        let reset = match kind {
            LimitKind::TokensPerMinute | LimitKind::TokensPerDay => self.usage.tokens_reset,
            LimitKind::RequestsPerMinute | LimitKind::RequestsPerDay => self.usage.requests_reset,
            _ => None,
        };
        self.header_wait
            .or(reset)
            .or_else(|| self.usage.exhausted_until())
            .or_else(|| self.retry_hint_from_body())
    }

    /// A retry hint for failures that are not limits: headers, then `RetryInfo`, then text.
    fn retry_hint(&self) -> Option<Timestamp> {
        self.header_wait.or_else(|| self.retry_hint_from_body())
    }

    fn retry_hint_from_body(&self) -> Option<Timestamp> {
        let d = self.facts.retry_delay.or_else(|| self.facts.text_wait())?;
        wait::after(self.now, d)
    }

    fn rate_limited(&self, scope: LimitScope, limit: LimitKind) -> Verdict {
        Verdict::RateLimited {
            until: self.limit_until(limit),
            scope,
            limit,
        }
    }

    /// The verdict a bare status implies, for bodies that say nothing more.
    fn by_status(&self, scope: LimitScope) -> Verdict {
        match self.status {
            200..=299 => Verdict::Ok(self.usage),
            401 | 403 => Verdict::InvalidKey {
                cause: if self.status == 401 {
                    InvalidKeyCause::Invalid
                } else {
                    InvalidKeyCause::PermissionDenied
                },
            },
            402 => Verdict::QuotaExhausted {
                until: None,
                scope: LimitScope::Shared,
                limit: LimitKind::Credits,
            },
            429 => {
                let limit = limit_in_text(&self.facts);
                self.rate_limited(scope, limit)
            }
            503 | 529 => Verdict::Overloaded {
                retry_after: self.retry_hint(),
            },
            100..=499 => Verdict::ClientError,
            _ => Verdict::ServerError {
                retry_after: self.retry_hint(),
            },
        }
    }
}

/// The limit a message names: OpenAI and Groq's "on tokens per min (TPM)", Azure's "token rate
/// limit", Cohere's "per minute request limit", Anthropic's "input tokens per minute".
fn limit_in_text(f: &Facts<'_>) -> LimitKind {
    let table: [(&str, LimitKind); 14] = [
        ("(TPM)", LimitKind::TokensPerMinute),
        ("(RPM)", LimitKind::RequestsPerMinute),
        ("(TPD)", LimitKind::TokensPerDay),
        ("(RPD)", LimitKind::RequestsPerDay),
        ("tokens per min", LimitKind::TokensPerMinute),
        ("requests per min", LimitKind::RequestsPerMinute),
        ("tokens per day", LimitKind::TokensPerDay),
        ("requests per day", LimitKind::RequestsPerDay),
        ("token rate limit", LimitKind::TokensPerMinute),
        ("call rate limit", LimitKind::RequestsPerMinute),
        ("per minute request", LimitKind::RequestsPerMinute),
        ("calls / minute", LimitKind::RequestsPerMinute),
        ("calls / month", LimitKind::Monthly),
        ("per-day", LimitKind::RequestsPerDay),
    ];
    table
        .into_iter()
        .find(|(needle, _)| f.says(needle))
        .map_or(LimitKind::Unknown, |(_, kind)| kind)
}
