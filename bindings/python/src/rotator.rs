//! `KeyRotator`: the core's rotator as a Python class. The Python package subclasses it to
//! add what needs no Rust (context manager, `asave`/`aload`, `from_toml`).

use std::sync::Arc;
use std::time::Duration;

use ai_key_rotator::classify::{Response, Verdict};
use ai_key_rotator::{AcquireOptions, KeyRotator, RotatorConfig};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use crate::convert::{bytes_of, credential_config, provider_config, to_py};
use crate::credential::PyCredential;
use crate::errors::{config_error, raise, state_error};
use crate::events::{Listeners, normalize};
use crate::lease::PyLease;
use crate::names::NameCache;
use crate::runtime::block_on;
use crate::store::{PyPersistence, StoreSpec, clock_of};

/// Hands out API keys per provider, rotating away from keys that hit their limits.
#[pyclass(module = "ai_key_rotator", name = "KeyRotator", frozen)]
pub(crate) struct PyKeyRotator {
    pub(crate) inner: KeyRotator,
    listeners: Arc<Listeners>,
    names: NameCache,
}

impl std::fmt::Debug for PyKeyRotator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.inner, f)
    }
}

/// A verdict as a dict: the core's serialized form (`kind`, `until` in Unix ms, …) plus
/// `blames_key`.
pub(crate) fn verdict_dict<'py>(py: Python<'py>, verdict: &Verdict) -> PyResult<Bound<'py, PyAny>> {
    let data = to_py(py, verdict)?;
    if let Ok(d) = data.cast::<PyDict>() {
        d.set_item("blames_key", verdict.blames_key())?;
    }
    Ok(data)
}

impl PyKeyRotator {
    /// Attaches persistence, clock and store to `builder` and builds; the store is opened with
    /// the GIL released (it reads a file or connects to Redis).
    fn build(
        py: Python<'_>,
        mut builder: ai_key_rotator::KeyRotatorBuilder,
        persistence: Option<Py<PyAny>>,
        store: Option<&Bound<'_, PyAny>>,
        clock: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        if let Some(p) = persistence.filter(|p| !p.is_none(py)) {
            builder = builder.persistence(PyPersistence::new(p));
        }
        if let Some(c) = clock.filter(|c| !c.is_none()) {
            builder = builder.clock(clock_of(c)?);
        }
        let spec = store
            .filter(|s| !s.is_none())
            .map(|s| StoreSpec::from_py(py, s))
            .transpose()?;
        // Opening a store reads a file or connects to Redis: let other Python threads run.
        let built = py.detach(move || -> Result<_, BuildError> {
            let builder = match spec {
                Some(s) => s.attach(builder).map_err(BuildError::Store)?,
                None => builder,
            };
            builder.build().map_err(BuildError::Config)
        });
        let inner = match built {
            Ok(r) => r,
            Err(BuildError::Store(e)) => return Err(crate::errors::store_error(py, &e)),
            Err(BuildError::Config(e)) => return Err(config_error(py, &e)),
        };
        Ok(PyKeyRotator {
            inner,
            listeners: Arc::default(),
            names: NameCache::default(),
        })
    }
}

#[pymethods]
impl PyKeyRotator {
    #[new]
    #[pyo3(signature = (providers = None, *, persistence = None, reset_interval_ms = 600_000, store = None, clock = None))]
    fn new(
        py: Python<'_>,
        providers: Option<&Bound<'_, PyDict>>,
        persistence: Option<Py<PyAny>>,
        reset_interval_ms: u64,
        store: Option<&Bound<'_, PyAny>>,
        clock: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let mut builder =
            KeyRotator::builder().reset_interval(Duration::from_millis(reset_interval_ms));
        if let Some(p) = providers {
            for (name, config) in crate::convert::providers(py, p)? {
                builder = builder.provider(name, config);
            }
        }
        Self::build(py, builder, persistence, store, clock)
    }

