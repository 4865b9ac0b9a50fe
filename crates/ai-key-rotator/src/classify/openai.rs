//! OpenAI and the families that follow its conventions: Azure OpenAI, Groq, Mistral, DeepSeek,
//! xAI, Together, Fireworks and any OpenAI-compatible server.

use super::{Ctx, Family, InvalidKeyCause, LimitKind, LimitScope, Verdict, limit_in_text, wait};

/// Whose limits a 429 reports. OpenAI and Groq limit per organization, Azure per resource,
/// Mistral per workspace, xAI per team, Together and Fireworks per account: all shared by every
/// key of it. DeepSeek documents nothing and an unknown server is assumed per key.
fn scope(family: Family) -> LimitScope {
    match family {
        Family::DeepSeek | Family::OpenAiCompatible => LimitScope::Key,
        _ => LimitScope::Shared,
    }
}

pub(super) fn classify(ctx: &Ctx<'_>) -> Verdict {
    let f = &ctx.facts;
    let invalid = |cause| Verdict::InvalidKey { cause };
    match ctx.status {
        401 => invalid(InvalidKeyCause::Invalid),
        // xAI answers an incorrect key with 400; any family naming the key is believed.
        400 if f.has("invalid_api_key")
            || f.says("incorrect api key")
            || f.says("invalid api key") =>
        {
            invalid(InvalidKeyCause::Invalid)
        }
        402 => match ctx.family {
            // Together's 402 is the monthly spending limit, which lifts with the new month.
            Family::Together => Verdict::QuotaExhausted {
                until: wait::next_month_utc(ctx.now),
                scope: LimitScope::Shared,
                limit: LimitKind::Monthly,
            },
            _ => Verdict::QuotaExhausted {
                until: None,
                scope: LimitScope::Shared,
                limit: LimitKind::Credits,
            },
        },
        // OpenAI's 403 "unsupported_country_region_territory": every key fails alike from here.
        403 if f.has("unsupported_country_region_territory") || f.says("country") => {
            Verdict::RegionBlocked
        }
        403 if ctx.family == Family::Xai => invalid(InvalidKeyCause::Blocked),
        403 => invalid(InvalidKeyCause::PermissionDenied),
        412 if ctx.family == Family::Fireworks => invalid(InvalidKeyCause::Suspended),
        429 => too_many_requests(ctx),
        // Groq's flex tier: 498 `capacity_exceeded`.
        498 => Verdict::Overloaded {
            retry_after: ctx.retry_hint(),
        },
        _ => ctx.by_status(scope(ctx.family)),
    }
}

fn too_many_requests(ctx: &Ctx<'_>) -> Verdict {
    let f = &ctx.facts;
    let quota = |limit| Verdict::QuotaExhausted {
        until: None,
        scope: LimitScope::Shared,
        limit,
    };
    // Billing 429s: retrying does not help until someone pays or raises a limit.
    // The spend-limit codes first: they arrive with `type: insufficient_quota` too, and the
    // code is the more specific of the two.
    if f.has("organization_spend_limit_exceeded")
        || f.has("project_spend_limit_exceeded")
        || f.has("organization_usage_limit_exceeded")
        || f.code
            .as_deref()
            .is_some_and(|c| c.ends_with("_spend_limit_exceeded"))
    {
        return quota(LimitKind::Monthly);
    }
    if f.has("insufficient_quota")
        || f.has("credit_balance_exhausted")
        || f.says("exceeded your current quota")
    {
        return quota(LimitKind::Credits);
    }
    // xAI: "Your team ... has either used all available credits or reached its monthly
    // spending limit". It does not say which, nor when; credits is the common case.
    if f.says("used all available credits") || f.says("monthly spending limit") {
        return quota(LimitKind::Credits);
    }
    // OpenAI and Groq count limits per model: "Rate limit reached for gpt-4o in organization
    // ..." cools the key for that model only.
    let scope = match f
        .message
        .as_deref()
        .and_then(super::model::in_openai_message)
    {
        Some(model) => LimitScope::Model(model),
        None => scope(ctx.family),
    };
    let limit = if f.has("dynamic_token_limited") {
        LimitKind::TokensPerMinute
    } else if f.has("dynamic_request_limited") {
        LimitKind::RequestsPerMinute
    } else {
        limit_in_text(f)
    };
    ctx.rate_limited(scope, limit)
}
