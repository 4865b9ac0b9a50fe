//! Durable and shared state: stores that the rotator writes through.
//!
//! A [`StateStore`] hears about every local state change (the rotator hands it each
//! [`Event`] as it is emitted, whether or not anyone subscribed) and is asked for the stored
//! state once, when the rotator is built. Stores do their I/O on their own thread or task:
//! [`StateStore::record`] only enqueues, so no caller of the rotator ever waits on a disk or a
//! network, and `get_key` never even reaches the store.
//!
//! | store | feature | for |
//! |---|---|---|
//! | none (memory) | | one process, state lost on exit |
//! | [`FileStore`] | `file` (default) | one process that restarts: an atomic JSON file |
//! | [`SqliteStore`] | `sqlite` | several processes on one machine (CLI, proxy) |
//! | [`RedisStore`] | `redis` | a fleet: changes pushed between processes in milliseconds |
//!
//! Stores that share state between processes hand the changes of others back through
//! [`StoreLink::apply_remote`], which applies the same rules as local changes (a running
//! cooldown is only extended, disabled stays disabled, removed stays removed) and emits them as
//! [`Event::Remote`], which stores do not record again.
//!
//! Keys never reach a store: only provider names, fingerprints, labels, times and counters.
//! See `docs/stores.md` for how to choose a store.

// Without a shared store (SQLite, Redis) compiled in, the plumbing for other processes'
// changes below has no user (and without any store, none of it has); it stays compiled and
// checked so that each store feature only adds its own file.
#![cfg_attr(not(any(feature = "sqlite", feature = "redis")), allow(dead_code))]

#[cfg(feature = "file")]
mod file;
mod fleet;
mod health;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(any(feature = "sqlite", feature = "redis"))]
mod worker;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Weak};

#[cfg(feature = "file")]
pub use file::FileStore;
pub use fleet::{FleetView, Replica};
#[cfg(any(feature = "sqlite", feature = "redis"))]
pub(crate) use health::HealthCell;
pub use health::{StoreFault, StoreHealth};
#[cfg(feature = "redis")]
pub use redis::{RedisMonitor, RedisStore, RedisStoreBuilder};
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

use crate::classify::ModelName;
use crate::clock::Timestamp;
use crate::error::StateError;
use crate::events::Event;
use crate::identity::{CredentialId, Fingerprint};
use crate::persist::state::{self, Availability, CredentialState as SavedCredential, State};
use crate::status::{CooldownReason, CredentialState, ModelCooldownStatus};

/// A built-in store for durable or shared state, given to
/// [`KeyRotatorBuilder::store`](crate::KeyRotatorBuilder::store): [`FileStore`] (default feature
/// `file`), `SqliteStore` (feature `sqlite`) or `RedisStore` (feature `redis`).
///
/// # Which API to pick
/// - A **store** is written through on every state change, off the caller's thread, and shared
///   stores (SQLite, Redis) bring other processes' changes in within milliseconds. Pick one for
///   state that must survive a crash or be shared by several processes.
/// - [`Persistence`](crate::Persistence) is the original library's `save()`/`load()` adapter:
///   your code decides when to save, and where the text goes. Pick it for storage this crate
///   does not provide (a cloud bucket, your own database).
///
/// The trait is sealed: how a store hears changes and reaches the rotator is internal, so it
/// can change without breaking you.
pub trait StateStore: Send + Sync + 'static + sealed::Backend {}

impl<T: sealed::Backend + Send + Sync + 'static> StateStore for T {}

/// How the rotator and its store talk. Public items of a private module: nameable inside the
/// crate, unreachable outside it (the sealed-trait pattern), so none of this is API.
#[allow(unreachable_pub)]
mod sealed {
    use super::{Event, StoreError, StoreHealth, StoreLink, StoredState};

    /// What a store does, called by the rotator.
    ///
    /// # Contract
    /// - [`record`](Self::record) is called synchronously from whatever thread changed the
    ///   state, for every local change. It must not block or do I/O: enqueue and return.
    /// - [`attach`](Self::attach) is called once, when the rotator is built and before
    ///   [`load`](Self::load); a store that shares state keeps the [`StoreLink`] to read the
    ///   rotator's state and apply remote changes.
    /// - [`load`](Self::load) is called once at build time. An error is logged, kept for
    ///   `KeyRotator::store_error`, and the rotator starts fresh.
    /// - A store never decides rotation policy; it records and shares what changed.
    pub trait Backend {
        /// Gives the store its handle on the rotator. Called once, before `load`.
        fn attach(&self, rotator: StoreLink) {
            let _ = rotator;
        }

