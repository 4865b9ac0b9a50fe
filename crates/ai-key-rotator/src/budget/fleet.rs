//! Fleet-wide budgets: one limit shared by every process, spent locally from leased batches.
//!
//! A shared store that can hold budgets (Redis) owns a [`FleetHub`]. Each budget of the
//! rotator (a key's, a quota scope's) that is not `per_process` joins it as a [`FleetShare`]:
//! `acquire` spends the share's leased cells with one atomic subtraction, and asks the store's
//! thread for more when fewer than half a batch is left. The store leases a batch (up to one
//! second of the rate) from a GCRA kept on the server, in one round trip; `acquire` never waits
//! for it.
//!
//! # Worst-case overshoot
//! The server's bucket admits at most `limit + b` cells in any window of the budget's period
//! (its burst is one batch `b`), and each of the `N` live processes holds at most `b` leased but
//! unspent cells when a window opens. So a fleet sends at most `limit + (N + 1)·b` in any
//! window, with `b = ⌈limit / 60⌉` for a per-minute limit (one second of it) and
//! `b = max(1, limit / 1000)` for a per-day one. For tokens, `b` is at least the largest
//! request's estimate.
//!
//! # Outages
//! While the store is out of reach, each share runs on its own: a process budget of
//! `limit ÷ N` (rounded up), `N` being the live processes last counted. The hub logs the change
//! once each way.

// Without the Redis store nothing creates a hub; the budgets' side stays compiled and checked.
#![cfg_attr(not(feature = "redis"), allow(dead_code))]

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use super::{Limits, Usage};
use crate::clock::Timestamp;

/// What a fleet budget limits: a key (by fingerprint) or a quota scope of one provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FleetSubject {
    /// The provider.
    pub(crate) provider: Arc<str>,
    /// A fingerprint, or `scope:<name>`.
    pub(crate) name: String,
}

/// The shares of one process, and what the store last learnt about the fleet.
#[derive(Debug)]
#[allow(unreachable_pub)] // named by the sealed `Backend` trait, unreachable outside the crate
pub struct FleetHub {
    shares: Mutex<Vec<Weak<FleetShare>>>,
    /// Rung when a share wants a lease; the store's budget task waits on it.
    pub(crate) wake: tokio::sync::Notify,
    /// Live processes last counted (at least 1).
    live: AtomicU32,
    /// Whether the store is out of reach, so shares run on `limit ÷ live`.
    fallback: AtomicBool,
}

impl FleetHub {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(FleetHub {
            shares: Mutex::new(Vec::new()),
            wake: tokio::sync::Notify::new(),
            live: AtomicU32::new(1),
            fallback: AtomicBool::new(false),
        })
    }

    /// A new share of `subject`'s limit.
    pub(crate) fn join(self: &Arc<Self>, subject: FleetSubject, limits: Limits) -> Arc<FleetShare> {
        let share = Arc::new(FleetShare {
            hub: Arc::downgrade(self),
            batch_requests: batch(limits.rpm.map(|r| r.limit()), limits.rpd),
            batch_tokens: batch(limits.tpm.map(|r| r.limit()), limits.tpd),
            subject,
            limits,
            requests: AtomicI64::new(0),
            tokens: AtomicI64::new(0),
            want_tokens: AtomicU64::new(0),
            next_at: AtomicU64::new(0),
            pending: AtomicBool::new(false),
            local: Mutex::new(None),
        });
        let mut shares = self.shares.lock().unwrap_or_else(|e| e.into_inner());
        shares.retain(|s| s.strong_count() > 0);
        shares.push(Arc::downgrade(&share));
        drop(shares);
        // Lease a first batch before anyone asks.
        share.refill();
        share
    }

    /// Every share still in use.
    pub(crate) fn shares(&self) -> Vec<Arc<FleetShare>> {
        let mut shares = self.shares.lock().unwrap_or_else(|e| e.into_inner());
        shares.retain(|s| s.strong_count() > 0);
        shares.iter().filter_map(Weak::upgrade).collect()
    }

    /// Live processes last counted.
    pub(crate) fn live(&self) -> u32 {
        self.live.load(Ordering::Relaxed)
    }

    pub(crate) fn set_live(&self, n: u32) {
        self.live.store(n.max(1), Ordering::Relaxed);
    }

    /// `Some(N)` while budgets run on their share `limit ÷ N` (the store is out of reach).
    pub(crate) fn fallback(&self) -> Option<u32> {
        self.fallback.load(Ordering::Acquire).then(|| self.live())
    }

    /// Enters or leaves the fallback; logs each change once.
    pub(crate) fn set_fallback(&self, on: bool) {
        if self.fallback.swap(on, Ordering::AcqRel) == on {
            return;
        }
        let live = self.live();
        if on {
            tracing::warn!(
                live_processes = live,
                "fleet budgets: the store is out of reach; each limit falls back to this \
                 process's share (limit / {live})"
            );
        } else {
            tracing::info!(live_processes = live, "fleet budgets: shared again");
        }
    }
}

