//! State changes of credentials: the one place where cooldowns start, grow and end.
//!
//! Policies decide *until when*; this module applies it under the crate's rules (a running
//! cooldown is extended, never shortened; disabled and removed credentials are left alone;
//! every change emits its event) and is where later layers (persistence, sharing) will hear
//! about each change.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Inner;
use crate::clock::Timestamp;
use crate::credential::Credential;
use crate::events::Event;
use crate::pool::{ProviderSnap, SlotState};

impl Inner {
    pub(super) fn mark_exhausted(&self, provider: &str, key: Option<&str>) -> bool {
        let snapshot = self.snapshot.load();
        let Some(prov) = snapshot.provider(provider) else {
            return false;
        };
        let n = prov.slots.len();
        let i = match key {
            Some(key) => match prov.position_of_key(key) {
                Some(i) => i,
                None => return false,
            },
            None if n == 0 => return false,
            None => prov.shared.cursor.load(Ordering::Relaxed) as usize % n,
        };
        let now = self.clock.now();
        let until = prov.shared.cooldown.until(now);
        self.cool(prov, i, until, now)
    }

    pub(super) fn mark_credential(&self, credential: &Credential) -> bool {
        // Find the credential in the current snapshot by identity: the handle may come from an
        // older snapshot in which positions differ.
        let snapshot = self.snapshot.load();
        let Some(prov) = snapshot.provider(credential.provider()) else {
            return false;
        };
        let Some(i) = prov.position_of(credential.fingerprint()) else {
            return false;
        };
        if !Arc::ptr_eq(&prov.slots[i], credential.slot_arc()) {
            return false;
        }
        let now = self.clock.now();
        let until = prov.shared.cooldown.until(now);
        self.cool(prov, i, until, now)
    }

    /// Cools credential `i` until `until` (or longer, if it already cools longer). Returns
    /// false if it is disabled or removed.
    pub(super) fn cool(
        &self,
        prov: &ProviderSnap,
        i: usize,
        until: Timestamp,
        now: Timestamp,
    ) -> bool {
        let slot = &prov.slots[i];
        let applied = loop {
            let current = slot.state();
            let target = match current {
                SlotState::Disabled | SlotState::Removed => return false,
                SlotState::Ready => until,
                SlotState::Cooling(t) if t <= now => {
                    // The previous cooldown ended unobserved; end it properly (with its
                    // `Reset`) before starting the new one.
                    self.ready_at(prov, i, now);
                    continue;
                }
                SlotState::Cooling(t) => t.max(until),
            };
            if current == SlotState::Cooling(target)
                || slot.replace(current, SlotState::Cooling(target))
            {
                break target;
            }
        };
        slot.times_exhausted.fetch_add(1, Ordering::Relaxed);
        slot.last_exhausted_at
            .store(now.as_millis(), Ordering::Relaxed);
        self.events.emit_with(|| Event::Exhausted {
            provider: Arc::clone(&prov.name),
            credential: slot.id.clone(),
            until: applied,
        });
        tracing::debug!(provider = %prov.name, credential = %slot.id, until = %applied, "credential exhausted");

        // If that was the current credential, move on now, so the next caller does not pay
        // for the search (and `Rotated`/`AllExhausted` arrive right after `Exhausted`).
        let n = prov.slots.len();
        let cursor = prov.shared.cursor.load(Ordering::Relaxed);
        if cursor as usize % n == i {
            let before = prov.shared.exhaustion.load();
            match self.find_ready(prov, i + 1, n - 1, now) {
                Some(next) => self.move_cursor(prov, cursor, next),
                None => self.note_exhausted(prov, before),
            }
        }
        true
    }

    /// Ends cooldowns: all of them (`expired_only = false`), or those that ended by `now`.
    fn reset_where(&self, provider: Option<&str>, expired_only: bool) -> usize {
        let snapshot = self.snapshot.load();
        let now = self.clock.now();
        let mut total = 0;
        for prov in &snapshot.providers {
            if provider.is_some_and(|name| name != &*prov.name) {
                continue;
            }
            let mut reset = Vec::new();
            for slot in prov.slots.iter() {
                loop {
                    match slot.state() {
                        SlotState::Cooling(t) if !expired_only || t <= now => {
                            if slot.replace(SlotState::Cooling(t), SlotState::Ready) {
                                reset.push(slot.id.clone());
                                break;
                            }
                        }
                        _ => break,
                    }
                }
            }
            if reset.is_empty() {
                continue;
            }
            prov.shared.exhaustion.invalidate();
            total += reset.len();
            tracing::debug!(provider = %prov.name, count = reset.len(), "cooldowns reset");
            self.events.emit_with(|| Event::Reset {
                provider: Arc::clone(&prov.name),
                credentials: reset,
            });
        }
        total
    }

    pub(super) fn reset_all(&self, provider: Option<&str>) -> usize {
        self.reset_where(provider, false)
    }

    pub(super) fn reset_expired(&self) -> usize {
        self.reset_where(None, true)
    }
}
