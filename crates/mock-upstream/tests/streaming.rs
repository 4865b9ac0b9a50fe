//! Streams that arrive over time, break midway, or lose their client.

mod support;

use std::time::{Duration, Instant};

use mock_upstream::Behavior;
use support::*;

const ANT: [(&str, &str); 2] = [("x-api-key", "k"), ("anthropic-version", "2023-06-01")];

fn text(frames: &[(Duration, bytes::Bytes)]) -> String {
    frames
        .iter()
        .map(|(_, b)| String::from_utf8_lossy(b))
        .collect()
}

#[tokio::test]
async fn slow_stream_chunks_really_arrive_over_time() {
    let mock = mock().await;
    let interval = Duration::from_millis(60);
    mock.script().on_key(
        "k",
        Behavior::SlowStream {
            chunk_interval: interval,
        },
    );
    // No `"stream": true` in the body: a slow stream streams anyway.
    let (status, headers, frames) = frames(
        &mock,
        OPENAI_CHAT,
        &[("authorization", "Bearer k")],
        CHAT_BODY,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/event-stream");
    // role chunk + 5 text chunks + finish chunk + [DONE].
    assert_eq!(events_in(&frames), 8, "{:?}", text(&frames));
    assert_paced(&frames, interval);
    assert!(text(&frames).ends_with("data: [DONE]\n\n"));
}

/// How many SSE events the frames hold.
fn events_in(frames: &[(Duration, bytes::Bytes)]) -> usize {
    text(frames).matches("data:").count()
}

/// Asserts that the events were sent `interval` apart: the n-th event cannot arrive before
/// (n − 1) intervals after the request was sent, however the client was scheduled. (No upper
/// bound: a loaded machine may deliver late, and several events in one read.)
fn assert_paced(frames: &[(Duration, bytes::Bytes)], interval: Duration) {
    let mut seen = 0u32;
    for (at, data) in frames {
        seen += String::from_utf8_lossy(data).matches("data:").count() as u32;
        let earliest = interval * seen.saturating_sub(1);
        assert!(
            *at >= earliest,
            "event {seen} arrived after {at:?}, before it could have been sent ({earliest:?})"
        );
    }
}

#[tokio::test]
async fn slow_stream_in_anthropic_and_gemini_dialects() {
    let mock = mock().await;
    mock.script().on_key(
        "k",
        Behavior::SlowStream {
            chunk_interval: Duration::from_millis(20),
        },
    );
    let (_, _, f) = frames(&mock, ANTHROPIC_MESSAGES, &ANT, MESSAGES_STREAM_BODY, None).await;
    let events = sse_events(&text(&f));
    assert_eq!(events.first().map(String::as_str), Some("message_start"));
    assert_eq!(events.last().map(String::as_str), Some("message_stop"));
    assert_paced(&f, Duration::from_millis(20));

    let (_, _, f) = frames(
        &mock,
        GEMINI_STREAM,
        &[("x-goog-api-key", "k")],
        GEMINI_BODY,
        None,
    )
    .await;
    assert_eq!(events_in(&f), 5, "{:?}", text(&f));
    assert_paced(&f, Duration::from_millis(20));
}

#[tokio::test]
async fn client_disconnect_stops_a_slow_stream() {
    let mock = mock().await;
    mock.script().on_key(
        "k",
        Behavior::SlowStream {
            chunk_interval: Duration::from_millis(30),
        },
    );
    let (_, _, f) = frames(
        &mock,
        OPENAI_CHAT,
        &[("authorization", "Bearer k")],
        CHAT_STREAM_BODY,
        Some(2),
    )
    .await;
    assert_eq!(f.len(), 2);
    // The response was dropped after two chunks; the mock notices at its next writes.
    // Bounded only so that a failure ends; a loaded machine never needs this long.
    let deadline = Instant::now() + Duration::from_secs(60);
    while mock.cancelled_streams() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(mock.cancelled_streams(), 1);
}

#[tokio::test]
async fn stream_error_midway_anthropic() {
    let mock = mock().await;
    mock.script().on_key("k", Behavior::StreamErrorMidway);
    let r = send(
        &mock,
        "POST",
        ANTHROPIC_MESSAGES,
        &ANT,
        MESSAGES_STREAM_BODY,
    )
    .await;
    assert_eq!(r.status, 200, "the error comes after a 200");
    let body = r.text();
    assert_eq!(
        sse_events(&body),
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "error"
        ]
    );
    assert!(body.ends_with(
        "event: error\ndata: {\"error\":{\"message\":\"Overloaded\",\"type\":\"overloaded_error\"},\"type\":\"error\"}\n\n"
    ));
}

