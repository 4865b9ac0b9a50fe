//! Per-key usage per provider day, kept by the state store: in memory without one, in the
//! `key_usage` table with SQLite, in `HINCRBY` hashes with Redis (plain, TLS). Totals add up
//! across rotators sharing a store, survive a restart, and survive an outage of the store
//! (deltas wait, merged, and are written when it is back). Days are the provider's.

mod store_support;

use std::time::Duration;

use ai_key_rotator::{
    AnswerClass, ConfigError, FakeClock, Fingerprint, KeyRotator, ProviderConfig, Timestamp,
    UsageCounts, UsageError,
};
use store_support::*;

fn ok() -> UsageCounts {
    UsageCounts::answer(AnswerClass::Ok)
}

/// `provider`'s counts today for the credential of `key`.
fn today(r: &KeyRotator, provider: &str, key: &str) -> UsageCounts {
    let day = r.usage_today(provider).expect("a configured provider");
    day.credentials
        .iter()
        .find(|(id, _)| id.fingerprint == Fingerprint::of(key))
        .map(|(_, c)| *c)
        .expect("a configured credential")
}

/// One success, one rate limit and some tokens for `key`.
#[cfg(any(feature = "sqlite", feature = "redis"))]
fn use_key(r: &KeyRotator, key: &str) {
    let fp = Fingerprint::of(key);
    r.record_usage("openai", fp, ok()).unwrap();
    r.record_usage("openai", fp, UsageCounts::answer(AnswerClass::RateLimited))
        .unwrap();
    r.record_usage("openai", fp, UsageCounts::tokens(100, 20))
        .unwrap();
}

#[cfg(any(feature = "sqlite", feature = "redis"))]
fn expect_twice(c: UsageCounts) {
    assert_eq!(c.requests(), 4, "{c:?}");
    assert_eq!(c.successes(), 2, "{c:?}");
    assert_eq!(c.answers(AnswerClass::RateLimited), 2, "{c:?}");
    assert_eq!((c.tokens_in, c.tokens_out), (200, 40), "{c:?}");
}

