//! The general selection path: every strategy, session affinity and budgets.
//!
//! `get_key` on a plain fill-first provider never comes here (see `select.rs`). This path reads
//! the clock once, orders the candidates by the provider's strategy (or by the session's
//! rendezvous hash), and takes the first that is available and that its budgets admit.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arc_swap::Guard;

use super::Inner;
use crate::clock::Timestamp;
use crate::credential::Credential;
use crate::pool::{ProviderSnap, SlotState, Snapshot};
use crate::strategy::Strategy;

/// What the caller asks for.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Pick<'a> {
    /// Keep this session on one key.
    pub(crate) session: Option<&'a str>,
    /// Tokens the request is expected to use, for token budgets.
    pub(crate) tokens: u64,
    /// Count the pick in flight (a lease) until released.
    pub(crate) hold: bool,
}

/// Why nothing was picked: the earliest time something may be, if any.
pub(crate) type NotNow = Option<Timestamp>;

impl Inner {
    pub(super) fn pick_general(
        &self,
        snapshot: Guard<Arc<Snapshot>>,
        p: usize,
        pick: &Pick<'_>,
    ) -> Result<Credential, NotNow> {
        let i = self.pick_index(&snapshot.providers[p], pick)?;
        Ok(Credential::new(snapshot, p, i))
    }

    /// A credential for a lease; `Err(None)` for an unknown provider, `Err(Some(t))` for none
    /// available (with the earliest time one may be, if any).
    pub(super) fn acquire(
        &self,
        provider: &str,
        pick: &Pick<'_>,
    ) -> Result<Credential, Option<NotNow>> {
        let snapshot = self.snapshot.load();
        let p = snapshot.find(provider).ok_or(None::<NotNow>)?;
        let prov = &snapshot.providers[p];
        if prov.shared.plain_fill_first && pick.session.is_none() {
            // The sticky path, as `get_key`, plus the in-flight count.
            let i = prov.shared.cursor.load(Ordering::Relaxed) as usize;
            let credential = match prov.slots.get(i) {
                Some(slot) if slot.is_ready_now() => {
                    self.count_use(slot);
                    Credential::new(snapshot, p, i)
                }
                _ => match self.select_slow(snapshot, p, true) {
                    Some(c) => c,
                    None => {
                        let snapshot = self.snapshot.load();
                        let earliest = snapshot
                            .provider(provider)
                            .and_then(|prov| self.earliest_return(prov));
                        return Err(Some(earliest));
                    }
                },
            };
            // Fill-first never reads the in-flight count, so a plain fill-first lease does not
            // keep it (see `Lease`).
            return Ok(credential);
        }
        self.pick_general(snapshot, p, pick).map_err(Some)
    }

    /// The earliest end of a running cooldown, if any credential is cooling.
    pub(crate) fn earliest_return(&self, prov: &ProviderSnap) -> NotNow {
        prov.slots
            .iter()
            .filter_map(|s| match s.state() {
                SlotState::Cooling(t) => Some(t),
                _ => None,
            })
            .min()
    }

    pub(super) fn pick_index(&self, prov: &ProviderSnap, pick: &Pick<'_>) -> Result<usize, NotNow> {
        let n = prov.slots.len();
        if n == 0 {
            return Err(None);
        }
        let now = self.clock.now();
        let shared = &prov.shared;
        let cursor = shared.cursor.load(Ordering::Relaxed);
        let order = self.order(prov, pick, cursor as usize % n);
        let mut earliest: NotNow = None;
        let mut later = |t: Timestamp| earliest = Some(earliest.map_or(t, |e: Timestamp| e.min(t)));
        let mut budget_refused = false;
        for (k, i) in order.into_iter().enumerate() {
            if !self.ready_at(prov, i, now) {
                if let SlotState::Cooling(t) = prov.slots[i].state() {
                    later(t);
                }
                continue;
            }
            match self.admit(prov, i, now, pick) {
                Ok(()) => {
                    let slot = &prov.slots[i];
                    if shared.strategy == Strategy::FillFirst && pick.session.is_none() {
                        self.move_cursor(prov, cursor, i);
                    }
                    if shared.strategy == Strategy::RoundRobin && k > 0 && pick.session.is_none() {
                        // Skipped keys hand their turns on, so the rotation stays exact among
                        // the keys that are available.
                        shared.picks.fetch_add(k as u64, Ordering::Relaxed);
                    }
                    if shared.strategy == Strategy::LeastRecentlyUsed {
                        let tick = shared.picks.fetch_add(1, Ordering::Relaxed);
                        slot.last_used.store(tick + 1, Ordering::Relaxed);
                    }
                    if pick.hold && shared.strategy == Strategy::LeastInFlight {
                        slot.in_flight.fetch_add(1, Ordering::AcqRel);
                    }
                    self.count_use(slot);
                    return Ok(i);
                }
                Err(t) => {
                    budget_refused = true;
                    later(t);
                }
            }
        }
        if !budget_refused {
            // Every credential is cooling or disabled: the same announcement as fill-first.
            self.note_exhausted(prov, shared.exhaustion.load());
        }
        Err(earliest)
    }

