//! What a restart finds again, in every store: a rotator reopened on the same store shows the
//! same uses, exhaustions, failure streaks, reasons and per-model rests as the one before it;
//! uses counted after a restart add to the loaded ones (never counted twice); ended per-model
//! rests are not brought back. Redis also shares per-model rests between running processes.
//! Each Redis test starts its own `redis-server` and skips (saying so) only when there is none.
#![cfg(any(feature = "file", feature = "sqlite", feature = "redis"))]

mod store_support;

use std::time::Duration;

use ai_key_rotator::classify::{LimitKind, LimitScope, ModelName, Verdict};
use ai_key_rotator::{Clock, CredentialStatus, FakeClock, Fingerprint, KeyRotator, StateStore};
use store_support::*;

const KEYS: [&str; 3] = ["sk-a", CANARY, "sk-c"];

fn status(r: &KeyRotator) -> Vec<CredentialStatus> {
    r.provider_status("openai").unwrap().credentials
}

fn of<'a>(all: &'a [CredentialStatus], key: &str) -> &'a CredentialStatus {
    all.iter()
        .find(|c| c.id.fingerprint == Fingerprint::of(key))
        .unwrap()
}

/// What must survive a restart, per credential: everything but what only this process knows
/// (in-flight leases, last reported headroom).
fn durable(all: &[CredentialStatus]) -> Vec<String> {
    all.iter()
        .map(|c| {
            format!(
                "{} state={:?} used={} exhausted={} last={:?} failures={} reason={:?} models={:?}",
                c.id.fingerprint,
                c.state,
                c.times_used,
                c.times_exhausted,
                c.last_exhausted_at,
                c.consecutive_failures,
                c.reason.as_ref().map(|r| &r.cause),
                c.model_cooldowns
            )
        })
        .collect()
}

fn rate_limited(clock: &FakeClock, secs: u64, scope: LimitScope) -> Verdict {
    Verdict::RateLimited {
        until: Some(clock.now().saturating_add(Duration::from_secs(secs))),
        scope,
        limit: LimitKind::TokensPerMinute,
    }
}

/// Builds a rotator on a fresh store from `open`.
fn open_with<S: StateStore>(open: &impl Fn() -> S, clock: &FakeClock) -> KeyRotator {
    let r = builder(&KEYS, clock).store(open()).build().unwrap();
    assert!(r.store_error().is_none(), "{:?}", r.store_error());
    r
}

/// Runs the restart scenario on the store `open` makes (each call a new handle on the same
/// stored state).
fn survives_restarts<S: StateStore>(open: impl Fn() -> S) {
    let clock = clock();
    let first = open_with(&open, &clock);
    // Uses of sk-a, then a limit on it with a provider's reason, twice in a row (a streak).
    for _ in 0..3 {
        assert_eq!(key(&first).as_deref(), Some("sk-a"));
    }
    let a = first.get_key("openai").unwrap();
    assert_eq!(a.expose_key(), "sk-a");
    first.report(&a, &rate_limited(&clock, 30, LimitScope::Key));
    first.reset_all(None);
    first.report(&a, &rate_limited(&clock, 120, LimitScope::Key));
    drop(a);
    // The canary key rests for one model only, and is used for others.
    let canary = first.get_key_for("openai", "gpt-4o").unwrap();
    assert_eq!(canary.expose_key(), CANARY);
    first.report_for_model(
        &canary,
        &rate_limited(
            &clock,
            300,
            LimitScope::Model(ModelName::new("gpt-4o").unwrap()),
        ),
    );
    drop(canary);
    for _ in 0..2 {
        assert_eq!(key(&first).as_deref(), Some(CANARY));
    }
    let before = status(&first);
    let a = of(&before, "sk-a");
    assert_eq!(a.times_used, 4);
    assert!(a.consecutive_failures >= 2, "{a:?}");
    assert!(a.reason.is_some());
    assert_eq!(of(&before, CANARY).model_cooldowns.len(), 1);
    first.shutdown();
    drop(first);

    let second = open_with(&open, &clock);
    assert_eq!(durable(&status(&second)), durable(&before));
    // Used again after the restart: the count goes on from the loaded one.
    assert_eq!(
        second
            .get_key_for("openai", "gpt-4o")
            .map(|c| c.expose_key().to_owned())
            .as_deref(),
        Some("sk-c"),
        "the per-model rest was loaded"
    );
    assert_eq!(key(&second).as_deref(), Some(CANARY));
    let again = status(&second);
    assert_eq!(
        of(&again, CANARY).times_used,
        of(&before, CANARY).times_used + 1
    );
    second.shutdown();
    drop(second);

    let third = open_with(&open, &clock);
    assert_eq!(durable(&status(&third)), durable(&again));
    third.shutdown();
    drop(third);

    // Once the rests ended, a restart does not bring them back.
    clock.advance(Duration::from_secs(301));
    let fourth = open_with(&open, &clock);
    let after = status(&fourth);
    assert!(of(&after, CANARY).model_cooldowns.is_empty(), "{after:?}");
    assert_eq!(of(&after, CANARY).times_used, of(&again, CANARY).times_used);
    assert_eq!(of(&after, "sk-a").times_exhausted, a.times_exhausted);
}

