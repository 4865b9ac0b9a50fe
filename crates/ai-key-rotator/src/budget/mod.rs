//! Client-side budgets: skip a key *before* sending a request its limits would refuse.
//!
//! Per credential (the provider's `budget`) and per quota scope (`scope_budgets`): requests and
//! tokens per minute (GCRA: a bucket of `limit` that refills continuously, so the whole limit
//! may go at once after an idle minute and then one request every `60 s / limit`, never a
//! second burst at a minute boundary as fixed buckets allow), requests and tokens per day in the provider's
//! daily window (a calendar day in a time zone, like the provider's own daily quota), and a cap
//! on requests in flight. A budget that would be exceeded makes the key ineligible until the
//! time it would admit the request, which is what `acquire` reports when no key is left.

pub(crate) mod fleet;
pub(crate) mod gcra;

use crate::error::InvalidPolicy;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use jiff::civil::Time;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::cooldown::calendar;
use fleet::FleetShare;
use gcra::{Gcra, Rate};

const MINUTE_MS: u64 = 60_000;

/// Limits to keep a key (or a quota scope) within, client-side.
///
/// ```toml
/// [providers.openai.budget]            # for each key of the provider
/// requests_per_minute = 500
/// tokens_per_minute = 30000
/// max_in_flight = 8
///
/// [providers.openai.scope_budgets.org-main]   # for all keys of scope "org-main" together
/// requests_per_day = 10000
/// day_starts_at = "00:00"
/// time_zone = "America/Los_Angeles"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Requests per minute (a continuously refilling bucket, GCRA).
    #[serde(default)]
    pub requests_per_minute: Option<u64>,
    /// Tokens per minute, likewise (as estimated at acquire time, corrected by reports).
    #[serde(default)]
    pub tokens_per_minute: Option<u64>,
    /// Requests per day, the day starting at `day_starts_at` in `time_zone`.
    #[serde(default)]
    pub requests_per_day: Option<u64>,
    /// Tokens per day.
    #[serde(default)]
    pub tokens_per_day: Option<u64>,
    /// Requests in flight at once.
    #[serde(default)]
    pub max_in_flight: Option<u32>,
    /// When the daily window starts, `"HH:MM"` (midnight by default).
    #[serde(default)]
    pub day_starts_at: Option<String>,
    /// The daily window's time zone (UTC by default).
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Keep this budget per process even with a store that shares budgets (Redis). By
    /// default, with such a store, the requests and tokens limits are shared by every process
    /// of the fleet (`max_in_flight` is always per process).
    #[serde(default)]
    pub per_process: bool,
}

impl Budget {
    /// Checks the budget and prepares it for use.
    ///
    /// # Errors
    /// What is wrong, for the caller to wrap with the provider's name.
    pub(crate) fn compile(&self) -> Result<Limits, InvalidPolicy> {
        let nonzero = |name: &'static str, v: Option<u64>| match v {
            Some(0) => Err(InvalidPolicy::ZeroLimit(name)),
            _ => Ok(v),
        };
        let at = match &self.day_starts_at {
            Some(s) => crate::cooldown::parse_time(s)?,
            None => Time::midnight(),
        };
        let tz = match &self.time_zone {
            Some(s) => crate::cooldown::parse_zone(s)?,
            None => TimeZone::UTC,
        };
        if self.max_in_flight == Some(0) {
            return Err(InvalidPolicy::ZeroLimit("max_in_flight"));
        }
        Ok(Limits {
            rpm: nonzero("requests_per_minute", self.requests_per_minute)?
                .and_then(|l| Rate::per(l, MINUTE_MS)),
            tpm: nonzero("tokens_per_minute", self.tokens_per_minute)?
                .and_then(|l| Rate::per(l, MINUTE_MS)),
            rpd: nonzero("requests_per_day", self.requests_per_day)?,
            tpd: nonzero("tokens_per_day", self.tokens_per_day)?,
            max_in_flight: self.max_in_flight,
            day_at: at,
            day_tz: tz,
            per_process: self.per_process,
        })
    }
}

/// A compiled [`Budget`].
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    rpm: Option<Rate>,
    tpm: Option<Rate>,
    rpd: Option<u64>,
    tpd: Option<u64>,
    max_in_flight: Option<u32>,
    day_at: Time,
    day_tz: TimeZone,
    per_process: bool,
}

impl Limits {
    /// Whether a store that shares budgets should share this one.
    pub(crate) fn shared(&self) -> bool {
        !self.per_process
            && (self.rpm.is_some()
                || self.tpm.is_some()
                || self.rpd.is_some()
                || self.tpd.is_some())
    }

