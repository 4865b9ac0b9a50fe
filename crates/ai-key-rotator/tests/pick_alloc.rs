//! No selection strategy allocates per pick: a counting global allocator watches `get_key`,
//! `acquire` and session acquires at 1 000 keys, for every strategy, with every key available,
//! with most keys cooling, and with keys refused by their budgets.
//!
//! This lives in its own test binary because the allocator is process-wide; the count is per
//! thread, so the test harness's other threads do not disturb it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use ai_key_rotator::{
    AcquireOptions, Budget, Cooldown, CredentialConfig, FakeClock, KeyRotator, ProviderConfig,
    Strategy,
};

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

struct Counting;

// SAFETY: forwards every call to the system allocator unchanged and only counts calls.
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

const KEYS: usize = 1_000;
const PICKS: usize = 3_000;

const STRATEGIES: [Strategy; 6] = [
    Strategy::FillFirst,
    Strategy::RoundRobin,
    Strategy::LeastRecentlyUsed,
    Strategy::Weighted,
    Strategy::LeastInFlight,
    Strategy::MostRemaining,
];

fn rotator(strategy: Strategy, budget: Option<Budget>) -> (KeyRotator, Vec<String>) {
    let keys: Vec<String> = (0..KEYS).map(|i| format!("sk-proj-{i:040}")).collect();
    let mut provider = keys.iter().enumerate().fold(
        ProviderConfig::new()
            .strategy(strategy)
            .cooldown(Cooldown::fixed(Duration::from_secs(3600))),
        |p, (i, k)| p.credential(CredentialConfig::new(k.clone()).weight(1 + (i % 3) as u32)),
    );
    if let Some(budget) = budget {
        provider = provider.budget(budget);
    }
    let r = KeyRotator::builder()
        .provider("openai", provider)
        // A fake clock: cooling keys stay cooling, budgets refill only when the test says so.
        .clock(FakeClock::new(ai_key_rotator::Timestamp::from_secs(
            1_786_795_200,
        )))
        .reset_interval(Duration::ZERO)
        .build()
        .unwrap();
    (r, keys)
}

/// Allocations made by `picks` calls of `f` on this thread, after the same calls once to
/// initialise what is set up lazily per thread (arc-swap's debt list, the per-thread use
/// counters).
fn allocations_per_pick(mut f: impl FnMut(usize) -> bool) -> (usize, usize) {
    for k in 0..16 {
        f(k);
    }
    let before = ALLOCATIONS.with(Cell::get);
    let granted = (0..PICKS).filter(|&k| f(k)).count();
    (ALLOCATIONS.with(Cell::get) - before, granted)
}

/// Every way of picking, checked on `r`: returns how many picks of each kind were granted.
fn check(r: &KeyRotator, what: &str) -> [usize; 3] {
    let sessions: Vec<AcquireOptions> = (0..64)
        .map(|i| AcquireOptions::default().session(format!("conversation-{i}")))
        .collect();
    let (a, get) = allocations_per_pick(|_| r.get_key("openai").is_some());
    assert_eq!(a, 0, "{what}: get_key allocated {a} times in {PICKS} picks");
    let (a, lease) = allocations_per_pick(|_| r.acquire("openai").is_ok());
    assert_eq!(a, 0, "{what}: acquire allocated {a} times in {PICKS} picks");
    let (a, session) =
        allocations_per_pick(|k| r.acquire_with("openai", &sessions[k % 64]).is_ok());
    assert_eq!(a, 0, "{what}: session acquire allocated {a} times");
    // Prompt-cache affinity: a pick by a prefix hash, like a session's, allocates nothing.
    let (a, _) = allocations_per_pick(|k| {
        let hash = (k as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        r.acquire_with("openai", &AcquireOptions::default().affinity(hash))
            .is_ok()
    });
    assert_eq!(a, 0, "{what}: affinity acquire allocated {a} times");
    [get, lease, session]
}

#[test]
fn no_strategy_allocates_per_pick_at_1000_keys() {
    for strategy in STRATEGIES {
        let (r, _) = rotator(strategy, None);
        let granted = check(&r, &format!("{strategy:?}, all available"));
        assert_eq!(granted, [PICKS; 3], "{strategy:?}");
    }
}

#[test]
fn no_strategy_allocates_per_pick_with_most_keys_cooling() {
    for strategy in STRATEGIES {
        let (r, keys) = rotator(strategy, None);
        // Three keys in four cooling, spread over the pool, so walks skip and scans filter.
        for k in keys.iter().enumerate().filter(|(i, _)| i % 4 != 3) {
            assert!(r.mark_exhausted("openai", Some(k.1)));
        }
        let granted = check(&r, &format!("{strategy:?}, 3/4 cooling"));
        assert_eq!(granted, [PICKS; 3], "{strategy:?}");
    }
}

#[test]
fn no_strategy_allocates_per_pick_when_budgets_refuse() {
    for strategy in STRATEGIES {
        // Two requests a minute per key and a frozen clock: the first 2 000 picks drain the
        // budgets (scanning strategies find their best keys refused more and more often), the
        // rest find every key over budget, the most expensive refusal.
        let budget = Budget {
            requests_per_minute: Some(2),
            ..Budget::default()
        };
        let (r, _) = rotator(strategy, Some(budget));
        let what = format!("{strategy:?}, budgets");
        let (a, granted) = allocations_per_pick(|_| r.get_key("openai").is_some());
        assert_eq!(a, 0, "{what}: get_key allocated {a} times in {PICKS} picks");
        assert_eq!(granted, 2 * KEYS - 16, "{what}");
    }
}
