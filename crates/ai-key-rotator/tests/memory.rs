//! Memory per credential, measured with a counting allocator: at most 256 bytes beyond the key
//! and label strings.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use ai_key_rotator::{CredentialConfig, KeyRotator, ProviderConfig};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged and only counts bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

#[test]
fn at_most_256_bytes_per_credential_beyond_key_and_label() {
    const N: usize = 100_000;
    let keys: Vec<String> = (0..N).map(|i| format!("sk-proj-{i:040}")).collect();
    let labels: Vec<String> = (0..N).map(|i| format!("key-{i}")).collect();
    let strings: usize =
        keys.iter().map(String::len).sum::<usize>() + labels.iter().map(String::len).sum::<usize>();

    let configs: Vec<CredentialConfig> = keys
        .iter()
        .zip(&labels)
        .map(|(k, l)| CredentialConfig::new(k.clone()).label(l.clone()))
        .collect();
    let provider = ProviderConfig {
        credentials: configs,
        ..ProviderConfig::new()
    };
    // The configuration's own copies of keys and labels become the rotator's, so measure from
    // before they were made.
    let before = LIVE.load(Ordering::Relaxed);
    let rotator = KeyRotator::builder()
        .provider("openai", provider)
        .reset_interval(Duration::ZERO)
        .build()
        .unwrap();
    for _ in 0..N {
        rotator.get_key("openai");
    }
    let fresh = (LIVE.load(Ordering::Relaxed) - before) as f64 / N as f64;
    println!("{N} fresh credentials: {fresh:.1} bytes each beyond keys and labels");
    assert!(fresh <= 256.0, "{fresh:.1} bytes per fresh credential");
    // Every credential cooling with a recorded reason, each use counter touched on this
    // thread, as in a busy process.
    for i in 0..N {
        rotator.mark_exhausted("openai", None);
        if i % 1000 == 0 {
            rotator.get_key("openai");
        }
    }
    rotator.reset_all(None);
    let after = LIVE.load(Ordering::Relaxed);
    drop(rotator);

    // `before` still counted the configs' strings, which now belong to the rotator: the delta
    // is the rotator's own overhead. Add them back to state the total the rotator holds.
    let overhead = (after - before) as usize;
    let per_credential = overhead as f64 / N as f64;
    println!(
        "{N} credentials: {} bytes held beyond {strings} bytes of keys and labels: {per_credential:.1} bytes each",
        overhead
    );
    assert!(
        per_credential <= 256.0,
        "{per_credential:.1} bytes per credential"
    );
}
