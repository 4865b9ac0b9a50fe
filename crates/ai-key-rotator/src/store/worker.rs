//! The queue between the rotator and a store's writer, shared by the stores that write each
//! change (SQLite on a thread, Redis on a task): recording, batch draining, retries, flush and
//! shutdown.
//!
//! The queue is a *dirty set*: which credentials changed, keyed by provider and fingerprint,
//! not the list of changes. The writer writes each one's current local state, so a thousand
//! marks of one key during an outage are one entry, and the queue never holds more than one
//! entry per credential (and at most [`MAX_DIRTY`]; past that it remembers only "rewrite
//! everything", which is what a reconnect does anyway).

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::events::Event;
use crate::identity::Fingerprint;

/// A credential, by provider and fingerprint.
pub(crate) type Key = (Arc<str>, Fingerprint);

/// The most credentials the queue names one by one; past it, the next batch rewrites every
/// credential's state. Far above any real configuration, so only a runaway caller reaches it.
pub(crate) const MAX_DIRTY: usize = 1 << 16;

/// What happened to a dirty credential besides "its state changed".
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dirty {
    /// It was enabled here: the only change that may clear a stored "disabled".
    pub(crate) enabled: bool,
    /// Its cooldown was reset here: the only change that may end a stored cooldown early.
    pub(crate) reset: bool,
    /// Its per-model rests were reset here: the only change that may end stored ones early.
    pub(crate) models_reset: bool,
}

impl Dirty {
    fn merge(&mut self, other: Dirty) {
        self.enabled |= other.enabled;
        self.reset |= other.reset;
        self.models_reset |= other.models_reset;
    }
}

/// The credentials to write, taken from the queue.
#[derive(Debug)]
pub(crate) struct Batch {
    /// Each changed credential (empty when `everything` is set).
    pub(crate) items: Vec<(Key, Dirty)>,
    /// Write every credential's state: more changed than the queue could name.
    pub(crate) everything: bool,
    /// The count of changes recorded when the batch was taken: what it covers for `flush`.
    up_to: u64,
}

#[derive(Debug, Default)]
struct State {
    dirty: HashMap<Key, Dirty>,
    overflow: bool,
    /// A flush asked for a batch even if nothing changed, so that the counters that change
    /// without an event (uses, failure streaks) are written before it returns.
    sync: bool,
    /// Changes recorded so far, and how many of them are written (or given up on).
    recorded: u64,
    written: u64,
    closed: bool,
}

