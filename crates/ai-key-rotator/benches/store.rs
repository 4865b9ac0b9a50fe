//! `mark_exhausted` with each store attached, and `get_key` with and without Redis.
//!
//! Run: `cargo bench -p ai-key-rotator --all-features --bench store`. A store's writes happen
//! on its own thread: what is measured is the cost to the caller (the change is recorded and
//! enqueued). The Redis group starts a private `redis-server` and is skipped without one.

use std::hint::black_box;
use std::time::Duration;

use ai_key_rotator::{
    Cooldown, FakeClock, KeyRotator, KeyRotatorBuilder, ProviderConfig, Timestamp,
};
use criterion::{Criterion, criterion_group, criterion_main};

#[cfg(feature = "redis")]
#[path = "../tests/store_support/redis_server.rs"]
mod redis_server;

fn builder(clock: &FakeClock) -> KeyRotatorBuilder {
    KeyRotator::builder()
        .provider(
            "openai",
            ProviderConfig::new()
                .credential("sk-bench-a")
                .credential("sk-bench-b")
                .cooldown(Cooldown::fixed(Duration::from_secs(60))),
        )
        .clock(clock.clone())
        .reset_interval(Duration::ZERO)
}

fn with_store(
    store: Option<Box<dyn FnOnce(KeyRotatorBuilder) -> KeyRotatorBuilder>>,
) -> (KeyRotator, FakeClock) {
    let clock = FakeClock::new(Timestamp::from_secs(1_795_599_000));
    let b = builder(&clock);
    let b = match store {
        Some(add) => add(b),
        None => b,
    };
    (b.build().unwrap(), clock)
}

// Without a store feature only the memory rows run.
#[cfg(any(feature = "file", feature = "sqlite", feature = "redis"))]
fn attach<S: ai_key_rotator::StateStore>(
    store: S,
) -> Option<Box<dyn FnOnce(KeyRotatorBuilder) -> KeyRotatorBuilder>> {
    Some(Box::new(move |b: KeyRotatorBuilder| b.store(store)))
}

fn bench_mark(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    r: &KeyRotator,
    clock: &FakeClock,
) {
    // Each mark extends the running cooldown, so each one is a state change the store records.
    g.bench_function(name, |b| {
        b.iter(|| {
            clock.advance(Duration::from_millis(1));
            black_box(r.mark_exhausted("openai", Some("sk-bench-a")))
        })
    });
    r.flush_store();
}

fn mark_exhausted(c: &mut Criterion) {
    #[cfg(any(feature = "file", feature = "sqlite"))]
    let dir = tempfile::tempdir().unwrap();
    let mut g = c.benchmark_group("mark_exhausted");
    let (r, clock) = with_store(None);
    bench_mark(&mut g, "memory", &r, &clock);
    #[cfg(feature = "file")]
    {
        let store = ai_key_rotator::FileStore::open(dir.path().join("state.json")).unwrap();
        let (r, clock) = with_store(attach(store));
        bench_mark(&mut g, "file", &r, &clock);
    }
    #[cfg(feature = "sqlite")]
    {
        let store = ai_key_rotator::SqliteStore::open(dir.path().join("state.db")).unwrap();
        let (r, clock) = with_store(attach(store));
        bench_mark(&mut g, "sqlite", &r, &clock);
    }
    #[cfg(feature = "redis")]
    if let Some(server) = redis_server::RedisServer::start() {
        let store = ai_key_rotator::RedisStore::builder(server.url())
            .build()
            .unwrap();
        let (r, clock) = with_store(attach(store));
        bench_mark(&mut g, "redis", &r, &clock);
        drop(r);
        drop(server);
    }
    g.finish();
}

fn get_key(c: &mut Criterion) {
    let mut g = c.benchmark_group("get_key");
    let (r, _clock) = with_store(None);
    g.bench_function("no-store", |b| {
        b.iter(|| black_box(r.get_key(black_box("openai"))))
    });
    #[cfg(feature = "redis")]
    if let Some(server) = redis_server::RedisServer::start() {
        let store = ai_key_rotator::RedisStore::builder(server.url())
            .build()
            .unwrap();
        let (r, _clock) = with_store(attach(store));
        g.bench_function("redis-attached", |b| {
            b.iter(|| black_box(r.get_key(black_box("openai"))))
        });
        drop(r);
        drop(server);
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = mark_exhausted, get_key
}
criterion_main!(benches);