#[test]
fn bad_input_is_refused_with_what_was_wrong() {
    let clock = clock();
    let r = builder(&["sk-a"], &clock).build().unwrap();
    assert_eq!(
        r.record_usage("nope", Fingerprint::of("sk-a"), ok()),
        Err(UsageError::UnknownProvider {
            provider: "nope".into()
        })
    );
    let err = r
        .record_usage("openai", Fingerprint::of("sk-unknown"), ok())
        .unwrap_err();
    assert!(matches!(err, UsageError::UnknownCredential { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&Fingerprint::of("sk-unknown").to_string())
    );
    assert!(r.usage_today("nope").is_none());
    let bad = KeyRotator::builder()
        .provider(
            "openai",
            ProviderConfig::new()
                .credential("sk-a")
                .usage_day_timezone("Mars/Olympus_Mons"),
        )
        .build()
        .unwrap_err();
    assert!(matches!(bad, ConfigError::UnknownTimeZone { .. }), "{bad}");
    assert!(bad.to_string().contains("Mars/Olympus_Mons"), "{bad}");
    // The same from a configuration file.
    let text = r#"
        [providers.openai]
        credentials = [{ key = "sk-a" }]
        usage_day_timezone = "Nowhere/Town"
    "#;
    let err = ai_key_rotator::RotatorConfig::from_toml_str(text)
        .map_err(|e| e.to_string())
        .and_then(|c| KeyRotator::from_config(c).map_err(|e| e.to_string()))
        .unwrap_err();
    assert!(err.contains("Nowhere/Town"), "{err}");
}

#[test]
fn days_are_the_providers_days() {
    // 2026-11-30T07:30Z: the 30th in UTC, still the 29th in Los Angeles.
    let clock = FakeClock::new(Timestamp::from_millis(1_796_023_800_000));
    let r = KeyRotator::builder()
        .provider("gemini", ProviderConfig::new().credential("AIza-a"))
        .provider("openai", ProviderConfig::new().credential("sk-a"))
        .provider(
            "tokyo",
            ProviderConfig::new()
                .credential("sk-t")
                .usage_day_timezone("Asia/Tokyo"),
        )
        .clock(clock.clone())
        .reset_interval(Duration::ZERO)
        .build()
        .unwrap();
    let g = r.usage_today("gemini").unwrap();
    assert_eq!(
        (g.date.as_str(), g.time_zone.as_str()),
        ("2026-11-29", "America/Los_Angeles")
    );
    let o = r.usage_today("openai").unwrap();
    assert_eq!(
        (o.date.as_str(), o.time_zone.as_str()),
        ("2026-11-30", "UTC")
    );
    let t = r.usage_today("tokyo").unwrap();
    assert_eq!(
        (t.date.as_str(), t.time_zone.as_str()),
        ("2026-11-30", "Asia/Tokyo")
    );
    r.record_usage("gemini", Fingerprint::of("AIza-a"), ok())
        .unwrap();
    r.record_usage("openai", Fingerprint::of("sk-a"), ok())
        .unwrap();
    // 08:00Z is midnight in Los Angeles: Gemini's day turns, OpenAI's does not.
    clock.advance(Duration::from_secs(30 * 60));
    assert_eq!(today(&r, "gemini", "AIza-a").requests(), 0);
    assert_eq!(r.usage_today("gemini").unwrap().date, "2026-11-30");
    assert_eq!(today(&r, "openai", "sk-a").requests(), 1);
    // Midnight UTC turns OpenAI's.
    clock.advance(Duration::from_secs(16 * 3600));
    assert_eq!(today(&r, "openai", "sk-a").requests(), 0);
    assert_eq!(r.usage_today("openai").unwrap().date, "2026-12-01");
}

#[cfg(feature = "file")]
#[test]
fn the_file_store_keeps_usage_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let clock = clock();
    let r = builder(&["sk-a", CANARY], &clock)
        .store(ai_key_rotator::FileStore::open(&path).unwrap())
        .build()
        .unwrap();
    r.record_usage("openai", Fingerprint::of(CANARY), UsageCounts::tokens(5, 6))
        .unwrap();
    r.mark_exhausted("openai", Some("sk-a"));
    r.flush_store();
    assert_eq!(today(&r, "openai", CANARY).tokens_out, 6);
    // Nothing waits for a store that does not keep usage, and the file names no key.
    assert_eq!(r.usage_pending(), 0);
    assert!(!contains(&std::fs::read(&path).unwrap(), CANARY));
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::*;
    use ai_key_rotator::SqliteStore;

    fn rotator(db: &std::path::Path, clock: &FakeClock) -> KeyRotator {
        builder(&["sk-a", CANARY], clock)
            .store(SqliteStore::open(db).unwrap())
            .build()
            .unwrap()
    }

    #[test]
    fn two_rotators_add_up_and_a_restart_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        let clock = clock();
        let a = rotator(&db, &clock);
        let b = rotator(&db, &clock);
        use_key(&a, CANARY);
        use_key(&b, CANARY);
        a.flush_store();
        b.flush_store();
        // b's flush read a's rows back with its own.
        expect_twice(today(&b, "openai", CANARY));
        a.flush_store();
        expect_twice(today(&a, "openai", CANARY));
        drop(a);
        drop(b);
        // A new process starts from the stored totals, and counts on from them.
        let c = rotator(&db, &clock);
        expect_twice(today(&c, "openai", CANARY));
        c.record_usage("openai", Fingerprint::of(CANARY), ok())
            .unwrap();
        assert_eq!(today(&c, "openai", CANARY).successes(), 3);
        drop(c);
        // The next day starts from zero, and the table kept the days apart.
        clock.advance(Duration::from_secs(86_400));
        let d = rotator(&db, &clock);
        assert_eq!(today(&d, "openai", CANARY), UsageCounts::default());
        drop(d);
        // Fingerprints and counters, never a key.
        let mut bytes = Vec::new();
        for f in std::fs::read_dir(dir.path()).unwrap() {
            bytes.extend(std::fs::read(f.unwrap().path()).unwrap());
        }
        assert!(!contains(&bytes, CANARY));
        assert!(contains(&bytes, &Fingerprint::of(CANARY).to_string()));
    }

    #[test]
    fn rows_the_gateway_wrote_carry_on() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        let clock = clock();
        // The table as the gateway created it, with today's (UTC) row of a key.
        let day = (START.as_millis() / 86_400_000) as i64;
        rusqlite::Connection::open(&db)
            .unwrap()
            .execute_batch(&format!(
                "CREATE TABLE key_usage (provider TEXT NOT NULL, fingerprint TEXT NOT NULL, \
                 day INTEGER NOT NULL, class TEXT NOT NULL, count INTEGER NOT NULL, \
                 PRIMARY KEY (provider, fingerprint, day, class)); \
                 INSERT INTO key_usage VALUES ('openai', '{fp}', {day}, 'ok', 5); \
                 INSERT INTO key_usage VALUES ('openai', '{fp}', {}, 'ok', 1); \
                 INSERT INTO key_usage VALUES ('openai', '{fp}', {}, 'ok', 2);",
                day - 10,
                day - 40,
                fp = Fingerprint::of("sk-a")
            ))
            .unwrap();
        let r = rotator(&db, &clock);
        assert_eq!(today(&r, "openai", "sk-a").successes(), 5);
        r.record_usage("openai", Fingerprint::of("sk-a"), ok())
            .unwrap();
        r.flush_store();
        assert_eq!(today(&r, "openai", "sk-a").successes(), 6);
        // Rows older than 35 days are deleted (as Redis lets its hashes expire); the rest stay.
        let days: Vec<i64> = rusqlite::Connection::open(&db)
            .unwrap()
            .prepare("SELECT day FROM key_usage ORDER BY day")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(days, vec![day - 10, day], "{days:?}");
    }
}

