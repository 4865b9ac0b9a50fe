//! The original library's quick start, in Rust.
//!
//! Run: `cargo run --example quickstart`

use std::time::Duration;

use ai_key_rotator::{Cooldown, CredentialConfig, Event, KeyRotator, ProviderConfig};
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let meta = |model: &str| {
        json!({ "model": model })
            .as_object()
            .cloned()
            .unwrap_or_default()
    };
    let rotator = KeyRotator::builder()
        .provider(
            "openai",
            ProviderConfig::new()
                .credential(CredentialConfig::new("sk-key1").label("personal"))
                .credential(CredentialConfig::new("sk-key2").label("work"))
                .cooldown(Cooldown::fixed(Duration::from_secs(60))), // 1 min cooldown
        )
        .provider(
            "google",
            // Default cooldown: until the next midnight UTC.
            ProviderConfig::new()
                .credential(CredentialConfig::new("AIza-1").meta(meta("gemini-flash")))
                .credential(CredentialConfig::new("AIza-2").meta(meta("gemini-pro"))),
        )
        .build()?;
    let mut events = rotator.subscribe();

    // Get an available key.
    if let Some(cred) = rotator.get_key("openai") {
        println!("using {cred} (key {})", cred.masked_key());
    }

    // On a rate limit error, mark it and auto-rotate.
    rotator.mark_exhausted("openai", Some("sk-key1"));

    // The next call gets the next available key.
    let next = rotator.get_key("openai").expect("sk-key2 is available");
    println!("now using {next}");

    for event in events.drain() {
        match event {
            Event::Exhausted {
                provider,
                credential,
                until,
                ..
            } => println!("event: {provider}/{credential} exhausted until {until}"),
            Event::Rotated { provider, to, .. } => println!("event: {provider} rotated to {to}"),
            other => println!("event: {other:?}"),
        }
    }

    // Status, as JSON, names keys by label and fingerprint only.
    println!(
        "{}",
        serde_json::to_string_pretty(&rotator.provider_status("openai"))?
    );
    rotator.shutdown();
    Ok(())
}
