//! The canary check: a key string that must appear nowhere but `expose_key`.

use std::time::Duration;

use ai_key_rotator::{ConfigError, CredentialConfig, KeyRotator, ProviderConfig, RotatorConfig};

use crate::support::clock;

const CANARY: &str = "sk-CANARY-0123456789abcdefghijklmnopqrstuvwxyz";
const CANARY_2: &str = "AIza-CANARY-zyxwvutsrqponmlkjihgfedcba9876543210";

fn assert_clean(what: &str, text: &str) {
    for canary in [CANARY, CANARY_2] {
        assert!(!text.contains(canary), "{what} leaks a key: {text}");
        // Nor a long fragment of it.
        assert!(
            !text.contains(&canary[3..20]),
            "{what} leaks part of a key: {text}"
        );
    }
}

#[test]
fn no_output_of_any_kind_contains_the_key() {
    let clock = clock();
    let r = KeyRotator::builder()
        .provider(
            "openai",
            ProviderConfig::new()
                .credential(CredentialConfig::new(CANARY).label("canary"))
                .credential(CANARY_2)
                .cooldown(ai_key_rotator::Cooldown::fixed(Duration::from_secs(5))),
        )
        .clock(clock.clone())
        .reset_interval(Duration::ZERO)
        .build()
        .unwrap();
    let mut events = r.subscribe();

    let cred = r.get_key("openai").unwrap();
    assert_eq!(cred.expose_key(), CANARY, "the explicit accessor works");
    assert_clean("Credential Debug", &format!("{cred:?} {cred:#?}"));
    assert_clean("Credential Display", &cred.to_string());
    assert_clean("masked key", &cred.masked_key());
    assert_clean("CredentialId", &format!("{:?} {}", cred.id(), cred.id()));
    assert_clean("KeyRotator Debug", &format!("{r:?}"));

    r.mark_exhausted("openai", Some(CANARY));
    r.mark_exhausted("openai", None);
    clock.advance(Duration::from_secs(5));
    r.get_key("openai");
    r.remove_credential("openai", CANARY_2);
    for e in events.drain() {
        assert_clean("Event Debug", &format!("{e:?}"));
        assert_clean("Event JSON", &serde_json::to_string(&e).unwrap());
    }
    assert_clean("status Debug", &format!("{:?}", r.status()));
    assert_clean("status JSON", &serde_json::to_string(&r.status()).unwrap());
    assert_clean("saved state", &r.export_state());

    // Configuration and its errors.
    let config = CredentialConfig::new(CANARY);
    assert_clean("CredentialConfig Debug", &format!("{config:?}"));
    let rc: RotatorConfig = serde_json::from_str(&format!(
        r#"{{"providers":{{"p":{{"credentials":[{{"key":"{CANARY}"}},{{"key":"{CANARY}"}}]}}}}}}"#
    ))
    .unwrap();
    assert_clean("RotatorConfig Debug", &format!("{rc:?}"));
    let err = KeyRotator::from_config(rc).unwrap_err();
    assert!(matches!(err, ConfigError::DuplicateKey { .. }));
    assert_clean("ConfigError", &format!("{err} {err:?}"));
    let err = r.add_credential("openai", CANARY).unwrap_err();
    assert_clean("add_credential error", &format!("{err} {err:?}"));
    let err = r
        .import_state(&format!(r#"{{"version":"{CANARY}"}}"#))
        .unwrap_err();
    assert_clean("StateError", &format!("{err} {err:?}"));
}

/// The surfaces of issue 11: per-model rests, the provider circuit and depleted keys (their
/// events, status, saved state, the due-probe list and the report outcomes).
#[test]
fn per_model_circuit_and_recheck_outputs_never_contain_the_key() {
    use ai_key_rotator::classify::{LimitKind, LimitScope, ModelName, Verdict};
    let clock = clock();
    let r = KeyRotator::builder()
        .provider(
            "openai",
            ProviderConfig::new()
                .credential(CredentialConfig::new(CANARY).label("canary"))
                .credential(CANARY_2)
                .credential("sk-third-0000000000000000000000"),
        )
        .clock(clock.clone())
        .reset_interval(Duration::ZERO)
        .build()
        .unwrap();
    let mut events = r.subscribe();
    let mut outcomes = Vec::new();
    let key = r.get_key_for("openai", "gpt-4o").unwrap();
    outcomes.push(r.report_for_model(
        &key,
        &Verdict::RateLimited {
            until: None,
            scope: LimitScope::Model(ModelName::new("gpt-4o").unwrap()),
            limit: LimitKind::TokensPerMinute,
        },
    ));
    for _ in 0..3 {
        let lease = r.acquire("openai").unwrap();
        outcomes.push(lease.report(&Verdict::RegionBlocked));
    }
    assert_clean(
        "status with a circuit",
        &serde_json::to_string(&r.status()).unwrap(),
    );
    clock.advance(Duration::from_secs(1));
    let probe = r.acquire("openai").unwrap();
    outcomes.push(probe.report(&Verdict::QuotaExhausted {
        until: None,
        scope: LimitScope::Key,
        limit: LimitKind::Credits,
    }));
    clock.advance(Duration::from_secs(60));
    let due = r.due_probes("openai");
    assert!(!due.is_empty());
    assert_clean("due probes", &format!("{due:?}"));
    r.probe_failed(&due[0].credential);
    for o in &outcomes {
        assert_clean("report outcome", &format!("{o:?}"));
        assert_clean("report outcome JSON", &serde_json::to_string(o).unwrap());
    }
    for e in events.drain() {
        assert_clean("Event Debug", &format!("{e:?}"));
        assert_clean("Event JSON", &serde_json::to_string(&e).unwrap());
    }
    assert_clean("status Debug", &format!("{:?}", r.status()));
    assert_clean("status JSON", &serde_json::to_string(&r.status()).unwrap());
    assert_clean("saved state", &r.export_state());
    match r.acquire("openai") {
        Err(e) => assert_clean("acquire error", &format!("{e} {e:?}")),
        Ok(l) => assert_clean("lease", &format!("{l:?}")),
    }
}

#[test]
fn the_budget_view_never_contains_the_key() {
    let r = KeyRotator::builder()
        .provider(
            "openai",
            ProviderConfig::new()
                .credential(CredentialConfig::new(CANARY).label("canary").scope("org"))
                .credential(CredentialConfig::new(CANARY_2).scope("org"))
                .budget(ai_key_rotator::Budget {
                    requests_per_minute: Some(100),
                    tokens_per_day: Some(10_000),
                    ..ai_key_rotator::Budget::default()
                })
                .scope_budget(
                    "org",
                    ai_key_rotator::Budget {
                        requests_per_day: Some(1_000),
                        ..ai_key_rotator::Budget::default()
                    },
                ),
        )
        .clock(clock())
        .reset_interval(Duration::ZERO)
        .build()
        .unwrap();
    let lease = r.acquire("openai").unwrap();
    let cred = lease.credential().clone();
    lease.success(Some(12));
    r.tokens_used(&cred, 0, 30);
    let view = r.budgets("openai").unwrap();
    assert_eq!(view.keys.len(), 2);
    assert_clean("budget view Debug", &format!("{view:?} {view:#?}"));
    assert_clean("budget view JSON", &serde_json::to_string(&view).unwrap());
}
