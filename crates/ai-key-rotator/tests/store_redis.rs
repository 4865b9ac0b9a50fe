//! The Redis store with two rotators in two processes: propagation time, concurrent marks
//! of one key, Redis killed and restarted mid-run, secrets. Each test starts its own
//! `redis-server` and skips (saying so) only when there is none.
#![cfg(feature = "redis")]

mod store_support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ai_key_rotator::{CredentialState, Event, Fingerprint, KeyRotator, RedisStore, Timestamp};
use store_support::redis_server::RedisServer;
use store_support::*;

const COOLDOWN_MS: u64 = 60_000;

fn wall_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn store(url: &str, prefix: &str) -> RedisStore {
    // Generous: a test asserts that the first load succeeded, and a loaded machine can take
    // longer than a quiet one to connect.
    store_with_timeout(url, prefix, Duration::from_secs(10))
}

fn store_with_timeout(url: &str, prefix: &str, timeout: Duration) -> RedisStore {
    RedisStore::builder(url)
        .prefix(prefix)
        .timeout(timeout)
        .build()
        .unwrap()
}

fn canary_state(r: &KeyRotator) -> CredentialState {
    r.provider_status("openai")
        .unwrap()
        .credentials
        .into_iter()
        .find(|c| c.id.fingerprint == Fingerprint::of(CANARY))
        .unwrap()
        .state
}

fn until_ms(state: CredentialState) -> u64 {
    match state {
        CredentialState::Cooling { until } => until.as_millis(),
        _ => 0,
    }
}

/// The other process: a rotator on the same Redis, driven over stdin, reporting remote
/// exhaustions on stdout.
#[test]
fn redis_child() {
    if !child_role("redis") {
        return;
    }
    let url = std::env::var("AKR_REDIS_URL").unwrap();
    let prefix = std::env::var("AKR_PREFIX").unwrap();
    let clock = clock();
    let r = builder(&[CANARY, "sk-b"], &clock)
        .store(store(&url, &prefix))
        .build()
        .unwrap();
    let mut events = r.subscribe();
    let seen = r.clone();
    std::thread::spawn(move || {
        while let Ok(event) = events.blocking_recv() {
            if let Event::Remote { change } = event
                && let Event::Exhausted { until, .. } = *change
            {
                let skipped = seen
                    .get_key("openai")
                    .is_none_or(|c| c.expose_key() != CANARY);
                println!("@ex {} {} {skipped}", until.as_millis(), wall_ns());
            }
        }
    });
    println!("ready");
    std::io::stdout().flush().unwrap();
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["burst", n, base] => {
                let (n, base): (u64, u64) = (n.parse().unwrap(), base.parse().unwrap());
                for k in 0..n {
                    clock.set(Timestamp::from_millis(START.as_millis() + base + 2 * k));
                    r.mark_exhausted("openai", Some(CANARY));
                }
                r.flush_store();
                println!("@burst-done");
            }
            ["status"] => println!("@until {}", until_ms(canary_state(&r))),
            _ => break,
        }
        std::io::stdout().flush().unwrap();
    }
}

struct Other {
    child: Child,
    stdin: ChildStdin,
    out: BufReader<ChildStdout>,
}

impl Other {
    fn start(server: &RedisServer, prefix: &str) -> Self {
        let mut child = spawn_self(
            "redis_child",
            "redis",
            &[
                ("AKR_REDIS_URL", server.url()),
                ("AKR_PREFIX", prefix.to_owned()),
            ],
        );
        let stdin = child.stdin.take().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let mut other = Other { child, stdin, out };
        other.expect("ready");
        other
    }

    fn send(&mut self, cmd: &str) {
        writeln!(self.stdin, "{cmd}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// The next line containing `word`, from the word on.
    fn expect(&mut self, word: &str) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            assert!(
                self.out.read_line(&mut line).unwrap() > 0,
                "child died before `{word}`"
            );
            if let Some(at) = line.find(word) {
                return line[at..].trim_end().to_owned();
            }
        }
    }

    fn until(&mut self) -> u64 {
        self.send("status");
        self.expect("@until ")["@until ".len()..].parse().unwrap()
    }

