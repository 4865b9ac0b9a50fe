//! Selection strategies: which available credential a provider hands out next.

use serde::{Deserialize, Serialize};

/// How a provider chooses among its available credentials.
///
/// | strategy | picks | cost per pick (n keys) |
/// |---|---|---|
/// | `fill-first` (default) | the same key until it is unavailable, then the next in order (the original's behaviour) | O(1); plus one step per unavailable key passed when it moves on |
/// | `round-robin` | each key in turn, exactly | O(1) plus one step per unavailable or over-budget key skipped |
/// | `weighted` | keys in proportion to their `weight` (exact over each cycle) | O(log n) (a binary search over the running sums of weights) plus one step per key skipped |
/// | `least-recently-used` | the key handed out longest ago | O(n): one scan (it stops early only while some key was never used) |
/// | `least-in-flight` | the key with the fewest leases out | O(n): one scan, which stops at the first idle key |
/// | `most-remaining` | the key whose provider last reported the most remaining quota | O(n): one scan, which stops at the first key whose quota was never reported |
///
/// Independently of the strategy, an acquire with a session id keeps that session on one key
/// while it is available (rendezvous hashing: when keys come or go, only the sessions of those
/// keys move), because prompt caches are per key or organization. That costs one hash of the
/// session id and one multiply per key: O(n). An acquire with the hash of its prompt prefix
/// ([`AcquireOptions::affinity`](crate::AcquireOptions::affinity), prompt-cache affinity) is
/// placed the same way, by the hash the caller brings; a session id takes precedence over it.
///
/// No pick allocates, and a pick reads the clock only when it meets a cooling key or a budget.
/// A scanning pick whose best key is refused by its budget scans again for the next best, up
/// to 8 scans, then tries the remaining keys once each in configuration order, so even a pick
/// that finds every key over its budget stays O(n). When every key is cooling, a fill-first
/// provider without budgets answers from a cached "exhausted until" in O(1); any other provider
/// looks at each key once, O(n).
///
/// Figures at 10 and 1 000 keys are in the repository's `BENCHMARKS.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Strategy {
    /// Sticky: the same key until it is unavailable.
    #[default]
    FillFirst,
    /// Each available key in turn.
    RoundRobin,
    /// The key used longest ago.
    LeastRecentlyUsed,
    /// In proportion to each credential's `weight`.
    Weighted,
    /// The key with the fewest requests in flight (counted by leases).
    LeastInFlight,
    /// The key with the most remaining quota, as the provider last reported it.
    MostRemaining,
}