#[tokio::test]
async fn stream_error_midway_openai_and_gemini() {
    let mock = mock().await;
    mock.script().on_key("k", Behavior::StreamErrorMidway);
    let r = send(
        &mock,
        "POST",
        OPENAI_CHAT,
        &[("authorization", "Bearer k")],
        CHAT_STREAM_BODY,
    )
    .await;
    assert_eq!(r.status, 200);
    let data = sse_data(&r.text());
    assert!(!data.contains(&"[DONE]".to_owned()));
    let last: serde_json::Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["type"], "server_error");

    let r = send(
        &mock,
        "POST",
        GEMINI_STREAM,
        &[("x-goog-api-key", "k")],
        GEMINI_BODY,
    )
    .await;
    assert_eq!(r.status, 200);
    let data = sse_data(&r.text());
    let last: serde_json::Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["status"], "UNAVAILABLE");
    let first: serde_json::Value = serde_json::from_str(&data[0]).unwrap();
    assert!(first["candidates"][0].get("finishReason").is_none());
}

#[tokio::test]
async fn shutdown_ends_streams_in_flight() {
    let mock = mock().await;
    mock.script().on_key(
        "k",
        Behavior::SlowStream {
            chunk_interval: Duration::from_secs(60),
        },
    );
    let base = mock.base_url();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let client = tokio::spawn(async move {
        let mut stream = tokio::net::TcpStream::connect(base.trim_start_matches("http://"))
            .await
            .unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let body = CHAT_STREAM_BODY;
        let req = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer k\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(req.as_bytes()).await.unwrap();
        // Tell the test once the stream has begun, then read until the server closes.
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        let mut started = Some(started_tx);
        loop {
            let n = stream.read(&mut chunk).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            if buf.windows(5).any(|w| w == b"data:")
                && let Some(tx) = started.take()
            {
                let _ = tx.send(());
            }
        }
        String::from_utf8_lossy(&buf).into_owned()
    });
    started_rx.await.expect("the stream began");
    // The next event is a minute away and the stream has minutes to go: a shutdown that
    // waited for it would hit these bounds.
    tokio::time::timeout(Duration::from_secs(30), mock.shutdown())
        .await
        .expect("shutdown hangs");
    let got = tokio::time::timeout(Duration::from_secs(30), client)
        .await
        .unwrap()
        .unwrap();
    assert!(got.starts_with("HTTP/1.1 200 OK"), "{got}");
}

#[tokio::test]
async fn stream_error_at_start_sends_the_opening_then_the_error() {
    let mock = mock().await;
    mock.script().on_key("k", Behavior::StreamErrorAtStart);
    let r = send(
        &mock,
        "POST",
        ANTHROPIC_MESSAGES,
        &ANT,
        MESSAGES_STREAM_BODY,
    )
    .await;
    assert_eq!(r.status, 200);
    let body = r.text();
    assert_eq!(sse_events(&body), ["message_start", "ping", "error"]);
    assert!(body.contains("overloaded_error"), "{body}");

    let responses = r#"{"model":"gpt-4o-mini","input":"hi","stream":true}"#;
    let r = send(
        &mock,
        "POST",
        "/v1/responses",
        &[("authorization", "Bearer k")],
        responses,
    )
    .await;
    let body = r.text();
    assert_eq!(
        sse_events(&body),
        ["response.created", "response.in_progress", "error"]
    );
    assert!(body.contains(r#""code":"insufficient_quota""#), "{body}");

    let r = send(
        &mock,
        "POST",
        OPENAI_CHAT,
        &[("authorization", "Bearer k")],
        CHAT_STREAM_BODY,
    )
    .await;
    let data = sse_data(&r.text());
    assert_eq!(data.len(), 2, "{data:?}");
    assert!(data[0].contains(r#""role":"assistant""#), "{data:?}");
    assert!(data[1].starts_with(r#"{"error":"#) && data[1].contains("insufficient_quota"));
}

#[tokio::test]
async fn stream_broken_at_start_cuts_the_connection_after_the_opening() {
    let mock = mock().await;
    mock.script().on_key("k", Behavior::StreamBrokenAtStart);
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let req = hyper::Request::post(format!("{}{ANTHROPIC_MESSAGES}", mock.base_url()))
        .header("x-api-key", "k")
        .header("anthropic-version", "2023-06-01")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            MESSAGES_STREAM_BODY,
        )))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut seen = Vec::new();
    let mut broke = false;
    while let Some(frame) = http_body_util::BodyExt::frame(&mut body).await {
        match frame {
            Ok(f) => seen.extend_from_slice(f.data_ref().map_or(&[][..], |d| &d[..])),
            Err(_) => {
                broke = true;
                break;
            }
        }
    }
    assert!(broke, "the body ended normally");
    let seen = String::from_utf8_lossy(&seen);
    assert_eq!(sse_events(&seen), ["message_start", "ping"]);
}

#[tokio::test]
async fn close_connection_answers_nothing() {
    let mock = mock().await;
    mock.script().on_key("k", Behavior::CloseConnection);
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let req = hyper::Request::post(format!("{}{OPENAI_CHAT}", mock.base_url()))
        .header("authorization", "Bearer k")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            CHAT_STREAM_BODY,
        )))
        .unwrap();
    assert!(client.request(req).await.is_err());
    assert_eq!(mock.count_for_key("k"), 1);
}
