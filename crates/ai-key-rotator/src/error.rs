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
        reason: InvalidPolicy,
    },
    /// A budget that cannot be used.
    #[error("provider `{provider}` has an invalid budget: {reason}")]
    InvalidBudget {
        /// The provider.
        provider: String,
        /// What is wrong.
        reason: InvalidPolicy,
    },
    /// A `usage_day_timezone` that names no time zone the bundled database knows.
    #[error(
        "provider `{provider}` has an unknown usage_day_timezone `{zone}` (an IANA name such as `America/Los_Angeles` or `UTC` is expected)"
    )]
    UnknownTimeZone {
        /// The provider.
        provider: String,
        /// The name given.
        zone: String,
    },
    /// A credential with weight 0 (it would never be picked).
    #[error("credential {credential} of provider `{provider}` has weight 0")]
    ZeroWeight {
        /// The provider.
        provider: String,
        /// The credential's label or fingerprint.
        credential: String,
    },
    /// A provider's circuit settings are unusable.
    #[error("provider `{provider}` has an invalid circuit: {reason}")]
    InvalidCircuit {
        /// The provider.
        provider: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A provider's re-check settings are unusable.
    #[error("provider `{provider}` has invalid re-check settings: {reason}")]
    InvalidRecheck {
        /// The provider.
        provider: String,
        /// What is wrong.
        reason: &'static str,
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

/// What is wrong with a cooldown policy or a budget, as data (see
/// [`ConfigError::InvalidCooldown`] and [`ConfigError::InvalidBudget`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidPolicy {
    /// A duration of zero where a rest or a limit must have a length.
    #[error("zero-length cooldown")]
    ZeroLength,
    /// A day of the month outside 1 to 31.
    #[error("day {0} is not a day of the month (1 to 31)")]
    DayOfMonth(u8),
    /// An exponential factor below 1 (or not a number); the text is the factor as written.
    #[error("exponential factor {0} must be at least 1")]
    Factor(String),
    /// An exponential cooldown whose maximum is below its base.
    #[error("exponential max_ms is less than base_ms")]
    MaxBelowBase,
    /// A `from-response` cap of zero.
    #[error("from-response cap_ms must be positive")]
    ZeroCap,
    /// Not a time of day.
    #[error("`{0}` is not a time of day (HH:MM or HH:MM:SS)")]
    TimeOfDay(String),
    /// Not an IANA time zone.
    #[error("`{0}` is not a known IANA time zone")]
    TimeZone(String),
    /// A budget limit of zero.
    #[error("budget {0} must be positive")]
    ZeroLimit(&'static str),
}