    /// One process's share of these limits among `n` (each rounded up, at least 1).
    pub(crate) fn divided(&self, n: u32) -> Limits {
        let n = u64::from(n.max(1));
        let part = |l: u64| l.div_ceil(n).max(1);
        Limits {
            rpm: self
                .rpm
                .and_then(|r| Rate::per(part(r.limit()), r.period_ms())),
            tpm: self
                .tpm
                .and_then(|r| Rate::per(part(r.limit()), r.period_ms())),
            rpd: self.rpd.map(part),
            tpd: self.tpd.map(part),
            ..self.clone()
        }
    }

    /// The end of the daily window that holds `now`; `None` without a daily limit.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))] // read by the Redis store's leases
    pub(crate) fn day_end(&self, now: Timestamp) -> Option<Timestamp> {
        (self.rpd.is_some() || self.tpd.is_some())
            .then(|| calendar::next_daily(now, self.day_at, &self.day_tz).unwrap_or(Timestamp::MAX))
    }

    /// The per-minute (request, token) limits and the daily ones, as the store's lease
    /// script takes them (0 = none), with the minute's period in ms.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))] // read by the Redis store's leases
    pub(crate) fn numbers(&self) -> [u64; 5] {
        [
            self.rpm.map_or(0, |r| r.limit()),
            self.tpm.map_or(0, |r| r.limit()),
            self.rpd.unwrap_or(0),
            self.tpd.unwrap_or(0),
            self.rpm.or(self.tpm).map_or(MINUTE_MS, |r| r.period_ms()),
        ]
    }
}

/// A budget's running state.
#[derive(Debug, Default)]
pub(crate) struct Usage {
    rpm: Gcra,
    tpm: Gcra,
    day: Mutex<Day>,
    pub(crate) in_flight: AtomicU32,
    /// This budget's share of a fleet-wide limit, once the rotator's store shares budgets:
    /// then the requests and tokens are spent from it instead of the counters above.
    fleet: OnceLock<Arc<FleetShare>>,
}

#[derive(Debug, Default)]
struct Day {
    /// When the current daily window ends; 0 before the first use.
    ends: Timestamp,
    requests: u64,
    tokens: u64,
}

impl Usage {
    /// Takes one request and `tokens` from the budget, or says when it could. With `hold`,
    /// also counts the request in flight until [`release`](Self::release).
    pub(crate) fn try_admit(
        &self,
        limits: &Limits,
        now: Timestamp,
        tokens: u64,
        hold: bool,
    ) -> Result<(), Timestamp> {
        if hold {
            let max = limits.max_in_flight.unwrap_or(u32::MAX);
            // A full concurrency cap frees at the next release, which has no time: say "now"
            // so that callers retry soon.
            self.in_flight
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < max).then_some(n + 1)
                })
                .map_err(|_| now)?;
        }
        let result = self.take(limits, now, tokens);
        if result.is_err() && hold {
            self.release();
        }
        result
    }

    /// Ends a request counted by `try_admit(.., hold = true)`.
    pub(crate) fn release(&self) {
        let _ = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// Whether this budget spends from a fleet-wide share.
    pub(crate) fn in_fleet(&self) -> bool {
        self.fleet.get().is_some()
    }

    /// Spends from `share` from now on (once; a later call is ignored).
    pub(crate) fn join_fleet(&self, share: Arc<FleetShare>) {
        let _ = self.fleet.set(share);
    }

    fn take(&self, limits: &Limits, now: Timestamp, tokens: u64) -> Result<(), Timestamp> {
        if let Some(share) = self.fleet.get() {
            share.take(now, tokens)?;
            self.mirror(limits, now, 1, tokens as i64);
            return Ok(());
        }
        if let Some(rate) = limits.rpm {
            self.rpm.try_take(rate, now, 1)?;
        }
        if let Some(rate) = limits.tpm
            && tokens > 0
            && let Err(at) = self.tpm.try_take(rate, now, tokens)
        {
            if let Some(r) = limits.rpm {
                self.rpm.adjust(r, now, -1);
            }
            return Err(at);
        }
        if limits.rpd.is_some() || limits.tpd.is_some() {
            let mut day = self.day.lock().unwrap_or_else(|e| e.into_inner());
            if now >= day.ends {
                day.ends = calendar::next_daily(now, limits.day_at, &limits.day_tz)
                    .unwrap_or(Timestamp::MAX);
                day.requests = 0;
                day.tokens = 0;
            }
            let over = limits.rpd.is_some_and(|l| day.requests + 1 > l)
                || limits
                    .tpd
                    .is_some_and(|l| day.tokens + tokens > l && day.tokens > 0);
            if over {
                let ends = day.ends;
                drop(day);
                self.refund_minute(limits, now, tokens);
                return Err(ends);
            }
            day.requests += 1;
            day.tokens += tokens;
        }
        Ok(())
    }

    fn refund_minute(&self, limits: &Limits, now: Timestamp, tokens: u64) {
        if let Some(r) = limits.rpm {
            self.rpm.adjust(r, now, -1);
        }
        if let Some(r) = limits.tpm
            && tokens > 0
        {
            self.tpm.adjust(r, now, -(tokens as i64));
        }
    }

    /// Gives back what `try_admit` took, for a request that was not sent after all.
    pub(crate) fn refund(&self, limits: &Limits, now: Timestamp, tokens: u64) {
        if let Some(share) = self.fleet.get() {
            share.refund(now, tokens);
            return self.mirror(limits, now, -1, -(tokens as i64));
        }
        self.refund_minute(limits, now, tokens);
        if limits.rpd.is_some() || limits.tpd.is_some() {
            let mut day = self.day.lock().unwrap_or_else(|e| e.into_inner());
            day.requests = day.requests.saturating_sub(1);
            day.tokens = day.tokens.saturating_sub(tokens);
        }
    }

    /// Corrects the token count once the real use is known.
    pub(crate) fn correct_tokens(
        &self,
        limits: &Limits,
        now: Timestamp,
        estimated: u64,
        used: u64,
    ) {
        let diff = used as i64 - estimated as i64;
        if let Some(share) = self.fleet.get() {
            share.correct(now, estimated, used);
            return self.mirror(limits, now, 0, diff);
        }
        if diff == 0 {
            return;
        }
        if let Some(r) = limits.tpm {
            self.tpm.adjust(r, now, diff);
        }
        if limits.tpd.is_some() {
            let mut day = self.day.lock().unwrap_or_else(|e| e.into_inner());
            day.tokens = day.tokens.saturating_add_signed(diff);
        }
    }
}

