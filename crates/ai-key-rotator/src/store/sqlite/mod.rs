//! The embedded SQLite store: one row per (provider, fingerprint), shared by the processes of
//! one machine.
//!
//! rusqlite is synchronous, so the store owns a dedicated writer thread with its own
//! connection (`writer.rs`); the rotator only marks the credentials a change touched in the
//! shared queue (`store/worker.rs`). The thread writes the current state of each batch of
//! changed credentials in one `BEGIN IMMEDIATE` transaction (WAL mode, so readers never block writers), merging with what
//! other processes wrote: the longer cooldown wins, disabled stays disabled. Between bursts it
//! checks `PRAGMA data_version` (a few microseconds) every poll interval and, when another
//! connection committed, applies the rows that changed to the local view.
//!
//! # Recovery
//! A row that cannot be read (a column of the wrong type, an unknown state) is skipped with a
//! warning naming its provider and fingerprint, and the rest loads and keeps syncing
//! ([`StoreHealth::Degraded`](crate::StoreHealth::Degraded)). A file that is not an SQLite
//! database is moved aside to `<file>.corrupt-<unix-ms>` when the store opens it, and the
//! rotator starts fresh and reports it as [`StoreError::Corrupt`]. Rows of credentials that no
//! process configures any more are deleted after a [grace period](SqliteStore::prune_after):
//! every process stamps `seen_at` on the rows of its own credentials (`writer.rs`).
//!
//! # Schema (`PRAGMA user_version = 4`)
//! ```sql
//! CREATE TABLE credential_state (
//!     provider TEXT NOT NULL, fingerprint TEXT NOT NULL, label TEXT,
//!     state TEXT NOT NULL,            -- 'available' | 'cooling' | 'disabled'
//!     until_ms INTEGER,               -- cooling: the end; available: the latest end a reset covered
//!     times_exhausted INTEGER NOT NULL DEFAULT 0, last_exhausted_at INTEGER,
//!     reason TEXT,                    -- why it cools or is disabled: JSON of a `CooldownReason` (version 2)
//!     updated_at INTEGER NOT NULL, writer TEXT NOT NULL,
//!     seen_at INTEGER,                -- last time a process configuring it said so (version 3)
//!     times_used INTEGER NOT NULL DEFAULT 0,           -- every process's uses, added up (version 4)
//!     consecutive_failures INTEGER NOT NULL DEFAULT 0, -- the last writer's streak (version 4)
//!     model_cooldowns TEXT,           -- running per-model rests: JSON `[{model, until, reason}]` (version 4)
//!     PRIMARY KEY (provider, fingerprint));
//! ```
//! Version 2 added `reason`, version 3 `seen_at`, version 4 the counters and per-model rests.
//! Each process adds to `times_used` the uses it counted since its last write, so the stored
//! count is the total of every process that shares the file, and a process that starts reads
//! it back. Counters change without events, so the writer writes the ones that changed at
//! least every [`COUNTERS_EVERY`], with every batch, and on every flush (and so on shutdown).
//!
//! A later schema bumps `user_version`; the store migrates older schemas forward in one
//! transaction when it opens them and refuses newer ones (reported as corrupt, nothing changed).

mod aside;
mod rows;
mod usage;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use super::sealed::Backend;
use super::worker::Queue;
use super::{
    CredentialRecord, HealthCell, StoreError, StoreFault, StoreHealth, StoreLink, StoredState,
};
use crate::clock::Timestamp;
use crate::error::StateError;
use crate::events::Event;
use crate::identity::{CredentialId, Fingerprint};
use crate::status::{CooldownReason, CredentialState, ModelCooldownStatus};
use writer::Writer;

/// The schema version this library writes.
const SCHEMA_VERSION: i64 = 4;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS credential_state (
    provider TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    label TEXT,
    state TEXT NOT NULL,
    until_ms INTEGER,
    times_exhausted INTEGER NOT NULL DEFAULT 0,
    last_exhausted_at INTEGER,
    reason TEXT,
    updated_at INTEGER NOT NULL,
    writer TEXT NOT NULL,
    seen_at INTEGER,
    times_used INTEGER NOT NULL DEFAULT 0,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    model_cooldowns TEXT,
    PRIMARY KEY (provider, fingerprint)
);";

