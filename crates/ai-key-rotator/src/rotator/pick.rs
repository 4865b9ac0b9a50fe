//! The general selection path: every strategy, session affinity and budgets.
//!
//! `get_key` on a plain fill-first provider never comes here (see `select.rs`). This path reads
//! the clock once and tries the candidates in the order of the provider's strategy (or of the
//! session's rendezvous hash), taking the first that is available and that its budgets admit.
//! The order is never collected, so a pick allocates nothing: walking strategies (fill-first,
//! round-robin, weighted) step on from a start position, ranking ones (least-recently-used,
//! least-in-flight, most-remaining, sessions) scan once for the best.

mod rank;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use arc_swap::Guard;

use super::Inner;
use crate::circuit::ProviderCause;
use crate::classify::ModelName;
use crate::clock::Timestamp;
use crate::credential::Credential;
use crate::pool::{ModelEntry, ProviderSnap, SlotState, Snapshot};
use crate::strategy::Strategy;
use rank::{Now, Order, Rank, Search, best_candidate};

/// What the caller asks for.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Pick<'a> {
    /// Keep this session on one key.
    pub(crate) session: Option<&'a str>,
    /// Keep requests with this prompt-prefix hash on one key.
    pub(crate) affinity: Option<u64>,
    /// Tokens the request is expected to use, for token budgets.
    pub(crate) tokens: u64,
    /// Count the pick in flight (a lease) until released.
    pub(crate) hold: bool,
    /// The model the request is for, if any.
    pub(crate) model: Option<ModelName>,
    /// The keys resting for that model (filled in by the pick from the provider's table).
    pub(crate) cools: Option<&'a ModelEntry>,
}

impl Pick<'_> {
    /// Whether the pick is placed by a hash (a session's or a prompt prefix's) rather than by
    /// the provider's strategy: such picks neither take nor move the strategy's turn.
    #[inline]
    fn placed(&self) -> bool {
        self.session.is_some() || self.affinity.is_some()
    }
}

/// Why nothing was picked: the earliest time something may be, if any.
pub(crate) type NotNow = Option<Timestamp>;

