//! Rotate API keys across AI providers: hand out an available key per provider, rotate away
//! from keys that hit their limits, and bring them back exactly when their cooldown ends.
//!
//! This is the Rust implementation of the `ai-key-rotator` npm library, with every capability
//! of the original and a [`get_key`](KeyRotator::get_key) that costs nanoseconds and scales
//! across threads.
//!
//! # Quick start
//!
//! ```
//! use ai_key_rotator::{Cooldown, CredentialConfig, KeyRotator, ProviderConfig};
//! use std::time::Duration;
//!
//! let rotator = KeyRotator::builder()
//!     .provider(
//!         "openai",
//!         ProviderConfig::new()
//!             .credential(CredentialConfig::new("sk-key1").label("personal"))
//!             .credential(CredentialConfig::new("sk-key2").label("work"))
//!             .cooldown(Cooldown::fixed(Duration::from_secs(60))), // 1 min cooldown
//!     )
//!     .provider(
//!         "google",
//!         // Default cooldown: until the next midnight UTC.
//!         ProviderConfig::new().credential("AIza-1").credential("AIza-2"),
//!     )
//!     .build()?;
//!
//! // Get an available key.
//! let cred = rotator.get_key("openai").expect("a key");
//! assert_eq!(cred.expose_key(), "sk-key1");
//!
//! // On a rate limit error, mark it: the rotator moves to the next key.
//! rotator.mark_exhausted("openai", Some("sk-key1"));
//! let next = rotator.get_key("openai").expect("a key");
//! assert_eq!(next.expose_key(), "sk-key2");
//! # Ok::<(), ai_key_rotator::ConfigError>(())
//! ```
//!
//! # Map
//! - [`KeyRotator`]: the rotator; [`KeyRotator::builder`] or [`KeyRotator::from_config`].
//! - [`RotatorConfig`], [`ProviderConfig`], [`CredentialConfig`], [`Cooldown`]: configuration,
//!   read from TOML or JSON in the original's shape with [`RotatorConfig::from_toml_str`] and
//!   [`RotatorConfig::from_json_str`], whose errors never quote the text (it holds keys).
//! - [`Credential`]: a handed-out key; [`CredentialId`] and [`Fingerprint`] name it safely.
//! - [`Event`] and [`Subscription`]: what happened, for whoever listens.
//! - [`RotatorStatus`]: what each provider and credential is doing.
//! - Keeping state, two ways; pick one:
//!   - a [`StateStore`] ([`KeyRotatorBuilder::store`]): written through on every change, off
//!     your threads; shared by processes with `SqliteStore` (feature `sqlite`) or `RedisStore`
//!     (feature `redis`), or kept by one with [`FileStore`] (default feature `file`). The usual
//!     choice.
//!   - a [`Persistence`] adapter ([`KeyRotatorBuilder::persistence`]): the original's explicit
//!     `save()`/`load()`, for storage the crate does not provide.
//! - [`Clock`], [`FakeClock`]: time, injectable for tests.
//!
//! # Secrets
//! A key is readable only through [`Credential::expose_key`]. `Debug` and `Display` of every
//! type, errors, events, status and saved state name credentials by label and fingerprint.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

mod affinity;
mod budget;
mod circuit;
pub mod classify;
mod clock;
mod config;
mod cooldown;
mod credential;
mod error;
mod events;
pub mod execute;
mod identity;
mod lease;
mod ledger;
mod persist;
mod pool;
mod recheck;
mod request;
mod rotator;
mod status;
mod store;
mod strategy;

pub use affinity::prefix_hash;
pub use budget::{Budget, LimitKind, LimitUse};
pub use circuit::{CircuitConfig, ProviderCause};
pub use clock::{Clock, FakeClock, SystemClock, Timestamp};
pub use config::{
    ConfigFormat, CredentialConfig, DEFAULT_RESET_INTERVAL_MS, ProviderConfig, RotatorConfig,
    parse_config,
};
pub use cooldown::Cooldown;
pub use credential::Credential;
pub use error::{ConfigError, InvalidPolicy, StateError};
pub use events::{Event, RecvError, Subscription};
pub use identity::{CredentialId, Fingerprint, InvalidFingerprint};
pub use lease::{AcquireError, AcquireOptions, Lease};
pub use ledger::{AnswerClass, DailyUsage, UsageCounts, UsageError};
pub use persist::{MemoryPersistence, Persistence, PersistenceError};
pub use recheck::{DueProbe, RecheckConfig, RecheckKind};
pub use request::request_model;
pub use rotator::{Headroom, KeyRotator, KeyRotatorBuilder, ReportOutcome};
pub use status::{
    CircuitStatus, CooldownReason, CredentialState, CredentialStatus, KeyBudget,
    ModelCooldownStatus, ProviderBudgets, ProviderStatus, RotatorStatus, ScopeBudget,
};
#[cfg(feature = "file")]
pub use store::FileStore;
#[cfg(feature = "sqlite")]
pub use store::SqliteStore;
pub use store::{FleetView, Replica, StateStore, StoreError, StoreFault, StoreHealth};
#[cfg(feature = "redis")]
pub use store::{RedisMonitor, RedisStore, RedisStoreBuilder};
pub use strategy::Strategy;

#[cfg(test)]
mod static_checks {
    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn handles_are_send_and_sync() {
        assert_send_sync::<crate::KeyRotator>();
        assert_send_sync::<crate::Credential>();
        assert_send_sync::<crate::Event>();
    }
}