/// What each schema version adds to the one before: `MIGRATIONS[v - 1]` takes version `v` to
/// `v + 1`. Only columns are added, so a database written by an older version keeps every row.
const MIGRATIONS: [&str; 3] = [
    "ALTER TABLE credential_state ADD COLUMN reason TEXT;",
    "ALTER TABLE credential_state ADD COLUMN seen_at INTEGER;",
    "ALTER TABLE credential_state ADD COLUMN times_used INTEGER NOT NULL DEFAULT 0; \
     ALTER TABLE credential_state ADD COLUMN consecutive_failures INTEGER NOT NULL DEFAULT 0; \
     ALTER TABLE credential_state ADD COLUMN model_cooldowns TEXT;",
];

/// How often, at most, the counters that change without events (uses, failure streaks) are
/// written when nothing else is: what a crash (not a shutdown, which flushes) may lose.
const COUNTERS_EVERY: Duration = Duration::from_secs(1);

const DEFAULT_POLL: Duration = Duration::from_millis(100);

/// How long a row of a credential no process configures is kept: a week, so a process that
/// is stopped for a weekend finds its disabled keys still disabled.
const DEFAULT_PRUNE_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);

/// Keeps state in an SQLite database that several processes on one machine share: the default
/// for the command-line tool and the proxy.
///
/// Writes happen on the store's own thread, never on the caller's; changes made by other
/// processes reach this one within the [poll interval](Self::poll_interval) (100 ms by
/// default). The database file is created with mode 0600 and holds fingerprints and labels,
/// never keys.
///
/// ```
/// use ai_key_rotator::{KeyRotator, ProviderConfig, SqliteStore};
///
/// let dir = tempfile::tempdir()?;
/// let db = dir.path().join("state.db");
/// let config = || ProviderConfig::new().credential("sk-a").credential("sk-b");
/// let one = KeyRotator::builder()
///     .provider("openai", config())
///     .store(SqliteStore::open(&db)?)
///     .build()?;
/// one.mark_exhausted("openai", Some("sk-a"));
/// one.flush_store();
///
/// // Another process (here: another rotator) opening the same file starts from it.
/// let two = KeyRotator::builder()
///     .provider("openai", config())
///     .store(SqliteStore::open(&db)?)
///     .build()?;
/// assert_eq!(two.get_key("openai").unwrap().expose_key(), "sk-b");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    poll: Duration,
    prune_after: Option<Duration>,
    health: Arc<HealthCell>,
    /// Why the file found at `path` was moved aside when the store opened it, reported once
    /// by `load` so the rotator keeps it in `store_error`.
    corrupt: Mutex<Option<StoreError>>,
    queue: Arc<Queue>,
    /// The rotator's usage ledger, handed over before `attach` (`usage.rs`).
    ledger: std::sync::OnceLock<Arc<crate::ledger::Ledger>>,
    /// Set once the writer thread started, so a store attached twice starts one.
    attached: std::sync::atomic::AtomicBool,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// How long `flush_store` waits for the writer before it says so and returns.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(Box::new(e))
}

