//! The Redis store on a Redis Cluster of 3 masters and 3 replicas started here: cooldowns are
//! shared through it, and a master killed (SIGKILL) mid-run, its replica promoted, loses no
//! cooldown and fails no request.
#![cfg(feature = "redis")]

mod store_support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ai_key_rotator::{CredentialState, KeyRotator, RedisStore};
use store_support::redis_server::RedisServer;
use store_support::*;

const PROVIDERS: [&str; 3] = ["openai", "anthropic", "gemini"];

struct Cluster {
    nodes: Vec<RedisServer>,
}

impl Cluster {
    /// Six nodes, made into 3 masters with a replica each; `None` without `redis-cli`.
    fn start() -> Option<Cluster> {
        let args = [
            "--cluster-enabled",
            "yes",
            "--cluster-node-timeout",
            "1000",
            // A replica may take over however long it was cut off (the test's kill is the
            // only failure), and syncs without the default 5 s wait.
            "--cluster-replica-validity-factor",
            "0",
            "--repl-diskless-sync-delay",
            "0",
        ];
        let nodes: Vec<RedisServer> = (0..6)
            .map(|_| RedisServer::start_with(&args))
            .collect::<Option<_>>()?;
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        match created {
            Ok(s) if s.success() => {}
            _ => {
                println!("SKIPPED: `redis-cli --cluster create` is not available or failed");
                return None;
            }
        }
        let cluster = Cluster { nodes };
        assert!(
            wait_until(PATIENCE, || cluster.alive().all(|n| n
                .command(&["CLUSTER", "INFO"])
                .is_some_and(|i| i.contains("cluster_state:ok")))),
            "the cluster did not form"
        );
        // Every replica has its first copy, so a kill loses only what a master had not yet
        // sent (which the store writes again).
        assert!(
            wait_until(PATIENCE, || cluster.nodes.iter().all(|n| n
                .command(&["INFO", "replication"])
                .is_some_and(
                    |i| i.contains("role:master") || i.contains("master_link_status:up")
                ))),
            "the replicas did not sync"
        );
        Some(cluster)
    }

    fn alive(&self) -> impl Iterator<Item = &RedisServer> {
        self.nodes.iter().filter(|n| n.command(&["PING"]).is_some())
    }

    fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The index of the master serving `key`'s slot, as a live node sees it (none while a
    /// failover is under way).
    fn master_of(&self, key: &str) -> Option<usize> {
        let node = self.alive().next().unwrap();
        let slot: u64 = node.command(&["CLUSTER", "KEYSLOT", key]).unwrap()[1..]
            .trim()
            .parse()
            .unwrap();
        let nodes = node.command(&["CLUSTER", "NODES"]).unwrap();
        for line in nodes.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 9 || !f[2].contains("master") || f[2].contains("fail") {
                continue;
            }
            let serves = f[8..].iter().any(|r| match r.split_once('-') {
                Some((a, b)) => (a.parse::<u64>().unwrap()..=b.parse().unwrap()).contains(&slot),
                None => r.parse::<u64>().ok() == Some(slot),
            });
            if serves {
                let port: u16 = f[1]
                    .split(['@'])
                    .next()
                    .unwrap()
                    .rsplit(':')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                return self.nodes.iter().position(|n| n.port == port);
            }
        }
        None
    }
}

fn store(cluster: &Cluster) -> RedisStore {
    RedisStore::cluster(cluster.urls())
        .prefix("cl")
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

fn rotator(cluster: &Cluster, keys: &[String], clock: &ai_key_rotator::FakeClock) -> KeyRotator {
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    PROVIDERS
        .iter()
        .fold(KeyRotator::builder(), |b, p| {
            b.provider(*p, provider(&refs))
        })
        .clock(clock.clone())
        .reset_interval(Duration::ZERO)
        .store(store(cluster))
        .build()
        .unwrap()
}

fn cooling(r: &KeyRotator, provider: &str) -> usize {
    r.provider_status(provider)
        .unwrap()
        .credentials
        .iter()
        .filter(|c| matches!(c.state, CredentialState::Cooling { .. }))
        .count()
}

#[test]
fn a_master_killed_mid_run_loses_no_cooldown_and_fails_no_request() {
    let Some(mut cluster) = Cluster::start() else {
        return;
    };
    let keys: Vec<String> = (0..12).map(|i| format!("sk-cl-{i:02}")).collect();
    let clock = clock();
    let a = rotator(&cluster, &keys, &clock);
    let b = rotator(&cluster, &keys, &clock);
    assert!(a.store_error().is_none(), "{:?}", a.store_error());
    // Shared through the cluster: a mark in `a` reaches `b`.
    a.mark_exhausted("openai", Some(&keys[0]));
    assert!(wait_until(PATIENCE, || cooling(&b, "openai") == 1));

    let victim = cluster.master_of("{cl:openai}:cooldowns").unwrap();
    // Half the marks before the kill, half while the cluster fails over.
    for k in &keys[1..6] {
        a.mark_exhausted("openai", Some(k));
    }
    cluster.nodes[victim].kill();
    let killed_at = Instant::now();
    for k in &keys[6..11] {
        a.mark_exhausted("openai", Some(k));
        // No request fails: the rotator answers from its local view throughout.
        assert!(a.get_key("openai").is_some());
        assert!(a.get_key("anthropic").is_some());
    }
    // The replica is promoted: a live node sees another master serving the slot.
    assert!(
        wait_until(PATIENCE, || cluster
            .master_of("{cl:openai}:cooldowns")
            .is_some_and(|m| m != victim)
            && cluster.alive().all(|n| n
                .command(&["CLUSTER", "INFO"])
                .is_some_and(|i| i.contains("cluster_state:ok")))),
        "no failover: {:?}",
        cluster
            .alive()
            .map(|n| (
                n.port,
                n.command(&["CLUSTER", "NODES"]),
                n.command(&["CLUSTER", "INFO"])
            ))
            .collect::<Vec<_>>()
    );
    println!("failover after {:?}", killed_at.elapsed());
    a.flush_store_within(PATIENCE).unwrap();
    // Every cooldown reached the other process, and a process that starts now loads them all.
    assert!(
        wait_until(PATIENCE, || cooling(&b, "openai") == 11),
        "b sees {} of 11",
        cooling(&b, "openai")
    );
    let c = rotator(&cluster, &keys, &clock);
    assert!(c.store_error().is_none(), "{:?}", c.store_error());
    assert_eq!(cooling(&c, "openai"), 11);
    assert_eq!(c.get_key("openai").unwrap().expose_key(), keys[11]);
}

/// Usage goes through the cluster connection too: each provider's day hash lives in its own
/// slot, and two rotators' additions meet there.
#[test]
fn usage_adds_up_across_rotators_on_the_cluster() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let clock = clock();
    let keys = vec!["sk-a".to_owned(), "sk-b".to_owned()];
    let a = rotator(&cluster, &keys, &clock);
    let b = rotator(&cluster, &keys, &clock);
    let fp = ai_key_rotator::Fingerprint::of("sk-b");
    for r in [&a, &b] {
        for p in PROVIDERS {
            r.record_usage(p, fp, ai_key_rotator::UsageCounts::tokens(10, 1))
                .unwrap();
        }
    }
    a.flush_store();
    b.flush_store();
    for p in PROVIDERS {
        let day = b.usage_today(p).unwrap();
        let (_, counts) = day
            .credentials
            .iter()
            .find(|(id, _)| id.fingerprint == fp)
            .unwrap();
        assert_eq!((counts.tokens_in, counts.tokens_out), (20, 2), "{p}");
    }
}
