//! Choosing a credential: the `get_key` hot path and its slow path.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use arc_swap::Guard;

use super::Inner;
use super::pick::Pick;
use crate::clock::Timestamp;
use crate::credential::Credential;
use crate::events::Event;
use crate::pool::{Exhaustion, ProviderSnap, Slot, SlotState, Snapshot};

impl Inner {
    #[inline]
    pub(super) fn get_key(&self, provider: &str) -> Option<Credential> {
        let snapshot = self.snapshot.load();
        let p = snapshot.find(provider)?;
        let prov = &snapshot.providers[p];
        if !prov.shared.plain_fill_first || !prov.shared.circuit.is_closed() {
            if !prov.shared.circuit.is_closed() {
                return self.acquire(provider, &Pick::default()).ok();
            }
            return self.pick_general(snapshot, p, &Pick::default()).ok();
        }
        let i = prov.shared.cursor.load(Ordering::Relaxed) as usize;
        if let Some(slot) = prov.slots.get(i)
            && slot.is_ready_now()
        {
            self.count_use(slot);
            return Some(Credential::new(snapshot, p, i));
        }
        self.select_slow(snapshot, p, true)
    }

    #[inline]
    pub(super) fn count_use(&self, slot: &Slot) {
        if !self.usage.add(slot.usage_index) {
            slot.uses_base.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn uses(&self, slot: &Slot) -> u64 {
        slot.uses_base.load(Ordering::Relaxed) + self.usage.total(slot.usage_index)
    }

    /// The current credential is not ready (or the cursor is out of range after a removal):
    /// find the next available one in order, starting with the current one, whose cooldown may
    /// just have ended.
    #[cold]
    pub(super) fn select_slow(
        &self,
        snapshot: Guard<Arc<Snapshot>>,
        p: usize,
        count: bool,
    ) -> Option<Credential> {
        let prov = &snapshot.providers[p];
        let n = prov.slots.len();
        if n == 0 {
            return None;
        }
        let now = self.clock.now();
        let before = prov.shared.exhaustion.load();
        match before.exhaustion() {
            Exhaustion::Until(t) if now < t => return None,
            Exhaustion::Never => return None,
            _ => {}
        }
        let cursor = prov.shared.cursor.load(Ordering::Relaxed);
        let start = cursor as usize % n;
        match self.find_ready(prov, start, n, now) {
            Some(i) => {
                self.move_cursor(prov, cursor, i);
                if count {
                    self.count_use(&prov.slots[i]);
                }
                Some(Credential::new(snapshot, p, i))
            }
            None => {
                self.note_exhausted(prov, before);
                None
            }
        }
    }

    /// The first ready credential among `count` positions from `start`, reviving any whose
    /// cooldown has ended on the way.
    pub(super) fn find_ready(
        &self,
        prov: &ProviderSnap,
        start: usize,
        count: usize,
        now: Timestamp,
    ) -> Option<usize> {
        let n = prov.slots.len();
        (0..count)
            .map(|k| (start + k) % n)
            .find(|&i| self.ready_at(prov, i, now))
    }

    /// If the current credential is among those just made unavailable, moves the provider on
    /// now, so the next caller does not pay for the search (and `Rotated` or `AllExhausted`
    /// follow the change that caused them).
    pub(super) fn move_off(
        &self,
        prov: &ProviderSnap,
        affected: impl Fn(usize) -> bool,
        now: Timestamp,
    ) {
        let n = prov.slots.len();
        if n == 0 {
            return;
        }
        let cursor = prov.shared.cursor.load(Ordering::Relaxed);
        let current = cursor as usize % n;
        if !affected(current) {
            return;
        }
        let before = prov.shared.exhaustion.load();
        match self.find_ready(prov, current + 1, n - 1, now) {
            Some(next) => self.move_cursor(prov, cursor, next),
            None => self.note_exhausted(prov, before),
        }
    }

    /// Points the provider at credential `to`, unless another thread moved the cursor since
    /// it read `from`; emits `Rotated` if it moved.
    pub(super) fn move_cursor(&self, prov: &ProviderSnap, from: u32, to: usize) {
        if from as usize == to {
            return;
        }
        let moved = prov
            .shared
            .cursor
            .compare_exchange(from, to as u32, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok();
        if moved {
            self.events.emit_with(|| Event::Rotated {
                provider: Arc::clone(&prov.name),
                from: prov.slots.get(from as usize).map(|s| s.id.clone()),
                to: prov.slots[to].id.clone(),
            });
        }
    }

    /// No credential is ready: remember until when, and announce it once.
    pub(super) fn note_exhausted(&self, prov: &ProviderSnap, before: crate::pool::CacheWord) {
        let earliest = prov
            .slots
            .iter()
            .filter_map(|s| match s.state() {
                SlotState::Cooling(t) => Some(t),
                _ => None,
            })
            .min();
        let found = earliest.map_or(Exhaustion::Never, Exhaustion::Until);
        let recorded = prov.shared.exhaustion.record(before, found);
        if recorded && before.exhaustion() == Exhaustion::Unknown {
            self.events.emit_with(|| Event::AllExhausted {
                provider: Arc::clone(&prov.name),
                until: earliest,
            });
        }
    }

    pub(super) fn rotate_next(&self, provider: &str) -> bool {
        let snapshot = self.snapshot.load();
        let Some(prov) = snapshot.provider(provider) else {
            return false;
        };
        let n = prov.slots.len();
        if n < 2 {
            return false;
        }
        let now = self.clock.now();
        let cursor = prov.shared.cursor.load(Ordering::Relaxed);
        let current = cursor as usize % n;
        match self.find_ready(prov, current + 1, n - 1, now) {
            Some(i) => {
                self.move_cursor(prov, cursor, i);
                true
            }
            None => false,
        }
    }

    pub(super) fn has_available(&self, provider: &str) -> bool {
        let snapshot = self.snapshot.load();
        let Some(p) = snapshot.find(provider) else {
            return false;
        };
        let prov = &snapshot.providers[p];
        if !prov.shared.plain_fill_first {
            let now = self.clock.now();
            return (0..prov.slots.len()).any(|i| self.ready_at(prov, i, now));
        }
        let i = prov.shared.cursor.load(Ordering::Relaxed) as usize;
        if prov.slots.get(i).is_some_and(|s| s.is_ready_now()) {
            return true;
        }
        self.select_slow(snapshot, p, false).is_some()
    }
}