/// A batch: one second of a per-minute rate, or a thousandth of a per-day limit; the smaller
/// when both are set. `0` when neither is.
fn batch(per_minute: Option<u64>, per_day: Option<u64>) -> u64 {
    let minute = per_minute.map(|l| l.div_ceil(60).max(1));
    let day = per_day.map(|l| (l / 1000).max(1));
    match (minute, day) {
        (Some(m), Some(d)) => m.min(d),
        (Some(b), None) | (None, Some(b)) => b,
        (None, None) => 0,
    }
}

/// One budget's share of a fleet-wide limit.
#[derive(Debug)]
pub(crate) struct FleetShare {
    hub: Weak<FleetHub>,
    pub(crate) subject: FleetSubject,
    pub(crate) limits: Limits,
    /// Requests per lease (0: no request limit).
    pub(crate) batch_requests: u64,
    /// Tokens per lease (0: no token limit).
    pub(crate) batch_tokens: u64,
    /// Leased requests not yet spent (briefly negative while a take backs out).
    requests: AtomicI64,
    tokens: AtomicI64,
    /// The largest token estimate refused for want of tokens: the next lease covers it.
    want_tokens: AtomicU64,
    /// When the server said more will be available (Unix ms).
    next_at: AtomicU64,
    /// A lease is asked for.
    pending: AtomicBool,
    /// The process budget used during an outage: the divisor it was made for, and its use.
    local: Mutex<Option<(u32, Limits, Usage)>>,
}

/// What a share asks the server for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LeaseAsk {
    pub(crate) requests: u64,
    pub(crate) tokens: u64,
    /// The server's burst for tokens: a batch, or the largest request when larger.
    pub(crate) token_burst: u64,
}

impl FleetShare {
    /// Spends one request and `tokens` from the leased cells, or says when to try again.
    pub(crate) fn take(&self, now: Timestamp, tokens: u64) -> Result<(), Timestamp> {
        if let Some(n) = self.hub.upgrade().and_then(|h| h.fallback()) {
            return self.with_local(n, |limits, usage| usage.take(limits, now, tokens));
        }
        if self.batch_requests > 0 && self.requests.fetch_sub(1, Ordering::AcqRel) <= 0 {
            self.requests.fetch_add(1, Ordering::AcqRel);
            self.refill();
            return Err(self.retry_at(now));
        }
        let t = i64::try_from(tokens).unwrap_or(i64::MAX);
        if self.batch_tokens > 0 && t > 0 && self.tokens.fetch_sub(t, Ordering::AcqRel) < t {
            self.tokens.fetch_add(t, Ordering::AcqRel);
            if self.batch_requests > 0 {
                self.requests.fetch_add(1, Ordering::AcqRel);
            }
            self.want_tokens.fetch_max(tokens, Ordering::AcqRel);
            self.refill();
            return Err(self.retry_at(now));
        }
        if self.low() {
            self.refill();
        }
        Ok(())
    }

