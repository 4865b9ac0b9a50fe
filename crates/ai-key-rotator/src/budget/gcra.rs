//! GCRA (the generic cell rate algorithm), lock-free on one atomic word.
//!
//! A limit of `limit` cells per `period` gives each cell an emission interval
//! `T = period / limit`. The state is the theoretical arrival time (TAT) of the next cell. A
//! request for `n` cells at `now` is admitted when `max(TAT, now) + n·T − now ≤ period`, and then
//! moves TAT there. This admits a burst of the whole limit at once but never more than `limit`
//! cells in any window of length `period`, so unlike fixed minute buckets there is no 2× burst
//! at a boundary. It is the algorithm of the `governor` crate; it is written out here because
//! it must read the rotator's injected clock, live in a credential's own atomics, and run
//! unchanged as a Lua script in a shared store, where governor's types cannot follow.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::clock::Timestamp;

/// Time in the algorithm is in nanoseconds since the Unix epoch, so that even a limit of
/// millions of tokens per minute has a whole-numbered emission interval.
const NANOS_PER_MILLI: u64 = 1_000_000;

/// A rate: `limit` cells per `period_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rate {
    limit: u64,
    period_ns: u64,
}

impl Rate {
    pub(crate) fn per(limit: u64, period_ms: u64) -> Option<Self> {
        (limit > 0 && period_ms > 0).then(|| Rate {
            limit,
            period_ns: period_ms.saturating_mul(NANOS_PER_MILLI),
        })
    }

    /// Cells per period.
    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }

    /// The period, in milliseconds.
    pub(crate) fn period_ms(&self) -> u64 {
        self.period_ns / NANOS_PER_MILLI
    }

    /// Nanoseconds per cell, at least 1.
    fn interval(&self) -> u64 {
        (self.period_ns / self.limit).max(1)
    }
}

/// One GCRA limiter's state.
#[derive(Debug, Default)]
pub(crate) struct Gcra {
    tat_ns: AtomicU64,
}

impl Gcra {
    /// Takes `cells` if the rate admits them at `now`; otherwise returns the earliest time at
    /// which it would. A request larger than the whole limit is admitted only into an empty
    /// window (it could never be otherwise).
    pub(crate) fn try_take(&self, rate: Rate, now: Timestamp, cells: u64) -> Result<(), Timestamp> {
        let now_ns = now.as_millis().saturating_mul(NANOS_PER_MILLI);
        let cost = rate.interval().saturating_mul(cells);
        let mut tat = self.tat_ns.load(Ordering::Acquire);
        loop {
            let start = tat.max(now_ns);
            let new_tat = start.saturating_add(cost);
            let allowed = new_tat - now_ns <= rate.period_ns || start == now_ns;
            if !allowed {
                let at_ns = new_tat - rate.period_ns;
                return Err(Timestamp::from_millis(at_ns.div_ceil(NANOS_PER_MILLI)));
            }
            match self.tat_ns.compare_exchange_weak(
                tat,
                new_tat,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(()),
                Err(actual) => tat = actual,
            }
        }
    }

    /// The cells in the bucket at `now` (what the rate counts as used, draining continuously)
    /// and when it is empty again. More than the limit only after charges made without a
    /// check ([`adjust`](Self::adjust): real use above the estimate).
    pub(crate) fn level(&self, rate: Rate, now: Timestamp) -> (u64, Timestamp) {
        let now_ns = now.as_millis().saturating_mul(NANOS_PER_MILLI);
        let tat = self.tat_ns.load(Ordering::Acquire);
        if tat <= now_ns {
            return (0, now);
        }
        (
            (tat - now_ns).div_ceil(rate.interval()),
            Timestamp::from_millis(tat.div_ceil(NANOS_PER_MILLI)),
        )
    }

    /// Charges `cells` more without checking (the request was already sent), or refunds
    /// `cells` (negative) that were estimated but not used.
    pub(crate) fn adjust(&self, rate: Rate, now: Timestamp, cells: i64) {
        let now_ns = now.as_millis().saturating_mul(NANOS_PER_MILLI);
        let delta = rate.interval().saturating_mul(cells.unsigned_abs());
        let _ = self
            .tat_ns
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |tat| {
                Some(if cells >= 0 {
                    tat.max(now_ns).saturating_add(delta)
                } else {
                    // A refund never moves TAT before now: unused past capacity is gone.
                    tat.saturating_sub(delta).max(now_ns.min(tat))
                })
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;

    fn t(ms: u64) -> Timestamp {
        Timestamp::from_millis(1_000_000_000 + ms)
    }

    #[test]
    fn admits_the_limit_as_a_burst_then_one_cell_per_interval() {
        let rate = Rate::per(100, MIN).unwrap();
        let g = Gcra::default();
        for _ in 0..100 {
            g.try_take(rate, t(0), 1).unwrap();
        }
        // The 101st waits one interval (600 ms).
        assert_eq!(g.try_take(rate, t(0), 1), Err(t(600)));
        assert_eq!(g.try_take(rate, t(599), 1), Err(t(600)));
        g.try_take(rate, t(600), 1).unwrap();
    }

    #[test]
    fn no_double_burst_at_a_window_boundary() {
        // Fixed minute buckets would admit 100 at 0:59.9 and 100 more at 1:00.0. GCRA admits
        // the burst once, then only the rate.
        let rate = Rate::per(100, MIN).unwrap();
        let g = Gcra::default();
        let take_all = |at| std::iter::from_fn(|| g.try_take(rate, t(at), 1).ok()).count();
        assert_eq!(take_all(59_900), 100);
        assert_eq!(take_all(60_000), 0);
        assert_eq!(take_all(60_499), 0);
        assert_eq!(take_all(60_500), 1);
        // Over the next two minutes: exactly the rate.
        let admitted: usize = (1..=1200).map(|k| take_all(60_500 + k * 100)).sum();
        assert_eq!(admitted, 200);
    }

    #[test]
    fn the_level_drains_at_the_rate() {
        let rate = Rate::per(100, MIN).unwrap();
        let g = Gcra::default();
        assert_eq!(g.level(rate, t(0)), (0, t(0)));
        for _ in 0..10 {
            g.try_take(rate, t(0), 1).unwrap();
        }
        assert_eq!(g.level(rate, t(0)), (10, t(6_000)));
        // One cell drains every 600 ms.
        assert_eq!(g.level(rate, t(1_200)), (8, t(6_000)));
        assert_eq!(g.level(rate, t(5_999)), (1, t(6_000)));
        assert_eq!(g.level(rate, t(6_000)), (0, t(6_000)));
    }

    #[test]
    fn weighted_cells_and_adjustments() {
        let rate = Rate::per(30_000, MIN).unwrap(); // tokens per minute
        let g = Gcra::default();
        g.try_take(rate, t(0), 20_000).unwrap();
        assert!(g.try_take(rate, t(0), 20_000).is_err());
        // The request used only 5 000 tokens: refund 15 000.
        g.adjust(rate, t(0), -15_000);
        g.try_take(rate, t(0), 20_000).unwrap();
        // A request larger than the limit only into an empty window.
        let h = Gcra::default();
        h.try_take(rate, t(0), 50_000).unwrap();
        assert!(h.try_take(rate, t(1000), 1).is_err());
    }
}
