//! The SQLite store: round trip, two processes sharing one database, the longer cooldown
//! winning, secrets.
#![cfg(feature = "sqlite")]

mod store_support;

use std::io::{BufRead, BufReader, Write};
use std::time::Duration;

use ai_key_rotator::{CredentialState, KeyRotator, SqliteStore, StoreError};
use store_support::*;

fn until_of(r: &KeyRotator, label: &str) -> CredentialState {
    r.provider_status("openai")
        .unwrap()
        .credentials
        .into_iter()
        .find(|c| c.id.label.as_deref() == Some(label))
        .unwrap()
        .state
}

fn store(path: &std::path::Path) -> SqliteStore {
    SqliteStore::open(path)
        .unwrap()
        .poll_interval(Duration::from_millis(5))
}

#[test]
fn round_trip_and_reset() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let clock = clock();
    let first = builder(&["sk-a", "sk-b"], &clock)
        .store(store(&db))
        .build()
        .unwrap();
    first.mark_exhausted("openai", Some("sk-a"));
    first.shutdown();
    drop(first);
    let second = builder(&["sk-a", "sk-b"], &clock)
        .store(store(&db))
        .build()
        .unwrap();
    assert!(second.store_error().is_none());
    assert_eq!(key(&second).as_deref(), Some("sk-b"));
    let until = START.saturating_add(Duration::from_secs(60));
    assert_eq!(
        until_of(&second, "label-a"),
        CredentialState::Cooling { until }
    );
    second.reset_all(None);
    second.shutdown();
    drop(second);
    let third = builder(&["sk-a", "sk-b"], &clock)
        .store(store(&db))
        .build()
        .unwrap();
    assert_eq!(until_of(&third, "label-a"), CredentialState::Available);
}

#[test]
fn the_longer_cooldown_wins_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let clock_a = clock();
    let clock_b = clock();
    clock_b.advance(Duration::from_secs(30));
    let a = builder(&["sk-a", "sk-b"], &clock_a)
        .store(store(&db))
        .build()
        .unwrap();
    let b = builder(&["sk-a", "sk-b"], &clock_b)
        .store(store(&db))
        .build()
        .unwrap();
    b.mark_exhausted("openai", Some("sk-a")); // until START + 90 s
    b.flush_store();
    let long = CredentialState::Cooling {
        until: START.saturating_add(Duration::from_secs(90)),
    };
    assert!(wait_until(PATIENCE, || until_of(&a, "label-a") == long));
    // A shorter mark in A neither shortens A's view nor the stored one.
    a.mark_exhausted("openai", Some("sk-a"));
    a.flush_store();
    assert_eq!(until_of(&a, "label-a"), long);
    drop((a, b));
    let c = builder(&["sk-a", "sk-b"], &clock_a)
        .store(store(&db))
        .build()
        .unwrap();
    assert_eq!(until_of(&c, "label-a"), long);
}

#[test]
fn newer_schema_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    drop(SqliteStore::open(&db).unwrap());
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.pragma_update(None, "user_version", 7).unwrap();
    drop(conn);
    let err = SqliteStore::open(&db).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("version 7"), "{err}");
}

/// A change another rotator commits right after this one was built reaches this one. The store
/// notes what is stored when it attaches; noted later, on its own thread, it could take such a
/// change for one it had already seen and never apply it (`two_processes_share_one_database`
/// failed this way under load). Several rounds, since before the fix it depended on scheduling.
#[test]
fn a_change_right_after_build_is_applied() {
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        let clock = clock();
        let a = builder(&["sk-a", "sk-b"], &clock)
            .store(store(&db))
            .build()
            .unwrap();
        let b = builder(&["sk-a", "sk-b"], &clock)
            .store(store(&db))
            .build()
            .unwrap();
        a.mark_exhausted("openai", Some("sk-a"));
        a.flush_store();
        assert!(
            wait_until(PATIENCE, || key(&b).as_deref() == Some("sk-b")),
            "round {round}: the other rotator's mark never arrived"
        );
    }
}

