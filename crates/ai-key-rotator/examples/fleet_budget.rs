//! One process of a fleet sharing a budget through Redis, for `scripts/measure-fleet-budget.sh`:
//! tries to acquire a key of provider `openai` every millisecond for a while and prints the
//! wall-clock time (Unix ms) of every request it was granted, one per line.
//!
//! `cargo run --release -p ai-key-rotator --features redis --example fleet_budget -- <redis-url> <requests-per-minute> <seconds>`

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ai_key_rotator::{Budget, KeyRotator, ProviderConfig, RedisStore};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, rpm, seconds] = args.as_slice() else {
        return Err("usage: fleet_budget <redis-url> <requests-per-minute> <seconds>".into());
    };
    let rotator = KeyRotator::builder()
        .provider(
            "openai",
            ProviderConfig::new()
                .credential("sk-fleet-demo")
                .budget(Budget {
                    requests_per_minute: Some(rpm.parse()?),
                    ..Budget::default()
                }),
        )
        .store(
            RedisStore::builder(url.as_str())
                .prefix("measure")
                .build()?,
        )
        .build()?;
    let end = Instant::now() + Duration::from_secs(seconds.parse()?);
    let mut granted = Vec::new();
    while Instant::now() < end {
        if rotator.acquire("openai").is_ok() {
            granted.push(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    for t in granted {
        println!("{t}");
    }
    Ok(())
}
