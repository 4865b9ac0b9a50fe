//! Shared helpers: rotators on a fake clock.

use std::time::Duration;

use ai_key_rotator::{
    Cooldown, CredentialConfig, FakeClock, KeyRotator, ProviderConfig, Timestamp,
};

/// 2026-11-25T09:30:00Z, a Wednesday.
pub const START: Timestamp = Timestamp::from_millis(1_795_599_000_000);

pub fn clock() -> FakeClock {
    FakeClock::new(START)
}

/// A provider config with keys labelled by their own names and a fixed cooldown.
pub fn provider(keys: &[&str], cooldown: Duration) -> ProviderConfig {
    keys.iter().fold(
        ProviderConfig::new().cooldown(Cooldown::fixed(cooldown)),
        |p, k| p.credential(CredentialConfig::new(*k).label(*k)),
    )
}

/// A rotator with one provider `openai`, a one-minute fixed cooldown and no ticker.
pub fn rotator(keys: &[&str]) -> (KeyRotator, FakeClock) {
    let clock = clock();
    let r = KeyRotator::builder()
        .provider("openai", provider(keys, Duration::from_secs(60)))
        .clock(clock.clone())
        .reset_interval(Duration::ZERO)
        .build()
        .expect("valid config");
    (r, clock)
}

/// The key `get_key` hands out now, as a string.
pub fn key(r: &KeyRotator, provider: &str) -> Option<String> {
    r.get_key(provider).map(|c| c.expose_key().to_owned())
}
