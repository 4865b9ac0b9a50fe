//! The gateway as an HTTP face over the core's retry loop: streams that fail before their first
//! content are retried so the client sees one clean stream, server errors and transport
//! failures are retried with backoff, errors after the first content are reported, and the
//! pool's headroom is announced in response headers. Each test runs a mock upstream.

mod support;

use mock_upstream::{Behavior, Config, MockUpstream, Rule};
use support::{GatewayProcess, InProcess, TOKEN, provider};

async fn mock() -> MockUpstream {
    MockUpstream::start(Config::new()).await.unwrap()
}

async fn post(gw: &InProcess, path: &str, body: &str) -> reqwest::Response {
    support::client()
        .post(format!("{}{path}", gw.url()))
        .bearer_auth(TOKEN)
        .header("x-api-key", TOKEN)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

/// The state and cooldown cause of a key in `/status`, by label.
async fn key_state(gw: &InProcess, provider: &str, label: &str) -> (String, String) {
    let status = support::get_json(&format!("{}/status", gw.url())).await;
    let c = status["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == provider)
        .and_then(|p| {
            p["credentials"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["label"] == label)
                .cloned()
        })
        .unwrap_or_else(|| panic!("no {provider}/{label} in {status}"));
    (
        c["state"].as_str().unwrap_or_default().to_owned(),
        c["reason"]["cause"].as_str().unwrap_or_default().to_owned(),
    )
}

const RESPONSES_STREAM: &str = r#"{"model":"gpt-4o-mini","input":"hi","stream":true}"#;
const CHAT_STREAM: &str = support::CHAT_STREAM;
const MESSAGES_STREAM: &str = r#"{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;

/// One case of a stream that fails before its content on the first key.
struct Early {
    family: &'static str,
    path: &'static str,
    body: &'static str,
    /// An event every complete stream of the dialect ends with.
    end: &'static str,
    /// An event of the opening that must appear once, not once per attempt.
    opening: &'static str,
}

const EARLY: &[Early] = &[
    Early {
        family: "openai",
        path: "/p/v1/responses",
        body: RESPONSES_STREAM,
        end: "event: response.completed",
        opening: "event: response.created",
    },
    Early {
        family: "openai",
        path: "/p/v1/chat/completions",
        body: CHAT_STREAM,
        end: "data: [DONE]",
        opening: "\"role\":\"assistant\"",
    },
    Early {
        family: "gemini",
        path: "/p/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
        body: r#"{"contents":[{"parts":[{"text":"hi"}]}]}"#,
        end: "\"finishReason\":\"STOP\"",
        opening: "\"text\":\"Hello\"",
    },
];

/// A quota error right after the stream's opening (OpenAI Responses' `response.created` then
/// `error`, a chat stream's role chunk then `{"error":…}`, Gemini's 429 chunk) blames the key:
/// the key is reported and the request is sent again on the next key at once; the client gets
/// the second stream only, whole. On a gateway that passes streams straight on, the client
/// gets the broken stream.
#[tokio::test]
async fn a_quota_error_before_the_first_content_is_answered_by_another_key() {
    for case in EARLY {
        let upstream = mock().await;
        upstream
            .script()
            .on_key("key-a", Behavior::StreamErrorAtStart);
        let gw = InProcess::start(&support::config_text(
            &upstream.base_url(),
            "",
            &[provider("p", case.family, &["key-a", "key-b"])],
        ))
        .await;
        let r = post(&gw, case.path, case.body).await;
        assert_eq!(r.status(), 200, "{}", case.path);
        let text = r.text().await.unwrap();
        for failure in ["event: error", "insufficient_quota", "RESOURCE_EXHAUSTED"] {
            assert!(!text.contains(failure), "{}: {text}", case.path);
        }
        assert!(text.contains(case.end), "{}: {text}", case.path);
        assert_eq!(
            text.matches(case.opening).count(),
            1,
            "{}: {text}",
            case.path
        );
        assert_eq!(upstream.count_for_key("key-a"), 1, "{}", case.path);
        assert_eq!(upstream.count_for_key("key-b"), 1, "{}", case.path);
        // The first key was reported: it rests, and says why.
        let (state, cause) = key_state(&gw, "p", "p-1").await;
        // Out of credits is a depleted key; Gemini's limit is the model's, so the key rests
        // for that model only and stays available for others.
        if case.family != "gemini" {
            assert!(
                state == "cooling" || state == "depleted",
                "{}: {state}",
                case.path
            );
            assert!(
                cause.starts_with("quota exhausted") || cause.starts_with("rate limited"),
                "{}: {cause}",
                case.path
            );
        }
    }
}

/// Anthropic's `message_start` then `overloaded_error` is not the key's fault: the loop backs
/// off and sends the request again, and the client gets one clean stream.
#[tokio::test]
async fn an_overload_after_message_start_is_retried_and_the_client_sees_one_stream() {
    let upstream = mock().await;
    upstream
        .script()
        .add(Rule::key("ant-a", Behavior::StreamErrorAtStart).once());
    let gw = InProcess::start(&support::config_text(
        &upstream.base_url(),
        "",
        &[provider("anthropic", "anthropic", &["ant-a"])],
    ))
    .await;
    let r = post(&gw, "/anthropic/v1/messages", MESSAGES_STREAM).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(!text.contains("overloaded_error"), "{text}");
    assert_eq!(text.matches("event: message_start").count(), 1, "{text}");
    assert!(text.contains("event: message_stop"), "{text}");
    assert_eq!(upstream.count_for_key("ant-a"), 2);
    // An overload does not rest the key.
    assert_eq!(
        key_state(&gw, "anthropic", "anthropic-1").await.0,
        "available"
    );
}

/// A stream cut after its opening but before any content is a transport failure: retried,
/// and the client gets one clean stream.
#[tokio::test]
async fn a_stream_cut_before_its_first_content_is_retried() {
    let upstream = mock().await;
    upstream
        .script()
        .add(Rule::key("ant-a", Behavior::StreamBrokenAtStart).once());
    let gw = InProcess::start(&support::config_text(
        &upstream.base_url(),
        "",
        &[provider("anthropic", "anthropic", &["ant-a"])],
    ))
    .await;
    let r = post(&gw, "/anthropic/v1/messages", MESSAGES_STREAM).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert_eq!(text.matches("event: message_start").count(), 1, "{text}");
    assert!(text.contains("event: message_stop"), "{text}");
    assert_eq!(upstream.count_for_key("ant-a"), 2);
}

/// When every attempt fails before content, the client gets the last stream as the provider
/// sent it, up to and including its error event.
#[tokio::test]
async fn when_every_attempt_fails_before_content_the_last_stream_is_passed_on() {
    let upstream = mock().await;
    upstream
        .script()
        .on_key("ant-a", Behavior::StreamErrorAtStart);
    let gw = InProcess::start(&support::config_text(
        &upstream.base_url(),
        "max_attempts = 3",
        &[provider("anthropic", "anthropic", &["ant-a"])],
    ))
    .await;
    let r = post(&gw, "/anthropic/v1/messages", MESSAGES_STREAM).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert_eq!(text.matches("event: message_start").count(), 1, "{text}");
    let last: Vec<&str> = text.trim_end().lines().rev().take(2).collect();
    assert_eq!(last[1], "event: error", "{text}");
    assert!(last[0].contains("overloaded_error"), "{text}");
    assert_eq!(upstream.count_for_key("ant-a"), 3);
}

/// What is forwarded stays byte-exact: the held opening and the rest of the stream reach the
/// client exactly as the upstream sent them, odd spacing, comments and CRLFs included.
#[tokio::test]
async fn a_held_stream_is_forwarded_byte_for_byte() {
    let upstream = mock().await;
    let body = ": comment first\r\nevent: message_start\r\ndata:{\"type\":\"message_start\"}\r\n\r\n\
                event: ping\ndata: {\"type\": \"ping\"}\n\n\
                event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"é\"}}\n\n\
                event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    upstream.script().on_key(
        "ant-a",
        Behavior::Raw {
            status: 200,
            headers: vec![("content-type".into(), "text/event-stream".into())],
            body: body.into(),
        },
    );
    let gw = InProcess::start(&support::config_text(
        &upstream.base_url(),
        "",
        &[provider("anthropic", "anthropic", &["ant-a"])],
    ))
    .await;
    let r = post(&gw, "/anthropic/v1/messages", MESSAGES_STREAM).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap(), body.as_bytes());
}

