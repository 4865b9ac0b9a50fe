//! Per-key usage per provider day: each credential's answers by class and its tokens in and
//! out, kept by the state store so they survive a restart and, with a shared store, add up
//! across the fleet.
//!
//! The caller's side ([`KeyRotator::record_usage`](crate::KeyRotator::record_usage)) only adds
//! a delta into a map keyed by provider, fingerprint and day, under one short lock: no I/O, no
//! waiting. A store that keeps usage (SQLite, Redis) takes the whole map every second, writes
//! it as *additive* deltas through its own connection and reads the day's totals back; a
//! failed write puts the deltas back, merged with what was added meanwhile, so nothing is lost
//! during an outage and the map never holds more than one entry per credential and day. Without
//! such a store (none, or the file store) the totals live in memory.
//!
//! "Today" is the provider's day ([`day`]): the calendar day in the time zone where its daily
//! quotas reset.

// Without a store that keeps usage (SQLite, Redis) compiled in, the store's side of the
// ledger has no user; it stays compiled and checked.
#![cfg_attr(not(any(feature = "sqlite", feature = "redis")), allow(dead_code))]

pub(crate) mod day;

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use crate::classify::Verdict;
use crate::clock::Timestamp;
use crate::identity::{CredentialId, Fingerprint};
pub(crate) use day::DayZone;

/// The most (provider, credential, day) entries waiting for the store. Far above any
/// configuration (a day's entry per credential), so only days of outage with thousands of
/// keys reach it; past it, deltas of new entries are refused ([`UsageError::Full`]).
pub(crate) const MAX_PENDING: usize = 1 << 16;

/// How often a store writes the deltas and reads the totals back.
pub(crate) const SYNC_EVERY: Duration = Duration::from_secs(1);

/// The class of an upstream answer, as usage counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AnswerClass {
    /// A success.
    Ok,
    /// A rate limit (the key rests for a while).
    RateLimited,
    /// A quota or the credits are used up.
    QuotaExhausted,
    /// The key was refused.
    InvalidKey,
    /// The provider is overloaded.
    Overloaded,
    /// The provider failed.
    ServerError,
    /// The request was at fault (or the verdict is of a kind this version does not know).
    ClientError,
}

impl AnswerClass {
    /// Every class, in the order stores and metrics list them.
    pub const ALL: [AnswerClass; 7] = [
        AnswerClass::Ok,
        AnswerClass::RateLimited,
        AnswerClass::QuotaExhausted,
        AnswerClass::InvalidKey,
        AnswerClass::Overloaded,
        AnswerClass::ServerError,
        AnswerClass::ClientError,
    ];

    /// The class of a verdict.
    pub fn of(verdict: &Verdict) -> AnswerClass {
        match verdict {
            Verdict::Ok(_) => AnswerClass::Ok,
            Verdict::RateLimited { .. } => AnswerClass::RateLimited,
            Verdict::QuotaExhausted { .. } => AnswerClass::QuotaExhausted,
            Verdict::InvalidKey { .. } => AnswerClass::InvalidKey,
            Verdict::Overloaded { .. } => AnswerClass::Overloaded,
            Verdict::ServerError { .. } => AnswerClass::ServerError,
            _ => AnswerClass::ClientError,
        }
    }

    /// Its name in stores, `/status` and metrics: `ok`, `rate_limited`, …
    pub fn as_str(self) -> &'static str {
        FIELDS[self as usize]
    }
}

/// The stored names of the counters: the classes, then the tokens.
const FIELDS: [&str; 9] = [
    "ok",
    "rate_limited",
    "quota_exhausted",
    "invalid_key",
    "overloaded",
    "server_error",
    "client_error",
    "tokens_in",
    "tokens_out",
];

/// A credential's usage over a day, or a delta to add to it: answers by class and tokens.
///
/// ```
/// use ai_key_rotator::{AnswerClass, UsageCounts};
///
/// let mut day = UsageCounts::answer(AnswerClass::Ok);
/// day.add(&UsageCounts::answer(AnswerClass::RateLimited));
/// day.add(&UsageCounts::tokens(120, 40));
/// assert_eq!((day.requests(), day.successes(), day.failures()), (2, 1, 1));
/// assert_eq!((day.tokens_in, day.tokens_out), (120, 40));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageCounts {
    answers: [u64; 7],
    /// Tokens the requests sent (the prompt), as the provider's usage reports said.
    pub tokens_in: u64,
    /// Tokens the answers returned (the completion).
    pub tokens_out: u64,
}

