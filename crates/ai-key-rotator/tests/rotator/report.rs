//! `report`: what each verdict does to the rotator's state.

use std::time::Duration;

use ai_key_rotator::classify::{InvalidKeyCause, LimitKind, LimitScope, Response, Usage, Verdict};
use ai_key_rotator::{
    CredentialConfig, CredentialState, Event, KeyRotator, ProviderConfig, ReportOutcome, Timestamp,
};

use crate::support::{START, clock, key, rotator};

fn at(secs: u64) -> Timestamp {
    START.saturating_add(Duration::from_secs(secs))
}

fn rate_limited(until: Option<Timestamp>, scope: LimitScope) -> Verdict {
    Verdict::RateLimited {
        until,
        scope,
        limit: LimitKind::TokensPerMinute,
    }
}

fn state_of(r: &KeyRotator, provider: &str, i: usize) -> CredentialState {
    r.provider_status(provider).unwrap().credentials[i].state
}

/// One row per verdict: the verdict reported for the current key, the outcome, and the key
/// `get_key` gives next.
#[test]
fn each_verdict_has_its_effect() {
    #[track_caller]
    fn check(verdict: Verdict, outcome: ReportOutcome, next: &str) {
        let (r, _) = rotator(&["sk-a", "sk-b"]);
        let cred = r.get_key("openai").unwrap();
        assert_eq!(r.report(&cred, &verdict), outcome, "{verdict:?}");
        assert_eq!(key(&r, "openai").as_deref(), Some(next), "{verdict:?}");
    }
    let cooled = |secs| ReportOutcome::Cooled {
        until: at(secs),
        scope: None,
    };
    check(
        Verdict::Ok(Usage::default()),
        ReportOutcome::Unchanged,
        "sk-a",
    );
    check(
        rate_limited(Some(at(3)), LimitScope::Key),
        cooled(3),
        "sk-b",
    );
    // No time from the provider: the policy's (one minute here).
    check(rate_limited(None, LimitScope::Key), cooled(60), "sk-b");
    // A time in the past says nothing: the policy decides.
    check(
        rate_limited(Some(Timestamp::UNIX_EPOCH), LimitScope::Key),
        cooled(60),
        "sk-b",
    );
    check(
        Verdict::QuotaExhausted {
            until: Some(at(86_400)),
            scope: LimitScope::Shared,
            limit: LimitKind::RequestsPerDay,
        },
        // No scope configured: a shared limit cools just this key.
        cooled(86_400),
        "sk-b",
    );
    check(
        Verdict::InvalidKey {
            cause: InvalidKeyCause::Invalid,
        },
        ReportOutcome::Disabled,
        "sk-b",
    );
    // Not the key's fault: nothing against it, but the next request tries another key, so
    // that a failure every key shares shows as one (the provider circuit counts keys).
    check(
        Verdict::Overloaded {
            retry_after: Some(at(5)),
        },
        ReportOutcome::Unchanged,
        "sk-b",
    );
    check(
        Verdict::ServerError { retry_after: None },
        ReportOutcome::Unchanged,
        "sk-b",
    );
    check(Verdict::RegionBlocked, ReportOutcome::Unchanged, "sk-b");
    check(Verdict::ClientError, ReportOutcome::Unchanged, "sk-a");
}

#[test]
fn remaining_zero_cools_the_key_before_the_429_comes() {
    let (r, clock) = rotator(&["sk-a", "sk-b"]);
    let cred = r.get_key("openai").unwrap();
    let usage = Usage {
        remaining_requests: Some(0),
        remaining_tokens: Some(5000),
        requests_reset: Some(at(7)),
        tokens_reset: Some(at(1)),
    };
    assert_eq!(
        r.report(&cred, &Verdict::Ok(usage)),
        ReportOutcome::Cooled {
            until: at(7),
            scope: None
        }
    );
    assert_eq!(key(&r, "openai").as_deref(), Some("sk-b"));
    let reason = r.provider_status("openai").unwrap().credentials[0]
        .reason
        .clone()
        .unwrap();
    assert_eq!(reason.cause, "remaining quota is 0");
    assert_eq!(reason.provider_reset, Some(at(7)));
    clock.advance(Duration::from_secs(7));
    r.reset_expired();
    assert_eq!(state_of(&r, "openai", 0), CredentialState::Available);
}