    /// Gives back a request (and its tokens) that was not sent.
    pub(crate) fn refund(&self, now: Timestamp, tokens: u64) {
        if let Some(n) = self.hub.upgrade().and_then(|h| h.fallback()) {
            return self.with_local(n, |limits, usage| usage.refund(limits, now, tokens));
        }
        if self.batch_requests > 0 {
            self.requests.fetch_add(1, Ordering::AcqRel);
        }
        if self.batch_tokens > 0 {
            self.tokens
                .fetch_add(i64::try_from(tokens).unwrap_or(i64::MAX), Ordering::AcqRel);
        }
    }

    /// Charges (or refunds) the difference between the tokens estimated and used.
    pub(crate) fn correct(&self, now: Timestamp, estimated: u64, used: u64) {
        if let Some(n) = self.hub.upgrade().and_then(|h| h.fallback()) {
            return self.with_local(n, |limits, usage| {
                usage.correct_tokens(limits, now, estimated, used)
            });
        }
        if self.batch_tokens > 0 {
            let diff = used as i64 - estimated as i64;
            // May go below zero: the debt is paid from the next lease.
            self.tokens.fetch_sub(diff, Ordering::AcqRel);
            if self.low() {
                self.refill();
            }
        }
    }

    fn with_local<T>(&self, n: u32, f: impl FnOnce(&Limits, &Usage) -> T) -> T {
        let mut local = self.local.lock().unwrap_or_else(|e| e.into_inner());
        if local.as_ref().is_none_or(|(d, _, _)| *d != n) {
            *local = Some((n, self.limits.divided(n), Usage::default()));
        }
        let (_, limits, usage) = local.as_ref().expect("set above");
        f(limits, usage)
    }

    fn low(&self) -> bool {
        (self.batch_requests > 0
            && self.requests.load(Ordering::Acquire) * 2 <= self.batch_requests as i64)
            || (self.batch_tokens > 0
                && self.tokens.load(Ordering::Acquire) * 2 <= self.batch_tokens as i64)
    }

    fn retry_at(&self, now: Timestamp) -> Timestamp {
        let next = Timestamp::from_millis(self.next_at.load(Ordering::Acquire));
        next.max(Timestamp::from_millis(now.as_millis() + 1))
    }

    /// Asks the store's thread for a lease (once until it answers).
    pub(crate) fn refill(&self) {
        if !self.pending.swap(true, Ordering::AcqRel)
            && let Some(hub) = self.hub.upgrade()
        {
            hub.wake.notify_one();
        }
    }

    /// What to lease now, when a lease is asked for: enough to hold one batch again.
    pub(crate) fn ask(&self) -> Option<LeaseAsk> {
        if !self.pending.load(Ordering::Acquire) {
            return None;
        }
        let top_up = |batch: u64, held: i64| {
            if batch == 0 {
                0
            } else {
                (batch as i64 - held).max(0) as u64
            }
        };
        let token_burst = if self.batch_tokens == 0 {
            0
        } else {
            self.batch_tokens
                .max(self.want_tokens.load(Ordering::Acquire))
        };
        Some(LeaseAsk {
            requests: top_up(self.batch_requests, self.requests.load(Ordering::Acquire)),
            tokens: top_up(token_burst, self.tokens.load(Ordering::Acquire)),
            token_burst,
        })
    }

    /// Adds what the server leased. `next_at` is when it will have more; a lease that got
    /// nothing it asked for stays asked for (the store tries again at `next_at`).
    pub(crate) fn granted(&self, ask: LeaseAsk, requests: u64, tokens: u64, next_at: Timestamp) {
        self.requests.fetch_add(
            i64::try_from(requests).unwrap_or(i64::MAX),
            Ordering::AcqRel,
        );
        self.tokens
            .fetch_add(i64::try_from(tokens).unwrap_or(i64::MAX), Ordering::AcqRel);
        self.next_at.store(next_at.as_millis(), Ordering::Release);
        if tokens >= ask.tokens {
            self.want_tokens.store(0, Ordering::Release);
        }
        let starved = (ask.requests > 0 && requests == 0) || (ask.tokens > 0 && tokens == 0);
        if !starved {
            self.pending.store(false, Ordering::Release);
        }
    }

