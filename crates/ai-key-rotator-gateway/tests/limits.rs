//! What a client can hold of the gateway: a body that never comes or trickles in, more
//! connections than the gateway serves at once, and oversized headers.

mod support;

use std::time::Duration;

use mock_upstream::{Config, MockUpstream};
use support::{InProcess, TOKEN, provider, raw};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn mock() -> MockUpstream {
    MockUpstream::start(Config::new()).await.unwrap()
}

fn status_of(response: &str) -> u16 {
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"))
}

/// Request headers announcing a body of `len` bytes, without the body.
fn head(len: usize) -> String {
    format!(
        "POST /openai/v1/chat/completions HTTP/1.1\r\nhost: gateway\r\n\
         content-type: application/json\r\nauthorization: Bearer {TOKEN}\r\n\
         content-length: {len}\r\n\r\n"
    )
}

#[tokio::test]
async fn a_body_that_never_comes_or_trickles_is_cut_off() {
    let upstream = mock().await;
    let gw = InProcess::start(&support::config_text(
        &upstream.base_url(),
        "body_read_timeout_ms = 300",
        &[provider("openai", "openai", &["sk-a"])],
    ))
    .await;

    // Headers, then nothing: the answer is a 408 (without the deadline, `raw` would give up
    // after its own bound with no answer at all).
    let answer = raw(gw.addr, &head(100)).await;
    assert_eq!(status_of(&answer), 408, "{answer}");
    assert!(answer.contains("\"error\""), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );

    // A byte every 50 ms: each read is quick, the whole body would take ten minutes. The
    // deadline covers the body, so the trickle is cut as well.
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(head(12_000).as_bytes()).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let trickle = tokio::spawn(async move {
        while wr.write_all(b"x").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(60), rd.read_to_end(&mut out)).await;
    trickle.abort();
    let answer = String::from_utf8_lossy(&out);
    assert_eq!(status_of(&answer), 408, "{answer}");
    assert_eq!(upstream.request_count(), 0);
}

/// Reads until the end of the first response's headers and its (small, sized) body.
async fn read_one(s: &mut TcpStream) -> String {
    let mut data = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed");
        data.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&data).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .to_ascii_lowercase()
                .lines()
                .find_map(|l| {
                    l.strip_prefix("content-length:")
                        .map(|v| v.trim().to_owned())
                })
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if data.len() >= end + 4 + len {
                return text;
            }
        }
    }
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let upstream = mock().await;
    let gw = InProcess::start(&support::config_text(
        &upstream.base_url(),
        "max_connections = 1",
        &[provider("openai", "openai", &["sk-a"])],
    ))
    .await;
    // The one slot: a kept-alive connection, answered once, so it is certainly being served.
    let mut first = TcpStream::connect(gw.addr).await.unwrap();
    first
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: gateway\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(status_of(&read_one(&mut first).await), 200);

    // A second connection is accepted by the kernel's backlog, but not served.
    let addr = gw.addr;
    let mut second = tokio::spawn(async move {
        raw(
            addr,
            "GET /healthz HTTP/1.1\r\nhost: gateway\r\nconnection: close\r\n\r\n",
        )
        .await
    });
    // With the cap this never completes while `first` is open, whatever the machine's speed;
    // the window only gives a gateway without a cap the time to answer and fail the test.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), &mut second)
            .await
            .is_err(),
        "a connection beyond max_connections was served"
    );
    // Closing the first frees the slot: the waiting connection is served.
    drop(first);
    let answer = second.await.unwrap();
    assert_eq!(status_of(&answer), 200, "{answer}");
}

#[tokio::test]
async fn oversized_headers_are_431_and_never_forwarded() {
    let upstream = mock().await;
    let gw = InProcess::start(&support::config_text(
        &upstream.base_url(),
        "",
        &[provider("openai", "openai", &["sk-a"])],
    ))
    .await;
    let request = |extra: &str| {
        format!(
            "GET /openai/v1/models HTTP/1.1\r\nhost: gateway\r\nauthorization: Bearer {TOKEN}\r\n\
             {extra}connection: close\r\n\r\n"
        )
    };
    // 100 KB in one header, then in a hundred of 1 KB: over the 64 KiB default.
    let one = format!("x-big: {}\r\n", "a".repeat(100 * 1024));
    let many: String = (0..100)
        .map(|i| format!("x-h{i}: {}\r\n", "b".repeat(1024)))
        .collect();
    for extra in [one, many] {
        let answer = raw(gw.addr, &request(&extra)).await;
        assert_eq!(
            status_of(&answer),
            431,
            "{}",
            &answer[..answer.len().min(300)]
        );
    }
    assert_eq!(upstream.request_count(), 0);
    // Headers of an ordinary size pass.
    let answer = raw(
        gw.addr,
        &request(&format!("x-ok: {}\r\n", "c".repeat(4096))),
    )
    .await;
    assert_eq!(status_of(&answer), 200, "{answer}");
    assert_eq!(upstream.request_count(), 1);

    // A configured limit applies.
    let gw = InProcess::start(&support::config_text(
        &upstream.base_url(),
        "header_limit = 8192",
        &[provider("openai", "openai", &["sk-a"])],
    ))
    .await;
    // Three headers of 3 KB: each small, together over 8 KiB.
    let three: String = (0..3)
        .map(|i| format!("x-t{i}: {}\r\n", "d".repeat(3000)))
        .collect();
    let answer = raw(gw.addr, &request(&three)).await;
    assert_eq!(status_of(&answer), 431, "{answer}");
    assert_eq!(upstream.request_count(), 1);
}
