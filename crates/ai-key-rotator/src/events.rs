//! Events: what happened to which credential, delivered to subscribers.
//!
//! Delivery never blocks the rotator: each subscriber has a bounded queue, and one that falls
//! behind loses the oldest events and is told how many (see [`RecvError::Lagged`]). When nobody
//! subscribes, emitting an event costs one relaxed atomic load.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;
use tokio::sync::broadcast;

use crate::clock::Timestamp;
use crate::identity::CredentialId;
use crate::status::CooldownReason;

/// Something that happened to a provider's credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Event {
    /// A credential was marked exhausted and cools down until `until` (the original's
    /// `exhausted`). A second mark that extends a running cooldown emits this again.
    Exhausted {
        /// The provider.
        provider: Arc<str>,
        /// The credential.
        credential: CredentialId,
        /// When it becomes available again.
        until: Timestamp,
        /// Why: the cause, the provider's reset time and the scope, as data (never response
        /// text). Stores carry it, so other processes show the same reason.
        reason: Box<CooldownReason>,
    },
    /// The provider's current credential changed (the original's `rotated`).
    Rotated {
        /// The provider.
        provider: Arc<str>,
        /// The credential it was on, if it still exists.
        from: Option<CredentialId>,
        /// The credential it is on now.
        to: CredentialId,
    },
    /// No credential of the provider is available (the original's `allExhausted`). Emitted each
    /// time the provider runs out, not on every call that finds it so.
    AllExhausted {
        /// The provider.
        provider: Arc<str>,
        /// The earliest time a credential comes back, if any will.
        until: Option<Timestamp>,
    },
    /// A limit shared by a quota scope was hit: every credential of the scope cools until
    /// `until`, announced once here rather than once per credential.
    ScopeExhausted {
        /// The provider.
        provider: Arc<str>,
        /// The quota scope.
        scope: Arc<str>,
        /// The credentials that cool (those not disabled).
        credentials: Vec<CredentialId>,
        /// When they become available again.
        until: Timestamp,
        /// Why, as for [`Event::Exhausted`].
        reason: Box<CooldownReason>,
    },
    /// A limit the provider counts per model was hit: the credentials (the reporter, or every
    /// credential of its quota scope) rest for `model` until `until` and still serve other
    /// models. Picks without a model ignore it.
    ModelExhausted {
        /// The provider.
        provider: Arc<str>,
        /// The model.
        model: crate::classify::ModelName,
        /// The credentials that rest for the model.
        credentials: Vec<CredentialId>,
        /// When they serve the model again.
        until: Timestamp,
        /// Why, as for [`Event::Exhausted`].
        reason: Box<CooldownReason>,
    },
    /// Several keys of the provider failed within a short window for a cause that is not
    /// about any key: the provider's circuit is open until `until`, then one request probes.
    /// Keys are neither cooled nor disabled for it.
    ProviderDegraded {
        /// The provider.
        provider: Arc<str>,
        /// What the keys failed with.
        cause: crate::ProviderCause,
        /// When a request may probe the provider again.
        until: Timestamp,
    },
    /// The provider answered again after its circuit was open: it is closed.
    ProviderRecovered {
        /// The provider.
        provider: Arc<str>,
    },
    /// A credential was disabled (the provider said the key is invalid, or by hand). No timed
    /// reset revives it; only [`KeyRotator::enable`](crate::KeyRotator::enable) or adding it
    /// again.
    Disabled {
        /// The provider.
        provider: Arc<str>,
        /// The credential.
        credential: CredentialId,
        /// Why, e.g. `"invalid key"`.
        reason: std::borrow::Cow<'static, str>,
    },
    /// A disabled credential was enabled again.
    Enabled {
        /// The provider.
        provider: Arc<str>,
        /// The credential.
        credential: CredentialId,
    },
    /// Cooldowns ended (the original's `reset`). Every cooldown that ends appears in exactly
    /// one `Reset`, whether it ran out or was reset by hand.
    Reset {
        /// The provider.
        provider: Arc<str>,
        /// The credentials that became available.
        credentials: Vec<CredentialId>,
    },
    /// A change made by another process and applied here through a shared store (see
    /// [`StateStore`](crate::StateStore)), or the store's state at start. `change` is the event as it would have been emitted
    /// locally. Stores never record a remote event again, so changes do not echo between
    /// processes.
    Remote {
        /// What happened.
        change: Box<Event>,
    },
}

