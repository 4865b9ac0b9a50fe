//! `get_key` and `mark_exhausted` on this machine, beside a clock read measured in the same run.
//!
//! Absolute times differ between machines of the same kind, and on a shared machine between
//! runs; a clock read is a reference that moves with them, so targets are stated as ratios to
//! it (`get_key` ≤ 0.75× `Instant::now()`, `mark_exhausted` ≤ 5×).
//!
//! Times are the benchmark thread's CPU time (see `support/thread_cpu.rs`), so that other
//! processes on a shared machine do not inflate them.
//!
//! Run: `cargo bench -p ai-key-rotator --bench get_key -- --warm-up-time 1 --measurement-time 3`.
//! Figures go in BENCHMARKS.md.

#[path = "support/thread_cpu.rs"]
mod thread_cpu;

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime};

use ai_key_rotator::{Clock, Cooldown, CredentialConfig, KeyRotator, ProviderConfig, SystemClock};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use thread_cpu::{ThreadCpu, thread_cpu_nanos};

fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("sk-proj-{i:040}")).collect()
}

fn rotator(keys: &[String]) -> KeyRotator {
    let provider = ProviderConfig {
        credentials: keys
            .iter()
            .map(|k| CredentialConfig::new(k.clone()))
            .collect(),
        cooldown: Cooldown::fixed(Duration::from_secs(3600)),
        ..ProviderConfig::new()
    };
    KeyRotator::builder()
        // A second provider so the name lookup is not trivially the only entry.
        .provider("anthropic", ProviderConfig::new().credential("sk-ant-1"))
        .provider("openai", provider)
        .reset_interval(Duration::ZERO)
        .build()
        .unwrap()
}

/// The references: a monotonic clock read, the wall-clock read that `SystemClock` makes, and
/// `SystemClock::now()` itself (what the rotator's slow paths pay to know the time).
fn clock(c: &mut Criterion<ThreadCpu>) {
    let mut g = c.benchmark_group("clock");
    g.bench_function("Instant::now", |b| b.iter(|| black_box(Instant::now())));
    g.bench_function("SystemTime::now", |b| {
        b.iter(|| black_box(SystemTime::now()))
    });
    g.bench_function("SystemClock::now", |b| {
        b.iter(|| black_box(SystemClock.now()))
    });
    // What `get_key` pays to read its snapshot safely, alone: arc-swap's load (a SeqCst swap
    // into this thread's debt slot) and the guard's drop (a compare-and-swap paying it back),
    // two locked instructions.
    let snapshot = arc_swap::ArcSwap::from_pointee(0u64);
    g.bench_function("arc-swap load+drop", |b| {
        b.iter(|| black_box(snapshot.load()))
    });
    g.finish();
}

fn get_key(c: &mut Criterion<ThreadCpu>) {
    let mut g = c.benchmark_group("get_key");
    for n in [10, 1_000, 100_000] {
        let ks = keys(n);
        let r = rotator(&ks);
        g.bench_with_input(BenchmarkId::new("1-thread", n), &r, |b, r| {
            b.iter(|| black_box(r.get_key(black_box("openai"))))
        });
        // Two threads calling at once; the time reported is CPU time per call of *each*
        // thread (the mean of the two), so equal figures for 1 and 2 threads mean that
        // neither slows the other down: twice the total throughput on two free cores. (Wall
        // time cannot show that on a machine whose cores are busy with other work.)
        g.bench_with_input(BenchmarkId::new("2-threads", n), &r, |b, r| {
            b.iter_custom(|iters| {
                let barrier = Arc::new(Barrier::new(2));
                let worker = {
                    let (r, barrier) = (r.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        let start = thread_cpu_nanos();
                        for _ in 0..iters {
                            black_box(r.get_key(black_box("openai")));
                        }
                        thread_cpu_nanos() - start
                    })
                };
                barrier.wait();
                let start = thread_cpu_nanos();
                for _ in 0..iters {
                    black_box(r.get_key(black_box("openai")));
                }
                let mine = thread_cpu_nanos() - start;
                let theirs = worker.join().unwrap();
                Duration::from_nanos((mine + theirs) / 2)
            })
        });
    }

    // 99.9 % of 100 000 keys cooling, spread evenly: the rotator has just moved past a long
    // run of cooling keys to an available one.
    let ks = keys(100_000);
    let r = rotator(&ks);
    for (i, k) in ks.iter().enumerate() {
        if i % 1000 != 999 {
            r.mark_exhausted("openai", Some(k));
        }
    }
    assert_eq!(r.provider_status("openai").unwrap().available, 100);
    g.bench_function("1-thread/100000-99.9%-cooling", |b| {
        b.iter(|| black_box(r.get_key(black_box("openai"))))
    });
    // Every key cooling: the answer "none until T" comes from the provider's cache.
    for k in ks.iter().skip(999).step_by(1000) {
        r.mark_exhausted("openai", Some(k));
    }
    assert!(r.get_key("openai").is_none());
    g.bench_function("1-thread/100000-all-cooling", |b| {
        b.iter(|| black_box(r.get_key(black_box("openai"))))
    });
    g.finish();
}

fn mark_exhausted(c: &mut Criterion<ThreadCpu>) {
    let mut g = c.benchmark_group("mark_exhausted");
    let ks = keys(1_000);
    let r = rotator(&ks);
    // Marks the current key (the common case: it just got a 429), which also moves the
    // provider on to the next key. After every 1 000 marks all keys are cooling and the batch
    // resets them, outside the timing.
    g.bench_function("current/1000", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut done = 0;
            while done < iters {
                r.reset_all(None);
                let batch = (iters - done).min(999);
                let start = thread_cpu_nanos();
                for _ in 0..batch {
                    black_box(r.mark_exhausted(black_box("openai"), None));
                }
                total += Duration::from_nanos(thread_cpu_nanos() - start);
                done += batch;
            }
            total
        })
    });
    // Marks by key string, which fingerprints the key to find it.
    g.bench_function("by-key/1000", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % ks.len();
            black_box(r.mark_exhausted(black_box("openai"), Some(&ks[i])))
        })
    });
    // With a subscriber listening, events are built and queued.
    let mut sub = r.subscribe();
    g.bench_function("current/1000-with-subscriber", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut done = 0;
            while done < iters {
                r.reset_all(None);
                sub.drain();
                let batch = (iters - done).min(999);
                let start = thread_cpu_nanos();
                for _ in 0..batch {
                    black_box(r.mark_exhausted(black_box("openai"), None));
                }
                total += Duration::from_nanos(thread_cpu_nanos() - start);
                done += batch;
            }
            total
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpu);
    targets = clock, get_key, mark_exhausted, clock_again
}
/// The clock once more at the end: on a shared machine, a reference taken both before and after
/// shows whether the machine's speed moved during the run.
fn clock_again(c: &mut Criterion<ThreadCpu>) {
    let mut g = c.benchmark_group("clock-after");
    g.bench_function("Instant::now", |b| b.iter(|| black_box(Instant::now())));
    g.finish();
}

criterion_main!(benches);