impl Usage {
    /// Counts this process's use of a fleet-wide budget in the local counters, which the fleet
    /// does not read: they only feed [`view`](Self::view). Unchecked, like a correction.
    fn mirror(&self, limits: &Limits, now: Timestamp, requests: i64, tokens: i64) {
        if let Some(r) = limits.rpm
            && requests != 0
        {
            self.rpm.adjust(r, now, requests);
        }
        if let Some(r) = limits.tpm
            && tokens != 0
        {
            self.tpm.adjust(r, now, tokens);
        }
        if limits.rpd.is_some() || limits.tpd.is_some() {
            let mut day = self.day.lock().unwrap_or_else(|e| e.into_inner());
            if now >= day.ends {
                day.ends = calendar::next_daily(now, limits.day_at, &limits.day_tz)
                    .unwrap_or(Timestamp::MAX);
                day.requests = 0;
                day.tokens = 0;
            }
            day.requests = day.requests.saturating_add_signed(requests);
            day.tokens = day.tokens.saturating_add_signed(tokens);
        }
    }

    /// Each configured limit's use at `now`, in the order requests and tokens per minute,
    /// requests and tokens per day, in flight. A fleet-wide budget reports this process's use
    /// against the fleet's limit.
    pub(crate) fn view(&self, limits: &Limits, now: Timestamp) -> Vec<LimitUse> {
        let mut out = Vec::new();
        for (kind, rate, gcra) in [
            (LimitKind::RequestsPerMinute, limits.rpm, &self.rpm),
            (LimitKind::TokensPerMinute, limits.tpm, &self.tpm),
        ] {
            if let Some(rate) = rate {
                let (used, empty_at) = gcra.level(rate, now);
                out.push(LimitUse {
                    kind,
                    used,
                    limit: rate.limit(),
                    resets_at: Some(empty_at),
                });
            }
        }
        if limits.rpd.is_some() || limits.tpd.is_some() {
            let day = self.day.lock().unwrap_or_else(|e| e.into_inner());
            let (requests, tokens, ends) = if now >= day.ends {
                // No use in the window that holds `now` yet.
                let ends = calendar::next_daily(now, limits.day_at, &limits.day_tz)
                    .unwrap_or(Timestamp::MAX);
                (0, 0, ends)
            } else {
                (day.requests, day.tokens, day.ends)
            };
            drop(day);
            for (kind, limit, used) in [
                (LimitKind::RequestsPerDay, limits.rpd, requests),
                (LimitKind::TokensPerDay, limits.tpd, tokens),
            ] {
                if let Some(limit) = limit {
                    out.push(LimitUse {
                        kind,
                        used,
                        limit,
                        resets_at: Some(ends),
                    });
                }
            }
        }
        if let Some(max) = limits.max_in_flight {
            out.push(LimitUse {
                kind: LimitKind::InFlight,
                used: u64::from(self.in_flight.load(Ordering::Relaxed)),
                limit: u64::from(max),
                resets_at: None,
            });
        }
        out
    }
}

