//! Client-side budgets with the fake clock.

use std::time::Duration;

use ai_key_rotator::{
    AcquireError, AcquireOptions, Budget, CredentialConfig, KeyRotator, ProviderConfig,
};

use crate::support::{START, clock};

#[test]
fn a_requests_per_minute_budget_allows_no_double_burst_at_a_minute_boundary() {
    let clock = clock();
    let r = KeyRotator::builder()
        .provider(
            "p",
            ProviderConfig::new().credential("k").budget(Budget {
                requests_per_minute: Some(100),
                ..Budget::default()
            }),
        )
        .clock(clock.clone())
        .reset_interval(Duration::ZERO)
        .build()
        .unwrap();
    let drain = || std::iter::from_fn(|| r.acquire("p").ok()).count();
    // Idle until just before a minute boundary, then everything at once: the whole budget.
    clock.advance(Duration::from_millis(59_900));
    assert_eq!(drain(), 100);
    // Fixed minute buckets would admit another 100 at the boundary, 100 ms later.
    clock.advance(Duration::from_millis(100));
    assert_eq!(drain(), 0);
    // From then on, one request per 600 ms (100 per minute), however hard it is pushed.
    let mut admitted = Vec::new();
    for step in 1..=1800u64 {
        clock.advance(Duration::from_millis(100));
        for _ in 0..drain() {
            admitted.push(step * 100);
        }
    }
    assert_eq!(admitted.len(), 300, "exactly the rate over three minutes");
    for (i, &t) in admitted.iter().enumerate() {
        let window = admitted[i..]
            .iter()
            .take_while(|&&u| u < t + 60_000)
            .count();
        assert!(window <= 100, "{window} requests in the minute from {t} ms");
    }
    let in_any_second = admitted.windows(3).all(|w| w[2] - w[0] >= 1000);
    assert!(
        in_any_second,
        "never more than 2 per second after the burst"
    );
}

#[test]
fn when_every_key_is_over_budget_the_answer_says_when_one_is_back() {
    let clock = clock();
    let r = KeyRotator::builder()
        .provider(
            "p",
            ProviderConfig::new()
                .credential("k1")
                .credential("k2")
                .budget(Budget {
                    requests_per_minute: Some(2),
                    ..Budget::default()
                }),
        )
        .clock(clock.clone())
        .reset_interval(Duration::ZERO)
        .build()
        .unwrap();
    let mut keys = Vec::new();
    for _ in 0..4 {
        keys.push(r.acquire("p").unwrap().expose_key().to_owned());
    }
    // Fill-first still rotates away from a key over budget.
    assert_eq!(keys, ["k1", "k1", "k2", "k2"]);
    let err = r.acquire("p").unwrap_err();
    assert_eq!(
        err,
        AcquireError::Unavailable {
            provider: "p".into(),
            retry_at: Some(START.saturating_add(Duration::from_secs(30)))
        }
    );
    assert!(r.get_key("p").is_none());
    clock.advance(Duration::from_secs(30));
    assert!(r.acquire("p").is_ok());
}

#[test]
fn token_budgets_take_the_estimate_and_settle_on_the_real_use() {
    let clock = clock();
    let r = KeyRotator::builder()
        .provider(
            "p",
            ProviderConfig::new().credential("k").budget(Budget {
                tokens_per_minute: Some(10_000),
                ..Budget::default()
            }),
        )
        .clock(clock)
        .reset_interval(Duration::ZERO)
        .build()
        .unwrap();
    let big = AcquireOptions::default().tokens(8_000);
    let lease = r.acquire_with("p", &big).unwrap();
    assert!(r.acquire_with("p", &big).is_err(), "16 000 > 10 000");
    // It used only 1 000: the rest is given back.
    lease.success(Some(1_000));
    assert!(r.acquire_with("p", &big).is_ok());
}

#[test]
fn a_concurrency_cap_limits_leases_in_flight() {
    let r = KeyRotator::builder()
        .provider(
            "p",
            ProviderConfig::new().credential("k").budget(Budget {
                max_in_flight: Some(2),
                ..Budget::default()
            }),
        )
        .clock(clock())
        .reset_interval(Duration::ZERO)
        .build()
        .unwrap();
    let a = r.acquire("p").unwrap();
    let _b = r.acquire("p").unwrap();
    assert!(r.acquire("p").is_err());
    drop(a);
    assert!(r.acquire("p").is_ok());
}

