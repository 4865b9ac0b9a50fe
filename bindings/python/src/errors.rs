//! The package's exceptions, raised from Rust. They are defined in Python
//! (`ai_key_rotator._errors`) so that they carry attributes (`retry_after`) and can be
//! subclassed and documented like any Python exception.

use ai_key_rotator::{AcquireError, ConfigError, StateError, StoreError, Timestamp};
use pyo3::prelude::*;

/// An exception of class `class` (from `ai_key_rotator._errors`) with `message`.
pub(crate) fn raise(py: Python<'_>, class: &str, message: String) -> PyErr {
    match py
        .import("ai_key_rotator._errors")
        .and_then(|m| m.getattr(class))
        .and_then(|c| c.call1((message,)))
    {
        Ok(value) => PyErr::from_value(value),
        Err(e) => e,
    }
}

pub(crate) fn config_error(py: Python<'_>, e: &ConfigError) -> PyErr {
    let class = match e {
        ConfigError::UnknownProvider { .. } => "UnknownProvider",
        _ => "ConfigError",
    };
    raise(py, class, e.to_string())
}

pub(crate) fn state_error(py: Python<'_>, e: &StateError) -> PyErr {
    raise(py, "StateError", e.to_string())
}

pub(crate) fn store_error(py: Python<'_>, e: &StoreError) -> PyErr {
    raise(py, "StoreError", e.to_string())
}

/// `NoKeyAvailable` for `provider`, with the time a key is back (Unix seconds) and the wait
/// until then (seconds) as attributes.
pub(crate) fn no_key(
    py: Python<'_>,
    provider: &str,
    message: String,
    retry_at: Option<Timestamp>,
    now: Timestamp,
) -> PyErr {
    let retry_at_s = retry_at.map(|t| t.as_millis() as f64 / 1000.0);
    let retry_after_s = retry_at.map(|t| t.saturating_duration_since(now).as_secs_f64());
    match py
        .import("ai_key_rotator._errors")
        .and_then(|m| m.getattr("NoKeyAvailable"))
        .and_then(|c| c.call1((message, provider, retry_at_s, retry_after_s)))
    {
        Ok(value) => PyErr::from_value(value),
        Err(e) => e,
    }
}

pub(crate) fn acquire_error(py: Python<'_>, e: &AcquireError, now: Timestamp) -> PyErr {
    match e {
        AcquireError::UnknownProvider { .. } => raise(py, "UnknownProvider", e.to_string()),
        AcquireError::Unavailable { provider, retry_at } => {
            no_key(py, provider, e.to_string(), *retry_at, now)
        }
        _ => raise(py, "RotatorError", e.to_string()),
    }
}