/// A preamble is held at most `stream_preamble_ms`: a stream whose first content is slow is
/// then passed on as it is, opening first.
#[tokio::test]
async fn a_slow_first_content_is_not_waited_for_past_the_preamble_bound() {
    let upstream = mock().await;
    // An hour between events: only the bound can end the holding.
    upstream.script().on_key(
        "sk-a",
        Behavior::SlowStream {
            chunk_interval: std::time::Duration::from_secs(3600),
        },
    );
    let gw = InProcess::start(&support::config_text(
        &upstream.base_url(),
        "stream_preamble_ms = 50",
        &[provider("openai", "openai", &["sk-a"])],
    ))
    .await;
    let mut r = post(&gw, "/openai/v1/chat/completions", CHAT_STREAM).await;
    assert_eq!(r.status(), 200);
    let first = r.chunk().await.unwrap().expect("the opening");
    assert!(
        String::from_utf8_lossy(&first).contains("\"role\":\"assistant\""),
        "{first:?}"
    );
}

/// Server errors are retried with backoff (the same rules as the core's `execute`), so a
/// passing 500 or 529 never reaches the client; when they persist, the client gets the
/// provider's last answer after `max_attempts`.
#[tokio::test]
async fn server_errors_are_retried_with_backoff() {
    for (family, path, body, behavior) in [
        (
            "openai",
            "/p/v1/chat/completions",
            support::CHAT,
            Behavior::ServerError,
        ),
        (
            "anthropic",
            "/p/v1/messages",
            r#"{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}"#,
            Behavior::Overloaded,
        ),
    ] {
        let upstream = mock().await;
        upstream
            .script()
            .add(Rule::key("key-a", behavior.clone()).times(2));
        let gw = InProcess::start(&support::config_text(
            &upstream.base_url(),
            "",
            &[provider("p", family, &["key-a"])],
        ))
        .await;
        let r = post(&gw, path, body).await;
        assert_eq!(r.status(), 200, "{family}");
        assert_eq!(upstream.count_for_key("key-a"), 3, "{family}");

        upstream.script().on_key("key-a", behavior);
        let r = post(&gw, path, body).await;
        let status = r.status().as_u16();
        assert!(status == 500 || status == 529, "{family}: {status}");
        // The provider's own error body, in its shape.
        assert!(r.text().await.unwrap().contains("error"), "{family}");
        assert_eq!(upstream.count_for_key("key-a"), 3 + 4, "{family}");
    }
}

