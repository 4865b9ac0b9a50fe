//! The atomic JSON file store: round trip, corrupt files, secrets, and a writer killed at
//! random points.
#![cfg(feature = "file")]

mod store_support;

use std::io::Write;
use std::time::{Duration, Instant};

use ai_key_rotator::{CredentialState, FileStore, KeyRotator, StoreError};
use store_support::*;

fn status_of(r: &KeyRotator, label: &str) -> (CredentialState, u64) {
    let status = r.provider_status("openai").unwrap();
    let c = status
        .credentials
        .iter()
        .find(|c| c.id.label.as_deref() == Some(label))
        .unwrap();
    (c.state, c.times_exhausted)
}

#[test]
fn round_trip_restores_cooldowns_counters_and_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let clock = clock();
    let first = builder(&["sk-a", "sk-b", "sk-c"], &clock)
        .store(FileStore::open(&path).unwrap())
        .build()
        .unwrap();
    assert!(first.store_error().is_none());
    first.mark_exhausted("openai", Some("sk-a"));
    first.flush_store();
    let written = std::fs::read_to_string(&path).unwrap();
    assert!(written.contains("\"version\":1"), "{written}");
    drop(first);

    let second = builder(&["sk-a", "sk-b", "sk-c"], &clock)
        .store(FileStore::open(&path).unwrap())
        .build()
        .unwrap();
    assert!(second.store_error().is_none());
    assert_eq!(key(&second).as_deref(), Some("sk-b"));
    let until = START.saturating_add(Duration::from_secs(60));
    assert_eq!(
        status_of(&second, "label-a"),
        (CredentialState::Cooling { until }, 1)
    );
    // A reset is written through too.
    second.reset_all(None);
    second.flush_store();
    drop(second);
    let third = builder(&["sk-a", "sk-b", "sk-c"], &clock)
        .store(FileStore::open(&path).unwrap())
        .build()
        .unwrap();
    assert_eq!(status_of(&third, "label-a").0, CredentialState::Available);
}

#[cfg(unix)]
#[test]
fn file_mode_is_0600_and_holds_no_key() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let clock = clock();
    let r = builder(&[CANARY, "sk-other"], &clock)
        .store(FileStore::open(&path).unwrap())
        .build()
        .unwrap();
    r.mark_exhausted("openai", Some(CANARY));
    r.shutdown();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let bytes = std::fs::read(&path).unwrap();
    assert!(!contains(&bytes, CANARY), "the key reached the state file");
    assert!(contains(
        &bytes,
        &ai_key_rotator::Fingerprint::of(CANARY).to_string()
    ));
}

fn check_moved_aside(content: &[u8], expect: impl Fn(&StoreError) -> bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    std::fs::write(&path, content).unwrap();
    let clock = clock();
    let r = builder(&["sk-a", "sk-b"], &clock)
        .store(FileStore::open(&path).unwrap())
        .build()
        .expect("a corrupt file does not fail the build");
    let error = r.store_error().expect("the corruption is reported");
    assert!(expect(error), "{error}");
    let StoreError::Corrupt {
        moved_to: Some(moved),
        ..
    } = error
    else {
        panic!("not moved aside: {error:?}")
    };
    // Moved, not deleted or overwritten; the message names where it went.
    assert_eq!(std::fs::read(moved).unwrap(), content);
    assert!(error.to_string().contains(&moved.display().to_string()));
    assert!(!path.exists());
    // The rotator starts fresh and writes a new file.
    assert_eq!(key(&r).as_deref(), Some("sk-a"));
    r.mark_exhausted("openai", None);
    r.flush_store();
    assert!(
        r.import_state(&std::fs::read_to_string(&path).unwrap())
            .is_ok()
    );
    assert_eq!(std::fs::read(moved).unwrap(), content);
}

