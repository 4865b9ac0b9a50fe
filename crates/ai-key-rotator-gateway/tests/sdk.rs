//! End to end with the official Python SDKs: the real binary, a mock upstream, and each SDK
//! with only its base URL changed.
//!
//! Needs a virtual environment with `openai`, `anthropic` and `google-genai`
//! (`scripts/sdk-venv.sh` makes one); its interpreter is named by `AKR_SDK_PYTHON`. Without
//! it these tests print why and pass without checking anything.

mod support;

use std::process::Command;
use std::time::Duration;

use mock_upstream::{Behavior, Config, MockUpstream, Rule};
use support::{GatewayProcess, TOKEN, provider};

fn python() -> Option<String> {
    match std::env::var("AKR_SDK_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ => {
            eprintln!(
                "SKIPPED: AKR_SDK_PYTHON is not set; run scripts/sdk-venv.sh and export \
                 AKR_SDK_PYTHON=target/sdk-venv/bin/python to run the SDK end-to-end tests"
            );
            None
        }
    }
}

/// Runs the SDK's checks through a gateway in front of a scripted mock.
async fn run_sdk(sdk: &str, family: &'static str) {
    let Some(python) = python() else { return };
    let mock = MockUpstream::start(Config::new()).await.unwrap();
    let k = |s: &str| format!("{sdk}-{s}");
    let rate_limited = Behavior::rate_limited(Duration::from_secs(20));
    mock.script().on_key(k("r1"), rate_limited.clone());
    mock.script().on_key(k("d1"), rate_limited.clone());
    mock.script().on_key(k("d2"), rate_limited);
    mock.script().on_key(k("i1"), Behavior::InvalidKey);
    // The first stream of each `-early` provider fails before its first content.
    for key in ["e1", "er1"] {
        mock.script()
            .add(Rule::key(k(key), Behavior::StreamErrorAtStart).once());
    }
    let config = support::config_text(
        &mock.base_url(),
        "",
        &[
            provider(sdk, family, &[&k("ok1"), &k("ok2")]),
            provider(&format!("{sdk}-429"), family, &[&k("r1"), &k("r2")]),
            provider(&format!("{sdk}-dry"), family, &[&k("d1"), &k("d2")]),
            provider(&format!("{sdk}-bad"), family, &[&k("i1"), &k("i2")]),
            provider(&format!("{sdk}-early"), family, &[&k("e1"), &k("e2")]),
            provider(&format!("{sdk}-early-r"), family, &[&k("er1"), &k("er2")]),
        ],
    );
    let gateway = GatewayProcess::start(&config);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/sdk_clients.py");
    let out = tokio::task::spawn_blocking({
        let url = gateway.url();
        let sdk = sdk.to_owned();
        move || {
            Command::new(python)
                .arg(script)
                .arg(sdk)
                .env("AKR_GATEWAY", url)
                .env("AKR_TOKEN", TOKEN)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "SDK checks failed:\n{stdout}\n{}\ngateway log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        gateway.logs()
    );

    // The rate-limited key was tried once, then the gateway stayed on the other one.
    assert_eq!(mock.count_for_key(&k("r1")), 1);
    assert!(mock.count_for_key(&k("r2")) >= 1);
    assert_eq!(mock.count_for_key(&k("i1")), 1);
    // The stream that failed before its content was sent again: on the second key when the
    // error blamed the first (a quota), on the same key after a backoff when it did not (an
    // overload). Either way the SDK saw one clean stream (checked by the script).
    let early = mock.count_for_key(&k("e1")) + mock.count_for_key(&k("e2"));
    assert_eq!(early, 2, "the failed stream was retried once");
    // The client token never reached the upstream, in any header or the query.
    for r in mock.requests() {
        let all = format!("{:?} {:?}", r.headers, r.query);
        assert!(!all.contains(TOKEN), "client token forwarded: {all}");
    }

    // `/status` shows the blamed keys out of rotation.
    let status = support::get_json(&format!("{}/status", gateway.url())).await;
    let credential = |provider: &str, label: &str| -> serde_json::Value {
        status["providers"]
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
            })
            .cloned()
            .unwrap_or_default()
    };
    let state = |provider: &str, label: &str| -> String {
        credential(provider, label)["state"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    // Out of rotation: cooling, or (Gemini's 429 names a per-model quota) resting for the
    // request's model, which `/status` lists under `model_cooldowns` with its reason.
    let rests = |c: &serde_json::Value| {
        c["state"] == "cooling"
            || c["model_cooldowns"][0]["reason"]["cause"]
                .as_str()
                .is_some_and(|r| r.starts_with("rate limited"))
    };
    let limited = credential(&format!("{sdk}-429"), &format!("{sdk}-429-1"));
    assert!(rests(&limited), "{limited}");
    assert_ne!(
        state(&format!("{sdk}-bad"), &format!("{sdk}-bad-1")),
        "available"
    );
    assert_eq!(
        state(&format!("{sdk}-bad"), &format!("{sdk}-bad-2")),
        "available"
    );
    let dry = credential(&format!("{sdk}-dry"), &format!("{sdk}-dry-1"));
    assert!(rests(&dry), "{dry}");
    // And says why: the classifier's reading of the provider's answer.
    let cause = |provider: &str, label: &str| -> String {
        credential(provider, label)["reason"]["cause"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    // Gemini's per-model rest carries its reason under `model_cooldowns` (checked above).
    if sdk != "gemini" {
        assert!(
            cause(&format!("{sdk}-429"), &format!("{sdk}-429-1")).starts_with("rate limited"),
            "{status}"
        );
    }
    assert!(
        cause(&format!("{sdk}-bad"), &format!("{sdk}-bad-1")).contains("key"),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_sdk_through_gateway() {
    run_sdk("openai", "openai").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_sdk_through_gateway() {
    run_sdk("anthropic", "anthropic").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_sdk_through_gateway() {
    run_sdk("gemini", "gemini").await;
}
