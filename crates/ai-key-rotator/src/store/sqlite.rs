//! The embedded SQLite store: one row per (provider, fingerprint), shared by the processes of
//! one machine.
//!
//! rusqlite is synchronous, so the store owns a dedicated writer thread with its own
//! connection; the rotator only enqueues events. The thread writes each burst of changes in one
//! `BEGIN IMMEDIATE` transaction (WAL mode, so readers never block writers), merging with what
//! other processes wrote: the longer cooldown wins, disabled stays disabled. Between bursts it
//! checks `PRAGMA data_version` (a few microseconds) every poll interval and, when another
//! connection committed, applies the rows that changed to the local view.
//!
//! # Schema (`PRAGMA user_version = 2`)
//! ```sql
//! CREATE TABLE credential_state (
//!     provider TEXT NOT NULL, fingerprint TEXT NOT NULL, label TEXT,
//!     state TEXT NOT NULL,            -- 'available' | 'cooling' | 'disabled'
//!     until_ms INTEGER,               -- cooling: the end; available: the latest end a reset covered
//!     times_exhausted INTEGER NOT NULL DEFAULT 0, last_exhausted_at INTEGER,
//!     reason TEXT,                    -- why it cools or is disabled: JSON of a `CooldownReason` (version 2)
//!     updated_at INTEGER NOT NULL, writer TEXT NOT NULL,
//!     PRIMARY KEY (provider, fingerprint));
//! ```
//! Version 2 added `reason`. A later schema bumps `user_version`; the store migrates older schemas forward in one
//! transaction when it opens them and refuses newer ones (reported as corrupt, nothing changed).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::sealed::Backend;
use super::{CredentialRecord, RemoteChange, StoreError, StoreLink, StoredState};
use crate::clock::Timestamp;
use crate::error::StateError;
use crate::events::Event;
use crate::identity::{CredentialId, Fingerprint};
use crate::status::{CooldownReason, CredentialState};

/// The schema version this library writes.
const SCHEMA_VERSION: i64 = 2;

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
    PRIMARY KEY (provider, fingerprint)
);";

const DEFAULT_POLL: Duration = Duration::from_millis(100);

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
    sender: mpsc::Sender<Msg>,
    /// Taken by the writer thread when the store is attached.
    receiver: Mutex<Option<mpsc::Receiver<Msg>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Debug)]
enum Msg {
    Change(Event),
    Flush(mpsc::SyncSender<()>),
}

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(Box::new(e))
}

impl SqliteStore {
    /// Opens (creating if needed, with mode 0600) the database at `path` in WAL mode and
    /// checks its schema.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when SQLite fails, [`StoreError::Corrupt`] when the schema is
    /// newer than this library's.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        create_private(&path)?;
        let conn = connect(&path)?;
        drop(conn);
        let (sender, receiver) = mpsc::channel();
        Ok(SqliteStore {
            path,
            poll: DEFAULT_POLL,
            sender,
            receiver: Mutex::new(Some(receiver)),
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
        // Version 0 is an empty database; each later version adds its migration here, in the
        // same transaction as the version bump.
        let migrate = match version {
            1 => "ALTER TABLE credential_state ADD COLUMN reason TEXT;",
            _ => "",
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
        let Some(receiver) = self
            .receiver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
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
        let mut writer = Writer::new(conn, rotator);
        if let Err(error) = writer.pull(false) {
            tracing::warn!(%error, "SQLite store: first read failed");
        }
        let spawned = std::thread::Builder::new()
            .name("ai-key-rotator-sqlite".into())
            .spawn(move || writer.run(&receiver, poll));
        match spawned {
            Ok(h) => *self.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(h),
            Err(error) => tracing::error!(%error, "could not start the SQLite writer thread"),
        }
    }

    fn load(&self) -> Result<Option<StoredState>, StoreError> {
        let conn = connect(&self.path)?;
        let mut stmt = conn
            .prepare(
                "SELECT provider, fingerprint, label, state, until_ms, times_exhausted, \
                 last_exhausted_at, reason FROM credential_state",
            )
            .map_err(backend)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, Option<i64>>(6)?,
                    r.get::<_, Option<String>>(7)?,
                ))
            })
            .map_err(backend)?;
        let mut records = Vec::new();
        for row in rows {
            let (provider, fp, label, state, until, exhausted, last, reason) =
                row.map_err(backend)?;
            let Ok(fingerprint) = fp.parse::<Fingerprint>() else {
                tracing::warn!(provider, "skipping a row with an invalid fingerprint");
                continue;
            };
            let mut record = CredentialRecord::new(
                &provider,
                CredentialId {
                    label: label.map(Arc::from),
                    fingerprint,
                },
                decode_state(&state, until),
            );
            record.times_exhausted = exhausted.max(0) as u64;
            record.last_exhausted_at = last.map(|ms| Timestamp::from_millis(ms.max(0) as u64));
            record.reason = decode_reason(reason.as_deref());
            records.push(record);
        }
        Ok((!records.is_empty()).then(|| StoredState::from_records(records)))
    }

    fn record(&self, change: &Event) {
        if super::changes_state(change) {
            // An error only means the writer thread is gone (logged when it went).
            let _ = self.sender.send(Msg::Change(change.clone()));
        }
    }

    fn flush(&self) {
        let (tx, rx) = mpsc::sync_channel(1);
        if self.sender.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.recv();
        }
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Replacing the sender disconnects the channel, which stops the writer after it wrote
        // what was queued.
        let (dead, _) = mpsc::channel();
        drop(std::mem::replace(&mut self.sender, dead));
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