impl Event {
    /// The provider the event is about.
    pub fn provider(&self) -> &str {
        match self {
            Event::Exhausted { provider, .. }
            | Event::Rotated { provider, .. }
            | Event::AllExhausted { provider, .. }
            | Event::ScopeExhausted { provider, .. }
            | Event::ModelExhausted { provider, .. }
            | Event::ProviderDegraded { provider, .. }
            | Event::ProviderRecovered { provider }
            | Event::Disabled { provider, .. }
            | Event::Enabled { provider, .. }
            | Event::Reset { provider, .. } => provider,
            Event::Remote { change } => change.provider(),
        }
    }
}

/// A stream of [`Event`]s from [`KeyRotator::subscribe`](crate::KeyRotator::subscribe).
///
/// Receive with [`recv`](Subscription::recv) in async code, or [`try_recv`](Subscription::try_recv)
/// and [`blocking_recv`](Subscription::blocking_recv) elsewhere. Dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    receiver: broadcast::Receiver<Event>,
    listeners: Arc<AtomicUsize>,
}

/// Why no event was received.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecvError {
    /// The subscriber fell behind and this many events were dropped; the next call receives
    /// the oldest event still queued.
    #[error("subscriber lagged behind and missed {0} events")]
    Lagged(u64),
    /// The rotator is gone.
    #[error("rotator closed")]
    Closed,
    /// No event is queued right now (only from `try_recv`).
    #[error("no event queued")]
    Empty,
}

impl Subscription {
    /// A subscription counted in `listeners` until dropped (see `rotator/emitter.rs`).
    pub(crate) fn new(receiver: broadcast::Receiver<Event>, listeners: Arc<AtomicUsize>) -> Self {
        listeners.fetch_add(1, Ordering::Relaxed);
        Subscription {
            receiver,
            listeners,
        }
    }

    /// Waits for the next event.
    ///
    /// # Errors
    /// [`RecvError::Lagged`] when events were dropped, [`RecvError::Closed`] when the rotator
    /// is gone.
    pub async fn recv(&mut self) -> Result<Event, RecvError> {
        self.receiver.recv().await.map_err(|e| match e {
            broadcast::error::RecvError::Lagged(n) => RecvError::Lagged(n),
            broadcast::error::RecvError::Closed => RecvError::Closed,
        })
    }

    /// The next event if one is queued.
    ///
    /// # Errors
    /// [`RecvError::Empty`] when none is queued, otherwise as [`recv`](Self::recv).
    pub fn try_recv(&mut self) -> Result<Event, RecvError> {
        use broadcast::error::TryRecvError;
        self.receiver.try_recv().map_err(|e| match e {
            TryRecvError::Lagged(n) => RecvError::Lagged(n),
            TryRecvError::Closed => RecvError::Closed,
            TryRecvError::Empty => RecvError::Empty,
        })
    }

    /// Blocks the thread until the next event.
    ///
    /// # Panics
    /// When called inside an asynchronous runtime's worker thread (tokio forbids blocking
    /// there); use [`recv`](Self::recv) instead.
    pub fn blocking_recv(&mut self) -> Result<Event, RecvError> {
        self.receiver.blocking_recv().map_err(|e| match e {
            broadcast::error::RecvError::Lagged(n) => RecvError::Lagged(n),
            broadcast::error::RecvError::Closed => RecvError::Closed,
        })
    }

    /// Every event queued right now, skipping over any lag.
    pub fn drain(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        loop {
            match self.try_recv() {
                Ok(e) => out.push(e),
                Err(RecvError::Lagged(_)) => continue,
                Err(_) => return out,
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.listeners.fetch_sub(1, Ordering::Relaxed);
    }
}
