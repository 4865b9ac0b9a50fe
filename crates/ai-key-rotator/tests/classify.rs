//! The response classifier against every response in `provider-protocols.md`, plus unknown and
//! malformed input. Tables live in `classify/`; each row is one response and its verdict.

#[path = "classify/formats.rs"]
mod formats;
#[path = "classify/properties.rs"]
mod properties;
#[path = "classify/providers.rs"]
mod providers;
#[path = "classify/stream.rs"]
mod stream;

use std::time::Duration;

use ai_key_rotator::Timestamp;
use ai_key_rotator::classify::{
    Family, InvalidKeyCause, LimitKind, LimitScope, Response, Usage, Verdict, classify,
};

/// The tests' "now": Saturday 2026-08-15T12:00:00Z (05:00 in Los Angeles).
pub(crate) const NOW: Timestamp = Timestamp::from_secs(1_786_795_200);

/// One response as the classifier sees it.
pub(crate) struct Input {
    pub(crate) family: Family,
    pub(crate) status: u16,
    pub(crate) headers: Vec<(&'static str, &'static str)>,
    pub(crate) body: &'static str,
    pub(crate) now: Timestamp,
}

/// A response from `family` with `status`, headers and body, received at [`NOW`].
pub(crate) fn resp(
    family: Family,
    status: u16,
    headers: &[(&'static str, &'static str)],
    body: &'static str,
) -> Input {
    Input {
        family,
        status,
        headers: headers.to_vec(),
        body,
        now: NOW,
    }
}

impl Input {
    pub(crate) fn at(mut self, now: Timestamp) -> Input {
        self.now = now;
        self
    }
}

/// Classifies `input` and compares with `expected`; returns a description of a mismatch.
pub(crate) fn check(input: &Input, expected: &Verdict) -> Result<(), String> {
    let response = Response::new(
        input.status,
        input.headers.as_slice(),
        input.body.as_bytes(),
    );
    let got = classify(input.family, &response, input.now);
    if &got == expected {
        Ok(())
    } else {
        Err(format!(
            "{} {} {:?} {}\n    expected {expected:?}\n    got      {got:?}",
            input.family,
            input.status,
            input.headers,
            &input.body[..input.body.len().min(120)]
        ))
    }
}

