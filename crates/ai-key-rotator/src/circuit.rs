//! The provider circuit: when several keys of one provider fail within a short window for a
//! cause that is not about any key (a region block, transport errors, 5xx, overload), the
//! provider backs off as a whole instead of cooling or disabling its keys one by one.
//!
//! ```text
//! closed ──(threshold keys fail within window)──► open until T (backoff, doubling per reopen)
//!   ▲                                                 │ T passes
//!   │ success                                         ▼
//!   └──────────────────────────────────────── half-open: one probe request is let through
//!                                                     │ it fails again
//!                                                     └──► open, backoff doubled
//! ```
//!
//! This module holds the configuration and the state the hot path reads (one word); the
//! decisions are applied by `rotator/transition.rs`, like every other state change.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;

/// When a provider's circuit opens and how it backs off. Part of
/// [`ProviderConfig`](crate::ProviderConfig) (`circuit = { ... }` in TOML).
///
/// ```
/// use ai_key_rotator::{CircuitConfig, ProviderConfig};
///
/// let config = ProviderConfig::new()
///     .credential("sk-a")
///     .circuit(CircuitConfig { threshold: 2, ..CircuitConfig::default() });
/// # let _ = config;
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CircuitConfig {
    /// Whether the circuit is used at all (default `true`).
    pub enabled: bool,
    /// How many different keys must fail with the same cause within the window (default 3;
    /// a provider with fewer keys needs all of them, and as many failures). At least two keys
    /// always: a provider with one key never opens its circuit.
    pub threshold: u32,
    /// The window, in milliseconds (default 10 000).
    pub window_ms: u64,
    /// How long the circuit stays open the first time, in milliseconds (default 1 000); each
    /// reopen after a failed probe doubles it.
    pub backoff_ms: u64,
    /// The longest the circuit stays open, in milliseconds (default 300 000).
    pub max_backoff_ms: u64,
    /// How long the half-open probe may take before another request may probe, in
    /// milliseconds (default 30 000): a probe whose caller never reports does not keep the
    /// provider closed to everyone.
    pub probe_timeout_ms: u64,
    /// Whether a 429 on every key within `rate_limit_window_ms` opens the circuit (cause
    /// `rate-limited`) instead of cooling every key (default `false`). A 429 on some of the
    /// keys cools those keys as always; only when no key that could be asked is left (at
    /// least two keys answered 429, the others were cooling or disabled already) is the limit
    /// taken for the provider's: the circuit opens until the later of its backoff and the
    /// earliest reset the 429s named, and the cooldowns those 429s started end.
    pub rate_limits: bool,
    /// The window for `rate_limits`, in milliseconds (default 1 000).
    pub rate_limit_window_ms: u64,
}

impl Default for CircuitConfig {
    fn default() -> Self {
        CircuitConfig {
            enabled: true,
            threshold: 3,
            window_ms: 10_000,
            backoff_ms: 1_000,
            max_backoff_ms: 300_000,
            probe_timeout_ms: 30_000,
            rate_limits: false,
            rate_limit_window_ms: 1_000,
        }
    }
}

impl CircuitConfig {
    pub(crate) fn validate(&self) -> Result<(), &'static str> {
        if self.threshold == 0 {
            return Err("`threshold` must be at least 1");
        }
        if self.window_ms == 0 || self.backoff_ms == 0 || self.probe_timeout_ms == 0 {
            return Err("`window_ms`, `backoff_ms` and `probe_timeout_ms` must be more than 0");
        }
        if self.rate_limit_window_ms == 0 {
            return Err("`rate_limit_window_ms` must be more than 0");
        }
        if self.max_backoff_ms < self.backoff_ms {
            return Err("`max_backoff_ms` must be at least `backoff_ms`");
        }
        Ok(())
    }

    /// How long the circuit opens the `opens`-th time in a row (1-based).
    pub(crate) fn backoff(&self, opens: u32) -> Duration {
        let factor = 1u64 << opens.saturating_sub(1).min(32);
        Duration::from_millis(
            self.backoff_ms
                .saturating_mul(factor)
                .min(self.max_backoff_ms),
        )
    }
}

