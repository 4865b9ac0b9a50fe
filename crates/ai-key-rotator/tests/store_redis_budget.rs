//! Fleet-wide budgets and the fleet view through Redis: several OS processes share one limit
//! (leased in batches, GCRA on the server), each falls back to its share during an outage,
//! and every process sees the others' key-set digests. Each test starts its own
//! `redis-server`.
#![cfg(feature = "redis")]

mod store_support;

use std::io::{BufRead, BufReader, Write};
use std::time::{Duration, Instant};

use ai_key_rotator::{Budget, KeyRotator, ProviderConfig, RedisMonitor, RedisStore};
use store_support::redis_server::RedisServer;
use store_support::*;

/// The shared limit of the multi-process test, per minute, and its batch (one second of it).
const RPM: u64 = 3_000;
const BATCH: u64 = RPM / 60;

fn store(url: &str, prefix: &str) -> RedisStore {
    RedisStore::builder(url)
        .prefix(prefix)
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

fn budgeted(rpm: u64, keys: &[&str]) -> ProviderConfig {
    keys.iter()
        .fold(ProviderConfig::new(), |p, k| p.credential(*k))
        .budget(Budget {
            requests_per_minute: Some(rpm),
            ..Budget::default()
        })
}

/// A child process: one rotator whose key has the shared budget; on `go`, acquires as fast
/// as it can for `AKR_RUN_MS` and prints how many it was granted.
#[test]
fn budget_child() {
    if !child_role("budget") {
        return;
    }
    let url = std::env::var("AKR_REDIS_URL").unwrap();
    let prefix = std::env::var("AKR_PREFIX").unwrap();
    let run = Duration::from_millis(std::env::var("AKR_RUN_MS").unwrap().parse().unwrap());
    let r = KeyRotator::builder()
        .provider("openai", budgeted(RPM, &["sk-fleet"]))
        .reset_interval(Duration::ZERO)
        .store(store(&url, &prefix))
        .build()
        .unwrap();
    assert!(r.store_error().is_none(), "{:?}", r.store_error());
    println!("ready");
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).unwrap();
    let end = Instant::now() + run;
    let mut granted = 0u64;
    while Instant::now() < end {
        match r.acquire("openai") {
            Ok(_) => granted += 1,
            // Refused until the next lease: spin (the pick is local, no I/O).
            Err(_) => std::thread::yield_now(),
        }
    }
    println!("@granted {granted}");
    std::io::stdout().flush().unwrap();
}

#[test]
fn two_and_three_processes_share_one_budget_within_the_documented_overshoot() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    for n in [2u64, 3] {
        let prefix = format!("fleet{n}");
        let started = Instant::now();
        let mut children: Vec<_> = (0..n)
            .map(|_| {
                let mut c = spawn_self(
                    "budget_child",
                    "budget",
                    &[
                        ("AKR_REDIS_URL", server.url()),
                        ("AKR_PREFIX", prefix.clone()),
                        ("AKR_RUN_MS", "2000".into()),
                    ],
                );
                let out = BufReader::new(c.stdout.take().unwrap());
                (c, out)
            })
            .collect();
        let mut lines = Vec::new();
        for (_, out) in &mut children {
            let mut l = String::new();
            while !l.contains("ready") {
                l.clear();
                assert!(out.read_line(&mut l).unwrap() > 0, "child died");
            }
        }
        for (c, _) in &mut children {
            writeln!(c.stdin.as_mut().unwrap(), "go").unwrap();
        }
        let mut total = 0u64;
        for (c, out) in &mut children {
            let mut l = String::new();
            while !l.starts_with("@granted ") {
                l.clear();
                assert!(out.read_line(&mut l).unwrap() > 0, "child died");
            }
            let granted: u64 = l["@granted ".len()..].trim().parse().unwrap();
            lines.push(granted);
            total += granted;
            assert!(c.wait().unwrap().success());
        }
        // Every lease happened between the first child's start and now.
        let elapsed_ms = started.elapsed().as_millis() as u64;
        // The server admits at most one batch plus the rate over the time that passed; each
        // process may also have held one batch leased before it (see `budget/fleet.rs`).
        let bound = (RPM * elapsed_ms).div_ceil(60_000) + (n + 1) * BATCH;
        println!("{n} processes: granted {total} {lines:?} in {elapsed_ms} ms (bound {bound})");
        assert!(
            total <= bound,
            "{n} processes were granted {total} ({lines:?}) in {elapsed_ms} ms; at most {bound}"
        );
        // Without sharing, each process alone would have been granted its whole burst
        // (3 000): the bound above is far below that. And the leases went on past the first
        // batch.
        assert!(total > BATCH, "{n} processes: {lines:?}");
    }
}

