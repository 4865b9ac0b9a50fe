use std::time::Duration;

use ai_key_rotator::{CredentialState, KeyRotator, MemoryPersistence, Persistence, StateError};

use crate::support::{START, clock, provider};

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

fn rotator_with(
    store: &MemoryPersistence,
    keys: &[&str],
    clock: &ai_key_rotator::FakeClock,
) -> KeyRotator {
    KeyRotator::builder()
        .provider("openai", provider(keys, Duration::from_secs(60)))
        .clock(clock.clone())
        .reset_interval(Duration::ZERO)
        .persistence(store.clone())
        .build()
        .unwrap()
}

#[test]
fn round_trip_restores_cooldowns_counters_and_the_current_key() {
    let store = MemoryPersistence::new();
    let clock = clock();
    let first = rotator_with(&store, &["sk-a", "sk-b", "sk-c"], &clock);
    first.get_key("openai");
    first.mark_exhausted("openai", None); // a cools, b current
    first.get_key("openai");
    first.get_key("openai");
    block_on(first.save()).unwrap();

    let second = rotator_with(&store, &["sk-a", "sk-b", "sk-c"], &clock);
    assert!(block_on(second.load()).unwrap());
    let s = second.provider_status("openai").unwrap();
    assert_eq!(
        s.credentials[0].state,
        CredentialState::Cooling {
            until: START.saturating_add(Duration::from_secs(60))
        }
    );
    assert_eq!(
        (
            s.credentials[0].times_used,
            s.credentials[0].times_exhausted
        ),
        (1, 1)
    );
    assert_eq!(s.credentials[1].times_used, 2);
    assert_eq!(second.get_key("openai").unwrap().expose_key(), "sk-b");
    // And the restored cooldown still ends on time.
    clock.advance(Duration::from_secs(30));
    second.mark_exhausted("openai", None);
    second.mark_exhausted("openai", None);
    assert!(second.get_key("openai").is_none());
    clock.advance(Duration::from_secs(30));
    assert_eq!(second.get_key("openai").unwrap().expose_key(), "sk-a");
}

#[test]
fn load_without_saved_state_or_persistence_is_false() {
    let store = MemoryPersistence::new();
    let clock = clock();
    let r = rotator_with(&store, &["sk-a"], &clock);
    assert!(!block_on(r.load()).unwrap());
    let bare = KeyRotator::builder()
        .provider("openai", provider(&["sk-a"], Duration::from_secs(1)))
        .reset_interval(Duration::ZERO)
        .build()
        .unwrap();
    assert!(!block_on(bare.load()).unwrap());
    block_on(bare.save()).unwrap();
}

#[test]
fn removed_credentials_are_ignored_and_new_ones_start_available() {
    let store = MemoryPersistence::new();
    let clock = clock();
    let first = rotator_with(&store, &["sk-a", "sk-b"], &clock);
    first.mark_exhausted("openai", Some("sk-a"));
    first.mark_exhausted("openai", Some("sk-b"));
    block_on(first.save()).unwrap();

    let second = rotator_with(&store, &["sk-b", "sk-new"], &clock);
    assert!(block_on(second.load()).unwrap());
    let s = second.provider_status("openai").unwrap();
    assert!(matches!(
        s.credentials[0].state,
        CredentialState::Cooling { .. }
    ));
    assert_eq!(s.credentials[1].state, CredentialState::Available);
    assert_eq!(second.get_key("openai").unwrap().expose_key(), "sk-new");
}

#[test]
fn cooldowns_that_ended_while_stopped_are_over() {
    let store = MemoryPersistence::new();
    let clock = clock();
    let first = rotator_with(&store, &["sk-a"], &clock);
    first.mark_exhausted("openai", None);
    block_on(first.save()).unwrap();
    clock.advance(Duration::from_secs(61));
    let second = rotator_with(&store, &["sk-a"], &clock);
    assert!(block_on(second.load()).unwrap());
    assert_eq!(second.get_key("openai").unwrap().expose_key(), "sk-a");
}

/// One row per bad state text: the text, and the error it must give. Loading must change
/// nothing.
#[test]
fn corrupt_or_foreign_state_is_a_clear_error_that_changes_nothing() {
    #[track_caller]
    fn check(text: &str, expected: &str) {
        let store = MemoryPersistence::new();
        let clock = clock();
        let r = rotator_with(&store, &["sk-a", "sk-b"], &clock);
        r.mark_exhausted("openai", Some("sk-b"));
        let before = r.export_state();
        store.set_contents(text);
        let err = block_on(r.load()).unwrap_err();
        assert_eq!(err.to_string(), expected, "for {text:?}");
        assert_eq!(r.export_state(), before, "state changed by a failed load");
    }
    check("", "saved state is corrupt: truncated at line 1 column 0");
    check(
        "{not json",
        "saved state is corrupt: not valid JSON at line 1 column 2",
    );
    check(
        r#"{"providers": {}}"#,
        "saved state is corrupt: no `version` field: not rotator state",
    );
    check(
        r#"{"version": 99, "providers": {}}"#,
        "saved state has version 99, this library reads up to version 1",
    );
    check(
        r#"{"version": 1, "saved_at": 0, "providers": {"openai": {"credentials": {"nothex": {"state": "available"}}}}}"#,
        "saved state is corrupt: unexpected structure at line 1 column 79",
    );
    check(
        r#"{"version": 1, "saved_at": 0, "providers": {"openai": {"creds": {}}}}"#,
        "saved state is corrupt: unexpected structure at line 1 column 67",
    );
    // A foreign file that holds a key: the error must not quote it.
    check(
        r#"{"version": "sk-canary-should-not-leak"}"#,
        "saved state is corrupt: unexpected structure at line 1 column 39",
    );
}

#[test]
fn the_adapter_error_is_passed_through() {
    use ai_key_rotator::PersistenceError;
    use std::future::Future;
    use std::pin::Pin;

    #[derive(Debug)]
    struct Broken;
    impl Persistence for Broken {
        fn save(
            &self,
            _: String,
        ) -> Pin<Box<dyn Future<Output = Result<(), PersistenceError>> + Send + '_>> {
            Box::pin(async { Err("disk full".into()) })
        }
        fn load(
            &self,
        ) -> Pin<Box<dyn Future<Output = Result<Option<String>, PersistenceError>> + Send + '_>>
        {
            Box::pin(async { Err("no such file".into()) })
        }
    }
    let r = KeyRotator::builder()
        .provider("openai", provider(&["sk-a"], Duration::from_secs(1)))
        .reset_interval(Duration::ZERO)
        .persistence(Broken)
        .build()
        .unwrap();
    let e = block_on(r.save()).unwrap_err();
    assert!(matches!(e, StateError::Persistence(_)));
    assert_eq!(e.to_string(), "persistence failed: disk full");
    assert_eq!(
        block_on(r.load()).unwrap_err().to_string(),
        "persistence failed: no such file"
    );
}

#[test]
fn the_state_is_versioned_json_naming_credentials_by_fingerprint() {
    let clock = clock();
    let store = MemoryPersistence::new();
    let r = rotator_with(&store, &["sk-a"], &clock);
    r.mark_exhausted("openai", None);
    let v: serde_json::Value = serde_json::from_str(&r.export_state()).unwrap();
    assert_eq!(v["version"], 1);
    let fp = ai_key_rotator::Fingerprint::of("sk-a").to_string();
    let c = &v["providers"]["openai"]["credentials"][&fp];
    assert_eq!(c["state"], "cooling");
    assert_eq!(c["until"], START.as_millis() + 60_000);
    assert_eq!(c["label"], "sk-a");
}
