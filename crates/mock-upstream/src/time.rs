//! Wall-clock helpers for the timestamps and durations that appear in provider responses.
//!
//! The mock reads the system clock directly: it plays a remote server, whose clock the code
//! under test cannot control either. Only the formats matter here, and they are written by
//! hand because pulling a date crate in for two formats would cost more than it saves.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, now.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Converts days since 1970-01-01 to a (year, month, day) civil date.
///
/// This is Howard Hinnant's `civil_from_days`, exact for the proleptic Gregorian calendar.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Formats a Unix time as RFC 3339 in UTC, e.g. `2025-08-21T12:40:59Z`, the form of
/// Anthropic's `anthropic-ratelimit-*-reset` headers.
pub(crate) fn rfc3339(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// The first day of the month after the one containing `unix`, as `YYYY-MM-DD`: the day
/// Anthropic's monthly spend cap lifts.
pub(crate) fn first_of_next_month(unix: u64) -> String {
    let (y, m, _) = civil_from_days((unix / 86_400) as i64);
    let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    format!("{y:04}-{m:02}-01")
}

/// Formats a duration the way Go prints one (`3.202s`, `1m26.4s`, `6ms`, `0s`), as OpenAI and
/// Groq do in `x-ratelimit-reset-*` headers and in message texts.
pub(crate) fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".to_owned();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let h = ms / 3_600_000;
    let m = ms / 60_000 % 60;
    let s_ms = ms % 60_000;
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&decimal_seconds(s_ms));
    out.push('s');
    out
}

/// Formats a duration as a protobuf `Duration` in JSON (`"47s"`, `"45.837s"`), the form of
/// Gemini's `RetryInfo.retryDelay`.
pub(crate) fn proto_duration(d: Duration) -> String {
    format!("{}s", decimal_seconds(d.as_millis()))
}

/// Milliseconds as seconds with up to three decimals and no trailing zeros.
fn decimal_seconds(ms: u128) -> String {
    let whole = ms / 1000;
    let frac = ms % 1000;
    if frac == 0 {
        whole.to_string()
    } else {
        let frac = format!("{frac:03}");
        format!("{whole}.{}", frac.trim_end_matches('0'))
    }
}

/// Whole seconds, rounded up, so that a client honouring `retry-after` never comes back early.
pub(crate) fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_755_780_059), "2025-08-21T12:40:59Z");
        assert_eq!(first_of_next_month(1_755_780_059), "2025-09-01");
        assert_eq!(first_of_next_month(1_767_139_200), "2026-01-01"); // 2025-12-31
        for (ms, want) in [
            (0, "0s"),
            (6, "6ms"),
            (3202, "3.202s"),
            (86_400, "1m26.4s"),
            (37_025_700, "10h17m5.7s"),
            (360_000, "6m0s"),
        ] {
            assert_eq!(go_duration(Duration::from_millis(ms)), want);
        }
        assert_eq!(proto_duration(Duration::from_secs(47)), "47s");
        assert_eq!(proto_duration(Duration::from_millis(3250)), "3.25s");
        assert_eq!(ceil_secs(Duration::from_millis(3202)), 4);
        assert_eq!(ceil_secs(Duration::from_secs(3)), 3);
    }
}