impl UsageCounts {
    /// One answer of `class`.
    pub fn answer(class: AnswerClass) -> Self {
        let mut c = UsageCounts::default();
        c.add_answers(class, 1);
        c
    }

    /// Tokens only: `tokens_in` sent, `tokens_out` returned.
    pub fn tokens(tokens_in: u64, tokens_out: u64) -> Self {
        UsageCounts {
            tokens_in,
            tokens_out,
            ..UsageCounts::default()
        }
    }

    /// Adds `n` answers of `class`.
    pub fn add_answers(&mut self, class: AnswerClass, n: u64) {
        let a = &mut self.answers[class as usize];
        *a = a.saturating_add(n);
    }

    /// The answers of `class`.
    pub fn answers(&self, class: AnswerClass) -> u64 {
        self.answers[class as usize]
    }

    /// Every answer: the requests that reached the provider.
    pub fn requests(&self) -> u64 {
        self.answers.iter().fold(0, |a, n| a.saturating_add(*n))
    }

    /// The successful answers.
    pub fn successes(&self) -> u64 {
        self.answers(AnswerClass::Ok)
    }

    /// The answers that were not successes.
    pub fn failures(&self) -> u64 {
        self.requests() - self.successes()
    }

    /// Whether every counter is zero.
    pub fn is_zero(&self) -> bool {
        *self == UsageCounts::default()
    }

    /// Adds `other`, counter by counter (saturating).
    pub fn add(&mut self, other: &UsageCounts) {
        for (a, b) in self.answers.iter_mut().zip(other.answers) {
            *a = a.saturating_add(b);
        }
        self.tokens_in = self.tokens_in.saturating_add(other.tokens_in);
        self.tokens_out = self.tokens_out.saturating_add(other.tokens_out);
    }

    /// The counters that are not zero, by stored name.
    pub(crate) fn fields(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        FIELDS
            .iter()
            .zip(
                self.answers
                    .iter()
                    .chain([&self.tokens_in, &self.tokens_out]),
            )
            .filter(|(_, n)| **n > 0)
            .map(|(f, n)| (*f, *n))
    }

    /// Sets the counter stored as `field`; `false` for a name this version does not know
    /// (left alone: a newer writer's counter).
    pub(crate) fn set(&mut self, field: &str, n: u64) -> bool {
        match FIELDS.iter().position(|f| *f == field) {
            Some(7) => self.tokens_in = n,
            Some(8) => self.tokens_out = n,
            Some(i) => self.answers[i] = n,
            None => return false,
        }
        true
    }
}

/// One provider's usage on its current day, per configured credential.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DailyUsage {
    /// The provider.
    pub provider: String,
    /// The day the counts are for, `YYYY-MM-DD`, in [`time_zone`](Self::time_zone).
    pub date: String,
    /// The IANA time zone of the provider's day (`UTC`, `America/Los_Angeles`).
    pub time_zone: String,
    /// Each configured credential's counts today (zero when it has none yet).
    pub credentials: Vec<(CredentialId, UsageCounts)>,
}

/// Why usage could not be counted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UsageError {
    /// No such provider.
    #[error("unknown provider `{provider}`")]
    UnknownProvider {
        /// The provider.
        provider: String,
    },
    /// The provider has no credential with this fingerprint (usage is kept for configured
    /// credentials only, so what is kept stays as small as the configuration).
    #[error("provider `{provider}` has no credential {fingerprint}")]
    UnknownCredential {
        /// The provider.
        provider: String,
        /// The fingerprint given.
        fingerprint: Fingerprint,
    },
    /// The store has been unreachable so long that the deltas waiting for it reached their
    /// bound; this one was not counted.
    #[error(
        "usage of {fingerprint} (provider `{provider}`) not counted: {pending} entries already wait for the store"
    )]
    Full {
        /// The provider.
        provider: String,
        /// The credential.
        fingerprint: Fingerprint,
        /// How many entries wait.
        pending: usize,
    },
}

/// A credential on a day: provider, fingerprint, day number.
pub(crate) type Key = (Arc<str>, Fingerprint, i64);

