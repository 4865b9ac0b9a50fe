//! Saved state in and out of the live rotator: `export_state`, `import_state`, `save`, `load`,
//! and the store's state at start. Restoring goes through `transition.rs` like every other
//! change, so it emits what it changed and a store hears of it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Inner;
use super::transition::Origin;
use crate::clock::Timestamp;
use crate::error::StateError;
use crate::persist::state::{Availability, CredentialState, ProviderState, State, VERSION, parse};
use crate::pool::SlotState;

impl Inner {
    pub(crate) fn export_state(&self) -> String {
        let snapshot = self.snapshot.load();
        let now = self.clock.now();
        let providers = snapshot
            .providers
            .iter()
            .map(|prov| {
                let models = prov.shared.models.all();
                let n = prov.slots.len();
                let current = (n > 0).then(|| {
                    prov.slots[prov.shared.cursor.load(Ordering::Relaxed) as usize % n]
                        .id
                        .fingerprint
                });
                let credentials = prov
                    .slots
                    .iter()
                    .map(|slot| {
                        let state = match slot.state() {
                            SlotState::Cooling(until) if until > now => {
                                Availability::Cooling { until }
                            }
                            SlotState::Disabled => Availability::Disabled,
                            _ => Availability::Available,
                        };
                        let detail = slot.detail().clone();
                        let fp = slot.id.fingerprint.as_u64();
                        let model_cooldowns = crate::pool::running_rests(&models, fp, now);
                        let saved = CredentialState {
                            model_cooldowns,
                            label: slot.id.label.as_deref().map(str::to_owned),
                            reason: detail
                                .reason
                                .map(|r| *r)
                                .filter(|_| state != Availability::Available),
                            consecutive_failures: detail.failures,
                            state,
                            times_used: self.uses(slot),
                            times_exhausted: slot.times_exhausted.load(Ordering::Relaxed),
                            last_exhausted_at: slot.last_exhausted(),
                        };
                        (slot.id.fingerprint, saved)
                    })
                    .collect();
                (
                    prov.name.to_string(),
                    ProviderState {
                        current,
                        credentials,
                    },
                )
            })
            .collect();
        let state = State {
            version: VERSION,
            saved_at: now,
            providers,
        };
        // Serializing plain data with string keys cannot fail.
        serde_json::to_string(&state).unwrap_or_default()
    }

    pub(super) fn import_state(&self, text: &str) -> Result<(), StateError> {
        self.apply(parse(text)?, Origin::Restore);
        Ok(())
    }

    /// Brings the live state to `state`: each credential through `transition::restore` (a
    /// removed credential stays removed, a longer local cooldown is kept), then counters and
    /// the cursor.
    pub(super) fn apply(&self, state: State, origin: Origin) {
        let snapshot = self.snapshot.load();
        let now = self.clock.now();
        for (name, saved) in state.providers {
            let Some(prov) = snapshot.provider(&name) else {
                continue;
            };
            for (fingerprint, c) in saved.credentials {
                let Some(i) = prov.position_of(fingerprint) else {
                    continue;
                };
                let target = match c.state {
                    Availability::Cooling { until } => SlotState::Cooling(until),
                    Availability::Disabled => SlotState::Disabled,
                    Availability::Available => SlotState::Ready,
                };
                // Counters first: a store that writes whole snapshots may write one as soon
                // as the state change below is announced, and it must not see old counters.
                let slot = &prov.slots[i];
                slot.detail().failures = c.consecutive_failures;
                let counted = self.usage.total(slot.usage_index);
                let loaded = c.times_used.saturating_sub(counted);
                slot.uses_base.store(loaded, Ordering::Relaxed);
                slot.uses_loaded.store(loaded, Ordering::Relaxed);
                slot.times_exhausted
                    .store(c.times_exhausted, Ordering::Relaxed);
                slot.last_exhausted_at.store(
                    c.last_exhausted_at.map_or(0, Timestamp::as_millis),
                    Ordering::Relaxed,
                );
                self.restore(prov, i, target, c.reason, now, origin);
                for m in c.model_cooldowns {
                    let _ = self.restore_model(prov, i, m.model, m.until, m.reason, now, origin);
                }
            }
            if let Some(i) = saved.current.and_then(|fp| prov.position_of(fp)) {
                prov.shared.cursor.store(i as u32, Ordering::Relaxed);
            }
            // Availability may have gone either way: forget what was known.
            prov.shared.exhaustion.invalidate();
        }
    }

    pub(super) async fn save(&self) -> Result<(), StateError> {
        let Some(persistence) = &self.persistence else {
            return Ok(());
        };
        let text = self.export_state();
        persistence
            .save(text)
            .await
            .map_err(StateError::Persistence)
    }

    pub(super) async fn load(&self) -> Result<bool, StateError> {
        let Some(persistence) = &self.persistence else {
            return Ok(false);
        };
        let persistence = Arc::clone(persistence);
        match persistence.load().await.map_err(StateError::Persistence)? {
            None => Ok(false),
            Some(text) => {
                let text: String = text;
                self.import_state(text.as_str())?;
                Ok(true)
            }
        }
    }
}
