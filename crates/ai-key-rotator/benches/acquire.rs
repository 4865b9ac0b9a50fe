//! `acquire` + drop per strategy, next to `get_key`, and the overhead of `execute`.
//!
//! Run: `cargo bench -p ai-key-rotator --bench acquire`. Figures go in BENCHMARKS.md.

use std::hint::black_box;
use std::time::Duration;

use ai_key_rotator::classify::{Usage, Verdict};
use ai_key_rotator::execute::Plan;
use ai_key_rotator::{AcquireOptions, CredentialConfig, KeyRotator, ProviderConfig, Strategy};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

const KEYS: usize = 10;

fn rotator(strategy: Strategy) -> KeyRotator {
    let provider = (0..KEYS).fold(ProviderConfig::new().strategy(strategy), |p, i| {
        p.credential(CredentialConfig::new(format!("sk-proj-{i:040}")))
    });
    KeyRotator::builder()
        .provider("openai", provider)
        .reset_interval(Duration::ZERO)
        .build()
        .unwrap()
}

fn strategies(c: &mut Criterion) {
    let mut g = c.benchmark_group("strategy");
    for (name, strategy) in [
        ("fill-first", Strategy::FillFirst),
        ("round-robin", Strategy::RoundRobin),
        ("least-recently-used", Strategy::LeastRecentlyUsed),
        ("weighted", Strategy::Weighted),
        ("least-in-flight", Strategy::LeastInFlight),
        ("most-remaining", Strategy::MostRemaining),
    ] {
        let r = rotator(strategy);
        g.bench_with_input(BenchmarkId::new("get_key", name), &r, |b, r| {
            b.iter(|| black_box(r.get_key(black_box("openai"))))
        });
        g.bench_with_input(BenchmarkId::new("acquire+drop", name), &r, |b, r| {
            b.iter(|| black_box(r.acquire(black_box("openai"))))
        });
    }
    let r = rotator(Strategy::FillFirst);
    let session = AcquireOptions::default().session("conversation-42");
    g.bench_function("acquire+drop/session", |b| {
        b.iter(|| black_box(r.acquire_with(black_box("openai"), &session)))
    });
    g.finish();
}

fn execute(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let r = rotator(Strategy::FillFirst);
    let plan = Plan::new("openai");
    let ok = Verdict::Ok(Usage::default());
    let mut g = c.benchmark_group("execute");
    // The request itself does nothing: what is measured is execute's own work (acquire,
    // attempt bookkeeping, report, release).
    g.bench_function("no-op request", |b| {
        b.iter(|| {
            rt.block_on(r.execute(&plan, |attempt| {
                let v = ok.clone();
                async move {
                    black_box(attempt.expose_key());
                    Ok::<_, std::convert::Infallible>((v, ()))
                }
            }))
        })
    });
    g.bench_function("block_on alone (baseline)", |b| {
        b.iter(|| rt.block_on(async { black_box(()) }))
    });
    g.finish();
}

criterion_group!(benches, strategies, execute);
criterion_main!(benches);
