//! The order in which a pick tries candidates, computed without collecting them.

use std::cell::Cell;
use std::hash::BuildHasher;
use std::sync::atomic::Ordering;

use super::NotNow;
use crate::clock::{Clock, Timestamp};
use crate::pool::{ProviderSnap, Slot, SlotState};

/// The time, read from the clock the first time the pick needs it. A pick whose first
/// candidate is ready and has no budget never needs it, and a clock read costs about as much as
/// the rest of such a pick.
pub(super) struct Now<'c> {
    clock: &'c dyn Clock,
    at: Cell<Option<Timestamp>>,
}

impl<'c> Now<'c> {
    pub(super) fn new(clock: &'c dyn Clock) -> Self {
        Now {
            clock,
            at: Cell::new(None),
        }
    }

    pub(super) fn get(&self) -> Timestamp {
        match self.at.get() {
            Some(t) => t,
            None => {
                let t = self.clock.now();
                self.at.set(Some(t));
                t
            }
        }
    }
}

/// What a pick learnt on its way, for when it finds nothing.
#[derive(Default)]
pub(super) struct Search {
    /// The earliest time a refused or cooling credential may be available.
    pub(super) earliest: NotNow,
    /// Some credential was available but over its budget.
    pub(super) budget_refused: bool,
    /// Some credential was available but rests for the pick's model.
    pub(super) model_refused: bool,
}

impl Search {
    pub(super) fn later(&mut self, t: Timestamp) {
        self.earliest = Some(self.earliest.map_or(t, |e| e.min(t)));
    }
}

/// The order in which a pick tries the candidates.
pub(super) enum Order {
    /// Positions from this one on, wrapping around.
    Walk(usize),
    /// Best rank first.
    Rank(Rank),
}

/// A ranking of candidates; the lowest rank is preferred. Ranks are pairs compared first part
/// first; the second part is unique per position, so ranks never tie and the order is the one
/// sorting them would give.
pub(super) enum Rank {
    /// Used longest ago (the lowest tick), then the first in configuration order.
    LeastRecentlyUsed,
    /// Fewest leases out, ties to the first position from `start` (round-robin).
    LeastInFlight { start: usize },
    /// Most remaining quota, then the first in configuration order.
    MostRemaining,
    /// The highest rendezvous score for the session (whose hash this is): each key scores the
    /// session, the highest score wins. Removing a key moves only its own sessions; adding one
    /// takes only the sessions it now scores highest for.
    Session(u64),
}

impl Rank {
    pub(super) fn session(session: &str) -> Rank {
        Rank::Session(SESSION_HASHER.hash_one(session))
    }
}

/// The best-ranked position that may be handed out now (ready, or cooling until no later than
/// now, which `ready_at` will end) and is not in `tried`. One pass over the keys, which stops
/// early at a key nothing can beat.
///
/// Most scans read one word per key, the rank, and the state of one key, the best: at 1 000
/// keys (each its own allocation) that halves the cache lines a scan touches. The cooling keys
/// it does not look at cannot make the pick fail unnoticed: a scan that finds no candidate at
/// all has looked at every key's state, and notes when the cooling ones come back.
pub(super) fn best_candidate(
    prov: &ProviderSnap,
    rank: &Rank,
    now: &Now<'_>,
    tried: &[usize],
    search: &mut Search,
) -> Option<usize> {
    let n = prov.slots.len();
    let mut scan = Scan {
        prov,
        now,
        tried,
        search,
    };
    // One loop per ranking (the closure is inlined into each), so the loop does no dispatch.
    // A rank is (first part, second part) packed into one number, first part high. The
    // "unbeatable" first part is one no key can go below: an idle key for least-in-flight, a
    // never-used key for least-recently-used, a key with unknown (hence unlimited) remaining
    // quota for most-remaining. The second part grows along the scan, so the first key found
    // with it is the best.
    match *rank {
        Rank::LeastRecentlyUsed => scan.run(0, Some(0), |s, i| {
            pack(s.last_used.load(Ordering::Relaxed), i as u64)
        }),
        Rank::LeastInFlight { start } => scan.run(start, Some(0), |s, i| {
            let load = s.in_flight.load(Ordering::Acquire);
            pack(u64::from(load), distance(start, i, n) as u64)
        }),
        Rank::MostRemaining => scan.run(0, Some(0), |s, i| {
            pack(!s.remaining.load(Ordering::Relaxed), i as u64)
        }),
        Rank::Session(session) => {
            let fingerprints = &prov.fingerprints[..n];
            scan.run(0, None, |_, i| {
                pack(!rendezvous(session, fingerprints[i]), !(i as u64))
            })
        }
    }
}