/// The queue; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    state: Mutex<State>,
    /// Rung when something is recorded or the queue closes (a writer thread waits on it).
    work: Condvar,
    /// Rung when a batch is done (flushes wait on it).
    done: Condvar,
    /// Wakes a writer task; one permit is kept when nobody waits, so no wake-up is lost.
    notify: tokio::sync::Notify,
    /// Wakes a writer task pausing before a retry when the queue closes.
    closing: tokio::sync::Notify,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes the credentials a local change touched. Never blocks on I/O: one short lock.
    pub(crate) fn record(&self, event: &Event) {
        if !super::changes_state(event) {
            return;
        }
        let dirty = Dirty {
            enabled: matches!(event, Event::Enabled { .. }),
            reset: matches!(event, Event::Reset { .. }),
            models_reset: false,
        };
        self.mark(super::touched(event), dirty);
    }

    /// Notes that the per-model rests of `keys` were reset here.
    pub(crate) fn models_reset(&self, keys: Vec<Key>) {
        let dirty = Dirty {
            models_reset: true,
            ..Dirty::default()
        };
        self.mark(keys, dirty);
    }

    fn mark(&self, keys: Vec<Key>, dirty: Dirty) {
        let mut state = self.lock();
        if state.closed {
            return;
        }
        for key in keys {
            let full = state.dirty.len() >= MAX_DIRTY;
            match state.dirty.get_mut(&key) {
                Some(d) => d.merge(dirty),
                None if full => state.overflow = true,
                None => {
                    state.dirty.insert(key, dirty);
                }
            }
        }
        state.recorded += 1;
        drop(state);
        self.work.notify_one();
        self.notify.notify_one();
    }

    /// How many credentials wait to be written.
    #[cfg(feature = "redis")]
    pub(crate) fn len(&self) -> usize {
        self.lock().dirty.len()
    }

    fn take_locked(state: &mut State) -> Option<Batch> {
        if state.dirty.is_empty() && !state.overflow && !state.sync {
            return None;
        }
        state.sync = false;
        let everything = std::mem::take(&mut state.overflow);
        let items = if everything {
            state.dirty.clear();
            Vec::new()
        } else {
            state.dirty.drain().collect()
        };
        Some(Batch {
            items,
            everything,
            up_to: state.recorded,
        })
    }

    /// For a writer thread: the next batch, or `Ok(None)` after `timeout` with nothing to
    /// write, or `Err(())` once the queue is closed and empty.
    #[cfg(feature = "sqlite")]
    pub(crate) fn wait(&self, timeout: Duration) -> Result<Option<Batch>, ()> {
        let mut state = self.lock();
        if let Some(batch) = Self::take_locked(&mut state) {
            return Ok(Some(batch));
        }
        if state.closed {
            return Err(());
        }
        let (mut state, _) = self
            .work
            .wait_timeout_while(state, timeout, |s| {
                s.dirty.is_empty() && !s.overflow && !s.sync && !s.closed
            })
            .unwrap_or_else(|e| e.into_inner());
        match Self::take_locked(&mut state) {
            Some(batch) => Ok(Some(batch)),
            None if state.closed => Err(()),
            None => Ok(None),
        }
    }

    /// For a writer task: the next batch, or `None` once the queue is closed and empty.
    #[cfg(feature = "redis")]
    pub(crate) async fn next(&self) -> Option<Batch> {
        loop {
            {
                let mut state = self.lock();
                if let Some(batch) = Self::take_locked(&mut state) {
                    return Some(batch);
                }
                if state.closed {
                    return None;
                }
            }
            self.notify.notified().await;
        }
    }

    /// The batch is written, or given up on for good: flushes waiting on it return.
    pub(crate) fn done(&self, batch: Batch) {
        let mut state = self.lock();
        state.written = state.written.max(batch.up_to);
        drop(state);
        self.done.notify_all();
    }

    /// Part of a batch failed for a reason that may pass (an outage): its credentials go
    /// back into the queue, merged with what was recorded since, to be written later.
    pub(crate) fn retry(&self, items: Vec<(Key, Dirty)>, everything: bool) {
        let mut state = self.lock();
        state.overflow |= everything;
        for (key, dirty) in items {
            let full = state.dirty.len() >= MAX_DIRTY;
            match state.dirty.get_mut(&key) {
                Some(d) => d.merge(dirty),
                None if full => state.overflow = true,
                None => {
                    state.dirty.insert(key, dirty);
                }
            }
        }
    }

    /// Waits until every change recorded before the call is written or given up on, for at
    /// most `timeout`, and with `sync` until the writer wrote one batch after the call (with
    /// it, the counters that change without events). Returns how many credentials still wait when it times
    /// out.
    pub(crate) fn flush(&self, timeout: Duration, sync: bool) -> Result<(), usize> {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        if sync && !state.closed {
            state.sync = true;
            state.recorded += 1;
            self.work.notify_one();
            self.notify.notify_one();
        }
        let target = state.recorded;
        while state.written < target && !state.closed {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(state.dirty.len().max(1));
            }
            state = self
                .done
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        Ok(())
    }

    /// Waits `backoff` before a retry, returning early (`false`) when the queue closes.
    #[cfg(feature = "sqlite")]
    pub(crate) fn pause(&self, backoff: Duration) -> bool {
        let state = self.lock();
        let (state, _) = self
            .work
            .wait_timeout_while(state, backoff, |s| !s.closed)
            .unwrap_or_else(|e| e.into_inner());
        !state.closed
    }

    /// Whether the queue is closed.
    #[cfg(feature = "redis")]
    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// For a writer task: waits `backoff` before a retry, returning early (`false`) when the
    /// queue closes.
    #[cfg(feature = "redis")]
    pub(crate) async fn pause_async(&self, backoff: Duration) -> bool {
        let closing = self.closing.notified();
        tokio::pin!(closing);
        // Registered before looking, so a close in between still wakes it.
        closing.as_mut().enable();
        if self.is_closed() {
            return false;
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => true,
            () = closing => false,
        }
    }

    /// No more changes: the writer writes what is queued and stops; flushes return.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.work.notify_all();
        self.done.notify_all();
        self.notify.notify_one();
        self.closing.notify_waiters();
    }
}
