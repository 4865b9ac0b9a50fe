//! Gateways sharing a Redis store: `/status` lists the fleet and flags the gateway whose keys
//! differ; a `rediss://` store with the configuration's `ca_file` works end to end. Each test
//! starts its own `redis-server`.

mod support;

#[path = "../../ai-key-rotator/tests/store_support/redis_server.rs"]
mod redis_server;

use redis_server::RedisServer;
use support::{InProcess, provider};

const CANARY: &str = "sk-canary-fleet-0d9c8b7a";

#[tokio::test(flavor = "multi_thread")]
async fn status_lists_the_fleet_and_flags_the_gateway_left_on_old_keys() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = format!(
        "store = {{ type = \"redis\", url = \"{}\", prefix = \"gw\" }}",
        server.url()
    );
    let start = |keys: &'static [&'static str]| {
        let text = support::config_text(
            "http://127.0.0.1:9",
            &store,
            &[provider("openai", "openai", keys)],
        );
        async move { InProcess::start(&text).await }
    };
    let current = [
        start(&[CANARY, "sk-b"]).await,
        start(&[CANARY, "sk-b"]).await,
    ];
    let old = start(&[CANARY, "sk-old"]).await;
    for gw in current.iter().chain([&old]) {
        let url = format!("{}/status", gw.url());
        support::wait_until("the status lists three gateways", || {
            let url = url.clone();
            async move {
                support::get_json(&url).await["fleet"]["replicas"]
                    .as_array()
                    .is_some_and(|r| r.len() == 3)
            }
        })
        .await;
        let status = support::get_json(&url).await;
        let replicas = status["fleet"]["replicas"].as_array().unwrap();
        let flagged: Vec<_> = replicas
            .iter()
            .filter(|r| r["keys_differ"] == true)
            .collect();
        assert_eq!(flagged.len(), 1, "{status}");
        let old_flagged = std::ptr::eq(gw, &old) == (flagged[0]["this_process"] == true);
        assert!(
            old_flagged,
            "the gateway on old keys is the one flagged: {status}"
        );
        assert_eq!(status["fleet"]["live_processes"], 3, "{status}");
        assert!(!status.to_string().contains(CANARY), "{status}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tls_store_with_the_configured_ca_is_healthy() {
    let Some((server, ca)) = RedisServer::start_tls() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca).unwrap();
    let text = support::config_text(
        "http://127.0.0.1:9",
        &format!(
            "store = {{ type = \"redis\", url = \"{}\", ca_file = \"{}\", connect_timeout_ms = 2000, command_timeout_ms = 2000 }}",
            server.tls_url(),
            ca_file.display()
        ),
        &[provider("openai", "openai", &["sk-a"])],
    );
    let gw = InProcess::start(&text).await;
    assert!(gw.gateway.rotator().store_error().is_none());
    let health = support::get_json(&format!("{}/healthz", gw.url())).await;
    assert_eq!(health["status"], "ok", "{health}");
}