        /// The stored state, if any.
        fn load(&self) -> Result<Option<StoredState>, StoreError>;

        /// Records a local change. Must not block.
        fn record(&self, change: &Event);

        /// Records that the per-model rests of `credentials` of `provider` were reset here
        /// (no event tells it: a rest for one model never made a key unavailable). Must not
        /// block. The default records nothing, for a store that keeps no rests.
        fn models_reset(&self, provider: &std::sync::Arc<str>, credentials: &[super::Fingerprint]) {
            let _ = (provider, credentials);
        }

        /// Waits until every change recorded so far is written (or the store gave up on it).
        fn flush(&self) {}

        /// Like `flush`, for at most `timeout`. (The default, for a store that has nothing
        /// to wait for, flushes and returns.)
        ///
        /// # Errors
        /// [`StoreError::FlushTimedOut`] when changes are still unwritten after `timeout`.
        fn flush_within(&self, timeout: std::time::Duration) -> Result<(), StoreError> {
            let _ = timeout;
            self.flush();
            Ok(())
        }

        /// How the store is doing right now.
        fn health(&self) -> StoreHealth {
            StoreHealth::Healthy
        }

        /// The hub through which the rotator's budgets are shared by every process, for a
        /// store that shares budgets (Redis); `None` keeps budgets per process.
        fn fleet(&self) -> Option<std::sync::Arc<crate::budget::fleet::FleetHub>> {
            None
        }

        /// Hands the store the rotator's usage ledger (`ledger/`) before `attach`; a store
        /// that writes usage (SQLite, Redis) keeps it and says `true`. Otherwise usage stays
        /// in memory.
        fn keep_usage(&self, ledger: std::sync::Arc<crate::ledger::Ledger>) -> bool {
            let _ = ledger;
            false
        }

        /// The fleet as the store last saw it, for a store that knows one (Redis).
        fn fleet_view(&self) -> Option<super::FleetView> {
            None
        }
    }
}

/// What a store may ask of the rotator it serves: implemented by the rotator (in `rotator/`),
/// so that `store/` never names the rotator's internals.
pub(crate) trait StoreHost: Send + Sync {
    /// The rotator's clock's time.
    fn now(&self) -> Timestamp;
    /// The whole state as versioned JSON.
    fn export_state(&self) -> String;
    /// Every credential's current state.
    fn records(&self) -> Vec<CredentialRecord>;
    /// Applies a change made by another process; whether the local view changed.
    fn apply_remote(&self, provider: &str, fingerprint: Fingerprint, change: RemoteChange) -> bool;
}

