//! The atomic JSON file store.
//!
//! The unit written is the whole state in the versioned JSON format (`persist/state.rs`). A
//! writer thread writes the latest snapshot whenever something changed since its last write,
//! so a burst of changes costs one write. Each write goes to a temporary file in the same
//! directory, which is synced, renamed over the file, and then the directory is synced: after a
//! crash at any point the file holds either the old or the new state, never a mix.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use super::sealed::Backend;
use super::{StoreError, StoreLink, StoredState};
use crate::events::Event;

/// Keeps the state in one JSON file, replaced atomically after every burst of changes.
///
/// For one process at a time (a second process writing the same file would overwrite the
/// first's changes); several processes on one machine share a [`SqliteStore`]
/// (crate::SqliteStore) instead. The file is created with mode 0600.
///
/// A file that cannot be read as state (not JSON, foreign, or from a newer version) is moved
/// aside to `<file>.corrupt-<unix-ms>`, never overwritten or deleted, and the rotator starts
/// fresh; [`KeyRotator::store_error`](crate::KeyRotator::store_error) says why.
///
/// ```
/// use ai_key_rotator::{FileStore, KeyRotator, ProviderConfig};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("state.json");
/// let config = || ProviderConfig::new().credential("sk-a").credential("sk-b");
///
/// let first = KeyRotator::builder()
///     .provider("openai", config())
///     .store(FileStore::open(&path)?)
///     .build()?;
/// first.mark_exhausted("openai", Some("sk-a"));
/// first.shutdown(); // writes what is pending
///
/// // The next run starts where the last one stopped.
/// let second = KeyRotator::builder()
///     .provider("openai", config())
///     .store(FileStore::open(&path)?)
///     .build()?;
/// assert_eq!(second.get_key("openai").unwrap().expose_key(), "sk-b");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct FileStore {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Debug)]
struct Shared {
    path: PathBuf,
    progress: Mutex<Progress>,
    changed: Condvar,
    /// The rotator, once attached: a flush compares its counters with the written ones.
    link: Mutex<Option<StoreLink>>,
}

#[derive(Debug, Default)]
struct Progress {
    /// Changes recorded so far.
    requested: u64,
    /// Changes covered by the last write (or given up on).
    written: u64,
    stop: bool,
    /// Whether a writer thread runs; `flush` does not wait without one.
    running: bool,
    /// Writes that failed (each is logged).
    failures: u64,
    /// [`counters`] as of the last write: uses and failure streaks change without events, so
    /// a flush writes again when they moved since.
    counters: u64,
}

