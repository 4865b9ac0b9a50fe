//! What the rotator offers its store ([`StoreHost`]): its clock, its state, and a way in for
//! other processes' changes. The store holds it as a weak `dyn StoreHost`, so `store/` never
//! names the rotator's internals.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Inner;
use crate::clock::Timestamp;
use crate::identity::Fingerprint;
use crate::pool::SlotState;
use crate::status::{CredentialState, ModelCooldownStatus};
use crate::store::{CredentialRecord, RemoteChange, StoreHost};

impl StoreHost for Inner {
    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn export_state(&self) -> String {
        Inner::export_state(self)
    }

    fn records(&self) -> Vec<CredentialRecord> {
        let snapshot = self.snapshot.load();
        let now = self.clock.now();
        snapshot
            .providers
            .iter()
            .flat_map(|prov| {
                // Read once per provider: usually empty, and then nothing is allocated.
                let models = prov.shared.models.all();
                prov.slots.iter().map(move |slot| {
                    let state = match slot.state() {
                        SlotState::Cooling(until) if until > now => {
                            CredentialState::Cooling { until }
                        }
                        SlotState::Disabled | SlotState::Removed => CredentialState::Disabled,
                        _ => CredentialState::Available,
                    };
                    let mut record =
                        CredentialRecord::new(Arc::clone(&prov.name), slot.id.clone(), state);
                    record.times_used = self.uses(slot);
                    record.uses_here = record
                        .times_used
                        .saturating_sub(slot.uses_loaded.load(Ordering::Relaxed));
                    record.times_exhausted = slot.times_exhausted.load(Ordering::Relaxed);
                    record.last_exhausted_at = slot.last_exhausted();
                    let detail = slot.detail();
                    record.reason = match state {
                        CredentialState::Available => None,
                        _ => detail.reason.as_deref().cloned(),
                    };
                    record.consecutive_failures = detail.failures;
                    drop(detail);
                    let fp = slot.id.fingerprint.as_u64();
                    // Ended rests are not records: a store never writes them.
                    record.model_cooldowns = models
                        .iter()
                        .filter_map(|(model, entry)| {
                            let c = entry.keys.get(&fp).filter(|c| c.until > now)?;
                            Some(ModelCooldownStatus {
                                model: *model,
                                until: c.until,
                                reason: c.reason.clone(),
                            })
                        })
                        .collect();
                    record
                })
            })
            .collect()
    }

    fn apply_remote(&self, provider: &str, fingerprint: Fingerprint, change: RemoteChange) -> bool {
        Inner::apply_remote(self, provider, fingerprint, change)
    }
}
