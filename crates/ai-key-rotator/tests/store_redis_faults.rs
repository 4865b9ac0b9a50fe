//! The Redis store says what is wrong: a wrong password, a read-only replica and a key of the
//! wrong type are told apart from an outage, and one provider's broken data never stops the
//! others from sharing. Each test starts its own `redis-server`.
#![cfg(feature = "redis")]

mod store_support;

use std::time::Duration;

use ai_key_rotator::{CredentialState, KeyRotator, RedisStore, StoreFault, StoreHealth, Timestamp};
use store_support::redis_server::RedisServer;
use store_support::*;

fn store(url: &str, prefix: &str) -> RedisStore {
    RedisStore::builder(url)
        .prefix(prefix)
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

fn failing_with(r: &KeyRotator, expected: &StoreFault) -> bool {
    matches!(r.store_health(), StoreHealth::Failing { fault, .. } if &fault == expected)
}

fn state_of(r: &KeyRotator, provider: &str, key: &str) -> CredentialState {
    let fp = ai_key_rotator::Fingerprint::of(key);
    r.provider_status(provider)
        .unwrap()
        .credentials
        .into_iter()
        .find(|c| c.id.fingerprint == fp)
        .unwrap()
        .state
}

fn cooling_from(start: Timestamp) -> CredentialState {
    CredentialState::Cooling {
        until: start.saturating_add(Duration::from_secs(60)),
    }
}

#[test]
fn a_wrong_password_is_an_authentication_failure_not_an_outage() {
    // The password is a canary: it must show nowhere.
    let Some(server) = RedisServer::start_with(&["--requirepass", CANARY]) else {
        return;
    };
    let clock = clock();
    for url in [
        server.url(),
        format!("redis://:not-{CANARY}@127.0.0.1:{}", server.port),
    ] {
        let r = builder(&["sk-a", "sk-b"], &clock)
            .store(store(&url, "auth"))
            .build()
            .unwrap();
        assert!(
            wait_until(PATIENCE, || failing_with(
                &r,
                &StoreFault::AuthenticationFailed
            )),
            "{:?}",
            r.store_health()
        );
        let shown = format!(
            "{:?} {:?} {}",
            r.store_health(),
            r.store_error(),
            r.store_error().map(ToString::to_string).unwrap_or_default()
        );
        assert!(!shown.contains(CANARY), "{shown}");
        // The rotator serves from its local view all the same.
        assert!(r.mark_exhausted("openai", Some("sk-a")));
        assert_eq!(key(&r).as_deref(), Some("sk-b"));
    }
    // The right password works.
    let url = format!("redis://:{CANARY}@127.0.0.1:{}", server.port);
    let r = builder(&["sk-a", "sk-b"], &clock)
        .store(store(&url, "auth"))
        .build()
        .unwrap();
    assert!(r.store_error().is_none(), "{:?}", r.store_error());
    assert_eq!(r.store_health(), StoreHealth::Healthy);
}

#[test]
fn a_read_only_replica_is_told_apart() {
    let Some(primary) = RedisServer::start() else {
        return;
    };
    let Some(replica) = RedisServer::start_replica_of(&primary) else {
        return;
    };
    let clock = clock();
    let r = builder(&["sk-a", "sk-b"], &clock)
        .store(store(&replica.url(), "replica"))
        .build()
        .unwrap();
    r.mark_exhausted("openai", Some("sk-a"));
    assert!(
        wait_until(PATIENCE, || failing_with(&r, &StoreFault::ReadOnly)),
        "{:?}",
        r.store_health()
    );
    assert_eq!(
        key(&r).as_deref(),
        Some("sk-b"),
        "served from the local view"
    );
}

fn two_providers(clock: &ai_key_rotator::FakeClock, url: &str) -> KeyRotator {
    KeyRotator::builder()
        .provider("openai", provider(&["sk-a", "sk-b"]))
        .provider("anthropic", provider(&["sk-ant-a", "sk-ant-b"]))
        .clock(clock.clone())
        .reset_interval(Duration::ZERO)
        .store(store(url, "broken"))
        .build()
        .unwrap()
}

#[test]
fn one_provider_s_broken_hash_does_not_stop_the_others_from_sharing() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    // Something else wrote a string where the store keeps openai's hash.
    let reply = server
        .command(&["SET", "{broken:openai}:cooldowns", "not a hash"])
        .unwrap();
    assert_eq!(reply, "+OK\r\n");
    let clock = clock();
    let a = two_providers(&clock, &server.url());
    let b = two_providers(&clock, &server.url());
    assert!(a.store_error().is_none(), "{:?}", a.store_error());
    let wrong_type = StoreFault::WrongType {
        provider: "openai".into(),
    };
    assert!(
        matches!(a.store_health(), StoreHealth::Degraded { fault, .. } if fault == wrong_type),
        "{:?}",
        a.store_health()
    );

    // anthropic still shares, both ways.
    a.mark_exhausted("anthropic", Some("sk-ant-a"));
    assert!(
        wait_until(PATIENCE, || state_of(&b, "anthropic", "sk-ant-a")
            == cooling_from(START)),
        "a change of a healthy provider reaches the other process"
    );
    clock.advance(Duration::from_secs(1));
    b.mark_exhausted("anthropic", Some("sk-ant-b"));
    let later = START.saturating_add(Duration::from_secs(1));
    assert!(wait_until(PATIENCE, || state_of(
        &a,
        "anthropic",
        "sk-ant-b"
    ) == cooling_from(later)));

    // A mark of the broken provider is given up on (kept locally), not retried forever:
    // what is queued after it is still written.
    a.mark_exhausted("openai", Some("sk-a"));
    a.mark_exhausted("anthropic", Some("sk-ant-b"));
    a.disable("anthropic", "sk-ant-a");
    assert!(
        wait_until(PATIENCE, || state_of(&b, "anthropic", "sk-ant-a")
            == CredentialState::Disabled),
        "the writer went on past the broken provider's change"
    );
    assert_eq!(state_of(&a, "openai", "sk-a"), cooling_from(later));
    assert!(
        matches!(a.store_health(), StoreHealth::Degraded { fault, .. } if fault == wrong_type),
        "{:?}",
        a.store_health()
    );
}