#[cfg(feature = "redis")]
mod redis {
    use super::*;
    use ai_key_rotator::{RedisStore, StoreError};
    use store_support::redis_server::RedisServer;

    fn rotator(url: &str, clock: &FakeClock) -> KeyRotator {
        builder(&["sk-a", CANARY], clock)
            .store(
                RedisStore::builder(url)
                    .prefix("use")
                    .timeout(Duration::from_millis(500))
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    }

    #[test]
    fn two_rotators_on_one_server_add_up_and_a_restart_resumes() {
        let Some(server) = RedisServer::start() else {
            return;
        };
        let clock = clock();
        let a = rotator(&server.url(), &clock);
        let b = rotator(&server.url(), &clock);
        use_key(&a, CANARY);
        use_key(&b, CANARY);
        a.flush_store();
        b.flush_store();
        expect_twice(today(&b, "openai", CANARY));
        a.flush_store();
        expect_twice(today(&a, "openai", CANARY));
        drop(a);
        drop(b);
        let c = rotator(&server.url(), &clock);
        c.flush_store();
        expect_twice(today(&c, "openai", CANARY));
        // The gateway's layout: one hash per provider and UTC day, under the store's prefix.
        let day = START.as_millis() / 86_400_000;
        let field = format!("{}:tokens_in", Fingerprint::of(CANARY));
        let stored = server
            .command(&["HGET", &format!("use:usage:{{openai}}:{day}"), &field])
            .unwrap();
        assert!(stored.contains("200"), "{stored:?}");
        let ttl = server
            .command(&["TTL", &format!("use:usage:{{openai}}:{day}")])
            .unwrap();
        let ttl: i64 = ttl.trim_start_matches(':').trim().parse().unwrap();
        assert!(ttl > 34 * 86_400 && ttl <= 35 * 86_400, "{ttl}");
        let keys = server.command(&["KEYS", "*"]).unwrap();
        let hash = server
            .command(&["HGETALL", &format!("use:usage:{{openai}}:{day}")])
            .unwrap();
        assert!(!keys.contains(CANARY) && !hash.contains(CANARY), "{hash}");
    }

    #[test]
    fn an_outage_loses_nothing_and_the_waiting_deltas_stay_one_per_key() {
        let Some(mut server) = RedisServer::start() else {
            return;
        };
        let clock = clock();
        let r = rotator(&server.url(), &clock);
        r.flush_store();
        server.kill();
        for _ in 0..500 {
            r.record_usage("openai", Fingerprint::of("sk-a"), ok())
                .unwrap();
        }
        r.record_usage("openai", Fingerprint::of("sk-a"), UsageCounts::tokens(7, 3))
            .unwrap();
        // Counted here while the store is away, in one waiting entry.
        assert_eq!(today(&r, "openai", "sk-a").successes(), 500);
        assert!(r.usage_pending() <= 1, "{}", r.usage_pending());
        let err = r
            .flush_store_within(Duration::from_millis(300))
            .unwrap_err();
        assert!(matches!(err, StoreError::FlushTimedOut { .. }), "{err}");
        assert_eq!(r.usage_pending(), 1);
        // Back (empty): the waiting deltas are written.
        server.restart();
        assert!(
            wait_until(PATIENCE, || r
                .flush_store_within(Duration::from_secs(2))
                .is_ok()),
            "the store came back"
        );
        assert_eq!(r.usage_pending(), 0);
        let c = today(&r, "openai", "sk-a");
        assert_eq!((c.successes(), c.tokens_in, c.tokens_out), (500, 7, 3));
        let day = START.as_millis() / 86_400_000;
        let field = format!("{}:ok", Fingerprint::of("sk-a"));
        let stored = server
            .command(&["HGET", &format!("use:usage:{{openai}}:{day}"), &field])
            .unwrap();
        assert!(stored.contains("500"), "{stored:?}");
    }

    #[cfg(feature = "redis-tls")]
    #[test]
    fn usage_goes_over_the_stores_tls_connection() {
        let Some((server, ca)) = RedisServer::start_tls() else {
            return;
        };
        let url = format!("rediss://127.0.0.1:{}", server.tls_port.unwrap());
        let clock = clock();
        let make = || {
            builder(&["sk-a"], &clock)
                .store(
                    RedisStore::builder(&url)
                        .prefix("tls")
                        .ca_certificate_pem(ca.clone())
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap()
        };
        let a = make();
        a.record_usage(
            "openai",
            Fingerprint::of("sk-a"),
            UsageCounts::tokens(11, 0),
        )
        .unwrap();
        a.flush_store();
        drop(a);
        let b = make();
        b.flush_store();
        assert_eq!(today(&b, "openai", "sk-a").tokens_in, 11);
    }
}
