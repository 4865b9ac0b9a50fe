//! Each scripted behaviour gives the exact documented status, headers and body of the
//! dialect that was called.

mod support;

use std::time::Duration;

use bytes::Bytes;
use mock_upstream::{Behavior, Rule};
use serde_json::json;
use support::*;

const ANT: [(&str, &str); 2] = [("x-api-key", "k"), ("anthropic-version", "2023-06-01")];
const OAI: [(&str, &str); 1] = [("authorization", "Bearer k")];
const GEM: [(&str, &str); 1] = [("x-goog-api-key", "k")];
const AZ: [(&str, &str); 1] = [("api-key", "k")];
const AZ_PATH: &str = "/openai/deployments/d/chat/completions?api-version=2024-10-21";

async fn call(behavior: Behavior, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let mock = mock().await;
    mock.script().on_key("k", behavior);
    send(&mock, "POST", path, headers, body).await
}

async fn openai(b: Behavior) -> Reply {
    call(b, OPENAI_CHAT, &OAI, CHAT_BODY).await
}
async fn azure(b: Behavior) -> Reply {
    call(b, AZ_PATH, &AZ, CHAT_BODY).await
}
async fn anthropic(b: Behavior) -> Reply {
    call(b, ANTHROPIC_MESSAGES, &ANT, MESSAGES_BODY).await
}
async fn gemini(b: Behavior) -> Reply {
    call(b, GEMINI_GENERATE, &GEM, GEMINI_BODY).await
}

fn rate_limited() -> Behavior {
    Behavior::rate_limited(Duration::from_millis(3202))
}

#[tokio::test]
async fn rate_limited_openai() {
    let r = openai(rate_limited()).await;
    assert_eq!(r.status, 429);
    let e = &r.json()["error"];
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str()),
        (Some("tokens"), Some("rate_limit_exceeded"))
    );
    assert!(e["param"].is_null());
    let msg = e["message"].as_str().unwrap();
    assert!(msg.starts_with("Rate limit reached in organization org-mock on tokens per min (TPM): Limit 30000, Used 29000, Requested 1601."), "{msg}");
    assert!(msg.contains("Please try again in 3.202s."), "{msg}");
    assert_eq!(r.header("x-ratelimit-remaining-tokens"), Some("0"));
    assert_eq!(r.header("x-ratelimit-reset-tokens"), Some("3.202s"));
    assert_eq!(r.header("retry-after"), None);
}

#[tokio::test]
async fn rate_limited_azure() {
    let r = azure(rate_limited()).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("4"));
    assert_eq!(r.header("retry-after-ms"), Some("3202"));
    let e = &r.json()["error"];
    assert_eq!(e["code"], "429");
    let msg = e["message"].as_str().unwrap();
    assert!(msg.starts_with("Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit"));
    assert!(msg.contains("Please retry after 4 seconds."), "{msg}");
}

#[tokio::test]
async fn rate_limited_anthropic() {
    let r = anthropic(rate_limited()).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("4"));
    assert_eq!(
        r.header("anthropic-ratelimit-requests-remaining"),
        Some("0")
    );
    let j = r.json();
    assert_eq!(j["type"], "error");
    assert_eq!(j["error"]["type"], "rate_limit_error");
    assert!(j["request_id"].as_str().unwrap().starts_with("req_"));
    assert_eq!(r.header("request-id"), j["request_id"].as_str());
}

#[tokio::test]
async fn rate_limited_gemini() {
    let r = gemini(Behavior::rate_limited(Duration::from_secs(47))).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), None);
    let e = &r.json()["error"];
    assert_eq!(
        (e["code"].as_u64(), e["status"].as_str()),
        (Some(429), Some("RESOURCE_EXHAUSTED"))
    );
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("Please retry in 47s.")
    );
    let details = e["details"].as_array().unwrap();
    assert_eq!(
        details[0]["@type"],
        "type.googleapis.com/google.rpc.QuotaFailure"
    );
    assert_eq!(
        details[0]["violations"][0]["quotaId"],
        "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"
    );
    assert_eq!(
        details[0]["violations"][0]["quotaDimensions"],
        json!({"location": "global", "model": "gemini-2.0-flash"})
    );
    assert_eq!(details[1]["@type"], "type.googleapis.com/google.rpc.Help");
    assert_eq!(
        details[2],
        json!({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "47s"})
    );
}

#[tokio::test]
async fn insufficient_quota() {
    let r = openai(Behavior::InsufficientQuota).await;
    assert_eq!(r.status, 429);
    let e = &r.json()["error"];
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str()),
        (Some("insufficient_quota"), Some("insufficient_quota"))
    );
    assert!(e["message"].as_str().unwrap().starts_with(
        "You exceeded your current quota, please check your plan and billing details."
    ));

    let r = anthropic(Behavior::InsufficientQuota).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["error"],
        json!({"type": "invalid_request_error", "message": "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits."})
    );

    let r = gemini(Behavior::InsufficientQuota).await;
    assert_eq!(r.status, 429);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("limit: 0,")
    );
}

