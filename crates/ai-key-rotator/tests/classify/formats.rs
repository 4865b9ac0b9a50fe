//! Every time format in the reference, and malformed values that must be ignored.

use ai_key_rotator::classify::Family::*;
use ai_key_rotator::classify::LimitKind::*;
use ai_key_rotator::classify::LimitScope::*;
use ai_key_rotator::classify::{Response, classify};

use super::*;

/// A 429 from an OpenAI-compatible server with only `headers`: its `until` comes from them.
fn wait_header(headers: &[(&'static str, &'static str)]) -> Input {
    resp(OpenAiCompatible, 429, headers, "")
}

#[test]
fn retry_headers() {
    check_all(vec![
        (
            wait_header(&[("retry-after", "20")]),
            rate(Some(secs(20.0)), Key, Unknown),
        ),
        (
            wait_header(&[("retry-after", "0.5")]),
            rate(Some(ms(500)), Key, Unknown),
        ),
        (
            wait_header(&[("retry-after", "0")]),
            rate(Some(NOW), Key, Unknown),
        ),
        (
            wait_header(&[("Retry-After", "  7 ")]),
            rate(Some(secs(7.0)), Key, Unknown),
        ),
        (
            wait_header(&[("retry-after-ms", "1500")]),
            rate(Some(ms(1500)), Key, Unknown),
        ),
        // Sub-millisecond parts round up: a cooldown never ends early.
        (
            wait_header(&[("retry-after-ms", "1500.2")]),
            rate(Some(ms(1501)), Key, Unknown),
        ),
        (
            wait_header(&[("retry-after", "0.0001")]),
            rate(Some(ms(1)), Key, Unknown),
        ),
        // retry-after-ms first, as the SDKs do.
        (
            wait_header(&[("retry-after", "20"), ("retry-after-ms", "250")]),
            rate(Some(ms(250)), Key, Unknown),
        ),
        (
            wait_header(&[("retry-after", "Sat, 15 Aug 2026 12:00:20 GMT")]),
            rate(Some(secs(20.0)), Key, Unknown),
        ),
        // An HTTP-date in the past: retry now.
        (
            wait_header(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]),
            rate(Some(NOW), Key, Unknown),
        ),
        // The longest accepted wait, 31 days.
        (
            wait_header(&[("retry-after", "2678400")]),
            rate(Some(secs(2_678_400.0)), Key, Unknown),
        ),
    ]);
}

#[test]
fn malformed_wait_headers_are_ignored() {
    let none = rate(None, Key, Unknown);
    let mut rows: Vec<(Input, Verdict)> = [
        "-5",
        "abc",
        "",
        " ",
        "1e3",
        "inf",
        "NaN",
        "+5",
        "5 s",
        "0x10",
        "1.2.3",
        ".",
        "20,5",
        "2678401",
        "99999999999999999999999999",
        "Wed, 21 Oct 2126 07:28:00 GMT",
        "Mon, 32 Foo 2026 99:00:00 GMT",
    ]
    .into_iter()
    .map(|v| (wait_header(&[("retry-after", v)]), none.clone()))
    .collect();
    rows.extend([
        (wait_header(&[("retry-after-ms", "-1")]), none.clone()),
        (wait_header(&[("retry-after-ms", "soon")]), none.clone()),
        // A malformed retry-after-ms falls through to retry-after.
        (
            wait_header(&[("retry-after-ms", "abc"), ("retry-after", "2")]),
            rate(Some(secs(2.0)), Key, Unknown),
        ),
        // Malformed reset and count headers are ignored too.
        (
            resp(
                OpenAi,
                200,
                &[
                    ("x-ratelimit-remaining-tokens", "-1"),
                    ("x-ratelimit-reset-tokens", "-1s"),
                    ("x-ratelimit-remaining-requests", "1.5"),
                    ("x-ratelimit-reset-requests", "forever"),
                ],
                "",
            ),
            OK_EMPTY,
        ),
        (
            resp(
                OpenAi,
                200,
                &[
                    ("x-ratelimit-remaining-requests", "99999999999999999999"),
                    ("x-ratelimit-reset-requests", "999999h"),
                ],
                "",
            ),
            OK_EMPTY,
        ),
        (
            resp(
                Anthropic,
                200,
                &[
                    ("anthropic-ratelimit-requests-remaining", "x"),
                    ("anthropic-ratelimit-requests-reset", "2026-13-45T99:00:00Z"),
                ],
                "",
            ),
            OK_EMPTY,
        ),
        (
            resp(
                OpenRouter,
                200,
                &[("X-RateLimit-Reset", "-1786795230000")],
                "",
            ),
            OK_EMPTY,
        ),
        // Epoch milliseconds more than 31 days ahead are not trusted.
        (
            resp(
                OpenRouter,
                200,
                &[("X-RateLimit-Reset", "9786795230000")],
                "",
            ),
            OK_EMPTY,
        ),
        (
            resp(Together, 200, &[("x-ratelimit-reset", "soon")], ""),
            OK_EMPTY,
        ),
    ]);
    check_all(rows);
}