impl SqliteStore {
    /// Opens (creating if needed, with mode 0600) the database at `path` in WAL mode and
    /// checks its schema.
    ///
    /// A file that is not an SQLite database is moved aside (to `<path>.corrupt-<unix-ms>`)
    /// and a fresh database takes its place: the store opens, and the rotator built with it
    /// starts fresh and reports [`StoreError::Corrupt`] from
    /// [`KeyRotator::store_error`](crate::KeyRotator::store_error), naming where the file went.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when SQLite fails, [`StoreError::Corrupt`] when the schema is
    /// newer than this library's (nothing is moved) or an unusable file cannot be moved aside,
    /// [`StoreError::Io`] when the file cannot be created.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        create_private(&path)?;
        let corrupt = match connect(&path) {
            Ok(conn) => {
                drop(conn);
                None
            }
            Err(error) if aside::is_not_a_database(&error) => {
                let reason =
                    StateError::Corrupt(format!("{} is not an SQLite database", path.display()));
                let moved_to = match aside::move_aside(&path) {
                    Ok(to) => to,
                    Err(source) => {
                        tracing::error!(%source, path = %path.display(), "SQLite store: could not move the unusable file aside");
                        return Err(StoreError::Corrupt {
                            reason,
                            moved_to: None,
                        });
                    }
                };
                create_private(&path)?;
                drop(connect(&path)?);
                Some(StoreError::Corrupt {
                    reason,
                    moved_to: Some(moved_to),
                })
            }
            Err(error) => return Err(error),
        };
        Ok(SqliteStore {
            path,
            poll: DEFAULT_POLL,
            prune_after: Some(DEFAULT_PRUNE_AFTER),
            health: Arc::new(HealthCell::new("sqlite")),
            corrupt: Mutex::new(corrupt),
            queue: Arc::new(Queue::default()),
            ledger: std::sync::OnceLock::new(),
            attached: std::sync::atomic::AtomicBool::new(false),
            thread: Mutex::new(None),
        })
    }

    /// How often the writer thread looks for changes made by other processes when it has
    /// nothing to write (100 ms by default). A check costs one `PRAGMA data_version`.
    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll = interval.max(Duration::from_millis(1));
        self
    }

    /// How long the row of a credential that no process configures any more is kept (a week
    /// by default), or `None` to keep rows forever.
    ///
    /// Every process stamps the rows of its own credentials at least every quarter of this
    /// period (by its rotator's clock), so only rows that no running process configured for
    /// the whole period are deleted. Pick a period longer than any process stays stopped:
    /// a row pruned while its only user was stopped loses that key's disabling.
    #[must_use]
    pub fn prune_after(mut self, grace: Option<Duration>) -> Self {
        self.prune_after = grace;
        self
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Creates the file with mode 0600 if it does not exist, so SQLite (which copies the
/// database's mode to its `-wal` and `-shm` files) never creates it world-readable.
fn create_private(path: &Path) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(path)
        .map(drop)
        .map_err(|source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        })
}

fn connect(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(backend)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(backend)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(backend)?;
    // WAL with NORMAL survives a crash of the process; a power cut may lose the last commits.
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(backend)?;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(backend)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Corrupt {
            reason: StateError::UnsupportedVersion {
                found: version as u64,
                supported: SCHEMA_VERSION as u64,
            },
            moved_to: None,
        });
    }
    if version < SCHEMA_VERSION {
        // Version 0 is an empty database (the schema creates the table whole); each later
        // version runs the migrations after it, in the same transaction as the version bump.
        let migrate = match version {
            1.. => MIGRATIONS[(version as usize - 1)..].concat(),
            _ => String::new(),
        };
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {SCHEMA} {migrate} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
        ))
        .map_err(backend)?;
    }
    Ok(conn)
}

