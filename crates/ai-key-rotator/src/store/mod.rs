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

#[cfg(feature = "file")]
mod file;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "sqlite")]
mod sqlite;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

#[cfg(feature = "file")]
pub use file::FileStore;
#[cfg(feature = "redis")]
pub use redis::{RedisMonitor, RedisStore, RedisStoreBuilder};
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

use crate::clock::Timestamp;
use crate::credential::{CredentialId, Fingerprint};
use crate::error::StateError;
use crate::events::Event;
use crate::persist::state::{self, Availability, CredentialState as SavedCredential, State};
use crate::pool::SlotState;
use crate::rotator::Inner;
use crate::status::CredentialState;

/// Where the rotator's state is kept and, for shared stores, how changes of other processes
/// come in.
///
/// # Contract
/// - [`record`](Self::record) is called synchronously from whatever thread changed the state,
///   for every local change. It must not block or do I/O: enqueue and return.
/// - [`attach`](Self::attach) is called once, when the rotator is built and before
///   [`load`](Self::load); a store that shares state keeps the [`StoreLink`] to read the
///   rotator's state and apply remote changes.
/// - [`load`](Self::load) is called once at build time. An error is logged, kept for
///   [`KeyRotator::store_error`](crate::KeyRotator::store_error), and the rotator starts
///   fresh.
/// - A store never decides rotation policy; it records and shares what changed.
pub trait StateStore: Send + Sync + 'static {
    /// Gives the store its handle on the rotator. Called once, before `load`.
    fn attach(&self, rotator: StoreLink) {
        let _ = rotator;
    }

    /// The stored state, if any.
    ///
    /// # Errors
    /// [`StoreError`] when the state cannot be read or is corrupt.
    fn load(&self) -> Result<Option<StoredState>, StoreError>;

    /// Records a local change. Must not block.
    fn record(&self, change: &Event);

    /// Waits until every change recorded so far is written (or the store gave up on it).
    /// Called by [`KeyRotator::flush_store`](crate::KeyRotator::flush_store) and
    /// [`KeyRotator::shutdown`](crate::KeyRotator::shutdown); never on a hot path.
    fn flush(&self) {}
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
    /// The backend (database, server) failed or could not be reached.
    #[error("store backend failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// State as a store loaded it, ready for the rotator to apply.
///
/// Built from the versioned JSON format ([`from_json`](Self::from_json)) or from one record per
/// credential ([`from_records`](Self::from_records)).
#[derive(Debug)]
pub struct StoredState(pub(crate) State);

impl StoredState {
    /// Parses versioned state text, as written by
    /// [`KeyRotator::export_state`](crate::KeyRotator::export_state).
    ///
    /// # Errors
    /// [`StateError::Corrupt`] or [`StateError::UnsupportedVersion`].
    pub fn from_json(text: &str) -> Result<Self, StateError> {
        state::parse(text).map(StoredState)
    }

    /// State from one record per credential.
    pub fn from_records(records: impl IntoIterator<Item = CredentialRecord>) -> Self {
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
                        reason: None,
                        consecutive_failures: 0,
                    },
                );
        }
        StoredState(State {
            version: state::VERSION,
            saved_at,
            providers,
        })
    }

    /// How many credentials it names.
    pub fn len(&self) -> usize {
        self.0.providers.values().map(|p| p.credentials.len()).sum()
    }

    /// Whether it names no credential.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One credential's durable state, as stores keep it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CredentialRecord {
    /// The provider.
    pub provider: Arc<str>,
    /// Label and fingerprint (never the key).
    pub credential: CredentialId,
    /// Available, cooling until a time, or disabled.
    pub state: CredentialState,
    /// How many times it was handed out.
    pub times_used: u64,
    /// How many times it was marked exhausted.
    pub times_exhausted: u64,
    /// When it was last marked exhausted.
    pub last_exhausted_at: Option<Timestamp>,
}

