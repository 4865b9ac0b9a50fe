//! The classifier's output: a [`Verdict`] and the facts it carries.

use serde::{Deserialize, Serialize};

use super::ModelName;
use crate::clock::Timestamp;

/// What a provider response means for the key that sent it.
///
/// A verdict holds only parsed facts (kinds, scopes, times), never text from the response: error
/// bodies can echo the key (OpenAI's 401 says "Incorrect API key provided: sk-...").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Verdict {
    /// The request succeeded; the rate-limit headers, if any, are in the [`Usage`].
    Ok(Usage),
    /// A short-window limit was hit; the key (or its scope) works again at `until`.
    RateLimited {
        /// When the limit has room again, if the response said so.
        until: Option<Timestamp>,
        /// Whether the limit belongs to this key alone or to everything sharing its quota.
        scope: LimitScope,
        /// Which limit was hit.
        limit: LimitKind,
    },
    /// A billing, credit, daily or monthly cap was reached; retrying soon does not help.
    QuotaExhausted {
        /// When the cap resets, if known; `None` means "until someone pays or raises it".
        until: Option<Timestamp>,
        /// Whether the cap belongs to this key alone or to everything sharing its quota.
        scope: LimitScope,
        /// Which cap was reached.
        limit: LimitKind,
    },
    /// The key itself is unusable.
    InvalidKey {
        /// Why, as far as the response says.
        cause: InvalidKeyCause,
    },
    /// The provider is overloaded; any key would fare the same.
    Overloaded {
        /// When the provider suggested retrying, if it did.
        retry_after: Option<Timestamp>,
    },
    /// The provider failed; any key would fare the same.
    ServerError {
        /// When the provider suggested retrying, if it did.
        retry_after: Option<Timestamp>,
    },
    /// The request was at fault (bad parameters, too large); the key is fine and another key
    /// would get the same answer.
    ClientError,
    /// The provider refuses requests from this country, region or address (OpenAI's 403
    /// `unsupported_country_region_territory`, Gemini's "User location is not supported"):
    /// every key fails alike from here, so no key is to blame; several in a short window open
    /// the provider's circuit.
    RegionBlocked,
}

impl Verdict {
    /// Whether the response is the key's (or its quota scope's) fault, so the caller should cool
    /// or disable it and try another key.
    pub fn blames_key(&self) -> bool {
        matches!(
            self,
            Verdict::RateLimited { .. }
                | Verdict::QuotaExhausted { .. }
                | Verdict::InvalidKey { .. }
        )
    }

    /// The cause, when the failure is the provider's rather than the key's or the request's:
    /// what the provider circuit counts (see [`CircuitConfig`](crate::CircuitConfig)).
    pub fn provider_cause(&self) -> Option<crate::ProviderCause> {
        match self {
            Verdict::Overloaded { .. } => Some(crate::ProviderCause::Overloaded),
            Verdict::ServerError { .. } => Some(crate::ProviderCause::ServerError),
            Verdict::RegionBlocked => Some(crate::ProviderCause::RegionBlocked),
            _ => None,
        }
    }

    /// Whether the request succeeded.
    pub fn is_success(&self) -> bool {
        matches!(self, Verdict::Ok(_))
    }

    /// When the key (or its scope) may be used again, when the verdict says: the reset of a
    /// limit, the end of a cap, the provider's retry hint, or [`Usage::exhausted_until`].
    pub fn until(&self) -> Option<Timestamp> {
        match self {
            Verdict::Ok(usage) => usage.exhausted_until(),
            Verdict::RateLimited { until, .. } | Verdict::QuotaExhausted { until, .. } => *until,
            Verdict::Overloaded { retry_after } | Verdict::ServerError { retry_after } => {
                *retry_after
            }
            Verdict::InvalidKey { .. } | Verdict::ClientError | Verdict::RegionBlocked => None,
        }
    }

    /// The model the limit applies to, when the provider counts it per model (a
    /// [`LimitScope::Model`]).
    pub fn model(&self) -> Option<ModelName> {
        match self {
            Verdict::RateLimited { scope, .. } | Verdict::QuotaExhausted { scope, .. } => {
                scope.model()
            }
            _ => None,
        }
    }

