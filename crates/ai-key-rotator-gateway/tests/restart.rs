//! A gateway restarted on the same state store shows in `/status` what it showed before it
//! stopped: each key's uses, exhaustions, failure streak, cooldown with its reason, and
//! per-model rests. Once on an SQLite store, once on Redis (a `redis-server` of its own).

mod support;

#[path = "../../ai-key-rotator/tests/store_support/redis_server.rs"]
mod redis_server;

use std::time::Duration;

use mock_upstream::{Behavior, Config, MockUpstream};
use redis_server::RedisServer;
use support::{CHAT, GatewayProcess, TOKEN, provider};

/// A key the mock answers every request for with a 429 (a key-wide limit for OpenAI; a
/// per-model quota for Gemini, whose answer names the model). It also checks that no key
/// reaches the store.
const CANARY: &str = "sk-canary-restart-5b8e1f0c2a";

async fn send(url: &str, path: &str, body: &str) -> u16 {
    support::client()
        .post(format!("{url}{path}"))
        .bearer_auth(TOKEN)
        .header("x-goog-api-key", TOKEN)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// What must survive a restart, per key: everything but today's answers (kept by the usage
/// table, tested in `usage.rs`).
fn durable(status: &serde_json::Value) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for p in status["providers"].as_array().unwrap() {
        for c in p["credentials"].as_array().unwrap() {
            let mut c = c.clone();
            c.as_object_mut().unwrap().remove("today");
            out.push(serde_json::json!({ "provider": p["name"], "credential": c }));
        }
    }
    out
}

fn credential<'a>(status: &'a [serde_json::Value], label: &str) -> &'a serde_json::Value {
    &status
        .iter()
        .find(|c| c["credential"]["label"] == label)
        .unwrap_or_else(|| panic!("no {label} in {status:?}"))["credential"]
}

/// Runs traffic through a gateway on `store`, stops it, starts another on the same store and
/// compares `/status`.
async fn status_survives_a_restart(store: &str) {
    let upstream = MockUpstream::start(Config::new()).await.unwrap();
    upstream
        .script()
        .on_key(CANARY, Behavior::rate_limited(Duration::from_secs(600)));
    let config = support::config_text(
        &upstream.base_url(),
        store,
        &[
            provider("openai", "openai", &[CANARY, "sk-good"]),
            provider("gemini", "gemini", &[&format!("{CANARY}-g"), "sk-gem"]),
        ],
    );
    upstream.script().on_key(
        format!("{CANARY}-g"),
        Behavior::rate_limited(Duration::from_secs(600)),
    );
    let gemini = "/gemini/v1beta/models/gemini-2.0-flash:generateContent";
    let gemini_body = r#"{"contents":[{"parts":[{"text":"hi"}]}]}"#;

    let gw = GatewayProcess::start(&config);
    // The first request meets the canary's 429 and is answered by the other key.
    for _ in 0..3 {
        assert_eq!(
            send(&gw.url(), "/openai/v1/chat/completions", CHAT).await,
            200
        );
        assert_eq!(send(&gw.url(), gemini, gemini_body).await, 200);
    }
    let before = durable(&support::get_json(&format!("{}/status", gw.url())).await);
    let limited = credential(&before, "openai-1");
    assert_eq!(limited["state"], "cooling", "{before:?}");
    assert!(limited["reason"]["cause"].is_string(), "{before:?}");
    assert!(
        limited["consecutive_failures"].as_u64() >= Some(1),
        "{before:?}"
    );
    assert!(credential(&before, "openai-2")["times_used"].as_u64() >= Some(3));
    let resting = credential(&before, "gemini-1");
    assert_eq!(resting["state"], "available", "{before:?}");
    assert_eq!(
        resting["model_cooldowns"][0]["model"], "gemini-2.0-flash",
        "{before:?}"
    );
    assert!(resting["model_cooldowns"][0]["reason"]["cause"].is_string());
    // A graceful stop writes everything.
    let _ = gw.stop();

    let gw = GatewayProcess::start(&config);
    let after = durable(&support::get_json(&format!("{}/status", gw.url())).await);
    assert_eq!(after, before);
    // And the restarted gateway keeps the canary out of gemini-2.0-flash's way.
    let served = upstream.count_for_key(&format!("{CANARY}-g"));
    assert_eq!(send(&gw.url(), gemini, gemini_body).await, 200);
    assert_eq!(upstream.count_for_key(&format!("{CANARY}-g")), served);
    let _ = gw.stop();
}

#[tokio::test]
async fn on_sqlite_status_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    status_survives_a_restart(&format!(
        "store = {{ type = \"sqlite\", path = \"{}\" }}",
        db.display()
    ))
    .await;
    for file in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(file.unwrap().path()).unwrap();
        assert!(
            !bytes.windows(CANARY.len()).any(|w| w == CANARY.as_bytes()),
            "a key reached the database"
        );
    }
}

#[tokio::test]
async fn on_redis_status_survives_a_restart() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    status_survives_a_restart(&format!(
        "store = {{ type = \"redis\", url = \"{}\", prefix = \"restart\" }}",
        server.url()
    ))
    .await;
    let keys = server.command(&["KEYS", "*"]).unwrap();
    assert!(keys.contains("{restart:gemini}:models"), "{keys}");
    for key in keys
        .lines()
        .map(str::trim_end)
        .filter(|l| l.starts_with('{'))
    {
        let all = server.command(&["HGETALL", key]).unwrap_or_default();
        assert!(!all.contains(CANARY), "a key reached Redis ({key})");
    }
}