impl CredentialRecord {
    /// A record of a credential in `state`, with zero counters.
    pub fn new(provider: &str, credential: CredentialId, state: CredentialState) -> Self {
        CredentialRecord {
            provider: provider.into(),
            credential,
            state,
            times_used: 0,
            times_exhausted: 0,
            last_exhausted_at: None,
        }
    }
}

/// A change made elsewhere, to apply to this rotator's local view with
/// [`StoreLink::apply_remote`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RemoteChange {
    /// The credential cools until this time (extends a shorter local cooldown; never shortens
    /// a longer one).
    Cooling(Timestamp),
    /// A cooldown that ends at or before `up_to` was ended early (a reset); a longer local
    /// cooldown is kept.
    Reset {
        /// The latest cooldown end this reset covers.
        up_to: Timestamp,
    },
    /// The credential was disabled.
    Disabled,
    /// The credential was enabled again.
    Enabled,
}

/// A store's handle on its rotator: read its state, apply changes from other processes.
///
/// It holds the rotator weakly: once the rotator is dropped, reads return nothing and changes
/// are ignored, so a store's background thread can tell when to stop.
#[derive(Clone)]
pub struct StoreLink {
    inner: Weak<Inner>,
}

impl std::fmt::Debug for StoreLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreLink")
            .field("alive", &self.is_alive())
            .finish()
    }
}

impl StoreLink {
    pub(crate) fn new(inner: &Arc<Inner>) -> Self {
        StoreLink {
            inner: Arc::downgrade(inner),
        }
    }

    /// Whether the rotator still exists.
    pub fn is_alive(&self) -> bool {
        self.inner.strong_count() > 0
    }

    /// The rotator's clock's time, or `None` when the rotator is gone.
    pub fn now(&self) -> Option<Timestamp> {
        self.inner.upgrade().map(|i| i.clock.now())
    }

    /// The whole state as versioned JSON (what [`FileStore`] writes), or `None` when the
    /// rotator is gone.
    pub fn export_state(&self) -> Option<String> {
        self.inner.upgrade().map(|i| i.export_state())
    }

    /// Every credential's current state, or nothing when the rotator is gone.
    pub fn records(&self) -> Vec<CredentialRecord> {
        let Some(inner) = self.inner.upgrade() else {
            return Vec::new();
        };
        let snapshot = inner.snapshot.load();
        let now = inner.clock.now();
        snapshot
            .providers
            .iter()
            .flat_map(|prov| {
                let inner = &inner;
                prov.slots.iter().map(move |slot| CredentialRecord {
                    provider: Arc::clone(&prov.name),
                    credential: slot.id.clone(),
                    state: match slot.state() {
                        SlotState::Cooling(until) if until > now => {
                            CredentialState::Cooling { until }
                        }
                        SlotState::Disabled | SlotState::Removed => CredentialState::Disabled,
                        _ => CredentialState::Available,
                    },
                    times_used: inner.uses(slot),
                    times_exhausted: slot.times_exhausted.load(Ordering::Relaxed),
                    last_exhausted_at: slot.last_exhausted(),
                })
            })
            .collect()
    }

    /// Applies a change made by another process. Returns whether the local view changed.
    ///
    /// The rules are those of local changes: a running cooldown is only extended, disabled
    /// stays disabled (until `Enabled`), removed stays removed. A change emits its event as
    /// [`Event::Remote`], which is not recorded to the store again.
    pub fn apply_remote(
        &self,
        provider: &str,
        fingerprint: Fingerprint,
        change: RemoteChange,
    ) -> bool {
        match self.inner.upgrade() {
            Some(inner) => inner.apply_remote(provider, fingerprint, change),
            None => false,
        }
    }
}

/// The credentials an event is about, by provider and fingerprint (remote events excluded:
/// they are not recorded).
#[cfg(feature = "sqlite")]
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
        _ => Vec::new(),
    }
}

/// Whether a store persists this event: the changes of credential state (cooldowns, resets,
/// disabling), not the announcements derived from them (`Rotated`, `AllExhausted`). Only the
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
    )
}
