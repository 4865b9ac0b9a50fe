//! What operators and SDKs read of the gateway itself: `/metrics`' content type, the
//! gateway's own error bodies in each provider's exact shape, and the access log.

mod support;

use std::time::Duration;

use mock_upstream::{Behavior, Config, MockUpstream};
use support::{CHAT, GatewayProcess, InProcess, TOKEN, provider};

async fn mock() -> MockUpstream {
    MockUpstream::start(Config::new()).await.unwrap()
}

#[tokio::test]
async fn metrics_are_served_as_the_openmetrics_they_are() {
    let upstream = mock().await;
    let gw = InProcess::start(&support::config_text(
        &upstream.base_url(),
        "",
        &[provider("openai", "openai", &["sk-a"])],
    ))
    .await;
    let r = support::client()
        .get(format!("{}/metrics", gw.url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    // The body is OpenMetrics: it ends with the `# EOF` marker the format requires.
    let body = r.text().await.unwrap();
    assert!(body.ends_with("# EOF\n"), "{body}");
}

#[tokio::test]
async fn the_gateways_own_429_reads_as_each_providers() {
    let upstream = mock().await;
    for key in ["sk-o", "ant-a", "g-a"] {
        upstream
            .script()
            .on_key(key, Behavior::rate_limited(Duration::from_secs(20)));
    }
    let gw = InProcess::start(&support::config_text(
        &upstream.base_url(),
        "",
        &[
            provider("openai", "openai", &["sk-o"]),
            provider("anthropic", "anthropic", &["ant-a"]),
            provider("gemini", "gemini", &["g-a"]),
        ],
    ))
    .await;
    let c = support::client();
    let url = gw.url();
    let send = |path: &str| {
        c.post(format!("{url}{path}"))
            .bearer_auth(TOKEN)
            .header("x-api-key", TOKEN)
            .header("x-goog-api-key", TOKEN)
            .body(CHAT)
    };
    let paths = [
        ("openai", "/openai/v1/chat/completions"),
        ("anthropic", "/anthropic/v1/messages"),
        (
            "gemini",
            "/gemini/v1beta/models/gemini-2.0-flash:generateContent",
        ),
    ];
    for (name, path) in paths {
        // The first answer is the provider's own 429, passed on; the second is the gateway's,
        // made while the only key cools.
        let _ = send(path).send().await.unwrap();
        let r = send(path).send().await.unwrap();
        assert_eq!(r.status(), 429, "{name}");
        let retry: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        match name {
            "openai" => {
                assert_eq!(body["error"]["code"], "rate_limit_exceeded", "{body}");
                assert!(body["error"]["message"].is_string(), "{body}");
                assert!(body["error"].get("param").is_some(), "{body}");
            }
            "anthropic" => {
                assert_eq!(body["type"], "error", "{body}");
                assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
            }
            _ => {
                assert_eq!(body["error"]["code"], 429, "{body}");
                assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED", "{body}");
                let info = body["error"]["details"]
                    .as_array()
                    .and_then(|d| {
                        d.iter()
                            .find(|d| d["@type"] == "type.googleapis.com/google.rpc.RetryInfo")
                    })
                    .unwrap_or_else(|| panic!("no RetryInfo: {body}"));
                assert_eq!(info["retryDelay"], format!("{retry}s"), "{body}");
            }
        }
    }
}

const CANARY: &str = "sk-CANARY-access-log-0123456789abcdefghijklmnop";

#[tokio::test]
async fn the_access_log_has_a_line_per_request_and_never_the_key() {
    let upstream = mock().await;
    upstream
        .script()
        .on_key(CANARY, Behavior::rate_limited(Duration::from_secs(30)));
    let gw = GatewayProcess::start(&support::config_text(
        &upstream.base_url(),
        "access_log = \"info\"",
        &[provider("openai", "openai", &[CANARY, "sk-good"])],
    ));
    let r = support::client()
        .post(format!("{}/openai/v1/chat/completions", gw.url()))
        .bearer_auth(TOKEN)
        .body(CHAT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    support::wait_until("the access log line", || async {
        gw.logs().contains("ai_key_rotator_gateway::access")
    })
    .await;
    let logs = gw.stop_and_read_logs();
    let line = logs
        .lines()
        .find(|l| l.contains("ai_key_rotator_gateway::access"))
        .unwrap();
    // The canary key was tried first and cooled; the second key answered.
    for field in [
        "method=POST",
        "path=\"/openai/v1/chat/completions\"",
        "route=\"/openai\"",
        "provider=\"openai\"",
        "key_label=\"openai-2\"",
        "key_fingerprint=",
        "status=200",
        "attempts=2",
        "duration_ms=",
    ] {
        assert!(line.contains(field), "{field} not in {line}");
    }
    assert!(!logs.contains(CANARY), "the key is in the logs:\n{logs}");
    assert!(!logs.contains("sk-good"), "the key is in the logs:\n{logs}");

    // Switched off: no line.
    let gw = GatewayProcess::start(&support::config_text(
        &upstream.base_url(),
        "access_log = \"off\"",
        &[provider("openai", "openai", &["sk-good"])],
    ));
    let r = support::client()
        .post(format!("{}/openai/v1/chat/completions", gw.url()))
        .bearer_auth(TOKEN)
        .body(CHAT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Logs are complete once the process has exited.
    let logs = gw.stop_and_read_logs();
    assert!(!logs.contains("ai_key_rotator_gateway::access"), "{logs}");
}

#[tokio::test]
async fn healthz_says_ok_or_what_is_wrong_with_the_store() {
    let upstream = mock().await;
    // No store trouble: ok.
    let gw = InProcess::start(&support::config_text(
        &upstream.base_url(),
        "",
        &[provider("openai", "openai", &["sk-a"])],
    ))
    .await;
    let health = support::get_json(&format!("{}/healthz", gw.url())).await;
    assert_eq!(health["status"], "ok", "{health}");

    // A Redis store nobody answers on: the gateway serves from its local view and says why.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let gw = InProcess::start(&support::config_text(
        &upstream.base_url(),
        &format!("store = {{ type = \"redis\", url = \"redis://127.0.0.1:{port}/\" }}"),
        &[provider("openai", "openai", &["sk-a"])],
    ))
    .await;
    let url = format!("{}/healthz", gw.url());
    support::wait_until("healthz reports the store", || {
        let url = url.clone();
        async move { support::get_json(&url).await["status"] == "degraded" }
    })
    .await;
    let health = support::get_json(&url).await;
    assert_eq!(health["store"]["state"], "failing", "{health}");
    let cause = health["store"]["cause"].as_str().unwrap();
    assert!(
        cause.contains("cannot be reached") || cause.contains("in time"),
        "{cause}"
    );
    // Still serving.
    let r = support::client()
        .post(format!("{}/openai/v1/chat/completions", gw.url()))
        .bearer_auth(support::TOKEN)
        .header("content-type", "application/json")
        .body(CHAT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
