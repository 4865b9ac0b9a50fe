//! Cooldown policies: how long a credential rests after it hit a limit.
//!
//! A policy only computes *until when*; applying it (never shortening a running cooldown) is
//! `rotator/transition.rs`'s job. When the provider said when the limit resets, that time wins
//! over the policy's own rule: the rotator rests a key exactly as long as needed. The policy
//! decides when the provider said nothing (and for keys marked by hand), and `from-response`
//! also caps what providers say.

pub(crate) mod calendar;
mod de;

use crate::error::InvalidPolicy;
use std::time::Duration;

use jiff::civil::Time;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;

const DAY_MS: u64 = 86_400_000;

/// A provider's cooldown policy.
///
/// In configuration files it is written the way the original library wrote it, with more
/// types:
///
/// ```toml
/// cooldown = { type = "fixed", duration_ms = 60000 }
/// cooldown = { type = "midnight-utc" }                     # the default
/// cooldown = { type = "daily-at", at = "00:00", time_zone = "America/Los_Angeles" }
/// cooldown = { type = "monthly", day = 1, time_zone = "UTC" }
/// cooldown = { type = "exponential", base_ms = 1000, factor = 2.0, max_ms = 600000 }
/// cooldown = { type = "from-response", cap_ms = 3600000, fallback = { type = "fixed", duration_ms = 60000 } }
/// ```
///
/// A field a variant does not have is an error (`{ type = "midnight-utc", time_zone = "…" }`
/// is not silently midnight UTC).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
// Read through `de::CooldownDe`, which rejects unknown fields in every variant; the field
// attributes below serve `Serialize` and document the defaults the mirror applies.
#[serde(tag = "type", rename_all = "kebab-case", from = "de::CooldownDe")]
#[non_exhaustive]
pub enum Cooldown {
    /// Rest for a fixed time after each mark.
    Fixed {
        /// The rest, in milliseconds; must be positive.
        #[serde(alias = "durationMs")]
        duration_ms: u64,
    },
    /// Rest until the next 00:00 UTC after the mark (the original's default, matching quotas
    /// that reset daily at midnight UTC).
    #[default]
    MidnightUtc,
    /// Rest until the next time `at` (`"HH:MM"` or `"HH:MM:SS"`) in an IANA time zone, e.g.
    /// midnight `America/Los_Angeles` for Gemini's daily quotas. DST days are 23 or 25 hours
    /// long and the reset follows local time.
    DailyAt {
        /// Local time of day of the reset.
        #[serde(default = "midnight")]
        at: String,
        /// IANA time zone name.
        time_zone: String,
    },
    /// Rest until day `day` of the next month (the 1st by default) at `at`, in a time zone
    /// (UTC by default), for monthly caps. A day past a month's end means its last day.
    Monthly {
        /// Day of the month, 1 to 31.
        #[serde(default = "first_day")]
        day: u8,
        /// Local time of day of the reset.
        #[serde(default = "midnight")]
        at: String,
        /// IANA time zone name.
        #[serde(default = "utc")]
        time_zone: String,
    },
    /// Back off exponentially on repeated failures of the same key: `base_ms · factor^(n−1)`
    /// for the n-th failure in a row, at most `max_ms`, with jitter (a random point in the upper
    /// half) unless `jitter = false`. A success resets the count.
    Exponential {
        /// The first rest, in milliseconds.
        base_ms: u64,
        /// Growth per failure, at least 1.
        #[serde(default = "two")]
        factor: f64,
        /// The longest rest, in milliseconds.
        max_ms: u64,
        /// Whether to randomize each rest within its upper half.
        #[serde(default = "yes")]
        jitter: bool,
    },
    /// Rest as long as the provider said, at most `cap_ms`; when it said nothing, as the
    /// `fallback` policy says.
    FromResponse {
        /// The policy for responses that give no time.
        fallback: Box<Cooldown>,
        /// The longest rest a response may impose, in milliseconds.
        #[serde(default)]
        cap_ms: Option<u64>,
    },
}

fn midnight() -> String {
    "00:00".into()
}
fn first_day() -> u8 {
    1
}
fn utc() -> String {
    "UTC".into()
}
fn two() -> f64 {
    2.0
}
fn yes() -> bool {
    true
}

