//! The SQLite store recovers: a malformed row is skipped and the rest loads and keeps
//! syncing, a file that is not a database is moved aside, rows of keys nobody configures any
//! more are pruned after a grace period.
#![cfg(feature = "sqlite")]

mod store_support;

use std::time::Duration;

use ai_key_rotator::{
    CredentialState, KeyRotator, SqliteStore, StoreError, StoreFault, StoreHealth,
};
use store_support::*;

fn store(path: &std::path::Path) -> SqliteStore {
    SqliteStore::open(path)
        .unwrap()
        .poll_interval(Duration::from_millis(5))
}

fn status_of(r: &KeyRotator, label: &str) -> ai_key_rotator::CredentialStatus {
    r.provider_status("openai")
        .unwrap()
        .credentials
        .into_iter()
        .find(|c| c.id.label.as_deref() == Some(label))
        .unwrap()
}

fn rows_labelled(db: &std::path::Path, label: &str) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(
        "SELECT count(*) FROM credential_state WHERE label = ?1",
        [label],
        |r| r.get(0),
    )
    .unwrap()
}

const CANARY_LABEL: &str = "label-canary-7f3e9a1b2c4d5e6f";

#[test]
fn a_malformed_row_is_skipped_and_the_rest_loads_and_keeps_syncing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let clock = clock();
    let keys = ["sk-a", CANARY, "sk-c"];
    let first = builder(&keys, &clock).store(store(&db)).build().unwrap();
    first.mark_exhausted("openai", Some("sk-a"));
    first.mark_exhausted("openai", Some(CANARY));
    first.shutdown();
    drop(first);
    // A column of the wrong type, as a hand edit or another program could leave it.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let changed = conn
        .execute(
            "UPDATE credential_state SET until_ms = 'soon' WHERE label = ?1",
            [CANARY_LABEL],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(conn);

    let second = builder(&keys, &clock).store(store(&db)).build().unwrap();
    assert!(second.store_error().is_none(), "{:?}", second.store_error());
    let until = START.saturating_add(Duration::from_secs(60));
    assert_eq!(
        status_of(&second, "label-a").state,
        CredentialState::Cooling { until },
        "the readable row loads"
    );
    assert_eq!(
        status_of(&second, CANARY_LABEL).state,
        CredentialState::Available,
        "the malformed row is skipped"
    );
    let fingerprint = status_of(&second, CANARY_LABEL).id.fingerprint.to_string();
    let health = second.store_health();
    match &health {
        StoreHealth::Degraded {
            fault:
                StoreFault::MalformedRow {
                    provider,
                    fingerprint: named,
                    field,
                },
            ..
        } => {
            assert_eq!(provider, "openai");
            assert_eq!(named, &fingerprint);
            assert_eq!(*field, "until_ms");
        }
        other => panic!("expected a degraded store naming the row, got {other:?}"),
    }
    let shown = format!(
        "{health:?} {}",
        match &health {
            StoreHealth::Degraded { fault, .. } => fault.to_string(),
            _ => String::new(),
        }
    );
    assert!(!shown.contains(CANARY), "{shown}");

    // It keeps syncing with other processes despite the bad row.
    let third = builder(&keys, &clock).store(store(&db)).build().unwrap();
    third.mark_exhausted("openai", Some("sk-c"));
    third.flush_store();
    assert!(
        wait_until(PATIENCE, || status_of(&second, "label-c").state
            == CredentialState::Cooling { until }),
        "a change of another process still arrives"
    );
}

#[test]
fn a_file_that_is_not_a_database_is_moved_aside_and_the_rotator_starts_fresh() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let garbage = "this is not an SQLite database, only text that took its name\n".repeat(64);
    std::fs::write(&db, &garbage).unwrap();
    let clock = clock();
    let rotator = builder(&["sk-a", "sk-b"], &clock)
        .store(store(&db))
        .build()
        .expect("an unusable file does not stop the rotator");
    let error = rotator.store_error().expect("the move is reported");
    let StoreError::Corrupt {
        moved_to: Some(moved_to),
        ..
    } = error
    else {
        panic!("expected Corrupt with the new place, got {error:?}");
    };
    let message = error.to_string();
    assert!(message.contains(&db.display().to_string()), "{message}");
    assert!(
        message.contains(&moved_to.display().to_string()),
        "{message}"
    );
    assert_eq!(
        std::fs::read_to_string(moved_to).unwrap(),
        garbage,
        "kept, not lost"
    );
    // The fresh database works and is shared.
    assert_eq!(key(&rotator).as_deref(), Some("sk-a"));
    rotator.mark_exhausted("openai", Some("sk-a"));
    rotator.shutdown();
    let next = builder(&["sk-a", "sk-b"], &clock)
        .store(store(&db))
        .build()
        .unwrap();
    assert!(next.store_error().is_none(), "{:?}", next.store_error());
    assert_eq!(key(&next).as_deref(), Some("sk-b"));
}

#[test]
fn rows_of_keys_no_longer_configured_are_pruned_after_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let clock = clock();
    let old = builder(&["sk-a", "sk-b"], &clock)
        .store(store(&db))
        .build()
        .unwrap();
    old.mark_exhausted("openai", Some("sk-a"));
    old.disable("openai", "sk-b");
    old.shutdown();
    drop(old);
    assert_eq!(rows_labelled(&db, "label-b"), 1);

    // sk-b left the configuration.
    let grace = Duration::from_secs(3600);
    let now = builder(&["sk-a"], &clock)
        .store(store(&db).prune_after(Some(grace)))
        .build()
        .unwrap();
    // A change makes the writer run; the flush returns once it ran.
    clock.advance(grace / 2);
    now.mark_exhausted("openai", Some("sk-a"));
    now.flush_store();
    assert_eq!(
        rows_labelled(&db, "label-b"),
        1,
        "kept within the grace period"
    );
    clock.advance(grace);
    now.mark_exhausted("openai", Some("sk-a"));
    now.flush_store();
    assert_eq!(rows_labelled(&db, "label-b"), 0, "pruned after it");
    assert_eq!(
        rows_labelled(&db, "label-a"),
        1,
        "a configured key's row stays, however old its last change"
    );
}

#[test]
fn while_another_connection_holds_the_database_flush_says_it_timed_out_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let clock = clock();
    let keys = ["sk-a", "sk-b"];
    let r = builder(&keys, &clock).store(store(&db)).build().unwrap();
    // Another program holds the write lock.
    let holder = rusqlite::Connection::open(&db).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    for _ in 0..1_000 {
        clock.advance(Duration::from_millis(1));
        r.mark_exhausted("openai", Some("sk-a"));
        r.mark_exhausted("openai", Some("sk-b"));
    }
    match r.flush_store_within(Duration::from_millis(50)) {
        Err(StoreError::FlushTimedOut { pending, .. }) => {
            // One entry per credential, however many marks: the queue is bounded.
            assert!((1..=keys.len()).contains(&pending), "{pending}");
        }
        other => panic!("expected a timed-out flush, got {other:?}"),
    }
    holder.execute_batch("COMMIT").unwrap();
    drop(holder);
    r.flush_store_within(PATIENCE)
        .expect("written once the lock is released");
    let expected = status_of(&r, "label-b").state;
    assert!(matches!(expected, CredentialState::Cooling { .. }));
    r.shutdown();
    let next = builder(&keys, &clock).store(store(&db)).build().unwrap();
    assert_eq!(
        status_of(&next, "label-b").state,
        expected,
        "the latest mark was written"
    );
}