#[tokio::test]
async fn spend_cap() {
    let r = anthropic(Behavior::SpendCap).await;
    assert_eq!(r.status, 429);
    assert_eq!(
        r.header("retry-after"),
        None,
        "waiting does not lift a monthly cap"
    );
    let j = r.json();
    assert_eq!(j["error"]["type"], "rate_limit_error");
    assert_eq!(
        j["error"]["details"],
        json!({"error_code": "enforced_spend_limit_reached"})
    );
    let msg = j["error"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("You have reached your API usage limits:")
            && msg.ends_with("-01 at 00:00 UTC."),
        "{msg}"
    );
    assert!(j["request_id"].is_string());

    let r = openai(Behavior::SpendCap).await;
    assert_eq!(r.status, 429);
    assert_eq!(
        r.json()["error"]["code"],
        "organization_spend_limit_exceeded"
    );
}

#[tokio::test]
async fn invalid_key() {
    let mock = mock().await;
    mock.script()
        .on_key("sk-abcdefghijklmnopwxyz", Behavior::InvalidKey);
    let r = send(
        &mock,
        "POST",
        OPENAI_CHAT,
        &[("authorization", "Bearer sk-abcdefghijklmnopwxyz")],
        CHAT_BODY,
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json(),
        json!({"error": {
        "message": "Incorrect API key provided: sk-****************wxyz. You can find your API key at https://platform.openai.com/account/api-keys.",
        "type": "invalid_request_error", "code": "invalid_api_key", "param": null}})
    );

    let r = azure(Behavior::InvalidKey).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["code"], "401");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Access denied due to invalid subscription key or wrong API endpoint.")
    );

    let r = anthropic(Behavior::InvalidKey).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json()["error"],
        json!({"type": "authentication_error", "message": "invalid x-api-key"})
    );

    let r = gemini(Behavior::InvalidKey).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        json!({"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT", "details": [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}}]}})
    );
}

#[tokio::test]
async fn overloaded_and_server_error() {
    let r = anthropic(Behavior::Overloaded).await;
    assert_eq!(r.status, 529);
    assert_eq!(
        r.json()["error"],
        json!({"type": "overloaded_error", "message": "Overloaded"})
    );
    let r = openai(Behavior::Overloaded).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"]["code"], "server_is_overloaded");
    let r = gemini(Behavior::Overloaded).await;
    assert_eq!(
        (r.status, r.json()["error"]["status"].as_str()),
        (503, Some("UNAVAILABLE"))
    );

    let r = openai(Behavior::ServerError).await;
    assert_eq!(
        (r.status, r.json()["error"]["type"].as_str()),
        (500, Some("server_error"))
    );
    let r = anthropic(Behavior::ServerError).await;
    assert_eq!(
        (r.status, r.json()["error"]["type"].as_str()),
        (500, Some("api_error"))
    );
    let r = gemini(Behavior::ServerError).await;
    assert_eq!(
        (r.status, r.json()["error"]["status"].as_str()),
        (500, Some("INTERNAL"))
    );
}

#[tokio::test]
async fn raw_is_sent_as_given() {
    let r = openai(Behavior::Raw {
        status: 402,
        headers: vec![("x-custom".into(), "yes".into())],
        body: Bytes::from_static(b"{\"error\":{\"message\":\"Insufficient Balance\"}}"),
    })
    .await;
    assert_eq!(r.status, 402);
    assert_eq!(r.header("x-custom"), Some("yes"));
    assert_eq!(
        r.text(),
        "{\"error\":{\"message\":\"Insufficient Balance\"}}"
    );
}

#[tokio::test]
async fn rules_apply_per_key_in_order_and_can_change_while_running() {
    let mock = mock().await;
    mock.script()
        .add(Rule::key("sk-a", rate_limited()).times(2))
        .add(Rule::key("sk-a", Behavior::ServerError).once())
        .on_key("sk-b", Behavior::InvalidKey);
    let status = |key: &'static str| {
        let mock = &mock;
        async move {
            let auth = format!("Bearer {key}");
            send(
                mock,
                "POST",
                OPENAI_CHAT,
                &[("authorization", &auth)],
                CHAT_BODY,
            )
            .await
            .status
        }
    };
    assert_eq!(status("sk-b").await, 401);
    assert_eq!(status("sk-a").await, 429);
    assert_eq!(status("sk-c").await, 200);
    assert_eq!(status("sk-a").await, 429);
    assert_eq!(status("sk-a").await, 500);
    assert_eq!(status("sk-a").await, 200);
    assert_eq!(mock.script().pending(), 0);

    mock.script().set_default(Behavior::Overloaded);
    assert_eq!(status("sk-c").await, 503);
    mock.script().reset();
    assert_eq!(status("sk-b").await, 200);
    assert_eq!(
        (mock.count_for_key("sk-a"), mock.count_for_key("sk-b")),
        (4, 2)
    );
}

#[tokio::test]
async fn delay_holds_the_answer_back() {
    let mock = mock().await;
    mock.script()
        .on_key("k", Behavior::Delay(Duration::from_millis(300)));
    let start = std::time::Instant::now();
    let r = send(&mock, "POST", OPENAI_CHAT, &OAI, CHAT_BODY).await;
    assert_eq!(r.status, 200);
    assert!(start.elapsed() >= Duration::from_millis(300));
    // The request is recorded on arrival, before the delay, so a test can see it in flight.
    assert_eq!(mock.count_for_key("k"), 1);
}
