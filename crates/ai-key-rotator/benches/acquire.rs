//! `acquire` + drop per strategy at 10 and 1 000 keys, next to `get_key` and a clock read, and
//! the overhead of `execute`.
//!
//! Times are the benchmark thread's CPU time (see `support/thread_cpu.rs`).
//!
//! Run: `cargo bench -p ai-key-rotator --bench acquire -- --warm-up-time 1 --measurement-time 3`.
//! Figures go in BENCHMARKS.md.

#[path = "support/thread_cpu.rs"]
mod thread_cpu;

use std::hint::black_box;
use std::time::{Duration, Instant};

use ai_key_rotator::classify::{Usage, Verdict};
use ai_key_rotator::execute::Plan;
use ai_key_rotator::{AcquireOptions, CredentialConfig, KeyRotator, ProviderConfig, Strategy};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use thread_cpu::ThreadCpu;

fn rotator(strategy: Strategy, keys: usize) -> KeyRotator {
    let provider = (0..keys).fold(ProviderConfig::new().strategy(strategy), |p, i| {
        p.credential(CredentialConfig::new(format!("sk-proj-{i:040}")))
    });
    KeyRotator::builder()
        .provider("openai", provider)
        .reset_interval(Duration::ZERO)
        .build()
        .unwrap()
}

fn strategies(c: &mut Criterion<ThreadCpu>) {
    for keys in [10, 1_000] {
        strategies_at(c, keys);
    }
}

fn strategies_at(c: &mut Criterion<ThreadCpu>, keys: usize) {
    let mut g = c.benchmark_group(format!("strategy-{keys}"));
    g.bench_function("Instant::now (reference)", |b| {
        b.iter(|| black_box(Instant::now()))
    });
    for (name, strategy) in [
        ("fill-first", Strategy::FillFirst),
        ("round-robin", Strategy::RoundRobin),
        ("least-recently-used", Strategy::LeastRecentlyUsed),
        ("weighted", Strategy::Weighted),
        ("least-in-flight", Strategy::LeastInFlight),
        ("most-remaining", Strategy::MostRemaining),
    ] {
        let r = rotator(strategy, keys);
        g.bench_with_input(BenchmarkId::new("get_key", name), &r, |b, r| {
            b.iter(|| black_box(r.get_key(black_box("openai"))))
        });
        g.bench_with_input(BenchmarkId::new("acquire+drop", name), &r, |b, r| {
            b.iter(|| black_box(r.acquire(black_box("openai"))))
        });
    }
    let r = rotator(Strategy::FillFirst, keys);
    let session = AcquireOptions::default().session("conversation-42");
    g.bench_function("acquire+drop/session", |b| {
        b.iter(|| black_box(r.acquire_with(black_box("openai"), &session)))
    });
    // Prompt-cache affinity: the same ranking as sessions, from a hash the caller already has.
    let affinity = AcquireOptions::default().affinity(0x0123_4567_89ab_cdef);
    g.bench_function("acquire+drop/affinity", |b| {
        b.iter(|| black_box(r.acquire_with(black_box("openai"), &affinity)))
    });

    // The scans that cannot stop early: no key is idle (least-in-flight) or of unknown
    // remaining quota (most-remaining), so every pick looks at every key. (Least-recently-used
    // is always in this case once every key has been used, as in its figures above.)
    let r = rotator(Strategy::LeastInFlight, keys);
    let busy: Vec<_> = (0..keys).map(|_| r.acquire("openai").unwrap()).collect();
    g.bench_function("acquire+drop/least-in-flight, every key busy", |b| {
        b.iter(|| black_box(r.acquire(black_box("openai"))))
    });
    drop(busy);
    let r = rotator(Strategy::MostRemaining, keys);
    for left in 0..keys as u64 {
        let c = r.get_key("openai").unwrap();
        let usage = Usage {
            remaining_requests: Some(1_000_000 + left),
            ..Usage::default()
        };
        r.report(&c, &Verdict::Ok(usage));
    }
    g.bench_function("get_key/most-remaining, every key reported", |b| {
        b.iter(|| black_box(r.get_key(black_box("openai"))))
    });
    g.finish();
}

/// `acquire` with a model on a provider of 1 000 keys while per-model cooldowns are active:
/// the first 100 keys rest for `gpt-4o` (the fill-first cursor among them), so a pick for
/// `gpt-4o` steps past them through the model's own cursor; a pick for another model, and one
/// with no model, show what the side table costs everyone else. Target: at most 200 ns.
fn per_model(c: &mut Criterion<ThreadCpu>) {
    use ai_key_rotator::classify::{LimitKind, LimitScope, ModelName};
    let mut g = c.benchmark_group("per-model-1000");
    let r = rotator(Strategy::FillFirst, 1_000);
    let limit = Verdict::RateLimited {
        until: Some(r.now().saturating_add(Duration::from_secs(3_600))),
        scope: LimitScope::Model(ModelName::new("gpt-4o").unwrap()),
        limit: LimitKind::TokensPerMinute,
    };
    for _ in 0..100 {
        let key = r.get_key_for("openai", "gpt-4o").unwrap();
        r.report_for_model(&key, &limit);
    }
    let gpt4o = AcquireOptions::default().model("gpt-4o");
    let other = AcquireOptions::default().model("gpt-4o-mini");
    g.bench_function("acquire+drop/model resting on 100 keys", |b| {
        b.iter(|| black_box(r.acquire_with(black_box("openai"), &gpt4o)))
    });
    g.bench_function("acquire+drop/another model", |b| {
        b.iter(|| black_box(r.acquire_with(black_box("openai"), &other)))
    });
    g.bench_function("acquire+drop/no model", |b| {
        b.iter(|| black_box(r.acquire(black_box("openai"))))
    });
    g.bench_function("get_key (no model)", |b| {
        b.iter(|| black_box(r.get_key(black_box("openai"))))
    });
    g.finish();
}

fn execute(c: &mut Criterion<ThreadCpu>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let r = rotator(Strategy::FillFirst, 10);
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

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpu);
    targets = strategies, per_model, execute
}
criterion_main!(benches);