/// Why a store could not load or write state.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The stored state is corrupt or from a newer version. It was moved aside to
    /// `moved_to` (when the store can do so) and the rotator starts fresh.
    #[error("stored state is unusable ({reason}); moved aside to {}", moved_to.as_ref().map_or("<not moved>".into(), |p| p.display().to_string()))]
    Corrupt {
        /// What is wrong with it.
        #[source]
        reason: StateError,
        /// Where the unusable state now is.
        moved_to: Option<PathBuf>,
    },
    /// Reading or writing a file failed.
    #[error("store i/o failed on {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The backend could not be used, for the reason given (a wrong password, an unreachable
    /// server...); the rotator serves from its local view and the store keeps trying.
    #[error("store unavailable: {0}; serving from the local view until it recovers")]
    Unavailable(#[source] StoreFault),
    /// [`KeyRotator::flush_store_within`](crate::KeyRotator::flush_store_within) gave up:
    /// changes are still unwritten (the store keeps trying; they are not lost).
    #[error("the store did not write {pending} credential(s) within {waited:?}; it keeps trying")]
    FlushTimedOut {
        /// How long the flush waited.
        waited: std::time::Duration,
        /// How many credentials' changes still wait (at least 1; the file store, which
        /// writes one file, says 1).
        pending: usize,
    },
    /// The backend (database, server) failed or could not be reached.
    #[error("store backend failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// State as a store loaded it, ready for the rotator to apply.
///
/// Built from the versioned JSON format ([`from_json`](Self::from_json)) or from one record per
/// credential ([`from_records`](Self::from_records)).
#[derive(Debug)]
#[allow(unreachable_pub)] // named by the sealed `Backend` trait, unreachable outside the crate
pub struct StoredState(pub(crate) State);

impl StoredState {
    /// Parses versioned state text, as written by
    /// [`KeyRotator::export_state`](crate::KeyRotator::export_state).
    ///
    /// # Errors
    /// [`StateError::Corrupt`] or [`StateError::UnsupportedVersion`].
    pub(crate) fn from_json(text: &str) -> Result<Self, StateError> {
        state::parse(text).map(StoredState)
    }

    /// State from one record per credential.
    #[cfg_attr(not(any(feature = "sqlite", feature = "redis")), allow(dead_code))]
    pub(crate) fn from_records(records: impl IntoIterator<Item = CredentialRecord>) -> Self {
        let mut providers: BTreeMap<String, state::ProviderState> = BTreeMap::new();
        let mut saved_at = Timestamp::UNIX_EPOCH;
        for r in records {
            saved_at = saved_at.max(r.last_exhausted_at.unwrap_or(Timestamp::UNIX_EPOCH));
            let state = match r.state {
                CredentialState::Cooling { until } => Availability::Cooling { until },
                CredentialState::Disabled => Availability::Disabled,
                _ => Availability::Available,
            };
            providers
                .entry(r.provider.to_string())
                .or_default()
                .credentials
                .insert(
                    r.credential.fingerprint,
                    SavedCredential {
                        label: r.credential.label.as_deref().map(str::to_owned),
                        state,
                        times_used: r.times_used,
                        times_exhausted: r.times_exhausted,
                        last_exhausted_at: r.last_exhausted_at,
                        reason: r.reason,
                        consecutive_failures: r.consecutive_failures,
                        // Ended ones are dropped when applied (`restore_model`).
                        model_cooldowns: r.model_cooldowns,
                    },
                );
        }
        StoredState(State {
            version: state::VERSION,
            saved_at,
            providers,
        })
    }
}

/// One credential's durable state, as stores keep it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CredentialRecord {
    /// The provider.
    pub(crate) provider: Arc<str>,
    /// Label and fingerprint (never the key).
    pub(crate) credential: CredentialId,
    /// Available, cooling until a time, or disabled.
    pub(crate) state: CredentialState,
    /// How many times it was handed out, in all (loaded and counted here).
    pub(crate) times_used: u64,
    /// How many of `times_used` this process counted itself (the rest was loaded). Shared
    /// stores add what this grew by since their last write to the stored count, so the
    /// stored count is the fleet's total and a restart starts from it.
    pub(crate) uses_here: u64,
    /// How many times it was marked exhausted.
    pub(crate) times_exhausted: u64,
    /// When it was last marked exhausted.
    pub(crate) last_exhausted_at: Option<Timestamp>,
    /// Why it cools or is disabled.
    pub(crate) reason: Option<CooldownReason>,
    /// Failures in a row (what exponential cooldowns grow with).
    pub(crate) consecutive_failures: u32,
    /// The models it rests for, running ones only.
    pub(crate) model_cooldowns: Vec<ModelCooldownStatus>,
}

impl CredentialRecord {
    /// A record of a credential in `state`, with zero counters.
    pub(crate) fn new(
        provider: impl Into<Arc<str>>,
        credential: CredentialId,
        state: CredentialState,
    ) -> Self {
        CredentialRecord {
            provider: provider.into(),
            credential,
            state,
            times_used: 0,
            uses_here: 0,
            times_exhausted: 0,
            last_exhausted_at: None,
            reason: None,
            consecutive_failures: 0,
            model_cooldowns: Vec::new(),
        }
    }
}