impl Backend for SqliteStore {
    fn attach(&self, rotator: StoreLink) {
        if self
            .attached
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            return;
        }
        let conn = match connect(&self.path) {
            Ok(c) => c,
            Err(error) => {
                tracing::error!(%error, "could not open the SQLite store; state will not be saved");
                return;
            }
        };
        let poll = self.poll;
        // Note what is stored now, before the rotator loads it (it loads right after this), so
        // that the first poll applies exactly what other processes change from here on. Done
        // on the writer thread instead, a change made between the load and that thread's first
        // look would be noted as already seen and never applied.
        let mut writer = Writer::new(conn, rotator, Arc::clone(&self.health), self.prune_after);
        if let Err(error) = writer.pull(false) {
            self.health.fail(fault(&error));
        }
        // Today's stored usage, read now so that a restarted process resumes from it.
        if let Some(ledger) = self.ledger.get() {
            writer.usage = Some(usage::UsageSync::new(Arc::clone(ledger)));
            writer.sync_usage();
        }
        let spawned = std::thread::Builder::new()
            .name("ai-key-rotator-sqlite".into())
            .spawn({
                let queue = Arc::clone(&self.queue);
                move || writer.run(&queue, poll)
            });
        match spawned {
            Ok(h) => *self.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(h),
            Err(error) => tracing::error!(%error, "could not start the SQLite writer thread"),
        }
    }

    fn load(&self) -> Result<Option<StoredState>, StoreError> {
        if let Some(moved) = self
            .corrupt
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            return Err(moved);
        }
        let conn = connect(&self.path)?;
        let mut stmt = conn
            .prepare(&format!("SELECT {} FROM credential_state", rows::COLUMNS))
            .map_err(backend)?;
        let mut rows = stmt.query([]).map_err(backend)?;
        let mut records = Vec::new();
        while let Some(row) = rows.next().map_err(backend)? {
            let row = match rows::read_row(row) {
                Ok(row) => row,
                Err(fault) => {
                    // One bad row must not cost the others: skip it, say which it was.
                    self.health.fail(fault);
                    continue;
                }
            };
            let mut record = CredentialRecord::new(
                row.provider.as_str(),
                CredentialId {
                    label: row.label.map(Arc::from),
                    fingerprint: row.fingerprint,
                },
                decode_state(&row.state, row.until),
            );
            record.times_exhausted = row.times_exhausted.max(0) as u64;
            record.last_exhausted_at = row
                .last_exhausted_at
                .map(|ms| Timestamp::from_millis(ms.max(0) as u64));
            record.reason = decode_reason(row.reason.as_deref());
            record.times_used = row.times_used.max(0) as u64;
            record.consecutive_failures =
                u32::try_from(row.consecutive_failures.max(0)).unwrap_or(u32::MAX);
            record.model_cooldowns = decode_models(row.model_cooldowns.as_deref());
            records.push(record);
        }
        Ok((!records.is_empty()).then(|| StoredState::from_records(records)))
    }

    fn record(&self, change: &Event) {
        self.queue.record(change);
    }

    fn models_reset(&self, provider: &Arc<str>, credentials: &[Fingerprint]) {
        self.queue.models_reset(
            credentials
                .iter()
                .map(|fp| (Arc::clone(provider), *fp))
                .collect(),
        );
    }

    fn flush(&self) {
        if let Err(error) = self.flush_within(FLUSH_TIMEOUT) {
            tracing::warn!(%error, "SQLite store: flush gave up");
        }
    }

    fn flush_within(&self, timeout: Duration) -> Result<(), StoreError> {
        if self
            .thread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
        {
            // No writer (never attached, or it could not start): nothing will be written.
            return Ok(());
        }
        let start = std::time::Instant::now();
        self.queue
            .flush(timeout, true)
            .map_err(|pending| StoreError::FlushTimedOut {
                waited: timeout,
                pending,
            })?;
        // Usage too: a sync that began after this call, so its totals are read back as well.
        match self.ledger.get() {
            Some(ledger) => ledger
                .flush(timeout.saturating_sub(start.elapsed()))
                .map_err(|pending| StoreError::FlushTimedOut {
                    waited: timeout,
                    pending,
                }),
            None => Ok(()),
        }
    }

    fn health(&self) -> StoreHealth {
        self.health.get()
    }

    fn keep_usage(&self, ledger: Arc<crate::ledger::Ledger>) -> bool {
        self.ledger.set(ledger).is_ok()
    }
}

/// What kind of failure an SQLite error is.
fn fault(error: &rusqlite::Error) -> StoreFault {
    use rusqlite::ErrorCode;
    match error.sqlite_error_code() {
        Some(ErrorCode::ReadOnly) => StoreFault::ReadOnly,
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreFault::Timeout,
        Some(ErrorCode::CannotOpen) => StoreFault::Unreachable,
        _ => StoreFault::Other(format!("sqlite: {error}")),
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Closing the queue stops the writer after it wrote what was queued.
        self.queue.close();
        let handle = self
            .thread
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(h) = handle
            && h.thread().id() != std::thread::current().id()
        {
            let _ = h.join();
        }
    }
}

fn decode_state(state: &str, until: Option<i64>) -> CredentialState {
    match (state, until) {
        ("cooling", Some(ms)) => CredentialState::Cooling {
            until: Timestamp::from_millis(ms.max(0) as u64),
        },
        ("disabled", _) => CredentialState::Disabled,
        _ => CredentialState::Available,
    }
}

/// A stored reason, if it is one this library can read; an unreadable one is dropped (it only
/// explains a state, it never decides one).
fn decode_reason(text: Option<&str>) -> Option<CooldownReason> {
    serde_json::from_str(text?).ok()
}

/// Stored per-model rests, if readable; unreadable ones are dropped like reasons (a rest
/// that is lost only costs a request that meets the limit again).
fn decode_models(text: Option<&str>) -> Vec<ModelCooldownStatus> {
    text.and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default()
}

/// Per-model rests as stored: `NULL` for none.
fn encode_models(models: &[ModelCooldownStatus]) -> Option<String> {
    (!models.is_empty())
        .then(|| serde_json::to_string(models).ok())
        .flatten()
}

fn encode_reason(reason: Option<&CooldownReason>) -> Option<String> {
    reason.and_then(|r| serde_json::to_string(r).ok())
}

fn millis(t: Timestamp) -> i64 {
    i64::try_from(t.as_millis()).unwrap_or(i64::MAX)
}
