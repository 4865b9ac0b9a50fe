//! Property tests: no input panics, and a malformed wait is never trusted.

use ai_key_rotator::classify::{
    Family, LimitKind, LimitScope, Response, Verdict, classify, classify_stream_event,
};
use proptest::prelude::*;

use super::*;

fn family() -> impl Strategy<Value = Family> {
    proptest::sample::select(Family::ALL.to_vec())
}

const NAMES: [&str; 16] = [
    "retry-after",
    "retry-after-ms",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "x-tokenlimit-remaining",
    "anthropic-ratelimit-requests-remaining",
    "anthropic-ratelimit-requests-reset",
    "anthropic-ratelimit-tokens-remaining",
    "anthropic-ratelimit-tokens-reset",
    "anthropic-ratelimit-input-tokens-reset",
    "x-ratelimit-remaining-tokens-prompt",
    "x-unrelated",
];

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(
        family in family(),
        status in any::<u16>(),
        values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), NAMES.len()),
        body in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let headers: Vec<(&[u8], &[u8])> = NAMES.iter().map(|n| n.as_bytes()).zip(values.iter().map(Vec::as_slice)).collect();
        let verdict = classify(family, &Response::new(status, headers.as_slice(), &body), NOW);
        // Whatever came in, any time in the verdict is within 92 days of now.
        if let Some(t) = verdict.until() {
            prop_assert!(t >= NOW && t.saturating_duration_since(NOW).as_secs() <= 92 * 86_400);
        }
        let _ = classify_stream_event(family, Some("error"), &body, NOW);
        let _ = classify_stream_event(family, None, &body, NOW);
    }

    #[test]
    fn json_shaped_bodies_never_panic(
        family in family(),
        status in prop_oneof![Just(400u16), Just(401), Just(402), Just(403), Just(429), Just(503), Just(529)],
        body in r#"\{"error":\{"(message|code|type|status|details|metadata)":("[a-zA-Z_ :0-9.]{0,30}"|[0-9]{1,4}|\[\{"quotaId":"[A-Za-z-]{0,30}","retryDelay":"[0-9.]{0,12}s?"\}\]|null|\{\})\}\}"#,
    ) {
        let _ = classify(family, &Response::new(status, &[("retry-after", "1")], body.as_bytes()), NOW);
        let _ = classify_stream_event(family, Some("error"), body.as_bytes(), NOW);
    }

    #[test]
    // Values of 10^7 seconds and more are beyond the 31-day limit.
    fn malformed_retry_after_is_ignored(value in "[^0-9]*|-[0-9]{1,6}|[0-9]{1,3}[a-zA-Z,][a-zA-Z ,]*[0-9]*|[1-9][0-9]{7,29}") {
        let headers = [("retry-after", value.as_str())];
        let response = Response::new(429, &headers, b"");
        let verdict = classify(Family::OpenAiCompatible, &response, NOW);
        prop_assert_eq!(verdict, Verdict::RateLimited { until: None, scope: LimitScope::Key, limit: LimitKind::Unknown });
    }

    #[test]
    fn well_formed_retry_after_is_obeyed(secs in 0u64..=2_678_400) {
        let value = secs.to_string();
        let headers = [("retry-after", value.as_str())];
        let response = Response::new(429, &headers, b"");
        prop_assert_eq!(classify(Family::OpenAiCompatible, &response, NOW).until(), Some(Timestamp::from_secs(NOW.as_millis() / 1000 + secs)));
    }
}
