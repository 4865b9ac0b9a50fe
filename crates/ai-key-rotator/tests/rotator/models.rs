//! Per-model cooldowns: a limit the provider counts per model rests the key for that model only.

use std::time::Duration;

use ai_key_rotator::classify::{Family, LimitKind, LimitScope, ModelName, Response, Verdict};
use ai_key_rotator::{
    AcquireError, AcquireOptions, CredentialConfig, Event, KeyRotator, ProviderConfig,
    ReportOutcome, Strategy,
};

use super::support::{START, clock, key, provider, rotator};

fn model(name: &str) -> ModelName {
    ModelName::new(name).unwrap()
}

fn per_model(name: &str, secs: u64) -> Verdict {
    Verdict::RateLimited {
        until: Some(START.saturating_add(Duration::from_secs(secs))),
        scope: LimitScope::Model(model(name)),
        limit: LimitKind::TokensPerMinute,
    }
}

fn for_model(r: &KeyRotator, m: &str) -> Option<String> {
    r.get_key_for("openai", m)
        .map(|c| c.expose_key().to_owned())
}

fn lease_key(r: &KeyRotator, options: &AcquireOptions) -> Result<String, AcquireError> {
    r.acquire_with("openai", options)
        .map(|l| l.expose_key().to_owned())
}

#[test]
fn a_per_model_limit_rests_the_key_for_that_model_only() {
    let (r, clock) = rotator(&["sk-a", "sk-b"]);
    let mut events = r.subscribe();
    let a = r.get_key_for("openai", "gpt-4o").unwrap();
    let outcome = r.report_for_model(&a, &per_model("gpt-4o", 30));
    assert_eq!(
        outcome,
        ReportOutcome::ModelCooled {
            model: model("gpt-4o"),
            until: START.saturating_add(Duration::from_secs(30)),
            scope: None,
        }
    );
    // The model goes elsewhere; other models and callers without a model stay on sk-a.
    assert_eq!(for_model(&r, "gpt-4o").as_deref(), Some("sk-b"));
    assert_eq!(
        lease_key(&r, &AcquireOptions::default().model("gpt-4o")).as_deref(),
        Ok("sk-b")
    );
    assert_eq!(for_model(&r, "gpt-4o-mini").as_deref(), Some("sk-a"));
    assert_eq!(key(&r, "openai").as_deref(), Some("sk-a"));
    assert_eq!(
        lease_key(&r, &AcquireOptions::default()).as_deref(),
        Ok("sk-a")
    );

    // The event names the model and the credential; no key-wide cooldown was announced.
    let seen = events.drain();
    assert!(seen.iter().any(|e| matches!(e,
        Event::ModelExhausted { model: m, credentials, .. }
            if *m == model("gpt-4o") && credentials.len() == 1 && credentials[0].label.as_deref() == Some("sk-a"))));
    assert!(
        !seen
            .iter()
            .any(|e| matches!(e, Event::Exhausted { .. } | Event::AllExhausted { .. }))
    );

    // Status shows the model's cooldown on sk-a, which is available.
    let status = r.provider_status("openai").unwrap();
    assert_eq!(status.available, 2);
    let a_status = &status.credentials[0];
    assert_eq!(a_status.model_cooldowns.len(), 1);
    assert_eq!(a_status.model_cooldowns[0].model, model("gpt-4o"));
    assert_eq!(
        a_status.model_cooldowns[0].until,
        START.saturating_add(Duration::from_secs(30))
    );
    assert_eq!(
        a_status.model_cooldowns[0].reason.cause,
        "rate limited (tokens per minute)"
    );

    // When it ends, the model is served by sk-a again (fill-first returns to its cursor only
    // when the key it is on goes away, so ask with a fresh model order: sk-b rests now).
    clock.advance(Duration::from_secs(31));
    let b = r.get_key_for("openai", "gpt-4o").unwrap();
    assert_eq!(b.expose_key(), "sk-b");
    r.report_for_model(&b, &per_model("gpt-4o", 100));
    assert_eq!(for_model(&r, "gpt-4o").as_deref(), Some("sk-a"));
    assert!(
        r.provider_status("openai").unwrap().credentials[0]
            .model_cooldowns
            .is_empty()
    );
}

