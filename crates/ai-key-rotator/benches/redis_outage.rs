//! Memory of the Redis store during a Redis outage, then the time to reconcile (issue 12).
//!
//! A rotator with 10 000 keys (10 providers × 1 000) on a private `redis-server`; the server is
//! killed, and the rotator goes on marking keys exhausted 1 000 times a second for 60 seconds
//! (each mark extends a running cooldown, so each one is a change the store must keep for
//! later), while the program samples, once a second, the bytes the process has allocated (a
//! counting allocator), its resident memory and the store's queue. Then the server is started
//! again, empty, and the program reports how long the store takes to reconcile: to be connected
//! again, to have nothing queued, and for the server to hold every cooling key again.
//!
//! Not a criterion benchmark (one long run, not repeated calls): a program CI only compiles.
//!
//! `cargo bench -p ai-key-rotator --features redis --bench redis_outage [-- SECONDS [RATE]]`
//! (60 s at 1 000 marks/s by default). Prints SKIPPED without a `redis-server`.

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
#[path = "../tests/store_support/redis_server.rs"]
mod redis_server;

use std::time::{Duration, Instant};

use ai_key_rotator::{Cooldown, KeyRotator, ProviderConfig, RedisStore};
use counting_alloc::{live_bytes, rss_kib};
use redis_server::RedisServer;

const PROVIDERS: usize = 10;
const KEYS_PER_PROVIDER: usize = 1_000;

fn key(p: usize, k: usize) -> String {
    format!("sk-outage-{p:02}-{k:06}-0123456789abcdef")
}

/// The number of cooldowns the server holds under the bench's prefix (one round trip; the
/// test helper's `command` waits for more reply bytes, too slow to poll with).
fn stored_cooldowns(port: u16) -> Option<u64> {
    use std::io::{BufRead, BufReader, Write};
    let script = "local n = 0 for _, k in ipairs(redis.call('KEYS', '{outage:*}:cooldowns')) do n = n + redis.call('HLEN', k) end return n";
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request = format!(
        "*3\r\n$4\r\nEVAL\r\n${}\r\n{script}\r\n$1\r\n0\r\n",
        script.len()
    );
    s.write_all(request.as_bytes()).ok()?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).ok()?;
    line.strip_prefix(':')?.trim().parse().ok()
}

fn main() {
    // `cargo bench` passes `--bench`; the numbers are ours.
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let seconds = args.first().copied().unwrap_or(60);
    let rate = args.get(1).copied().unwrap_or(1_000);
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::builder(server.url())
        .prefix("outage")
        .build()
        .expect("a redis store");
    let monitor = store.monitor();
    let mut builder = KeyRotator::builder()
        .reset_interval(Duration::ZERO)
        .store(store);
    for p in 0..PROVIDERS {
        let mut config = ProviderConfig::new().cooldown(Cooldown::fixed(Duration::from_secs(3600)));
        for k in 0..KEYS_PER_PROVIDER {
            config = config.credential(key(p, k));
        }
        builder = builder.provider(format!("provider-{p:02}"), config);
    }
    let rotator = builder.build().expect("a rotator");
    assert!(
        rotator.store_error().is_none(),
        "{:?}",
        rotator.store_error()
    );
    let providers: Vec<String> = (0..PROVIDERS).map(|p| format!("provider-{p:02}")).collect();
    let keys: Vec<Vec<String>> = (0..PROVIDERS)
        .map(|p| (0..KEYS_PER_PROVIDER).map(|k| key(p, k)).collect())
        .collect();
    let total = PROVIDERS * KEYS_PER_PROVIDER;

    println!(
        "{total} keys ({PROVIDERS} providers × {KEYS_PER_PROVIDER}), Redis killed, {rate} marks/s for {seconds} s"
    );
    println!("load before: {}", load_average());
    server.kill();
    let start = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let mut marks = 0u64;
    let mut next_sample = start;
    let mut samples: Vec<(u64, isize, u64, usize)> = Vec::new();
    let end = start + Duration::from_secs(seconds);
    println!("second  allocated (KiB)  RSS (KiB)  queued");
    loop {
        let now = Instant::now();
        if now >= next_sample {
            let s = (
                now.duration_since(start).as_secs(),
                live_bytes() / 1024,
                rss_kib(),
                monitor.queued(),
            );
            println!("{:>6}  {:>15}  {:>9}  {:>6}", s.0, s.1, s.2, s.3);
            samples.push(s);
            next_sample += Duration::from_secs(1);
        }
        if now >= end {
            break;
        }
        // Marks run on a fixed schedule (not "sleep between marks"), so a slow moment is made
        // up for and the rate holds over the run.
        let due = start + interval * marks as u32;
        if now < due {
            std::thread::sleep(due - now);
            continue;
        }
        let i = marks as usize % total;
        let (p, k) = (i % PROVIDERS, i / PROVIDERS);
        rotator.mark_exhausted(&providers[p], Some(&keys[p][k]));
        marks += 1;
    }
    let elapsed = start.elapsed().as_secs_f64();
    assert!(monitor.outages() >= 1, "the store noticed the outage");
    let alloc: Vec<isize> = samples.iter().map(|s| s.1).collect();
    let rss: Vec<u64> = samples.iter().map(|s| s.2).collect();
    let queued: Vec<usize> = samples.iter().map(|s| s.3).collect();
    println!(
        "{marks} marks in {elapsed:.1} s ({:.0}/s); outages seen by the store: {}",
        marks as f64 / elapsed,
        monitor.outages()
    );
    println!(
        "allocated (KiB): first {} last {} max {}",
        alloc[0],
        alloc[alloc.len() - 1],
        alloc.iter().max().unwrap()
    );
    println!(
        "RSS (KiB):       first {} last {} max {}",
        rss[0],
        rss[rss.len() - 1],
        rss.iter().max().unwrap()
    );
    println!(
        "queued:          first {} last {} max {} (one entry per changed credential; {total} keys)",
        queued[0],
        queued[queued.len() - 1],
        queued.iter().max().unwrap()
    );

    // Reconcile: the server comes back empty (no persistence), so every cooling key must be
    // written to it again from the local view.
    let cooling = rotator
        .status()
        .providers
        .iter()
        .flat_map(|p| p.credentials.iter())
        .filter(|c| matches!(c.state, ai_key_rotator::CredentialState::Cooling { .. }))
        .count() as u64;
    let restarted = Instant::now();
    server.restart();
    let up = restarted.elapsed();
    let mut connected = None;
    let mut drained = None;
    let mut stored = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline && stored.is_none() {
        if connected.is_none() && monitor.is_connected() {
            connected = Some(restarted.elapsed());
        }
        if connected.is_some() && drained.is_none() && monitor.queued() == 0 {
            drained = Some(restarted.elapsed());
        }
        if drained.is_some() && stored_cooldowns(server.port).is_some_and(|n| n >= cooling) {
            stored = Some(restarted.elapsed());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let ms = |d: Option<Duration>| {
        d.map_or("not within 120 s".into(), |d| {
            format!("{:.0} ms", d.as_secs_f64() * 1000.0)
        })
    };
    println!(
        "after restarting redis-server (up and answering after {:.0} ms): connected again (reconciled) after {}, queue empty after {}, {cooling} cooling keys all on the server after {}",
        up.as_secs_f64() * 1000.0,
        ms(connected),
        ms(drained),
        ms(stored)
    );
    println!("load after: {}", load_average());
    rotator.shutdown();
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
