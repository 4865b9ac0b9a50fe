//! Parsers for every wait and time format providers use (see `provider-protocols.md`).
//!
//! All parsers take bytes or `&str`, never allocate on success, and return `None` for anything
//! they do not fully understand: a malformed wait is ignored, never trusted. Durations keep
//! nanosecond precision; [`Timestamp::saturating_add`] rounds sub-millisecond parts up, so a
//! cooldown never ends before the provider said it would.

use std::time::Duration;

use jiff::tz::TimeZone;

use crate::clock::Timestamp;

/// The longest wait any parser accepts: 31 days.
///
/// No provider limit we know of resets later than the first of next month, so a longer value is
/// much more likely a unit confusion (epoch milliseconds in a seconds header) or garbage than a
/// real instruction. Such a value is ignored rather than clamped: clamping would bench a key for a
/// month on the word of a broken header.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(31 * 24 * 3600);

/// Turns a relative wait into an absolute time, ignoring waits above [`MAX_WAIT`].
pub(crate) fn after(now: Timestamp, wait: Duration) -> Option<Timestamp> {
    (wait <= MAX_WAIT).then(|| now.saturating_add(wait))
}

/// Accepts an absolute time if it is at most [`MAX_WAIT`] ahead; a time in the past means
/// "now" (the limit has already reset).
pub(crate) fn at(now: Timestamp, t: Timestamp) -> Option<Timestamp> {
    (t.saturating_duration_since(now) <= MAX_WAIT).then_some(t.max(now))
}

fn trim(b: &[u8]) -> &[u8] {
    b.trim_ascii()
}

/// Parses a non-negative decimal number with an optional fraction (`20`, `0.5`, `45.837906927`)
/// scaled by `unit_nanos`, with nanosecond precision. Digits beyond nanoseconds are dropped after
/// rounding the result up, so precision loss never shortens a wait.
fn decimal(b: &[u8], unit_nanos: u128) -> Option<u128> {
    let (int, frac) = match b.iter().position(|&c| c == b'.') {
        Some(i) => (&b[..i], Some(&b[i + 1..])),
        None => (b, None),
    };
    if int.is_empty() && frac.is_none_or(|f| f.is_empty()) {
        return None;
    }
    if int.len() > 20 || !int.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut whole: u128 = 0;
    for &c in int {
        whole = whole * 10 + u128::from(c - b'0');
    }
    let mut total = whole.checked_mul(unit_nanos)?;
    if let Some(frac) = frac {
        if frac.is_empty() || !frac.iter().all(u8::is_ascii_digit) {
            return None;
        }
        // Fraction of one unit in units of 10^-18, then scaled: exact enough for any unit up to
        // hours and never rounds down.
        let mut num: u128 = 0;
        let mut den: u128 = 1;
        for &c in frac.iter().take(18) {
            num = num * 10 + u128::from(c - b'0');
            den *= 10;
        }
        let extra = frac.len() > 18 && frac[18..].iter().any(|&c| c != b'0');
        let mut part = (num * unit_nanos).div_ceil(den);
        if extra && (num * unit_nanos).is_multiple_of(den) {
            part += 1;
        }
        total = total.checked_add(part)?;
    }
    Some(total)
}

fn nanos_to_duration(n: u128) -> Option<Duration> {
    let secs = u64::try_from(n / 1_000_000_000).ok()?;
    Some(Duration::new(secs, (n % 1_000_000_000) as u32))
}

/// Seconds as an integer or a float (`retry-after: 20`, `0.5`). Signs, exponents, `inf` and
/// `NaN` are rejected.
pub(crate) fn seconds(b: &[u8]) -> Option<Duration> {
    nanos_to_duration(decimal(trim(b), 1_000_000_000)?)
}

/// Milliseconds as an integer or a float (`retry-after-ms: 1500`).
pub(crate) fn millis(b: &[u8]) -> Option<Duration> {
    nanos_to_duration(decimal(trim(b), 1_000_000)?)
}

/// A non-negative integer header (`x-ratelimit-remaining-tokens: 29000`). Azure's `-1` is not a
/// count and yields `None`.
pub(crate) fn count(b: &[u8]) -> Option<u64> {
    let b = trim(b);
    if b.is_empty() || b.len() > 19 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    b.iter().try_fold(0u64, |acc, &c| {
        acc.checked_mul(10)?.checked_add(u64::from(c - b'0'))
    })
}

