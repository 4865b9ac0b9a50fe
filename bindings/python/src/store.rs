//! Stores and persistence: the core's file, SQLite and Redis stores as Python values, a
//! Python object as the original's `persistence` adapter, and a fake clock for tests.

use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use ai_key_rotator::{
    Clock, FakeClock, FileStore, KeyRotatorBuilder, Persistence, PersistenceError, RedisStore,
    SqliteStore, Timestamp,
};
use pyo3::prelude::*;

/// Keeps the rotator's state in a JSON file (atomic writes, mode 0600), for one process.
#[pyclass(module = "ai_key_rotator", name = "FileStore", frozen)]
#[derive(Debug)]
pub(crate) struct PyFileStore {
    path: PathBuf,
}

#[pymethods]
impl PyFileStore {
    #[new]
    fn new(path: PathBuf) -> Self {
        PyFileStore { path }
    }

    fn __repr__(&self) -> String {
        format!("FileStore({:?})", self.path)
    }
}

/// Keeps the state in a SQLite database (WAL), shared by the processes of one machine.
#[pyclass(module = "ai_key_rotator", name = "SqliteStore", frozen)]
#[derive(Debug)]
pub(crate) struct PySqliteStore {
    path: PathBuf,
    poll_interval_ms: Option<u64>,
}

#[pymethods]
impl PySqliteStore {
    #[new]
    #[pyo3(signature = (path, *, poll_interval_ms = None))]
    fn new(path: PathBuf, poll_interval_ms: Option<u64>) -> Self {
        PySqliteStore {
            path,
            poll_interval_ms,
        }
    }

    fn __repr__(&self) -> String {
        format!("SqliteStore({:?})", self.path)
    }
}

/// Keeps the state in Redis, shared by a fleet; changes from other processes are pushed in.
/// `rediss://` URLs use TLS; `ca_file` names a PEM certificate authority to trust instead of
/// the system's roots.
#[pyclass(module = "ai_key_rotator", name = "RedisStore", frozen)]
pub(crate) struct PyRedisStore {
    url: String,
    prefix: Option<String>,
    /// The CA file's name (for `repr`) and its PEM text, read when the store is made so a
    /// wrong path fails there, naming the file.
    ca: Option<(PathBuf, Vec<u8>)>,
}

impl std::fmt::Debug for PyRedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password.
        f.debug_struct("PyRedisStore")
            .field("url", &"<redacted>")
            .field("prefix", &self.prefix)
            .field("ca_file", &self.ca.as_ref().map(|(p, _)| p))
            .finish()
    }
}

#[pymethods]
impl PyRedisStore {
    #[new]
    #[pyo3(signature = (url, *, prefix = None, ca_file = None))]
    fn new(
        py: Python<'_>,
        url: String,
        prefix: Option<String>,
        ca_file: Option<PathBuf>,
    ) -> PyResult<Self> {
        let ca = match ca_file {
            None => None,
            Some(path) => match std::fs::read(&path) {
                Ok(pem) => Some((path, pem)),
                Err(e) => {
                    return Err(crate::errors::raise(
                        py,
                        "ConfigError",
                        format!("cannot read ca_file {}: {e}", path.display()),
                    ));
                }
            },
        };
        Ok(PyRedisStore { url, prefix, ca })
    }

    fn __repr__(&self) -> String {
        // The URL may carry a password: show only where it points.
        let (scheme, rest) = self.url.split_once("://").unwrap_or(("redis", &self.url));
        let host = rest.rsplit('@').next().unwrap_or("");
        let ca = match &self.ca {
            Some((p, _)) => format!(", ca_file={:?}", p.display().to_string()),
            None => String::new(),
        };
        format!(
            "RedisStore({scheme}://…@{host}, prefix={:?}{ca})",
            self.prefix
        )
    }
}

/// Which store to open: read from the Python value with the GIL, opened without it.
pub(crate) enum StoreSpec {
    File(PathBuf),
    Sqlite(PathBuf, Option<u64>),
    /// URL, prefix, CA certificate (PEM).
    Redis(String, Option<String>, Option<Vec<u8>>),
}

