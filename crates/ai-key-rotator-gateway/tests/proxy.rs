//! The proxy at its boundaries: open-relay attempts, client tokens, limits, timeouts,
//! streaming, disconnects, shutdown, failover and secrets. Each test runs a mock upstream and
//! a gateway (in process, or the real binary where logs or signals matter).

mod support;

use std::time::Duration;

use mock_upstream::{Behavior, Config, MockUpstream};
use support::{CHAT, CHAT_STREAM, GatewayProcess, InProcess, TOKEN, provider, raw};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn mock() -> MockUpstream {
    MockUpstream::start(Config::new()).await.unwrap()
}

fn post(path: &str, body: &str, extra: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/json\r\n\
         authorization: Bearer {TOKEN}\r\n{extra}connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn status_of(response: &str) -> u16 {
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"))
}

#[tokio::test]
async fn open_relay_attempts_never_reach_another_host() {
    let upstream = mock().await;
    let evil = mock().await;
    let gw = InProcess::start(&support::config_text(
        &upstream.base_url(),
        "",
        &[provider("openai", "openai", &["sk-a"])],
    ))
    .await;
    let e = evil.addr();
    let cases = [
        // Absolute-form target naming another host.
        format!(
            "GET http://{e}/v1/models HTTP/1.1\r\nhost: {e}\r\nauthorization: Bearer {TOKEN}\r\nconnection: close\r\n\r\n"
        ),
        format!(
            "GET http://{e}/openai/v1/models HTTP/1.1\r\nhost: {e}\r\nauthorization: Bearer {TOKEN}\r\nconnection: close\r\n\r\n"
        ),
        // CONNECT tunnel.
        format!("CONNECT {e} HTTP/1.1\r\nhost: {e}\r\nconnection: close\r\n\r\n"),
        // Paths that climb out of the route or smuggle a host.
        format!(
            "GET /openai/../v1/models HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {TOKEN}\r\nconnection: close\r\n\r\n"
        ),
        format!(
            "GET /openai/%2e%2e/v1/models HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {TOKEN}\r\nconnection: close\r\n\r\n"
        ),
        format!(
            "GET /openai//{e}/v1/models HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {TOKEN}\r\nconnection: close\r\n\r\n"
        ),
        format!(
            "GET /openai@{e}/v1/models HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {TOKEN}\r\nconnection: close\r\n\r\n"
        ),
    ];
    for req in &cases {
        let answer = raw(gw.addr, req).await;
        let status = status_of(&answer);
        assert!(matches!(status, 400 | 404), "{req:?} -> {answer}");
    }
    // A Host header naming another host changes nothing: the configured upstream answers.
    let answer = raw(
        gw.addr,
        &format!(
            "GET /openai/v1/models HTTP/1.1\r\nhost: {e}\r\nauthorization: Bearer {TOKEN}\r\nconnection: close\r\n\r\n"
        ),
    )
    .await;
    assert_eq!(status_of(&answer), 200, "{answer}");
    let seen = upstream.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("host"), Some(&*upstream.addr().to_string()));
    assert_eq!(
        evil.request_count(),
        0,
        "a request reached a host the config does not name"
    );
}

