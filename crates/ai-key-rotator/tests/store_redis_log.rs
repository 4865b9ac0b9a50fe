//! A failing store warns once per change of its health, with the cause and a count, not once
//! per write. Its own test binary: it installs a process-wide log collector, which the store's
//! threads log to.
#![cfg(feature = "redis")]

mod store_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ai_key_rotator::{RedisStore, StoreFault, StoreHealth};
use store_support::redis_server::RedisServer;
use store_support::*;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// Keeps every warning as its message and fields, in one line each.
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<String>>>);

struct Line<'a>(&'a mut String);

impl Visit for Line<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{}={:?} ", field.name(), value));
    }
}

impl Subscriber for Warnings {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        if *event.metadata().level() == Level::WARN {
            let mut line = String::new();
            event.record(&mut Line(&mut line));
            self.0.lock().unwrap().push(line);
        }
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn a_store_failing_on_every_write_warns_once_with_the_cause() {
    let warnings = Warnings::default();
    tracing::subscriber::set_global_default(warnings.clone()).unwrap();
    let Some(primary) = RedisServer::start() else {
        return;
    };
    let Some(replica) = RedisServer::start_replica_of(&primary) else {
        return;
    };
    let clock = clock();
    let store = RedisStore::builder(replica.url())
        .prefix("log")
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let r = builder(&["sk-a", "sk-b", "sk-c"], &clock)
        .store(store)
        .build()
        .unwrap();
    for _ in 0..20 {
        clock.advance(Duration::from_secs(1));
        r.mark_exhausted("openai", Some("sk-a"));
        r.mark_exhausted("openai", Some("sk-b"));
    }
    // Many failed writes...
    assert!(
        wait_until(PATIENCE, || matches!(
            r.store_health(),
            StoreHealth::Failing { fault: StoreFault::ReadOnly, count } if count >= 5
        )),
        "{:?}",
        r.store_health()
    );
    // ...and one warning, naming the cause.
    let lines = warnings.0.lock().unwrap().clone();
    let failing: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("store failing"))
        .collect();
    assert_eq!(failing.len(), 1, "{lines:#?}");
    assert!(failing[0].contains("read-only"), "{}", failing[0]);
}
