//! Building [`RotatorStatus`] from the live state.

use std::sync::atomic::Ordering;

use super::Inner;
use crate::circuit::CircuitState;
use crate::clock::Timestamp;
use crate::identity::mask;
use crate::pool::{ProviderSnap, SlotState};
use crate::status::{
    CircuitStatus, CredentialState, CredentialStatus, ProviderStatus, RotatorStatus,
};

impl Inner {
    pub(super) fn status(&self) -> RotatorStatus {
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

    pub(super) fn provider_status(&self, provider: &str) -> Option<ProviderStatus> {
        let snapshot = self.snapshot.load();
        let now = self.clock.now();
        snapshot.provider(provider).map(|p| self.status_of(p, now))
    }

    /// Reads state as of `now` without changing it: a cooldown that has ended shows as
    /// available even before anyone has asked for the credential.
    fn status_of(&self, prov: &ProviderSnap, now: Timestamp) -> ProviderStatus {
        use secrecy::ExposeSecret;
        let models = prov.shared.models.all();
        let credentials: Vec<CredentialStatus> = prov
            .slots
            .iter()
            .map(|slot| {
                let fp = slot.id.fingerprint.as_u64();
                let model_cooldowns = crate::pool::running_rests(&models, fp, now);
                let state = match slot.state() {
                    SlotState::Ready => CredentialState::Available,
                    SlotState::Cooling(t) if t <= now => CredentialState::Available,
                    SlotState::Cooling(until) => CredentialState::Cooling { until },
                    SlotState::Disabled | SlotState::Removed => CredentialState::Disabled,
                };
                let detail = slot.detail().clone();
                let recheck = detail.recheck.as_deref().copied();
                let state = match (state, recheck) {
                    (
                        CredentialState::Disabled,
                        Some(crate::recheck::Recheck {
                            kind: crate::RecheckKind::Depleted,
                            due,
                        }),
                    ) => CredentialState::Depleted { recheck_at: due },
                    (state, _) => state,
                };
                CredentialStatus {
                    recheck_at: recheck.and_then(|r| r.due),
                    id: slot.id.clone(),
                    masked_key: mask(slot.key.expose_secret()),
                    state,
                    times_used: self.uses(slot),
                    times_exhausted: slot.times_exhausted.load(Ordering::Relaxed),
                    last_exhausted_at: slot.last_exhausted(),
                    scope: slot.scope.clone(),
                    reason: detail
                        .reason
                        .map(|r| *r)
                        .filter(|_| state != CredentialState::Available),
                    consecutive_failures: detail.failures,
                    model_cooldowns,
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
        let circuit = match prov.shared.circuit.state() {
            CircuitState::Closed => None,
            CircuitState::Open(until) => Some((until, false)),
            CircuitState::Probing(until) => Some((until, true)),
        }
        .map(|(until, probing)| CircuitStatus {
            cause: prov
                .shared
                .circuit
                .detail()
                .cause
                .unwrap_or(crate::ProviderCause::ServerError),
            until,
            probing,
        });
        ProviderStatus {
            circuit,
            affinity_placed: prov.shared.affinity_placed.load(Ordering::Relaxed),
            name: prov.name.to_string(),
            total: n,
            available,
            current,
            next_available_at,
            credentials,
        }
    }
}