#[tokio::test]
async fn missing_or_wrong_client_token_is_refused_in_the_providers_shape() {
    let upstream = mock().await;
    let gw = InProcess::start(&support::config_text(
        &upstream.base_url(),
        "",
        &[
            provider("openai", "openai", &["sk-a"]),
            provider("anthropic", "anthropic", &["ant-a"]),
            provider("gemini", "gemini", &["g-a"]),
        ],
    ))
    .await;
    let c = support::client();
    let url = gw.url();
    let cases = [
        (
            c.post(format!("{url}/openai/v1/chat/completions")),
            "openai",
        ),
        (
            c.post(format!("{url}/openai/v1/chat/completions"))
                .bearer_auth("wrong-token"),
            "openai",
        ),
        (
            c.post(format!("{url}/anthropic/v1/messages"))
                .header("x-api-key", "wrong"),
            "anthropic",
        ),
        (
            c.post(format!(
                "{url}/gemini/v1beta/models/g:generateContent?key=wrong"
            )),
            "gemini",
        ),
        (c.get(format!("{url}/status")), "openai"),
        (
            c.get(format!("{url}/metrics")).bearer_auth("wrong"),
            "openai",
        ),
    ];
    for (req, shape) in cases {
        let r = req.body(CHAT).send().await.unwrap();
        assert_eq!(r.status(), 401);
        let body: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        match shape {
            "anthropic" => assert_eq!(body["error"]["type"], "authentication_error", "{body}"),
            "gemini" => assert_eq!(body["error"]["status"], "UNAUTHENTICATED", "{body}"),
            // OpenAI's own 401: an `invalid_request_error` with code `invalid_api_key`.
            _ => assert_eq!(body["error"]["code"], "invalid_api_key", "{body}"),
        }
    }
    assert_eq!(upstream.request_count(), 0);
    // `/healthz` needs no token.
    let r = c.get(format!("{url}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn oversized_body_is_413_with_or_without_content_length() {
    let upstream = mock().await;
    let gw = InProcess::start(&support::config_text(
        &upstream.base_url(),
        "body_limit = 1024",
        &[provider("openai", "openai", &["sk-a"])],
    ))
    .await;
    let big = "x".repeat(4096);
    let answer = raw(gw.addr, &post("/openai/v1/chat/completions", &big, "")).await;
    assert_eq!(status_of(&answer), 413, "{answer}");
    // Chunked: no length announced, the limit applies while reading.
    let chunked = format!(
        "POST /openai/v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {TOKEN}\r\n\
         transfer-encoding: chunked\r\nconnection: close\r\n\r\n{:x}\r\n{big}\r\n0\r\n\r\n",
        big.len()
    );
    let answer = raw(gw.addr, &chunked).await;
    assert_eq!(status_of(&answer), 413, "{answer}");
    // Under the limit passes.
    let answer = raw(gw.addr, &post("/openai/v1/chat/completions", CHAT, "")).await;
    assert_eq!(status_of(&answer), 200, "{answer}");
    assert_eq!(upstream.request_count(), 1);
}

#[tokio::test]
async fn upstream_timeout_is_504_and_unreachable_is_502() {
    let upstream = mock().await;
    upstream
        .script()
        .on_key("sk-slow", Behavior::Delay(Duration::from_secs(60)));
    // A port nobody listens on: bind, read the port, close.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let gw = InProcess::start(&support::config_text(
        &upstream.base_url(),
        "read_timeout_ms = 300\nconnect_timeout_ms = 1000",
        &[provider("openai", "openai", &["sk-slow"])],
    ))
    .await;
    // A 504 is the proof: had the gateway waited for the upstream, the answer would be its 200.
    let answer = raw(gw.addr, &post("/openai/v1/chat/completions", CHAT, "")).await;
    assert_eq!(status_of(&answer), 504, "{answer}");
    assert!(answer.contains("timed out"), "{answer}");

    let gw2 = InProcess::start(&support::config_text(
        &format!("http://{dead}"),
        "",
        &[provider("openai", "openai", &["sk-a"])],
    ))
    .await;
    let answer = raw(gw2.addr, &post("/openai/v1/chat/completions", CHAT, "")).await;
    assert_eq!(status_of(&answer), 502, "{answer}");
    assert!(answer.contains("\"error\""), "{answer}");
}

#[tokio::test]
async fn a_slow_stream_is_not_cut_by_the_read_timeout_while_it_flows() {
    const INTERVAL_MS: u64 = 150;
    const READ_TIMEOUT_MS: u64 = 600;
    let upstream = mock().await;
    upstream.script().on_key(
        "sk-a",
        Behavior::SlowStream {
            chunk_interval: Duration::from_millis(INTERVAL_MS),
        },
    );
    let gw = InProcess::start(&support::config_text(
        &upstream.base_url(),
        // Shorter than the whole stream, longer than the gap between two events.
        &format!("read_timeout_ms = {READ_TIMEOUT_MS}"),
        &[provider("openai", "openai", &["sk-a"])],
    ))
    .await;
    let r = support::client()
        .post(format!("{}/openai/v1/chat/completions", gw.url()))
        .bearer_auth(TOKEN)
        .body(CHAT_STREAM)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.contains("[DONE]"), "{text}");
    // The mock sleeps between events, so the stream lasted at least this long, whatever the
    // scheduler did: longer than the read timeout, and it was not cut.
    let events = text.matches("data:").count() as u64;
    assert!(
        (events - 1) * INTERVAL_MS > READ_TIMEOUT_MS,
        "the test needs a stream longer than the read timeout: {events} events"
    );
}