#[test]
fn a_version_2_database_is_migrated_and_keeps_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let clock = clock();
    let until = START.saturating_add(Duration::from_secs(60));
    // As version 2 of this library left it: no `seen_at` column.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "CREATE TABLE credential_state (provider TEXT NOT NULL, fingerprint TEXT NOT NULL, \
           label TEXT, state TEXT NOT NULL, until_ms INTEGER, \
           times_exhausted INTEGER NOT NULL DEFAULT 0, last_exhausted_at INTEGER, reason TEXT, \
           updated_at INTEGER NOT NULL, writer TEXT NOT NULL, PRIMARY KEY (provider, fingerprint)); \
         PRAGMA user_version = 2;",
    )
    .unwrap();
    conn.execute(
        "INSERT INTO credential_state (provider, fingerprint, label, state, until_ms, \
           times_exhausted, updated_at, writer) VALUES ('openai', ?1, 'label-a', 'cooling', ?2, 1, 0, 'old')",
        rusqlite::params![
            ai_key_rotator::Fingerprint::of("sk-a").to_string(),
            until.as_millis() as i64
        ],
    )
    .unwrap();
    drop(conn);
    let r = builder(&["sk-a", "sk-b"], &clock)
        .store(store(&db))
        .build()
        .unwrap();
    assert!(r.store_error().is_none(), "{:?}", r.store_error());
    assert_eq!(until_of(&r, "label-a"), CredentialState::Cooling { until });
    // And it is written as version 4.
    r.mark_exhausted("openai", Some("sk-b"));
    r.flush_store_within(PATIENCE).unwrap();
    let conn = rusqlite::Connection::open(&db).unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    assert_eq!(version, 4);
    let stamped: i64 = conn
        .query_row(
            "SELECT count(*) FROM credential_state WHERE seen_at IS NOT NULL",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert!(stamped >= 1);
}

#[test]
fn a_version_3_database_is_migrated_in_place_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let clock = clock();
    let until = START.saturating_add(Duration::from_secs(60));
    let reason = r#"{"cause":"rate limited (requests per minute)"}"#;
    // As version 3 of this library left it: no counters or per-model rests.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "CREATE TABLE credential_state (provider TEXT NOT NULL, fingerprint TEXT NOT NULL, \
           label TEXT, state TEXT NOT NULL, until_ms INTEGER, \
           times_exhausted INTEGER NOT NULL DEFAULT 0, last_exhausted_at INTEGER, reason TEXT, \
           updated_at INTEGER NOT NULL, writer TEXT NOT NULL, seen_at INTEGER, \
           PRIMARY KEY (provider, fingerprint)); \
         PRAGMA user_version = 3;",
    )
    .unwrap();
    conn.execute(
        "INSERT INTO credential_state (provider, fingerprint, label, state, until_ms, \
           times_exhausted, last_exhausted_at, reason, updated_at, writer, seen_at) \
         VALUES ('openai', ?1, 'label-a', 'cooling', ?2, 7, ?3, ?4, 0, 'old', ?3)",
        rusqlite::params![
            ai_key_rotator::Fingerprint::of("sk-a").to_string(),
            until.as_millis() as i64,
            START.as_millis() as i64,
            reason,
        ],
    )
    .unwrap();
    drop(conn);
    let r = builder(&["sk-a", "sk-b"], &clock)
        .store(store(&db))
        .build()
        .unwrap();
    assert!(r.store_error().is_none(), "{:?}", r.store_error());
    let a = status_of(&r, "label-a");
    assert_eq!(a.state, CredentialState::Cooling { until });
    assert_eq!(a.times_exhausted, 7);
    assert_eq!(a.last_exhausted_at, Some(START));
    assert_eq!(
        a.reason.map(|r| r.cause).as_deref(),
        Some("rate limited (requests per minute)")
    );
    // The new columns are there and written: uses made now survive the next start.
    assert_eq!(key(&r).as_deref(), Some("sk-b"));
    r.shutdown();
    drop(r);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    assert_eq!(version, 4);
    let (used, exhausted): (i64, i64) = conn
        .query_row(
            "SELECT (SELECT times_used FROM credential_state WHERE label = 'label-b'), \
                    (SELECT times_exhausted FROM credential_state WHERE label = 'label-a')",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!((used, exhausted), (1, 7));
}

