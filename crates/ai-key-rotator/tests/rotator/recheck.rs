//! Depleted keys: out of credits or over a cap with no known reset, they are re-checked on a
//! backoff instead of cooling for a minute and failing again, or staying out for good.

use std::time::Duration;

use ai_key_rotator::classify::{InvalidKeyCause, LimitKind, LimitScope, Response, Verdict};
use ai_key_rotator::{
    CredentialConfig, CredentialState, Event, KeyRotator, ProviderConfig, RecheckConfig,
    RecheckKind, ReportOutcome,
};

use super::support::{START, clock, key, provider};

const NO_CREDITS: &[u8] = br#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;

fn rotator(recheck: RecheckConfig) -> (KeyRotator, ai_key_rotator::FakeClock) {
    let c = clock();
    let r = KeyRotator::builder()
        .provider(
            "openai",
            provider(&["sk-a", "sk-b"], Duration::from_secs(60)).recheck(recheck),
        )
        .clock(c.clone())
        .reset_interval(Duration::ZERO)
        .build()
        .unwrap();
    (r, c)
}

fn at(secs: u64) -> ai_key_rotator::Timestamp {
    START.saturating_add(Duration::from_secs(secs))
}

fn deplete_a(r: &KeyRotator) -> ReportOutcome {
    let lease = r.acquire("openai").unwrap();
    assert_eq!(lease.expose_key(), "sk-a");
    let verdict = lease.classify(&Response::new(429, &[] as &[(&str, &str)], NO_CREDITS));
    lease.report(&verdict)
}

fn state_of_a(r: &KeyRotator) -> CredentialState {
    r.provider_status("openai").unwrap().credentials[0].state
}

fn due(r: &KeyRotator) -> Vec<String> {
    r.due_probes("openai")
        .into_iter()
        .map(|d| {
            assert_eq!(d.kind, RecheckKind::Depleted);
            d.credential.expose_key().to_owned()
        })
        .collect()
}

