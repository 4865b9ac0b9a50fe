//! The general selection path: every strategy, session affinity and budgets.
//!
//! `get_key` on a plain fill-first provider never comes here (see `select.rs`). This path reads
//! the clock once and tries the candidates in the order of the provider's strategy (or of the
//! session's rendezvous hash), taking the first that is available and that its budgets admit.
//! The order is never collected, so a pick allocates nothing: walking strategies (fill-first,
//! round-robin, weighted) step on from a start position, ranking ones (least-recently-used,
//! least-in-flight, most-remaining, sessions) scan once for the best.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arc_swap::Guard;

use super::Inner;
use crate::clock::Timestamp;
use crate::credential::Credential;
use crate::pool::{ProviderSnap, Slot, SlotState, Snapshot};
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
        let mut search = Search::default();
        let found = match self.order(prov, pick, cursor as usize % n) {
            Order::Walk(start) => self.walk(prov, start, now, pick, &mut search),
            Order::Rank(rank) => self
                .by_rank(prov, &rank, now, pick, &mut search)
                .map(|i| (0, i)),
        };
        let Some((k, i)) = found else {
            if !search.budget_refused {
                // Every credential is cooling or disabled: the same announcement as fill-first.
                self.note_exhausted(prov, shared.exhaustion.load());
            }
            return Err(search.earliest);
        };
        let slot = &prov.slots[i];
        if shared.strategy == Strategy::FillFirst && pick.session.is_none() {
            self.move_cursor(prov, cursor, i);
        }
        if shared.strategy == Strategy::RoundRobin && k > 0 && pick.session.is_none() {
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
    fn order<'a>(&self, prov: &ProviderSnap, pick: &Pick<'a>, cursor: usize) -> Order<'a> {
        let n = prov.slots.len();
        let shared = &prov.shared;
        if let Some(session) = pick.session {
            return Order::Rank(Rank::Session(session));
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
        now: Timestamp,
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
        rank: &Rank<'_>,
        now: Timestamp,
        pick: &Pick<'_>,
        search: &mut Search,
    ) -> Option<usize> {
        let mut tried = [usize::MAX; RANKED_TRIES];
        for t in 0..RANKED_TRIES {
            let i = self.best_candidate(prov, rank, now, &tried[..t], search)?;
            if self.take(prov, i, now, pick, search) {
                return Some(i);
            }
            tried[t] = i;
        }
        (0..prov.slots.len())
            .filter(|i| !tried.contains(i))
            .find(|&i| self.take(prov, i, now, pick, search))
    }

    /// The best-ranked position that may be handed out at `now` (ready, or cooling until no
    /// later than `now`, which `ready_at` will end) and is not in `tried`. Notes when the
    /// cooling ones come back.
    fn best_candidate(
        &self,
        prov: &ProviderSnap,
        rank: &Rank<'_>,
        now: Timestamp,
        tried: &[usize],
        search: &mut Search,
    ) -> Option<usize> {
        let mut best: Option<((u64, u64), usize)> = None;
        for (i, slot) in prov.slots.iter().enumerate() {
            match slot.state() {
                SlotState::Ready => {}
                SlotState::Cooling(t) if t <= now => {}
                SlotState::Cooling(t) => {
                    search.later(t);
                    continue;
                }
                SlotState::Disabled | SlotState::Removed => continue,
            }
            if tried.contains(&i) {
                continue;
            }
            let r = rank.of(slot, i, prov.slots.len());
            if best.is_none_or(|(b, _)| r < b) {
                best = Some((r, i));
            }
        }
        best.map(|(_, i)| i)
    }

    /// Hands out position `i` if it is available at `now` and its budgets admit the request;
    /// otherwise notes when it may be.
    fn take(
        &self,
        prov: &ProviderSnap,
        i: usize,
        now: Timestamp,
        pick: &Pick<'_>,
        search: &mut Search,
    ) -> bool {
        if !self.ready_at(prov, i, now) {
            if let SlotState::Cooling(t) = prov.slots[i].state() {
                search.later(t);
            }
            return false;
        }
        match self.admit(prov, i, now, pick) {
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

/// The session's score for a key: a hash of both, the same in every process.
fn rendezvous(session: &str, key: u64) -> u64 {
    let mut h = foldhash::fast::FixedState::with_seed(key).build_hasher();
    h.write(session.as_bytes());
    h.finish()
}

/// Preference-ordered tries per pick before the rest are tried in configuration order: each
/// costs a scan, so this bounds a ranked pick to a fixed number of scans.
const RANKED_TRIES: usize = 8;

/// What a pick learnt on its way when it found nothing.
#[derive(Default)]
struct Search {
    /// The earliest time a refused or cooling credential may be available.
    earliest: NotNow,
    /// Some credential was available but over its budget.
    budget_refused: bool,
}

impl Search {
    fn later(&mut self, t: Timestamp) {
        self.earliest = Some(self.earliest.map_or(t, |e| e.min(t)));
    }
}

/// The order in which a pick tries the candidates.
enum Order<'a> {
    /// Positions from this one on, wrapping around.
    Walk(usize),
    /// Best rank first.
    Rank(Rank<'a>),
}

/// A ranking of candidates; the lowest rank is preferred. The second part of a rank is unique
/// per position, so ranks never tie and the order is the same as sorting them would give.
enum Rank<'a> {
    /// Used longest ago (the lowest tick), then the first in configuration order.
    LeastRecentlyUsed,
    /// Fewest leases out, ties to the first position from `start` (round-robin).
    LeastInFlight { start: usize },
    /// Most remaining quota, then the first in configuration order.
    MostRemaining,
    /// The highest rendezvous score for the session: each key scores the session, the highest
    /// score wins. Removing a key moves only its own sessions; adding one takes only the
    /// sessions it now scores highest for.
    Session(&'a str),
}

impl Rank<'_> {
    #[inline]
    fn of(&self, slot: &Slot, i: usize, n: usize) -> (u64, u64) {
        match self {
            Rank::LeastRecentlyUsed => (slot.last_used.load(Ordering::Relaxed), i as u64),
            Rank::LeastInFlight { start } => {
                // The distance from `start` going round; no division, which would cost more
                // than the rest of this step.
                let from_start = if i >= *start {
                    i - start
                } else {
                    i + n - start
                };
                (
                    u64::from(slot.in_flight.load(Ordering::Acquire)),
                    from_start as u64,
                )
            }
            Rank::MostRemaining => (!slot.remaining.load(Ordering::Relaxed), i as u64),
            Rank::Session(session) => (
                !rendezvous(session, slot.id.fingerprint.as_u64()),
                !(i as u64),
            ),
        }
    }
}
