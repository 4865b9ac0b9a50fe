//! Selection strategies: which available credential a provider hands out next.

use serde::{Deserialize, Serialize};

/// How a provider chooses among its available credentials.
///
/// | strategy | picks | cost per pick |
/// |---|---|---|
/// | `fill-first` (default) | the same key until it is unavailable, then the next in order (the original's behaviour) | O(1) |
/// | `round-robin` | each key in turn, exactly | O(1) plus skipped keys |
/// | `least-recently-used` | the key handed out longest ago | O(n) |
/// | `weighted` | keys in proportion to their `weight` (exact over each cycle) | O(log n) |
/// | `least-in-flight` | the key with the fewest leases out | O(n) |
/// | `most-remaining` | the key whose provider last reported the most remaining quota | O(n) |
///
/// Independently of the strategy, an acquire with a session id keeps that session on one key
/// while it is available (rendezvous hashing: when keys come or go, only the sessions of those
/// keys move), because prompt caches are per key or organization.
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
