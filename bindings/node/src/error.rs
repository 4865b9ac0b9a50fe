//! Errors as JavaScript sees them: an `Error` whose `code` says what kind of failure it is and
//! whose message names the provider and credential (label or fingerprint), never the key.

use ai_key_rotator::{AcquireError, ConfigError, StateError, StoreError};

/// A JavaScript error with a string `code`.
pub(crate) type Result<T> = std::result::Result<T, napi::Error<String>>;

pub(crate) fn js_error(code: &str, message: impl Into<String>) -> napi::Error<String> {
    napi::Error::new(code.to_owned(), message.into())
}

pub(crate) fn config_error(e: ConfigError) -> napi::Error<String> {
    let code = match e {
        ConfigError::UnknownProvider { .. } => "ERR_UNKNOWN_PROVIDER",
        ConfigError::DuplicateProvider { .. } => "ERR_DUPLICATE_PROVIDER",
        ConfigError::DuplicateKey { .. } => "ERR_DUPLICATE_KEY",
        _ => "ERR_INVALID_CONFIG",
    };
    js_error(code, e.to_string())
}

pub(crate) fn state_error(e: StateError) -> napi::Error<String> {
    js_error("ERR_INVALID_STATE", e.to_string())
}

pub(crate) fn store_error(e: StoreError) -> napi::Error<String> {
    js_error("ERR_STORE", e.to_string())
}

pub(crate) fn acquire_error(e: AcquireError) -> napi::Error<String> {
    match &e {
        AcquireError::UnknownProvider { .. } => js_error("ERR_UNKNOWN_PROVIDER", e.to_string()),
        _ => js_error("ERR_NO_KEY_AVAILABLE", e.to_string()),
    }
}

pub(crate) fn destroyed() -> napi::Error<String> {
    js_error(
        "ERR_ROTATOR_DESTROYED",
        "the rotator was destroyed: create a new AIKeyRotator",
    )
}