fn fleet_of(m: &RedisMonitor) -> Option<ai_key_rotator::FleetView> {
    m.fleet()
}

#[test]
fn during_an_outage_each_process_keeps_to_its_share_and_says_so() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let clock = clock();
    let (a_store, b_store) = (
        store(&server.url(), "outage"),
        store(&server.url(), "outage"),
    );
    let (ma, mb) = (a_store.monitor(), b_store.monitor());
    let build = |s: RedisStore| {
        KeyRotator::builder()
            .provider("openai", budgeted(60, &["sk-a"]))
            .clock(clock.clone())
            .reset_interval(Duration::ZERO)
            .store(s)
            .build()
            .unwrap()
    };
    let (a, _b) = (build(a_store), build(b_store));
    assert!(
        wait_until(PATIENCE, || [&ma, &mb]
            .iter()
            .all(|m| fleet_of(m).is_some_and(|f| f.live_processes == 2))),
        "{:?}",
        fleet_of(&ma)
    );
    assert_eq!(fleet_of(&ma).unwrap().budgets_fallback, None);
    server.kill();
    assert!(
        wait_until(PATIENCE, || fleet_of(&ma)
            .is_some_and(|f| f.budgets_fallback == Some(2))),
        "{:?}",
        fleet_of(&ma)
    );
    // Its share: 60 / 2 live processes, on the rotator's (frozen) clock.
    let admitted = std::iter::from_fn(|| a.acquire("openai").ok())
        .take(1000)
        .count();
    assert_eq!(admitted, 30);
    // Redis is back: shared again.
    server.restart();
    assert!(
        wait_until(PATIENCE, || fleet_of(&ma)
            .is_some_and(|f| f.budgets_fallback.is_none())),
        "{:?}",
        fleet_of(&ma)
    );
}

#[test]
fn every_process_sees_the_fleet_and_the_replica_whose_keys_differ() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let clock = clock();
    let build = |keys: &[&str]| {
        let s = store(&server.url(), "view");
        let m = s.monitor();
        let r = builder(keys, &clock).store(s).build().unwrap();
        (r, m)
    };
    let same = [build(&[CANARY, "sk-b"]), build(&[CANARY, "sk-b"])];
    let (_old, old_m) = build(&[CANARY, "sk-old"]);
    assert!(
        wait_until(PATIENCE, || same
            .iter()
            .map(|(_, m)| m)
            .chain([&old_m])
            .all(|m| fleet_of(m).is_some_and(|f| f.replicas.len() == 3))),
        "{:?}",
        fleet_of(&old_m)
    );
    for m in same.iter().map(|(_, m)| m).chain([&old_m]) {
        let view = fleet_of(m).unwrap();
        let flagged: Vec<_> = view.replicas.iter().filter(|r| r.differs).collect();
        assert_eq!(flagged.len(), 1, "{view:?}");
        let old_id = fleet_of(&old_m).unwrap().this_process;
        assert_eq!(flagged[0].id, old_id, "{view:?}");
        assert!(view.replicas.iter().all(|r| r.credentials == 2));
        assert_eq!(view.replicas.iter().filter(|r| r.this_process).count(), 1);
        let shown = format!("{view:?}");
        assert!(!shown.contains(CANARY), "{shown}");
    }
    // Redis holds digests and fingerprints, never a key.
    let dump = server
        .command(&["HGETALL", "{view:fleet}:replicas"])
        .unwrap();
    assert!(!dump.contains(CANARY), "{dump}");
}