fn encode_reason(reason: Option<&CooldownReason>) -> Option<String> {
    reason.and_then(|r| serde_json::to_string(r).ok())
}

fn millis(t: Timestamp) -> i64 {
    i64::try_from(t.as_millis()).unwrap_or(i64::MAX)
}

type RowKey = (String, String);

/// A row's state, cooldown end and reason (JSON) as last written or applied here.
type Row = (String, Option<i64>, Option<String>);

struct Writer {
    conn: Connection,
    rotator: StoreLink,
    /// Who wrote a row, for people reading the database.
    me: String,
    /// Each row as last written or applied here, so a poll applies only rows that others
    /// changed since.
    seen: HashMap<RowKey, Row>,
    data_version: i64,
}

impl Writer {
    fn new(conn: Connection, rotator: StoreLink) -> Self {
        let me = format!(
            "pid{}-{:x}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        );
        Writer {
            conn,
            rotator,
            me,
            seen: HashMap::new(),
            data_version: -1,
        }
    }

    fn run(mut self, receiver: &mpsc::Receiver<Msg>, poll: Duration) {
        loop {
            let first = match receiver.recv_timeout(poll) {
                Ok(m) => Some(m),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            };
            if let Some(first) = first {
                let mut batch = vec![first];
                batch.extend(receiver.try_iter());
                let mut flushes = Vec::new();
                let mut changes = Vec::new();
                for m in batch {
                    match m {
                        Msg::Change(e) => changes.push(e),
                        Msg::Flush(tx) => flushes.push(tx),
                    }
                }
                if !changes.is_empty()
                    && let Err(error) = self.write(&changes)
                {
                    tracing::warn!(%error, "SQLite store: write failed");
                }
                for tx in flushes {
                    let _ = tx.send(());
                }
            }
            if !self.rotator.is_alive() {
                return;
            }
            if let Err(error) = self.pull(true) {
                tracing::warn!(%error, "SQLite store: reading changes of other processes failed");
            }
        }
    }

    /// Writes the current local state of every credential the events touched.
    fn write(&mut self, changes: &[Event]) -> rusqlite::Result<()> {
        let mut touched: Vec<(Arc<str>, Fingerprint)> =
            changes.iter().flat_map(super::touched).collect();
        touched.sort();
        touched.dedup();
        if touched.is_empty() {
            return Ok(());
        }
        // Credentials enabled here: the only change that may clear a stored `disabled`.
        let enabled: Vec<(Arc<str>, Fingerprint)> = changes
            .iter()
            .filter_map(|e| match e {
                Event::Enabled {
                    provider,
                    credential,
                } => Some((Arc::clone(provider), credential.fingerprint)),
                _ => None,
            })
            .collect();
        let records: HashMap<(Arc<str>, Fingerprint), CredentialRecord> = self
            .rotator
            .records()
            .into_iter()
            .map(|r| ((Arc::clone(&r.provider), r.credential.fingerprint), r))
            .collect();
        let now = millis(self.rotator.now().unwrap_or(Timestamp::UNIX_EPOCH));
        // The latest cooldown end each reset covers: what this process last knew.
        let mut reset_up_to: HashMap<(Arc<str>, Fingerprint), i64> = HashMap::new();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        for key in &touched {
            let Some(r) = records.get(key) else { continue };
            let (provider, fp) = (&*key.0, key.1.to_string());
            let label = r.credential.label.as_deref();
            let last = r.last_exhausted_at.map(millis);
            let exhausted = i64::try_from(r.times_exhausted).unwrap_or(i64::MAX);
            let reason = encode_reason(r.reason.as_ref());
            match r.state {
                CredentialState::Cooling { until } => {
                    tx.execute(
                        "INSERT INTO credential_state (provider, fingerprint, label, state, until_ms, \
                           times_exhausted, last_exhausted_at, updated_at, writer, reason) \
                         VALUES (?1, ?2, ?3, 'cooling', ?4, ?5, ?6, ?7, ?8, ?9) \
                         ON CONFLICT (provider, fingerprint) DO UPDATE SET \
                           label = excluded.label, \
                           reason = CASE WHEN state = 'disabled' THEN reason \
                                         WHEN state = 'cooling' AND until_ms > excluded.until_ms THEN reason \
                                         ELSE excluded.reason END, \
                           until_ms = CASE WHEN state = 'disabled' THEN until_ms \
                                           WHEN state = 'cooling' AND until_ms > excluded.until_ms THEN until_ms \
                                           ELSE excluded.until_ms END, \
                           state = CASE WHEN state = 'disabled' THEN state ELSE 'cooling' END, \
                           times_exhausted = max(times_exhausted, excluded.times_exhausted), \
                           last_exhausted_at = max(coalesce(last_exhausted_at, 0), coalesce(excluded.last_exhausted_at, 0)), \
                           updated_at = excluded.updated_at, writer = excluded.writer",
                        params![provider, fp, label, millis(until), exhausted, last, now, self.me, reason],
                    )?;
                }
                CredentialState::Disabled => {
                    tx.execute(
                        "INSERT INTO credential_state (provider, fingerprint, label, state, until_ms, \
                           times_exhausted, last_exhausted_at, updated_at, writer, reason) \
                         VALUES (?1, ?2, ?3, 'disabled', NULL, ?4, ?5, ?6, ?7, ?8) \
                         ON CONFLICT (provider, fingerprint) DO UPDATE SET state = 'disabled', \
                           reason = CASE WHEN state = 'disabled' THEN reason ELSE excluded.reason END, \
                           updated_at = excluded.updated_at, writer = excluded.writer",
                        params![provider, fp, label, exhausted, last, now, self.me, reason],
                    )?;
                }
                _ => {
                    // Available now: the cooldown ended or was reset. Clear the stored one only
                    // if it is not longer than the one that ended here.
                    let known = self
                        .seen
                        .get(&(provider.to_owned(), fp.clone()))
                        .and_then(|(s, u, _)| (s == "cooling").then_some(*u).flatten())
                        .unwrap_or(now)
                        .max(now);
                    reset_up_to.insert(key.clone(), known);
                    if enabled.contains(key) {
                        tx.execute(
                            "UPDATE credential_state SET state = 'available', until_ms = NULL, \
                               updated_at = ?3, writer = ?4 \
                             WHERE provider = ?1 AND fingerprint = ?2 AND state = 'disabled'",
                            params![provider, fp, now, self.me],
                        )?;
                    }
                    tx.execute(
                        "UPDATE credential_state SET state = 'available', until_ms = ?3, \
                           updated_at = ?4, writer = ?5 \
                         WHERE provider = ?1 AND fingerprint = ?2 AND state = 'cooling' AND until_ms <= ?3",
                        params![provider, fp, known, now, self.me],
                    )?;
                }
            }
            // Remember the row as it now stands, so the next poll does not apply it again.
            let row: Option<Row> = tx
                .query_row(
                    "SELECT state, until_ms, reason FROM credential_state WHERE provider = ?1 AND fingerprint = ?2",
                    params![provider, fp],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            if let Some(row) = row {
                self.seen.insert((provider.to_owned(), fp), row);
            }
        }
        tx.commit()?;
        // A longer cooldown stored by another process wins here too.
        for key in &touched {
            if let Some((state, Some(until), reason)) =
                self.seen.get(&(key.0.to_string(), key.1.to_string()))
                && state == "cooling"
                && !reset_up_to.contains_key(key)
            {
                self.rotator.apply_remote(
                    &key.0,
                    key.1,
                    RemoteChange::Cooling {
                        until: Timestamp::from_millis((*until).max(0) as u64),
                        reason: decode_reason(reason.as_deref()),
                    },
                );
            }
        }
        Ok(())
    }

    /// Applies rows that other processes changed, if any process committed since the last
    /// look. With `apply = false`, only notes the rows as seen.
    fn pull(&mut self, apply: bool) -> rusqlite::Result<()> {
        let version: i64 = self
            .conn
            .pragma_query_value(None, "data_version", |r| r.get(0))?;
        if version == self.data_version {
            return Ok(());
        }
        self.data_version = version;
        let mut stmt = self.conn.prepare_cached(
            "SELECT provider, fingerprint, state, until_ms, reason FROM credential_state",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<i64>>(3)?,
                r.get::<_, Option<String>>(4)?,
            ))
        })?;
        let mut changed = Vec::new();
        for row in rows {
            let (provider, fp, state, until, reason) = row?;
            let key = (provider, fp);
            let was = self.seen.get(&key);
            if was.is_some_and(|w| w.0 == state && w.1 == until) {
                continue;
            }
            let was_disabled = was.is_some_and(|w| w.0 == "disabled");
            let explained = decode_reason(reason.as_deref());
            changed.push((key.clone(), state.clone(), until, was_disabled, explained));
            self.seen.insert(key, (state, until, reason));
        }
        drop(stmt);
        if !apply {
            return Ok(());
        }
        for ((provider, fp), state, until, was_disabled, reason) in changed {
            let Ok(fingerprint) = fp.parse::<Fingerprint>() else {
                continue;
            };
            let at = |ms: Option<i64>| Timestamp::from_millis(ms.unwrap_or(0).max(0) as u64);
            if was_disabled && state != "disabled" {
                self.rotator
                    .apply_remote(&provider, fingerprint, RemoteChange::Enabled);
            }
            let change = match state.as_str() {
                "cooling" => RemoteChange::Cooling {
                    until: at(until),
                    reason,
                },
                "disabled" => RemoteChange::Disabled { reason },
                _ => RemoteChange::Reset { up_to: at(until) },
            };
            self.rotator.apply_remote(&provider, fingerprint, change);
        }
        Ok(())
    }
}
