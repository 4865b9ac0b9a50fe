//! Live counts for the dashboard: requests and errors per provider over the last minute and
//! today, and per key (by fingerprint) the verdicts its answers got.
//!
//! Written on the request path, so every write is a few relaxed atomic operations on data
//! resolved ahead of time (a provider's window) or found under a read lock (a key's counters,
//! created once). Concurrent writers racing over a bucket that turns to a new second may lose a
//! count; a dashboard's rates tolerate that, and nothing is decided from these numbers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use ai_key_rotator::classify::Verdict;
use ai_key_rotator::{AnswerClass, Fingerprint};
use serde::Serialize;

const SECONDS: usize = 60;
const DAY_MS: u64 = 86_400_000;

/// Wall time in Unix milliseconds. The dashboard's windows are wall-clock windows; the
/// rotator's (possibly fake) clock decides cooldowns, not these.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[derive(Debug, Default)]
struct Bucket {
    second: AtomicU64,
    requests: AtomicU64,
    errors: AtomicU64,
}

/// One provider's requests and errors (answers of 400 and above) in one-second buckets over
/// the last minute, and since midnight UTC.
#[derive(Debug)]
pub(crate) struct Window {
    buckets: Box<[Bucket]>,
    day: AtomicU64,
    today_requests: AtomicU64,
    today_errors: AtomicU64,
}

/// Requests and errors over a period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Counts {
    pub(crate) requests: u64,
    pub(crate) errors: u64,
}

impl Default for Window {
    fn default() -> Self {
        Window {
            buckets: (0..SECONDS).map(|_| Bucket::default()).collect(),
            day: AtomicU64::new(0),
            today_requests: AtomicU64::new(0),
            today_errors: AtomicU64::new(0),
        }
    }
}

impl Window {
    /// Counts one answer with `status` at `now_ms`.
    pub(crate) fn record(&self, status: u16, now_ms: u64) {
        let error = u64::from(status >= 400);
        let second = now_ms / 1000;
        let b = &self.buckets[(second % SECONDS as u64) as usize];
        if b.second.load(Ordering::Relaxed) != second
            && b.second.swap(second, Ordering::AcqRel) != second
        {
            b.requests.store(0, Ordering::Relaxed);
            b.errors.store(0, Ordering::Relaxed);
        }
        b.requests.fetch_add(1, Ordering::Relaxed);
        b.errors.fetch_add(error, Ordering::Relaxed);
        let day = now_ms / DAY_MS;
        if self.day.load(Ordering::Relaxed) != day && self.day.swap(day, Ordering::AcqRel) != day {
            self.today_requests.store(0, Ordering::Relaxed);
            self.today_errors.store(0, Ordering::Relaxed);
        }
        self.today_requests.fetch_add(1, Ordering::Relaxed);
        self.today_errors.fetch_add(error, Ordering::Relaxed);
    }

    /// The last 60 seconds up to `now_ms`, and today.
    pub(crate) fn read(&self, now_ms: u64) -> (Counts, Counts) {
        let now = now_ms / 1000;
        let mut minute = Counts::default();
        for b in &*self.buckets {
            let s = b.second.load(Ordering::Acquire);
            if s + (SECONDS as u64) > now && s <= now {
                minute.requests += b.requests.load(Ordering::Relaxed);
                minute.errors += b.errors.load(Ordering::Relaxed);
            }
        }
        let today = if self.day.load(Ordering::Acquire) == now_ms / DAY_MS {
            Counts {
                requests: self.today_requests.load(Ordering::Relaxed),
                errors: self.today_errors.load(Ordering::Relaxed),
            }
        } else {
            Counts::default()
        };
        (minute, today)
    }
}

/// The classes a key's answers fall in, as the dashboard and `/metrics` count them.
pub(crate) const CLASSES: [&str; 7] = [
    "ok",
    "rate_limited",
    "quota_exhausted",
    "invalid_key",
    "overloaded",
    "server_error",
    "client_error",
];

