//! Status: what each provider and credential is doing, for callers and operators.
//!
//! Plain data; the rotator builds it (`rotator/status.rs`).

use std::borrow::Cow;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::classify::{ModelName, Verdict};
use crate::clock::Timestamp;
use crate::identity::CredentialId;

/// Every provider's status at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RotatorStatus {
    /// When the status was taken.
    pub at: Timestamp,
    /// One entry per provider, in the order they were added.
    pub providers: Vec<ProviderStatus>,
}

/// One provider's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProviderStatus {
    /// The provider's name.
    pub name: String,
    /// How many credentials it has.
    pub total: usize,
    /// How many are available now.
    pub available: usize,
    /// The credential `get_key` hands out next, if it is available.
    pub current: Option<CredentialId>,
    /// The earliest time a credential is available: `at` if one is available now, `None` if
    /// none will come back by itself (all disabled). A caller can answer `retry-after` with it.
    pub next_available_at: Option<Timestamp>,
    /// Every credential, in order.
    pub credentials: Vec<CredentialStatus>,
    /// The provider's circuit, when it is not closed (see
    /// [`CircuitConfig`](crate::CircuitConfig)).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub circuit: Option<CircuitStatus>,
    /// Acquires placed by prompt-cache affinity (a prompt-prefix hash) since the provider was
    /// added, in this process.
    pub affinity_placed: u64,
}

/// A provider circuit that is open or probing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CircuitStatus {
    /// What the keys failed with.
    pub cause: crate::ProviderCause,
    /// Open: when a request may probe. Probing: when the probe may be replaced.
    pub until: Timestamp,
    /// Whether a probe request is out.
    pub probing: bool,
}

/// One credential's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CredentialStatus {
    /// Its label and fingerprint.
    #[serde(flatten)]
    pub id: CredentialId,
    /// A masked form of the key, such as `sk-…wxyz`.
    pub masked_key: String,
    /// Available, cooling or disabled.
    #[serde(flatten)]
    pub state: CredentialState,
    /// How many times `get_key` handed it out.
    pub times_used: u64,
    /// How many times it was marked exhausted.
    pub times_exhausted: u64,
    /// When it was last marked exhausted.
    pub last_exhausted_at: Option<Timestamp>,
    /// The quota scope it shares with other credentials, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<Arc<str>>,
    /// Why it is cooling or disabled; `None` when available.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<CooldownReason>,
    /// Failures blamed on the key in a row (reset by a success).
    pub consecutive_failures: u32,
    /// When a disabled key (depleted, or invalid with `recheck_invalid`) is due for a
    /// re-check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recheck_at: Option<Timestamp>,
    /// The models it rests for after per-model limits (it serves the others), by model name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub model_cooldowns: Vec<ModelCooldownStatus>,
}

/// A credential resting for one model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelCooldownStatus {
    /// The model.
    pub model: ModelName,
    /// When it serves the model again.
    pub until: Timestamp,
    /// Why.
    pub reason: CooldownReason,
}

/// Why a credential is cooling or disabled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CooldownReason {
    /// A short description: `"marked exhausted"`, `"rate limited (tokens per minute)"`,
    /// `"invalid key"`, `"remaining quota is 0"`, …
    pub cause: Cow<'static, str>,
    /// The classifier's verdict, when the cooldown came from a provider response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Box<Verdict>>,
    /// When the provider said the limit resets, if it said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_reset: Option<Timestamp>,
    /// The quota scope, when the whole scope cools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Arc<str>>,
}

impl CooldownReason {
    /// A reason with only a cause.
    pub(crate) fn new(cause: impl Into<Cow<'static, str>>) -> Self {
        CooldownReason {
            cause: cause.into(),
            verdict: None,
            provider_reset: None,
            scope: None,
        }
    }
}

/// Whether a credential can be handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum CredentialState {
    /// It can be handed out.
    Available,
    /// It rests until the given time.
    Cooling {
        /// When it becomes available.
        until: Timestamp,
    },
    /// It was disabled and comes back only when enabled.
    Disabled,
    /// It is out of credits or over a cap with no known reset: out of use until a re-check
    /// proves it (see [`RecheckConfig`](crate::RecheckConfig)).
    Depleted {
        /// When the re-check is due; `None` when re-checks are off.
        recheck_at: Option<Timestamp>,
    },
}

/// A provider's client-side budgets and their use at one moment (see
/// [`KeyRotator::budgets`](crate::KeyRotator::budgets)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProviderBudgets {
    /// The provider.
    pub provider: String,
    /// When the use was read.
    pub at: Timestamp,
    /// Each key's own budget (the provider's `budget`), in key order; empty without one.
    pub keys: Vec<KeyBudget>,
    /// Each quota scope's budget (`scope_budgets`), by scope name.
    pub scopes: Vec<ScopeBudget>,
}

/// One key's budget and its use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyBudget {
    /// The key's label and fingerprint.
    #[serde(flatten)]
    pub id: CredentialId,
    /// Whether its limits are fleet-wide (shared through a Redis store): then `used` is this
    /// process's use and `limit` the fleet's.
    pub fleet: bool,
    /// Each configured limit.
    pub limits: Vec<crate::LimitUse>,
}

/// One quota scope's budget and its use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScopeBudget {
    /// The scope.
    pub scope: Arc<str>,
    /// As [`KeyBudget::fleet`].
    pub fleet: bool,
    /// Each configured limit.
    pub limits: Vec<crate::LimitUse>,
}
