//! One process holding 1 000 000 credentials across 10 000 providers (issue 12): how long the
//! rotator takes to build, the memory each credential costs beyond its key and label strings
//! (a counting allocator), `get_key` on one of those providers against a rotator with one
//! provider (the `get_key` benchmark's setup), and how long the Redis store takes to reconcile
//! after the server restarts empty.
//!
//! Not a criterion benchmark (a few long, one-off measurements): a program CI only compiles.
//!
//! `cargo bench -p ai-key-rotator --features redis --bench fleet_scale [-- PROVIDERS KEYS_PER_PROVIDER]`
//! (10 000 × 100 by default). The Redis part prints SKIPPED without a `redis-server`.
//! `AKR_BENCH_REDIS_TIMEOUT_MS` sets the store's connect and command timeouts (the library's
//! 2 s by default; a reconcile must finish within their sum).

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
#[path = "../tests/store_support/redis_server.rs"]
mod redis_server;
// Only its clock, not its criterion measurement.
#[allow(dead_code)]
#[path = "support/thread_cpu.rs"]
mod thread_cpu;

use std::hint::black_box;
use std::time::{Duration, Instant};

use ai_key_rotator::{
    CredentialConfig, CredentialState, KeyRotator, KeyRotatorBuilder, ProviderConfig, RedisStore,
};
use counting_alloc::{live_bytes, peak_rss_kib, rss_kib};
use redis_server::RedisServer;
use thread_cpu::thread_cpu_nanos;

fn provider_name(p: usize) -> String {
    format!("provider-{p:05}")
}

/// Keys as long as real ones (48 bytes, like the `sk-proj-…` keys of the memory test) and
/// short labels; also the bytes of those strings.
fn credentials(p: usize, per: usize) -> (Vec<CredentialConfig>, usize) {
    let mut bytes = 0;
    let list = (0..per)
        .map(|k| {
            let key = format!("sk-proj-{p:05}-{k:05}-{:028}", p * per + k);
            let label = format!("key-{k}");
            bytes += key.len() + label.len();
            CredentialConfig::new(key).label(label)
        })
        .collect();
    (list, bytes)
}

fn configs(providers: usize, per: usize) -> (Vec<(String, ProviderConfig)>, usize) {
    let mut strings = 0;
    let list = (0..providers)
        .map(|p| {
            let (creds, bytes) = credentials(p, per);
            strings += bytes;
            (
                provider_name(p),
                ProviderConfig {
                    credentials: creds,
                    ..ProviderConfig::new()
                },
            )
        })
        .collect();
    (list, strings)
}

fn builder(list: Vec<(String, ProviderConfig)>) -> KeyRotatorBuilder {
    list.into_iter().fold(
        KeyRotator::builder().reset_interval(Duration::ZERO),
        |b, (name, config)| b.provider(name, config),
    )
}

/// `get_key` CPU time per call on `provider`: the best of 5 rounds of 2 000 000 calls (the
/// best round is the one other processes disturbed least).
fn get_key_ns(rotator: &KeyRotator, provider: &str) -> f64 {
    const CALLS: u64 = 2_000_000;
    (0..5)
        .map(|_| {
            let start = thread_cpu_nanos();
            for _ in 0..CALLS {
                black_box(rotator.get_key(black_box(provider)));
            }
            (thread_cpu_nanos() - start) as f64 / CALLS as f64
        })
        .fold(f64::INFINITY, f64::min)
}