/// One pass over a provider's keys.
struct Scan<'a, 'c> {
    prov: &'a ProviderSnap,
    now: &'a Now<'c>,
    tried: &'a [usize],
    search: &'a mut Search,
}

impl Scan<'_, '_> {
    /// The best candidate by `rank`. A first pass reads only ranks (one word per key) and checks
    /// the state of the best alone; only if that one may not be handed out does a second pass
    /// check the state of every key that would be the best so far.
    #[inline(always)]
    fn run(
        &mut self,
        first: usize,
        unbeatable: Option<u64>,
        rank: impl Fn(&Slot, usize) -> u128,
    ) -> Option<usize> {
        let best = self.pass(first, unbeatable, &rank, false)?;
        if candidate(&self.prov.slots[best], self.now, self.search) {
            return Some(best);
        }
        self.pass(first, unbeatable, &rank, true)
    }

    #[inline(always)]
    fn pass(
        &mut self,
        first: usize,
        unbeatable: Option<u64>,
        rank: &impl Fn(&Slot, usize) -> u128,
        check_state: bool,
    ) -> Option<usize> {
        let slots = &self.prov.slots[..];
        let n = slots.len();
        let mut best = u128::MAX;
        let mut best_i = None;
        for k in 0..n {
            let i = if first + k < n {
                first + k
            } else {
                first + k - n
            };
            let slot = &slots[i];
            let r = rank(slot, i);
            if r >= best
                || (check_state && !candidate(slot, self.now, self.search))
                || self.tried.contains(&i)
            {
                continue;
            }
            best = r;
            best_i = Some(i);
            // Every key after this one in the scan has a larger second part, so nothing after
            // it can rank lower.
            if unbeatable == Some((r >> 64) as u64) {
                break;
            }
        }
        best_i
    }
}

/// A rank as one number: `first` decides, `second` breaks ties.
#[inline(always)]
fn pack(first: u64, second: u64) -> u128 {
    (u128::from(first) << 64) | u128::from(second)
}

/// Whether a key may be handed out now; notes when a cooling one comes back.
#[inline]
fn candidate(slot: &Slot, now: &Now<'_>, search: &mut Search) -> bool {
    if slot.is_ready_now() {
        return true;
    }
    match slot.state() {
        SlotState::Ready => true,
        SlotState::Cooling(t) if t <= now.get() => true,
        SlotState::Cooling(t) => {
            search.later(t);
            false
        }
        SlotState::Disabled | SlotState::Removed => false,
    }
}

/// How far `i` is from `start`, going round `n` positions; no division, which would cost more
/// than the rest of a scan step.
#[inline]
fn distance(start: usize, i: usize, n: usize) -> usize {
    if i >= start { i - start } else { i + n - start }
}

/// Hashes session ids, the same way in every process.
const SESSION_HASHER: foldhash::fast::FixedState =
    foldhash::fast::FixedState::with_seed(0x5e55_10a5_c0ff_ee00);

/// The session's score for a key, the same in every process: the session id is hashed once per
/// pick, and each key folds its fingerprint in with one 64×64→128-bit multiply (foldhash's
/// folded multiply), a few cycles per key instead of a hash of the whole id. Fingerprints are
/// hash prefixes, so the scores of one session over different keys are as good as random.
#[inline(always)]
fn rendezvous(session: u64, key: u64) -> u64 {
    let product = u128::from(session ^ key) * u128::from(0x9e37_79b9_7f4a_7c15_u64);
    (product as u64) ^ ((product >> 64) as u64)
}