impl StoreSpec {
    pub(crate) fn from_py(py: Python<'_>, store: &Bound<'_, PyAny>) -> PyResult<StoreSpec> {
        if let Ok(s) = store.cast::<PyFileStore>() {
            return Ok(StoreSpec::File(s.get().path.clone()));
        }
        if let Ok(s) = store.cast::<PySqliteStore>() {
            let s = s.get();
            return Ok(StoreSpec::Sqlite(s.path.clone(), s.poll_interval_ms));
        }
        if let Ok(s) = store.cast::<PyRedisStore>() {
            let s = s.get();
            return Ok(StoreSpec::Redis(
                s.url.clone(),
                s.prefix.clone(),
                s.ca.as_ref().map(|(_, pem)| pem.clone()),
            ));
        }
        Err(crate::errors::raise(
            py,
            "ConfigError",
            "store must be a FileStore, SqliteStore or RedisStore".into(),
        ))
    }

    /// Opens the store and attaches it to the builder. Called with the GIL released: opening
    /// may touch the disk or the network.
    pub(crate) fn attach(
        self,
        builder: KeyRotatorBuilder,
    ) -> Result<KeyRotatorBuilder, ai_key_rotator::StoreError> {
        Ok(match self {
            StoreSpec::File(p) => builder.store(FileStore::open(p)?),
            StoreSpec::Sqlite(p, poll) => {
                let mut s = SqliteStore::open(p)?;
                if let Some(ms) = poll {
                    s = s.poll_interval(Duration::from_millis(ms));
                }
                builder.store(s)
            }
            StoreSpec::Redis(url, prefix, ca) => {
                let mut b = RedisStore::builder(url);
                if let Some(p) = prefix {
                    b = b.prefix(p);
                }
                if let Some(pem) = ca {
                    b = b.ca_certificate_pem(pem);
                }
                builder.store(b.build()?)
            }
        })
    }
}

/// The original's persistence adapter: any object with `save(state: str)` and
/// `load() -> str | None`. They are called on the thread that called `save`/`load` (for
/// `asave`/`aload`, a worker thread), with the GIL.
#[derive(Debug)]
pub(crate) struct PyPersistence {
    adapter: Py<PyAny>,
}

impl PyPersistence {
    pub(crate) fn new(adapter: Py<PyAny>) -> Self {
        PyPersistence { adapter }
    }
}

type Boxed<'a, T> = Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

fn adapter_error(e: PyErr) -> PersistenceError {
    Python::attach(|py| {
        let text = e
            .value(py)
            .repr()
            .map(|r| r.to_string())
            .unwrap_or_else(|_| "the adapter raised".into());
        text.into()
    })
}

impl Persistence for PyPersistence {
    fn save(&self, state: String) -> Boxed<'_, Result<(), PersistenceError>> {
        let result = Python::attach(|py| {
            self.adapter
                .bind(py)
                .call_method1("save", (state,))
                .map(|_| ())
        });
        Box::pin(std::future::ready(result.map_err(adapter_error)))
    }

    fn load(&self) -> Boxed<'_, Result<Option<String>, PersistenceError>> {
        let result = Python::attach(|py| {
            self.adapter
                .bind(py)
                .call_method0("load")
                .and_then(|v| v.extract::<Option<String>>())
        });
        Box::pin(std::future::ready(result.map_err(adapter_error)))
    }
}

/// A clock that moves only when told to, for tests: cooldowns end when it is advanced past
/// them, with no sleeping.
#[pyclass(module = "ai_key_rotator", name = "FakeClock", frozen)]
#[derive(Debug)]
pub(crate) struct PyFakeClock {
    pub(crate) clock: FakeClock,
}

#[pymethods]
impl PyFakeClock {
    /// A clock standing at `start` (Unix seconds).
    #[new]
    #[pyo3(signature = (start = 1_700_000_000.0))]
    fn new(start: f64) -> Self {
        PyFakeClock {
            clock: FakeClock::new(Timestamp::from_millis((start * 1000.0).max(0.0) as u64)),
        }
    }

    /// Moves the clock forward by `seconds`.
    fn advance(&self, seconds: f64) {
        self.clock
            .advance(Duration::from_secs_f64(seconds.max(0.0)));
    }

    /// The time it shows, in Unix seconds.
    fn now(&self) -> f64 {
        self.clock.now().as_millis() as f64 / 1000.0
    }
}

pub(crate) fn clock_of(clock: &Bound<'_, PyAny>) -> PyResult<FakeClock> {
    Ok(clock.cast::<PyFakeClock>()?.get().clock.clone())
}