/// A connection the upstream closes without answering is a transport failure: retried, and
/// answered 502 only when it persists.
#[tokio::test]
async fn transport_failures_are_retried() {
    let upstream = mock().await;
    upstream
        .script()
        .add(Rule::key("sk-a", Behavior::CloseConnection).once());
    let gw = InProcess::start(&support::config_text(
        &upstream.base_url(),
        "max_attempts = 2",
        &[provider("openai", "openai", &["sk-a"])],
    ))
    .await;
    let r = post(&gw, "/openai/v1/chat/completions", support::CHAT).await;
    assert_eq!(r.status(), 200);
    assert_eq!(upstream.count_for_key("sk-a"), 2);

    upstream.script().on_key("sk-a", Behavior::CloseConnection);
    let r = post(&gw, "/openai/v1/chat/completions", support::CHAT).await;
    assert_eq!(r.status(), 502);
    assert_eq!(upstream.count_for_key("sk-a"), 4);
    // A transport failure says nothing about the key.
    assert_eq!(key_state(&gw, "openai", "openai-1").await.0, "available");
}

/// An error event after the first content cannot be retried: the client gets the stream as
/// it came, and the error is reported against the key. A key-blamed one rests the key, so
/// the next stream goes to the other key.
#[tokio::test]
async fn an_error_after_the_first_content_is_passed_on_and_reported() {
    let upstream = mock().await;
    let quota_midway = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n\
                        data: {\"error\":{\"message\":\"You exceeded your current quota\",\"type\":\"insufficient_quota\",\"code\":\"insufficient_quota\"}}\n\n";
    upstream.script().add(
        Rule::key(
            "sk-a",
            Behavior::Raw {
                status: 200,
                headers: vec![("content-type".into(), "text/event-stream".into())],
                body: quota_midway.into(),
            },
        )
        .once(),
    );
    let gw = InProcess::start(&support::config_text(
        &upstream.base_url(),
        "",
        &[provider("openai", "openai", &["sk-a", "sk-b"])],
    ))
    .await;
    let r = post(&gw, "/openai/v1/chat/completions", CHAT_STREAM).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap(), quota_midway.as_bytes());
    let (state, cause) = key_state(&gw, "openai", "openai-1").await;
    assert!(state == "cooling" || state == "depleted", "{state}");
    assert!(cause.starts_with("quota exhausted"), "{cause}");
    let r = post(&gw, "/openai/v1/chat/completions", CHAT_STREAM).await;
    assert!(r.text().await.unwrap().contains("[DONE]"));
    assert_eq!(upstream.count_for_key("sk-b"), 1);
}

