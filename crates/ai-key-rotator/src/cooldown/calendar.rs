//! Calendar arithmetic for resets stated in local time ("midnight Pacific", "the 1st of the
//! month"). Calendar days, not multiples of 24 hours: on DST days a local day is 23 or 25 hours
//! long, and a reset at local midnight moves with it.

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;

use crate::clock::Timestamp;

pub(crate) fn to_jiff(t: Timestamp) -> Option<jiff::Timestamp> {
    jiff::Timestamp::from_millisecond(i64::try_from(t.as_millis()).ok()?).ok()
}

pub(crate) fn from_jiff(ts: jiff::Timestamp) -> Option<Timestamp> {
    Some(Timestamp::from_millis(
        u64::try_from(ts.as_millisecond()).ok()?,
    ))
}

/// `date` at `at` in `tz`; a time that falls in a DST gap resolves to the instant after it.
fn instant(date: Date, at: Time, tz: &TimeZone) -> Option<Timestamp> {
    from_jiff(
        date.to_datetime(at)
            .to_zoned_datetime(tz.clone())
            .ok()?
            .timestamp(),
    )
}

/// The first `at` in `tz` strictly after `now`.
pub(crate) fn next_daily(now: Timestamp, at: Time, tz: &TimeZone) -> Option<Timestamp> {
    let mut date = to_jiff(now)?.to_zoned_datetime(tz.clone()).date();
    // Today's occurrence, or tomorrow's; a third day covers a time skipped by a DST gap.
    for _ in 0..3 {
        if let Some(t) = instant(date, at, tz).filter(|&t| t > now) {
            return Some(t);
        }
        date = date.tomorrow().ok()?;
    }
    None
}

/// The first `day` of a month at `at` in `tz` strictly after `now`; a `day` past the end of a
/// short month means its last day.
pub(crate) fn next_monthly(now: Timestamp, day: u8, at: Time, tz: &TimeZone) -> Option<Timestamp> {
    let today = to_jiff(now)?.to_zoned_datetime(tz.clone()).date();
    let mut first = today.first_of_month();
    for _ in 0..3 {
        let last = first.days_in_month();
        let d = i8::try_from(day).unwrap_or(i8::MAX).clamp(1, last);
        let date = first.with().day(d).build().ok()?;
        if let Some(t) = instant(date, at, tz).filter(|&t| t > now) {
            return Some(t);
        }
        first = first.last_of_month().tomorrow().ok()?;
    }
    None
}

/// Midnight in the time zone named `tz` after `now`.
pub(crate) fn next_midnight_in(now: Timestamp, tz: &str) -> Option<Timestamp> {
    next_daily(now, Time::midnight(), &TimeZone::get(tz).ok()?)
}

/// 00:00 UTC on the first day of the month after `now`'s month.
pub(crate) fn next_month_utc(now: Timestamp) -> Option<Timestamp> {
    next_monthly(now, 1, Time::midnight(), &TimeZone::UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        from_jiff(s.parse().unwrap()).unwrap()
    }

    fn la() -> TimeZone {
        TimeZone::get("America/Los_Angeles").unwrap()
    }

    #[test]
    fn midnight_pacific_across_dst_days() {
        // 2026-03-08: spring forward, a 23-hour day. From 10:00 PST (18:00Z) on the 7th, the
        // next midnight is 2026-03-08T00:00-08:00 = 08:00Z.
        assert_eq!(
            next_daily(ts("2026-03-07T18:00:00Z"), Time::midnight(), &la()),
            Some(ts("2026-03-08T08:00:00Z"))
        );
        // From noon on the 8th (now PDT, 19:00Z): midnight of the 9th is 07:00Z, only 23 hours
        // after the previous midnight.
        assert_eq!(
            next_daily(ts("2026-03-08T19:00:00Z"), Time::midnight(), &la()),
            Some(ts("2026-03-09T07:00:00Z"))
        );
        // 2026-11-01: fall back, a 25-hour day: midnight of the 1st is 07:00Z (PDT), midnight of
        // the 2nd is 08:00Z (PST).
        assert_eq!(
            next_daily(ts("2026-11-01T07:00:00Z"), Time::midnight(), &la()),
            Some(ts("2026-11-02T08:00:00Z"))
        );
    }

    #[test]
    fn a_time_skipped_by_the_dst_gap_resolves_after_it() {
        // 02:30 does not exist in Los Angeles on 2026-03-08.
        let at = Time::new(2, 30, 0, 0).unwrap();
        assert_eq!(
            next_daily(ts("2026-03-08T09:00:00Z"), at, &la()),
            Some(ts("2026-03-08T10:30:00Z"))
        );
    }

    #[test]
    fn monthly_handles_month_ends() {
        let utc = TimeZone::UTC;
        let m = Time::midnight();
        assert_eq!(
            next_monthly(ts("2026-01-31T12:00:00Z"), 1, m, &utc),
            Some(ts("2026-02-01T00:00:00Z"))
        );
        // Day 31 in February means its last day.
        assert_eq!(
            next_monthly(ts("2026-02-01T00:00:00Z"), 31, m, &utc),
            Some(ts("2026-02-28T00:00:00Z"))
        );
        assert_eq!(
            next_monthly(ts("2026-12-15T00:00:00Z"), 1, m, &utc),
            Some(ts("2027-01-01T00:00:00Z"))
        );
        // Exactly at the reset: the next one.
        assert_eq!(
            next_monthly(ts("2026-03-01T00:00:00Z"), 1, m, &utc),
            Some(ts("2026-04-01T00:00:00Z"))
        );
        assert_eq!(
            next_month_utc(ts("2026-08-14T09:00:00Z")),
            Some(ts("2026-09-01T00:00:00Z"))
        );
    }
}
