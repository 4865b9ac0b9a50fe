//! Tokens in and out per key, read from the upstream answers' usage (JSON bodies and the usage
//! events of streams, in every dialect), and budget use against limits in `/status`, the
//! dashboard's JSON and `/metrics`.

mod support;

use ai_key_rotator::Fingerprint;
use mock_upstream::{Config, MockUpstream};
use serde_json::Value;
use support::{InProcess, TOKEN, provider};

/// A key that must never leave the gateway.
const CANARY: &str = "sk-canary-tokens-5d1e8a7c3b9f2046";

/// Sends `body` to `path` and returns the answer's text.
async fn send(gw: &InProcess, path: &str, body: &str) -> String {
    let r = support::client()
        .post(format!("{}{path}", gw.url()))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.text().await.unwrap()
}

/// The JSON of each `data:` line of an event stream.
fn events(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect()
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// The key's tokens today in `/status` (`today.tokens_in`, `today.tokens_out`).
fn status_tokens(status: &Value, provider: &str, key: &str) -> (u64, u64) {
    let p = status["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == provider)
        .unwrap();
    let c = p["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["fingerprint"] == Fingerprint::of(key).to_string())
        .unwrap();
    let t = &c["today"];
    (
        t["tokens_in"].as_u64().unwrap_or(0),
        t["tokens_out"].as_u64().unwrap_or(0),
    )
}

#[tokio::test]
async fn status_shows_each_keys_tokens_after_streams_and_plain_answers_in_every_dialect() {
    let upstream = MockUpstream::start(Config::new()).await.unwrap();
    let budget = "budget = { requests_per_minute = 600, tokens_per_day = 1000000 }";
    let gw = InProcess::start(&support::config_text(
        &upstream.base_url(),
        "",
        &[
            provider("openai", "openai", &[CANARY]).with(budget),
            provider("anthropic", "anthropic", &["ant-a"]).with(budget),
            provider("gemini", "gemini", &["AIza-g"]).with(budget),
        ],
    ))
    .await;

    // OpenAI: a plain chat answer, a stream with the usage chunk, a Responses stream.
    let mut expected_openai = (0, 0);
    let body = send(
        &gw,
        "/openai/v1/chat/completions",
        r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello there"}]}"#,
    )
    .await;
    let u: Value = serde_json::from_str(&body).unwrap();
    expected_openai.0 += n(&u["usage"]["prompt_tokens"]);
    expected_openai.1 += n(&u["usage"]["completion_tokens"]);
    let text = send(
        &gw,
        "/openai/v1/chat/completions",
        r#"{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;
    let last = events(&text)
        .into_iter()
        .rfind(|e| e["usage"].is_object())
        .expect("a usage chunk");
    expected_openai.0 += n(&last["usage"]["prompt_tokens"]);
    expected_openai.1 += n(&last["usage"]["completion_tokens"]);
    let text = send(
        &gw,
        "/openai/v1/responses",
        r#"{"model":"gpt-4o-mini","stream":true,"input":"hi"}"#,
    )
    .await;
    let done = events(&text)
        .into_iter()
        .find(|e| e["type"] == "response.completed")
        .expect("response.completed");
    expected_openai.0 += n(&done["response"]["usage"]["input_tokens"]);
    expected_openai.1 += n(&done["response"]["usage"]["output_tokens"]);

    // Anthropic: a plain message and a stream (input in message_start, output in
    // message_delta).
    let mut expected_anthropic = (0, 0);
    let body = send(
        &gw,
        "/anthropic/v1/messages",
        r#"{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;
    let u: Value = serde_json::from_str(&body).unwrap();
    expected_anthropic.0 += n(&u["usage"]["input_tokens"])
        + n(&u["usage"]["cache_creation_input_tokens"])
        + n(&u["usage"]["cache_read_input_tokens"]);
    expected_anthropic.1 += n(&u["usage"]["output_tokens"]);
    let text = send(
        &gw,
        "/anthropic/v1/messages",
        r#"{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;
    let ev = events(&text);
    let start = ev.iter().find(|e| e["type"] == "message_start").unwrap();
    let delta = ev.iter().find(|e| e["type"] == "message_delta").unwrap();
    expected_anthropic.0 += n(&start["message"]["usage"]["input_tokens"]);
    expected_anthropic.1 += n(&delta["usage"]["output_tokens"]);

    // Gemini: a plain answer and an SSE stream (the last chunk's totals).
    let mut expected_gemini = (0, 0);
    let body = send(
        &gw,
        "/gemini/v1beta/models/gemini-2.0-flash:generateContent",
        r#"{"contents":[{"parts":[{"text":"hi"}]}]}"#,
    )
    .await;
    let u: Value = serde_json::from_str(&body).unwrap();
    expected_gemini.0 += n(&u["usageMetadata"]["promptTokenCount"]);
    expected_gemini.1 += n(&u["usageMetadata"]["candidatesTokenCount"]);
    let text = send(
        &gw,
        "/gemini/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
        r#"{"contents":[{"parts":[{"text":"hi"}]}]}"#,
    )
    .await;
    let last = events(&text).pop().unwrap();
    expected_gemini.0 += n(&last["usageMetadata"]["promptTokenCount"]);
    expected_gemini.1 += n(&last["usageMetadata"]["candidatesTokenCount"]);

    for (p, want) in [
        ("openai", expected_openai),
        ("anthropic", expected_anthropic),
        ("gemini", expected_gemini),
    ] {
        assert!(want.0 > 0 && want.1 > 0, "{p}: the mock sends usage");
    }
    // A body's tokens are counted when the gateway is done with it, which may be just after
    // the client has read it all.
    let url = format!("{}/status", gw.url());
    support::wait_until("every answer's tokens are counted", || {
        let url = url.clone();
        async move {
            let s = support::get_json(&url).await;
            status_tokens(&s, "openai", CANARY) == expected_openai
                && status_tokens(&s, "anthropic", "ant-a") == expected_anthropic
                && status_tokens(&s, "gemini", "AIza-g") == expected_gemini
        }
    })
    .await;

    // Budget use: the tokens are charged to each key's token budget; the requests to its
    // per-minute budget.
    let status = support::get_json(&url).await;
    let openai = status["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "openai")
        .unwrap();
    let rows = openai["budgets"].as_array().unwrap();
    let row = |kind: &str| rows.iter().find(|r| r["kind"] == kind).unwrap().clone();
    let tpd = row("tokens_per_day");
    assert_eq!(tpd["budget"], "keys");
    assert_eq!(tpd["window"], "day");
    assert_eq!(n(&tpd["limit"]), 1_000_000);
    assert_eq!(
        n(&tpd["used"]),
        expected_openai.0 + expected_openai.1,
        "{expected_openai:?} {status:#}"
    );
    assert!(tpd["resets_at"].is_string(), "{tpd}");
    let rpm = row("requests_per_minute");
    // The per-minute bucket drains continuously: at most the three requests remain in it.
    assert_eq!(n(&rpm["limit"]), 600, "{rpm}");
    assert!(n(&rpm["used"]) <= 3, "{rpm}");
    assert_eq!(rpm["window"], "minute");
    // And per key.
    let key_budget = &openai["credentials"][0]["budget"];
    assert_eq!(key_budget.as_array().unwrap().len(), 2, "{key_budget}");

    // The dashboard's JSON: the provider's tokens today and its budget rows.
    let dash_url = format!("{}/dashboard.json", gw.url());
    support::wait_until("the dashboard shows the tokens", || {
        let url = dash_url.clone();
        async move {
            let d = support::get_json(&url).await;
            let Some(p) = d["providers"]
                .as_array()
                .and_then(|ps| ps.iter().find(|p| p["name"] == "openai"))
            else {
                return false;
            };
            p["tokens_today"]["in"] == expected_openai.0
                && p["keys"][0]["tokens_today"]["out"] == expected_openai.1
                && p["budgets"]
                    .as_array()
                    .is_some_and(|b| b.iter().any(|r| r["kind"] == "tokens_per_day"))
        }
    })
    .await;

    // `/metrics`: tokens per key and the budget gauges.
    let metrics = support::client()
        .get(format!("{}/metrics", gw.url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = format!(
        "akr_gateway_key_tokens_today{{provider=\"openai\",key=\"openai-1\",fingerprint=\"{}\",direction=\"in\"}} {}",
        Fingerprint::of(CANARY),
        expected_openai.0
    );
    assert!(metrics.contains(&line), "{line}\n{metrics}");
    let line = format!(
        "akr_gateway_budget_used{{provider=\"openai\",budget=\"keys\",limit=\"tokens_per_day\"}} {}",
        expected_openai.0 + expected_openai.1
    );
    assert!(metrics.contains(&line), "{line}\n{metrics}");
    assert!(
        metrics.contains(
            "akr_gateway_budget_limit{provider=\"openai\",budget=\"keys\",limit=\"requests_per_minute\"} 600"
        ),
        "{metrics}"
    );

    // No output names the key.
    let dash = support::get_json(&dash_url).await.to_string();
    let page = support::client()
        .get(format!("{}/dashboard", gw.url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (what, text) in [
        ("status", status.to_string()),
        ("dashboard.json", dash),
        ("dashboard", page),
        ("metrics", metrics),
    ] {
        assert!(!text.contains(CANARY), "{what} shows the key");
        assert!(!text.contains(&CANARY[8..]), "{what} shows part of the key");
    }
}