/// What a key's usage counts: its answers by class ([`CLASSES`], indices 0..7), then the
/// tokens its requests sent (`tokens_in`) and its answers returned (`tokens_out`), as the
/// providers' usage reports said.
pub(crate) const USAGE_FIELDS: [&str; CLASSES.len() + 2] = [
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

/// The index of `tokens_in` in [`USAGE_FIELDS`]; `tokens_out` follows it.
pub(crate) const TOKENS_IN: usize = CLASSES.len();
/// The index of `tokens_out` in [`USAGE_FIELDS`].
pub(crate) const TOKENS_OUT: usize = CLASSES.len() + 1;

/// A key's usage: its answers by class, then its tokens in and out (see [`USAGE_FIELDS`]).
pub(crate) type UsageCounts = [u64; USAGE_FIELDS.len()];

/// The class of a verdict: an index into [`CLASSES`], which lists the core's
/// [`AnswerClass::ALL`] by name (the usage the core stores counts the same classes).
pub(crate) fn class_of(verdict: &Verdict) -> usize {
    AnswerClass::of(verdict) as usize
}

/// One key's answers since the gateway started: by class, its tokens in and out, and the last
/// verdict and when.
#[derive(Debug, Default)]
pub(crate) struct KeyCounts {
    by_class: [AtomicU64; CLASSES.len()],
    tokens_in: AtomicU64,
    tokens_out: AtomicU64,
    /// The last verdict's class + 1 (0 = none yet) and its time in Unix ms.
    last_class: AtomicU64,
    last_at: AtomicU64,
}

/// What [`KeyCounts`] say at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KeyCountsView {
    pub(crate) by_class: [u64; CLASSES.len()],
    pub(crate) tokens_in: u64,
    pub(crate) tokens_out: u64,
    pub(crate) last: Option<(&'static str, u64)>,
}

impl KeyCounts {
    fn record(&self, class: usize, now_ms: u64) {
        self.by_class[class].fetch_add(1, Ordering::Relaxed);
        self.last_at.store(now_ms, Ordering::Relaxed);
        self.last_class.store(class as u64 + 1, Ordering::Relaxed);
    }

    fn add_tokens(&self, tokens_in: u64, tokens_out: u64) {
        self.tokens_in.fetch_add(tokens_in, Ordering::Relaxed);
        self.tokens_out.fetch_add(tokens_out, Ordering::Relaxed);
    }

    pub(crate) fn view(&self) -> KeyCountsView {
        let by_class = std::array::from_fn(|i| self.by_class[i].load(Ordering::Relaxed));
        let tokens_in = self.tokens_in.load(Ordering::Relaxed);
        let tokens_out = self.tokens_out.load(Ordering::Relaxed);
        let last = match self.last_class.load(Ordering::Relaxed) as usize {
            0 => None,
            c => CLASSES
                .get(c - 1)
                .map(|name| (*name, self.last_at.load(Ordering::Relaxed))),
        };
        KeyCountsView {
            by_class,
            tokens_in,
            tokens_out,
            last,
        }
    }
}

impl KeyCountsView {
    /// The answers by class and the tokens, in [`USAGE_FIELDS`] order.
    pub(crate) fn usage(&self) -> UsageCounts {
        std::array::from_fn(|i| match i {
            TOKENS_IN => self.tokens_in,
            TOKENS_OUT => self.tokens_out,
            c => self.by_class[c],
        })
    }
}

/// A key by provider and fingerprint.
type KeyName = (Arc<str>, Fingerprint);

/// Every key's [`KeyCounts`], by provider and fingerprint. Keys are few and configured, so
/// the table is bounded by the configuration (a removed key's counts stay until restart).
/// Nested by provider so that the request path looks a key up with the `&str` it has,
/// without allocating.
#[derive(Debug, Default)]
pub(crate) struct KeyTable {
    keys: RwLock<HashMap<Arc<str>, ProviderKeys>>,
}

/// One provider's keys' counts.
type ProviderKeys = HashMap<Fingerprint, Arc<KeyCounts>>;

impl KeyTable {
    /// Counts a verdict for a key now.
    pub(crate) fn record(&self, provider: &str, fingerprint: Fingerprint, verdict: &Verdict) {
        let class = class_of(verdict);
        let now = now_ms();
        self.with_key(provider, fingerprint, |k| k.record(class, now));
    }

    /// Counts the tokens a key's request sent (`tokens_in`, the prompt) and its answer
    /// returned (`tokens_out`, the completion), as the provider's usage report said (for a
    /// stream, its final usage event). Called once per answer that reported usage; the
    /// tokens flow into the stored usage, `/status` and `/metrics` like the verdict counts.
    pub(crate) fn record_tokens(
        &self,
        provider: &str,
        fingerprint: Fingerprint,
        tokens_in: u64,
        tokens_out: u64,
    ) {
        if tokens_in == 0 && tokens_out == 0 {
            return;
        }
        self.with_key(provider, fingerprint, |k| {
            k.add_tokens(tokens_in, tokens_out)
        });
    }

    /// Runs `f` on a key's counters: under the read lock when the key is known (every
    /// answer but its first), else under the write lock that adds it.
    fn with_key(&self, provider: &str, fingerprint: Fingerprint, f: impl FnOnce(&KeyCounts)) {
        {
            let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
            if let Some(k) = keys.get(provider).and_then(|p| p.get(&fingerprint)) {
                return f(k);
            }
        }
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        f(keys
            .entry(Arc::from(provider))
            .or_default()
            .entry(fingerprint)
            .or_default());
    }

    /// Every key's usage: counts by class and tokens, in [`USAGE_FIELDS`] order.
    pub(crate) fn all(&self) -> Vec<(KeyName, UsageCounts)> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        keys.iter()
            .flat_map(|(p, ks)| {
                ks.iter()
                    .map(|(fp, k)| ((Arc::clone(p), *fp), k.view().usage()))
            })
            .collect()
    }

    /// A key's counts, if it has any.
    pub(crate) fn get(&self, provider: &str, fingerprint: Fingerprint) -> KeyCountsView {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        keys.get(provider)
            .and_then(|p| p.get(&fingerprint))
            .map(|k| k.view())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_classes_are_the_cores_answer_classes_in_order() {
        for (i, class) in AnswerClass::ALL.iter().enumerate() {
            assert_eq!(*class as usize, i);
            assert_eq!(CLASSES[i], class.as_str());
            assert_eq!(USAGE_FIELDS[i], class.as_str());
        }
        assert_eq!(CLASSES.len(), AnswerClass::ALL.len());
        assert_eq!(
            (USAGE_FIELDS[TOKENS_IN], USAGE_FIELDS[TOKENS_OUT]),
            ("tokens_in", "tokens_out")
        );
    }

    #[test]
    fn a_window_counts_the_last_minute_and_today() {
        let w = Window::default();
        let t0 = 10 * DAY_MS + 5_000;
        w.record(200, t0);
        w.record(429, t0 + 10);
        w.record(200, t0 + 30_000);
        let (minute, today) = w.read(t0 + 30_000);
        assert_eq!(
            minute,
            Counts {
                requests: 3,
                errors: 1
            }
        );
        assert_eq!(
            today,
            Counts {
                requests: 3,
                errors: 1
            }
        );
        // A minute later the first two have left the minute but not the day.
        let (minute, today) = w.read(t0 + 61_000);
        assert_eq!(
            minute,
            Counts {
                requests: 1,
                errors: 0
            }
        );
        assert_eq!(today.requests, 3);
        // A bucket reused a minute later starts again from zero.
        w.record(500, t0 + 60_000);
        let (minute, _) = w.read(t0 + 60_000);
        assert_eq!(
            minute,
            Counts {
                requests: 2,
                errors: 1
            }
        );
        // The next day starts from zero.
        let (_, today) = w.read(t0 + DAY_MS);
        assert_eq!(today, Counts::default());
        w.record(200, t0 + DAY_MS);
        assert_eq!(
            w.read(t0 + DAY_MS).1,
            Counts {
                requests: 1,
                errors: 0
            }
        );
    }

    #[test]
    fn keys_are_counted_by_verdict_class() {
        let t = KeyTable::default();
        let fp = Fingerprint::of("sk-a");
        assert_eq!(t.get("openai", fp), KeyCountsView::default());
        t.record("openai", fp, &Verdict::Ok(Default::default()));
        t.record("openai", fp, &Verdict::ClientError);
        t.record("openai", fp, &Verdict::Ok(Default::default()));
        let v = t.get("openai", fp);
        assert_eq!(v.by_class[0], 2);
        assert_eq!(v.by_class[6], 1);
        assert_eq!(v.last.map(|(c, _)| c), Some("ok"));
        assert_eq!(t.get("other", fp), KeyCountsView::default());
    }

    #[test]
    fn tokens_add_up_per_key_next_to_the_classes() {
        let t = KeyTable::default();
        let a = Fingerprint::of("sk-a");
        let b = Fingerprint::of("sk-b");
        // Tokens may arrive for a key before any verdict (a stream's usage comes last, but
        // the order is the caller's).
        t.record_tokens("openai", a, 12, 30);
        t.record("openai", a, &Verdict::Ok(Default::default()));
        t.record_tokens("openai", a, 8, 0);
        t.record_tokens("openai", b, 0, 0);
        let v = t.get("openai", a);
        assert_eq!((v.tokens_in, v.tokens_out), (20, 30));
        let usage = v.usage();
        assert_eq!(usage[0], 1);
        assert_eq!((usage[TOKENS_IN], usage[TOKENS_OUT]), (20, 30));
        assert_eq!(USAGE_FIELDS[TOKENS_IN], "tokens_in");
        assert_eq!(USAGE_FIELDS[TOKENS_OUT], "tokens_out");
        // Zero tokens do not make a key appear.
        assert_eq!(t.get("openai", b), KeyCountsView::default());
        assert_eq!(t.all().len(), 1);
    }
}
