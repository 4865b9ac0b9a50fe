//! Per-key usage (`ledger/`) in the `key_usage` table: one row per provider, fingerprint,
//! provider day and counter, written as additions (`count = count + excluded.count`) so that
//! every process sharing the file adds up, and read back in the same transaction.
//!
//! The table is the one the gateway created before usage moved into the core, with the same
//! rows (days as days since 1970-01-01, counters by name), so existing totals carry on.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{TransactionBehavior, params};

use super::fault;
use super::writer::Writer;
use crate::clock::Timestamp;
use crate::identity::Fingerprint;
use crate::ledger::{Key, Ledger, Totals, UsageCounts};

/// Created when first needed, outside the schema versions of `credential_state`: an older
/// library ignores the table, and a database the gateway already gave it keeps its rows.
pub(super) const TABLE: &str = "CREATE TABLE IF NOT EXISTS key_usage (
    provider TEXT NOT NULL, fingerprint TEXT NOT NULL, day INTEGER NOT NULL,
    class TEXT NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY (provider, fingerprint, day, class))";

/// How many days of rows are kept: as long as the Redis store keeps its hashes.
const KEEP_DAYS: i64 = 35;

/// How often old rows are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// The writer's side of the usage ledger.
#[derive(Debug)]
pub(super) struct UsageSync {
    ledger: Arc<Ledger>,
    /// When the next sync is due.
    next: Instant,
    /// When rows older than [`KEEP_DAYS`] are next deleted.
    next_prune: Instant,
}

impl UsageSync {
    pub(super) fn new(ledger: Arc<Ledger>) -> Self {
        let now = Instant::now();
        UsageSync {
            ledger,
            next: now,
            next_prune: now,
        }
    }
}

impl Writer {
    /// Writes the ledger's deltas and reads today's totals back, when the ledger is due (a
    /// second since the last sync, or a flush asks).
    pub(super) fn sync_usage_if_due(&mut self) {
        let due = self
            .usage
            .as_ref()
            .is_some_and(|u| u.ledger.wanted() || Instant::now() >= u.next);
        if due {
            self.sync_usage();
        }
    }

    /// Writes the ledger's deltas and reads today's totals back; on a failure the deltas wait
    /// for the next sync.
    pub(super) fn sync_usage(&mut self) {
        let Some(u) = self.usage.as_mut() else {
            return;
        };
        let started = Instant::now();
        u.next = started + crate::ledger::SYNC_EVERY;
        let prune = started >= u.next_prune;
        if prune {
            u.next_prune = started + PRUNE_EVERY;
        }
        let ledger = Arc::clone(&u.ledger);
        let now = self.rotator.now().unwrap_or(Timestamp::UNIX_EPOCH);
        let batch = ledger.take(now);
        match self.write_usage(&batch.deltas, &batch.days, prune) {
            Ok(totals) => ledger.written(batch, totals),
            Err(error) => {
                self.health.fail(fault(&error));
                ledger.failed(batch);
            }
        }
    }

    fn write_usage(
        &mut self,
        deltas: &[(Key, UsageCounts)],
        days: &[(Arc<str>, i64)],
        prune: bool,
    ) -> rusqlite::Result<Vec<(Arc<str>, Totals)>> {
        // Reading the others' totals back, with nothing to add, takes no write lock (once the
        // table exists, creating it "if not exists" writes nothing).
        let behavior = if deltas.is_empty() && !prune {
            TransactionBehavior::Deferred
        } else {
            TransactionBehavior::Immediate
        };
        let tx = self.conn.transaction_with_behavior(behavior)?;
        tx.execute_batch(TABLE)?;
        if prune && let Some(oldest) = days.iter().map(|(_, d)| *d).min() {
            tx.execute(
                "DELETE FROM key_usage WHERE day < ?1",
                params![oldest - KEEP_DAYS],
            )?;
        }
        {
            let mut add = tx.prepare_cached(
                "INSERT INTO key_usage (provider, fingerprint, day, class, count) \
                 VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (provider, fingerprint, day, class) \
                 DO UPDATE SET count = count + excluded.count",
            )?;
            for ((provider, fp, day), counts) in deltas {
                let fp = fp.to_string();
                for (field, n) in counts.fields() {
                    let n = i64::try_from(n).unwrap_or(i64::MAX);
                    add.execute(params![&**provider, fp, day, field, n])?;
                }
            }
        }
        let mut totals = Vec::with_capacity(days.len());
        {
            let mut read = tx.prepare_cached(
                "SELECT fingerprint, class, count FROM key_usage WHERE provider = ?1 AND day = ?2",
            )?;
            for (provider, day) in days {
                let mut keys: HashMap<Fingerprint, UsageCounts> = HashMap::new();
                let rows = read.query_map(params![&**provider, day], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })?;
                for row in rows {
                    let (fp, field, n) = row?;
                    // A row this version cannot read (a malformed fingerprint, a newer
                    // writer's counter) is left alone.
                    if let Ok(fp) = fp.parse::<Fingerprint>() {
                        let mut c = keys.get(&fp).copied().unwrap_or_default();
                        if c.set(&field, n.max(0) as u64) {
                            keys.insert(fp, c);
                        }
                    }
                }
                totals.push((Arc::clone(provider), (*day, keys)));
            }
        }
        tx.commit()?;
        Ok(totals)
    }
}
