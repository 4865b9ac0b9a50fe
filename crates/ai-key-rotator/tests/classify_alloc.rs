//! The 2xx path of the classifier allocates nothing: a counting global allocator watches it.
//!
//! This lives in its own test binary because the allocator is process-wide.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use ai_key_rotator::Timestamp;
use ai_key_rotator::classify::{Family, Response, Verdict, classify, classify_stream_event};

thread_local! {
    // Per thread, so the test harness's own threads do not count.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_in(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn success_path_does_not_allocate() {
    let now = Timestamp::from_secs(1_786_795_200);
    let openai = [
        ("x-ratelimit-limit-requests", "10000"),
        ("x-ratelimit-limit-tokens", "30000"),
        ("x-ratelimit-remaining-requests", "9999"),
        ("x-ratelimit-remaining-tokens", "29000"),
        ("x-ratelimit-reset-requests", "8.64s"),
        ("x-ratelimit-reset-tokens", "6m0s"),
    ];
    let anthropic = [
        ("anthropic-ratelimit-requests-remaining", "49"),
        ("anthropic-ratelimit-requests-reset", "2026-08-15T12:00:30Z"),
        ("anthropic-ratelimit-tokens-remaining", "0"),
        ("anthropic-ratelimit-tokens-reset", "2026-08-15T12:00:59Z"),
    ];
    let body = br#"{"id":"chatcmpl-1","choices":[{"message":{"content":"hi"}}]}"#;
    // Warm up lazily initialised state (thread locals, the test harness).
    let _ = classify(Family::OpenAi, &Response::new(200, &openai, body), now);
    for family in Family::ALL {
        let n = allocations_in(|| {
            let v = classify(family, &Response::new(200, &openai, body), now);
            assert!(matches!(v, Verdict::Ok(_)));
            let v = classify(family, &Response::new(200, &anthropic, body), now);
            assert!(v.is_success());
        });
        assert_eq!(n, 0, "{family}: the 2xx path allocated");
    }
    // A normal stream event is skipped without parsing.
    let n = allocations_in(|| {
        let delta = br#"{"type":"content_block_delta","delta":{"type":"text_delta","text":"hi"}}"#;
        assert_eq!(
            classify_stream_event(Family::Anthropic, Some("content_block_delta"), delta, now),
            None
        );
    });
    assert_eq!(n, 0, "a normal stream event allocated");
}
