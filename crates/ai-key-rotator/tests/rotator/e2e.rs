//! The field failures of issue 11, end to end against `mock-upstream` over loopback: each
//! request is sent by HTTP with the leased key and its real response classified and reported.

use std::time::Duration;

use ai_key_rotator::classify::{Family, Response};
use ai_key_rotator::{
    AcquireError, AcquireOptions, CredentialConfig, CredentialState, KeyRotator, ProviderCause,
    ProviderConfig,
};
use mock_upstream::{Behavior, Config, MockUpstream};

/// Sends one generation request for `model` with the lease's key, reports the response and
/// returns its status.
async fn call(
    http: &reqwest::Client,
    mock: &MockUpstream,
    rotator: &KeyRotator,
    provider: &str,
    model: &str,
) -> Result<(u16, String), AcquireError> {
    let lease = rotator.acquire_with(provider, &AcquireOptions::default().model(model))?;
    let key = lease.expose_key().to_owned();
    let base = mock.base_url();
    let request = match lease.family() {
        Family::Gemini => http
            .post(format!("{base}/v1beta/models/{model}:generateContent"))
            .header("x-goog-api-key", &key)
            .body(r#"{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}"#),
        Family::Anthropic => http
            .post(format!("{base}/v1/messages"))
            .header("x-api-key", &key)
            .header("anthropic-version", "2023-06-01")
            .body(format!(
                r#"{{"model":"{model}","max_tokens":8,"messages":[{{"role":"user","content":"hi"}}]}}"#
            )),
        _ => http
            .post(format!("{base}/v1/chat/completions"))
            .bearer_auth(&key)
            .body(format!(
                r#"{{"model":"{model}","messages":[{{"role":"user","content":"hi"}}]}}"#
            )),
    };
    let response = request
        .header("content-type", "application/json")
        .send()
        .await
        .expect("mock reachable");
    let status = response.status().as_u16();
    let headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    let body = response.bytes().await.expect("body");
    lease.report_response(&Response::new(status, &headers, &body));
    Ok((status, key))
}

fn rotator(provider: &str, keys: &[&str]) -> KeyRotator {
    let config = keys.iter().fold(ProviderConfig::new(), |p, k| {
        p.credential(CredentialConfig::new(*k).label(*k))
    });
    KeyRotator::builder()
        .provider(provider, config)
        .reset_interval(Duration::ZERO)
        .build()
        .unwrap()
}

/// A limit on one model leaves the key serving the others (field failure 1: today a Gemini
/// per-model 429 cools the whole key, so the other models lose it too).
async fn per_model_limit(provider: &str, keys: [&str; 2], limited: &str, other: &str) {
    let mock = MockUpstream::start(Config::new()).await.unwrap();
    let http = reqwest::Client::new();
    mock.script().on_key(
        keys[0],
        Behavior::RateLimitedFor {
            model: limited.to_owned(),
            retry_after: Duration::from_secs(30),
        },
    );
    let r = rotator(provider, &keys);
    assert_eq!(
        call(&http, &mock, &r, provider, limited).await.unwrap(),
        (429, keys[0].to_owned())
    );
    for _ in 0..3 {
        assert_eq!(
            call(&http, &mock, &r, provider, limited).await.unwrap(),
            (200, keys[1].to_owned()),
            "the limited model moves to the other key"
        );
        assert_eq!(
            call(&http, &mock, &r, provider, other).await.unwrap(),
            (200, keys[0].to_owned()),
            "other models stay on the first key"
        );
    }
    let status = r.provider_status(provider).unwrap();
    assert_eq!(status.credentials[0].state, CredentialState::Available);
    assert_eq!(
        status.credentials[0].model_cooldowns[0].model.as_str(),
        limited
    );
    mock.shutdown().await;
}

#[tokio::test]
async fn a_gemini_per_model_429_rests_the_key_for_that_model_only() {
    per_model_limit(
        "gemini",
        ["AIza-a", "AIza-b"],
        "gemini-2.0-flash",
        "gemini-2.5-pro",
    )
    .await;
}

#[tokio::test]
async fn an_openai_per_model_429_rests_the_key_for_that_model_only() {
    per_model_limit("openai", ["sk-a", "sk-b"], "gpt-4o", "gpt-4o-mini").await;
}

/// Every key refused for the region (field failure 2: today Anthropic's 403 disables every
/// key and nothing brings them back): the provider's circuit opens instead, no key is
/// disabled, and a probe after the backoff closes it once the block is lifted.
async fn region_block(provider: &str) {
    let mock = MockUpstream::start(Config::new()).await.unwrap();
    let http = reqwest::Client::new();
    mock.script().set_default(Behavior::RegionBlocked);
    let clock = super::support::clock();
    let r = KeyRotator::builder()
        .clock(clock.clone())
        .provider(
            provider,
            ["k-a", "k-b", "k-c"]
                .iter()
                .fold(ProviderConfig::new(), |p, k| {
                    p.credential(CredentialConfig::new(*k).label(*k))
                }),
        )
        .reset_interval(Duration::ZERO)
        .build()
        .unwrap();
    let mut keys = Vec::new();
    for _ in 0..3 {
        let (status, key) = call(&http, &mock, &r, provider, "m-1").await.unwrap();
        assert!(status == 403 || status == 400, "{status}");
        keys.push(key);
    }
    keys.sort();
    assert_eq!(
        keys,
        ["k-a", "k-b", "k-c"],
        "each failure tries another key"
    );
    let retry_at = match call(&http, &mock, &r, provider, "m-1").await {
        Err(AcquireError::ProviderDegraded {
            cause: ProviderCause::RegionBlocked,
            retry_at,
            ..
        }) => retry_at,
        other => panic!("expected a degraded provider, got {other:?}"),
    };
    assert_eq!(
        mock.requests().len(),
        3,
        "nothing is sent while the circuit is open"
    );
    let status = r.provider_status(provider).unwrap();
    assert!(
        status
            .credentials
            .iter()
            .all(|c| c.state == CredentialState::Available),
        "{status:?}"
    );
    // The block is lifted; after the backoff one probe goes through and closes the circuit.
    mock.script().reset();
    clock.set(retry_at);
    assert_eq!(
        call(&http, &mock, &r, provider, "m-1").await.unwrap().0,
        200
    );
    assert!(r.provider_status(provider).unwrap().circuit.is_none());
    mock.shutdown().await;
}

#[tokio::test]
async fn every_openai_key_refused_for_the_region_opens_the_circuit() {
    region_block("openai").await;
}

#[tokio::test]
async fn every_anthropic_key_refused_for_the_region_opens_the_circuit() {
    region_block("anthropic").await;
}

#[tokio::test]
async fn every_gemini_key_refused_for_the_region_opens_the_circuit() {
    region_block("gemini").await;
}

/// A key out of credits (field failure 3: today `insufficient_quota` cools it for a minute, so
/// it is tried and fails every minute, or is gone for good) is depleted, re-checked with a
/// models listing on a backoff, and back once the account is paid.
#[tokio::test]
async fn a_depleted_key_comes_back_after_a_recheck_once_the_mock_clears_it() {
    let mock = MockUpstream::start(Config::new()).await.unwrap();
    let http = reqwest::Client::new();
    mock.script().on_key("sk-a", Behavior::InsufficientQuota);
    let clock = super::support::clock();
    let r = KeyRotator::builder()
        .provider(
            "openai",
            ProviderConfig::new()
                .credential(CredentialConfig::new("sk-a").label("sk-a"))
                .credential(CredentialConfig::new("sk-b").label("sk-b")),
        )
        .clock(clock.clone())
        .reset_interval(Duration::ZERO)
        .build()
        .unwrap();
    assert_eq!(
        call(&http, &mock, &r, "openai", "gpt-4o").await.unwrap(),
        (429, "sk-a".to_owned())
    );
    let probe = |key: String| {
        let http = http.clone();
        let url = format!("{}/v1/models", mock.base_url());
        async move {
            http.get(url)
                .bearer_auth(key)
                .send()
                .await
                .expect("mock reachable")
                .status()
                .as_u16()
        }
    };
    // Minutes later it is not handed out by itself: nothing but a re-check brings it back.
    clock.advance(Duration::from_secs(60));
    for _ in 0..3 {
        assert_eq!(
            call(&http, &mock, &r, "openai", "gpt-4o").await.unwrap().1,
            "sk-b"
        );
    }
    let due = r.due_probes("openai");
    assert_eq!(due.len(), 1);
    let status = probe(due[0].credential.expose_key().to_owned()).await;
    assert_eq!(status, 429, "still out of credits");
    let next = r.probe_failed(&due[0].credential).expect("rescheduled");
    // Someone pays.
    mock.script().reset();
    clock.set(next);
    let due = r.due_probes("openai");
    assert_eq!(due.len(), 1);
    assert_eq!(probe(due[0].credential.expose_key().to_owned()).await, 200);
    assert!(r.probe_succeeded(&due[0].credential));
    let status = r.provider_status("openai").unwrap();
    assert!(
        status
            .credentials
            .iter()
            .all(|c| c.state == CredentialState::Available)
    );
    // No completion was spent on the re-checks: the key saw one completion and two listings.
    let sent: Vec<String> = mock
        .requests()
        .iter()
        .filter(|q| q.header("authorization") == Some("Bearer sk-a"))
        .map(|q| q.path.clone())
        .collect();
    assert_eq!(sent, ["/v1/chat/completions", "/v1/models", "/v1/models"]);
    mock.shutdown().await;
}
