//! Per-credential use counters that threads increment without sharing a cache line.
//!
//! `get_key` counts every hand-out. One shared atomic per credential would be written by every
//! thread that gets the same key (and with the sticky "fill-first" order they all do), so the
//! cache line would bounce between cores on every call and two threads would be slower than
//! one. Instead each thread counts into its own array, and a total is the sum over threads,
//! computed only when someone asks (status, save).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use thread_local::ThreadLocal;

/// Counters per chunk; a chunk is allocated the first time a thread counts one of its indices.
const CHUNK: usize = 1024;
/// Chunks per thread: room for 1 Mi credential indices over the rotator's life. Beyond that a
/// credential counts into its shared `uses_base` (correct, just not contention-free).
const CHUNKS: usize = 1024;

pub(crate) struct UsageCounters {
    shards: ThreadLocal<Shard>,
    next_index: AtomicU32,
}

struct Shard {
    chunks: Box<[OnceLock<Box<[AtomicU64]>>]>,
}

impl Shard {
    fn new() -> Self {
        Shard {
            chunks: (0..CHUNKS).map(|_| OnceLock::new()).collect(),
        }
    }

    fn chunk(&self, i: usize) -> &[AtomicU64] {
        self.chunks[i].get_or_init(|| (0..CHUNK).map(|_| AtomicU64::new(0)).collect())
    }
}

impl UsageCounters {
    pub(crate) fn new() -> Self {
        UsageCounters {
            shards: ThreadLocal::new(),
            next_index: AtomicU32::new(0),
        }
    }

    /// A fresh index for a new credential, or `None` when all are taken. Indices are never
    /// reused, so a removed credential's late increments can't land on a new one.
    pub(crate) fn allocate(&self) -> Option<u32> {
        let i = self.next_index.fetch_add(1, Ordering::Relaxed);
        ((i as usize) < CHUNK * CHUNKS).then_some(i)
    }

    /// Counts one use of `index`; returns false if the index has no per-thread counter.
    #[inline]
    pub(crate) fn add(&self, index: u32) -> bool {
        let i = index as usize;
        if i >= CHUNK * CHUNKS {
            return false;
        }
        let counter = &self.shards.get_or(Shard::new).chunk(i / CHUNK)[i % CHUNK];
        // Only this thread writes this counter, so a load and a store are enough: no
        // read-modify-write instruction is needed, and readers on other threads see a whole
        // value either way.
        counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        true
    }

    /// The total over all threads for `index`.
    pub(crate) fn total(&self, index: u32) -> u64 {
        let i = index as usize;
        if i >= CHUNK * CHUNKS {
            return 0;
        }
        self.shards
            .iter()
            .filter_map(|s| s.chunks[i / CHUNK].get())
            .map(|c| c[i % CHUNK].load(Ordering::Relaxed))
            .sum()
    }
}
