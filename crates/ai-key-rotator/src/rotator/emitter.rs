//! The sending side of events: owned by the rotator, it hands each event to the store and to
//! subscribers.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::broadcast;

use crate::events::{Event, Subscription};
use crate::identity::Fingerprint;
use crate::store::StateStore;

/// The sending side, owned by the rotator.
pub(crate) struct Emitter {
    sender: broadcast::Sender<Event>,
    /// Live subscriptions. Kept apart from the channel so the hot path can skip building an
    /// event nobody will read with a single relaxed load.
    listeners: Arc<AtomicUsize>,
    /// The store that records every local change, subscribed or not. Events are only emitted
    /// on slow paths (never on the common `get_key` path), and `record` only enqueues, so this
    /// adds no I/O to any caller.
    store: Option<Arc<dyn StateStore>>,
}

impl std::fmt::Debug for Emitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emitter")
            .field("listeners", &self.listeners.load(Ordering::Relaxed))
            .field("store", &self.store.is_some())
            .finish()
    }
}

impl Emitter {
    pub(crate) fn new(capacity: usize, store: Option<Arc<dyn StateStore>>) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Emitter {
            sender,
            listeners: Arc::new(AtomicUsize::new(0)),
            store,
        }
    }

    pub(crate) fn store(&self) -> Option<&Arc<dyn StateStore>> {
        self.store.as_ref()
    }

    /// Whether anyone listens; check before building an event.
    #[inline]
    pub(crate) fn active(&self) -> bool {
        self.listeners.load(Ordering::Relaxed) > 0
    }

    /// Hands the event built by `make` to the store, if there is one, and to subscribers, if
    /// anyone listens.
    #[inline]
    pub(crate) fn emit_with(&self, make: impl FnOnce() -> Event) {
        let active = self.active();
        if !active && self.store.is_none() {
            return;
        }
        let event = make();
        if let Some(store) = &self.store {
            store.record(&event);
        }
        if active {
            // An error only means every receiver is gone since the check; nothing to do.
            let _ = self.sender.send(event);
        }
    }

    /// Tells the store that the per-model rests of `credentials` were reset here (no event
    /// says so; see `end_model_cooldowns`).
    pub(crate) fn models_reset(&self, provider: &Arc<str>, credentials: &[Fingerprint]) {
        if let Some(store) = &self.store {
            store.models_reset(provider, credentials);
        }
    }

    /// Emits a change that came from another process, wrapped in [`Event::Remote`], to
    /// subscribers only: the store already has it.
    #[inline]
    pub(crate) fn emit_remote(&self, make: impl FnOnce() -> Event) {
        if self.active() {
            let _ = self.sender.send(Event::Remote {
                change: Box::new(make()),
            });
        }
    }

    pub(crate) fn subscribe(&self) -> Subscription {
        Subscription::new(self.sender.subscribe(), Arc::clone(&self.listeners))
    }
}