    /// Candidate positions, most preferred first.
    fn order(&self, prov: &ProviderSnap, pick: &Pick<'_>, cursor: usize) -> Vec<usize> {
        let n = prov.slots.len();
        let shared = &prov.shared;
        let rotate = |start: usize| (0..n).map(move |k| (start + k) % n);
        if let Some(session) = pick.session {
            // Rendezvous (highest random weight) hashing: each key scores the session, the
            // highest score wins. Removing a key moves only its own sessions; adding one takes
            // only the sessions it now scores highest for.
            let mut scored: Vec<(u64, usize)> = prov
                .slots
                .iter()
                .enumerate()
                .map(|(i, s)| (rendezvous(session, s.id.fingerprint.as_u64()), i))
                .collect();
            scored.sort_unstable_by(|a, b| b.cmp(a));
            return scored.into_iter().map(|(_, i)| i).collect();
        }
        match shared.strategy {
            Strategy::FillFirst => rotate(cursor).collect(),
            // Each pick takes its own turn from the counter, so concurrent callers get
            // different keys and the rotation stays exact.
            Strategy::RoundRobin => {
                rotate((shared.picks.fetch_add(1, Ordering::Relaxed) % n as u64) as usize).collect()
            }
            Strategy::Weighted => {
                // Turn c of each cycle of `total` turns goes to the key whose weight range
                // holds c: exact proportions over every cycle.
                let total = prov.cumulative_weights.last().copied().unwrap_or(0).max(1);
                let c = shared.picks.fetch_add(1, Ordering::Relaxed) % total;
                let start = prov.cumulative_weights.partition_point(|&w| w <= c);
                rotate(start.min(n - 1)).collect()
            }
            Strategy::LeastRecentlyUsed => {
                let mut v: Vec<(u64, usize)> = prov
                    .slots
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (s.last_used.load(Ordering::Relaxed), i))
                    .collect();
                v.sort_unstable();
                v.into_iter().map(|(_, i)| i).collect()
            }
            Strategy::LeastInFlight => {
                // Ties go round-robin so idle keys share the load.
                let start = (shared.picks.fetch_add(1, Ordering::Relaxed) % n as u64) as usize;
                let mut v: Vec<(u32, usize, usize)> = rotate(start)
                    .enumerate()
                    .map(|(k, i)| (prov.slots[i].in_flight.load(Ordering::Acquire), k, i))
                    .collect();
                v.sort_unstable();
                v.into_iter().map(|(_, _, i)| i).collect()
            }
            Strategy::MostRemaining => {
                let mut v: Vec<(std::cmp::Reverse<u64>, usize)> = prov
                    .slots
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (std::cmp::Reverse(s.remaining.load(Ordering::Relaxed)), i))
                    .collect();
                v.sort_unstable();
                v.into_iter().map(|(_, i)| i).collect()
            }
        }
    }

    /// Takes the request from the key's budget and its scope's, or says when they admit it.
    fn admit(
        &self,
        prov: &ProviderSnap,
        i: usize,
        now: Timestamp,
        pick: &Pick<'_>,
    ) -> Result<(), Timestamp> {
        let slot = &prov.slots[i];
        let own = prov.shared.budget.as_ref().zip(slot.budget.as_ref());
        if let Some((limits, usage)) = own {
            usage.try_admit(limits, now, pick.tokens, pick.hold)?;
        }
        let scope = slot
            .scope
            .as_ref()
            .and_then(|s| prov.shared.scope_budgets.get(s));
        if let Some((limits, usage)) = scope
            && let Err(t) = usage.try_admit(limits, now, pick.tokens, pick.hold)
        {
            if let Some((limits, usage)) = own {
                usage.refund(limits, now, pick.tokens);
                if pick.hold {
                    usage.release();
                }
            }
            return Err(t);
        }
        Ok(())
    }
}

/// The session's score for a key: a hash of both, the same in every process.
fn rendezvous(session: &str, key: u64) -> u64 {
    let mut h = foldhash::fast::FixedState::with_seed(key).build_hasher();
    h.write(session.as_bytes());
    h.finish()
}