#[test]
fn during_an_outage_the_queue_stays_bounded_and_flush_says_it_timed_out() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let clock = clock();
    let keys = ["sk-a", "sk-b", "sk-c"];
    let store = store(&server.url(), "outage-queue");
    let monitor = store.monitor();
    let r = builder(&keys, &clock).store(store).build().unwrap();
    let other = builder(&keys, &clock)
        .store(
            RedisStore::builder(server.url())
                .prefix("outage-queue")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    server.kill();
    assert!(wait_until(PATIENCE, || !monitor.is_connected()));
    let mut most = 0;
    for i in 0..5_000u64 {
        clock.advance(Duration::from_millis(1));
        r.mark_exhausted("openai", Some(keys[(i % 3) as usize]));
        if i % 7 == 0 {
            r.reset_all(None);
        }
        most = most.max(monitor.queued());
    }
    clock.advance(Duration::from_millis(1));
    r.mark_exhausted("openai", Some("sk-c"));
    assert!(
        most <= keys.len(),
        "at most one entry per credential, saw {most}"
    );
    match r.flush_store_within(Duration::from_millis(50)) {
        Err(ai_key_rotator::StoreError::FlushTimedOut { pending, .. }) => {
            assert!(pending >= 1 && pending <= keys.len(), "{pending}");
        }
        other => panic!("expected a timed-out flush during the outage, got {other:?}"),
    }

    // Back: what was queued is written, and the other process agrees.
    server.restart();
    assert!(wait_until(PATIENCE, || monitor.is_connected()));
    assert!(r.flush_store_within(PATIENCE).is_ok());
    assert!(wait_until(PATIENCE, || monitor.queued() == 0));
    let expected = state_of(&r, "openai", "sk-c");
    assert!(
        matches!(expected, CredentialState::Cooling { .. }),
        "{expected:?}"
    );
    assert!(wait_until(PATIENCE, || state_of(&other, "openai", "sk-c") == expected));
}

#[test]
fn a_server_that_never_answers_is_a_timeout_and_a_closed_port_is_unreachable() {
    // A listener that accepts connections and never answers: every command times out.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = std::sync::Arc::clone(&held);
    std::thread::spawn(move || {
        for conn in silent.incoming().flatten() {
            keep.lock().unwrap().push(conn);
        }
    });
    // A port nobody listens on (bound, then released).
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let clock = clock();
    for (port, expected) in [
        (port, StoreFault::Timeout),
        (closed, StoreFault::Unreachable),
    ] {
        let r = builder(&["sk-a", "sk-b"], &clock)
            .store(store(&format!("redis://127.0.0.1:{port}"), "silent"))
            .build()
            .unwrap();
        assert!(
            matches!(r.store_error(), Some(ai_key_rotator::StoreError::Unavailable(f)) if *f == expected),
            "{expected:?}: {:?}",
            r.store_error()
        );
        assert!(
            wait_until(PATIENCE, || failing_with(&r, &expected)),
            "{expected:?}: {:?}",
            r.store_health()
        );
        // Served from the local view all the same.
        assert!(r.mark_exhausted("openai", Some("sk-a")));
        assert_eq!(key(&r).as_deref(), Some("sk-b"));
    }
}
