//! The provider circuit: correlated failures that are not about any key back the provider off
//! as a whole, with a half-open probe, instead of cooling or disabling every key.

use std::time::Duration;

use ai_key_rotator::classify::{Family, Response, Verdict};
use ai_key_rotator::{
    AcquireError, CircuitConfig, ConfigError, CredentialState, Event, KeyRotator, ProviderCause,
    ReportOutcome, RotatorConfig,
};

use super::support::{START, clock, key, provider};

const REGION_403: &[u8] = br#"{"error":{"code":"unsupported_country_region_territory","message":"Country, region, or territory not supported","param":null,"type":"request_forbidden"}}"#;

fn rotator(keys: &[&str], circuit: CircuitConfig) -> (KeyRotator, ai_key_rotator::FakeClock) {
    let c = clock();
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

fn region_blocked(r: &KeyRotator) -> ReportOutcome {
    let lease = r.acquire("openai").unwrap();
    let verdict = lease.classify(&Response::new(403, &[] as &[(&str, &str)], REGION_403));
    assert_eq!(verdict, Verdict::RegionBlocked);
    lease.report(&verdict)
}

fn secs(n: u64) -> ai_key_rotator::Timestamp {
    START.saturating_add(Duration::from_secs(n))
}

#[test]
fn every_key_refused_by_region_opens_the_circuit_and_no_key_is_blamed() {
    let (r, _clock) = rotator(&["sk-a", "sk-b", "sk-c"], CircuitConfig::default());
    let mut events = r.subscribe();
    // Nothing is held against a key, but each failure sends the next request to another one.
    assert_eq!(region_blocked(&r), ReportOutcome::Unchanged);
    assert_eq!(region_blocked(&r), ReportOutcome::Unchanged);
    assert_eq!(
        region_blocked(&r),
        ReportOutcome::ProviderDegraded {
            cause: ProviderCause::RegionBlocked,
            until: secs(1),
        }
    );
    // Refused as data, with the time to retry.
    match r.acquire("openai") {
        Err(AcquireError::ProviderDegraded {
            cause, retry_at, ..
        }) => {
            assert_eq!(cause, ProviderCause::RegionBlocked);
            assert_eq!(retry_at, secs(1));
        }
        other => panic!(
            "expected degraded, got {:?}",
            other.map(|l| l.credential().clone())
        ),
    }
    assert_eq!(key(&r, "openai"), None);
    // No key cooled or disabled.
    let status = r.provider_status("openai").unwrap();
    assert!(
        status
            .credentials
            .iter()
            .all(|c| c.state == CredentialState::Available)
    );
    let circuit = status.circuit.expect("circuit open");
    assert_eq!(circuit.cause, ProviderCause::RegionBlocked);
    assert_eq!(circuit.until, secs(1));
    let seen = events.drain();
    assert!(seen.iter().any(|e| matches!(e,
        Event::ProviderDegraded { cause: ProviderCause::RegionBlocked, until, .. } if *until == secs(1))));
    assert!(!seen.iter().any(|e| matches!(
        e,
        Event::Disabled { .. } | Event::Exhausted { .. } | Event::AllExhausted { .. }
    )));
}

#[test]
fn one_probe_after_the_backoff_closes_the_circuit_on_success() {
    let (r, clock) = rotator(&["sk-a", "sk-b", "sk-c"], CircuitConfig::default());
    for _ in 0..3 {
        region_blocked(&r);
    }
    clock.advance(Duration::from_secs(1));
    let mut events = r.subscribe();
    let probe = r.acquire("openai").expect("the probe goes through");
    // Only one probe at a time.
    assert!(matches!(
        r.acquire("openai"),
        Err(AcquireError::ProviderDegraded { .. })
    ));
    assert!(
        r.provider_status("openai")
            .unwrap()
            .circuit
            .unwrap()
            .probing
    );
    probe.success(None);
    assert!(
        events
            .drain()
            .iter()
            .any(|e| matches!(e, Event::ProviderRecovered { .. }))
    );
    assert!(r.acquire("openai").is_ok());
    assert!(r.provider_status("openai").unwrap().circuit.is_none());
}

#[test]
fn a_failed_probe_reopens_with_a_doubled_backoff() {
    let (r, clock) = rotator(&["sk-a", "sk-b", "sk-c"], CircuitConfig::default());
    for _ in 0..3 {
        r.report_transport_failure(&r.acquire("openai").unwrap().credential().clone());
    }
    assert_eq!(
        r.provider_status("openai").unwrap().circuit.unwrap().cause,
        ProviderCause::Transport
    );
    clock.advance(Duration::from_secs(1));
    let probe = r.acquire("openai").unwrap();
    assert_eq!(
        probe.transport_failed(),
        ReportOutcome::ProviderDegraded {
            cause: ProviderCause::Transport,
            until: secs(3),
        }
    );
    clock.advance(Duration::from_secs(2));
    let probe = r.acquire("openai").unwrap();
    // An answer about the request (not the provider's failure) proves it reachable too.
    probe.report(&Verdict::ClientError);
    assert!(r.provider_status("openai").unwrap().circuit.is_none());
}

#[test]
fn an_answer_between_failures_or_a_window_passing_keeps_the_circuit_closed() {
    let (r, clock) = rotator(&["sk-a", "sk-b", "sk-c", "sk-d"], CircuitConfig::default());
    let overloaded = Verdict::Overloaded { retry_after: None };
    let fail = |r: &KeyRotator| r.acquire("openai").unwrap().report(&overloaded);
    fail(&r);
    fail(&r);
    r.acquire("openai").unwrap().success(None);
    assert_eq!(fail(&r), ReportOutcome::Unchanged);
    assert_eq!(fail(&r), ReportOutcome::Unchanged);
    clock.advance(Duration::from_secs(11));
    assert_eq!(fail(&r), ReportOutcome::Unchanged);
    assert!(r.acquire("openai").is_ok());
    // Different causes are not the same failure either.
    let (r, _clock) = rotator(&["sk-a", "sk-b", "sk-c"], CircuitConfig::default());
    r.acquire("openai")
        .unwrap()
        .report(&Verdict::ServerError { retry_after: None });
    r.acquire("openai").unwrap().transport_failed();
    assert_eq!(
        r.acquire("openai").unwrap().report(&overloaded),
        ReportOutcome::Unchanged
    );
}

#[test]
fn two_keys_need_three_failures_one_key_never_opens_and_a_disabled_circuit_never_opens() {
    let overloaded = Verdict::Overloaded { retry_after: None };
    let (r, _clock) = rotator(&["sk-a", "sk-b"], CircuitConfig::default());
    let fail = |r: &KeyRotator| r.acquire("openai").unwrap().report(&overloaded);
    assert_eq!(fail(&r), ReportOutcome::Unchanged);
    assert_eq!(fail(&r), ReportOutcome::Unchanged);
    assert!(matches!(fail(&r), ReportOutcome::ProviderDegraded { .. }));

    let (r, _clock) = rotator(&["sk-a"], CircuitConfig::default());
    for _ in 0..10 {
        assert_eq!(
            r.acquire("openai").unwrap().report(&overloaded),
            ReportOutcome::Unchanged
        );
    }

    let off = CircuitConfig {
        enabled: false,
        ..CircuitConfig::default()
    };
    let (r, _clock) = rotator(&["sk-a"], off);
    for _ in 0..10 {
        assert_eq!(
            r.acquire("openai").unwrap().report(&overloaded),
            ReportOutcome::Unchanged
        );
    }
    assert!(r.acquire("openai").is_ok());
}

#[test]
fn circuit_settings_are_read_and_checked() {
    let config = RotatorConfig::from_toml_str(
        r#"
        [providers.openai]
        credentials = [{ key = "sk-a" }]
        circuit = { threshold = 2, window_ms = 5000, backoff_ms = 500, max_backoff_ms = 60000 }
        "#,
    )
    .unwrap();
    let circuit = &config.providers["openai"].circuit;
    assert_eq!(circuit.threshold, 2);
    assert_eq!(
        circuit.probe_timeout_ms,
        CircuitConfig::default().probe_timeout_ms
    );
    assert!(KeyRotator::from_config(config).is_ok());

    let typo = RotatorConfig::from_toml_str(
        "[providers.openai]\ncredentials = [{ key = \"sk-a\" }]\ncircuit = { treshold = 2 }",
    );
    assert!(
        typo.unwrap_err()
            .to_string()
            .contains("unknown field `treshold`")
    );

    let bad = RotatorConfig::from_toml_str(
        "[providers.openai]\ncredentials = [{ key = \"sk-a\" }]\ncircuit = { backoff_ms = 5000, max_backoff_ms = 10 }",
    )
    .unwrap();
    match KeyRotator::from_config(bad) {
        Err(e @ ConfigError::InvalidCircuit { .. }) => {
            assert!(e.to_string().contains("max_backoff_ms"), "{e}")
        }
        other => panic!("expected an invalid circuit, got {other:?}"),
    }
    assert_eq!(Family::OpenAi.to_string(), "openai");
}