/// Which limit of a [`Budget`] a [`LimitUse`] is about: the budget's field of that name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LimitKind {
    /// `requests_per_minute`.
    RequestsPerMinute,
    /// `tokens_per_minute`.
    TokensPerMinute,
    /// `requests_per_day`.
    RequestsPerDay,
    /// `tokens_per_day`.
    TokensPerDay,
    /// `max_in_flight`.
    InFlight,
}

impl LimitKind {
    /// The budget field's name: `requests_per_minute`, …, `max_in_flight`.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::RequestsPerMinute => "requests_per_minute",
            LimitKind::TokensPerMinute => "tokens_per_minute",
            LimitKind::RequestsPerDay => "requests_per_day",
            LimitKind::TokensPerDay => "tokens_per_day",
            LimitKind::InFlight => "max_in_flight",
        }
    }

    /// The window the limit counts over: `minute`, `day`, or `now` (in flight).
    pub fn window(self) -> &'static str {
        match self {
            LimitKind::RequestsPerMinute | LimitKind::TokensPerMinute => "minute",
            LimitKind::RequestsPerDay | LimitKind::TokensPerDay => "day",
            LimitKind::InFlight => "now",
        }
    }

    /// Whether it counts tokens (else requests).
    pub fn counts_tokens(self) -> bool {
        matches!(self, LimitKind::TokensPerMinute | LimitKind::TokensPerDay)
    }
}

/// One limit of a budget, and how much of it is used now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LimitUse {
    /// Which limit.
    pub kind: LimitKind,
    /// Used now. Per minute: what the continuously refilling bucket holds (it drains at the
    /// rate, so a minute after the last request it is 0). Per day: requests or tokens since the
    /// daily window began. In flight: requests out now. Token figures are the estimates given
    /// at acquire time, corrected by reported use.
    pub used: u64,
    /// The configured limit (for a fleet-wide budget, the fleet's).
    pub limit: u64,
    /// When the use is back to 0 if nothing more is spent: the bucket empty, the daily window
    /// over. `None` for in flight.
    pub resets_at: Option<Timestamp>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daily_window_follows_the_configured_day() {
        let limits = Budget {
            requests_per_day: Some(2),
            time_zone: Some("America/Los_Angeles".into()),
            ..Budget::default()
        }
        .compile()
        .unwrap();
        let u = Usage::default();
        // 2026-11-25T09:30:00Z = 01:30 PST; the window ends 2026-11-26T08:00:00Z.
        let now = Timestamp::from_secs(1_795_599_000);
        u.try_admit(&limits, now, 0, false).unwrap();
        u.try_admit(&limits, now, 0, false).unwrap();
        let end = Timestamp::from_secs(1_795_680_000);
        assert_eq!(u.try_admit(&limits, now, 0, false), Err(end));
        u.try_admit(&limits, end, 0, false).unwrap();
    }

    #[test]
    fn a_fleet_budget_shows_this_processs_use_against_the_fleets_limit() {
        let limits = Budget {
            requests_per_minute: Some(600),
            tokens_per_day: Some(100_000),
            ..Budget::default()
        }
        .compile()
        .unwrap();
        let hub = fleet::FleetHub::new();
        let share = hub.join(
            fleet::FleetSubject {
                provider: "openai".into(),
                name: "scope:org".into(),
            },
            limits.clone(),
        );
        let now = Timestamp::from_secs(1_795_599_000);
        let ask = share.ask().expect("a first lease is asked for");
        share.granted(ask, 10, 1_000, now);
        let u = Usage::default();
        u.join_fleet(share);
        assert!(u.in_fleet());
        for _ in 0..3 {
            u.try_admit(&limits, now, 100, false).unwrap();
        }
        // One was not sent after all; another used 250 tokens instead of 100.
        u.refund(&limits, now, 100);
        u.correct_tokens(&limits, now, 100, 250);
        let view = u.view(&limits, now);
        let got: Vec<_> = view.iter().map(|l| (l.kind, l.used, l.limit)).collect();
        assert_eq!(
            got,
            [
                (LimitKind::RequestsPerMinute, 2, 600),
                (LimitKind::TokensPerDay, 350, 100_000),
            ]
        );
    }

    #[test]
    fn invalid_budgets_say_what_is_wrong() {
        let e = Budget {
            requests_per_minute: Some(0),
            ..Budget::default()
        }
        .compile()
        .unwrap_err();
        assert_eq!(e, InvalidPolicy::ZeroLimit("requests_per_minute"));
    }
}
