//! `Lease`: a credential held for one request, as a (sync or async) context manager.
//!
//! The core's `Lease` borrows its rotator; `self_cell` keeps a handle on the rotator and the
//! lease borrowing it in one Python object, so the lease stays valid for as long as Python
//! holds it, without unsafe code.

use ai_key_rotator::{KeyRotator, Lease};
use pyo3::prelude::*;

use crate::convert::bytes_of;
use crate::credential::{PyCredential, quote};
use crate::errors::raise;
use crate::rotator::verdict_dict;

type Held<'a> = Option<Lease<'a>>;

self_cell::self_cell!(
    struct LeaseCell {
        owner: KeyRotator,
        #[covariant]
        dependent: Held,
    }
);

/// A credential held for one request: counted in flight until released, and where the
/// request's outcome is reported. Use it as `with rotator.acquire(p) as lease:` (or
/// `async with`); leaving the block without a report releases it as neither success nor
/// failure.
#[pyclass(module = "ai_key_rotator", name = "Lease")]
pub(crate) struct PyLease {
    cell: LeaseCell,
    credential: Py<PyCredential>,
}

impl std::fmt::Debug for PyLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").finish_non_exhaustive()
    }
}

impl PyLease {
    pub(crate) fn acquire(
        py: Python<'_>,
        rotator: KeyRotator,
        provider: &str,
        options: &ai_key_rotator::AcquireOptions,
    ) -> PyResult<PyLease> {
        let now = rotator.now();
        let cell = LeaseCell::try_new(rotator, |r| r.acquire_with(provider, options).map(Some))
            .map_err(|e| crate::errors::acquire_error(py, &e, now))?;
        let credential = cell
            .borrow_dependent()
            .as_ref()
            .map(|l| PyCredential::new(l.credential().clone()))
            .expect("a new lease holds its credential");
        Ok(PyLease {
            cell,
            credential: Py::new(py, credential)?,
        })
    }

    /// Ends the lease with `f`, or raises if it has ended already.
    fn finish<R>(&mut self, py: Python<'_>, f: impl FnOnce(Lease<'_>) -> R) -> PyResult<R> {
        self.cell.with_dependent_mut(|_, held| match held.take() {
            Some(lease) => Ok(f(lease)),
            None => Err(raise(
                py,
                "RotatorError",
                "the lease has already ended".into(),
            )),
        })
    }
}

#[pymethods]
impl PyLease {
    /// The credential held.
    #[getter]
    fn credential(&self, py: Python<'_>) -> Py<PyCredential> {
        self.credential.clone_ref(py)
    }

    /// The API key, to be written into the request.
    #[getter]
    fn key(&self, py: Python<'_>) -> String {
        self.credential.bind(py).get().inner.expose_key().to_owned()
    }

    /// The provider of the credential.
    #[getter]
    fn provider(&self, py: Python<'_>) -> String {
        self.credential.bind(py).get().inner.provider().to_owned()
    }

    /// Whether the lease is still held (not yet reported or released).
    #[getter]
    fn active(&self) -> bool {
        self.cell.borrow_dependent().is_some()
    }

    /// Classifies the provider's response with the provider's rules, applies it (cooldown,
    /// disabling) and ends the lease. Returns the verdict as a dict.
    #[pyo3(signature = (status, headers = None, body = None))]
    fn report_response<'py>(
        &mut self,
        py: Python<'py>,
        status: u16,
        headers: Option<&Bound<'py, PyAny>>,
        body: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let headers = match headers {
            Some(h) => crate::convert::headers(h)?,
            None => Vec::new(),
        };
        let body = match body {
            Some(b) if !b.is_none() => bytes_of(b)?,
            _ => Vec::new(),
        };
        let verdict = self.finish(py, |lease| {
            lease.report_response(&ai_key_rotator::classify::Response::new(
                status, &headers, &body,
            ))
        })?;
        verdict_dict(py, &verdict)
    }

    /// Reports a success, with the tokens the request really used if known, and ends the
    /// lease.
    #[pyo3(signature = (tokens_used = None))]
    fn success(&mut self, py: Python<'_>, tokens_used: Option<u64>) -> PyResult<()> {
        self.finish(py, |lease| lease.success(tokens_used))
    }

    /// Ends the lease without reporting anything.
    fn release(&mut self) {
        self.cell.with_dependent_mut(|_, held| drop(held.take()));
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&mut self, _args: &Bound<'_, pyo3::types::PyTuple>) {
        self.release();
    }

    fn __aenter__<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        ready(py, slf.into_any())
    }

    #[pyo3(signature = (*_args))]
    fn __aexit__<'py>(
        &mut self,
        py: Python<'py>,
        _args: &Bound<'py, pyo3::types::PyTuple>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.release();
        ready(
            py,
            pyo3::types::PyBool::new(py, false).to_owned().into_any(),
        )
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let cred = self.credential.bind(py).get();
        format!(
            "Lease(provider={}, label={}, fingerprint='{}', active={})",
            quote(cred.inner.provider()),
            cred.inner.label().map_or_else(|| "None".to_owned(), quote),
            cred.inner.fingerprint(),
            if self.active() { "True" } else { "False" }
        )
    }
}

/// An awaitable that returns `value` at once (the `async with` protocol wants awaitables).
fn ready<'py>(py: Python<'py>, value: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    py.import("ai_key_rotator._util")?
        .getattr("ready")?
        .call1((value,))
}