/// One provider's totals on one day.
pub(crate) type Totals = (i64, HashMap<Fingerprint, UsageCounts>);

/// What a store takes to write: the deltas, and the day of each provider whose totals it
/// reads back.
#[derive(Debug)]
pub(crate) struct UsageBatch {
    pub(crate) deltas: Vec<(Key, UsageCounts)>,
    pub(crate) days: Vec<(Arc<str>, i64)>,
    /// Deltas already in the store when the rest of the batch failed (`mark_written`).
    written: Vec<(Key, UsageCounts)>,
    /// The last flush request this batch answers.
    ticket: u64,
}

impl UsageBatch {
    /// For a store that writes a batch in parts: the deltas of which `written` says yes are in
    /// the store, so that a failure later in the batch does not write them twice.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn mark_written(&mut self, mut written: impl FnMut(&Key) -> bool) {
        let (done, rest) = std::mem::take(&mut self.deltas)
            .into_iter()
            .partition(|(k, _)| written(k));
        self.deltas = rest;
        self.written.extend::<Vec<_>>(done);
    }
}

/// The usage book of one rotator; see the module docs.
#[derive(Debug)]
#[allow(unreachable_pub)] // named by the sealed store trait, unreachable outside the crate
pub struct Ledger {
    zones: RwLock<HashMap<Arc<str>, DayZone>>,
    state: Mutex<State>,
    /// Rung when a sync completes (flushes wait on it).
    synced: Condvar,
    /// Wakes an async writer (Redis) for a flush.
    wake: tokio::sync::Notify,
    cap: usize,
}

#[derive(Debug, Default)]
struct State {
    /// Whether a store writes usage; without one, `stored` is all there is.
    kept: bool,
    /// Deltas not taken by the store yet.
    pending: HashMap<Key, UsageCounts>,
    /// Deltas the store is writing now: still counted in reads until it says they are in.
    inflight: HashMap<Key, UsageCounts>,
    /// Per provider, the day and each credential's totals as the store last said (or, with no
    /// store keeping usage, as counted here).
    stored: HashMap<Arc<str>, Totals>,
    /// Flushes asked for, and the last one a completed sync answered.
    requested: u64,
    completed: u64,
}

impl Ledger {
    pub(crate) fn new() -> Self {
        Ledger::with_cap(MAX_PENDING)
    }

