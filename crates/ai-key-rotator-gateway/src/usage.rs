//! Per-key usage statistics that outlive the process, as a thin adapter over the core's usage
//! ledger ([`KeyRotator::record_usage`], [`KeyRotator::usage_today`]): each key's upstream
//! answers by class (`ok`, `rate_limited`, …; their sum is its requests) and its tokens in and
//! out, per provider day (the calendar day in the time zone where the provider's daily quotas
//! reset: Pacific time for Gemini, UTC for others, or the provider's `usage_day_timezone`).
//!
//! The request path only bumps the in-memory counters of `ops/stats.rs` (atomics). Every
//! second a task hands what is new since its last hand-over to the core as deltas, which is
//! an in-memory step (no I/O, never blocking); the core's state store writes them through its
//! own connection (SQLite's `key_usage` table, or Redis hashes under the store's prefix, with
//! its TLS, Cluster, timeouts and health), adds up what every gateway sharing it wrote, and
//! survives restarts and outages. Reads add what this process has not handed over yet.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ai_key_rotator::{AnswerClass, Fingerprint, KeyRotator, UsageCounts, UsageError};

use crate::ops::stats::{CLASSES, KeyTable, TOKENS_IN, TOKENS_OUT, UsageCounts as Counts};

/// How often new counts are handed to the core.
pub(crate) const WRITE_EVERY: Duration = Duration::from_secs(1);

/// A key by provider and fingerprint.
type KeyName = (Arc<str>, Fingerprint);

/// One provider's usage today: the day (date and time zone) and each key's counts.
#[derive(Debug, Clone, Default)]
pub(crate) struct Today {
    /// `YYYY-MM-DD` in `time_zone`.
    pub(crate) date: String,
    pub(crate) time_zone: String,
    keys: HashMap<Fingerprint, Counts>,
}

impl Today {
    /// A key's counts today (zero when it has none).
    pub(crate) fn of(&self, fingerprint: Fingerprint) -> Counts {
        self.keys.get(&fingerprint).copied().unwrap_or_default()
    }
}

/// What of each key's in-memory counts was handed to the core.
#[derive(Debug, Default)]
pub(crate) struct Usage {
    /// Held by a hand-over and by reads, so a read never sees counts both handed over and
    /// not (a std mutex: held for in-memory work only, never across an await).
    written: Mutex<HashMap<KeyName, Counts>>,
}

fn to_core(c: &Counts) -> UsageCounts {
    let mut u = UsageCounts::tokens(c[TOKENS_IN], c[TOKENS_OUT]);
    for (i, class) in AnswerClass::ALL.iter().enumerate().take(CLASSES.len()) {
        u.add_answers(*class, c[i]);
    }
    u
}

fn from_core(u: &UsageCounts) -> Counts {
    let mut c = Counts::default();
    for (i, class) in AnswerClass::ALL.iter().enumerate().take(CLASSES.len()) {
        c[i] = u.answers(*class);
    }
    c[TOKENS_IN] = u.tokens_in;
    c[TOKENS_OUT] = u.tokens_out;
    c
}

impl Usage {
    /// Hands what is new since the last hand-over to the core. Cheap and non-blocking: the
    /// core's store writes it in the background.
    pub(crate) fn sync(&self, keys: &KeyTable, rotator: &KeyRotator) {
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        for (name, now) in keys.all() {
            let before = written.get(&name).copied().unwrap_or_default();
            let delta: Counts = std::array::from_fn(|i| now[i].saturating_sub(before[i]));
            if delta == Counts::default() {
                continue;
            }
            match rotator.record_usage(&name.0, name.1, to_core(&delta)) {
                Ok(()) => {}
                // A key removed by a reload: its counts have nowhere to go.
                Err(UsageError::UnknownProvider { .. } | UsageError::UnknownCredential { .. }) => {}
                // The store has been away for very long: kept here for the next hand-over.
                Err(e) => {
                    tracing::warn!(error = %e, "usage statistics are waiting for the state store");
                    continue;
                }
            }
            written.insert(name, now);
        }
    }

    /// `provider`'s usage today: the core's totals (every gateway's, with a shared store) plus
    /// what this process has not handed over yet.
    pub(crate) fn today(
        &self,
        keys: &KeyTable,
        rotator: &KeyRotator,
        provider: &str,
    ) -> Option<Today> {
        let written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        let day = rotator.usage_today(provider)?;
        let keys = day
            .credentials
            .iter()
            .map(|(id, counts)| {
                let fp = id.fingerprint;
                let mut c = from_core(counts);
                let now = keys.get(provider, fp).usage();
                let handed = written
                    .get(&(Arc::from(provider), fp))
                    .copied()
                    .unwrap_or_default();
                for i in 0..c.len() {
                    c[i] += now[i].saturating_sub(handed[i]);
                }
                (fp, c)
            })
            .collect();
        Some(Today {
            date: day.date,
            time_zone: day.time_zone,
            keys,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ai_key_rotator::classify::Verdict;
    use ai_key_rotator::{FakeClock, ProviderConfig, Timestamp};

    #[test]
    fn counts_reach_the_core_once_and_reads_see_them_before_and_after() {
        let clock = FakeClock::new(Timestamp::from_millis(1_796_023_800_000));
        let rotator = KeyRotator::builder()
            .provider("gemini", ProviderConfig::new().credential("AIza-usage"))
            .clock(clock.clone())
            .reset_interval(Duration::ZERO)
            .build()
            .unwrap();
        let fp = Fingerprint::of("AIza-usage");
        let keys = KeyTable::default();
        let usage = Usage::default();
        keys.record("gemini", fp, &Verdict::Ok(Default::default()));
        keys.record_tokens("gemini", fp, 10, 2);
        // Not handed over yet, counted all the same.
        let t = usage.today(&keys, &rotator, "gemini").unwrap();
        assert_eq!((t.of(fp)[0], t.of(fp)[TOKENS_IN]), (1, 10));
        assert_eq!(
            (t.date.as_str(), t.time_zone.as_str()),
            ("2026-11-29", "America/Los_Angeles")
        );
        usage.sync(&keys, &rotator);
        usage.sync(&keys, &rotator);
        let t = usage.today(&keys, &rotator, "gemini").unwrap();
        assert_eq!((t.of(fp)[0], t.of(fp)[TOKENS_OUT]), (1, 2));
        let core = rotator.usage_today("gemini").unwrap().credentials[0].1;
        assert_eq!((core.successes(), core.tokens_in), (1, 10));
        // Midnight in Los Angeles (08:00 UTC): Gemini's day turns; the next counts are the
        // new day's.
        clock.advance(Duration::from_secs(30 * 60));
        let t = usage.today(&keys, &rotator, "gemini").unwrap();
        assert_eq!(
            (t.date.as_str(), t.of(fp)),
            ("2026-11-30", Counts::default())
        );
        keys.record("gemini", fp, &Verdict::ClientError);
        usage.sync(&keys, &rotator);
        let t = usage.today(&keys, &rotator, "gemini").unwrap();
        assert_eq!((t.of(fp)[0], t.of(fp)[6]), (0, 1));
        // A key unknown to the core (removed by a reload) is dropped, not retried forever.
        keys.record(
            "gemini",
            Fingerprint::of("AIza-gone"),
            &Verdict::ClientError,
        );
        usage.sync(&keys, &rotator);
        assert!(usage.today(&keys, &rotator, "nope").is_none());
    }
}