    /// An available credential of `provider`, or `None` when the provider is unknown or every
    /// key is cooling or disabled. Sticky (fill-first) by default, as in the original.
    fn get_key(&self, provider: &Bound<'_, PyString>) -> PyResult<Option<PyCredential>> {
        self.names
            .with(provider, |p| self.inner.get_key(p).map(PyCredential::new))
    }

    /// Marks a key exhausted (the provider's current key with `key=None`) and starts its
    /// cooldown; returns whether a key was found. `key` may be the key or a `Credential`.
    #[pyo3(signature = (provider, key = None))]
    fn mark_exhausted(&self, provider: &str, key: Option<&Bound<'_, PyAny>>) -> PyResult<bool> {
        match key {
            None => Ok(self.inner.mark_exhausted(provider, None)),
            Some(k) if k.is_none() => Ok(self.inner.mark_exhausted(provider, None)),
            Some(k) => match k.cast::<PyCredential>() {
                Ok(c) => Ok(self.inner.mark_credential_exhausted(&c.get().inner)),
                Err(_) => Ok(self
                    .inner
                    .mark_exhausted(provider, Some(&k.extract::<String>()?))),
            },
        }
    }

    /// Moves the provider to its next available key; `False` if there is none.
    fn rotate_next(&self, provider: &str) -> bool {
        self.inner.rotate_next(provider)
    }

    /// Whether the provider has an available key now.
    fn has_available(&self, provider: &str) -> bool {
        self.inner.has_available(provider)
    }

    /// The provider names, in the order they were added.
    fn get_providers(&self) -> Vec<String> {
        self.inner.providers()
    }

