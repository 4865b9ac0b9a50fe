//! The provider circuit and the same 429 on every key (issue 11, item 2): with
//! `circuit = { rate_limits = true }`, a 429 from every key at once backs the provider off
//! (503 with `retry-after`, nothing sent upstream meanwhile) instead of cooling every key.

mod support;

use std::time::Duration;

use mock_upstream::{Behavior, Config, MockUpstream};
use support::{CHAT, InProcess, TOKEN, provider};

const KEYS: [&str; 3] = ["sk-rl-a", "sk-rl-b", "sk-rl-c"];

async fn post(gw: &InProcess) -> reqwest::Response {
    support::client()
        .post(format!("{}/openai/v1/chat/completions", gw.url()))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(CHAT)
        .send()
        .await
        .unwrap()
}

async fn every_key_rate_limited(rate_limits: bool) -> (MockUpstream, InProcess) {
    let upstream = MockUpstream::start(Config::new()).await.unwrap();
    // The every-key-failing scenario: each key gets the same 429.
    upstream
        .script()
        .set_default(Behavior::rate_limited(Duration::from_secs(20)));
    let gw = InProcess::start(&support::config_text(
        &upstream.base_url(),
        "",
        &[provider("openai", "openai", &KEYS)
            .with(&format!("circuit = {{ rate_limits = {rate_limits} }}"))],
    ))
    .await;
    (upstream, gw)
}

#[tokio::test]
async fn the_same_429_on_every_key_backs_the_provider_off_instead_of_cooling_every_key() {
    let (upstream, gw) = every_key_rate_limited(true).await;
    // One request meets the 429 on every key in turn; the last one opens the circuit.
    let first = post(&gw).await;
    assert!(matches!(first.status().as_u16(), 429 | 503), "{first:?}");
    assert_eq!(upstream.request_count(), 3, "each key asked once");
    // The next request is answered 503 with retry-after, and nothing goes upstream.
    let second = post(&gw).await;
    assert_eq!(second.status(), 503);
    let retry_after: u64 = second.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&retry_after), "{retry_after}");
    assert_eq!(upstream.request_count(), 3);
    // No key cools for it: the provider does, and /status says why.
    let status = support::get_json(&format!("{}/status", gw.url())).await;
    let p = &status["providers"][0];
    assert_eq!(p["circuit"]["cause"], "provider rate limited", "{status}");
    for c in p["credentials"].as_array().unwrap() {
        assert_eq!(c["state"], "available", "{status}");
    }
    for key in KEYS {
        assert!(!status.to_string().contains(key));
    }
}

#[tokio::test]
async fn without_rate_limits_the_same_429_cools_every_key_as_before() {
    let (upstream, gw) = every_key_rate_limited(false).await;
    let first = post(&gw).await;
    assert_eq!(first.status(), 429);
    assert_eq!(upstream.request_count(), 3);
    let status = support::get_json(&format!("{}/status", gw.url())).await;
    let p = &status["providers"][0];
    assert!(p["circuit"].is_null(), "{status}");
    for c in p["credentials"].as_array().unwrap() {
        assert_eq!(c["state"], "cooling", "{status}");
    }
}
