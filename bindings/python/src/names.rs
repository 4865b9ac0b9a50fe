//! Provider names passed from Python, read without copying on the hot path.

use pyo3::prelude::*;
use pyo3::types::PyString;

/// Provider names as Rust strings, by the identity of the Python string objects callers pass.
///
/// The stable ABI of Python 3.9 has no way to read a `str`'s UTF-8 without copying it into a
/// new `bytes` object, which costs more than the rest of `get_key`. Callers almost always pass
/// the same few string objects (literals, constants), so the first `CAPACITY` distinct ones are
/// remembered. The cache holds a reference to each, so an address cannot be reused by another
/// string while it is cached.
#[derive(Debug, Default)]
pub(crate) struct NameCache(std::sync::RwLock<Vec<(Py<PyString>, Box<str>)>>);

impl NameCache {
    const CAPACITY: usize = 32;

    pub(crate) fn with<R>(
        &self,
        name: &Bound<'_, PyString>,
        f: impl FnOnce(&str) -> R,
    ) -> PyResult<R> {
        {
            let cached = self.0.read().unwrap_or_else(|e| e.into_inner());
            if let Some((_, s)) = cached.iter().find(|(k, _)| k.as_ptr() == name.as_ptr()) {
                return Ok(f(s));
            }
        }
        let owned = name.to_cow()?.into_owned();
        let mut cached = self.0.write().unwrap_or_else(|e| e.into_inner());
        if cached.len() < Self::CAPACITY {
            cached.push((name.clone().unbind(), owned.clone().into_boxed_str()));
        }
        drop(cached);
        Ok(f(&owned))
    }
}