/// A failure that is not about the key: any key of the provider would have fared the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ProviderCause {
    /// The provider refuses requests from this country, region or address.
    RegionBlocked,
    /// The provider is overloaded (503, 529).
    Overloaded,
    /// The provider failed (500, 502, 504).
    ServerError,
    /// The provider could not be reached, or did not answer in time.
    Transport,
    /// Every key answered 429 within a moment (see [`CircuitConfig::rate_limits`]): the limit
    /// is the provider's (or the caller's address's), not any key's.
    RateLimited,
}

impl ProviderCause {
    /// A short description.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderCause::RegionBlocked => "region blocked",
            ProviderCause::Overloaded => "provider overloaded",
            ProviderCause::ServerError => "provider server error",
            ProviderCause::Transport => "provider unreachable",
            ProviderCause::RateLimited => "provider rate limited",
        }
    }
}

/// The word's flag for "a half-open probe is out"; the rest of the word is then the time the
/// probe may be replaced.
const PROBE: u64 = 1 << 63;

/// What the circuit word says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CircuitState {
    Closed,
    /// Open until this time; then the next request probes.
    Open(Timestamp),
    /// A probe is out; another may go at this time if it has not reported.
    Probing(Timestamp),
}

/// One provider's circuit: the word the hot path reads, and the failure window slow paths
/// keep.
#[derive(Default)]
pub(crate) struct Circuit {
    /// 0 = closed; otherwise a time in milliseconds, with [`PROBE`] when a probe is out.
    word: AtomicU64,
    /// Whether the failure window holds anything, so that a success (every request's report)
    /// takes the lock only when there is a window to clear.
    pub(crate) has_failures: std::sync::atomic::AtomicBool,
    pub(crate) detail: Mutex<CircuitDetail>,
}

/// What only failure paths read and write.
#[derive(Debug, Default)]
pub(crate) struct CircuitDetail {
    /// Recent provider-side failures: (key fingerprint, when, cause), oldest first.
    pub(crate) window: VecDeque<(u64, Timestamp, ProviderCause)>,
    /// How many times in a row it opened (reset when it closes); the backoff doubles with it.
    pub(crate) opens: u32,
    /// Why it is open.
    pub(crate) cause: Option<ProviderCause>,
    /// Recent 429s, one per key (its latest), oldest first, when the circuit counts them.
    pub(crate) rate_window: VecDeque<RateLimitEntry>,
}

/// A 429 that cooled a key, kept for `CircuitConfig::rate_limits`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RateLimitEntry {
    pub(crate) fingerprint: u64,
    pub(crate) at: Timestamp,
    /// The end of the cooldown it put on the key.
    pub(crate) applied: Timestamp,
    /// When the provider said the limit lifts, if it did.
    pub(crate) reset: Option<Timestamp>,
}

impl Circuit {
    /// Whether the circuit is closed: the one check on the hot path.
    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        self.word.load(Ordering::Acquire) == 0
    }

    pub(crate) fn state(&self) -> CircuitState {
        match self.word.load(Ordering::Acquire) {
            0 => CircuitState::Closed,
            w if w & PROBE != 0 => CircuitState::Probing(Timestamp::from_millis(w & !PROBE)),
            w => CircuitState::Open(Timestamp::from_millis(w)),
        }
    }

    /// The one way to change the word (see `Slot::update`): `decide` maps the current state
    /// to the next, or `None` to leave it. Returns the old state when it changed.
    pub(crate) fn update(
        &self,
        mut decide: impl FnMut(CircuitState) -> Option<CircuitState>,
    ) -> Option<CircuitState> {
        let encode = |s: CircuitState| match s {
            CircuitState::Closed => 0,
            CircuitState::Open(t) => t.as_millis().clamp(1, PROBE - 1),
            CircuitState::Probing(t) => t.as_millis().clamp(1, PROBE - 1) | PROBE,
        };
        let decode = |w: u64| match w {
            0 => CircuitState::Closed,
            w if w & PROBE != 0 => CircuitState::Probing(Timestamp::from_millis(w & !PROBE)),
            w => CircuitState::Open(Timestamp::from_millis(w)),
        };
        self.word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                decide(decode(w)).map(encode)
            })
            .ok()
            .map(decode)
    }

    pub(crate) fn detail(&self) -> std::sync::MutexGuard<'_, CircuitDetail> {
        self.detail.lock().unwrap_or_else(|e| e.into_inner())
    }
}