#[test]
fn non_utf8_header_values_are_ignored() {
    let headers: [(&[u8], &[u8]); 3] = [
        (b"retry-after", b"\xff\xfe20"),
        (b"X-RATELIMIT-REMAINING-TOKENS", b"12"),
        (
            b"anthropic-ratelimit-tokens-reset",
            b"2026-08-15T12:00:\xc3",
        ),
    ];
    let got = classify(
        OpenAiCompatible,
        &Response::new(429, &headers, b"\xff\xff"),
        NOW,
    );
    assert_eq!(got, rate(None, Key, Unknown));
    let got = classify(OpenAi, &Response::new(200, &headers, b""), NOW);
    assert_eq!(got, ok(None, Some(12), None, None));
}

#[test]
fn go_durations_in_reset_headers() {
    let table: [(&'static str, Timestamp); 9] = [
        ("1s", secs(1.0)),
        ("6m0s", secs(360.0)),
        ("20ms", ms(20)),
        ("12ms", ms(12)),
        ("2m59.56s", ms(179_560)),
        ("7.66s", ms(7_660)),
        ("10h17m5.7s", ms(37_025_700)),
        ("1h", secs(3600.0)),
        ("1.5", ms(1_500)),
    ];
    check_all(
        table
            .into_iter()
            .map(|(v, t)| {
                (
                    resp(Groq, 200, &[("x-ratelimit-reset-tokens", v)], ""),
                    ok(None, None, None, Some(t)),
                )
            })
            .collect(),
    );
}

#[test]
fn waits_in_message_text() {
    let body = |msg: &str| -> &'static str {
        Box::leak(format!(r#"{{"error":{{"message":"{msg}"}}}}"#).into_boxed_str())
    };
    let table: [(&str, Option<Timestamp>); 10] = [
        ("Please try again in 18.642s.", Some(ms(18_642))),
        ("Please retry in 38.922534355s.", Some(ms(38_923))),
        ("Please try again in 1m26.4s.", Some(ms(86_400))),
        ("Please retry after 6 seconds.", Some(secs(6.0))),
        ("Please retry in 10h17m5.7s.", Some(ms(37_025_700))),
        ("try again in 11m0.528s", Some(ms(660_528))),
        ("Please try again in 20ms.", Some(ms(20))),
        ("PLEASE TRY AGAIN IN 2 MINUTES", Some(secs(120.0))),
        ("Limit 30000, Used 29000, Requested 1601.", None),
        ("Please try again in a moment.", None),
    ];
    check_all(
        table
            .into_iter()
            .map(|(m, t)| {
                (
                    resp(OpenAiCompatible, 429, &[], body(m)),
                    rate(t, Key, Unknown),
                )
            })
            .collect(),
    );
}

#[test]
fn oversized_body_is_read_as_a_prefix() {
    let mut body = br#"{"error":{"message":"x","code":"insufficient_quota"}}"#.to_vec();
    body.extend(std::iter::repeat_n(b' ', 1 << 20));
    let got = classify(OpenAi, &Response::new(429, &[("a", "b")], &body), NOW);
    // Past 64 KiB the prefix still ends with whitespace, so the JSON parses.
    assert_eq!(got, quota(None, Shared, Credits));
    let mut long = br#"{"error":{"message":""#.to_vec();
    long.extend(std::iter::repeat_n(b'a', 1 << 20));
    long.extend(br#"","code":"insufficient_quota"}}"#);
    let got = classify(OpenAi, &Response::new(429, &[("a", "b")], &long), NOW);
    assert_eq!(got, rate(None, Shared, Unknown));
}

#[cfg(feature = "http")]
#[test]
fn http_header_map() {
    let mut map = http::HeaderMap::new();
    map.insert(
        "x-ratelimit-remaining-requests",
        http::HeaderValue::from_static("3"),
    );
    map.insert("Retry-After", http::HeaderValue::from_static("9"));
    assert_eq!(
        classify(OpenAi, &Response::new(200, &map, b""), NOW),
        ok(Some(3), None, None, None)
    );
    assert_eq!(
        classify(OpenAiCompatible, &Response::new(429, &map, b""), NOW),
        rate(Some(secs(9.0)), Key, Unknown)
    );
}
