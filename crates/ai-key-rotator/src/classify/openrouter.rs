//! OpenRouter: `{"error":{"code":N,"message":"...","metadata":{...}}}`, `X-RateLimit-Reset` in
//! epoch milliseconds, 402 for credit and key limits, and errors relayed from upstream
//! providers.

use super::{Ctx, InvalidKeyCause, LimitKind, LimitScope, Verdict, wait};

pub(super) fn classify(ctx: &Ctx<'_>) -> Verdict {
    let f = &ctx.facts;
    match ctx.status {
        401 => Verdict::InvalidKey {
            cause: InvalidKeyCause::Invalid,
        },
        // The in-flight budget is transient: credits reserved by running requests come back.
        402 if f.has("openrouter_in_flight_budget") => Verdict::RateLimited {
            until: ctx.retry_hint(),
            scope: LimitScope::Shared,
            limit: LimitKind::InFlight,
        },
        // A per-key spending limit binds this key only.
        402 if f.has("openrouter_key_limit") => Verdict::QuotaExhausted {
            until: None,
            scope: LimitScope::Key,
            limit: LimitKind::Credits,
        },
        402 => Verdict::QuotaExhausted {
            until: None,
            scope: LimitScope::Shared,
            limit: LimitKind::Credits,
        },
        // OpenRouter's 403 is its moderation refusing the input, not a verdict on the key.
        403 => Verdict::ClientError,
        429 if f.says("free-models-per-day") => Verdict::QuotaExhausted {
            // The free-model counter runs per UTC day; an explicit reset header still wins.
            until: ctx
                .header_wait
                .or(ctx.usage.requests_reset)
                .or(Some(wait::next_utc_midnight(ctx.now))),
            scope: LimitScope::Shared,
            limit: LimitKind::RequestsPerDay,
        },
        // An upstream provider's 429 relayed by OpenRouter: the upstream is saturated for every
        // OpenRouter customer, so another key of ours fares no better.
        429 if f.upstream => Verdict::Overloaded {
            retry_after: ctx.retry_hint(),
        },
        429 => {
            let limit = if f.says("per-minute") {
                LimitKind::RequestsPerMinute
            } else {
                LimitKind::Unknown
            };
            ctx.rate_limited(LimitScope::Shared, limit)
        }
        _ => ctx.by_status(LimitScope::Shared),
    }
}
