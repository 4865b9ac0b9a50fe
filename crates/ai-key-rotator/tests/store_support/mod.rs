//! Helpers shared by the store tests: rotators on a fake clock, child processes, a private
//! Redis server.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ai_key_rotator::{
    Cooldown, CredentialConfig, FakeClock, KeyRotator, KeyRotatorBuilder, ProviderConfig, Timestamp,
};

#[cfg(feature = "redis")]
pub mod redis_server;

/// 2026-11-25T09:30:00Z.
pub const START: Timestamp = Timestamp::from_millis(1_795_599_000_000);

/// A key that must never appear in any store's bytes.
pub const CANARY: &str = "sk-canary-7f3e9a1b2c4d5e6f";

pub fn clock() -> FakeClock {
    FakeClock::new(START)
}

/// A provider with a one-minute fixed cooldown whose keys are labelled `label-<key without
/// "sk-">` (so a label never contains a whole key).
pub fn provider(keys: &[&str]) -> ProviderConfig {
    keys.iter().fold(
        ProviderConfig::new().cooldown(Cooldown::fixed(Duration::from_secs(60))),
        |p, k| {
            p.credential(CredentialConfig::new(*k).label(format!("label-{}", k.replace("sk-", ""))))
        },
    )
}

/// A builder with provider `openai` of `keys`, the clock, and no ticker.
pub fn builder(keys: &[&str], clock: &FakeClock) -> KeyRotatorBuilder {
    KeyRotator::builder()
        .provider("openai", provider(keys))
        .clock(clock.clone())
        .reset_interval(Duration::ZERO)
}

pub fn key(r: &KeyRotator) -> Option<String> {
    r.get_key("openai").map(|c| c.expose_key().to_owned())
}

/// Whether this process was started by `spawn_self` to play the child named `role`.
pub fn child_role(role: &str) -> bool {
    std::env::var("AKR_TEST_CHILD").as_deref() == Ok(role)
}

/// Starts this test binary again, running only the test `test_name` as the child `role`, with
/// extra environment variables. Its stdin and stdout are piped.
pub fn spawn_self(test_name: &str, role: &str, envs: &[(&str, String)]) -> Child {
    let exe = std::env::current_exe().expect("test binary path");
    let mut cmd = Command::new(exe);
    cmd.args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env("AKR_TEST_CHILD", role)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn child test process")
}

/// How long a test waits for another process or thread to catch up before it fails. The
/// wait ends as soon as the condition holds, so this only bounds a failure: it is far above
/// what any loaded machine needs, and never a claim about speed.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Waits until `check` holds, for at most `limit`; returns whether it did.
pub fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Whether `haystack` contains `needle`.
pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}