    /// A short description for status output, e.g. `"rate limited (tokens per minute)"`.
    pub fn reason(&self) -> &'static str {
        use LimitKind as K;
        match self {
            Verdict::Ok(_) => "ok",
            Verdict::RateLimited { limit, .. } => match limit {
                K::RequestsPerMinute => "rate limited (requests per minute)",
                K::TokensPerMinute => "rate limited (tokens per minute)",
                K::RequestsPerDay => "rate limited (requests per day)",
                K::TokensPerDay => "rate limited (tokens per day)",
                K::Monthly => "rate limited (monthly)",
                K::Credits => "rate limited (credits)",
                K::InFlight => "rate limited (in-flight budget)",
                K::Unknown => "rate limited",
            },
            Verdict::QuotaExhausted { limit, .. } => match limit {
                K::RequestsPerMinute => "quota exhausted (requests per minute)",
                K::TokensPerMinute => "quota exhausted (tokens per minute)",
                K::RequestsPerDay => "quota exhausted (requests per day)",
                K::TokensPerDay => "quota exhausted (tokens per day)",
                K::Monthly => "quota exhausted (monthly cap)",
                K::Credits => "quota exhausted (credits)",
                K::InFlight => "quota exhausted (in-flight budget)",
                K::Unknown => "quota exhausted",
            },
            Verdict::InvalidKey { cause } => match cause {
                InvalidKeyCause::Invalid => "invalid key",
                InvalidKeyCause::Leaked => "key reported as leaked",
                InvalidKeyCause::Suspended => "key or account suspended",
                InvalidKeyCause::Blocked => "key blocked for this service",
                InvalidKeyCause::PermissionDenied => "key lacks permission",
            },
            Verdict::Overloaded { .. } => "provider overloaded",
            Verdict::ServerError { .. } => "provider server error",
            Verdict::ClientError => "request rejected (not the key's fault)",
            Verdict::RegionBlocked => "provider refuses this region",
        }
    }
}

/// Who a limit belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum LimitScope {
    /// This key alone: another key may work at once.
    Key,
    /// The project, organization or account every key of it shares (Gemini per-project quotas,
    /// OpenAI/Anthropic/Groq organization limits, billing caps): rotating to a key of the same
    /// scope gains nothing.
    Shared,
    /// One model's limit (Gemini's per-model quotas, OpenAI's "Rate limit reached for gpt-4o"):
    /// the key (with its quota scope, whose keys share the model's count) may still serve other
    /// models, so only requests for this model skip it.
    Model(ModelName),
}

impl LimitScope {
    /// The model, for a [`LimitScope::Model`].
    pub fn model(&self) -> Option<ModelName> {
        match self {
            LimitScope::Model(m) => Some(*m),
            _ => None,
        }
    }
}

/// Which limit or cap a response reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum LimitKind {
    /// Requests per minute (or a shorter window).
    RequestsPerMinute,
    /// Tokens per minute.
    TokensPerMinute,
    /// Requests per day.
    RequestsPerDay,
    /// Tokens per day.
    TokensPerDay,
    /// A monthly spend or usage cap.
    Monthly,
    /// Prepaid credits or balance.
    Credits,
    /// Concurrent requests or the budget reserved for them.
    InFlight,
    /// The response does not say.
    Unknown,
}

/// Why a key is unusable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum InvalidKeyCause {
    /// Wrong, expired, revoked or unknown key.
    Invalid,
    /// The provider found the key published and disabled it (Gemini).
    Leaked,
    /// The key or its account is suspended.
    Suspended,
    /// The key is blocked from this API or service.
    Blocked,
    /// The key lacks permission for what was asked.
    PermissionDenied,
}

/// What a successful response's rate-limit headers say about the key's remaining budget.
///
/// All fields are `None` when the provider sends no such headers (Gemini, Cohere, DeepSeek).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Usage {
    /// Requests left in the current window.
    pub remaining_requests: Option<u64>,
    /// Tokens left in the current window.
    pub remaining_tokens: Option<u64>,
    /// When the request limit is replenished.
    pub requests_reset: Option<Timestamp>,
    /// When the token limit is replenished.
    pub tokens_reset: Option<Timestamp>,
}

impl Usage {
    /// The latest reset among the limits whose remaining count is 0, so the key can cool
    /// *before* the provider answers 429. `None` when nothing is spent, or when a spent limit
    /// gives no reset time (nothing precise can be said then).
    ///
    /// ```
    /// use ai_key_rotator::Timestamp;
    /// use ai_key_rotator::classify::Usage;
    ///
    /// let usage = Usage {
    ///     remaining_requests: Some(0),
    ///     remaining_tokens: Some(1200),
    ///     requests_reset: Some(Timestamp::from_secs(60)),
    ///     tokens_reset: Some(Timestamp::from_secs(90)),
    /// };
    /// assert_eq!(usage.exhausted_until(), Some(Timestamp::from_secs(60)));
    /// ```
    pub fn exhausted_until(&self) -> Option<Timestamp> {
        let requests = (self.remaining_requests == Some(0))
            .then_some(self.requests_reset)
            .flatten();
        let tokens = (self.remaining_tokens == Some(0))
            .then_some(self.tokens_reset)
            .flatten();
        requests.max(tokens)
    }
}
