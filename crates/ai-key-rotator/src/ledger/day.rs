//! The provider's day: usage is counted per calendar day in the time zone where the provider's
//! daily quotas reset (Gemini: midnight Pacific time; others: UTC), so "today" means what the
//! provider means by it, 23 or 25 hours long on DST days.

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;

use crate::classify::Family;
use crate::clock::Timestamp;
use crate::cooldown::calendar::to_jiff;

/// Where a provider's day begins and ends.
#[derive(Debug, Clone)]
pub(crate) struct DayZone {
    /// The IANA name (`UTC`, `America/Los_Angeles`), as `/status` shows it.
    name: String,
    tz: TimeZone,
}

/// The time zone a family's daily quotas reset in, when the configuration does not say.
pub(crate) fn default_zone(family: Family) -> &'static str {
    match family {
        // "Requests-per-day quotas reset at midnight Pacific time."
        Family::Gemini => "America/Los_Angeles",
        _ => "UTC",
    }
}

impl DayZone {
    /// The zone named `name` (an IANA name), or `None` when the bundled database has no such
    /// zone.
    pub(crate) fn named(name: &str) -> Option<DayZone> {
        let tz = TimeZone::get(name).ok()?;
        Some(DayZone {
            name: name.to_owned(),
            tz,
        })
    }

    pub(crate) fn utc() -> DayZone {
        DayZone {
            name: "UTC".into(),
            tz: TimeZone::UTC,
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The day `at` falls in, as a day number (see [`day_number`]).
    pub(crate) fn day(&self, at: Timestamp) -> i64 {
        to_jiff(at).map_or(0, |t| {
            day_number(t.to_zoned_datetime(self.tz.clone()).date())
        })
    }
}

/// A calendar date as days since 1970-01-01: the form stores keep (an integer column, a key
/// suffix), the same numbers the gateway wrote for UTC days before usage moved into the core.
pub(crate) fn day_number(date: Date) -> i64 {
    date.to_datetime(Time::midnight())
        .to_zoned_datetime(TimeZone::UTC)
        .map_or(0, |z| z.timestamp().as_second().div_euclid(86_400))
}

/// The date of a day number, as `YYYY-MM-DD`.
pub(crate) fn date_of(day: i64) -> String {
    jiff::Timestamp::from_second(day.saturating_mul(86_400))
        .map(|t| t.to_zoned_datetime(TimeZone::UTC).date().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cooldown::calendar::from_jiff;

    fn at(s: &str) -> Timestamp {
        from_jiff(s.parse().unwrap()).unwrap()
    }

    #[test]
    fn days_follow_the_zone() {
        let utc = DayZone::utc();
        let la = DayZone::named("America/Los_Angeles").unwrap();
        // 07:59 UTC on 30 November is still 29 November in Los Angeles (UTC-8).
        let t = at("2026-11-30T07:59:00Z");
        assert_eq!(date_of(utc.day(t)), "2026-11-30");
        assert_eq!(date_of(la.day(t)), "2026-11-29");
        assert_eq!(date_of(la.day(at("2026-11-30T08:00:00Z"))), "2026-11-30");
        // In summer (UTC-7) the Pacific day starts an hour earlier in UTC.
        assert_eq!(date_of(la.day(at("2026-07-01T06:59:00Z"))), "2026-06-30");
        assert_eq!(date_of(la.day(at("2026-07-01T07:00:00Z"))), "2026-07-01");
        assert_eq!(day_number("1970-01-02".parse().unwrap()), 1);
        assert!(DayZone::named("Mars/Olympus_Mons").is_none());
    }
}