/// The unit of a Go duration component and its length in nanoseconds.
fn go_unit(b: &[u8]) -> Option<(usize, u128)> {
    // Longest units first so `ms` is not read as `m` followed by garbage.
    const UNITS: [(&[u8], u128); 8] = [
        (b"ns", 1),
        (b"us", 1_000),
        ("µs".as_bytes(), 1_000),
        ("μs".as_bytes(), 1_000),
        (b"ms", 1_000_000),
        (b"h", 3_600_000_000_000),
        (b"m", 60_000_000_000),
        (b"s", 1_000_000_000),
    ];
    UNITS
        .iter()
        .find(|(u, _)| b.starts_with(u))
        .map(|&(u, n)| (u.len(), n))
}

/// Parses the longest prefix of `b` that is a Go-style duration (`1s`, `6m0s`, `20ms`,
/// `2m59.56s`, `10h17m5.7s`) and returns it with the number of bytes read. A bare `0` is zero.
fn go_duration_prefix(b: &[u8]) -> Option<(Duration, usize)> {
    if b.first() == Some(&b'0') && !b.get(1).is_some_and(|c| c.is_ascii_digit() || *c == b'.') {
        // Go prints a zero duration as "0"; a "0s" is handled below.
        if go_unit(&b[1..]).is_none() {
            return Some((Duration::ZERO, 1));
        }
    }
    let mut i = 0;
    let mut total: u128 = 0;
    let mut parts = 0;
    loop {
        let start = i;
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
            i += 1;
        }
        if i == start {
            break;
        }
        let Some((ulen, unit)) = go_unit(&b[i..]) else {
            i = start;
            break;
        };
        let Some(n) = decimal(&b[start..i], unit) else {
            i = start;
            break;
        };
        total = total.checked_add(n)?;
        i += ulen;
        parts += 1;
    }
    (parts > 0).then_some(())?;
    Some((nanos_to_duration(total)?, i))
}

/// A Go-style duration, the whole value (`x-ratelimit-reset-tokens: 6m0s`).
pub(crate) fn go_duration(b: &[u8]) -> Option<Duration> {
    let b = trim(b);
    match go_duration_prefix(b)? {
        (d, n) if n == b.len() => Some(d),
        _ => None,
    }
}

/// A protobuf `Duration` in its JSON form (`"47s"`, `"45.837906927s"`): seconds with an `s`.
pub(crate) fn protobuf_duration(s: &str) -> Option<Duration> {
    seconds(s.trim().strip_suffix('s')?.as_bytes())
}

/// An RFC 3339 timestamp (`2025-08-21T12:40:59Z`), as Anthropic's reset headers send.
pub(crate) fn rfc3339(b: &[u8]) -> Option<Timestamp> {
    let s = std::str::from_utf8(trim(b)).ok()?;
    // jiff's parser also accepts a few RFC 9557 extensions; a bracketed annotation is never sent
    // by a provider, so reject it rather than widen what we trust.
    if s.is_empty() || s.contains('[') {
        return None;
    }
    let ts: jiff::Timestamp = s.parse().ok()?;
    Some(Timestamp::from_millis(
        u64::try_from(ts.as_millisecond()).ok()?,
    ))
}

/// An IMF-fixdate (`Wed, 21 Oct 2026 07:28:00 GMT`), the HTTP-date form of `retry-after`.
pub(crate) fn http_date(b: &[u8]) -> Option<Timestamp> {
    let s = std::str::from_utf8(trim(b)).ok()?;
    let t = httpdate::parse_http_date(s).ok()?;
    Some(Timestamp::from_system_time(t))
}

/// Epoch milliseconds (`1791331200000`), OpenRouter's `X-RateLimit-Reset`.
pub(crate) fn epoch_millis(b: &[u8]) -> Option<Timestamp> {
    count(b).map(Timestamp::from_millis)
}

/// Finds a wait written in a message: "Please try again in 18.642s", "Please retry in
/// 38.922534355s", "try again in 1m26.4s", "Please retry after 6 seconds".
///
/// Only the phrases providers use are recognised, so a number elsewhere in the message (a limit,
/// a token count) is never mistaken for a wait.
pub(crate) fn in_text(msg: &str) -> Option<Duration> {
    const NEEDLES: [&[u8]; 4] = [
        b"try again in ",
        b"retry in ",
        b"retry after ",
        b"try again after ",
    ];
    let b = msg.as_bytes();
    for needle in NEEDLES {
        let mut from = 0;
        while let Some(pos) = find_ignore_case(&b[from..], needle) {
            let rest = &b[from + pos + needle.len()..];
            if let Some(d) = text_wait(rest) {
                return Some(d);
            }
            from += pos + needle.len();
        }
    }
    None
}