/// `Instant::now()` measured the same way: the reference the other benches state ratios to.
fn instant_ns() -> f64 {
    const CALLS: u64 = 2_000_000;
    (0..5)
        .map(|_| {
            let start = thread_cpu_nanos();
            for _ in 0..CALLS {
                black_box(Instant::now());
            }
            (thread_cpu_nanos() - start) as f64 / CALLS as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let providers = args.first().copied().unwrap_or(10_000);
    let per = args.get(1).copied().unwrap_or(100);
    let n = providers * per;
    println!(
        "{n} credentials: {providers} providers × {per}; load {}",
        load_average()
    );

    // 1. Build, memory.
    let (list, strings) = configs(providers, per);
    // Measured from after the configurations were made: their keys and labels become the
    // rotator's, so the difference is what the rotator holds beyond those strings.
    let (before, rss_before) = (live_bytes(), rss_kib());
    let started = Instant::now();
    let rotator = builder(list).build().expect("a rotator");
    let build = started.elapsed();
    // Touch every provider once, as a process that serves all of them would (per-thread use
    // counters are made on first use).
    for p in 0..providers {
        black_box(rotator.get_key(&provider_name(p)));
    }
    let held = live_bytes() - before;
    println!(
        "build: {:.2} s ({:.2} µs per credential)",
        build.as_secs_f64(),
        build.as_secs_f64() * 1e6 / n as f64
    );
    println!(
        "memory beyond {strings} bytes of keys and labels: {held} bytes allocated, {:.1} bytes per credential (target ≤ 256); RSS grew by {} KiB ({:.1} bytes per credential, strings included)",
        held as f64 / n as f64,
        rss_kib().saturating_sub(rss_before),
        (rss_kib().saturating_sub(rss_before) * 1024) as f64 / n as f64,
    );

    // 2. get_key: one provider among 10 000 against a rotator with one provider.
    let one = KeyRotator::builder()
        .provider(
            "openai",
            ProviderConfig {
                credentials: credentials(0, per).0,
                ..ProviderConfig::new()
            },
        )
        .reset_interval(Duration::ZERO)
        .build()
        .expect("a rotator");
    let reference = instant_ns();
    let single = get_key_ns(&one, "openai");
    let middle = provider_name(providers / 2);
    let many = get_key_ns(&rotator, &middle);
    println!(
        "get_key (thread CPU time, best of 5 × 2M calls): 1 provider × {per} keys {single:.1} ns, one of {providers} providers {many:.1} ns ({:.2}×); Instant::now() {reference:.1} ns",
        many / single
    );
    drop(one);
    drop(rotator);

    // 3. The same rotator on Redis: build (the first load), 1 % of the credentials cooling,
    //    then the server restarts empty and the store writes them back.
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let timeout = std::env::var("AKR_BENCH_REDIS_TIMEOUT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis);
    let mut store = RedisStore::builder(server.url()).prefix("scale");
    if let Some(t) = timeout {
        store = store.timeout(t);
    }
    let store = store.build().expect("a redis store");
    let monitor = store.monitor();
    let (list, _) = configs(providers, per);
    let started = Instant::now();
    let rotator = builder(list).store(store).build().expect("a rotator");
    println!(
        "build with the Redis store (first load from an empty server): {:.2} s; store error: {:?}",
        started.elapsed().as_secs_f64(),
        rotator.store_error().map(ToString::to_string)
    );
    // With many providers the first load may not fit in the store's session timeout
    // (connect + command timeout): say whether and when the store connected after all.
    let waited = Instant::now();
    while !monitor.is_connected() && waited.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(5));
    }
    if monitor.is_connected() {
        println!(
            "store connected {:.2} s after the build returned",
            waited.elapsed().as_secs_f64()
        );
    } else {
        println!(
            "store NOT connected 60 s after the build returned (every attempt timed out: raise AKR_BENCH_REDIS_TIMEOUT_MS); stopping"
        );
        return;
    }
    // Every hundredth credential cooling: one mark on each provider's current key.
    let marks = (n / 100).max(1);
    let started = Instant::now();
    for i in 0..marks {
        rotator.mark_exhausted(&provider_name(i % providers), None);
    }
    rotator.flush_store();
    let cooling = rotator
        .status()
        .providers
        .iter()
        .flat_map(|p| p.credentials.iter())
        .filter(|c| matches!(c.state, CredentialState::Cooling { .. }))
        .count() as u64;
    println!(
        "{marks} marks written to Redis in {:.2} s; {cooling} credentials cooling",
        started.elapsed().as_secs_f64()
    );
    server.kill();
    // Let the store see the server go before it comes back (a restart within the same
    // reconnect attempt would not be an outage at all).
    let seen = Instant::now();
    while monitor.is_connected() && seen.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let restarted = Instant::now();
    server.restart();
    let mut connected = None;
    let mut drained = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    while Instant::now() < deadline && drained.is_none() {
        if connected.is_none() && monitor.is_connected() {
            connected = Some(restarted.elapsed());
        }
        if connected.is_some() && monitor.queued() == 0 {
            drained = Some(restarted.elapsed());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let stored = stored_cooldowns(server.port);
    let ms = |d: Option<Duration>| {
        d.map_or("not within 600 s".into(), |d| {
            format!("{:.0} ms", d.as_secs_f64() * 1000.0)
        })
    };
    println!(
        "after restarting redis-server empty: connected again (reconciled) after {}, queue empty after {}; the server holds {} cooldowns of {cooling}; outages seen {}",
        ms(connected),
        ms(drained),
        stored.map_or("?".into(), |n| n.to_string()),
        monitor.outages()
    );
    println!(
        "peak RSS {} MiB; load {}",
        peak_rss_kib() / 1024,
        load_average()
    );
    rotator.shutdown();
}

/// The number of cooldowns the server holds under the bench's prefix.
fn stored_cooldowns(port: u16) -> Option<u64> {
    use std::io::{BufRead, BufReader, Write};
    let script = "local n = 0 for _, k in ipairs(redis.call('KEYS', '{scale:*}:cooldowns')) do n = n + redis.call('HLEN', k) end return n";
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let request = format!(
        "*3\r\n$4\r\nEVAL\r\n${}\r\n{script}\r\n$1\r\n0\r\n",
        script.len()
    );
    s.write_all(request.as_bytes()).ok()?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).ok()?;
    line.strip_prefix(':')?.trim().parse().ok()
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