#[test]
fn a_scope_budget_is_shared_by_its_keys() {
    let clock = clock();
    let r = KeyRotator::builder()
        .provider(
            "gemini",
            ProviderConfig::new()
                .credential(CredentialConfig::new("p1-a").scope("project-1"))
                .credential(CredentialConfig::new("p1-b").scope("project-1"))
                .credential(CredentialConfig::new("p2-a").scope("project-2"))
                .scope_budget(
                    "project-1",
                    Budget {
                        requests_per_day: Some(3),
                        time_zone: Some("America/Los_Angeles".into()),
                        ..Budget::default()
                    },
                ),
        )
        .clock(clock.clone())
        .reset_interval(Duration::ZERO)
        .build()
        .unwrap();
    let keys: Vec<String> = (0..5)
        .map(|_| r.acquire("gemini").unwrap().expose_key().to_owned())
        .collect();
    // Three from project 1 (across both its keys would be the same), then project 2 only.
    assert_eq!(keys, ["p1-a", "p1-a", "p1-a", "p2-a", "p2-a"]);
    // The day ends at midnight Pacific: 2026-11-26T08:00:00Z.
    let midnight = ai_key_rotator::Timestamp::from_secs(1_795_680_000);
    clock.set(midnight);
    r.mark_exhausted("gemini", Some("p2-a"));
    assert_eq!(r.acquire("gemini").unwrap().expose_key(), "p1-a");
}

#[test]
fn invalid_budgets_are_config_errors() {
    let e = KeyRotator::builder()
        .provider(
            "p",
            ProviderConfig::new().credential("k").budget(Budget {
                time_zone: Some("Nowhere/Special".into()),
                ..Budget::default()
            }),
        )
        .build()
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "provider `p` has an invalid budget: `Nowhere/Special` is not a known IANA time zone"
    );
}

/// One limit's (used, limit, resets_at) from a list.
fn use_of(
    limits: &[ai_key_rotator::LimitUse],
    kind: ai_key_rotator::LimitKind,
) -> (u64, u64, Option<ai_key_rotator::Timestamp>) {
    let l = limits
        .iter()
        .find(|l| l.kind == kind)
        .unwrap_or_else(|| panic!("no {kind:?} in {limits:?}"));
    (l.used, l.limit, l.resets_at)
}

