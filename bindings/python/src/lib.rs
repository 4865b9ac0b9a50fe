//! `ai_key_rotator._native`: the Rust core as a Python extension module (PyO3).
//!
//! This layer is thin on purpose: it converts Python values to the core's types and back,
//! releases the GIL around anything that can wait, and raises the package's own exceptions
//! (defined in `python/ai_key_rotator/_errors.py`). Everything Pythonic that needs no Rust
//! (context managers, `asave`, the httpx transports) lives in the Python package around it.
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

mod aio;
mod convert;
mod credential;
mod errors;
mod events;
mod execute;
mod lease;
mod names;
mod rotator;
mod runtime;
mod store;
mod stream;

use pyo3::prelude::*;

/// The extension module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<rotator::PyKeyRotator>()?;
    m.add_class::<credential::PyCredential>()?;
    m.add_class::<lease::PyLease>()?;
    m.add_class::<store::PyFileStore>()?;
    m.add_class::<store::PySqliteStore>()?;
    m.add_class::<store::PyRedisStore>()?;
    m.add_class::<store::PyFakeClock>()?;
    m.add_class::<aio::PyExecution>()?;
    m.add_class::<stream::PyStreamWatch>()?;
    m.add_function(wrap_pyfunction!(credential::fingerprint, m)?)?;
    Ok(())
}
