//! Time: a [`Timestamp`] in Unix milliseconds and the [`Clock`] that reads it.
//!
//! Every place in the crate that needs "now" asks an injected [`Clock`], so tests move a
//! [`FakeClock`] forward instead of sleeping. Wall time is the right base here: providers state
//! cooldowns as absolute times ("resets at 00:00 UTC", an RFC 3339 reset header) as often as
//! durations, and persisted or shared state must mean the same thing in another process.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A point in wall time, in milliseconds since the Unix epoch (UTC).
///
/// Millisecond resolution is what providers give (their finest reset unit is `20ms`), and a
/// `u64` of milliseconds fits one atomic word, which keeps the per-key state on the
/// [`get_key`](crate::KeyRotator::get_key) path lock-free.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The Unix epoch, 1970-01-01T00:00:00Z.
    pub const UNIX_EPOCH: Timestamp = Timestamp(0);

    /// The latest representable time. Used as "never" where a value must be a time.
    pub const MAX: Timestamp = Timestamp(MAX_MILLIS);

    /// A timestamp from milliseconds since the Unix epoch, saturating at [`Timestamp::MAX`].
    pub const fn from_millis(ms: u64) -> Self {
        if ms > MAX_MILLIS {
            Timestamp(MAX_MILLIS)
        } else {
            Timestamp(ms)
        }
    }

    /// A timestamp from whole seconds since the Unix epoch, saturating.
    pub const fn from_secs(secs: u64) -> Self {
        Self::from_millis(secs.saturating_mul(1000))
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// This time as a [`SystemTime`].
    pub fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.0)
    }

    /// A [`SystemTime`] as a timestamp, truncated to milliseconds; times before the epoch
    /// become the epoch.
    pub fn from_system_time(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Self::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            Err(_) => Self::UNIX_EPOCH,
        }
    }

    /// This time plus `d`, saturating at [`Timestamp::MAX`]. Sub-millisecond parts of `d` are
    /// rounded up, so a cooldown never ends before the time it was asked for.
    pub fn saturating_add(self, d: Duration) -> Self {
        let ms = d.as_nanos().div_ceil(1_000_000);
        let ms = u64::try_from(ms).unwrap_or(u64::MAX);
        Self::from_millis(self.0.saturating_add(ms))
    }

    /// The time from `earlier` to `self`, or zero when `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

/// Keeps two high values of the per-key atomic word free for the "disabled" and "removed"
/// markers (see `pool::slot`), and is still year 584 million.
const MAX_MILLIS: u64 = u64::MAX - 16;

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({})", self)
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with milliseconds, e.g. `2026-11-25T09:30:00.000Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0;
        let secs = ms / 1000;
        let days = secs / 86_400;
        let rem = secs % 86_400;
        let (y, m, d) = civil_from_days(days as i64);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60,
            ms % 1000
        )
    }
}

/// Converts days since 1970-01-01 to a proleptic Gregorian (year, month, day).
///
/// Howard Hinnant's `civil_from_days`: exact for every day a `Timestamp` can hold, and small
/// enough that formatting a status line needs no calendar crate.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A source of wall time.
///
/// # Contract
/// `now` should not go backwards by much; if it does (an NTP step), cooldowns measured from it
/// are still correct relative to the clock, because every comparison in the crate reads the same
/// clock. Implementations must be cheap: the rotator reads the clock on every state change and
/// whenever it meets a key that was marked, though never for a key that was not.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_system_time(SystemTime::now())
    }
}

/// A clock that only moves when told to, for tests.
///
/// Clones share one time, so a test keeps a clone and advances the rotator's clock from outside.
///
/// ```
/// use ai_key_rotator::{Clock, FakeClock, Timestamp};
/// use std::time::Duration;
///
/// let clock = FakeClock::new(Timestamp::from_secs(1_000));
/// clock.advance(Duration::from_millis(1_500));
/// assert_eq!(clock.now(), Timestamp::from_millis(1_001_500));
/// ```
#[derive(Debug, Clone)]
pub struct FakeClock {
    now: Arc<AtomicU64>,
}

impl FakeClock {
    /// A fake clock standing at `start`.
    pub fn new(start: Timestamp) -> Self {
        FakeClock {
            now: Arc::new(AtomicU64::new(start.as_millis())),
        }
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        let now = self.now();
        self.set(now.saturating_add(d));
    }

    /// Sets the clock to `t`, forwards or backwards.
    pub fn set(&self, t: Timestamp) {
        self.now.store(t.as_millis(), Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.now.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_rfc3339_utc() {
        assert_eq!(
            Timestamp::UNIX_EPOCH.to_string(),
            "1970-01-01T00:00:00.000Z"
        );
        assert_eq!(
            Timestamp::from_millis(1_791_331_200_123).to_string(),
            "2026-10-07T00:00:00.123Z"
        );
        // A leap day.
        assert_eq!(
            Timestamp::from_secs(1_709_164_800).to_string(),
            "2024-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn add_rounds_sub_millisecond_parts_up_and_saturates() {
        let t = Timestamp::from_millis(10);
        assert_eq!(
            t.saturating_add(Duration::from_micros(1)),
            Timestamp::from_millis(11)
        );
        assert_eq!(t.saturating_add(Duration::MAX), Timestamp::MAX);
        assert_eq!(Timestamp::from_millis(u64::MAX), Timestamp::MAX);
    }
}