/// Runs a whole table and reports every failing row, not just the first.
pub(crate) fn check_all(rows: Vec<(Input, Verdict)>) {
    let failures: Vec<String> = rows.iter().filter_map(|(i, e)| check(i, e).err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

// Shorthands for the expected verdicts.

pub(crate) fn secs(s: f64) -> Timestamp {
    NOW.saturating_add(Duration::from_secs_f64(s))
}

pub(crate) fn ms(n: u64) -> Timestamp {
    Timestamp::from_millis(NOW.as_millis() + n)
}

/// A UTC civil time as a timestamp, computed independently of the crate's calendar code.
pub(crate) fn utc(y: i64, m: i64, d: i64, h: u64, min: u64, s: u64) -> Timestamp {
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe - 719_468) as u64;
    Timestamp::from_secs(days * 86_400 + h * 3600 + min * 60 + s)
}

pub(crate) fn rate(until: Option<Timestamp>, scope: LimitScope, limit: LimitKind) -> Verdict {
    Verdict::RateLimited {
        until,
        scope,
        limit,
    }
}

pub(crate) fn quota(until: Option<Timestamp>, scope: LimitScope, limit: LimitKind) -> Verdict {
    Verdict::QuotaExhausted {
        until,
        scope,
        limit,
    }
}

pub(crate) fn invalid(cause: InvalidKeyCause) -> Verdict {
    Verdict::InvalidKey { cause }
}

pub(crate) fn ok(
    remaining_requests: Option<u64>,
    remaining_tokens: Option<u64>,
    requests_reset: Option<Timestamp>,
    tokens_reset: Option<Timestamp>,
) -> Verdict {
    Verdict::Ok(Usage {
        remaining_requests,
        remaining_tokens,
        requests_reset,
        tokens_reset,
    })
}

pub(crate) const OK_EMPTY: Verdict = Verdict::Ok(Usage {
    remaining_requests: None,
    remaining_tokens: None,
    requests_reset: None,
    tokens_reset: None,
});

#[test]
fn verdict_never_contains_body_text() {
    // Canary: OpenAI's 401 echoes the key it was given.
    let body = r#"{"error":{"message":"Incorrect API key provided: sk-proj-CANARYc4n4ry0123456789. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","code":"invalid_api_key","param":null}}"#;
    for family in Family::ALL {
        for status in [400, 401, 403, 429, 500] {
            let response = Response::new(status, &[("x-test", "1")], body.as_bytes());
            let verdict = classify(family, &response, NOW);
            let debug = format!("{verdict:?} {response:?}");
            let json = serde_json::to_string(&verdict).unwrap();
            assert!(!debug.contains("CANARY"), "{family} {status}: {debug}");
            assert!(!json.contains("CANARY"), "{family} {status}: {json}");
        }
    }
}

#[test]
fn verdicts_round_trip_through_serde() {
    let verdicts = [
        ok(Some(1), Some(2), Some(secs(1.0)), None),
        rate(
            Some(secs(3.0)),
            LimitScope::Shared,
            LimitKind::TokensPerMinute,
        ),
        quota(None, LimitScope::Key, LimitKind::Monthly),
        invalid(InvalidKeyCause::Leaked),
        Verdict::Overloaded { retry_after: None },
        Verdict::ServerError {
            retry_after: Some(NOW),
        },
        Verdict::ClientError,
    ];
    for v in verdicts {
        let json = serde_json::to_string(&v).unwrap();
        assert!(json.starts_with(r#"{"kind":""#), "{json}");
        assert_eq!(serde_json::from_str::<Verdict>(&json).unwrap(), v, "{json}");
    }
    assert_eq!(
        serde_json::to_string(&rate(
            Some(NOW),
            LimitScope::Shared,
            LimitKind::RequestsPerDay
        ))
        .unwrap(),
        r#"{"kind":"rate-limited","until":1786795200000,"scope":"shared","limit":"requests-per-day"}"#
    );
    assert_eq!(
        serde_json::to_string(&Verdict::ClientError).unwrap(),
        r#"{"kind":"client-error"}"#
    );
}

#[test]
fn verdict_helpers() {
    let rl = rate(Some(NOW), LimitScope::Key, LimitKind::TokensPerMinute);
    assert!(rl.blames_key() && !rl.is_success());
    assert_eq!(rl.reason(), "rate limited (tokens per minute)");
    assert!(quota(None, LimitScope::Shared, LimitKind::Credits).blames_key());
    assert!(invalid(InvalidKeyCause::Invalid).blames_key());
    for v in [
        Verdict::Overloaded { retry_after: None },
        Verdict::ServerError { retry_after: None },
        Verdict::ClientError,
        OK_EMPTY,
    ] {
        assert!(!v.blames_key(), "{v:?}");
    }
    assert!(OK_EMPTY.is_success());
    assert_eq!(
        quota(None, LimitScope::Shared, LimitKind::Monthly).reason(),
        "quota exhausted (monthly cap)"
    );
    assert_eq!(
        invalid(InvalidKeyCause::Leaked).reason(),
        "key reported as leaked"
    );
}

#[test]
fn usage_exhausted_until_takes_the_latest_spent_limit() {
    let usage = |rr, rt, qr, tr| Usage {
        remaining_requests: rr,
        remaining_tokens: rt,
        requests_reset: qr,
        tokens_reset: tr,
    };
    let table = [
        (
            usage(Some(0), Some(0), Some(secs(5.0)), Some(secs(60.0))),
            Some(secs(60.0)),
        ),
        (
            usage(Some(0), Some(10), Some(secs(5.0)), Some(secs(60.0))),
            Some(secs(5.0)),
        ),
        (
            usage(Some(3), Some(10), Some(secs(5.0)), Some(secs(60.0))),
            None,
        ),
        (usage(Some(0), None, None, None), None),
        (usage(None, None, None, None), None),
    ];
    for (u, expected) in table {
        assert_eq!(u.exhausted_until(), expected, "{u:?}");
    }
}

#[test]
fn family_names() {
    let names = [
        (Family::OpenAi, "openai"),
        (Family::AzureOpenAi, "azure-openai"),
        (Family::Anthropic, "anthropic"),
        (Family::Gemini, "gemini"),
        (Family::Groq, "groq"),
        (Family::Mistral, "mistral"),
        (Family::Cohere, "cohere"),
        (Family::OpenRouter, "openrouter"),
        (Family::DeepSeek, "deepseek"),
        (Family::Xai, "xai"),
        (Family::Together, "together"),
        (Family::Fireworks, "fireworks"),
        (Family::OpenAiCompatible, "openai-compatible"),
    ];
    assert_eq!(names.len(), Family::ALL.len());
    for (family, name) in names {
        assert_eq!(family.to_string(), name);
        assert_eq!(name.parse::<Family>().unwrap(), family);
        assert_eq!(
            serde_json::to_string(&family).unwrap(),
            format!("\"{name}\"")
        );
        assert_eq!(
            serde_json::from_str::<Family>(&format!("\"{name}\"")).unwrap(),
            family
        );
    }
    let err = "OpenAI".parse::<Family>().unwrap_err();
    assert_eq!(err.name(), "OpenAI");
    assert!(
        err.to_string()
            .starts_with("unknown provider family `OpenAI` (expected one of: openai, "),
        "{err}"
    );
    assert!(serde_json::from_str::<Family>("\"open-ai\"").is_err());
}