    /// The status of every provider, or of one; keys appear masked and by fingerprint.
    #[pyo3(signature = (provider = None))]
    fn get_status<'py>(
        &self,
        py: Python<'py>,
        provider: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        match provider {
            None => to_py(py, &self.inner.status()),
            Some(p) => match self.inner.provider_status(p) {
                Some(s) => to_py(py, &s),
                None => Err(raise(
                    py,
                    "UnknownProvider",
                    format!("unknown provider `{p}`"),
                )),
            },
        }
    }

    /// Adds a credential (a key, or a dict with `key`, `label`, `meta`, `scope`, `weight`).
    fn add_credential(
        &self,
        py: Python<'_>,
        provider: &str,
        credential: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let config = credential_config(py, provider, credential)?;
        self.inner
            .add_credential(provider, config)
            .map_err(|e| config_error(py, &e))
    }

    /// Removes the credential with this key; `False` if there is none.
    fn remove_credential(&self, provider: &str, key: &str) -> bool {
        self.inner.remove_credential(provider, key)
    }

    /// Adds a provider from a dict in the shape of the constructor's `providers` values.
    fn add_provider(&self, py: Python<'_>, name: &str, config: &Bound<'_, PyAny>) -> PyResult<()> {
        let config = provider_config(py, name, config)?;
        self.inner
            .add_provider(name, config)
            .map_err(|e| config_error(py, &e))
    }

    /// Ends the running cooldowns of `provider` (of all with `None`); returns how many keys
    /// became available. Disabled keys stay disabled.
    #[pyo3(signature = (provider = None))]
    fn reset_all(&self, provider: Option<&str>) -> usize {
        self.inner.reset_all(provider)
    }

    /// Disables a key until `enable`d; `False` if there is no such key or it is disabled.
    fn disable(&self, provider: &str, key: &str) -> bool {
        self.inner.disable(provider, key)
    }

    /// Enables a disabled key; `False` if there is no such key or it is not disabled.
    fn enable(&self, provider: &str, key: &str) -> bool {
        self.inner.enable(provider, key)
    }

    /// The classifier family of the provider (`"openai"`, `"anthropic"`, `"gemini"`, …).
    fn family(&self, py: Python<'_>, provider: &str) -> PyResult<String> {
        match self.inner.family(provider) {
            Some(f) => to_py(py, &f)?.extract(),
            None => Err(raise(
                py,
                "UnknownProvider",
                format!("unknown provider `{provider}`"),
            )),
        }
    }

    /// Classifies a provider's response to a request made with `credential` and applies it:
    /// cools the key (or its quota scope) until the provider's reset time, disables an
    /// invalid key. Returns the verdict as a dict.
    #[pyo3(signature = (credential, status, headers = None, body = None))]
    fn report_response<'py>(
        &self,
        py: Python<'py>,
        credential: &Bound<'py, PyCredential>,
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
        let verdict = self.inner.report_response(
            &credential.get().inner,
            &Response::new(status, &headers, &body),
        );
        verdict_dict(py, &verdict)
    }

    /// Records a success: the key's consecutive-failure count starts again from zero.
    fn report_success(&self, credential: &Bound<'_, PyCredential>) {
        self.inner.report_success(&credential.get().inner)
    }

    /// A lease on an available key: use as `with rotator.acquire("openai") as lease:`.
    /// Raises `NoKeyAvailable` (with `retry_after`) when none is available.
    #[pyo3(signature = (provider, *, session = None, tokens = 0))]
    fn acquire(
        &self,
        py: Python<'_>,
        provider: &str,
        session: Option<String>,
        tokens: u64,
    ) -> PyResult<PyLease> {
        let mut options = AcquireOptions::default().tokens(tokens);
        if let Some(s) = session {
            options = options.session(s);
        }
        PyLease::acquire(py, self.inner.clone(), provider, &options)
    }

    /// The current time on the rotator's clock, in Unix seconds.
    fn now(&self) -> f64 {
        self.inner.now().as_millis() as f64 / 1000.0
    }

    /// Saves the state through the `persistence` adapter (nothing without one).
    fn save(&self, py: Python<'_>) -> PyResult<()> {
        let inner = self.inner.clone();
        py.detach(move || block_on(inner.save()))
            .map_err(|e| state_error(py, &e))
    }

    /// Restores the state saved by `save`; `False` when nothing was saved.
    fn load(&self, py: Python<'_>) -> PyResult<bool> {
        let inner = self.inner.clone();
        py.detach(move || block_on(inner.load()))
            .map_err(|e| state_error(py, &e))
    }

    /// The state as versioned JSON (credentials by fingerprint only).
    fn export_state(&self) -> String {
        self.inner.export_state()
    }

    /// Restores state from `export_state`'s text.
    fn import_state(&self, py: Python<'_>, state: &str) -> PyResult<()> {
        self.inner
            .import_state(state)
            .map_err(|e| state_error(py, &e))
    }

    /// Why the store's state could not be loaded at start (the rotator then started
    /// fresh), or `None`.
    fn store_error(&self) -> Option<String> {
        self.inner.store_error().map(|e| e.to_string())
    }

    /// Waits until the store has written every change so far.
    fn flush(&self, py: Python<'_>) {
        let inner = self.inner.clone();
        py.detach(move || inner.flush_store());
    }

    /// Registers `callback(event: dict)` for `event` (`"exhausted"`, `"rotated"`,
    /// `"all_exhausted"`, `"reset"`, `"scope_exhausted"`, `"disabled"`, `"enabled"`,
    /// `"remote"`, `"lagged"`, or `"*"` for all). Callbacks run on the rotator's event thread
    /// with the GIL held, never on the caller of `get_key`.
    fn on(&self, py: Python<'_>, event: &str, callback: Py<PyAny>) -> PyResult<()> {
        let Some(name) = normalize(event) else {
            return Err(raise(
                py,
                "ConfigError",
                format!(
                    "unknown event `{event}`; known: {}",
                    crate::events::EVENTS.join(", ")
                ),
            ));
        };
        if !callback.bind(py).is_callable() {
            return Err(raise(
                py,
                "ConfigError",
                "the callback is not callable".into(),
            ));
        }
        self.listeners.add(name, callback);
        let inner = self.inner.clone();
        self.listeners.start(move || inner.subscribe());
        Ok(())
    }

    /// Unregisters a callback registered with `on`.
    fn off(&self, py: Python<'_>, event: &str, callback: &Bound<'_, PyAny>) {
        if let Some(name) = normalize(event) {
            self.listeners.remove(py, name, callback);
        }
    }

    /// Stops the background ticker after the store has written every change, and forgets
    /// every event callback (the original's `destroy`).
    fn close(&self, py: Python<'_>) {
        self.listeners.clear();
        let inner = self.inner.clone();
        py.detach(move || inner.shutdown());
    }

    /// Runs one request through the core's retry loop; see `ai_key_rotator.httpx`.
    // The arguments mirror the keyword signature the transports call.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (providers, send, *, max_attempts = 4, deadline = None, session = None, tokens = 0))]
    fn _execute(
        &self,
        py: Python<'_>,
        providers: Vec<String>,
        send: Py<PyAny>,
        max_attempts: u32,
        deadline: Option<f64>,
        session: Option<String>,
        tokens: u64,
    ) -> PyResult<Py<PyAny>> {
        let plan = crate::execute::plan(py, providers, max_attempts, deadline, session, tokens)?;
        crate::execute::blocking(py, &self.inner, plan, send)
    }

    /// The asynchronous form of `_execute`: an `Execution` that a coroutine on `event_loop`
    /// drives (see `ai_key_rotator._transport`).
    #[pyo3(signature = (providers, event_loop, *, max_attempts = 4, deadline = None, session = None, tokens = 0))]
    #[allow(clippy::too_many_arguments)]
    fn _execute_async(
        &self,
        py: Python<'_>,
        providers: Vec<String>,
        event_loop: Py<PyAny>,
        max_attempts: u32,
        deadline: Option<f64>,
        session: Option<String>,
        tokens: u64,
    ) -> PyResult<crate::aio::PyExecution> {
        let plan = crate::execute::plan(py, providers, max_attempts, deadline, session, tokens)?;
        Ok(crate::aio::start(&self.inner, plan, event_loop))
    }

    /// A watcher of a successful event stream of a request made with `credential`: feed it
    /// the chunks as they pass; an error event inside is reported against the credential.
    fn _watch_stream(&self, credential: &Bound<'_, PyCredential>) -> crate::stream::PyStreamWatch {
        crate::stream::PyStreamWatch::new(self.inner.clone(), credential.get().inner.clone())
    }

    /// A rotator from a TOML file in the core's configuration shape (`[providers.NAME]`
    /// tables, optional `reset_interval_ms`), read by the core: errors name the line,
    /// provider, credential and field, and never quote the file.
    #[staticmethod]
    #[pyo3(signature = (path, *, persistence = None, store = None, clock = None))]
    fn from_toml(
        py: Python<'_>,
        path: std::path::PathBuf,
        persistence: Option<Py<PyAny>>,
        store: Option<&Bound<'_, PyAny>>,
        clock: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let text = std::fs::read_to_string(&path).map_err(|e| {
            raise(
                py,
                "ConfigError",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        let config = RotatorConfig::from_toml_str(&text).map_err(|e| config_error(py, &e))?;
        Self::build(
            py,
            KeyRotator::builder().config(config),
            persistence,
            store,
            clock,
        )
    }

    /// `save` without blocking the event loop (in the loop's default executor).
    fn asave<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        util(slf.py(), "in_executor")?.call1((slf.getattr("save")?,))
    }

    /// `load` without blocking the event loop.
    fn aload<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        util(slf.py(), "in_executor")?.call1((slf.getattr("load")?,))
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) {
        self.close(py);
    }

    fn __aenter__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        util(slf.py(), "ready")?.call1((slf,))
    }

    #[pyo3(signature = (*_args))]
    fn __aexit__<'py>(
        slf: &Bound<'py, Self>,
        _args: &Bound<'py, pyo3::types::PyTuple>,
    ) -> PyResult<Bound<'py, PyAny>> {
        util(slf.py(), "in_executor")?.call1((slf.getattr("close")?,))
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let names = PyList::new(py, self.inner.providers())?;
        Ok(format!("KeyRotator(providers={})", names.repr()?))
    }
}

/// A helper of `ai_key_rotator._util`.
fn util<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    py.import("ai_key_rotator._util")?.getattr(name)
}

enum BuildError {
    Store(ai_key_rotator::StoreError),
    Config(ai_key_rotator::ConfigError),
}
