//! Status: what each provider and credential is doing, for callers and operators.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};

use crate::classify::Verdict;
use crate::clock::Timestamp;
use crate::credential::{CredentialId, mask};
use crate::pool::{ProviderSnap, SlotState};
use crate::rotator::Inner;

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
}

/// Why a credential is cooling or disabled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CooldownReason {
    /// A short description: `"marked exhausted"`, `"rate limited (tokens per minute)"`,
    /// `"invalid key"`, `"remaining quota is 0"`, …
    pub cause: Cow<'static, str>,
    /// The classifier's verdict, when the cooldown came from a provider response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
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
}

impl Inner {
    pub(crate) fn status(&self) -> RotatorStatus {
        let snapshot = self.snapshot.load();
        let now = self.clock.now();
        RotatorStatus {
            at: now,
            providers: snapshot
                .providers
                .iter()
                .map(|p| self.status_of(p, now))
                .collect(),
        }
    }

    pub(crate) fn provider_status(&self, provider: &str) -> Option<ProviderStatus> {
        let snapshot = self.snapshot.load();
        let now = self.clock.now();
        snapshot.provider(provider).map(|p| self.status_of(p, now))
    }

    /// Reads state as of `now` without changing it: a cooldown that has ended shows as
    /// available even before anyone has asked for the credential.
    fn status_of(&self, prov: &ProviderSnap, now: Timestamp) -> ProviderStatus {
        use secrecy::ExposeSecret;
        let credentials: Vec<CredentialStatus> = prov
            .slots
            .iter()
            .map(|slot| {
                let state = match slot.state() {
                    SlotState::Ready => CredentialState::Available,
                    SlotState::Cooling(t) if t <= now => CredentialState::Available,
                    SlotState::Cooling(until) => CredentialState::Cooling { until },
                    SlotState::Disabled | SlotState::Removed => CredentialState::Disabled,
                };
                let detail = slot.detail().clone();
                CredentialStatus {
                    id: slot.id.clone(),
                    masked_key: mask(slot.key.expose_secret()),
                    state,
                    times_used: self.uses(slot),
                    times_exhausted: slot.times_exhausted.load(Ordering::Relaxed),
                    last_exhausted_at: slot.last_exhausted(),
                    scope: slot.scope.clone(),
                    reason: detail
                        .reason
                        .filter(|_| state != CredentialState::Available),
                    consecutive_failures: detail.failures,
                }
            })
            .collect();
        let available = credentials
            .iter()
            .filter(|c| c.state == CredentialState::Available)
            .count();
        let next_available_at = if available > 0 {
            Some(now)
        } else {
            credentials
                .iter()
                .filter_map(|c| match c.state {
                    CredentialState::Cooling { until } => Some(until),
                    _ => None,
                })
                .min()
        };
        let n = prov.slots.len();
        let current = (n > 0)
            .then(|| prov.shared.cursor.load(Ordering::Relaxed) as usize % n)
            .filter(|&i| credentials[i].state == CredentialState::Available)
            .map(|i| credentials[i].id.clone());
        ProviderStatus {
            name: prov.name.to_string(),
            total: n,
            available,
            current,
            next_available_at,
            credentials,
        }
    }
}
