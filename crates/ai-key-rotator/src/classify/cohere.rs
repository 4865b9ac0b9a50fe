//! Cohere: no rate-limit headers, billing on 402, and per-key trial limits described only in
//! the message.

use super::{Ctx, LimitKind, LimitScope, Verdict, limit_in_text, wait};

pub(super) fn classify(ctx: &Ctx<'_>) -> Verdict {
    let f = &ctx.facts;
    match ctx.status {
        // The billing limit resets at the start of the next month.
        402 => Verdict::QuotaExhausted {
            until: wait::next_month_utc(ctx.now),
            scope: LimitScope::Shared,
            limit: LimitKind::Monthly,
        },
        429 => match limit_in_text(f) {
            // Trial keys: 1,000 calls a month, counted per key.
            LimitKind::Monthly => Verdict::QuotaExhausted {
                until: wait::next_month_utc(ctx.now),
                scope: LimitScope::Key,
                limit: LimitKind::Monthly,
            },
            limit => {
                let until = ctx.limit_until(limit).or_else(|| {
                    (limit == LimitKind::RequestsPerMinute).then(|| wait::next_minute(ctx.now))
                });
                Verdict::RateLimited {
                    until,
                    scope: LimitScope::Key,
                    limit,
                }
            }
        },
        _ => ctx.by_status(LimitScope::Key),
    }
}
