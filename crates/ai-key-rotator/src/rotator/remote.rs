//! Changes made by other processes, applied to the local view.
//!
//! Shared stores (SQLite, Redis) hand in what another process did through
//! [`StoreLink::apply_remote`](crate::StoreLink::apply_remote). The rules are those of
//! `transition.rs`: a running cooldown is only extended, never shortened (except by a reset
//! that covers it); disabled stays disabled until enabled; removed stays removed. Events go to
//! subscribers as `Event::Remote` and never back to the store, so nothing echoes.

use std::sync::Arc;

use super::Inner;
use crate::credential::Fingerprint;
use crate::events::Event;
use crate::pool::SlotState;
use crate::store::RemoteChange;

impl Inner {
    pub(crate) fn apply_remote(
        &self,
        provider: &str,
        fingerprint: Fingerprint,
        change: RemoteChange,
    ) -> bool {
        let snapshot = self.snapshot.load();
        let Some(prov) = snapshot.provider(provider) else {
            return false;
        };
        let Some(i) = prov.position_of(fingerprint) else {
            return false;
        };
        let slot = &prov.slots[i];
        let now = self.clock.now();
        match change {
            RemoteChange::Cooling(until) => {
                if until <= now {
                    return false;
                }
                loop {
                    let current = slot.state();
                    match current {
                        SlotState::Disabled | SlotState::Removed => return false,
                        SlotState::Cooling(t) if t >= until => return false,
                        _ => {}
                    }
                    if slot.replace(current, SlotState::Cooling(until)) {
                        break;
                    }
                }
                self.events.emit_remote(|| Event::Exhausted {
                    provider: Arc::clone(&prov.name),
                    credential: slot.id.clone(),
                    until,
                });
                self.move_off(prov, |j| j == i, now);
                true
            }
            RemoteChange::Reset { up_to } => {
                loop {
                    let current = slot.state();
                    match current {
                        SlotState::Cooling(t) if t <= up_to => {
                            if slot.replace(current, SlotState::Ready) {
                                break;
                            }
                        }
                        _ => return false,
                    }
                }
                prov.shared.exhaustion.invalidate();
                self.events.emit_remote(|| Event::Reset {
                    provider: Arc::clone(&prov.name),
                    credentials: vec![slot.id.clone()],
                });
                true
            }
            RemoteChange::Disabled => {
                loop {
                    let current = slot.state();
                    match current {
                        SlotState::Disabled | SlotState::Removed => return false,
                        _ => {}
                    }
                    if slot.replace(current, SlotState::Disabled) {
                        break;
                    }
                }
                tracing::debug!(provider, credential = %slot.id, "credential disabled by another process");
                self.events.emit_remote(|| Event::Disabled {
                    provider: Arc::clone(&prov.name),
                    credential: slot.id.clone(),
                    reason: std::borrow::Cow::Borrowed("disabled by another process"),
                });
                self.move_off(prov, |j| j == i, now);
                true
            }
            RemoteChange::Enabled => {
                if !slot.replace(SlotState::Disabled, SlotState::Ready) {
                    return false;
                }
                prov.shared.exhaustion.invalidate();
                tracing::debug!(provider, credential = %slot.id, "credential enabled by another process");
                self.events.emit_remote(|| Event::Enabled {
                    provider: Arc::clone(&prov.name),
                    credential: slot.id.clone(),
                });
                true
            }
        }
    }
}