#[test]
fn a_report_with_raw_response_classifies_with_the_provider_family() {
    let (r, _) = rotator(&["sk-a", "sk-b"]);
    let cred = r.get_key("openai").unwrap();
    let body = br#"{"error":{"message":"Rate limit reached for gpt-4o in organization org-x on tokens per min (TPM): Limit 30000, Used 29000, Requested 1601. Please try again in 3.202s.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}"#;
    let headers = [("content-type", "application/json")];
    let verdict = r.report_response(&cred, &Response::new(429, &headers[..], body));
    assert!(
        matches!(verdict, Verdict::RateLimited { .. }),
        "{verdict:?}"
    );
    // A limit OpenAI counts for gpt-4o: the key rests for that model, 3.202 s (rounded up to
    // the millisecond), and stays available for the others.
    assert_eq!(state_of(&r, "openai", 0), CredentialState::Available);
    let status = r.provider_status("openai").unwrap();
    let rest = &status.credentials[0].model_cooldowns[0];
    assert_eq!(rest.model.as_str(), "gpt-4o");
    assert_eq!(
        rest.until,
        START.saturating_add(Duration::from_millis(3202))
    );
}

#[test]
fn invalid_keys_are_disabled_until_enabled_or_re_added() {
    let (r, clock) = rotator(&["sk-a", "sk-b"]);
    let mut events = r.subscribe();
    let cred = r.get_key("openai").unwrap();
    let invalid = Verdict::InvalidKey {
        cause: InvalidKeyCause::Leaked,
    };
    assert_eq!(r.report(&cred, &invalid), ReportOutcome::Disabled);
    assert_eq!(
        r.report(&cred, &invalid),
        ReportOutcome::Unchanged,
        "already disabled"
    );
    assert!(matches!(
        &events.drain()[..],
        [Event::Disabled { reason, .. }, Event::Rotated { .. }] if reason == "key reported as leaked"
    ));
    // No timed or manual reset revives it.
    clock.advance(Duration::from_secs(86_400 * 40));
    assert_eq!(r.reset_all(None), 0);
    assert_eq!(r.reset_expired(), 0);
    assert_eq!(state_of(&r, "openai", 0), CredentialState::Disabled);
    r.mark_exhausted("openai", Some("sk-b"));
    assert_eq!(key(&r, "openai"), None);
    let s = r.provider_status("openai").unwrap();
    assert_eq!(
        s.credentials[0].reason.as_ref().unwrap().cause,
        "key reported as leaked"
    );
    // Marks and reports leave a disabled key alone.
    assert!(!r.mark_exhausted("openai", Some("sk-a")));
    // Enable brings it back.
    assert!(r.enable("openai", "sk-a"));
    assert!(!r.enable("openai", "sk-a"));
    assert_eq!(key(&r, "openai").as_deref(), Some("sk-a"));
    assert!(
        events
            .drain()
            .iter()
            .any(|e| matches!(e, Event::Enabled { .. }))
    );
    // Disabling by hand, and re-adding, work too.
    assert!(r.disable("openai", "sk-a"));
    assert!(r.remove_credential("openai", "sk-a"));
    r.add_credential("openai", "sk-a").unwrap();
    assert_eq!(key(&r, "openai").as_deref(), Some("sk-a"));
}

fn scoped() -> (KeyRotator, ai_key_rotator::FakeClock) {
    let clock = clock();
    let r = KeyRotator::builder()
        .provider(
            "gemini",
            ProviderConfig::new()
                .credential(
                    CredentialConfig::new("AIza-p1-a")
                        .label("p1-a")
                        .scope("project-1"),
                )
                .credential(
                    CredentialConfig::new("AIza-p1-b")
                        .label("p1-b")
                        .scope("project-1"),
                )
                .credential(
                    CredentialConfig::new("AIza-p2-a")
                        .label("p2-a")
                        .scope("project-2"),
                )
                .credential(CredentialConfig::new("AIza-solo").label("solo"))
                .cooldown(ai_key_rotator::Cooldown::fixed(Duration::from_secs(60))),
        )
        .clock(clock.clone())
        .reset_interval(Duration::ZERO)
        .build()
        .unwrap();
    (r, clock)
}