/// Why `acquire` handed nothing out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No such provider.
    Unknown,
    /// No key is available; the earliest time one may be, if any.
    NotNow(NotNow),
    /// The provider's circuit is open: why, and when to try again.
    Degraded(ProviderCause, Timestamp),
}

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

    /// A credential for a lease, or why there is none.
    pub(super) fn acquire(&self, provider: &str, pick: &Pick<'_>) -> Result<Credential, Refusal> {
        let snapshot = self.snapshot.load();
        let p = snapshot.find(provider).ok_or(Refusal::Unknown)?;
        let prov = &snapshot.providers[p];
        if !prov.shared.circuit.is_closed() {
            self.circuit_admit(prov, self.clock.now())
                .map_err(|(cause, t)| Refusal::Degraded(cause, t))?;
        }
        // A pick for a model some key rests for: only then is the per-model table read.
        if let Some(entry) = pick.model.and_then(|m| prov.shared.models.entry(&m)) {
            let pick = Pick {
                cools: Some(&entry),
                ..*pick
            };
            return self
                .pick_for_model(snapshot, p, &pick, &entry)
                .map_err(Refusal::NotNow);
        }
        if prov.shared.plain_fill_first && !pick.placed() {
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
                        return Err(Refusal::NotNow(earliest));
                    }
                },
            };
            // Fill-first never reads the in-flight count, so a plain fill-first lease does not
            // keep it (see `Lease`).
            return Ok(credential);
        }
        self.pick_general(snapshot, p, pick)
            .map_err(Refusal::NotNow)
    }

    /// A pick for a model some keys rest for. Fill-first walks from the model's own cursor, so
    /// that keys resting for the model are stepped over once, not on every pick; the other
    /// strategies take their usual path and skip the resting keys in `take`.
    fn pick_for_model(
        &self,
        snapshot: Guard<Arc<Snapshot>>,
        p: usize,
        pick: &Pick<'_>,
        entry: &ModelEntry,
    ) -> Result<Credential, NotNow> {
        let prov = &snapshot.providers[p];
        if !prov.shared.plain_fill_first || pick.placed() {
            return self.pick_general(snapshot, p, pick);
        }
        let n = prov.slots.len();
        if n == 0 {
            return Err(None);
        }
        let now = Now::new(&*self.clock);
        let mut search = Search::default();
        let start = entry.cursor.load(Ordering::Relaxed) as usize % n;
        match self.walk(prov, start, &now, pick, &mut search) {
            Some((_, i)) => {
                if i != start {
                    entry.cursor.store(i as u32, Ordering::Relaxed);
                }
                self.count_use(&prov.slots[i]);
                Ok(Credential::new(snapshot, p, i))
            }
            None => Err(search.earliest),
        }
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
        let now = Now::new(&*self.clock);
        let shared = &prov.shared;
        let cursor = shared.cursor.load(Ordering::Relaxed);
        let mut search = Search::default();
        let found = match self.order(prov, pick, cursor as usize % n) {
            Order::Walk(start) => self.walk(prov, start, &now, pick, &mut search),
            Order::Rank(rank) => self
                .by_rank(prov, &rank, &now, pick, &mut search)
                .map(|i| (0, i)),
        };
        let Some((k, i)) = found else {
            if !search.budget_refused && !search.model_refused {
                // Every credential is cooling or disabled: the same announcement as fill-first.
                self.note_exhausted(prov, shared.exhaustion.load());
            }
            return Err(search.earliest);
        };
        let slot = &prov.slots[i];
        if pick.session.is_none() && pick.affinity.is_some() {
            // Only picks that carry a prefix hash pay this shared write.
            shared.affinity_placed.fetch_add(1, Ordering::Relaxed);
        }
        if shared.strategy == Strategy::FillFirst && !pick.placed() {
            self.move_cursor(prov, cursor, i);
        }
        if shared.strategy == Strategy::RoundRobin && k > 0 && !pick.placed() {
            // Skipped keys hand their turns on, so the rotation stays exact among the keys
            // that are available.
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
        Ok(i)
    }

    /// How this pick orders the candidates, most preferred first. Nothing is collected: a walk
    /// is a start position, a ranking is computed key by key while scanning.
    fn order(&self, prov: &ProviderSnap, pick: &Pick<'_>, cursor: usize) -> Order {
        let n = prov.slots.len();
        let shared = &prov.shared;
        if let Some(session) = pick.session {
            return Order::Rank(Rank::session(session));
        }
        if let Some(prefix) = pick.affinity {
            // The same rendezvous ranking as sessions: a key that goes away moves only the
            // prefixes it scored highest for.
            return Order::Rank(Rank::Session(prefix));
        }
        match shared.strategy {
            Strategy::FillFirst => Order::Walk(cursor),
            // Each pick takes its own turn from the counter, so concurrent callers get
            // different keys and the rotation stays exact.
            Strategy::RoundRobin => {
                Order::Walk((shared.picks.fetch_add(1, Ordering::Relaxed) % n as u64) as usize)
            }
            Strategy::Weighted => {
                // Turn c of each cycle of `total` turns goes to the key whose weight range
                // holds c: exact proportions over every cycle. A binary search finds it.
                let total = prov.cumulative_weights.last().copied().unwrap_or(0).max(1);
                let c = shared.picks.fetch_add(1, Ordering::Relaxed) % total;
                let start = prov.cumulative_weights.partition_point(|&w| w <= c);
                Order::Walk(start.min(n - 1))
            }
            Strategy::LeastRecentlyUsed => Order::Rank(Rank::LeastRecentlyUsed),
            Strategy::LeastInFlight => {
                // Ties go round-robin so idle keys share the load.
                let start = (shared.picks.fetch_add(1, Ordering::Relaxed) % n as u64) as usize;
                Order::Rank(Rank::LeastInFlight { start })
            }
            Strategy::MostRemaining => Order::Rank(Rank::MostRemaining),
        }
    }

    /// Tries every position from `start` on, wrapping around, and stops at the first taken:
    /// O(1) when the first is available, plus one step per key skipped. Returns how many were
    /// skipped and the position taken.
    fn walk(
        &self,
        prov: &ProviderSnap,
        start: usize,
        now: &Now<'_>,
        pick: &Pick<'_>,
        search: &mut Search,
    ) -> Option<(usize, usize)> {
        let n = prov.slots.len();
        (start..n)
            .chain(0..start)
            .enumerate()
            .find(|&(_, i)| self.take(prov, i, now, pick, search))
    }

    /// Takes the best-ranked candidate that is available and admitted. One scan finds the best;
    /// each candidate refused (by its budget, or because its state changed since the scan)
    /// costs another scan for the best of the rest, up to [`RANKED_TRIES`]; past that the rest
    /// are tried in configuration order, each once, so a pick is O(n) even when every key is
    /// over its budget.
    fn by_rank(
        &self,
        prov: &ProviderSnap,
        rank: &Rank,
        now: &Now<'_>,
        pick: &Pick<'_>,
        search: &mut Search,
    ) -> Option<usize> {
        let mut tried = [usize::MAX; RANKED_TRIES];
        for t in 0..RANKED_TRIES {
            let i = best_candidate(prov, rank, now, &tried[..t], search)?;
            if self.take(prov, i, now, pick, search) {
                return Some(i);
            }
            tried[t] = i;
        }
        (0..prov.slots.len())
            .filter(|i| !tried.contains(i))
            .find(|&i| self.take(prov, i, now, pick, search))
    }

    /// Hands out position `i` if it is available now and its budgets admit the request;
    /// otherwise notes when it may be.
    fn take(
        &self,
        prov: &ProviderSnap,
        i: usize,
        now: &Now<'_>,
        pick: &Pick<'_>,
        search: &mut Search,
    ) -> bool {
        let slot = &prov.slots[i];
        // A ready key needs no clock: `ready_at` would say yes without looking at the time.
        if !slot.is_ready_now() && !self.ready_at(prov, i, now.get()) {
            if let SlotState::Cooling(t) = slot.state() {
                search.later(t);
            }
            return false;
        }
        if let Some(entry) = pick.cools
            && let Some(t) = entry.cools(prov.fingerprints[i], now.get())
        {
            // Resting for this model only: not an exhaustion of the provider.
            search.model_refused = true;
            search.later(t);
            return false;
        }
        if prov.shared.budget.is_none() && prov.shared.scope_budgets.is_empty() {
            return true;
        }
        match self.admit(prov, i, now.get(), pick) {
            Ok(()) => true,
            Err(t) => {
                search.budget_refused = true;
                search.later(t);
                false
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

/// Preference-ordered tries per pick before the rest are tried in configuration order: each
/// costs a scan, so this bounds a ranked pick to a fixed number of scans.
const RANKED_TRIES: usize = 8;
