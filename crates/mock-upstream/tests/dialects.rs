//! The normal answers of every dialect, where each reads its key, and the recording.

mod support;

use mock_upstream::{Config, Dialect, MockUpstream, Recording};
use serde_json::json;
use support::*;

const TEXT: &str = "Hello from the mock upstream.";

#[tokio::test]
async fn openai_chat_completion_has_the_documented_shape() {
    let mock = mock().await;
    let r = send(
        &mock,
        "POST",
        OPENAI_CHAT,
        &[("authorization", "Bearer sk-a")],
        CHAT_BODY,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    for h in [
        "x-ratelimit-limit-requests",
        "x-ratelimit-limit-tokens",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-remaining-tokens",
        "x-ratelimit-reset-requests",
        "x-ratelimit-reset-tokens",
    ] {
        assert!(r.header(h).is_some(), "missing {h}");
    }
    let j = r.json();
    assert_eq!(j["object"], "chat.completion");
    assert!(j["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert!(j["created"].is_u64());
    assert_eq!(j["model"], "gpt-4o-mini");
    assert_eq!(j["choices"][0]["index"], 0);
    assert_eq!(j["choices"][0]["message"]["role"], "assistant");
    assert_eq!(j["choices"][0]["message"]["content"], TEXT);
    assert_eq!(j["choices"][0]["finish_reason"], "stop");
    let u = &j["usage"];
    assert_eq!(
        u["total_tokens"].as_u64(),
        Some(u["prompt_tokens"].as_u64().unwrap() + u["completion_tokens"].as_u64().unwrap())
    );
}

#[tokio::test]
async fn openai_stream_is_chunks_then_done() {
    let mock = mock().await;
    let body = r#"{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true}}"#;
    let r = send(
        &mock,
        "POST",
        OPENAI_CHAT,
        &[("authorization", "Bearer sk-a")],
        body,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let data = sse_data(&r.text());
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<serde_json::Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk" && c["model"] == "gpt-4o")
    );
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"].get(0)?["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, TEXT);
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert!(usage["usage"]["total_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn openai_models_and_responses() {
    let mock = mock().await;
    let auth = [("authorization", "Bearer sk-a")];
    let r = send(&mock, "GET", "/v1/models", &auth, "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["object"], "list");
    assert_eq!(r.json()["data"][0]["object"], "model");

    let r = send(
        &mock,
        "POST",
        "/v1/responses",
        &auth,
        r#"{"model":"gpt-4o","input":"hi"}"#,
    )
    .await;
    let j = r.json();
    assert_eq!(
        (j["object"].as_str(), j["status"].as_str()),
        (Some("response"), Some("completed"))
    );
    assert_eq!(j["output"][0]["content"][0]["type"], "output_text");
    assert_eq!(j["output"][0]["content"][0]["text"], TEXT);

    let r = send(
        &mock,
        "POST",
        "/v1/responses",
        &auth,
        r#"{"model":"gpt-4o","input":"hi","stream":true}"#,
    )
    .await;
    let events = sse_events(&r.text());
    assert_eq!(events.first().map(String::as_str), Some("response.created"));
    assert_eq!(
        events.last().map(String::as_str),
        Some("response.completed")
    );
    assert!(events.iter().any(|e| e == "response.output_text.delta"));
}

#[tokio::test]
async fn azure_reads_the_api_key_header() {
    let mock = mock().await;
    let path = "/openai/deployments/my-gpt/chat/completions?api-version=2024-10-21";
    let r = send(&mock, "POST", path, &[("api-key", "az-1")], CHAT_BODY).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["object"], "chat.completion");
    assert!(r.header("apim-request-id").is_some());
    let req = &mock.requests()[0];
    assert_eq!(
        (req.dialect, req.key.as_deref()),
        (Dialect::Azure, Some("az-1"))
    );
    assert_eq!(req.query.as_deref(), Some("api-version=2024-10-21"));
}

#[tokio::test]
async fn anthropic_message_and_stream_have_the_documented_shape() {
    let mock = mock().await;
    let hdrs = [("x-api-key", "ant-1"), ("anthropic-version", "2023-06-01")];
    let r = send(&mock, "POST", ANTHROPIC_MESSAGES, &hdrs, MESSAGES_BODY).await;
    assert_eq!(r.status, 200);
    assert!(r.header("request-id").unwrap().starts_with("req_"));
    for kind in ["requests", "tokens", "input-tokens", "output-tokens"] {
        for part in ["limit", "remaining", "reset"] {
            let h = format!("anthropic-ratelimit-{kind}-{part}");
            assert!(r.header(&h).is_some(), "missing {h}");
        }
    }
    assert!(
        r.header("anthropic-ratelimit-requests-reset")
            .unwrap()
            .ends_with('Z')
    );
    let j = r.json();
    assert_eq!(
        (j["type"].as_str(), j["role"].as_str()),
        (Some("message"), Some("assistant"))
    );
    assert!(j["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(j["model"], "claude-sonnet-4-5");
    assert_eq!(j["content"], json!([{"type": "text", "text": TEXT}]));
    assert_eq!(j["stop_reason"], "end_turn");
    assert!(j["usage"]["input_tokens"].is_u64() && j["usage"]["output_tokens"].is_u64());

    let r = send(
        &mock,
        "POST",
        ANTHROPIC_MESSAGES,
        &hdrs,
        MESSAGES_STREAM_BODY,
    )
    .await;
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let body = r.text();
    let events = sse_events(&body);
    let deltas = events
        .iter()
        .filter(|e| *e == "content_block_delta")
        .count();
    let mut want = vec!["message_start", "content_block_start", "ping"];
    want.extend(std::iter::repeat_n("content_block_delta", deltas));
    want.extend(["content_block_stop", "message_delta", "message_stop"]);
    assert_eq!(events, want);
    // Each event's data names its own type, as the SDKs check.
    for (event, data) in events.iter().zip(sse_data(&body)) {
        let v: serde_json::Value = serde_json::from_str(&data).unwrap();
        assert_eq!(v["type"], event.as_str());
    }
}

#[tokio::test]
async fn anthropic_requires_its_version_header_and_reads_only_its_key_headers() {
    let mock = mock().await;
    let r = send(
        &mock,
        "POST",
        ANTHROPIC_MESSAGES,
        &[("x-api-key", "ant-1")],
        MESSAGES_BODY,
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["error"]["message"],
        "anthropic-version: header is required"
    );

    // The 2.x Python SDK sends the key as a bearer token.
    let bearer = [
        ("authorization", "Bearer ant-2"),
        ("anthropic-version", "2023-06-01"),
    ];
    assert_eq!(
        send(&mock, "POST", ANTHROPIC_MESSAGES, &bearer, MESSAGES_BODY)
            .await
            .status,
        200
    );

    let wrong = [("api-key", "ant-3"), ("anthropic-version", "2023-06-01")];
    let r = send(&mock, "POST", ANTHROPIC_MESSAGES, &wrong, MESSAGES_BODY).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["type"], "authentication_error");

    let reqs = mock.requests();
    assert_eq!(reqs[1].key.as_deref(), Some("ant-2"));
    assert_eq!(reqs[1].header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(reqs[2].key, None);
}

#[tokio::test]
async fn anthropic_models() {
    let mock = mock().await;
    let r = send(
        &mock,
        "GET",
        "/v1/models",
        &[("x-api-key", "a"), ("anthropic-version", "2023-06-01")],
        "",
    )
    .await;
    let j = r.json();
    assert_eq!(j["data"][0]["type"], "model");
    assert_eq!(j["has_more"], false);
}

#[tokio::test]
async fn gemini_generate_stream_and_models() {
    let mock = mock().await;
    let r = send(
        &mock,
        "POST",
        GEMINI_GENERATE,
        &[("x-goog-api-key", "g-1")],
        GEMINI_BODY,
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.headers.keys().all(|k| !k.as_str().contains("ratelimit")));
    let j = r.json();
    let c = &j["candidates"][0];
    assert_eq!(c["content"]["role"], "model");
    assert_eq!(c["content"]["parts"][0]["text"], TEXT);
    assert_eq!(c["finishReason"], "STOP");
    assert!(j["usageMetadata"]["totalTokenCount"].as_u64().unwrap() > 0);

    let path = "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse&key=g-2";
    let r = send(&mock, "POST", path, &[], GEMINI_BODY).await;
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let chunks: Vec<serde_json::Value> = sse_data(&r.text())
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let text: String = chunks
        .iter()
        .map(|c| {
            c["candidates"][0]["content"]["parts"][0]["text"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(text, TEXT);
    assert_eq!(
        chunks.last().unwrap()["candidates"][0]["finishReason"],
        "STOP"
    );

    // Without `alt=sse` the stream method answers one JSON array.
    let path = "/v1beta/models/gemini-2.0-flash:streamGenerateContent";
    let r = send(
        &mock,
        "POST",
        path,
        &[("x-goog-api-key", "g-1")],
        GEMINI_BODY,
    )
    .await;
    assert_eq!(r.json().as_array().unwrap().len(), chunks.len());

    let r = send(
        &mock,
        "GET",
        "/v1beta/models",
        &[("x-goog-api-key", "g-1")],
        "",
    )
    .await;
    assert_eq!(r.json()["models"][0]["name"], "models/gemini-2.0-flash");

    assert_eq!(mock.count_for_key("g-1"), 3);
    assert_eq!(mock.count_for_key("g-2"), 1);
    assert_eq!(mock.requests()[1].dialect, Dialect::Gemini);
}

/// Path, headers, body, and the key the mock should read.
type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str, Option<&'a str>);

#[tokio::test]
async fn each_dialect_reads_its_own_key_header() {
    let mock = mock().await;
    #[rustfmt::skip]
    let cases: &[Case] = &[
        (OPENAI_CHAT, &[("authorization", "Bearer sk-1")], CHAT_BODY, Some("sk-1")),
        (OPENAI_CHAT, &[("x-api-key", "sk-1")], CHAT_BODY, None),
        ("/openai/v1/chat/completions", &[("api-key", "az-1")], CHAT_BODY, Some("az-1")),
        (ANTHROPIC_MESSAGES, &[("x-api-key", "ant-1"), ("anthropic-version", "2023-06-01")], MESSAGES_BODY, Some("ant-1")),
        (GEMINI_GENERATE, &[("x-goog-api-key", "g-1")], GEMINI_BODY, Some("g-1")),
        (GEMINI_GENERATE, &[("authorization", "Bearer g-1")], GEMINI_BODY, None),
    ];
    for (path, headers, body, key) in cases {
        let r = send(&mock, "POST", path, headers, body).await;
        let want = match (key, *path) {
            (Some(_), _) => 200,
            (None, GEMINI_GENERATE) => 400,
            (None, _) => 401,
        };
        assert_eq!(r.status, want, "{path} {headers:?}");
        assert_eq!(
            mock.requests().last().unwrap().key.as_deref(),
            *key,
            "{path} {headers:?}"
        );
    }
    let r = send(
        &mock,
        "POST",
        "/v1/nope",
        &[("authorization", "Bearer sk-1")],
        "{}",
    )
    .await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn recording_keeps_everything_is_bounded_and_clearable() {
    let mock = MockUpstream::start(Config::new().recording(Recording::Last(2)))
        .await
        .unwrap();
    for key in ["sk-a", "sk-a", "sk-b"] {
        let auth = format!("Bearer {key}");
        send(
            &mock,
            "POST",
            "/v1/chat/completions?x=1",
            &[("authorization", &auth), ("x-extra", "1")],
            CHAT_BODY,
        )
        .await;
    }
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 2, "only the last two are kept");
    assert_eq!(reqs[1].key.as_deref(), Some("sk-b"));
    assert_eq!(reqs[1].method, "POST");
    assert_eq!(reqs[1].path, "/v1/chat/completions");
    assert_eq!(reqs[1].query.as_deref(), Some("x=1"));
    assert_eq!(reqs[1].header("authorization"), Some("Bearer sk-b"));
    assert_eq!(reqs[1].header("x-extra"), Some("1"));
    assert_eq!(&reqs[1].body[..], CHAT_BODY.as_bytes());
    assert_eq!(reqs[1].json().unwrap()["model"], "gpt-4o-mini");
    assert_eq!(
        (mock.count_for_key("sk-a"), mock.count_for_key("sk-b")),
        (2, 1)
    );
    assert_eq!(mock.request_count(), 3);
    mock.clear();
    assert!(mock.requests().is_empty());
    assert_eq!((mock.count_for_key("sk-a"), mock.request_count()), (0, 0));

    let off = MockUpstream::start(Config::new().recording(Recording::Off))
        .await
        .unwrap();
    let r = send(
        &off,
        "POST",
        OPENAI_CHAT,
        &[("authorization", "Bearer sk-a")],
        CHAT_BODY,
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(off.requests().is_empty());
    assert_eq!(off.count_for_key("sk-a"), 0);
}

#[tokio::test]
async fn fast_mode_answers_every_route_with_one_chat_completion() {
    let mock = MockUpstream::start(Config::fast()).await.unwrap();
    for path in ["/v1/chat/completions", "/anything", "/v1/messages"] {
        let r = send(&mock, "POST", path, &[], "{}").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["object"], "chat.completion");
        assert_eq!(r.json()["choices"][0]["message"]["content"], TEXT);
    }
    assert!(mock.requests().is_empty());
    mock.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_the_listener() {
    let mock = mock().await;
    let addr = mock.addr();
    mock.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