    pub(crate) fn with_cap(cap: usize) -> Self {
        Ledger {
            zones: RwLock::new(HashMap::new()),
            state: Mutex::new(State::default()),
            synced: Condvar::new(),
            wake: tokio::sync::Notify::new(),
            cap,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the zone of `provider`'s day.
    pub(crate) fn set_zone(&self, provider: &str, zone: DayZone) {
        self.zones
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(Arc::from(provider), zone);
    }

    /// The zone of `provider`'s day (UTC for a provider never set).
    pub(crate) fn zone(&self, provider: &str) -> DayZone {
        self.zones
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(provider)
            .cloned()
            .unwrap_or_else(DayZone::utc)
    }

    /// A store writes usage from now on.
    pub(crate) fn keep(&self) {
        self.lock().kept = true;
    }

    /// Adds `delta` to `provider`'s credential `fp` on the day `now` falls in.
    pub(crate) fn record(
        &self,
        provider: &Arc<str>,
        fp: Fingerprint,
        delta: &UsageCounts,
        now: Timestamp,
    ) -> Result<(), UsageError> {
        if delta.is_zero() {
            return Ok(());
        }
        let day = self.zone(provider).day(now);
        let mut st = self.lock();
        if !st.kept {
            let totals = st
                .stored
                .entry(Arc::clone(provider))
                .or_insert_with(|| (day, HashMap::new()));
            if totals.0 < day {
                *totals = (day, HashMap::new());
            }
            // A delta for an earlier day (a clock stepped back) has no day left to go to.
            if totals.0 == day {
                totals.1.entry(fp).or_default().add(delta);
            }
            return Ok(());
        }
        let key = (Arc::clone(provider), fp, day);
        let pending = st.pending.len();
        match st.pending.get_mut(&key) {
            Some(c) => c.add(delta),
            None if pending >= self.cap => {
                return Err(UsageError::Full {
                    provider: provider.to_string(),
                    fingerprint: fp,
                    pending,
                });
            }
            None => {
                st.pending.insert(key, *delta);
            }
        }
        Ok(())
    }

    /// `provider`'s day at `now` and each credential's counts on it: the store's totals plus
    /// what it has not written yet.
    pub(crate) fn today(
        &self,
        provider: &str,
        now: Timestamp,
    ) -> (i64, HashMap<Fingerprint, UsageCounts>) {
        let day = self.zone(provider).day(now);
        let st = self.lock();
        let mut out = match st.stored.get(provider) {
            Some((d, totals)) if *d == day => totals.clone(),
            _ => HashMap::new(),
        };
        for ((p, fp, d), c) in st.inflight.iter().chain(st.pending.iter()) {
            if *d == day && &**p == provider {
                out.entry(*fp).or_default().add(c);
            }
        }
        (day, out)
    }

    /// How many entries wait for the store.
    pub(crate) fn pending(&self) -> usize {
        let st = self.lock();
        // An entry being written and new deltas for it are one credential's day.
        st.pending.len()
            + st.inflight
                .keys()
                .filter(|k| !st.pending.contains_key(*k))
                .count()
    }

    /// For the store: the deltas to write (moved aside, still counted in reads) and the days
    /// to read back, each provider's at `now`.
    pub(crate) fn take(&self, now: Timestamp) -> UsageBatch {
        let days: Vec<(Arc<str>, i64)> = {
            let zones = self.zones.read().unwrap_or_else(|e| e.into_inner());
            zones
                .iter()
                .map(|(p, z)| (Arc::clone(p), z.day(now)))
                .collect()
        };
        let mut st = self.lock();
        let taken: Vec<(Key, UsageCounts)> = st.pending.drain().collect();
        for (k, c) in &taken {
            st.inflight.entry(k.clone()).or_default().add(c);
        }
        UsageBatch {
            deltas: taken,
            days,
            written: Vec::new(),
            ticket: st.requested,
        }
    }

    /// The batch is written and `totals` read back (per provider: its day and totals).
    pub(crate) fn written(&self, batch: UsageBatch, totals: Vec<(Arc<str>, Totals)>) {
        let mut st = self.lock();
        for (k, _) in batch.deltas.iter().chain(&batch.written) {
            st.inflight.remove(k);
        }
        for (p, t) in totals {
            st.stored.insert(p, t);
        }
        st.completed = st.completed.max(batch.ticket);
        drop(st);
        self.synced.notify_all();
    }

    /// The batch could not be written: its deltas wait again, merged with what came since.
    pub(crate) fn failed(&self, batch: UsageBatch) {
        let mut st = self.lock();
        for ((p, fp, day), c) in batch.written {
            st.inflight.remove(&(Arc::clone(&p), fp, day));
            // In the store already: counted in the totals until the next read says them.
            if let Some((d, totals)) = st.stored.get_mut(&p)
                && *d == day
            {
                totals.entry(fp).or_default().add(&c);
            }
        }
        for (k, c) in batch.deltas {
            st.inflight.remove(&k);
            // Merged even past the bound: these were counted once already.
            st.pending.entry(k).or_default().add(&c);
        }
    }

    /// Whether a flush waits for a sync.
    pub(crate) fn wanted(&self) -> bool {
        let st = self.lock();
        st.kept && st.requested > st.completed
    }

    /// Resolves when a flush asks for a sync (for an async writer).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) async fn asked(&self) {
        self.wake.notified().await;
    }

    /// Asks the store for a sync and waits until one that began after the call completes,
    /// for at most `timeout`. Returns how many entries still wait when it times out.
    pub(crate) fn flush(&self, timeout: Duration) -> Result<(), usize> {
        let deadline = Instant::now() + timeout;
        let mut st = self.lock();
        if !st.kept {
            return Ok(());
        }
        st.requested += 1;
        let ticket = st.requested;
        self.wake.notify_one();
        while st.completed < ticket {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err((st.pending.len() + st.inflight.len()).max(1));
            }
            st = self
                .synced
                .wait_timeout(st, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(n: u8) -> Fingerprint {
        Fingerprint::of(&format!("sk-ledger-{n}"))
    }

    const DAY_MS: u64 = 86_400_000;

    #[test]
    fn without_a_store_today_is_counted_here_and_rolls_over() {
        let l = Ledger::new();
        let p: Arc<str> = Arc::from("openai");
        let t = Timestamp::from_millis(100 * DAY_MS + 5);
        l.record(&p, fp(1), &UsageCounts::answer(AnswerClass::Ok), t)
            .unwrap();
        l.record(&p, fp(1), &UsageCounts::tokens(3, 4), t).unwrap();
        let (day, today) = l.today("openai", t);
        assert_eq!(day, 100);
        assert_eq!(today[&fp(1)].requests(), 1);
        assert_eq!(today[&fp(1)].tokens_out, 4);
        // The next UTC day starts from zero.
        let next = Timestamp::from_millis(101 * DAY_MS);
        assert!(l.today("openai", next).1.is_empty());
        l.record(&p, fp(1), &UsageCounts::tokens(1, 0), next)
            .unwrap();
        assert_eq!(l.today("openai", next).1[&fp(1)].tokens_in, 1);
        assert_eq!(l.flush(Duration::ZERO), Ok(()));
    }

    #[test]
    fn pending_deltas_merge_per_credential_and_day_and_are_bounded() {
        let l = Ledger::with_cap(2);
        l.keep();
        let p: Arc<str> = Arc::from("openai");
        let t = Timestamp::from_millis(100 * DAY_MS);
        for _ in 0..1000 {
            l.record(&p, fp(1), &UsageCounts::answer(AnswerClass::Ok), t)
                .unwrap();
        }
        l.record(&p, fp(2), &UsageCounts::tokens(5, 0), t).unwrap();
        // A thousand deltas of one credential are one entry.
        assert_eq!(l.pending(), 2);
        let err = l
            .record(&p, fp(3), &UsageCounts::tokens(1, 0), t)
            .unwrap_err();
        assert!(
            matches!(err, UsageError::Full { pending: 2, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("openai"), "{err}");
        // Existing entries still take deltas.
        l.record(&p, fp(1), &UsageCounts::answer(AnswerClass::Ok), t)
            .unwrap();
        assert_eq!(l.today("openai", t).1[&fp(1)].successes(), 1001);
    }

    #[test]
    fn a_failed_write_keeps_every_delta_and_a_written_one_moves_into_the_totals() {
        let l = Ledger::new();
        l.keep();
        l.set_zone("openai", DayZone::utc());
        let p: Arc<str> = Arc::from("openai");
        let t = Timestamp::from_millis(100 * DAY_MS);
        l.record(&p, fp(1), &UsageCounts::answer(AnswerClass::Ok), t)
            .unwrap();
        let batch = l.take(t);
        assert_eq!(batch.days, vec![(Arc::clone(&p), 100)]);
        // Counted while in flight, and while more arrives.
        l.record(&p, fp(1), &UsageCounts::answer(AnswerClass::Ok), t)
            .unwrap();
        assert_eq!(l.today("openai", t).1[&fp(1)].successes(), 2);
        l.failed(batch);
        assert_eq!(l.pending(), 1);
        assert_eq!(l.today("openai", t).1[&fp(1)].successes(), 2);
        // The retry carries both; the store says its total (with another process's 5).
        let batch = l.take(t);
        assert_eq!(batch.deltas.len(), 1);
        assert_eq!(batch.deltas[0].1.successes(), 2);
        let mut totals = HashMap::new();
        let mut c = UsageCounts::default();
        c.add_answers(AnswerClass::Ok, 7);
        totals.insert(fp(1), c);
        l.written(batch, vec![(Arc::clone(&p), (100, totals))]);
        assert_eq!(l.pending(), 0);
        assert_eq!(l.today("openai", t).1[&fp(1)].successes(), 7);
    }

    #[test]
    fn counters_round_trip_through_their_stored_names() {
        let mut c = UsageCounts::answer(AnswerClass::QuotaExhausted);
        c.add(&UsageCounts::tokens(9, 8));
        let mut back = UsageCounts::default();
        for (f, n) in c.fields() {
            assert!(back.set(f, n));
        }
        assert_eq!(back, c);
        assert!(!back.set("from_a_newer_version", 1));
        assert_eq!(AnswerClass::InvalidKey.as_str(), "invalid_key");
        assert_eq!(
            AnswerClass::of(&Verdict::Ok(Default::default())),
            AnswerClass::Ok
        );
    }
}