/// A change made elsewhere, to apply to this rotator's local view with
/// [`StoreLink::apply_remote`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RemoteChange {
    /// The credential cools until `until` (extends a shorter local cooldown; never shortens a
    /// longer one), for `reason` when the store knows it.
    Cooling {
        until: Timestamp,
        reason: Option<CooldownReason>,
    },
    /// A cooldown that ends at or before `up_to` was ended early (a reset); a longer local
    /// cooldown is kept.
    Reset { up_to: Timestamp },
    /// The credential was disabled, for `reason` when the store knows it.
    Disabled { reason: Option<CooldownReason> },
    /// The credential was enabled again.
    Enabled,
    /// The credential rests for `model` until `until` (extends a shorter local rest; never
    /// shortens a longer one), for `reason` when the store knows it.
    ModelCooling {
        model: ModelName,
        until: Timestamp,
        reason: Option<CooldownReason>,
    },
}

/// A store's handle on its rotator: read its state, apply changes from other processes.
///
/// It holds the rotator weakly: once the rotator is dropped, reads return nothing and changes
/// are ignored, so a store's background thread can tell when to stop.
#[derive(Clone)]
#[allow(unreachable_pub)] // named by the sealed `Backend` trait, unreachable outside the crate
pub struct StoreLink {
    host: Weak<dyn StoreHost>,
}

impl std::fmt::Debug for StoreLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreLink")
            .field("alive", &self.is_alive())
            .finish()
    }
}

impl StoreLink {
    pub(crate) fn new(host: Weak<dyn StoreHost>) -> Self {
        StoreLink { host }
    }

    /// Whether the rotator still exists.
    pub(crate) fn is_alive(&self) -> bool {
        self.host.strong_count() > 0
    }

    /// The rotator's clock's time, or `None` when the rotator is gone.
    pub(crate) fn now(&self) -> Option<Timestamp> {
        self.host.upgrade().map(|h| h.now())
    }

    /// The whole state as versioned JSON (what [`FileStore`] writes), or `None` when the
    /// rotator is gone.
    pub(crate) fn export_state(&self) -> Option<String> {
        self.host.upgrade().map(|h| h.export_state())
    }

    /// Every credential's current state, or nothing when the rotator is gone.
    pub(crate) fn records(&self) -> Vec<CredentialRecord> {
        self.host.upgrade().map_or_else(Vec::new, |h| h.records())
    }

    /// Applies a change made by another process. Returns whether the local view changed.
    ///
    /// The rules are those of local changes: a running cooldown is only extended, disabled
    /// stays disabled (until `Enabled`), removed stays removed. A change emits its event as
    /// [`Event::Remote`], which is not recorded to the store again.
    pub(crate) fn apply_remote(
        &self,
        provider: &str,
        fingerprint: Fingerprint,
        change: RemoteChange,
    ) -> bool {
        self.host
            .upgrade()
            .is_some_and(|h| h.apply_remote(provider, fingerprint, change))
    }
}

/// The credentials an event is about, by provider and fingerprint (remote events excluded:
/// they are not recorded).
#[cfg(any(feature = "sqlite", feature = "redis"))]
pub(crate) fn touched(event: &Event) -> Vec<(Arc<str>, Fingerprint)> {
    match event {
        Event::Exhausted {
            provider,
            credential,
            ..
        } => vec![(Arc::clone(provider), credential.fingerprint)],
        Event::Reset {
            provider,
            credentials,
        }
        | Event::ScopeExhausted {
            provider,
            credentials,
            ..
        } => credentials
            .iter()
            .map(|c| (Arc::clone(provider), c.fingerprint))
            .collect(),
        Event::Disabled {
            provider,
            credential,
            ..
        }
        | Event::Enabled {
            provider,
            credential,
        } => vec![(Arc::clone(provider), credential.fingerprint)],
        Event::ModelExhausted {
            provider,
            credentials,
            ..
        } => credentials
            .iter()
            .map(|c| (Arc::clone(provider), c.fingerprint))
            .collect(),
        _ => Vec::new(),
    }
}

/// Whether a store persists this event: the changes of credential state (cooldowns, per-model
/// rests, resets, disabling), not the announcements derived from them (`Rotated`, `AllExhausted`). Only the
/// stores that write each change (SQLite, Redis) ask.
#[cfg(any(feature = "sqlite", feature = "redis"))]
pub(crate) fn changes_state(event: &Event) -> bool {
    matches!(
        event,
        Event::Exhausted { .. }
            | Event::ScopeExhausted { .. }
            | Event::Reset { .. }
            | Event::Disabled { .. }
            | Event::Enabled { .. }
            | Event::ModelExhausted { .. }
    )
}