#[test]
fn every_key_resting_for_a_model_refuses_that_model_with_a_retry_time() {
    let (r, _clock) = rotator(&["sk-a", "sk-b"]);
    let mut events = r.subscribe();
    for secs in [40, 20] {
        let k = r.get_key_for("openai", "gemini-2.0-flash").unwrap();
        r.report_for_model(&k, &per_model("gemini-2.0-flash", secs));
    }
    let options = AcquireOptions::default().model("gemini-2.0-flash");
    match r.acquire_with("openai", &options) {
        Err(AcquireError::Unavailable { retry_at, .. }) => {
            assert_eq!(
                retry_at,
                Some(START.saturating_add(Duration::from_secs(20)))
            )
        }
        other => panic!(
            "expected unavailable, got {:?}",
            other.map(|l| l.credential().clone())
        ),
    }
    assert_eq!(for_model(&r, "gemini-2.0-flash"), None);
    // The provider is not exhausted: other models and model-less callers are served, and no
    // "all exhausted" was announced.
    assert_eq!(for_model(&r, "gemini-2.5-pro").as_deref(), Some("sk-a"));
    assert!(r.has_available("openai"));
    assert!(
        !events
            .drain()
            .iter()
            .any(|e| matches!(e, Event::AllExhausted { .. }))
    );
}

#[test]
fn a_per_model_limit_rests_the_whole_quota_scope_for_the_model() {
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
    let a = r.get_key_for("openai", "gpt-4o").unwrap();
    let outcome = r.report_for_model(&a, &per_model("gpt-4o", 30));
    assert!(
        matches!(outcome, ReportOutcome::ModelCooled { scope: Some(ref s), .. } if &**s == "org-1")
    );
    assert_eq!(for_model(&r, "gpt-4o").as_deref(), Some("sk-c"));
    assert_eq!(for_model(&r, "o3").as_deref(), Some("sk-a"));
}

#[test]
fn other_strategies_skip_keys_resting_for_the_model() {
    let c = clock();
    let r = KeyRotator::builder()
        .provider(
            "openai",
            provider(&["sk-a", "sk-b", "sk-c"], Duration::from_secs(60))
                .strategy(Strategy::RoundRobin),
        )
        .clock(c)
        .build()
        .unwrap();
    let b = r
        .acquire_with("openai", &AcquireOptions::default())
        .and_then(|_| r.acquire_with("openai", &AcquireOptions::default()))
        .unwrap();
    assert_eq!(b.expose_key(), "sk-b");
    r.report_for_model(b.credential(), &per_model("gpt-4o", 30));
    drop(b);
    let picks: Vec<String> = (0..6)
        .map(|_| lease_key(&r, &AcquireOptions::default().model("gpt-4o")).unwrap())
        .collect();
    assert!(picks.iter().all(|k| k != "sk-b"), "{picks:?}");
    let session = AcquireOptions::default()
        .model("gpt-4o")
        .session("conversation-1");
    for _ in 0..4 {
        assert_ne!(lease_key(&r, &session).unwrap(), "sk-b");
    }
}

#[test]
fn the_classifier_and_report_response_cool_per_model_from_the_body() {
    let (r, _clock) = rotator(&["sk-a", "sk-b"]);
    let body = br#"{"error":{"message":"Rate limit reached for gpt-4o in organization org-x on tokens per min (TPM): Limit 30000, Used 29000, Requested 1601. Please try again in 3.202s.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}"#;
    let lease = r
        .acquire_with("openai", &AcquireOptions::default().model("gpt-4o"))
        .unwrap();
    let verdict = lease.report_response(&Response::new(429, &[] as &[(&str, &str)], body));
    assert_eq!(verdict.model(), Some(model("gpt-4o")));
    assert_eq!(for_model(&r, "gpt-4o").as_deref(), Some("sk-b"));
    assert_eq!(key(&r, "openai").as_deref(), Some("sk-a"));
    assert_eq!(r.family("openai"), Some(Family::OpenAi));
}

