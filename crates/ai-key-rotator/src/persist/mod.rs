//! Saving and restoring state: the original's `save()`/`load()` with a user adapter.
//!
//! The rotator turns its state into versioned JSON (see [`state`](self) and
//! `ARCHITECTURE.md` for the format) that names credentials by fingerprint only; an adapter
//! stores that text wherever the user likes.
//!
//! ```
//! use ai_key_rotator::{KeyRotator, MemoryPersistence, ProviderConfig};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = MemoryPersistence::new();
//! let config = || ProviderConfig::new().credential("sk-a").credential("sk-b");
//! let first = KeyRotator::builder()
//!     .provider("openai", config())
//!     .persistence(store.clone())
//!     .build()?;
//! first.mark_exhausted("openai", Some("sk-a"));
//! first.save().await?;
//!
//! // A new process restores the cooldown.
//! let second = KeyRotator::builder()
//!     .provider("openai", config())
//!     .persistence(store)
//!     .build()?;
//! assert!(second.load().await?);
//! assert_eq!(second.get_key("openai").unwrap().expose_key(), "sk-b");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

pub(crate) mod state;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

/// An adapter's error, passed through to the caller of `save` or `load`.
pub type PersistenceError = Box<dyn std::error::Error + Send + Sync>;

/// A boxed future, as returned by [`Persistence`] methods (so adapters can be trait objects).
/// Spelled out in the docs: an alias is a name users would have to import for nothing.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where saved state lives: save a string, load it back.
///
/// # Contract
/// `load` returns the text of the last successful `save`, or `None` if there was none. The
/// text contains no key, only fingerprints, labels and times, so it needs no more protection
/// than other operational data.
pub trait Persistence: Send + Sync + 'static {
    /// Stores `state`, replacing what was stored.
    fn save(&self, state: String) -> BoxFuture<'_, Result<(), PersistenceError>>;
    /// The stored state, if any.
    fn load(&self) -> BoxFuture<'_, Result<Option<String>, PersistenceError>>;
}

/// Keeps the state in memory; clones share it. For tests and for handing state between
/// rotators in one process.
#[derive(Debug, Clone, Default)]
pub struct MemoryPersistence {
    state: Arc<Mutex<Option<String>>>,
}

impl MemoryPersistence {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// What was last saved.
    pub fn contents(&self) -> Option<String> {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the stored text, as if another process had saved it.
    pub fn set_contents(&self, text: impl Into<String>) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = Some(text.into());
    }
}

impl Persistence for MemoryPersistence {
    fn save(&self, state: String) -> BoxFuture<'_, Result<(), PersistenceError>> {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = Some(state);
        Box::pin(std::future::ready(Ok(())))
    }

    fn load(&self) -> BoxFuture<'_, Result<Option<String>, PersistenceError>> {
        Box::pin(std::future::ready(Ok(self.contents())))
    }
}