    fn stop(mut self) {
        self.send("quit");
        assert!(self.child.wait().unwrap().success());
    }
}

#[test]
fn every_one_of_1000_marks_reaches_another_process() {
    if std::env::var("AKR_TEST_CHILD").is_ok() {
        return;
    }
    let Some(server) = RedisServer::start() else {
        return;
    };
    let clock = clock();
    let r = builder(&[CANARY, "sk-b"], &clock)
        .store(store(&server.url(), "prop"))
        .build()
        .unwrap();
    assert!(r.store_error().is_none(), "{:?}", r.store_error());
    let mut other = Other::start(&server, "prop");
    let mut latencies = Vec::with_capacity(1000);
    for i in 1..=1000u64 {
        clock.set(Timestamp::from_millis(START.as_millis() + i));
        let until = START.as_millis() + i + COOLDOWN_MS;
        let sent = wall_ns();
        assert!(r.mark_exhausted("openai", Some(CANARY)));
        let line = other.expect(&format!("@ex {until} "));
        let mut parts = line.split_whitespace().skip(2);
        let received: u128 = parts.next().unwrap().parse().unwrap();
        assert_eq!(
            parts.next(),
            Some("true"),
            "the other process still hands out the key"
        );
        latencies.push(received.saturating_sub(sent) as u64);
    }
    latencies.sort_unstable();
    let p50 = latencies[latencies.len() / 2];
    let p99 = latencies[latencies.len() * 99 / 100];
    let max = latencies[latencies.len() - 1];
    // The figures are for people (`--no-capture`); how fast is not asserted, since a shared
    // machine can stall any process for milliseconds. That every mark arrived, in order and
    // exact, is.
    println!(
        "redis propagation over 1000 marks: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        p50 as f64 / 1e6,
        p99 as f64 / 1e6,
        max as f64 / 1e6
    );
    other.stop();
}

#[test]
fn concurrent_marks_agree_on_the_longest_cooldown() {
    if std::env::var("AKR_TEST_CHILD").is_ok() {
        return;
    }
    let Some(server) = RedisServer::start() else {
        return;
    };
    let clock = clock();
    let r = builder(&[CANARY, "sk-b"], &clock)
        .store(store(&server.url(), "race"))
        .build()
        .unwrap();
    let mut other = Other::start(&server, "race");
    // Both processes mark the same key 300 times at once, with interleaved times: the child
    // the even milliseconds, this process the odd ones, this one ending last.
    other.send("burst 300 0");
    for k in 0..300u64 {
        clock.set(Timestamp::from_millis(START.as_millis() + 2 * k + 1));
        r.mark_exhausted("openai", Some(CANARY));
    }
    r.flush_store();
    other.expect("@burst-done");
    let longest = START.as_millis() + 2 * 299 + 1 + COOLDOWN_MS;
    assert!(wait_until(PATIENCE, || until_ms(canary_state(&r)) == longest));
    assert!(wait_until(PATIENCE, || other.until() == longest));
    let stored = server
        .command(&[
            "HGET",
            "{race:openai}:cooldowns",
            &Fingerprint::of(CANARY).to_string(),
        ])
        .unwrap();
    assert!(stored.contains(&format!("c:{longest}")), "{stored}");
    other.stop();
}

#[test]
fn redis_killed_and_restarted_loses_no_cooldown() {
    if std::env::var("AKR_TEST_CHILD").is_ok() {
        return;
    }
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let clock = clock();
    // Short: `flush_store` waits this long (twice) for the server that is down. Nothing here
    // depends on the first load finishing in time.
    let store = store_with_timeout(&server.url(), "outage", Duration::from_millis(500));
    let monitor = store.monitor();
    let r = builder(&[CANARY, "sk-b"], &clock)
        .store(store)
        .build()
        .unwrap();
    let mut other = Other::start(&server, "outage");
    assert!(r.mark_exhausted("openai", Some(CANARY)));
    let first = START.as_millis() + COOLDOWN_MS;
    other.expect(&format!("@ex {first} "));

    server.kill();
    assert!(wait_until(PATIENCE, || !monitor.is_connected()));
    // Marks during the outage: served and kept locally, no panic.
    clock.advance(Duration::from_secs(5));
    assert!(r.mark_exhausted("openai", Some(CANARY)));
    let second = first + 5_000;
    assert_eq!(until_ms(canary_state(&r)), second);
    assert_eq!(r.get_key("openai").unwrap().expose_key(), "sk-b");
    r.flush_store(); // gives up after its timeout while Redis is away

    server.restart();
    assert!(wait_until(PATIENCE, || monitor.is_connected()));
    assert!(monitor.outages() >= 1);
    // The other process gets the cooldown set during the outage: the longer one wins.
    assert!(wait_until(PATIENCE, || other.until() == second));
    let stored = server
        .command(&[
            "HGET",
            "{outage:openai}:cooldowns",
            &Fingerprint::of(CANARY).to_string(),
        ])
        .unwrap();
    assert!(stored.contains(&format!("c:{second}")), "{stored}");
    other.stop();
}

