//! `Credential`: a key handed out by `get_key`. Only the `key` attribute returns the secret;
//! `repr` and `str` show a label, a masked form and a fingerprint.

use ai_key_rotator::{Credential, Fingerprint};
use pyo3::prelude::*;

use crate::convert::to_py;

/// A credential handed out by `KeyRotator.get_key`.
#[pyclass(module = "ai_key_rotator", name = "Credential", frozen, freelist = 64)]
pub(crate) struct PyCredential {
    pub(crate) inner: Credential,
}

impl PyCredential {
    pub(crate) fn new(inner: Credential) -> Self {
        PyCredential { inner }
    }
}

impl std::fmt::Debug for PyCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.inner, f)
    }
}

#[pymethods]
impl PyCredential {
    /// The API key, to be written into a request.
    #[getter]
    fn key(&self) -> &str {
        self.inner.expose_key()
    }

    /// The label, if the configuration gave one.
    #[getter]
    fn label(&self) -> Option<&str> {
        self.inner.label()
    }

    /// The fingerprint: 16 hex digits of the key's SHA-256, the credential's id everywhere.
    #[getter]
    fn fingerprint(&self) -> String {
        self.inner.fingerprint().to_string()
    }

    /// The provider it belongs to.
    #[getter]
    fn provider(&self) -> &str {
        self.inner.provider()
    }

    /// The free-form metadata of the configuration, or `None`.
    #[getter]
    fn meta<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.inner.meta().map(|m| to_py(py, m)).transpose()
    }

    /// The key masked for display, such as `sk-…wxyz`.
    #[getter]
    fn masked_key(&self) -> String {
        self.inner.masked_key()
    }

    fn __repr__(&self) -> String {
        format!(
            "Credential(provider={}, label={}, key={}, fingerprint='{}')",
            quote(self.inner.provider()),
            self.inner.label().map_or_else(|| "None".to_owned(), quote),
            quote(&self.inner.masked_key()),
            self.inner.fingerprint(),
        )
    }

    fn __str__(&self) -> String {
        self.inner.to_string()
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        match other.cast::<PyCredential>() {
            Ok(o) => {
                let o = o.get();
                o.inner.provider() == self.inner.provider()
                    && o.inner.fingerprint() == self.inner.fingerprint()
            }
            Err(_) => false,
        }
    }

    fn __hash__(&self) -> u64 {
        // The fingerprint is already a hash of the key: its first 8 bytes are a fine hash.
        let fp = self.inner.fingerprint().to_string();
        u64::from_str_radix(&fp[..fp.len().min(15)], 16).unwrap_or(0)
    }
}

/// A string as Python's `repr` writes it (single quotes).
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' | '\'' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// The fingerprint of a key, as the rotator names it in status, events and stores.
#[pyfunction]
pub(crate) fn fingerprint(key: &str) -> String {
    Fingerprint::of(key).to_string()
}