#[test]
fn per_model_cooldowns_survive_export_and_import_and_reset_all_ends_them() {
    let (r, _clock) = rotator(&["sk-a", "sk-b"]);
    let a = r.get_key("openai").unwrap();
    r.report_for_model(&a, &per_model("gpt-4o", 30));
    let text = r.export_state();
    assert!(text.contains("gpt-4o"));

    let (fresh, _c) = rotator(&["sk-a", "sk-b"]);
    fresh.import_state(&text).unwrap();
    assert_eq!(for_model(&fresh, "gpt-4o").as_deref(), Some("sk-b"));
    assert_eq!(key(&fresh, "openai").as_deref(), Some("sk-a"));

    fresh.reset_all(None);
    assert_eq!(for_model(&fresh, "gpt-4o").as_deref(), Some("sk-a"));
}

#[test]
fn a_caller_that_names_no_model_gets_the_key_cooled_as_a_whole() {
    let (r, _clock) = rotator(&["sk-a", "sk-b"]);
    // A lease without a model, and a report on a key from `get_key`: neither caller can be
    // steered by model, so the limit cools the key.
    let lease = r.acquire("openai").unwrap();
    assert!(matches!(
        lease.report(&per_model("gpt-4o", 30)),
        ReportOutcome::Cooled { .. }
    ));
    assert_eq!(key(&r, "openai").as_deref(), Some("sk-b"));
    let b = r.get_key("openai").unwrap();
    assert!(matches!(
        r.report(&b, &per_model("gpt-4o", 30)),
        ReportOutcome::Cooled { .. }
    ));
    assert_eq!(key(&r, "openai"), None);
}

#[test]
fn model_names_are_checked() {
    assert!(ModelName::new("models/gemini-2.0-flash-001").is_ok());
    assert!(ModelName::new(&"x".repeat(63)).is_ok());
    assert!(ModelName::new(&"x".repeat(64)).is_err());
    assert!(ModelName::new("gpt-4o\n").is_err());
    // An unusable name is no model: the pick is the usual one.
    let (r, _clock) = rotator(&["sk-a"]);
    assert_eq!(for_model(&r, "not a model").as_deref(), Some("sk-a"));
}

#[test]
fn a_gemini_per_model_quota_through_a_lease_rests_the_key_for_the_model_in_status() {
    // The body the mock upstream sends for a spent per-minute quota (as Google does).
    let body = br#"{"error":{"code":429,"message":"You exceeded your current quota. Please retry in 20s.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests","quotaId":"GenerateRequestsPerMinutePerProjectPerModel-FreeTier","quotaDimensions":{"location":"global","model":"gemini-2.0-flash"},"quotaValue":"15"}]},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"20s"}]}}"#;
    let clock = clock();
    let r = KeyRotator::builder()
        .provider(
            "gemini",
            ProviderConfig::new()
                .family(Family::Gemini)
                .credential(CredentialConfig::new("g-a").label("a"))
                .credential(CredentialConfig::new("g-b").label("b")),
        )
        .clock(clock.clone())
        .build()
        .unwrap();
    let options = AcquireOptions::default().model("gemini-2.0-flash");
    let lease = r.acquire_with("gemini", &options).unwrap();
    let verdict = lease.report_response(&Response::new(429, &[] as &[(&str, &str)], body));
    assert_eq!(
        verdict.model(),
        Some(model("gemini-2.0-flash")),
        "{verdict:?}"
    );
    let status = r.provider_status("gemini").unwrap();
    let a = &status.credentials[0];
    assert_eq!(a.model_cooldowns.len(), 1, "{status:?}");
    assert_eq!(
        a.model_cooldowns[0].until,
        START.saturating_add(Duration::from_secs(20))
    );
    assert_eq!(
        r.acquire_with("gemini", &options).unwrap().expose_key(),
        "g-b"
    );
}
