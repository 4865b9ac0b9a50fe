//! Cooldown policies: how long a credential rests after it was marked exhausted.
//!
//! A policy only computes *until when*; applying it (and never shortening a running cooldown)
//! is the rotator's job, in one place.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;

const DAY_MS: u64 = 86_400_000;

/// A provider's cooldown policy.
///
/// In configuration files it is written the way the original library wrote it:
/// `{ type = "fixed", duration_ms = 60000 }` or `{ type = "midnight-utc" }` (the default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
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
}

impl Cooldown {
    /// A fixed cooldown of `d` (rounded up to whole milliseconds).
    pub fn fixed(d: Duration) -> Self {
        let ms = u64::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX);
        Cooldown::Fixed { duration_ms: ms }
    }

    /// Whether the policy can be applied: a zero-length fixed cooldown would hand a key that
    /// just failed straight back out, so it is rejected when the rotator is built.
    pub(crate) fn is_valid(&self) -> bool {
        match self {
            Cooldown::Fixed { duration_ms } => *duration_ms > 0,
            Cooldown::MidnightUtc => true,
        }
    }

    /// The end of a cooldown that starts at `now`.
    pub fn until(&self, now: Timestamp) -> Timestamp {
        match self {
            Cooldown::Fixed { duration_ms } => {
                Timestamp::from_millis(now.as_millis().saturating_add(*duration_ms))
            }
            Cooldown::MidnightUtc => {
                // The next midnight strictly after `now`: a mark at exactly 00:00 rests a full
                // day, because the quota that just failed is the new day's.
                let next = (now.as_millis() / DAY_MS + 1).saturating_mul(DAY_MS);
                Timestamp::from_millis(next)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(c.is_valid());
        assert!(!Cooldown::fixed(Duration::ZERO).is_valid());
        assert_eq!(
            Cooldown::fixed(Duration::from_micros(1)),
            Cooldown::Fixed { duration_ms: 1 }
        );
    }
}