/// Anthropic's `overloaded_error` after content is passed on as it came and reported against
/// the key (an overload leaves the key available: it is evidence against the provider, not
/// the key) and counted.
#[tokio::test]
async fn an_anthropic_overload_mid_stream_is_reported() {
    let upstream = mock().await;
    upstream
        .script()
        .add(Rule::key("ant-a", Behavior::StreamErrorMidway).once());
    let gw = InProcess::start(&support::config_text(
        &upstream.base_url(),
        "",
        &[provider("anthropic", "anthropic", &["ant-a"])],
    ))
    .await;
    let r = post(&gw, "/anthropic/v1/messages", MESSAGES_STREAM).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.contains("content_block_delta"), "{text}");
    assert!(text.contains("overloaded_error"), "{text}");
    // Content had reached the client: the request was not sent again.
    assert_eq!(upstream.count_for_key("ant-a"), 1);
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
        metrics.contains("akr_gateway_stream_errors_total{provider=\"anthropic\"} 1"),
        "{metrics}"
    );
    assert_eq!(
        key_state(&gw, "anthropic", "anthropic-1").await.0,
        "available"
    );
}

/// The provider's rate-limit headers reach the client unchanged, and the gateway adds the
/// pool's headroom for the route: the remaining requests and tokens summed over the available
/// keys, from each key's last success.
#[tokio::test]
async fn rate_limit_headers_pass_through_and_the_pool_headroom_is_added() {
    let upstream = mock().await;
    let gw = InProcess::start(&support::config_text(
        &upstream.base_url(),
        "",
        &[provider("openai", "openai", &["sk-a", "sk-b"])],
    ))
    .await;
    let header = |r: &reqwest::Response, name: &str| -> Option<u64> {
        r.headers().get(name)?.to_str().ok()?.parse().ok()
    };
    let r = post(&gw, "/openai/v1/chat/completions", support::CHAT).await;
    assert_eq!(r.status(), 200);
    let requests = header(&r, "x-ratelimit-remaining-requests").expect("provider header");
    let tokens = header(&r, "x-ratelimit-remaining-tokens").expect("provider header");
    assert!(r.headers().contains_key("x-ratelimit-reset-requests"));
    // Only the first key has reported so far.
    assert_eq!(header(&r, "x-akr-pool-remaining-requests"), Some(requests));
    assert_eq!(header(&r, "x-akr-pool-remaining-tokens"), Some(tokens));
    assert_eq!(header(&r, "x-akr-pool-available-keys"), Some(2));

    // Send the next request to the second key by taking the first out (an invalid-key
    // answer disables it): both keys' figures are then known, and only the available key's
    // count.
    upstream
        .script()
        .add(Rule::key("sk-a", Behavior::InvalidKey).once());
    let r = post(&gw, "/openai/v1/chat/completions", support::CHAT).await;
    assert_eq!(r.status(), 200);
    let b_requests = header(&r, "x-ratelimit-remaining-requests").unwrap();
    assert_eq!(
        header(&r, "x-akr-pool-remaining-requests"),
        Some(b_requests)
    );
    assert_eq!(header(&r, "x-akr-pool-available-keys"), Some(1));
    // Both keys available again: both last figures count.
    assert!(gw.gateway.rotator().enable("openai", "sk-a"));
    let r = post(&gw, "/openai/v1/chat/completions", support::CHAT).await;
    assert_eq!(
        header(&r, "x-akr-pool-remaining-requests"),
        Some(requests + b_requests)
    );
    assert_eq!(header(&r, "x-akr-pool-available-keys"), Some(2));
}