#[test]
fn a_shared_limit_cools_the_whole_scope_with_one_event() {
    let (r, _) = scoped();
    let mut events = r.subscribe();
    let cred = r.get_key("gemini").unwrap();
    let outcome = r.report(&cred, &rate_limited(Some(at(47)), LimitScope::Shared));
    assert_eq!(
        outcome,
        ReportOutcome::Cooled {
            until: at(47),
            scope: Some("project-1".into())
        }
    );
    let e = events.drain();
    assert_eq!(e.len(), 2, "{e:?}");
    match &e[0] {
        Event::ScopeExhausted {
            scope,
            credentials,
            until,
            ..
        } => {
            assert_eq!(&**scope, "project-1");
            assert_eq!(credentials.len(), 2);
            assert_eq!(*until, at(47));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(&e[1], Event::Rotated { to, .. } if to.label.as_deref() == Some("p2-a")));
    let s = r.provider_status("gemini").unwrap();
    let states: Vec<_> = s.credentials.iter().map(|c| c.state).collect();
    assert_eq!(
        states,
        [
            CredentialState::Cooling { until: at(47) },
            CredentialState::Cooling { until: at(47) },
            CredentialState::Available,
            CredentialState::Available
        ]
    );
    let reason = s.credentials[1].reason.as_ref().unwrap();
    assert_eq!(reason.scope.as_deref(), Some("project-1"));
    assert_eq!(reason.cause, "rate limited (tokens per minute)");
    assert_eq!(s.credentials[0].times_exhausted, 1);
    assert_eq!(
        s.credentials[1].times_exhausted, 0,
        "only the reporter hit the limit itself"
    );
}

#[test]
fn a_per_key_limit_cools_only_that_key_even_in_a_scope() {
    let (r, _) = scoped();
    let cred = r.get_key("gemini").unwrap();
    r.report(&cred, &rate_limited(Some(at(5)), LimitScope::Key));
    assert_eq!(key(&r, "gemini").as_deref(), Some("AIza-p1-b"));
    // A key with no scope is its own scope.
    let solo = (0..4)
        .find_map(|_| {
            let c = r.get_key("gemini").unwrap();
            if c.label() == Some("solo") {
                Some(c)
            } else {
                r.rotate_next("gemini");
                None
            }
        })
        .unwrap();
    assert_eq!(
        r.report(&solo, &rate_limited(Some(at(9)), LimitScope::Shared)),
        ReportOutcome::Cooled {
            until: at(9),
            scope: None
        }
    );
    assert_eq!(r.provider_status("gemini").unwrap().available, 2);
}

#[test]
fn a_key_added_to_a_cooling_scope_cools_with_it() {
    let (r, clock) = scoped();
    let cred = r.get_key("gemini").unwrap();
    r.report(&cred, &rate_limited(Some(at(30)), LimitScope::Shared));
    r.add_credential(
        "gemini",
        CredentialConfig::new("AIza-p1-c")
            .label("p1-c")
            .scope("project-1"),
    )
    .unwrap();
    assert_eq!(
        state_of(&r, "gemini", 4),
        CredentialState::Cooling { until: at(30) }
    );
    clock.advance(Duration::from_secs(30));
    assert_eq!(state_of(&r, "gemini", 4), CredentialState::Available);
}

#[test]
fn a_report_never_shortens_a_running_cooldown() {
    let (r, _) = rotator(&["sk-a", "sk-b"]);
    let cred = r.get_key("openai").unwrap();
    r.report(&cred, &rate_limited(Some(at(100)), LimitScope::Key));
    assert_eq!(
        r.report(&cred, &rate_limited(Some(at(10)), LimitScope::Key)),
        ReportOutcome::Cooled {
            until: at(100),
            scope: None
        }
    );
    // The reason still explains the cooldown in force.
    let reason = r.provider_status("openai").unwrap().credentials[0]
        .reason
        .clone()
        .unwrap();
    assert_eq!(reason.provider_reset, Some(at(100)));
    assert_eq!(
        r.report(&cred, &rate_limited(Some(at(200)), LimitScope::Key)),
        ReportOutcome::Cooled {
            until: at(200),
            scope: None
        }
    );
}

#[test]
fn provider_status_gives_the_exact_earliest_return() {
    let (r, _) = rotator(&["sk-a", "sk-b"]);
    let a = r.get_key("openai").unwrap();
    r.report(&a, &rate_limited(Some(at(40)), LimitScope::Key));
    let b = r.get_key("openai").unwrap();
    r.report(&b, &rate_limited(Some(at(25)), LimitScope::Key));
    assert_eq!(
        r.get_key("openai").map(|c| c.label().map(str::to_owned)),
        None
    );
    assert_eq!(
        r.provider_status("openai").unwrap().next_available_at,
        Some(at(25))
    );
}

#[test]
fn reports_for_removed_credentials_change_nothing() {
    let (r, _) = rotator(&["sk-a", "sk-b"]);
    let cred = r.get_key("openai").unwrap();
    r.remove_credential("openai", "sk-a");
    assert_eq!(
        r.report(&cred, &rate_limited(None, LimitScope::Key)),
        ReportOutcome::Unchanged
    );
}