/// A reset of every cooldown ends the per-model rests too, and a restart does not bring them
/// back.
fn a_reset_is_not_undone_by_a_restart<S: StateStore>(open: impl Fn() -> S) {
    let clock = clock();
    let first = open_with(&open, &clock);
    let gpt = ModelName::new("gpt-4o").unwrap();
    let a = first.get_key_for("openai", "gpt-4o").unwrap();
    first.report_for_model(&a, &rate_limited(&clock, 300, LimitScope::Model(gpt)));
    drop(a);
    first.flush_store();
    assert_eq!(of(&status(&first), "sk-a").model_cooldowns.len(), 1);
    first.reset_all(None);
    assert!(of(&status(&first), "sk-a").model_cooldowns.is_empty());
    first.shutdown();
    drop(first);
    let second = open_with(&open, &clock);
    assert!(of(&status(&second), "sk-a").model_cooldowns.is_empty());
    assert_eq!(
        second
            .get_key_for("openai", "gpt-4o")
            .map(|c| c.expose_key().to_owned())
            .as_deref(),
        Some("sk-a")
    );
}

#[cfg(feature = "file")]
#[test]
fn the_file_store_keeps_counters_reasons_and_model_rests() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    survives_restarts(|| ai_key_rotator::FileStore::open(&path).unwrap());
    let other = dir.path().join("reset.json");
    a_reset_is_not_undone_by_a_restart(|| ai_key_rotator::FileStore::open(&other).unwrap());
    let text = std::fs::read(&path).unwrap();
    assert!(!contains(&text, CANARY), "a key reached the state file");
}

#[cfg(feature = "sqlite")]
#[test]
fn the_sqlite_store_keeps_counters_reasons_and_model_rests() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    survives_restarts(|| {
        ai_key_rotator::SqliteStore::open(&db)
            .unwrap()
            .poll_interval(Duration::from_millis(5))
    });
    let other = dir.path().join("reset.db");
    a_reset_is_not_undone_by_a_restart(|| {
        ai_key_rotator::SqliteStore::open(&other)
            .unwrap()
            .poll_interval(Duration::from_millis(5))
    });
    for file in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(file.unwrap().path()).unwrap();
        assert!(!contains(&bytes, CANARY), "a key reached the database");
    }
}

#[cfg(feature = "redis")]
#[test]
fn the_redis_store_keeps_counters_reasons_and_model_rests() {
    let Some(server) = store_support::redis_server::RedisServer::start() else {
        return;
    };
    let url = server.url();
    survives_restarts(|| {
        ai_key_rotator::RedisStore::builder(&url)
            .prefix("restart")
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    });
    a_reset_is_not_undone_by_a_restart(|| {
        ai_key_rotator::RedisStore::builder(&url)
            .prefix("reset")
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    });
    let keys = server.command(&["KEYS", "*"]).unwrap();
    for hash in ["cooldowns", "reasons", "models", "counters"] {
        let name = format!("{{restart:openai}}:{hash}");
        assert!(keys.contains(&name), "{name} missing from {keys}");
        let all = server.command(&["HGETALL", &name]).unwrap();
        assert!(!all.contains(CANARY), "a key reached Redis ({hash})");
    }
    assert!(!keys.contains(CANARY));
}
