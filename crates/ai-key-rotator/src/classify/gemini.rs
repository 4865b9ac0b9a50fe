//! Google Gemini API: Google's error model (`status`, `details[]` with `ErrorInfo.reason`,
//! `QuotaFailure.violations[].quotaId`, `RetryInfo.retryDelay`), no rate-limit headers, and
//! limits per Google Cloud project.

use super::{Ctx, InvalidKeyCause, LimitKind, LimitScope, ModelName, Verdict, wait};

pub(super) fn classify(ctx: &Ctx<'_>) -> Verdict {
    let f = &ctx.facts;
    let invalid = |cause| Verdict::InvalidKey { cause };
    match ctx.status {
        // Gemini rejects a bad key with 400, not 401.
        400 if f.has("API_KEY_INVALID")
            || f.says("API key not valid")
            || f.says("API key expired") =>
        {
            invalid(InvalidKeyCause::Invalid)
        }
        // Served from a place the API does not serve: every key fails alike.
        400 if f.says("location is not supported") => Verdict::RegionBlocked,
        403 if f.says("reported as leaked") => invalid(InvalidKeyCause::Leaked),
        403 if f.has("CONSUMER_SUSPENDED") || f.says("has been suspended") => {
            invalid(InvalidKeyCause::Suspended)
        }
        403 if f.has("API_KEY_SERVICE_BLOCKED") => invalid(InvalidKeyCause::Blocked),
        429 => quota(ctx),
        _ => ctx.by_status(LimitScope::Shared),
    }
}

/// A 429 `RESOURCE_EXHAUSTED`: which project quota ran out and when it comes back.
fn quota(ctx: &Ctx<'_>) -> Verdict {
    let f = &ctx.facts;
    let ids = || f.quota_ids.iter().map(|q| q.as_ref());
    let tokens = |q: &str| q.contains("Tokens");
    let daily = ids().find(|q| q.contains("PerDay"));
    let minute = ids().find(|q| q.contains("PerMinute"));
    // A quota counted per model (`...PerProjectPerModel`, `...PerModelPerMinute`, with the
    // model in `quotaDimensions`) leaves the project's other models alone.
    let per_model = ids().any(|q| q.contains("PerModel"));
    let scope = match f.quota_model.as_deref().map(ModelName::new) {
        Some(Ok(model)) if per_model || ids().next().is_none() => LimitScope::Model(model),
        _ => LimitScope::Shared,
    };
    // "limit: 0": this tier has no quota for the model at all; waiting does not help.
    if f.says("limit: 0") {
        let limit = match daily.or(minute) {
            Some(q) if q.contains("PerDay") && tokens(q) => LimitKind::TokensPerDay,
            Some(q) if q.contains("PerDay") => LimitKind::RequestsPerDay,
            Some(q) if tokens(q) => LimitKind::TokensPerMinute,
            Some(_) => LimitKind::RequestsPerMinute,
            None => LimitKind::Unknown,
        };
        return Verdict::QuotaExhausted {
            until: None,
            scope,
            limit,
        };
    }
    // A spent daily quota lifts at midnight Pacific, whatever `RetryInfo` says (it often says
    // "47s", which would only waste requests).
    if let Some(q) = daily {
        let limit = if tokens(q) {
            LimitKind::TokensPerDay
        } else {
            LimitKind::RequestsPerDay
        };
        return Verdict::QuotaExhausted {
            until: wait::next_pacific_midnight(ctx.now),
            scope,
            limit,
        };
    }
    let limit = match minute {
        Some(q) if tokens(q) => LimitKind::TokensPerMinute,
        Some(_) => LimitKind::RequestsPerMinute,
        None => LimitKind::Unknown,
    };
    let until = ctx.limit_until(limit);
    let until = match (until, limit) {
        (None, LimitKind::TokensPerMinute | LimitKind::RequestsPerMinute) => {
            Some(wait::next_minute(ctx.now))
        }
        (until, _) => until,
    };
    Verdict::RateLimited {
        until,
        scope,
        limit,
    }
}
