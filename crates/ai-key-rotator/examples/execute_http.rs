//! `execute` with a real HTTP client (reqwest) against a local mock of the OpenAI API that the
//! example starts itself, so it runs offline.
//!
//! Run: `cargo run -p ai-key-rotator --example execute_http`
//!
//! The mock answers key `sk-first` with OpenAI's documented 429 ("Please try again in 3.202s")
//! and key `sk-second` normally: `execute` reports the 429 (cooling `sk-first` until the time
//! OpenAI gave) and retries with `sk-second`, in one call.

use std::time::Duration;

use ai_key_rotator::classify::Response;
use ai_key_rotator::execute::Plan;
use ai_key_rotator::{CredentialConfig, KeyRotator, ProviderConfig};
use mock_upstream::{Behavior, Config, MockUpstream};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mock = MockUpstream::start(Config::new()).await?;
    mock.script().on_key(
        "sk-first",
        Behavior::rate_limited(Duration::from_millis(3202)),
    );

    let rotator = KeyRotator::builder()
        .provider(
            "openai",
            ProviderConfig::new()
                .credential(CredentialConfig::new("sk-first").label("first"))
                .credential(CredentialConfig::new("sk-second").label("second")),
        )
        .build()?;
    let client = reqwest::Client::new();
    let url = format!("{}/v1/chat/completions", mock.base_url());
    let body = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}"#;

    let plan = Plan::new("openai")
        .max_attempts(3)
        .deadline(Duration::from_secs(10));
    let answer = rotator
        .execute(&plan, |attempt| {
            let request = client
                .post(&url)
                .bearer_auth(attempt.expose_key())
                .header("content-type", "application/json")
                .body(body);
            async move {
                let response = request.send().await?;
                let status = response.status().as_u16();
                let headers: Vec<(String, String)> = response
                    .headers()
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
                    .collect();
                let text = response.text().await?;
                let verdict =
                    attempt.classify(&Response::new(status, &headers[..], text.as_bytes()));
                println!(
                    "attempt {} with {}: HTTP {status} -> {}",
                    attempt.number(),
                    attempt.credential(),
                    verdict.reason()
                );
                Ok::<_, reqwest::Error>((verdict, text))
            }
        })
        .await?;
    println!("answer: {answer}");

    let status = rotator.provider_status("openai").expect("configured");
    for c in &status.credentials {
        println!(
            "{}: {:?} {:?}",
            c.id,
            c.state,
            c.reason.as_ref().map(|r| &r.cause)
        );
    }
    rotator.shutdown();
    Ok(())
}