/// A wait at the start of `rest`: a Go duration, or a number followed by a unit word.
fn text_wait(rest: &[u8]) -> Option<Duration> {
    let num_len = rest
        .iter()
        .position(|c| !(c.is_ascii_digit() || *c == b'.'))
        .unwrap_or(rest.len());
    // "6 seconds", "1.5 minutes", "500 ms": a number, a space, a unit word.
    if num_len > 0 {
        let num = rest[..num_len]
            .strip_suffix(b".")
            .unwrap_or(&rest[..num_len]);
        let after = rest[num_len..]
            .strip_prefix(b" ")
            .unwrap_or(&rest[num_len..]);
        const WORDS: [(&[u8], u128); 6] = [
            (b"millisecond", 1_000_000),
            (b"ms", 1_000_000),
            (b"sec", 1_000_000_000),
            (b"min", 60_000_000_000),
            (b"hour", 3_600_000_000_000),
            (b"hr", 3_600_000_000_000),
        ];
        if after.len() < rest.len() - num_len {
            for (w, unit) in WORDS {
                if starts_with_ignore_case(after, w) {
                    return nanos_to_duration(decimal(num, unit)?);
                }
            }
        }
    }
    let (d, _) = go_duration_prefix(rest)?;
    Some(d)
}

pub(crate) fn find_ignore_case(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    (0..=hay.len() - needle.len()).find(|&i| hay[i..i + needle.len()].eq_ignore_ascii_case(needle))
}

pub(crate) fn contains_ignore_case(hay: &str, needle: &str) -> bool {
    find_ignore_case(hay.as_bytes(), needle.as_bytes()).is_some()
}

fn starts_with_ignore_case(hay: &[u8], prefix: &[u8]) -> bool {
    hay.len() >= prefix.len() && hay[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// Anthropic's "You will regain access on 2026-09-01 at 00:00 UTC".
pub(crate) fn regain_access_date(msg: &str) -> Option<Timestamp> {
    let b = msg.as_bytes();
    let pos = find_ignore_case(b, b"regain access on ")?;
    let rest = std::str::from_utf8(&b[pos + 17..]).ok()?;
    let date: jiff::civil::Date = rest.get(..10)?.parse().ok()?;
    let mut time = jiff::civil::Time::midnight();
    if let Some(t) = rest[10..].strip_prefix(" at ")
        && let Some(hm) = t.get(..5)
        && t[5..].trim_start().starts_with("UTC")
    {
        time = hm.parse().ok()?;
    }
    let ts = date
        .to_datetime(time)
        .to_zoned_datetime(TimeZone::UTC)
        .ok()?
        .timestamp();
    crate::cooldown::calendar::from_jiff(ts)
}

/// Midnight America/Los_Angeles after `now`: Gemini's per-day quotas reset then.
pub(crate) fn next_pacific_midnight(now: Timestamp) -> Option<Timestamp> {
    crate::cooldown::calendar::next_midnight_in(now, "America/Los_Angeles")
}

/// Midnight UTC after `now`.
pub(crate) fn next_utc_midnight(now: Timestamp) -> Timestamp {
    let day = 86_400_000;
    Timestamp::from_millis((now.as_millis() / day + 1).saturating_mul(day))
}

pub(crate) use crate::cooldown::calendar::next_month_utc;

/// A minute after `now`: long enough for a per-minute window to have room again whether the
/// provider counts in fixed calendar minutes or in a rolling window.
pub(crate) fn next_minute(now: Timestamp) -> Timestamp {
    now.saturating_add(Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let ms = |s: &str| go_duration(s.as_bytes()).map(|d| d.as_nanos());
        assert_eq!(ms("1s"), Some(1_000_000_000));
        assert_eq!(ms("6m0s"), Some(360_000_000_000));
        assert_eq!(ms("20ms"), Some(20_000_000));
        assert_eq!(ms("2m59.56s"), Some(179_560_000_000));
        assert_eq!(ms("10h17m5.7s"), Some(37_025_700_000_000));
        assert_eq!(ms("0"), Some(0));
        assert_eq!(ms("1.5"), None);
        assert_eq!(ms("s"), None);
        assert_eq!(ms("-1s"), None);
        assert_eq!(ms("1s garbage"), None);
    }

    #[test]
    fn text_waits() {
        let w = |s: &str| in_text(s).map(|d| d.as_millis());
        assert_eq!(w("Please try again in 18.642s. Visit"), Some(18_642));
        assert_eq!(w("Please retry after 6 seconds."), Some(6_000));
        assert_eq!(w("try again in 1m26.4s"), Some(86_400));
        assert_eq!(w("Limit 30000, Used 29000"), None);
    }
}
