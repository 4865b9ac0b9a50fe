//! What the rotator offers its store ([`StoreHost`]): its clock, its state, and a way in for
//! other processes' changes. The store holds it as a weak `dyn StoreHost`, so `store/` never
//! names the rotator's internals.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Inner;
use crate::clock::Timestamp;
use crate::identity::Fingerprint;
use crate::pool::SlotState;
use crate::status::CredentialState;
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
                    record.model_cooldowns = crate::pool::running_rests(&models, fp, now);
                    record
                })
            })
            .collect()
    }

    fn key_digest(&self) -> (u64, usize) {
        // A sum of one well-mixed word per credential: the same set gives the same digest
        // in any order and in any process, with no allocation and no sort (a few ms for a
        // million credentials). Not a defence against anyone; it tells configurations apart.
        let snapshot = self.snapshot.load();
        let (mut sum, mut count) = (0u64, 0usize);
        for prov in snapshot.providers.iter() {
            let name = Fingerprint::of(&prov.name).as_u64();
            for slot in prov.slots.iter() {
                sum = sum.wrapping_add(mix(name ^ slot.id.fingerprint.as_u64()));
                count += 1;
            }
        }
        (sum, count)
    }

    fn apply_remote(&self, provider: &str, fingerprint: Fingerprint, change: RemoteChange) -> bool {
        Inner::apply_remote(self, provider, fingerprint, change)
    }
}

/// SplitMix64's finalizer: every input bit moves about half the output bits, so a sum of mixed
/// words does not cancel out the way a sum of raw fingerprints could.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
