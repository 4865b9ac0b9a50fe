//! Many threads calling get/mark/add/remove/reset at once, with invariants checked throughout.
//!
//! To check "never a key that is cooling at that instant" exactly, the test orders the events
//! that can make a key available again (resets, removals and re-additions, the clock moving)
//! around each `get_key` with a read-write lock: readers hold it shared across their checks,
//! those writers hold it exclusively. Everything else (marks, other readers, the ticker) runs
//! freely, and marks race with every `get_key`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use ai_key_rotator::{CredentialConfig, CredentialState, KeyRotator};

use crate::support::{clock, provider};

#[test]
fn get_mark_add_remove_reset_from_many_threads() {
    let keys: Vec<String> = (0..16).map(|i| format!("sk-conc-{i:02}")).collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let clock = clock();
    let r = KeyRotator::builder()
        .provider("p", provider(&refs, Duration::from_secs(60)))
        .clock(clock.clone())
        .reset_interval(Duration::from_millis(1))
        .build()
        .unwrap();
    // The keys removed and not re-added; the lock orders availability-raising changes.
    let removed = Arc::new(RwLock::new(HashSet::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    // Each thread's iterations so far: the test runs until every thread has done enough,
    // however the threads are scheduled, rather than for a fixed wall time.
    let progress: Arc<Vec<AtomicU64>> = Arc::new((0..6).map(|_| AtomicU64::new(0)).collect());
    let mut threads = Vec::new();

    for t in 0..3 {
        let (r, removed, stop, progress) =
            (r.clone(), removed.clone(), stop.clone(), progress.clone());
        threads.push(std::thread::spawn(move || {
            let mut handed = 0u64;
            while !stop.load(Ordering::Relaxed) {
                progress[t].fetch_add(1, Ordering::Relaxed);
                let removed = removed.read().unwrap();
                let cooling = cooling_keys(&r);
                if let Some(c) = r.get_key("p") {
                    handed += 1;
                    let k = c.expose_key();
                    assert!(!removed.contains(k), "handed out removed key {k}");
                    // Nothing could have ended its cooldown since `cooling` was read.
                    assert!(
                        !cooling.contains(&c.fingerprint().to_string()),
                        "handed out key {k} while it was cooling"
                    );
                }
            }
            handed
        }));
    }
    for t in 3..5 {
        let (r, stop, progress) = (r.clone(), stop.clone(), progress.clone());
        threads.push(std::thread::spawn(move || {
            let mut marks = 0u64;
            while !stop.load(Ordering::Relaxed) {
                progress[t].fetch_add(1, Ordering::Relaxed);
                if let Some(c) = r.get_key("p") {
                    r.mark_credential_exhausted(&c);
                    marks += 1;
                }
                r.mark_exhausted("p", None);
            }
            marks
        }));
    }
    {
        let (r, removed, stop, keys, clock, progress) = (
            r.clone(),
            removed.clone(),
            stop.clone(),
            keys.clone(),
            clock.clone(),
            progress.clone(),
        );
        threads.push(std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                progress[5].fetch_add(1, Ordering::Relaxed);
                let k = &keys[i as usize % keys.len()];
                let mut removed = removed.write().unwrap();
                if removed.contains(k) {
                    r.add_credential("p", CredentialConfig::new(k.clone()))
                        .unwrap();
                    removed.remove(k);
                } else if r.remove_credential("p", k) {
                    removed.insert(k.clone());
                }
                match i % 10 {
                    0 => {
                        r.reset_all(Some("p"));
                    }
                    5 => clock.advance(Duration::from_secs(20)),
                    _ => {}
                }
                drop(removed);
                i += 1;
                std::thread::yield_now();
            }
            i
        }));
    }

    // The bound only turns a hang into a failure; it is far above what a loaded machine needs.
    let deadline = Instant::now() + Duration::from_secs(120);
    while progress.iter().any(|p| p.load(Ordering::Relaxed) < 300) {
        assert!(
            Instant::now() < deadline,
            "a thread is stuck: {:?}",
            progress
                .iter()
                .map(|p| p.load(Ordering::Relaxed))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(20));
        let s = r.provider_status("p").unwrap();
        assert_eq!(s.total, s.credentials.len());
        assert!(s.available <= s.total);
    }
    stop.store(true, Ordering::Relaxed);
    // Every thread did at least 300 iterations (the loop above). How many of them were handed
    // a key or marked one depends on scheduling (the markers may keep every key cooling), so
    // it is not asserted; a panic in any thread (a removed or cooling key handed out) is.
    for t in threads {
        t.join().unwrap();
    }

    // Afterwards every key that was not removed is there exactly once, and a reset brings
    // them all back.
    let removed = removed.read().unwrap().clone();
    let s = r.provider_status("p").unwrap();
    assert_eq!(s.total, keys.len() - removed.len());
    let fingerprints: HashSet<_> = s.credentials.iter().map(|c| c.id.fingerprint).collect();
    assert_eq!(fingerprints.len(), s.total);
    r.reset_all(None);
    assert_eq!(r.provider_status("p").unwrap().available, s.total);
    r.shutdown();
}

fn cooling_keys(r: &KeyRotator) -> HashSet<String> {
    r.provider_status("p")
        .unwrap()
        .credentials
        .iter()
        .filter(|c| matches!(c.state, CredentialState::Cooling { .. }))
        .map(|c| c.id.fingerprint.to_string())
        .collect()
}
