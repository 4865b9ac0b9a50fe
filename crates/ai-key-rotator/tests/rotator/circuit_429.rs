//! The same 429 on every key within a moment (issue 11, item 2): with
//! `CircuitConfig::rate_limits`, the provider backs off as a whole instead of every key
//! cooling; a 429 on some of the keys still cools those keys.

use std::time::Duration;

use ai_key_rotator::classify::{LimitKind, LimitScope, Verdict};
use ai_key_rotator::{
    AcquireError, CircuitConfig, ConfigError, CredentialState, Event, KeyRotator, ProviderCause,
    ReportOutcome, RotatorConfig, Timestamp,
};

use super::support::{START, clock, provider};

fn rotator(keys: &[&str], rate_limits: bool) -> (KeyRotator, ai_key_rotator::FakeClock) {
    let c = clock();
    let circuit = CircuitConfig {
        rate_limits,
        ..CircuitConfig::default()
    };
    let r = KeyRotator::builder()
        .provider(
            "openai",
            provider(keys, Duration::from_secs(60)).circuit(circuit),
        )
        .clock(c.clone())
        .reset_interval(Duration::ZERO)
        .build()
        .unwrap();
    (r, c)
}

fn at_ms(ms: u64) -> Timestamp {
    START.saturating_add(Duration::from_millis(ms))
}

/// A 429 whose limit lifts at `reset`, reported on the key `acquire` hands out; with it, that
/// key's name.
fn limited(r: &KeyRotator, reset: Timestamp) -> (String, ReportOutcome) {
    let lease = r.acquire("openai").expect("a key");
    let key = lease.expose_key().to_owned();
    let outcome = lease.report(&Verdict::RateLimited {
        until: Some(reset),
        scope: LimitScope::Shared,
        limit: LimitKind::RequestsPerMinute,
    });
    (key, outcome)
}

fn states(r: &KeyRotator) -> Vec<CredentialState> {
    r.provider_status("openai")
        .unwrap()
        .credentials
        .into_iter()
        .map(|c| c.state)
        .collect()
}

#[test]
fn the_same_429_on_every_key_within_a_second_backs_the_provider_off_and_cools_no_key() {
    let (r, clock) = rotator(&["sk-a", "sk-b", "sk-c"], true);
    let mut events = r.subscribe();
    let reset = at_ms(20_000);
    // The first two cool their keys as any 429 does: each could be the key's own limit.
    let (a, first) = limited(&r, reset);
    assert!(matches!(first, ReportOutcome::Cooled { .. }), "{first:?}");
    clock.advance(Duration::from_millis(300));
    let (b, second) = limited(&r, reset);
    assert!(matches!(second, ReportOutcome::Cooled { .. }), "{second:?}");
    assert_ne!(a, b);
    clock.advance(Duration::from_millis(300));
    // The third key answers the same: no key is left, so the limit is the provider's. The
    // circuit opens until the reset the 429s named (later than its 1 s backoff).
    let (_, third) = limited(&r, reset);
    assert_eq!(
        third,
        ReportOutcome::ProviderDegraded {
            cause: ProviderCause::RateLimited,
            until: reset,
        }
    );
    // No key carries a cooldown for it; the provider refuses as data, with the time.
    assert!(
        states(&r).iter().all(|s| *s == CredentialState::Available),
        "{:?}",
        states(&r)
    );
    match r.acquire("openai") {
        Err(AcquireError::ProviderDegraded {
            cause, retry_at, ..
        }) => {
            assert_eq!(cause, ProviderCause::RateLimited);
            assert_eq!(retry_at, reset);
        }
        other => panic!("expected degraded, got {:?}", other.map(|_| ())),
    }
    let circuit = r.provider_status("openai").unwrap().circuit.unwrap();
    assert_eq!(circuit.cause, ProviderCause::RateLimited);
    let seen = events.drain();
    assert!(seen.iter().any(|e| matches!(
        e,
        Event::ProviderDegraded {
            cause: ProviderCause::RateLimited,
            ..
        }
    )));
    assert!(seen.iter().any(|e| matches!(e, Event::Reset { .. })));

    // At the reset one request probes; a 429 on it reopens the circuit (the backoff doubles,
    // the new reset is later) and cools no key.
    clock.set(reset);
    let later = at_ms(25_000);
    let (_, probe) = limited(&r, later);
    assert_eq!(
        probe,
        ReportOutcome::ProviderDegraded {
            cause: ProviderCause::RateLimited,
            until: later,
        }
    );
    assert!(states(&r).iter().all(|s| *s == CredentialState::Available));
    // A probe that succeeds closes it.
    clock.set(later);
    let lease = r.acquire("openai").unwrap();
    lease.success(None);
    assert!(r.provider_status("openai").unwrap().circuit.is_none());
    assert!(r.acquire("openai").is_ok());
}