#[test]
fn corrupt_file_is_reported_moved_aside_and_the_rotator_starts_fresh() {
    check_moved_aside(b"{\"version\":1,\"providers\":{\"openai\":", |e| {
        e.to_string().contains("truncated")
    });
    check_moved_aside(b"\xff\xfe not text", |e| e.to_string().contains("UTF-8"));
    check_moved_aside(b"{\"hello\":\"world\"}", |e| {
        e.to_string().contains("not rotator state")
    });
    check_moved_aside(b"{\"version\":99,\"providers\":{}}", |e| {
        e.to_string().contains("version 99")
    });
}

#[test]
fn two_corrupt_files_in_a_row_are_both_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let clock = clock();
    for content in ["garbage one", "garbage two"] {
        std::fs::write(&path, content).unwrap();
        let r = builder(&["sk-a"], &clock)
            .store(FileStore::open(&path).unwrap())
            .build()
            .unwrap();
        assert!(r.store_error().is_some());
    }
    let kept: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert!(kept.contains(&"garbage one".to_owned()));
    assert!(kept.contains(&"garbage two".to_owned()));
}

const KEYS: usize = 200;

fn many_keys() -> Vec<String> {
    (0..KEYS).map(|i| format!("sk-kill-{i:04}")).collect()
}

/// The child of `kill_during_write_leaves_old_or_new_state`: loads the file, then marks and
/// writes in a loop until it is killed.
#[test]
fn kill_child_writer() {
    if !child_role("file-writer") {
        return;
    }
    let path = std::env::var("AKR_STATE_PATH").unwrap();
    let keys = many_keys();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let clock = clock();
    let r = builder(&refs, &clock)
        .store(FileStore::open(&path).unwrap())
        .build()
        .unwrap();
    assert!(r.store_error().is_none(), "{:?}", r.store_error());
    println!("ready");
    std::io::stdout().flush().unwrap();
    let mut i = 0usize;
    loop {
        clock.advance(Duration::from_millis(1));
        r.mark_exhausted("openai", Some(&keys[i % KEYS]));
        r.flush_store();
        i += 1;
    }
}

/// Times exhausted of every credential in the file, summed: it only grows.
fn total_exhausted(path: &std::path::Path) -> u64 {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return 0,
        Err(e) => panic!("{e}"),
    };
    // The rotator's own reader accepts it (version, structure), and every key is in it.
    KeyRotator::builder()
        .provider(
            "openai",
            ai_key_rotator::ProviderConfig::new().credential("sk-probe"),
        )
        .reset_interval(std::time::Duration::ZERO)
        .build()
        .unwrap()
        .import_state(&text)
        .unwrap_or_else(|e| panic!("state file unreadable after a kill: {e}"));
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let credentials = value["providers"]["openai"]["credentials"]
        .as_object()
        .unwrap();
    assert_eq!(credentials.len(), KEYS);
    credentials
        .values()
        .map(|c| c["times_exhausted"].as_u64().unwrap())
        .sum()
}

#[cfg(unix)]
#[test]
fn kill_during_write_leaves_old_or_new_state() {
    use std::io::BufRead;
    if std::env::var("AKR_TEST_CHILD").is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let mut seed: u64 = Instant::now().elapsed().as_nanos() as u64 ^ 0x9e37_79b9_7f4a_7c15;
    let mut last = 0;
    for round in 0..100 {
        let mut child = spawn_self(
            "kill_child_writer",
            "file-writer",
            &[("AKR_STATE_PATH", path.display().to_string())],
        );
        // Wait until it loaded the file, then let it write for a random while.
        let mut line = String::new();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        while !line.trim_end().ends_with("ready") {
            line.clear();
            assert!(
                out.read_line(&mut line).unwrap() > 0,
                "child died in round {round}"
            );
        }
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        std::thread::sleep(Duration::from_micros((seed >> 33) % 20_000));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let total = total_exhausted(&path);
        assert!(
            total >= last,
            "round {round}: went back from {last} to {total}"
        );
        last = total;
    }
    assert!(last > 0, "the child never wrote");
    // No temporary file survives the next open.
    drop(FileStore::open(&path).unwrap());
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["state.json".to_owned()]);
}
