//! One credential's state.
//!
//! What `get_key` reads on every call, whether the credential may be handed out, is one atomic
//! word; everything else (counters, the reason of a cooldown) is read and written only on the
//! slow paths.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use secrecy::SecretString;

use crate::clock::Timestamp;
use crate::identity::CredentialId;
use crate::status::CooldownReason;

/// The word's value for "available".
const READY: u64 = 0;
/// Disabled until explicitly enabled; no timed reset revives it.
const DISABLED: u64 = u64::MAX;
/// Removed from the rotator; kept in old snapshots that callers may still hold, and never
/// handed out again.
const REMOVED: u64 = u64::MAX - 1;

/// What the state word says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlotState {
    Ready,
    Cooling(Timestamp),
    Disabled,
    Removed,
}

impl SlotState {
    fn decode(word: u64) -> Self {
        match word {
            READY => SlotState::Ready,
            DISABLED => SlotState::Disabled,
            REMOVED => SlotState::Removed,
            // `Timestamp::MAX` is below both markers, so any other value is a time.
            t => SlotState::Cooling(Timestamp::from_millis(t)),
        }
    }

    fn encode(self) -> u64 {
        match self {
            SlotState::Ready => READY,
            SlotState::Disabled => DISABLED,
            SlotState::Removed => REMOVED,
            // A cooldown "until the epoch" is over; store it as the smallest time instead of
            // colliding with READY, so the transition still counts as a cooldown.
            SlotState::Cooling(t) => t.as_millis().max(1),
        }
    }
}

/// One credential of one provider.
pub(crate) struct Slot {
    pub(crate) key: SecretString,
    pub(crate) id: CredentialId,
    pub(crate) meta: Option<Arc<serde_json::Map<String, serde_json::Value>>>,
    /// The quota scope it shares with other credentials of its provider.
    pub(crate) scope: Option<Arc<str>>,
    /// Index of this credential's use counters (see `usage`).
    pub(crate) usage_index: u32,
    state: AtomicU64,
    /// Uses loaded from saved state, and uses counted here when the per-thread counters are
    /// full; the total adds the per-thread counters to this.
    pub(crate) uses_base: AtomicU64,
    /// The part of `uses_base` that was loaded (from a store or saved state) rather than
    /// counted here: a shared store adds only this process's own uses to its count.
    pub(crate) uses_loaded: AtomicU64,
    pub(crate) times_exhausted: AtomicU64,
    /// Milliseconds; 0 = never.
    pub(crate) last_exhausted_at: AtomicU64,
    /// What only slow paths read and write.
    detail: Mutex<Detail>,
    /// Leases out now (for `least-in-flight`).
    pub(crate) in_flight: AtomicU32,
    /// When it was last handed out, as a provider-wide tick (for `least-recently-used`).
    pub(crate) last_used: AtomicU64,
    /// The remaining quota the provider last reported; `u64::MAX` when unknown (for
    /// `most-remaining`).
    pub(crate) remaining: AtomicU64,
    /// The remaining requests and tokens the provider last reported, apart; `u64::MAX` when
    /// unknown (for [`KeyRotator::headroom`](crate::KeyRotator::headroom)).
    pub(crate) remaining_requests: AtomicU64,
    pub(crate) remaining_tokens: AtomicU64,
    /// Share of picks under `weighted`.
    pub(crate) weight: u32,
    /// The key's own budget use, when the provider has a budget.
    pub(crate) budget: Option<Box<crate::budget::Usage>>,
}

/// The part of a credential's state that explains it: read by status, written by reports.
#[derive(Debug, Default, Clone)]
pub(crate) struct Detail {
    /// Why it is cooling or disabled. Boxed: most credentials never have one, and the
    /// per-credential footprint is a budget (see `tests/memory.rs`).
    pub(crate) reason: Option<Box<CooldownReason>>,
    /// Failures blamed on the key in a row; a success resets it.
    pub(crate) failures: u32,
    /// Depletions and failed re-checks in a row (the re-check backoff doubles with it); a
    /// real success resets it.
    pub(crate) recheck_failures: u32,
    /// When a depleted (or, if configured, invalid) key is due for a re-check. Boxed, as
    /// `reason`: few keys ever have one.
    pub(crate) recheck: Option<Box<crate::recheck::Recheck>>,
}

impl Slot {
    pub(crate) fn new(
        key: SecretString,
        id: CredentialId,
        meta: Option<Arc<serde_json::Map<String, serde_json::Value>>>,
        scope: Option<Arc<str>>,
        usage_index: u32,
        weight: u32,
        with_budget: bool,
    ) -> Self {
        Slot {
            key,
            id,
            meta,
            scope,
            usage_index,
            state: AtomicU64::new(READY),
            uses_base: AtomicU64::new(0),
            uses_loaded: AtomicU64::new(0),
            times_exhausted: AtomicU64::new(0),
            last_exhausted_at: AtomicU64::new(0),
            detail: Mutex::new(Detail::default()),
            in_flight: AtomicU32::new(0),
            last_used: AtomicU64::new(0),
            remaining: AtomicU64::new(u64::MAX),
            remaining_requests: AtomicU64::new(u64::MAX),
            remaining_tokens: AtomicU64::new(u64::MAX),
            weight,
            budget: with_budget.then(Box::default),
        }
    }

    pub(crate) fn detail(&self) -> MutexGuard<'_, Detail> {
        // Detail is plain data that is valid after any partial update.
        self.detail.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The one check on the fast path: available without looking at the clock.
    #[inline]
    pub(crate) fn is_ready_now(&self) -> bool {
        self.state.load(Ordering::Acquire) == READY
    }

    pub(crate) fn state(&self) -> SlotState {
        SlotState::decode(self.state.load(Ordering::Acquire))
    }

    /// The one way to change the state word: `decide` looks at the current state and returns
    /// the state to move to, or `None` to leave it as it is. If another thread changes the
    /// word between the read and the write, `decide` runs again on the fresh state, so it
    /// must be a pure function of its argument (as governor's `measure_and_replace`).
    ///
    /// Returns `Ok((old, new))` when the word changed, or `Err(current)` when `decide` left it.
    /// Every state change in the crate goes through here (called from `rotator/transition.rs`
    /// and, for removal, `rotator/membership.rs`); there is no other compare-and-swap on it.
    pub(crate) fn update(
        &self,
        mut decide: impl FnMut(SlotState) -> Option<SlotState>,
    ) -> Result<(SlotState, SlotState), SlotState> {
        let mut new = SlotState::Ready;
        self.state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                new = decide(SlotState::decode(word))?;
                Some(new.encode())
            })
            .map(|old| (SlotState::decode(old), new))
            .map_err(SlotState::decode)
    }

    pub(crate) fn last_exhausted(&self) -> Option<Timestamp> {
        match self.last_exhausted_at.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(Timestamp::from_millis(ms)),
        }
    }
}
