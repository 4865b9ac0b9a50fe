use std::time::Duration;

use ai_key_rotator::{Event, KeyRotator, RecvError, Subscription};

use crate::support::{START, clock, provider, rotator};

fn labels(ids: &[ai_key_rotator::CredentialId]) -> Vec<&str> {
    ids.iter().map(|c| c.label.as_deref().unwrap()).collect()
}

/// A compact description of an event, for comparing sequences.
fn describe(e: &Event) -> String {
    match e {
        Event::Exhausted {
            credential, until, ..
        } => format!(
            "exhausted {} +{}s",
            credential,
            until.saturating_duration_since(START).as_secs()
        ),
        Event::Rotated { from, to, .. } => format!(
            "rotated {} -> {}",
            from.as_ref().map_or("-".to_string(), |f| f.to_string()),
            to
        ),
        Event::AllExhausted { until, .. } => format!(
            "all-exhausted until +{}s",
            until.map_or(0, |u| u.saturating_duration_since(START).as_secs())
        ),
        Event::Reset { credentials, .. } => format!("reset {}", labels(credentials).join(",")),
        other => format!("{other:?}"),
    }
}

fn drain(s: &mut Subscription) -> Vec<String> {
    s.drain().iter().map(describe).collect()
}

#[test]
fn events_arrive_in_order_and_once() {
    let (r, clock) = rotator(&["a", "b"]);
    let mut s = r.subscribe();
    r.mark_exhausted("openai", None);
    assert_eq!(drain(&mut s), ["exhausted a +60s", "rotated a -> b"]);
    clock.advance(Duration::from_secs(30));
    r.mark_exhausted("openai", None);
    assert_eq!(
        drain(&mut s),
        ["exhausted b +90s", "all-exhausted until +60s"]
    );
    // Asking again while exhausted announces nothing new.
    assert!(r.get_key("openai").is_none());
    assert!(r.get_key("openai").is_none());
    assert_eq!(drain(&mut s), Vec::<String>::new());

    // a's cooldown ends: exactly one reset, on the first call that sees it.
    clock.advance(Duration::from_secs(30));
    assert_eq!(r.get_key("openai").unwrap().label(), Some("a"));
    r.get_key("openai");
    assert_eq!(r.reset_expired(), 0);
    assert_eq!(drain(&mut s), ["reset a", "rotated b -> a"]);

    // b's cooldown ends unobserved: the sweep (what the ticker runs) reports it, once.
    clock.advance(Duration::from_secs(30));
    assert_eq!(r.reset_expired(), 1);
    assert_eq!(r.reset_expired(), 0);
    r.get_key("openai");
    assert_eq!(drain(&mut s), ["reset b"]);
}

#[test]
fn all_exhausted_is_announced_every_time_the_provider_runs_out() {
    let (r, clock) = rotator(&["a", "b"]);
    let mut s = r.subscribe();
    let all_exhausted = |events: Vec<String>| {
        events
            .iter()
            .filter(|e| e.starts_with("all-exhausted"))
            .count()
    };
    r.mark_exhausted("openai", Some("a"));
    r.mark_exhausted("openai", Some("b"));
    assert_eq!(all_exhausted(drain(&mut s)), 1);
    // Both cooldowns end; `get_key` notices (no reset sweep, no ticker) and hands a key out.
    clock.advance(Duration::from_secs(61));
    assert!(r.get_key("openai").is_some());
    // The provider runs out again: announced again, as the original does.
    r.mark_exhausted("openai", Some("a"));
    r.mark_exhausted("openai", Some("b"));
    assert_eq!(all_exhausted(drain(&mut s)), 1);
    // And a third time, after a manual reset.
    r.reset_all(None);
    r.mark_exhausted("openai", Some("a"));
    r.mark_exhausted("openai", Some("b"));
    assert_eq!(all_exhausted(drain(&mut s)), 1);
}

#[test]
fn import_state_announces_what_it_changes() {
    let (r, _) = rotator(&["a", "b"]);
    let saved = r.export_state(); // everything available
    assert!(r.disable("openai", "a"));
    r.mark_exhausted("openai", Some("b"));
    let mut s = r.subscribe();
    r.import_state(&saved).unwrap();
    let events = s.drain();
    // The saved "available" re-enables `a`, with its event (so a store hears of it), and
    // keeps b's running cooldown.
    assert!(
        events.iter().any(|e| matches!(e,
            Event::Enabled { credential, .. } if credential.label.as_deref() == Some("a"))),
        "{events:?}"
    );
    assert_eq!(r.get_key("openai").unwrap().label(), Some("a"));
    assert!(
        !r.provider_status("openai").unwrap().credentials[1]
            .state
            .eq(&ai_key_rotator::CredentialState::Available)
    );
}

#[test]
fn reset_all_emits_one_event_with_every_key() {
    let (r, _) = rotator(&["a", "b", "c"]);
    r.mark_exhausted("openai", Some("a"));
    r.mark_exhausted("openai", Some("c"));
    let mut s = r.subscribe();
    assert_eq!(r.reset_all(None), 2);
    assert_eq!(drain(&mut s), ["reset a,c"]);
}

#[test]
fn a_cooldown_that_ended_before_a_new_mark_is_reset_first() {
    let (r, clock) = rotator(&["a", "b"]);
    r.mark_exhausted("openai", Some("b"));
    clock.advance(Duration::from_secs(61));
    let mut s = r.subscribe();
    r.mark_exhausted("openai", Some("b"));
    assert_eq!(drain(&mut s), ["reset b", "exhausted b +121s"]);
}

#[test]
fn a_slow_subscriber_never_blocks_and_learns_what_it_missed() {
    let clock = clock();
    let r = KeyRotator::builder()
        .provider("openai", provider(&["a"], Duration::from_secs(60)))
        .clock(clock.clone())
        .reset_interval(Duration::ZERO)
        .event_capacity(4)
        .build()
        .unwrap();
    let mut slow = r.subscribe();
    for _ in 0..100 {
        r.mark_exhausted("openai", None);
        r.reset_all(None);
    }
    assert_eq!(slow.try_recv(), Err(RecvError::Lagged(296)));
    assert_eq!(slow.drain().len(), 4);
    assert_eq!(slow.try_recv(), Err(RecvError::Empty));
}

#[test]
fn events_are_delivered_to_async_subscribers() {
    let (r, _) = rotator(&["a"]);
    let mut s = r.subscribe();
    r.mark_exhausted("openai", None);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let first = rt.block_on(s.recv()).unwrap();
    assert_eq!(describe(&first), "exhausted a +60s");
    drop(r);
}

#[test]
fn the_ticker_reports_cooldowns_that_ended_unobserved() {
    let clock = clock();
    let r = KeyRotator::builder()
        .provider("openai", provider(&["a", "b"], Duration::from_secs(60)))
        .clock(clock.clone())
        .reset_interval(Duration::from_millis(5))
        .build()
        .unwrap();
    r.mark_exhausted("openai", Some("b"));
    let mut s = r.subscribe();
    clock.advance(Duration::from_secs(60));
    // The ticker runs on its own thread with a real interval: wait for it, bounded only so
    // that a failure ends (a loaded machine can delay a thread, never by a minute).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let got = loop {
        match s.try_recv() {
            Ok(e) => break e,
            Err(RecvError::Empty) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => panic!("no reset from the ticker: {e}"),
        }
    };
    assert_eq!(describe(&got), "reset b");
    r.shutdown();
    r.shutdown(); // idempotent
}