#[tokio::test]
async fn a_stream_is_passed_through_as_it_arrives() {
    let upstream = mock().await;
    // An hour between events: a gateway that buffered the stream would hand nothing on.
    upstream.script().on_key(
        "sk-a",
        Behavior::SlowStream {
            chunk_interval: Duration::from_secs(3600),
        },
    );
    let gw = InProcess::start(&support::config_text(
        &upstream.base_url(),
        // The first event only names the role: it is held as the stream's opening until the
        // first content or this bound (10 s by default), then passed on.
        "stream_preamble_ms = 100",
        &[provider("openai", "openai", &["sk-a"])],
    ))
    .await;
    let mut r = support::client()
        .post(format!("{}/openai/v1/chat/completions", gw.url()))
        .bearer_auth(TOKEN)
        .body(CHAT_STREAM)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let first = r.chunk().await.unwrap().expect("the first event");
    assert!(
        String::from_utf8_lossy(&first).contains("data:"),
        "{first:?}"
    );
}

#[tokio::test]
async fn client_disconnecting_mid_stream_cancels_the_upstream_stream() {
    let upstream = mock().await;
    upstream.script().on_key(
        "sk-a",
        Behavior::SlowStream {
            chunk_interval: Duration::from_millis(200),
        },
    );
    let gw = InProcess::start(&support::config_text(
        &upstream.base_url(),
        "",
        &[provider("openai", "openai", &["sk-a"])],
    ))
    .await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(post("/openai/v1/chat/completions", CHAT_STREAM, "").as_bytes())
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    drop(s);
    support::wait_until("the upstream stream is cancelled", || async {
        upstream.cancelled_streams() > 0
    })
    .await;
    assert_eq!(upstream.cancelled_streams(), 1);
}

/// Reads one HTTP/1.1 response (content-length or chunked) from a kept-alive connection.
async fn read_response(s: &mut TcpStream) -> String {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed");
        data.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&data).into_owned();
        let Some(head_end) = text.find("\r\n\r\n") else {
            continue;
        };
        let head = text[..head_end].to_ascii_lowercase();
        let body = &data[head_end + 4..];
        if let Some(len) = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
        {
            if body.len() >= len {
                return text;
            }
        } else if body.ends_with(b"0\r\n\r\n") {
            return text;
        }
    }
}

