//! Error types. Each names the provider and credential (by label or fingerprint) it is about,
//! never a key.

/// A configuration that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A provider with an empty name.
    #[error("provider name is empty")]
    EmptyProviderName,
    /// A provider with no credentials.
    #[error("provider `{provider}` has no credentials")]
    NoCredentials {
        /// The provider.
        provider: String,
    },
    /// A credential whose key is empty or only whitespace.
    #[error("credential {credential} of provider `{provider}` has an empty key")]
    EmptyKey {
        /// The provider.
        provider: String,
        /// The credential's label, or its position (`#2`).
        credential: String,
    },
    /// The same key twice in one provider.
    #[error("credential {credential} of provider `{provider}` is a duplicate key")]
    DuplicateKey {
        /// The provider.
        provider: String,
        /// The credential's label or fingerprint.
        credential: String,
    },
    /// A fixed cooldown of zero milliseconds.
    #[error("provider `{provider}` has a zero-length cooldown")]
    ZeroCooldown {
        /// The provider.
        provider: String,
    },
    /// A cooldown policy that cannot be used (an unknown time zone, a bad time of day, …).
    #[error("provider `{provider}` has an invalid cooldown: {reason}")]
    InvalidCooldown {
        /// The provider.
        provider: String,
        /// What is wrong.
        reason: String,
    },
    /// A budget that cannot be used.
    #[error("provider `{provider}` has an invalid budget: {reason}")]
    InvalidBudget {
        /// The provider.
        provider: String,
        /// What is wrong.
        reason: String,
    },
    /// A credential with weight 0 (it would never be picked).
    #[error("credential {credential} of provider `{provider}` has weight 0")]
    ZeroWeight {
        /// The provider.
        provider: String,
        /// The credential's label or fingerprint.
        credential: String,
    },
    /// A provider added twice.
    #[error("provider `{provider}` already exists")]
    DuplicateProvider {
        /// The provider.
        provider: String,
    },
    /// An operation on a provider that does not exist.
    #[error("unknown provider `{provider}`")]
    UnknownProvider {
        /// The provider.
        provider: String,
    },
    /// More credentials in one provider than the rotator indexes (2³² − 1).
    #[error("provider `{provider}` has too many credentials")]
    TooManyCredentials {
        /// The provider.
        provider: String,
    },
}

/// Saved state that could not be loaded. Loading that fails changes nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The persistence adapter failed.
    #[error("persistence failed: {0}")]
    Persistence(#[source] crate::persist::PersistenceError),
    /// The text is not rotator state (not JSON, or not the expected shape).
    #[error("saved state is corrupt: {0}")]
    Corrupt(String),
    /// State written by a newer version of this library.
    #[error("saved state has version {found}, this library reads up to version {supported}")]
    UnsupportedVersion {
        /// The version in the state.
        found: u64,
        /// The newest version this library reads.
        supported: u64,
    },
}