/// The child of `two_processes_share_one_database`.
#[test]
fn sqlite_child() {
    if !child_role("sqlite") {
        return;
    }
    let db = std::env::var("AKR_DB").unwrap();
    let clock = clock();
    let r = builder(&[CANARY, "sk-b", "sk-c"], &clock)
        .store(store(db.as_ref()))
        .build()
        .unwrap();
    println!("ready");
    std::io::stdout().flush().unwrap();
    // The parent rests the canary key for one model, then marks it: wait until this process
    // skips it too, and rests it for that model.
    assert!(wait_until(PATIENCE, || key(&r).as_deref() == Some("sk-b")));
    let canary = r
        .provider_status("openai")
        .unwrap()
        .credentials
        .into_iter()
        .find(|c| c.id.fingerprint == ai_key_rotator::Fingerprint::of(CANARY))
        .unwrap();
    assert_eq!(canary.model_cooldowns.len(), 1, "{canary:?}");
    r.mark_exhausted("openai", Some("sk-b"));
    r.flush_store();
    println!("marked");
    std::io::stdout().flush().unwrap();
    // Stay alive until the parent is done.
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

#[test]
fn two_processes_share_one_database() {
    if std::env::var("AKR_TEST_CHILD").is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let clock = clock();
    let r = builder(&[CANARY, "sk-b", "sk-c"], &clock)
        .store(store(&db))
        .build()
        .unwrap();
    let mut child = spawn_self(
        "sqlite_child",
        "sqlite",
        &[("AKR_DB", db.display().to_string())],
    );
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut expect = |word: &str| {
        let mut line = String::new();
        while !line.trim_end().ends_with(word) {
            line.clear();
            assert!(
                out.read_line(&mut line).unwrap() > 0,
                "child died before `{word}`"
            );
        }
    };
    expect("ready");
    // Uses and a per-model rest of the canary key reach the database too (by fingerprint).
    let canary = r.get_key_for("openai", "gpt-4o").unwrap();
    assert_eq!(canary.expose_key(), CANARY);
    r.report_for_model(
        &canary,
        &ai_key_rotator::classify::Verdict::RateLimited {
            until: Some(START.saturating_add(Duration::from_secs(300))),
            scope: ai_key_rotator::classify::LimitScope::Model(
                ai_key_rotator::classify::ModelName::new("gpt-4o").unwrap(),
            ),
            limit: ai_key_rotator::classify::LimitKind::TokensPerMinute,
        },
    );
    drop(canary);
    r.flush_store();
    r.mark_exhausted("openai", Some(CANARY));
    r.flush_store();
    expect("marked");
    // The child's mark reaches this process: both of the first keys are skipped.
    assert!(wait_until(PATIENCE, || key(&r).as_deref() == Some("sk-c")));
    writeln!(child.stdin.take().unwrap(), "done").unwrap();
    assert!(child.wait().unwrap().success());
    r.shutdown();

    // Secrets: the database and its journal hold fingerprints, never keys.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!contains(&bytes, CANARY), "a key reached the database");
    }
    let conn = rusqlite::Connection::open(&db).unwrap();
    let fp: String = conn
        .query_row(
            "SELECT fingerprint FROM credential_state WHERE state = 'cooling' ORDER BY fingerprint LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(fp.len(), 16);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&db).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}

#[test]
fn disabled_keys_and_scope_cooldowns_are_stored_too() {
    use ai_key_rotator::classify::{InvalidKeyCause, LimitKind, LimitScope, Verdict};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let clock = clock();
    let first = builder(&["sk-a", "sk-b"], &clock)
        .store(store(&db))
        .build()
        .unwrap();
    let a = first.get_key("openai").unwrap();
    first.report(
        &a,
        &Verdict::InvalidKey {
            cause: InvalidKeyCause::Invalid,
        },
    );
    let b = first.get_key("openai").unwrap();
    first.report(
        &b,
        &Verdict::RateLimited {
            until: Some(START.saturating_add(Duration::from_secs(45))),
            scope: LimitScope::Key,
            limit: LimitKind::TokensPerMinute,
        },
    );
    first.shutdown();
    drop(first);

    let second = builder(&["sk-a", "sk-b"], &clock)
        .store(store(&db))
        .build()
        .unwrap();
    assert_eq!(until_of(&second, "label-a"), CredentialState::Disabled);
    assert_eq!(
        until_of(&second, "label-b"),
        CredentialState::Cooling {
            until: START.saturating_add(Duration::from_secs(45))
        }
    );
    // Enabling is stored as well.
    assert!(second.enable("openai", "sk-a"));
    second.shutdown();
    drop(second);
    let third = builder(&["sk-a", "sk-b"], &clock)
        .store(store(&db))
        .build()
        .unwrap();
    assert_eq!(until_of(&third, "label-a"), CredentialState::Available);
}

fn status_of(r: &KeyRotator, label: &str) -> ai_key_rotator::CredentialStatus {
    r.provider_status("openai")
        .unwrap()
        .credentials
        .into_iter()
        .find(|c| c.id.label.as_deref() == Some(label))
        .unwrap()
}

#[test]
fn another_process_s_cooldown_shows_its_reason_and_count() {
    use ai_key_rotator::classify::{LimitKind, LimitScope, Verdict};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let clock = clock();
    let a = builder(&["sk-a", "sk-b"], &clock)
        .store(store(&db))
        .build()
        .unwrap();
    let b = builder(&["sk-a", "sk-b"], &clock)
        .store(store(&db))
        .build()
        .unwrap();
    let reset = START.saturating_add(Duration::from_secs(45));
    let key = a.get_key("openai").unwrap();
    a.report(
        &key,
        &Verdict::RateLimited {
            until: Some(reset),
            scope: LimitScope::Key,
            limit: LimitKind::TokensPerMinute,
        },
    );
    a.flush_store();
    assert!(wait_until(Duration::from_secs(10), || {
        status_of(&b, "label-a").state == CredentialState::Cooling { until: reset }
    }));
    let seen = status_of(&b, "label-a");
    let reason = seen.reason.expect("the reason travels with the cooldown");
    assert_eq!(reason, status_of(&a, "label-a").reason.unwrap());
    assert_eq!(reason.provider_reset, Some(reset));
    assert!(reason.cause.contains("rate limited"), "{}", reason.cause);
    assert!(seen.times_exhausted >= 1);
    // A process that starts later reads the reason from the database too.
    a.shutdown();
    let c = builder(&["sk-a", "sk-b"], &clock)
        .store(store(&db))
        .build()
        .unwrap();
    assert_eq!(status_of(&c, "label-a").reason, Some(reason));
}

#[test]
fn a_key_disabled_elsewhere_shows_why_not_a_stale_reason() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let clock = clock();
    let a = builder(&["sk-a", "sk-b"], &clock)
        .store(store(&db))
        .build()
        .unwrap();
    let b = builder(&["sk-a", "sk-b"], &clock)
        .store(store(&db))
        .build()
        .unwrap();
    // b cools the key itself ("marked exhausted"), then an operator disables it through a.
    b.mark_exhausted("openai", Some("sk-a"));
    b.flush_store();
    assert!(wait_until(Duration::from_secs(10), || matches!(
        status_of(&a, "label-a").state,
        CredentialState::Cooling { .. }
    )));
    assert!(a.disable("openai", "sk-a"));
    a.flush_store();
    assert!(wait_until(Duration::from_secs(10), || {
        status_of(&b, "label-a").state == CredentialState::Disabled
    }));
    let reason = status_of(&b, "label-a").reason.expect("a reason");
    assert_eq!(reason.cause, "disabled by hand");
}

#[test]
fn a_remote_cooldown_over_one_that_ended_unobserved_resets_it_first() {
    use ai_key_rotator::Event;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let clock_a = clock();
    let clock_b = clock();
    let a = builder(&["sk-a", "sk-b"], &clock_a)
        .store(store(&db))
        .build()
        .unwrap();
    let b = builder(&["sk-a", "sk-b"], &clock_b)
        .store(store(&db))
        .build()
        .unwrap();
    // b's own cooldown of sk-a (60 s) ends, and nobody in b looks at the key.
    b.mark_exhausted("openai", Some("sk-a"));
    b.flush_store();
    clock_b.advance(Duration::from_secs(61));
    let mut events = b.subscribe();
    // a, later, cools it again.
    clock_a.advance(Duration::from_secs(61));
    a.mark_exhausted("openai", Some("sk-a"));
    a.flush_store();
    let until = START.saturating_add(Duration::from_secs(121));
    assert!(wait_until(Duration::from_secs(10), || {
        status_of(&b, "label-a").state == CredentialState::Cooling { until }
    }));
    // Every ended cooldown produces exactly one Reset: here, as a remote event, before the
    // remote cooldown's own.
    let seen: Vec<Event> = events
        .drain()
        .into_iter()
        .filter_map(|e| match e {
            Event::Remote { change } => Some(*change),
            _ => None,
        })
        .collect();
    let reset = seen
        .iter()
        .position(|e| matches!(e, Event::Reset { .. }))
        .expect("a Reset for the cooldown that ended unobserved");
    let exhausted = seen
        .iter()
        .position(|e| matches!(e, Event::Exhausted { .. }))
        .expect("the remote cooldown");
    assert!(reset < exhausted, "{seen:?}");
    assert_eq!(
        seen.iter()
            .filter(|e| matches!(e, Event::Reset { .. }))
            .count(),
        1
    );
}

#[test]
fn a_per_model_rest_reaches_the_other_rotator_on_the_same_file() {
    use ai_key_rotator::classify::{LimitKind, LimitScope, ModelName, Verdict};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let clock = clock();
    let one = builder(&["sk-a", "sk-b"], &clock)
        .store(store(&db))
        .build()
        .unwrap();
    let two = builder(&["sk-a", "sk-b"], &clock)
        .store(store(&db))
        .build()
        .unwrap();
    let a = one.get_key_for("openai", "gpt-4o").unwrap();
    one.report_for_model(
        &a,
        &Verdict::RateLimited {
            until: Some(START.saturating_add(Duration::from_secs(300))),
            scope: LimitScope::Model(ModelName::new("gpt-4o").unwrap()),
            limit: LimitKind::TokensPerMinute,
        },
    );
    let expected = status_of(&one, "label-a").model_cooldowns;
    assert_eq!(expected.len(), 1);
    assert!(
        wait_until(PATIENCE, || status_of(&two, "label-a").model_cooldowns
            == expected),
        "the rest never reached the other rotator"
    );
    assert_eq!(
        two.get_key_for("openai", "gpt-4o")
            .map(|c| c.expose_key().to_owned())
            .as_deref(),
        Some("sk-b")
    );
}

#[test]
fn a_shorter_stored_rest_never_shortens_a_longer_one() {
    use ai_key_rotator::classify::{LimitKind, LimitScope, ModelName, Verdict};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let clock = clock();
    let one = builder(&["sk-a", "sk-b"], &clock)
        .store(store(&db))
        .build()
        .unwrap();
    let long = START.saturating_add(Duration::from_secs(600));
    let a = one.get_key_for("openai", "gpt-4o").unwrap();
    one.report_for_model(
        &a,
        &Verdict::RateLimited {
            until: Some(long),
            scope: LimitScope::Model(ModelName::new("gpt-4o").unwrap()),
            limit: LimitKind::TokensPerMinute,
        },
    );
    drop(a);
    one.flush_store_within(PATIENCE).unwrap();
    let rests = |r: &KeyRotator| -> Vec<u64> {
        status_of(r, "label-a")
            .model_cooldowns
            .iter()
            .map(|m| m.until.as_millis())
            .collect()
    };
    assert_eq!(rests(&one), [long.as_millis()]);

    // Another writer stores a shorter rest for the same model and a rest for another one,
    // and (in the same transaction, so that its arrival shows) cools sk-b.
    let short = START.saturating_add(Duration::from_secs(10)).as_millis();
    let mini = START.saturating_add(Duration::from_secs(900)).as_millis();
    let b_until = START.saturating_add(Duration::from_secs(100));
    let mut conn = rusqlite::Connection::open(&db).unwrap();
    let tx = conn.transaction().unwrap();
    tx.execute(
        "UPDATE credential_state SET model_cooldowns = ?1 WHERE label = 'label-a'",
        [format!(
            r#"[{{"model":"gpt-4o","until":{short},"reason":{{"cause":"elsewhere"}}}},
                {{"model":"gpt-4o-mini","until":{mini},"reason":{{"cause":"elsewhere"}}}}]"#
        )],
    )
    .unwrap();
    tx.execute(
        "INSERT INTO credential_state (provider, fingerprint, label, state, until_ms, updated_at, writer) \
         VALUES ('openai', ?1, 'label-b', 'cooling', ?2, 0, 'other')",
        rusqlite::params![
            ai_key_rotator::Fingerprint::of("sk-b").to_string(),
            b_until.as_millis() as i64
        ],
    )
    .unwrap();
    tx.commit().unwrap();
    assert!(wait_until(PATIENCE, || {
        until_of(&one, "label-b") == CredentialState::Cooling { until: b_until }
    }));
    // The other model's rest is taken; the shorter one does not shorten the longer.
    assert!(wait_until(PATIENCE, || rests(&one).len() == 2));
    let mut now = rests(&one);
    now.sort_unstable();
    assert_eq!(
        now,
        [long.as_millis(), mini],
        "a longer local rest was shortened"
    );

    // The next write of sk-a stores the longer rest again.
    one.mark_exhausted("openai", Some("sk-a"));
    one.flush_store_within(PATIENCE).unwrap();
    let stored: String = conn
        .query_row(
            "SELECT model_cooldowns FROM credential_state WHERE label = 'label-a'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert!(stored.contains(&long.as_millis().to_string()), "{stored}");
    assert!(stored.contains(&mini.to_string()), "{stored}");
    assert!(!stored.contains(&short.to_string()), "{stored}");
}