#[test]
fn redis_holds_no_key() {
    if std::env::var("AKR_TEST_CHILD").is_ok() {
        return;
    }
    let Some(server) = RedisServer::start() else {
        return;
    };
    let clock = clock();
    let r = builder(&[CANARY, "sk-b"], &clock)
        .store(store(&server.url(), "canary"))
        .build()
        .unwrap();
    // A use and a per-model rest first: counters and rests are stored by fingerprint too.
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
    r.mark_exhausted("openai", Some(CANARY));
    r.flush_store();
    let keys = server.command(&["KEYS", "*"]).unwrap();
    assert!(keys.contains("{canary:openai}:cooldowns"), "{keys}");
    assert!(!keys.contains(CANARY));
    for hash in ["models", "counters"] {
        let name = format!("{{canary:openai}}:{hash}");
        let all = server.command(&["HGETALL", &name]).unwrap();
        assert!(
            all.contains(&Fingerprint::of(CANARY).to_string()),
            "{name}: {all}"
        );
        assert!(!all.contains(CANARY), "a key reached Redis ({name})");
    }
    let all = server
        .command(&["HGETALL", "{canary:openai}:cooldowns"])
        .unwrap();
    assert!(all.contains(&Fingerprint::of(CANARY).to_string()), "{all}");
    assert!(!all.contains(CANARY), "a key reached Redis");
    let dump = server
        .command(&["DUMP", "{canary:openai}:cooldowns"])
        .unwrap();
    assert!(!dump.contains(CANARY));
}

fn status_of(r: &KeyRotator, key: &str) -> ai_key_rotator::CredentialStatus {
    r.provider_status("openai")
        .unwrap()
        .credentials
        .into_iter()
        .find(|c| c.id.fingerprint == Fingerprint::of(key))
        .unwrap()
}

#[test]
fn reasons_travel_with_cooldowns_and_disabling() {
    use ai_key_rotator::classify::{LimitKind, LimitScope, Verdict};
    let Some(server) = RedisServer::start() else {
        eprintln!("redis-server not found: skipping");
        return;
    };
    let clock = clock();
    let a = builder(&[CANARY, "sk-b"], &clock)
        .store(store(&server.url(), "why"))
        .build()
        .unwrap();
    let b = builder(&[CANARY, "sk-b"], &clock)
        .store(store(&server.url(), "why"))
        .build()
        .unwrap();
    let reset = START.saturating_add(Duration::from_secs(45));
    let key = a.get_key("openai").unwrap();
    a.report(
        &key,
        &Verdict::RateLimited {
            until: Some(reset),
            scope: LimitScope::Key,
            limit: LimitKind::RequestsPerDay,
        },
    );
    drop(key);
    a.flush_store();
    assert!(wait_until(Duration::from_secs(10), || {
        status_of(&b, CANARY).state == CredentialState::Cooling { until: reset }
    }));
    let seen = status_of(&b, CANARY);
    let reason = seen.reason.expect("the reason travels with the cooldown");
    assert_eq!(Some(&reason), status_of(&a, CANARY).reason.as_ref());
    assert_eq!(reason.provider_reset, Some(reset));
    assert!(seen.times_exhausted >= 1);

    // A process that starts later reads it from the server.
    let c = builder(&[CANARY, "sk-b"], &clock)
        .store(store(&server.url(), "why"))
        .build()
        .unwrap();
    assert_eq!(status_of(&c, CANARY).reason, Some(reason));

    // Disabled elsewhere: the reason is the disabling's, not the earlier cooldown's.
    assert!(a.disable("openai", "sk-b"));
    a.flush_store();
    assert!(wait_until(Duration::from_secs(10), || {
        status_of(&b, "sk-b").state == CredentialState::Disabled
    }));
    assert_eq!(
        status_of(&b, "sk-b").reason.map(|r| r.cause.into_owned()),
        Some("disabled by hand".to_owned())
    );
    // The reasons are on the server, and no key is.
    let reasons = server
        .command(&["HGETALL", "{why:openai}:reasons"])
        .unwrap_or_default();
    assert!(reasons.contains("disabled by hand"), "{reasons}");
    assert!(!reasons.contains(CANARY));
}