impl Cooldown {
    /// A fixed cooldown of `d` (rounded up to whole milliseconds).
    pub fn fixed(d: Duration) -> Self {
        Cooldown::Fixed {
            duration_ms: millis(d),
        }
    }

    /// Resets daily at `at` (`"HH:MM"`) in `time_zone`.
    pub fn daily_at(at: impl Into<String>, time_zone: impl Into<String>) -> Self {
        Cooldown::DailyAt {
            at: at.into(),
            time_zone: time_zone.into(),
        }
    }

    /// Resets on the 1st of each month at midnight in `time_zone`.
    pub fn monthly(time_zone: impl Into<String>) -> Self {
        Cooldown::Monthly {
            day: 1,
            at: midnight(),
            time_zone: time_zone.into(),
        }
    }

    /// Exponential backoff with jitter.
    pub fn exponential(base: Duration, factor: f64, max: Duration) -> Self {
        Cooldown::Exponential {
            base_ms: millis(base),
            factor,
            max_ms: millis(max),
            jitter: true,
        }
    }

    /// The provider's time, capped at `cap`, else `fallback`.
    pub fn from_response(fallback: Cooldown, cap: Option<Duration>) -> Self {
        Cooldown::FromResponse {
            fallback: Box::new(fallback),
            cap_ms: cap.map(millis),
        }
    }

    /// Checks the policy and prepares it for use (parses times and time zones).
    ///
    /// # Errors
    /// What is wrong, for the caller to wrap with the provider's name.
    pub(crate) fn compile(&self) -> Result<Policy, InvalidPolicy> {
        Ok(match self {
            Cooldown::Fixed { duration_ms: 0 } => return Err(InvalidPolicy::ZeroLength),
            Cooldown::Fixed { duration_ms } => Policy::Fixed(*duration_ms),
            Cooldown::MidnightUtc => Policy::MidnightUtc,
            Cooldown::DailyAt { at, time_zone } => {
                Policy::DailyAt(parse_time(at)?, parse_zone(time_zone)?)
            }
            Cooldown::Monthly { day, at, time_zone } => {
                if !(1..=31).contains(day) {
                    return Err(InvalidPolicy::DayOfMonth(*day));
                }
                Policy::Monthly(*day, parse_time(at)?, parse_zone(time_zone)?)
            }
            Cooldown::Exponential {
                base_ms,
                factor,
                max_ms,
                jitter,
            } => {
                if *base_ms == 0 {
                    return Err(InvalidPolicy::ZeroLength);
                }
                if !(factor.is_finite() && *factor >= 1.0) {
                    return Err(InvalidPolicy::Factor(factor.to_string()));
                }
                if max_ms < base_ms {
                    return Err(InvalidPolicy::MaxBelowBase);
                }
                Policy::Exponential {
                    base_ms: *base_ms,
                    factor: *factor,
                    max_ms: *max_ms,
                    jitter: *jitter,
                }
            }
            Cooldown::FromResponse { fallback, cap_ms } => {
                if *cap_ms == Some(0) {
                    return Err(InvalidPolicy::ZeroCap);
                }
                Policy::FromResponse(Box::new(fallback.compile()?), *cap_ms)
            }
        })
    }

    /// The end of a cooldown that starts at `now` with no word from the provider, for the
    /// first failure. Policies that cannot compute (an invalid time zone) rest a day.
    pub fn until(&self, now: Timestamp) -> Timestamp {
        match self.compile() {
            Ok(p) => p.until(&CooldownContext::new(now)),
            Err(_) => Timestamp::from_millis(now.as_millis().saturating_add(DAY_MS)),
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX)
}

pub(crate) fn parse_time(s: &str) -> Result<Time, InvalidPolicy> {
    s.parse::<Time>()
        .map_err(|_| InvalidPolicy::TimeOfDay(s.to_owned()))
}

pub(crate) fn parse_zone(s: &str) -> Result<TimeZone, InvalidPolicy> {
    TimeZone::get(s).map_err(|_| InvalidPolicy::TimeZone(s.to_owned()))
}

/// What a policy may take into account besides its own rule.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CooldownContext {
    pub(crate) now: Timestamp,
    /// When the provider said the limit resets, if it did.
    pub(crate) provider_until: Option<Timestamp>,
    /// Failures of this key in a row, counting this one (at least 1).
    pub(crate) failures: u32,
    /// Varies the jitter between keys.
    pub(crate) seed: u64,
}

