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
