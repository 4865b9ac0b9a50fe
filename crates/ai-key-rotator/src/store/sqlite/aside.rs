//! Recovering from a file that is not a database: telling that failure apart, and moving
//! the file aside so a fresh database can take its place. (Pruning rows is `Writer::maintain`.)

use std::path::{Path, PathBuf};

use rusqlite::ErrorCode;

use crate::store::StoreError;

/// Whether opening failed because the file is not an SQLite database (or is encrypted, or
/// its header is destroyed): the one failure that moving the file aside cures.
pub(super) fn is_not_a_database(error: &StoreError) -> bool {
    match error {
        StoreError::Backend(e) => e
            .downcast_ref::<rusqlite::Error>()
            .and_then(rusqlite::Error::sqlite_error_code)
            .is_some_and(|c| c == ErrorCode::NotADatabase),
        _ => false,
    }
}

/// Moves an unusable database to `<file>.corrupt-<unix-ms>[-n]` (never replacing a file),
/// with its `-wal` and `-shm` files beside it, so a fresh database can take its place.
pub(super) fn move_aside(path: &Path) -> std::io::Result<PathBuf> {
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
        match std::fs::hard_link(path, &to) {
            Ok(()) => {
                std::fs::remove_file(path)?;
                for suffix in ["-wal", "-shm"] {
                    let from = PathBuf::from(format!("{}{suffix}", path.display()));
                    if from.exists() {
                        std::fs::rename(&from, format!("{}{suffix}", to.display()))?;
                    }
                }
                tracing::warn!(from = %path.display(), to = %to.display(), "SQLite store: the file is not a database; moved it aside and started a fresh one");
                return Ok(to);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("too many files moved aside already"))
}