fn rests(r: &KeyRotator, key: &str) -> Vec<(String, u64, String)> {
    status_of(r, key)
        .model_cooldowns
        .into_iter()
        .map(|m| {
            (
                m.model.to_string(),
                m.until.as_millis(),
                m.reason.cause.into(),
            )
        })
        .collect()
}

#[test]
fn a_per_model_rest_reaches_the_other_process_and_never_shortens_a_longer_one() {
    use ai_key_rotator::classify::{LimitKind, LimitScope, ModelName, Verdict};
    let Some(server) = RedisServer::start() else {
        return;
    };
    let clock = clock();
    let one = builder(&[CANARY, "sk-b"], &clock)
        .store(store(&server.url(), "models"))
        .build()
        .unwrap();
    let two = builder(&[CANARY, "sk-b"], &clock)
        .store(store(&server.url(), "models"))
        .build()
        .unwrap();
    let canary = one.get_key_for("openai", "gpt-4o").unwrap();
    assert_eq!(canary.expose_key(), CANARY);
    one.report_for_model(
        &canary,
        &Verdict::RateLimited {
            until: Some(START.saturating_add(Duration::from_secs(300))),
            scope: LimitScope::Model(ModelName::new("gpt-4o").unwrap()),
            limit: LimitKind::TokensPerMinute,
        },
    );
    let expected = rests(&one, CANARY);
    assert_eq!(expected.len(), 1);
    assert!(
        wait_until(PATIENCE, || rests(&two, CANARY) == expected),
        "the rest never reached the other process: {:?}",
        rests(&two, CANARY)
    );
    // The other process sends gpt-4o elsewhere, and other models to the canary key.
    let for_model = |m: &str| {
        two.get_key_for("openai", m)
            .map(|c| c.expose_key().to_owned())
    };
    assert_eq!(for_model("gpt-4o").as_deref(), Some("sk-b"));
    assert_eq!(for_model("gpt-4o-mini").as_deref(), Some(CANARY));

    // A shorter rest for the same model, as a racing process would publish it, does not
    // shorten the longer one; a later message (on another key) shows it was read.
    let fp = Fingerprint::of(CANARY).to_string();
    let short = START.saturating_add(Duration::from_secs(10)).as_millis();
    let message = format!("elsewhere\n{fp}\nm:{short}\nopenai\n\ngpt-4o");
    server
        .command(&["PUBLISH", "models:changes", &message])
        .unwrap();
    let b = Fingerprint::of("sk-b").to_string();
    let later = START.saturating_add(Duration::from_secs(100)).as_millis();
    let marker = format!("elsewhere\n{b}\nm:{later}\nopenai\n\ngpt-4o-mini");
    server
        .command(&["PUBLISH", "models:changes", &marker])
        .unwrap();
    assert!(wait_until(PATIENCE, || !rests(&two, "sk-b").is_empty()));
    assert_eq!(rests(&two, CANARY), expected);

    // What Redis holds names the fingerprint and the model, never the key.
    one.flush_store();
    let stored = server
        .command(&["HGETALL", "{models:openai}:models"])
        .unwrap();
    assert!(stored.contains(&format!("{fp}:gpt-4o")), "{stored}");
    assert!(!stored.contains(CANARY), "a key reached Redis");
}
