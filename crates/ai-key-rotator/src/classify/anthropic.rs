//! Anthropic: `{"type":"error","error":{"type":"...","message":"..."}}` with an error type per
//! status, `anthropic-ratelimit-*` headers, and a monthly spend cap behind a 429.

use super::{Ctx, InvalidKeyCause, LimitKind, LimitScope, Verdict, limit_in_text, wait};

/// How far ahead a "regain access on" date is believed.
const REGAIN_MAX: std::time::Duration = std::time::Duration::from_secs(92 * 24 * 3600);

/// The status an Anthropic error type stands for, for errors that arrive inside a stream.
pub(super) fn status_of(kind: Option<&str>) -> u16 {
    match kind {
        Some("invalid_request_error") => 400,
        Some("authentication_error") => 401,
        Some("billing_error") => 402,
        Some("permission_error") => 403,
        Some("not_found_error") => 404,
        Some("request_too_large") => 413,
        Some("rate_limit_error") => 429,
        Some("overloaded_error") => 529,
        _ => 500,
    }
}

pub(super) fn classify(ctx: &Ctx<'_>) -> Verdict {
    let f = &ctx.facts;
    let credits = Verdict::QuotaExhausted {
        until: None,
        scope: LimitScope::Shared,
        limit: LimitKind::Credits,
    };
    match ctx.status {
        400 if f.says("credit balance is too low") => credits,
        401 => Verdict::InvalidKey {
            cause: InvalidKeyCause::Invalid,
        },
        402 => credits,
        // Anthropic's answer to a request from a region it does not serve (observed): every
        // key gets it, so no key is to blame.
        403 if f.says("request not allowed") => Verdict::RegionBlocked,
        403 => Verdict::InvalidKey {
            cause: InvalidKeyCause::PermissionDenied,
        },
        429 if f.has("enforced_spend_limit_reached") || f.says("regain access on") => {
            // The monthly spend cap: no retry-after; it lifts at 00:00 UTC on the 1st, or at the
            // date the message names.
            let until = f
                .message
                .as_deref()
                .and_then(wait::regain_access_date)
                // A calendar date the provider states, not a wait header: trusted further out
                // than `MAX_WAIT`, but never into the past or beyond a quarter.
                .filter(|&t| t > ctx.now && t.saturating_duration_since(ctx.now) <= REGAIN_MAX)
                .or_else(|| wait::next_month_utc(ctx.now));
            Verdict::QuotaExhausted {
                until,
                scope: LimitScope::Shared,
                limit: LimitKind::Monthly,
            }
        }
        429 => {
            let limit = match limit_in_text(f) {
                LimitKind::Unknown if ctx.usage.remaining_tokens == Some(0) => {
                    LimitKind::TokensPerMinute
                }
                LimitKind::Unknown if ctx.usage.remaining_requests == Some(0) => {
                    LimitKind::RequestsPerMinute
                }
                limit => limit,
            };
            ctx.rate_limited(LimitScope::Shared, limit)
        }
        _ if f.has("overloaded_error") => Verdict::Overloaded {
            retry_after: ctx.retry_hint(),
        },
        _ => ctx.by_status(LimitScope::Shared),
    }
}