#[test]
fn a_429_that_leaves_a_key_or_falls_outside_the_window_cools_its_key_as_before() {
    // A key that has not answered 429 is left: the 429s were the keys' own.
    let (r, _) = rotator(&["sk-a", "sk-b", "sk-c"], true);
    for _ in 0..2 {
        let (_, outcome) = limited(&r, at_ms(20_000));
        assert!(
            matches!(outcome, ReportOutcome::Cooled { .. }),
            "{outcome:?}"
        );
    }
    assert_eq!(r.acquire("openai").unwrap().expose_key(), "sk-c");
    assert!(r.provider_status("openai").unwrap().circuit.is_none());

    // Two keys whose 429s are further apart than the window: each cools its own key.
    let (r2, clock2) = rotator(&["sk-a", "sk-b"], true);
    let (_, first) = limited(&r2, at_ms(60_000));
    assert!(matches!(first, ReportOutcome::Cooled { .. }));
    clock2.advance(Duration::from_millis(1_500));
    let (_, second) = limited(&r2, at_ms(60_000));
    assert!(matches!(second, ReportOutcome::Cooled { .. }), "{second:?}");
    assert!(r2.provider_status("openai").unwrap().circuit.is_none());
    assert!(matches!(
        r2.acquire("openai"),
        Err(AcquireError::Unavailable { .. })
    ));

    // Off (the default): every key cools, as before.
    let (r3, _) = rotator(&["sk-a", "sk-b", "sk-c"], false);
    for _ in 0..3 {
        let (_, outcome) = limited(&r3, at_ms(20_000));
        assert!(
            matches!(outcome, ReportOutcome::Cooled { .. }),
            "{outcome:?}"
        );
    }
    assert!(r3.provider_status("openai").unwrap().circuit.is_none());
    assert!(
        states(&r3)
            .iter()
            .all(|s| matches!(s, CredentialState::Cooling { .. }))
    );
}

#[test]
fn rate_limit_settings_are_read_and_checked() {
    let config = RotatorConfig::from_toml_str(
        r#"
        [providers.openai]
        credentials = [{ key = "sk-a" }, { key = "sk-b" }]
        circuit = { rate_limits = true, rate_limit_window_ms = 2000 }
        "#,
    )
    .unwrap();
    let circuit = &config.providers["openai"].circuit;
    assert!(circuit.rate_limits);
    assert_eq!(circuit.rate_limit_window_ms, 2000);
    let text = r#"
        [providers.openai]
        credentials = [{ key = "sk-a" }]
        circuit = { rate_limits = true, rate_limit_window_ms = 0 }
        "#;
    let bad = match RotatorConfig::from_toml_str(text) {
        Err(e) => e,
        Ok(c) => KeyRotator::builder()
            .config(c)
            .build()
            .map(|_| ())
            .expect_err("rejected"),
    };
    assert!(matches!(bad, ConfigError::InvalidCircuit { .. }), "{bad}");
    let text = bad.to_string();
    assert!(text.contains("rate_limit_window_ms"), "{text}");
    assert!(!text.contains("sk-a"), "{text}");
}