#[test]
fn the_budget_view_shows_each_limits_use_and_when_it_resets() {
    use ai_key_rotator::LimitKind::*;
    let clock = clock();
    let r = KeyRotator::builder()
        .provider(
            "p",
            ProviderConfig::new()
                .credential(CredentialConfig::new("k1").label("one"))
                .credential(CredentialConfig::new("k2"))
                .budget(Budget {
                    requests_per_minute: Some(60),
                    tokens_per_minute: Some(6_000),
                    requests_per_day: Some(1_000),
                    tokens_per_day: Some(100_000),
                    max_in_flight: Some(4),
                    ..Budget::default()
                }),
        )
        .clock(clock.clone())
        .reset_interval(Duration::ZERO)
        .build()
        .unwrap();
    let view = r.budgets("p").unwrap();
    assert_eq!(view.at, START);
    assert_eq!(view.keys.len(), 2);
    assert!(view.scopes.is_empty());
    let limits = &view.keys[0].limits;
    let kinds: Vec<_> = limits.iter().map(|l| l.kind).collect();
    assert_eq!(
        kinds,
        [
            RequestsPerMinute,
            TokensPerMinute,
            RequestsPerDay,
            TokensPerDay,
            InFlight
        ]
    );
    // Nothing used: 0 of each, the day ending at the next UTC midnight (2026-11-26).
    let midnight = ai_key_rotator::Timestamp::from_secs(1_795_651_200);
    assert_eq!(use_of(limits, RequestsPerMinute), (0, 60, Some(START)));
    assert_eq!(use_of(limits, RequestsPerDay), (0, 1_000, Some(midnight)));
    assert_eq!(use_of(limits, InFlight), (0, 4, None));

    // Three requests on the first key, estimating 100 tokens each; one still in flight.
    let est = AcquireOptions::default().tokens(100);
    for _ in 0..2 {
        r.acquire_with("p", &est).unwrap().success(Some(250));
    }
    let held = r.acquire_with("p", &est).unwrap();
    assert_eq!(held.expose_key(), "k1");
    let view = r.budgets("p").unwrap();
    let k1 = &view.keys[0];
    assert_eq!(k1.id.label.as_deref(), Some("one"));
    assert!(!k1.fleet);
    let second = |ms: u64| Some(START.saturating_add(Duration::from_millis(ms)));
    // 3 requests at one per second of rate: the bucket is empty 3 s later.
    assert_eq!(
        use_of(&k1.limits, RequestsPerMinute),
        (3, 60, second(3_000))
    );
    // Tokens: 250 + 250 real, 100 estimated for the one in flight.
    assert_eq!(
        use_of(&k1.limits, TokensPerMinute),
        (600, 6_000, second(6_000))
    );
    assert_eq!(
        use_of(&k1.limits, RequestsPerDay),
        (3, 1_000, Some(midnight))
    );
    assert_eq!(
        use_of(&k1.limits, TokensPerDay),
        (600, 100_000, Some(midnight))
    );
    assert_eq!(use_of(&k1.limits, InFlight), (1, 4, None));
    assert_eq!(use_of(&view.keys[1].limits, RequestsPerDay).0, 0);

    // The stream's usage arrives after the lease ended: charged through `tokens_used`.
    let key = held.credential().clone();
    held.success(None);
    r.tokens_used(&key, 100, 1_100);
    // A second later the per-minute bucket has drained by the rate; the day has not.
    clock.advance(Duration::from_secs(1));
    let k1 = &r.budgets("p").unwrap().keys[0];
    assert_eq!(
        use_of(&k1.limits, RequestsPerMinute),
        (2, 60, second(3_000))
    );
    assert_eq!(
        use_of(&k1.limits, TokensPerMinute),
        (1_500, 6_000, second(16_000))
    );
    assert_eq!(use_of(&k1.limits, TokensPerDay).0, 1_600);
    assert_eq!(use_of(&k1.limits, InFlight).0, 0);

    // A new day: the daily use starts from 0, with the next midnight.
    clock.set(midnight);
    let k1 = &r.budgets("p").unwrap().keys[0];
    assert_eq!(
        use_of(&k1.limits, RequestsPerMinute),
        (0, 60, Some(midnight))
    );
    let next = Some(midnight.saturating_add(Duration::from_secs(86_400)));
    assert_eq!(use_of(&k1.limits, RequestsPerDay), (0, 1_000, next));
    assert_eq!(use_of(&k1.limits, TokensPerDay), (0, 100_000, next));
}

#[test]
fn the_budget_view_shows_scope_budgets_and_nothing_for_a_provider_without_one() {
    use ai_key_rotator::LimitKind::*;
    let clock = clock();
    let r = KeyRotator::builder()
        .provider(
            "gemini",
            ProviderConfig::new()
                .credential(CredentialConfig::new("p1-a").scope("project-1"))
                .credential(CredentialConfig::new("p2-a").scope("project-2"))
                .scope_budget(
                    "project-2",
                    Budget {
                        requests_per_day: Some(5),
                        ..Budget::default()
                    },
                )
                .scope_budget(
                    "project-1",
                    Budget {
                        requests_per_day: Some(3),
                        time_zone: Some("America/Los_Angeles".into()),
                        ..Budget::default()
                    },
                ),
        )
        .provider("plain", ProviderConfig::new().credential("x"))
        .clock(clock)
        .reset_interval(Duration::ZERO)
        .build()
        .unwrap();
    for _ in 0..4 {
        r.acquire("gemini").unwrap().success(None);
    }
    let view = r.budgets("gemini").unwrap();
    assert!(view.keys.is_empty());
    let scopes: Vec<_> = view
        .scopes
        .iter()
        .map(|s| (&*s.scope, use_of(&s.limits, RequestsPerDay)))
        .collect();
    // Midnight Pacific for project 1, midnight UTC for project 2.
    let pacific = Some(ai_key_rotator::Timestamp::from_secs(1_795_680_000));
    let utc = Some(ai_key_rotator::Timestamp::from_secs(1_795_651_200));
    assert_eq!(
        scopes,
        [("project-1", (3, 3, pacific)), ("project-2", (1, 5, utc))]
    );
    let plain = r.budgets("plain").unwrap();
    assert!(plain.keys.is_empty() && plain.scopes.is_empty());
    assert!(r.budgets("nobody").is_none());
    // The view's JSON names limits as the configuration does.
    let json = serde_json::to_value(&view).unwrap();
    assert_eq!(json["scopes"][0]["limits"][0]["kind"], "requests_per_day");
}