/// Many requests over one kept-alive connection, each answered whole. How fast (Nagle's
/// algorithm with a delayed ACK would add about 40 ms to each) is a figure for
/// `scripts/bench-gateway.sh`, whose latency percentiles would show it, not an assertion here:
/// a shared machine can make any round trip slow.
#[tokio::test]
async fn a_kept_alive_connection_answers_every_request() {
    let upstream = mock().await;
    let gw = InProcess::start(&support::config_text(
        &upstream.base_url(),
        "",
        &[provider("openai", "openai", &["sk-a"])],
    ))
    .await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let req = format!(
        "POST /openai/v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {TOKEN}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{CHAT}",
        CHAT.len()
    );
    for _ in 0..20 {
        s.write_all(req.as_bytes()).await.unwrap();
        let answer = read_response(&mut s).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
}

#[tokio::test]
async fn graceful_shutdown_lets_an_in_flight_stream_finish() {
    let upstream = mock().await;
    upstream.script().on_key(
        "sk-a",
        Behavior::SlowStream {
            chunk_interval: Duration::from_millis(100),
        },
    );
    let mut gw = InProcess::start(&support::config_text(
        &upstream.base_url(),
        "",
        &[provider("openai", "openai", &["sk-a"])],
    ))
    .await;
    let mut r = support::client()
        .post(format!("{}/openai/v1/chat/completions", gw.url()))
        .bearer_auth(TOKEN)
        .body(CHAT_STREAM)
        .send()
        .await
        .unwrap();
    let mut body = r.chunk().await.unwrap().unwrap().to_vec();
    gw.begin_shutdown();
    // New connections are refused once the accept loop has seen the signal.
    support::wait_until("new connections are refused", || async {
        TcpStream::connect(gw.addr).await.is_err()
    })
    .await;
    while let Some(chunk) = r.chunk().await.unwrap() {
        body.extend_from_slice(&chunk);
    }
    assert!(String::from_utf8_lossy(&body).contains("[DONE]"));
    // Bounded only so that a hang fails: the stream is over, shutdown ends at once.
    tokio::time::timeout(Duration::from_secs(60), gw.task.take().unwrap())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn fails_over_to_a_fallback_provider_when_every_key_is_cooling() {
    let upstream = mock().await;
    upstream
        .script()
        .on_key("sk-a", Behavior::rate_limited(Duration::from_secs(30)));
    let gw = InProcess::start(&support::config_text(
        &upstream.base_url(),
        "",
        &[
            provider("openai", "openai", &["sk-a"]).with("fallback = [\"backup\"]"),
            provider("backup", "openai-compatible", &["sk-b"]),
        ],
    ))
    .await;
    for _ in 0..2 {
        let answer = raw(gw.addr, &post("/openai/v1/chat/completions", CHAT, "")).await;
        assert_eq!(status_of(&answer), 200, "{answer}");
    }
    assert_eq!(upstream.count_for_key("sk-a"), 1);
    assert_eq!(upstream.count_for_key("sk-b"), 2);
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
        metrics.contains("akr_gateway_failovers_total{from=\"openai\",to=\"backup\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn every_key_cooling_gives_429_with_the_exact_retry_after() {
    let upstream = mock().await;
    upstream
        .script()
        .on_key("sk-a", Behavior::rate_limited(Duration::from_secs(7)))
        .on_key("sk-b", Behavior::rate_limited(Duration::from_secs(12)));
    let gw = InProcess::start(&support::config_text(
        &upstream.base_url(),
        "",
        &[provider("openai", "openai", &["sk-a", "sk-b"])],
    ))
    .await;
    let answer = raw(gw.addr, &post("/openai/v1/chat/completions", CHAT, "")).await;
    assert_eq!(status_of(&answer), 429, "{answer}");
    // The first key returns after 7 s (the provider's own wait), so: retry-after at most 7,
    // less by however long the machine took in between; not the 30 s of the fallback cooldown
    // policy.
    let retry: u64 = answer
        .lines()
        .find_map(|l| l.strip_prefix("retry-after: "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!((1..=7).contains(&retry), "retry-after {retry}\n{answer}");
    assert!(answer.contains("rate_limit_error"), "{answer}");
    // Nothing more is sent upstream while both keys cool.
    let answer = raw(gw.addr, &post("/openai/v1/chat/completions", CHAT, "")).await;
    assert_eq!(status_of(&answer), 429);
    assert_eq!(upstream.request_count(), 2);
}

#[tokio::test]
async fn a_mid_stream_error_event_is_classified_and_counted() {
    let upstream = mock().await;
    upstream
        .script()
        .on_key("ant-a", Behavior::StreamErrorMidway);
    let gw = InProcess::start(&support::config_text(
        &upstream.base_url(),
        "",
        &[provider("anthropic", "anthropic", &["ant-a"])],
    ))
    .await;
    let body = r#"{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let r = support::client()
        .post(format!("{}/anthropic/v1/messages", gw.url()))
        .header("x-api-key", TOKEN)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.contains("event: error"), "{text}");
    // The key got the anthropic-version it needs and the overload is counted; an overload is
    // not the key's fault, so the key stays available.
    assert!(upstream.requests()[0].header("anthropic-version").is_some());
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
    assert!(gw.gateway.rotator().has_available("anthropic"));
}

#[tokio::test]
async fn unauthenticated_mode_is_refused_off_loopback() {
    let upstream = mock().await;
    let text = format!(
        "allow_unauthenticated = true\n[providers.openai]\nfamily = \"openai\"\nupstream = \"{}\"\nkeys = [\"sk-a\"]\n",
        upstream.base_url()
    );
    let (config, _) =
        ai_key_rotator_gateway::GatewayConfig::from_toml(&text, std::path::Path::new(".")).unwrap();
    let gateway = ai_key_rotator_gateway::Gateway::new(config).unwrap();
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let err = gateway
        .serve(listener, std::future::pending())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("loopback"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_never_appear_in_responses_status_metrics_or_logs() {
    const CANARY_1: &str = "sk-CANARY-1-b3f1c0ffee";
    const CANARY_2: &str = "sk-CANARY-2-b3f1c0ffee";
    let upstream = mock().await;
    // An upstream that echoes the key it was given, in its body and a header.
    for key in [CANARY_1, CANARY_2] {
        upstream.script().on_key(
            key,
            Behavior::Raw {
                status: 401,
                headers: vec![
                    ("content-type".into(), "application/json".into()),
                    ("x-echo".into(), key.into()),
                ],
                body: format!(
                    r#"{{"error":{{"message":"Incorrect API key provided: {key}","type":"invalid_request_error","code":"invalid_api_key"}}}}"#
                )
                .into(),
            },
        );
    }
    let gw = GatewayProcess::start(&support::config_text(
        &upstream.base_url(),
        "",
        &[provider("openai", "openai", &[CANARY_1, CANARY_2])],
    ));
    let c = support::client();
    let mut seen = String::new();
    for _ in 0..2 {
        let r = c
            .post(format!("{}/openai/v1/chat/completions", gw.url()))
            .bearer_auth(TOKEN)
            .body(CHAT)
            .send()
            .await
            .unwrap();
        seen.push_str(&format!("{:?}\n", r.headers()));
        seen.push_str(&r.text().await.unwrap());
    }
    for path in ["/status", "/metrics"] {
        let r = c
            .get(format!("{}{path}", gw.url()))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        seen.push_str(&r.text().await.unwrap());
    }
    assert!(seen.contains("[redacted]"), "{seen}");
    assert!(seen.contains("disabled"), "{seen}");
    let gw_logs = gw.stop_and_read_logs();
    seen.push_str(&gw_logs);
    assert!(gw_logs.contains("key disabled"), "{gw_logs}");
    for canary in [CANARY_1, CANARY_2, "CANARY"] {
        assert!(!seen.contains(canary), "{canary} leaked:\n{seen}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reload_changes_keys_and_keeps_cooldowns() {
    let upstream = mock().await;
    upstream
        .script()
        .on_key("sk-a", Behavior::rate_limited(Duration::from_secs(30)));
    let providers = |keys: &[&str]| {
        support::config_text(
            &upstream.base_url(),
            "",
            &[provider("openai", "openai", keys)],
        )
    };
    let gw = GatewayProcess::start(&providers(&["sk-a", "sk-b"]));
    let answer = raw(gw.addr, &post("/openai/v1/chat/completions", CHAT, "")).await;
    assert_eq!(status_of(&answer), 200, "{answer}");

    std::fs::write(gw.config_path(), providers(&["sk-a", "sk-c"])).unwrap();
    gw.signal("HUP");
    support::wait_until("the configuration is reloaded", || async {
        gw.logs().contains("configuration reloaded")
    })
    .await;
    // The log says what changed, by label and fingerprint.
    let logs = gw.logs();
    let fp = |k: &str| ai_key_rotator::Fingerprint::of(k).to_string();
    for line in [
        format!(
            "reload: provider `openai`: key openai-2 ({}) added",
            fp("sk-c")
        ),
        format!(
            "reload: provider `openai`: key openai-2 ({}) removed",
            fp("sk-b")
        ),
    ] {
        assert!(logs.contains(&line), "{line:?} not in\n{logs}");
    }
    let status = support::get_json(&format!("{}/status", gw.url())).await;
    let creds = status["providers"][0]["credentials"]
        .as_array()
        .unwrap()
        .clone();
    let labels: Vec<&str> = creds.iter().map(|c| c["label"].as_str().unwrap()).collect();
    // Labels follow positions in the new file: sk-a keeps its state, sk-c is new.
    assert_eq!(creds.len(), 2, "{status}");
    assert_eq!(creds[0]["state"], "cooling", "{status}");
    assert_eq!(creds[1]["state"], "available", "{status}");
    assert_eq!(labels.len(), 2);
    let answer = raw(gw.addr, &post("/openai/v1/chat/completions", CHAT, "")).await;
    assert_eq!(status_of(&answer), 200, "{answer}");
    assert_eq!(upstream.count_for_key("sk-c"), 1);
    assert_eq!(upstream.count_for_key("sk-a"), 1);
}

#[tokio::test]
async fn round_robin_spreads_requests_over_every_key() {
    let upstream = mock().await;
    let keys = ["sk-rr-1", "sk-rr-2", "sk-rr-3"];
    let gw = InProcess::start(&support::config_text(
        &upstream.base_url(),
        "",
        &[provider("openai", "openai", &keys).with("strategy = \"round-robin\"")],
    ))
    .await;
    for _ in 0..12 {
        let answer = raw(gw.addr, &post("/openai/v1/chat/completions", CHAT, "")).await;
        assert_eq!(status_of(&answer), 200, "{answer}");
    }
    let counts: Vec<u64> = keys.iter().map(|k| upstream.count_for_key(k)).collect();
    assert_eq!(counts, [4, 4, 4]);
}

#[tokio::test]
async fn a_session_stays_on_one_key() {
    let upstream = mock().await;
    let keys = ["sk-s-1", "sk-s-2", "sk-s-3"];
    let gw = InProcess::start(&support::config_text(
        &upstream.base_url(),
        "",
        &[provider("openai", "openai", &keys).with("strategy = \"round-robin\"")],
    ))
    .await;
    for _ in 0..6 {
        let answer = raw(
            gw.addr,
            &post(
                "/openai/v1/chat/completions",
                CHAT,
                "x-session-id: conversation-42\r\n",
            ),
        )
        .await;
        assert_eq!(status_of(&answer), 200, "{answer}");
    }
    let counts: Vec<u64> = keys.iter().map(|k| upstream.count_for_key(k)).collect();
    assert_eq!(counts.iter().sum::<u64>(), 6);
    assert!(
        counts.contains(&6),
        "one key for the whole session: {counts:?}"
    );
}

#[tokio::test]
async fn a_restart_remembers_cooldowns_in_the_default_sqlite_store() {
    let upstream = mock().await;
    upstream
        .script()
        .on_key("sk-a", Behavior::rate_limited(Duration::from_secs(600)));
    let text = support::config_text(
        &upstream.base_url(),
        "",
        &[provider("openai", "openai", &["sk-a", "sk-b"])],
    );
    let gw = GatewayProcess::start(&text);
    let answer = raw(gw.addr, &post("/openai/v1/chat/completions", CHAT, "")).await;
    assert_eq!(status_of(&answer), 200, "{answer}");
    assert_eq!(upstream.count_for_key("sk-a"), 1);
    let dir = gw.stop();
    assert!(
        dir.path()
            .join(ai_key_rotator_gateway::DEFAULT_STATE_FILE)
            .exists()
    );

    // The new process starts with sk-a still cooling: it never sends it upstream.
    let gw = GatewayProcess::start_in(dir, &text);
    let status = support::get_json(&format!("{}/status", gw.url())).await;
    assert_eq!(
        status["providers"][0]["credentials"][0]["state"], "cooling",
        "{status}"
    );
    let answer = raw(gw.addr, &post("/openai/v1/chat/completions", CHAT, "")).await;
    assert_eq!(status_of(&answer), 200, "{answer}");
    assert_eq!(
        upstream.count_for_key("sk-a"),
        1,
        "the cooling key was not retried"
    );
}