#[test]
fn a_key_out_of_credits_is_depleted_and_rechecked_on_a_doubling_backoff() {
    let (r, clock) = rotator(RecheckConfig::default());
    let mut events = r.subscribe();
    assert_eq!(
        deplete_a(&r),
        ReportOutcome::Depleted {
            recheck_at: Some(at(60)),
            scope: None
        }
    );
    assert_eq!(
        state_of_a(&r),
        CredentialState::Depleted {
            recheck_at: Some(at(60))
        }
    );
    assert!(events.drain().iter().any(|e| matches!(e,
        Event::Disabled { reason, .. } if reason == "quota exhausted (credits)")));
    // Not back after a minute by itself: only a re-check brings it back.
    clock.advance(Duration::from_secs(59));
    assert!(due(&r).is_empty());
    clock.advance(Duration::from_secs(1));
    assert_eq!(key(&r, "openai").as_deref(), Some("sk-b"));
    assert_eq!(due(&r), ["sk-a"]);
    assert!(due(&r).is_empty(), "claimed: not offered twice");

    // A claim that got no outcome is offered again after the first wait; this re-check
    // fails, and the next one is due after twice the wait.
    clock.advance(Duration::from_secs(60));
    let again = r.due_probes("openai");
    assert_eq!(
        again.len(),
        1,
        "a claim that got no outcome is offered again"
    );
    assert_eq!(r.probe_failed(&again[0].credential), Some(at(240)));
    clock.advance(Duration::from_secs(119));
    assert!(r.due_probes("openai").is_empty());
    clock.advance(Duration::from_secs(1));
    let again = r.due_probes("openai");
    assert_eq!(again.len(), 1);

    // It succeeds: the key is back, and depleted again its backoff goes on growing until a
    // real request succeeds.
    assert!(r.probe_succeeded(&again[0].credential));
    assert_eq!(state_of_a(&r), CredentialState::Available);
    assert!(!r.probe_succeeded(&again[0].credential), "already back");
    r.rotate_next("openai");
    let now = r.now();
    match deplete_a(&r) {
        ReportOutcome::Depleted {
            recheck_at: Some(t),
            ..
        } => assert_eq!(t, now.saturating_add(Duration::from_secs(60 * 4))),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_real_success_resets_the_backoff_and_enable_ends_the_depletion() {
    let (r, clock) = rotator(RecheckConfig::default());
    deplete_a(&r);
    clock.advance(Duration::from_secs(60));
    let probe = r.due_probes("openai").remove(0);
    r.probe_succeeded(&probe.credential);
    r.rotate_next("openai");
    let lease = r.acquire("openai").unwrap();
    assert_eq!(lease.expose_key(), "sk-a");
    lease.success(None);
    let now = r.now();
    assert_eq!(
        deplete_a(&r),
        ReportOutcome::Depleted {
            recheck_at: Some(now.saturating_add(Duration::from_secs(60))),
            scope: None
        }
    );
    assert!(r.enable("openai", "sk-a"));
    assert_eq!(state_of_a(&r), CredentialState::Available);
    clock.advance(Duration::from_secs(600));
    assert!(due(&r).is_empty());
}

#[test]
fn rechecks_turned_off_leave_the_key_out_until_enabled() {
    let (r, clock) = rotator(RecheckConfig {
        enabled: false,
        ..RecheckConfig::default()
    });
    assert_eq!(
        deplete_a(&r),
        ReportOutcome::Depleted {
            recheck_at: None,
            scope: None
        }
    );
    clock.advance(Duration::from_secs(86_400 * 3));
    assert!(due(&r).is_empty());
    assert_eq!(
        state_of_a(&r),
        CredentialState::Depleted { recheck_at: None }
    );
    assert_eq!(key(&r, "openai").as_deref(), Some("sk-b"));
}

#[test]
fn invalid_keys_are_rechecked_only_when_asked() {
    let invalid = Verdict::InvalidKey {
        cause: InvalidKeyCause::Invalid,
    };
    let (r, clock) = rotator(RecheckConfig::default());
    r.acquire("openai").unwrap().report(&invalid);
    clock.advance(Duration::from_secs(86_400));
    assert!(r.due_probes("openai").is_empty());
    assert_eq!(state_of_a(&r), CredentialState::Disabled);

    let (r, clock) = rotator(RecheckConfig {
        recheck_invalid: true,
        ..RecheckConfig::default()
    });
    assert_eq!(
        r.acquire("openai").unwrap().report(&invalid),
        ReportOutcome::Disabled
    );
    assert_eq!(state_of_a(&r), CredentialState::Disabled);
    assert_eq!(
        r.provider_status("openai").unwrap().credentials[0].recheck_at,
        Some(at(60))
    );
    clock.advance(Duration::from_secs(60));
    let due = r.due_probes("openai");
    assert_eq!(due[0].kind, RecheckKind::Invalid);
}

#[test]
fn a_cap_with_a_known_reset_cools_until_it_and_a_shared_credit_cap_depletes_the_scope() {
    let (r, _clock) = rotator(RecheckConfig::default());
    let monthly = Verdict::QuotaExhausted {
        until: Some(at(86_400 * 5)),
        scope: LimitScope::Key,
        limit: LimitKind::Monthly,
    };
    assert_eq!(
        r.acquire("openai").unwrap().report(&monthly),
        ReportOutcome::Cooled {
            until: at(86_400 * 5),
            scope: None
        }
    );

    let r = KeyRotator::builder()
        .provider(
            "openai",
            ProviderConfig::new()
                .credential(CredentialConfig::new("sk-a").scope("org-1"))
                .credential(CredentialConfig::new("sk-b").scope("org-1"))
                .credential(CredentialConfig::new("sk-c").scope("org-2")),
        )
        .clock(clock())
        .build()
        .unwrap();
    let credits = Verdict::QuotaExhausted {
        until: None,
        scope: LimitScope::Shared,
        limit: LimitKind::Credits,
    };
    assert!(matches!(
        r.acquire("openai").unwrap().report(&credits),
        ReportOutcome::Depleted { scope: Some(ref s), .. } if &**s == "org-1"
    ));
    let states: Vec<_> = r
        .provider_status("openai")
        .unwrap()
        .credentials
        .iter()
        .map(|c| c.state)
        .collect();
    assert!(matches!(states[0], CredentialState::Depleted { .. }));
    assert!(matches!(states[1], CredentialState::Depleted { .. }));
    assert_eq!(states[2], CredentialState::Available);
}

#[test]
fn a_restored_depleted_key_keeps_being_rechecked() {
    let (r, _clock) = rotator(RecheckConfig::default());
    deplete_a(&r);
    let text = r.export_state();
    let (fresh, clock) = rotator(RecheckConfig::default());
    fresh.import_state(&text).unwrap();
    assert!(matches!(
        state_of_a(&fresh),
        CredentialState::Depleted { .. }
    ));
    clock.advance(Duration::from_secs(60));
    assert_eq!(due(&fresh), ["sk-a"]);
}
