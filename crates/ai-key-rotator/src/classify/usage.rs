//! What the headers say: the retry hint every provider may send, and the family's rate-limit
//! headers read into a [`Usage`].
//!
//! Only headers are read here, from bytes and without allocating: this is all the work a 2xx
//! response costs.

use super::headers::Headers;
use super::verdict::Usage;
use super::{Family, wait};
use crate::clock::Timestamp;

/// The explicit retry hint, in the order the official OpenAI and Anthropic SDKs read it:
/// `retry-after-ms` (milliseconds), then `retry-after` as seconds (integer or float), then
/// `retry-after` as an HTTP-date. A malformed or implausible value is skipped and the next
/// source is tried.
pub(crate) fn header_wait<H: Headers + ?Sized>(h: &H, now: Timestamp) -> Option<Timestamp> {
    if let Some(t) = h
        .get("retry-after-ms")
        .and_then(wait::millis)
        .and_then(|d| wait::after(now, d))
    {
        return Some(t);
    }
    let v = h.get("retry-after")?;
    match wait::seconds(v) {
        Some(d) => wait::after(now, d),
        None => wait::http_date(v).and_then(|t| wait::at(now, t)),
    }
}

/// A reset header holding a wait: a Go duration (`6m0s`) or, from OpenAI-compatible servers,
/// plain seconds (`1`, `0.5`).
fn reset_in<H: Headers + ?Sized>(h: &H, name: &str, now: Timestamp) -> Option<Timestamp> {
    let v = h.get(name)?;
    let d = wait::go_duration(v).or_else(|| wait::seconds(v))?;
    wait::after(now, d)
}

fn count<H: Headers + ?Sized>(h: &H, name: &str) -> Option<u64> {
    h.get(name).and_then(wait::count)
}

/// The family's rate-limit headers as a [`Usage`].
pub(crate) fn usage<H: Headers + ?Sized>(family: Family, h: &H, now: Timestamp) -> Usage {
    match family {
        Family::Anthropic => anthropic(h, now),
        Family::OpenRouter => Usage {
            remaining_requests: count(h, "x-ratelimit-remaining"),
            requests_reset: h
                .get("x-ratelimit-reset")
                .and_then(wait::epoch_millis)
                .and_then(|t| wait::at(now, t)),
            ..Usage::default()
        },
        Family::Together => {
            // Together documents `x-ratelimit-reset` as the suggested retry interval, in
            // seconds, for whichever of its limits binds.
            let reset = h
                .get("x-ratelimit-reset")
                .and_then(wait::seconds)
                .and_then(|d| wait::after(now, d));
            Usage {
                remaining_requests: count(h, "x-ratelimit-remaining"),
                remaining_tokens: count(h, "x-tokenlimit-remaining"),
                requests_reset: reset,
                tokens_reset: reset,
            }
        }
        Family::Fireworks => {
            let prompt = count(h, "x-ratelimit-remaining-tokens-prompt");
            let generated = count(h, "x-ratelimit-remaining-tokens-generated");
            Usage {
                remaining_requests: count(h, "x-ratelimit-remaining-requests"),
                remaining_tokens: match (prompt, generated) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                },
                ..Usage::default()
            }
        }
        // Gemini, Cohere and DeepSeek send no rate-limit headers; reading the OpenAI names
        // costs a few comparisons and finds nothing.
        _ => Usage {
            remaining_requests: count(h, "x-ratelimit-remaining-requests"),
            remaining_tokens: count(h, "x-ratelimit-remaining-tokens"),
            requests_reset: reset_in(h, "x-ratelimit-reset-requests", now),
            tokens_reset: reset_in(h, "x-ratelimit-reset-tokens", now),
        },
    }
}

/// Anthropic's `anthropic-ratelimit-*` headers. Tokens come as a combined limit or as separate
/// input and output limits; the tightest one (lowest remaining, then latest reset) stands for
/// "tokens", since it is the one that will refuse the next request.
///
/// A reset time stands on its own: a response may carry `*-reset` without the matching
/// `*-remaining` (a 429 from a proxy that forwards only some headers, for one), and the time is
/// still the best word on when the limit lifts. A limit whose remaining count is unknown ranks
/// as the loosest, so a known spent limit always wins; among unknown ones the latest reset wins.
fn anthropic<H: Headers + ?Sized>(h: &H, now: Timestamp) -> Usage {
    let reset = |name: &str| {
        h.get(name)
            .and_then(wait::rfc3339)
            .and_then(|t| wait::at(now, t))
    };
    let rank =
        |c: &(Option<u64>, Option<Timestamp>)| (c.0.unwrap_or(u64::MAX), std::cmp::Reverse(c.1));
    let mut tokens: Option<(Option<u64>, Option<Timestamp>)> = None;
    for (remaining, reset_name) in [
        (
            "anthropic-ratelimit-tokens-remaining",
            "anthropic-ratelimit-tokens-reset",
        ),
        (
            "anthropic-ratelimit-input-tokens-remaining",
            "anthropic-ratelimit-input-tokens-reset",
        ),
        (
            "anthropic-ratelimit-output-tokens-remaining",
            "anthropic-ratelimit-output-tokens-reset",
        ),
    ] {
        let candidate = (count(h, remaining), reset(reset_name));
        if candidate == (None, None) {
            continue;
        }
        tokens = Some(match tokens {
            Some(best) if rank(&best) <= rank(&candidate) => best,
            _ => candidate,
        });
    }
    Usage {
        remaining_requests: count(h, "anthropic-ratelimit-requests-remaining"),
        requests_reset: reset("anthropic-ratelimit-requests-reset"),
        remaining_tokens: tokens.and_then(|t| t.0),
        tokens_reset: tokens.and_then(|t| t.1),
    }
}