/// The new paths keep keys out of everything: a stream whose error event echoes the key (held,
/// then passed on when every key failed so), a transport failure and server errors echoing the
/// key (retried, the last passed on) leave no key in the client's answers, `/status`,
/// `/metrics` or the logs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_never_appear_when_streams_fail_early_or_attempts_are_retried() {
    const CANARY_1: &str = "sk-ant-CANARY-1-5ca1ab1e";
    const CANARY_2: &str = "sk-ant-CANARY-2-5ca1ab1e";
    const CANARY_3: &str = "sk-CANARY-3-5ca1ab1e";
    let upstream = mock().await;
    for key in [CANARY_1, CANARY_2] {
        let body = format!(
            "event: message_start\ndata: {{\"type\":\"message_start\"}}\n\n\
             event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"authentication_error\",\"message\":\"invalid x-api-key {key}\"}}}}\n\n"
        );
        upstream.script().on_key(
            key,
            Behavior::Raw {
                status: 200,
                headers: vec![("content-type".into(), "text/event-stream".into())],
                body: body.into(),
            },
        );
    }
    upstream
        .script()
        .add(Rule::key(CANARY_3, Behavior::CloseConnection).once())
        .on_key(
            CANARY_3,
            Behavior::raw_json(
                500,
                format!(r#"{{"error":{{"message":"server error for {CANARY_3}","type":"server_error"}}}}"#),
            ),
        );
    let gw = GatewayProcess::start(&support::config_text(
        &upstream.base_url(),
        "",
        &[
            provider("anthropic", "anthropic", &[CANARY_1, CANARY_2]),
            provider("openai", "openai", &[CANARY_3]),
        ],
    ));
    let c = support::client();
    let mut seen = String::new();
    for (path, body) in [
        ("/anthropic/v1/messages", MESSAGES_STREAM),
        ("/openai/v1/chat/completions", support::CHAT),
    ] {
        let r = c
            .post(format!("{}{path}", gw.url()))
            .bearer_auth(TOKEN)
            .header("x-api-key", TOKEN)
            .body(body)
            .send()
            .await
            .unwrap();
        seen.push_str(&format!("{} {:?}\n", r.status(), r.headers()));
        let text = r.text().await.unwrap();
        assert!(text.contains("[redacted]"), "{path}: {text}");
        seen.push_str(&text);
    }
    // One closed connection, then three 500s: every attempt was made.
    assert_eq!(upstream.count_for_key(CANARY_3), 4);
    for path in ["/status", "/metrics"] {
        let r = c
            .get(format!("{}{path}", gw.url()))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        seen.push_str(&r.text().await.unwrap());
    }
    let logs = gw.stop_and_read_logs();
    assert!(
        logs.contains("error event before the stream's first content"),
        "{logs}"
    );
    assert!(logs.contains("upstream request failed"), "{logs}");
    seen.push_str(&logs);
    for canary in [CANARY_1, CANARY_2, CANARY_3, "CANARY"] {
        assert!(!seen.contains(canary), "{canary} leaked:\n{seen}");
    }
}