impl CooldownContext {
    pub(crate) fn new(now: Timestamp) -> Self {
        CooldownContext {
            now,
            provider_until: None,
            failures: 1,
            seed: 0,
        }
    }
}

/// A checked, ready-to-use [`Cooldown`].
#[derive(Debug, Clone)]
pub(crate) enum Policy {
    Fixed(u64),
    MidnightUtc,
    DailyAt(Time, TimeZone),
    Monthly(u8, Time, TimeZone),
    Exponential {
        base_ms: u64,
        factor: f64,
        max_ms: u64,
        jitter: bool,
    },
    FromResponse(Box<Policy>, Option<u64>),
}

impl Policy {
    /// The end of a cooldown under this policy.
    pub(crate) fn until(&self, ctx: &CooldownContext) -> Timestamp {
        match self {
            Policy::FromResponse(fallback, cap) => {
                let t = ctx
                    .provider_until
                    .unwrap_or_else(|| fallback.own_until(ctx));
                match cap {
                    Some(cap) => t.min(Timestamp::from_millis(
                        ctx.now.as_millis().saturating_add(*cap),
                    )),
                    None => t,
                }
            }
            _ => ctx.provider_until.unwrap_or_else(|| self.own_until(ctx)),
        }
    }

    /// The end of a cooldown by the policy's own rule, ignoring what the provider said.
    fn own_until(&self, ctx: &CooldownContext) -> Timestamp {
        let now = ctx.now;
        let after = |ms: u64| Timestamp::from_millis(now.as_millis().saturating_add(ms));
        match self {
            Policy::Fixed(ms) => after(*ms),
            Policy::MidnightUtc => {
                // The next midnight strictly after `now`: a mark at exactly 00:00 rests a full
                // day, because the quota that just failed is the new day's.
                Timestamp::from_millis((now.as_millis() / DAY_MS + 1).saturating_mul(DAY_MS))
            }
            Policy::DailyAt(at, tz) => {
                calendar::next_daily(now, *at, tz).unwrap_or_else(|| after(DAY_MS))
            }
            Policy::Monthly(day, at, tz) => {
                calendar::next_monthly(now, *day, *at, tz).unwrap_or_else(|| after(31 * DAY_MS))
            }
            Policy::Exponential {
                base_ms,
                factor,
                max_ms,
                jitter,
            } => {
                let exp = ctx.failures.saturating_sub(1).min(64) as i32;
                let full = (*base_ms as f64 * factor.powi(exp)).min(*max_ms as f64) as u64;
                let full = full.max(1);
                if *jitter {
                    // "Equal jitter": never less than half the backoff, so a failing key still
                    // rests, and spread over the upper half so that keys that failed together
                    // do not all come back in the same millisecond.
                    let half = full / 2;
                    let r = mix(ctx.seed ^ u64::from(ctx.failures) ^ now.as_millis());
                    after(full - half + r % (half + 1))
                } else {
                    after(full)
                }
            }
            Policy::FromResponse(fallback, _) => fallback.own_until(ctx),
        }
    }
}

