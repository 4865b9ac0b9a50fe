//! Prompt-cache affinity through the gateway (issue 11, field failure 5: rotation destroys
//! prompt caches). With `cache_affinity = true`, requests that share a stable prompt prefix
//! land on one key, so the provider's cache for that prefix keeps hitting; without it, the
//! strategy rotates them as before.

mod support;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use mock_upstream::{Behavior, Config, MockUpstream};
use support::{InProcess, TOKEN, provider};

const KEYS: [&str; 4] = ["sk-aff-1", "sk-aff-2", "sk-aff-3", "sk-aff-4"];

async fn mock() -> MockUpstream {
    MockUpstream::start(Config::new()).await.unwrap()
}

async fn gateway(upstream: &MockUpstream, family: &'static str, affinity: bool) -> InProcess {
    InProcess::start(&support::config_text(
        &upstream.base_url(),
        "",
        &[provider(family, family, &KEYS)
            .with("strategy = \"round-robin\"")
            .with(&format!("cache_affinity = {affinity}"))],
    ))
    .await
}

/// Sends `body` to `path` and returns the key the upstream saw last (a retry after a 429 is a
/// second upstream request).
async fn send(upstream: &MockUpstream, gw: &InProcess, path: &str, body: String) -> String {
    let before = upstream.request_count();
    let r = support::client()
        .post(format!("{}{path}", gw.url()))
        .bearer_auth(TOKEN)
        .header("x-api-key", TOKEN)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let requests = upstream.requests();
    assert!(requests.len() as u64 > before, "an upstream request");
    requests
        .last()
        .unwrap()
        .key
        .clone()
        .expect("a key was sent")
}

/// An OpenAI chat request: system prompt `app`, then a conversation ending in `turn`.
fn chat(app: usize, turn: usize) -> String {
    format!(
        r#"{{"model":"gpt-4o-mini","messages":[{{"role":"system","content":"You are the assistant of application {app}. Follow its long style guide."}},{{"role":"user","content":"Hello"}},{{"role":"assistant","content":"Hi, how can I help?"}},{{"role":"user","content":"Question number {turn}"}}]}}"#
    )
}

const CHAT_PATH: &str = "/openai/v1/chat/completions";

#[tokio::test]
async fn requests_sharing_a_prompt_prefix_stay_on_one_key() {
    let upstream = mock().await;
    let gw = gateway(&upstream, "openai", true).await;
    // Eight applications, five turns each, interleaved as real traffic is.
    let mut homes: HashMap<usize, HashSet<String>> = HashMap::new();
    for turn in 0..5 {
        for app in 0..8 {
            let key = send(&upstream, &gw, CHAT_PATH, chat(app, turn)).await;
            homes.entry(app).or_default().insert(key);
        }
    }
    for (app, keys) in &homes {
        assert_eq!(
            keys.len(),
            1,
            "application {app} moved between keys: {keys:?}"
        );
    }
    // Different prefixes spread over the keys instead of piling onto one.
    let used: HashSet<&String> = homes.values().flatten().collect();
    assert!(used.len() >= 2, "{used:?}");

    // The count is in `/status` and `/metrics`.
    let status = support::get_json(&format!("{}/status", gw.url())).await;
    assert_eq!(status["providers"][0]["affinity_placed"], 40, "{status}");
    let metrics = support::client()
        .get(format!("{}/metrics", gw.url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("akr_gateway_affinity_placed{provider=\"openai\"} 40"),
        "{metrics}"
    );
    for key in KEYS {
        assert!(!metrics.contains(key) && !status.to_string().contains(key));
    }
}

#[tokio::test]
async fn without_cache_affinity_requests_rotate_as_before() {
    let upstream = mock().await;
    let gw = gateway(&upstream, "openai", false).await;
    let mut keys = Vec::new();
    for turn in 0..8 {
        keys.push(send(&upstream, &gw, CHAT_PATH, chat(0, turn)).await);
    }
    // Round-robin: one application's requests go to every key in turn.
    let distinct: HashSet<&String> = keys.iter().collect();
    assert_eq!(distinct.len(), KEYS.len(), "{keys:?}");
    let status = support::get_json(&format!("{}/status", gw.url())).await;
    assert_eq!(status["providers"][0]["affinity_placed"], 0, "{status}");
}

#[tokio::test]
async fn when_a_prefix_key_is_rate_limited_only_its_prefixes_move() {
    let upstream = mock().await;
    let gw = gateway(&upstream, "openai", true).await;
    let mut homes = Vec::new();
    for app in 0..12 {
        homes.push(send(&upstream, &gw, CHAT_PATH, chat(app, 0)).await);
    }
    // App 0's key hits its limit: it cools, and app 0 moves (within the same request).
    let lost = homes[0].clone();
    upstream.script().on_key(
        lost.clone(),
        Behavior::rate_limited(Duration::from_secs(600)),
    );
    for (app, home) in homes.iter().enumerate() {
        let now = send(&upstream, &gw, CHAT_PATH, chat(app, 1)).await;
        if *home == lost {
            assert_ne!(now, lost, "application {app} stayed on the cooling key");
        } else {
            assert_eq!(&now, home, "application {app} moved though its key is fine");
        }
    }
}

#[tokio::test]
async fn anthropic_and_gemini_prefixes_stay_on_one_key() {
    let upstream = mock().await;
    let anthropic = gateway(&upstream, "anthropic", true).await;
    for app in 0..4 {
        let mut keys = HashSet::new();
        for turn in 0..4 {
            let body = format!(
                r#"{{"model":"claude-sonnet-4-5","max_tokens":64,"system":"Application {app}'s style guide.","messages":[{{"role":"user","content":"Hello"}},{{"role":"assistant","content":"Hi"}},{{"role":"user","content":"Turn {turn}"}}]}}"#
            );
            keys.insert(send(&upstream, &anthropic, "/anthropic/v1/messages", body).await);
        }
        assert_eq!(keys.len(), 1, "anthropic application {app}: {keys:?}");
    }
    let gemini = gateway(&upstream, "gemini", true).await;
    for app in 0..4 {
        let mut keys = HashSet::new();
        for turn in 0..4 {
            let body = format!(
                r#"{{"systemInstruction":{{"parts":[{{"text":"Application {app}'s style guide."}}]}},"contents":[{{"role":"user","parts":[{{"text":"Hello"}}]}},{{"role":"model","parts":[{{"text":"Hi"}}]}},{{"role":"user","parts":[{{"text":"Turn {turn}"}}]}}]}}"#
            );
            let path = "/gemini/v1beta/models/gemini-2.0-flash:generateContent";
            keys.insert(send(&upstream, &gemini, path, body).await);
        }
        assert_eq!(keys.len(), 1, "gemini application {app}: {keys:?}");
    }
}