/// A digest of every credential's uses and failure streak.
fn counters(rotator: &StoreLink) -> u64 {
    rotator.records().iter().fold(0u64, |acc, r| {
        [
            r.credential.fingerprint.as_u64(),
            r.times_used,
            u64::from(r.consecutive_failures),
        ]
        .into_iter()
        .fold(acc, |acc, n| {
            acc.rotate_left(7).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ n
        })
    })
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Progress> {
        // Plain counters: a panic elsewhere cannot leave them half-updated.
        self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl FileStore {
    /// A store keeping state in `path`. The directory must exist; the file need not.
    /// Temporary files left by a process killed mid-write are removed.
    ///
    /// # Errors
    /// [`StoreError::Io`] when the directory cannot be read.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let dir = parent(&path);
        let prefix = temp_prefix(&path);
        let entries = fs::read_dir(&dir).map_err(|source| StoreError::Io {
            path: dir.clone(),
            source,
        })?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(&prefix) && name.ends_with(".tmp") {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(FileStore {
            shared: Arc::new(Shared {
                path,
                progress: Mutex::new(Progress::default()),
                changed: Condvar::new(),
                link: Mutex::new(None),
            }),
            thread: Mutex::new(None),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// How many writes failed so far (each failure is logged with `tracing`).
    pub fn write_failures(&self) -> u64 {
        self.shared.lock().failures
    }
}

impl Backend for FileStore {
    fn attach(&self, rotator: StoreLink) {
        let shared = Arc::clone(&self.shared);
        *shared.link.lock().unwrap_or_else(|e| e.into_inner()) = Some(rotator.clone());
        shared.lock().running = true;
        let spawned = std::thread::Builder::new()
            .name("ai-key-rotator-file-store".into())
            .spawn(move || writer(&shared, &rotator));
        match spawned {
            Ok(handle) => *self.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle),
            Err(error) => {
                self.shared.lock().running = false;
                tracing::error!(%error, "could not start the file store's writer thread; state will not be saved");
            }
        }
    }

    fn load(&self) -> Result<Option<StoredState>, StoreError> {
        let path = &self.shared.path;
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StoreError::Io {
                    path: path.clone(),
                    source,
                });
            }
        };
        let parsed = std::str::from_utf8(&bytes)
            .map_err(|_| crate::StateError::Corrupt("not UTF-8 text".into()))
            .and_then(StoredState::from_json);
        match parsed {
            Ok(state) => Ok(Some(state)),
            Err(reason) => {
                let moved_to = match move_aside(path) {
                    Ok(to) => Some(to),
                    Err(error) => {
                        tracing::error!(%error, path = %path.display(), "could not move the unusable state file aside");
                        None
                    }
                };
                Err(StoreError::Corrupt { reason, moved_to })
            }
        }
    }

    fn record(&self, _change: &Event) {
        let mut progress = self.shared.lock();
        progress.requested += 1;
        drop(progress);
        self.shared.changed.notify_all();
    }

    fn models_reset(&self, _provider: &Arc<str>, _credentials: &[crate::identity::Fingerprint]) {
        // The file holds the whole state: write it again.
        drop(self.request_write(true));
    }

    fn flush(&self) {
        let mut progress = self.request_write(false);
        let target = progress.requested;
        while progress.running && progress.written < target {
            progress = self
                .shared
                .changed
                .wait(progress)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    fn flush_within(&self, timeout: std::time::Duration) -> Result<(), StoreError> {
        let deadline = std::time::Instant::now() + timeout;
        let mut progress = self.request_write(false);
        let target = progress.requested;
        while progress.running && progress.written < target {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(StoreError::FlushTimedOut {
                    waited: timeout,
                    pending: 1,
                });
            }
            progress = self
                .shared
                .changed
                .wait_timeout(progress, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        Ok(())
    }
}

impl FileStore {
    /// Asks the writer for one more write when `always`, or when uses or failure streaks
    /// moved since the last write: they change without events, so a flush (and so a
    /// shutdown) writes them even when no state changed since.
    fn request_write(&self, always: bool) -> std::sync::MutexGuard<'_, Progress> {
        let now = match always {
            true => None,
            false => self
                .shared
                .link
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .map(counters),
        };
        let mut progress = self.shared.lock();
        if progress.running && now.is_none_or(|n| n != progress.counters) {
            progress.requested += 1;
            self.shared.changed.notify_all();
        }
        progress
    }
}

impl Drop for FileStore {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.changed.notify_all();
        let handle = self
            .thread
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        // The writer briefly holds the rotator; if it held the last handle, this drop runs on
        // the writer itself, which must not join itself.
        if let Some(handle) = handle
            && handle.thread().id() != std::thread::current().id()
        {
            let _ = handle.join();
        }
    }
}

/// Writes the latest state whenever changes were recorded since the last write.
fn writer(shared: &Shared, rotator: &StoreLink) {
    loop {
        let mut progress = shared.lock();
        while progress.requested == progress.written && !progress.stop {
            progress = shared
                .changed
                .wait(progress)
                .unwrap_or_else(|e| e.into_inner());
        }
        if progress.requested == progress.written {
            progress.running = false;
            shared.changed.notify_all();
            return;
        }
        let target = progress.requested;
        drop(progress);

        // Read before the state: what is written is at least as new as this.
        let written = counters(rotator);
        let Some(text) = rotator.export_state() else {
            // The rotator is gone: nothing left to write.
            let mut progress = shared.lock();
            progress.written = progress.requested;
            progress.running = false;
            shared.changed.notify_all();
            return;
        };
        let result = write_atomic(&shared.path, text.as_bytes());
        let mut progress = shared.lock();
        if let Err(error) = &result {
            progress.failures += 1;
            tracing::warn!(%error, path = %shared.path.display(), "could not write the state file");
        }
        progress.written = target;
        if result.is_ok() {
            progress.counters = written;
        }
        drop(progress);
        shared.changed.notify_all();
    }
}

fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn temp_prefix(path: &Path) -> String {
    let name = path
        .file_name()
        .map_or_else(|| "state".into(), |n| n.to_string_lossy().into_owned());
    format!(".{name}.")
}

/// Replaces `path` with `bytes` so that a crash leaves either the old or the new content.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = parent(path);
    let prefix = temp_prefix(path);
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(fs::Permissions::from_mode(0o600));
    }
    let mut tmp = builder.tempfile_in(&dir)?;
    tmp.write_all(bytes)?;
    // `persist` only renames: make the content durable before the name points at it.
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(&dir)
}

/// Makes a rename in `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Moves an unusable state file to `<file>.corrupt-<unix-ms>[-n]`, never replacing a file.
fn move_aside(path: &Path) -> io::Result<PathBuf> {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let base = format!("{}.corrupt-{ms}", path.display());
    for n in 0..1000u32 {
        let to = if n == 0 {
            PathBuf::from(&base)
        } else {
            PathBuf::from(format!("{base}-{n}"))
        };
        // A hard link fails if the target exists, so nothing is ever overwritten.
        match fs::hard_link(path, &to) {
            Ok(()) => {
                fs::remove_file(path)?;
                sync_dir(&parent(path))?;
                tracing::warn!(from = %path.display(), to = %to.display(), "moved unusable state file aside");
                return Ok(to);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("too many files moved aside already"))
}