    /// When the server said it will have more, for a share still waiting for a lease.
    pub(crate) fn waiting_until(&self) -> Option<Timestamp> {
        self.pending
            .load(Ordering::Acquire)
            .then(|| Timestamp::from_millis(self.next_at.load(Ordering::Acquire)))
    }

    /// Leased cells not yet spent: (requests, tokens).
    #[cfg(test)]
    pub(crate) fn held(&self) -> (i64, i64) {
        (
            self.requests.load(Ordering::Acquire),
            self.tokens.load(Ordering::Acquire),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::Budget;

    fn share(budget: Budget) -> (Arc<FleetHub>, Arc<FleetShare>) {
        let hub = FleetHub::new();
        let s = hub.join(
            FleetSubject {
                provider: "openai".into(),
                name: "scope:org".into(),
            },
            budget.compile().unwrap(),
        );
        (hub, s)
    }

    #[test]
    fn spends_only_what_was_leased_and_asks_before_running_out() {
        let (_hub, s) = share(Budget {
            requests_per_minute: Some(600),
            ..Budget::default()
        });
        let now = Timestamp::from_millis(1_000);
        // Nothing leased yet: refused, with a lease asked for.
        assert!(s.take(now, 0).is_err());
        let ask = s.ask().expect("a lease is asked for");
        assert_eq!(ask.requests, 10, "one second of 600/min");
        s.granted(ask, 10, 0, now);
        assert_eq!(s.ask(), None);
        for _ in 0..5 {
            s.take(now, 0).unwrap();
        }
        // Half a batch left: a refill is asked for, to top up to one batch.
        assert_eq!(s.ask().map(|a| a.requests), Some(5));
        for _ in 0..5 {
            s.take(now, 0).unwrap();
        }
        assert!(s.take(now, 0).is_err());
        assert_eq!(s.held().0, 0);
        s.refund(now, 0);
        s.take(now, 0).unwrap();
    }

    #[test]
    fn a_request_larger_than_a_token_batch_is_leased_whole() {
        let (_hub, s) = share(Budget {
            tokens_per_minute: Some(6_000),
            ..Budget::default()
        });
        let now = Timestamp::from_millis(1_000);
        assert!(s.take(now, 500).is_err());
        let ask = s.ask().unwrap();
        assert_eq!((ask.tokens, ask.token_burst), (500, 500));
        s.granted(ask, 0, 500, now);
        s.take(now, 500).unwrap();
        // The request used 700: the debt comes out of the next lease.
        s.correct(now, 500, 700);
        assert_eq!(s.held().1, -200);
    }

    #[test]
    fn during_an_outage_each_process_keeps_to_its_share() {
        let (hub, s) = share(Budget {
            requests_per_minute: Some(90),
            ..Budget::default()
        });
        hub.set_live(3);
        hub.set_fallback(true);
        let now = Timestamp::from_millis(1_000);
        let admitted = std::iter::from_fn(|| s.take(now, 0).ok())
            .take(1000)
            .count();
        assert_eq!(admitted, 30, "90 / 3 live processes");
        hub.set_fallback(false);
        assert!(s.take(now, 0).is_err(), "shared again: nothing leased yet");
    }

    #[test]
    fn batches() {
        assert_eq!(batch(Some(600), None), 10);
        assert_eq!(batch(Some(30), None), 1);
        assert_eq!(batch(None, Some(10_000)), 10);
        assert_eq!(batch(Some(6_000), Some(10_000)), 10);
        assert_eq!(batch(None, None), 0);
    }
}
