//! Probing a key: the provider's model list (never a completion), classified by the core and
//! reported against the key; the outcome as data.

mod support;

use std::time::Duration;

use ai_key_rotator::classify::Verdict;
use ai_key_rotator::{CredentialState, Fingerprint, ReportOutcome};
use ai_key_rotator_gateway::probe::{ProbeError, ProbeOutcome, probe_key};
use http::Method;
use mock_upstream::{Behavior, Config, MockUpstream};
use support::{InProcess, provider};

fn state_of(gw: &InProcess, provider: &str, key: &str) -> CredentialState {
    let status = gw.gateway.rotator().provider_status(provider).unwrap();
    status
        .credentials
        .iter()
        .find(|c| c.id.fingerprint == Fingerprint::of(key))
        .unwrap()
        .state
}

#[tokio::test]
async fn each_dialect_is_probed_with_its_model_list_and_a_good_key_works() {
    let upstream = MockUpstream::start(Config::new()).await.unwrap();
    let gw = InProcess::start(&support::config_text(
        &upstream.base_url(),
        "",
        &[
            provider("openai", "openai", &["sk-good"]),
            provider("anthropic", "anthropic", &["ant-good"]),
            provider("gemini", "gemini", &["g-good"]),
        ],
    ))
    .await;
    for (p, key, path) in [
        ("openai", "sk-good", "/v1/models"),
        ("anthropic", "ant-good", "/v1/models"),
        ("gemini", "g-good", "/v1beta/models"),
    ] {
        upstream.clear();
        let outcome = probe_key(&gw.gateway, p, Fingerprint::of(key))
            .await
            .unwrap();
        assert!(outcome.works(), "{p}: {outcome:?}");
        assert_eq!(outcome.credential().fingerprint, Fingerprint::of(key));
        let ProbeOutcome::Answered { status, effect, .. } = &outcome else {
            panic!("{p}: {outcome:?}");
        };
        assert_eq!((*status, effect), (200, &ReportOutcome::Unchanged), "{p}");
        let seen = upstream.requests();
        assert_eq!(seen.len(), 1, "{p}: one request");
        assert_eq!(seen[0].method, Method::GET, "{p}: never a paid POST");
        assert_eq!(seen[0].path, path, "{p}");
        assert_eq!(seen[0].key.as_deref(), Some(key), "{p}: the key was sent");
    }
}

#[tokio::test]
async fn a_probe_reports_what_the_provider_says_about_the_key() {
    let upstream = MockUpstream::start(Config::new()).await.unwrap();
    upstream.script().on_key("sk-bad", Behavior::InvalidKey);
    upstream
        .script()
        .on_key("sk-slow", Behavior::rate_limited(Duration::from_secs(40)));
    let gw = InProcess::start(&support::config_text(
        &upstream.base_url(),
        "",
        &[provider(
            "openai",
            "openai",
            &["sk-bad", "sk-slow", "sk-ok"],
        )],
    ))
    .await;

    let outcome = probe_key(&gw.gateway, "openai", Fingerprint::of("sk-bad"))
        .await
        .unwrap();
    assert!(!outcome.works());
    let ProbeOutcome::Answered {
        status,
        verdict,
        effect,
        ..
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(status, 401);
    assert!(matches!(verdict, Verdict::InvalidKey { .. }), "{verdict:?}");
    assert_eq!(effect, ReportOutcome::Disabled);
    assert_eq!(state_of(&gw, "openai", "sk-bad"), CredentialState::Disabled);

    let outcome = gw
        .gateway
        .probe_key("openai", Fingerprint::of("sk-slow"))
        .await
        .unwrap();
    let ProbeOutcome::Answered { effect, .. } = outcome else {
        panic!("{outcome:?}")
    };
    assert!(matches!(effect, ReportOutcome::Cooled { .. }), "{effect:?}");
    assert!(matches!(
        state_of(&gw, "openai", "sk-slow"),
        CredentialState::Cooling { .. }
    ));
    assert_eq!(state_of(&gw, "openai", "sk-ok"), CredentialState::Available);
}

#[tokio::test]
async fn unknown_names_are_errors_and_an_unreachable_upstream_changes_nothing() {
    // A port nothing listens on: bind, note the address, close.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let gw = InProcess::start(&support::config_text(
        &format!("http://{closed}"),
        "",
        &[provider("openai", "openai", &["sk-a"])],
    ))
    .await;
    assert_eq!(
        probe_key(&gw.gateway, "nope", Fingerprint::of("sk-a")).await,
        Err(ProbeError::UnknownProvider("nope".into()))
    );
    let e = probe_key(&gw.gateway, "openai", Fingerprint::of("sk-zzz"))
        .await
        .unwrap_err();
    assert!(matches!(e, ProbeError::UnknownKey { .. }), "{e:?}");
    assert!(!e.to_string().contains("sk-zzz"), "{e}");

    let outcome = probe_key(&gw.gateway, "openai", Fingerprint::of("sk-a"))
        .await
        .unwrap();
    let ProbeOutcome::Unreachable { reason, .. } = &outcome else {
        panic!("{outcome:?}")
    };
    assert!(!reason.contains("sk-a"), "{reason}");
    assert_eq!(state_of(&gw, "openai", "sk-a"), CredentialState::Available);
}
