//! `acquire` with a fleet-wide budget in Redis: the cost to the caller, whose cells are
//! leased in batches in the background (`budget/fleet.rs`), so that most calls are local.
//!
//! Run: `cargo bench -p ai-key-rotator --all-features --bench fleet_budget`. It starts a
//! private `redis-server` (skipped without one). Besides criterion's mean, it prints the
//! latency percentiles of 200 000 timed calls, for two budgets: one far above the call rate
//! (every call is granted from the leased batch) and one below it (calls are refused until
//! the next lease, refilled in the background). Figures go in BENCHMARKS.md.

use std::hint::black_box;
use std::time::{Duration, Instant};

use ai_key_rotator::{Budget, KeyRotator, ProviderConfig, RedisStore};
use criterion::{Criterion, criterion_group, criterion_main};

#[path = "../tests/store_support/redis_server.rs"]
mod redis_server;

fn rotator(url: &str, prefix: &str, rpm: u64) -> KeyRotator {
    KeyRotator::builder()
        .provider(
            "openai",
            ProviderConfig::new()
                .credential("sk-bench-a")
                .budget(Budget {
                    requests_per_minute: Some(rpm),
                    ..Budget::default()
                }),
        )
        .reset_interval(Duration::ZERO)
        .store(RedisStore::builder(url).prefix(prefix).build().unwrap())
        .build()
        .unwrap()
}

fn percentiles(r: &KeyRotator, label: &str) {
    let mut ns: Vec<u64> = Vec::with_capacity(200_000);
    let mut granted = 0u64;
    for _ in 0..200_000 {
        let t = Instant::now();
        let lease = r.acquire(black_box("openai"));
        let spent = t.elapsed().as_nanos() as u64;
        granted += u64::from(lease.is_ok());
        drop(lease);
        ns.push(spent);
    }
    ns.sort_unstable();
    let at = |q: f64| ns[((ns.len() as f64 - 1.0) * q) as usize] as f64 / 1000.0;
    println!(
        "fleet budget, {label}: acquire+drop p50 {:.2} µs, p99 {:.2} µs, p99.9 {:.2} µs, max {:.1} µs ({granted} of 200000 granted)",
        at(0.5),
        at(0.99),
        at(0.999),
        at(1.0)
    );
}

fn fleet_budget(c: &mut Criterion) {
    let Some(server) = redis_server::RedisServer::start() else {
        return;
    };
    let mut g = c.benchmark_group("fleet-budget");
    for (label, rpm) in [
        ("limit far above the call rate", 600_000_000),
        ("limit below the call rate", 600_000),
    ] {
        let r = rotator(&server.url(), label.split(' ').nth(1).unwrap(), rpm);
        // Let the first lease arrive.
        std::thread::sleep(Duration::from_millis(200));
        g.bench_function(format!("acquire+drop, {label}"), |b| {
            b.iter(|| black_box(r.acquire(black_box("openai"))))
        });
        percentiles(&r, label);
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = fleet_budget
}
criterion_main!(benches);