/// A 64-bit mixer (splitmix64's finalizer): cheap, well-spread pseudo-randomness for jitter.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(now: Timestamp) -> CooldownContext {
        CooldownContext::new(now)
    }

    #[test]
    fn midnight_utc_is_the_next_midnight_after_the_mark() {
        let c = Cooldown::MidnightUtc;
        // 2026-11-25T09:30:00Z -> 2026-11-26T00:00:00Z
        let t = Timestamp::from_secs(1_795_599_000);
        assert_eq!(c.until(t).to_string(), "2026-11-26T00:00:00.000Z");
        // Exactly midnight rests a whole day.
        let midnight = Timestamp::from_secs(1_795_564_800);
        assert_eq!(c.until(midnight).to_string(), "2026-11-26T00:00:00.000Z");
        // One millisecond before midnight rests one millisecond.
        let just_before = Timestamp::from_millis(1_795_651_199_999);
        assert_eq!(c.until(just_before).to_string(), "2026-11-26T00:00:00.000Z");
    }

    #[test]
    fn fixed_adds_its_duration_and_zero_is_invalid() {
        let c = Cooldown::fixed(Duration::from_secs(60));
        assert_eq!(c.until(Timestamp::from_secs(10)), Timestamp::from_secs(70));
        assert!(c.compile().is_ok());
        assert_eq!(
            Cooldown::fixed(Duration::ZERO).compile().unwrap_err(),
            InvalidPolicy::ZeroLength
        );
        assert_eq!(
            Cooldown::fixed(Duration::from_micros(1)),
            Cooldown::Fixed { duration_ms: 1 }
        );
    }

    #[test]
    fn the_provider_time_wins_and_from_response_caps_it() {
        let now = Timestamp::from_secs(1000);
        let said = Timestamp::from_secs(1003);
        let far = Timestamp::from_secs(1_000_000);
        let with = |t| CooldownContext {
            provider_until: Some(t),
            ..ctx(now)
        };
        let fixed = Cooldown::fixed(Duration::from_secs(60)).compile().unwrap();
        assert_eq!(fixed.until(&with(said)), said);
        assert_eq!(fixed.until(&ctx(now)), Timestamp::from_secs(1060));
        let capped = Cooldown::from_response(
            Cooldown::fixed(Duration::from_secs(30)),
            Some(Duration::from_secs(3600)),
        )
        .compile()
        .unwrap();
        assert_eq!(capped.until(&with(said)), said);
        assert_eq!(capped.until(&with(far)), Timestamp::from_secs(4600));
        assert_eq!(capped.until(&ctx(now)), Timestamp::from_secs(1030));
    }

    #[test]
    fn exponential_grows_caps_and_jitters_in_the_upper_half() {
        let now = Timestamp::from_secs(1000);
        let exact = Cooldown::Exponential {
            base_ms: 1000,
            factor: 2.0,
            max_ms: 10_000,
            jitter: false,
        }
        .compile()
        .unwrap();
        let rest = |p: &Policy, failures, seed| {
            p.until(&CooldownContext {
                failures,
                seed,
                ..ctx(now)
            })
            .saturating_duration_since(now)
            .as_millis() as u64
        };
        let rests: Vec<u64> = (1..=6).map(|n| rest(&exact, n, 0)).collect();
        assert_eq!(rests, [1000, 2000, 4000, 8000, 10_000, 10_000]);
        let jittered = Cooldown::exponential(Duration::from_secs(1), 2.0, Duration::from_secs(10))
            .compile()
            .unwrap();
        let mut seen = std::collections::HashSet::new();
        for seed in 0..200 {
            let r = rest(&jittered, 3, seed);
            assert!((2000..=4000).contains(&r), "{r}");
            seen.insert(r);
        }
        assert!(seen.len() > 50, "jitter spreads keys apart");
    }

    #[test]
    fn invalid_policies_say_what_is_wrong() {
        #[track_caller]
        fn check(c: Cooldown, expected: &str) {
            assert_eq!(c.compile().unwrap_err().to_string(), expected);
        }
        check(
            Cooldown::daily_at("25:00", "UTC"),
            "`25:00` is not a time of day (HH:MM or HH:MM:SS)",
        );
        check(
            Cooldown::daily_at("00:00", "Mars/Olympus"),
            "`Mars/Olympus` is not a known IANA time zone",
        );
        check(
            Cooldown::Monthly {
                day: 0,
                at: "00:00".into(),
                time_zone: "UTC".into(),
            },
            "day 0 is not a day of the month (1 to 31)",
        );
        check(
            Cooldown::exponential(Duration::from_secs(1), 0.5, Duration::from_secs(2)),
            "exponential factor 0.5 must be at least 1",
        );
        check(
            Cooldown::exponential(Duration::from_secs(5), 2.0, Duration::from_secs(2)),
            "exponential max_ms is less than base_ms",
        );
    }
}
