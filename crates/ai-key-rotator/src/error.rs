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
    /// A configuration text that could not be read: malformed, a misspelt or misplaced field,
    /// a value of the wrong type, a missing field. It says where (line, provider, credential,
    /// field) and never quotes the text, whose lines may hold keys: field names appear in it,
    /// values never do.
    #[error(
        "invalid {format} configuration{}: {reason}",
        crate::config::location(.line, .provider, .credential, .field)
    )]
    Parse {
        /// The language of the text.
        format: crate::config::ConfigFormat,
        /// The line of the problem (1-based), when the parser knows it.
        line: Option<usize>,
        /// The provider it is in.
        provider: Option<Box<str>>,
        /// The credential it is in: its label, else its fingerprint, else its position (`#2`).
        credential: Option<Box<str>>,
        /// The field it is about.
        field: Option<Box<str>>,
        /// What is wrong, with the document's values taken out.
        reason: Box<str>,
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
