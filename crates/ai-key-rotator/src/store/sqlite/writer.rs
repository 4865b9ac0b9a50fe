//! The writer thread: writes batches of changed credentials in one transaction each, merging
//! with what other processes wrote, and applies the rows other processes changed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{decode_reason, encode_reason, fault, millis, rows};
use crate::clock::Timestamp;
use crate::identity::Fingerprint;
use crate::status::CredentialState;
use crate::store::worker::{Batch, Dirty, Key, Queue};
use crate::store::{
    CredentialRecord, HealthCell, RemoteChange, StoreFault, StoreHealth, StoreLink,
};

type RowKey = (String, String);

/// A row's state, cooldown end, reason (JSON) and per-model rests (JSON) as last written or
/// applied here.
type Row = (String, Option<i64>, Option<String>, Option<String>);

/// The counters of one credential as last written here: this process's uses (what the stored
/// count was last raised to include), failure streak, exhaustions, last exhaustion.
type Counted = (u64, u32, u64, Option<Timestamp>);

pub(super) struct Writer {
    pub(super) conn: Connection,
    pub(super) rotator: StoreLink,
    /// Who wrote a row, for people reading the database.
    me: String,
    /// Each row as last written or applied here, so a poll applies only rows that others
    /// changed since.
    seen: HashMap<RowKey, Row>,
    data_version: i64,
    pub(super) health: Arc<HealthCell>,
    /// The rotator's usage ledger, when the store keeps usage, and when it is next synced
    /// (`usage.rs`).
    pub(super) usage: Option<super::usage::UsageSync>,
    /// Rows already reported as malformed, so a poll does not report them again.
    malformed: HashSet<RowKey>,
    prune_after: Option<Duration>,
    /// When `maintain` next stamps and prunes, by the rotator's clock.
    next_maintenance: Option<Timestamp>,
    /// Each credential's counters as last written, so only changes are written and uses are
    /// added once.
    counted: HashMap<Key, Counted>,
    /// When counters were last written, by the wall clock (what a crash may lose is bounded
    /// in real time, whatever the rotator's clock says).
    counters_at: std::time::Instant,
}

impl Writer {
    pub(super) fn new(
        conn: Connection,
        rotator: StoreLink,
        health: Arc<HealthCell>,
        prune_after: Option<Duration>,
    ) -> Self {
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
            health,
            usage: None,
            malformed: HashSet::new(),
            prune_after,
            next_maintenance: None,
            counted: HashMap::new(),
            counters_at: std::time::Instant::now(),
        }
    }

    pub(super) fn run(mut self, queue: &Queue, poll: Duration) {
        self.serve(queue, poll);
        // What was counted up to the end reaches the file before the thread goes.
        self.sync_usage();
    }

    fn serve(&mut self, queue: &Queue, poll: Duration) {
        let mut backoff = poll;
        loop {
            let batch = match queue.wait(poll) {
                Ok(batch) => batch,
                Err(()) => return,
            };
            // Before the batch is marked done, so that a flush after moving the clock and
            // making a change finds the rows stamped and pruned by then.
            if let Err(error) = self.maintain() {
                self.health.fail(fault(&error));
            }
            let batch = match batch {
                Some(batch) => Some(batch),
                None if self.counters_at.elapsed() >= super::COUNTERS_EVERY => {
                    // Nothing changed state: write the counters that changed, if any.
                    self.counters_at = std::time::Instant::now();
                    if let Err(error) = self.write(&[], false) {
                        self.health.fail(fault(&error));
                    }
                    None
                }
                None => None,
            };
            if let Some(batch) = batch {
                match self.write(&batch.items, batch.everything) {
                    Ok(()) => {
                        self.health.ok();
                        queue.done(batch);
                        backoff = poll;
                    }
                    Err(error) => {
                        if !self.failed(queue, batch, &error, &mut backoff) {
                            return;
                        }
                    }
                }
            }
            if !self.rotator.is_alive() {
                return;
            }
            match self.pull(true) {
                // Reading works again; a read-only file still cannot be written, which only a
                // write can tell.
                Ok(())
                    if !matches!(
                        self.health.get(),
                        StoreHealth::Failing {
                            fault: StoreFault::ReadOnly,
                            ..
                        }
                    ) =>
                {
                    self.health.ok();
                }
                Ok(()) => {}
                Err(error) => self.health.fail(fault(&error)),
            }
            self.sync_usage_if_due();
        }
    }

    /// A batch failed: a busy or read-only database may recover, so its credentials go back
    /// into the queue and the writer waits a growing while; anything else is given up on, so
    /// one bad write never wedges the writer.
    ///
    /// Returns `false` when the writer should stop: the store is closing and what is left
    /// cannot be written now.
    fn failed(
        &mut self,
        queue: &Queue,
        batch: Batch,
        error: &rusqlite::Error,
        backoff: &mut Duration,
    ) -> bool {
        use rusqlite::ErrorCode;
        // A full disk or a failing device may recover too; a constraint or a malformed
        // statement will fail the same way every time.
        let transient = matches!(
            error.sqlite_error_code(),
            Some(
                ErrorCode::DatabaseBusy
                    | ErrorCode::DatabaseLocked
                    | ErrorCode::ReadOnly
                    | ErrorCode::CannotOpen
                    | ErrorCode::DiskFull
                    | ErrorCode::SystemIoFailure
            )
        );
        self.health.fail(fault(error));
        if !transient {
            queue.done(batch);
            return true;
        }
        queue.retry(batch.items, batch.everything);
        let open = queue.pause(*backoff);
        *backoff = (*backoff * 2).min(Duration::from_secs(2));
        open
    }

    /// Writes the current local state of every credential in `items` (of every credential
    /// when `everything`).
    fn write(&mut self, items: &[(Key, Dirty)], everything: bool) -> rusqlite::Result<()> {
        let records: HashMap<Key, CredentialRecord> = self
            .rotator
            .records()
            .into_iter()
            .map(|r| ((Arc::clone(&r.provider), r.credential.fingerprint), r))
            .collect();
        let touched: Vec<Key> = if everything {
            records.keys().cloned().collect()
        } else {
            items.iter().map(|(key, _)| key.clone()).collect()
        };
        self.counters_at = std::time::Instant::now();
        let counters = self.changed_counters(&records);
        if touched.is_empty() && counters.is_empty() {
            return Ok(());
        }
        // Credentials enabled here: the only change that may clear a stored `disabled`.
        let enabled: HashSet<&Key> = items
            .iter()
            .filter(|(_, dirty)| dirty.enabled)
            .map(|(key, _)| key)
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
                           times_exhausted, last_exhausted_at, updated_at, writer, reason, seen_at) \
                         VALUES (?1, ?2, ?3, 'cooling', ?4, ?5, ?6, ?7, ?8, ?9, ?7) \
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
                           times_exhausted, last_exhausted_at, updated_at, writer, reason, seen_at) \
                         VALUES (?1, ?2, ?3, 'disabled', NULL, ?4, ?5, ?6, ?7, ?8, ?6) \
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
                        .and_then(|(s, u, _, _)| (s == "cooling").then_some(*u).flatten())
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
            let reset = items
                .iter()
                .any(|(k, dirty)| k == key && dirty.models_reset);
            write_models(&tx, r, reset, now, &self.me)?;
            // Remember the row as it now stands, so the next poll does not apply it again.
            let row: Option<Row> = tx
                .query_row(
                    "SELECT state, until_ms, reason, model_cooldowns FROM credential_state \
                     WHERE provider = ?1 AND fingerprint = ?2",
                    params![provider, fp],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()?;
            if let Some(row) = row {
                self.seen.insert((provider.to_owned(), fp), row);
            }
        }
        for (key, counted) in &counters {
            if let Some(r) = records.get(key) {
                write_counters(&tx, r, *counted, self.counted.get(key), now, &self.me)?;
            }
        }
        tx.commit()?;
        self.counted.extend(counters);
        // A longer cooldown or rest stored by another process wins here too.
        for key in &touched {
            let Some((state, until, reason, models)) =
                self.seen.get(&(key.0.to_string(), key.1.to_string()))
            else {
                continue;
            };
            for m in super::decode_models(models.as_deref()) {
                self.rotator.apply_remote(
                    &key.0,
                    key.1,
                    RemoteChange::ModelCooling {
                        model: m.model,
                        until: m.until,
                        reason: Some(m.reason),
                    },
                );
            }
            if let Some(until) = until
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

    /// The credentials whose counters changed since they were last written here, with their
    /// counters now.
    fn changed_counters(&self, records: &HashMap<Key, CredentialRecord>) -> Vec<(Key, Counted)> {
        records
            .iter()
            .filter_map(|(key, r)| {
                let now: Counted = (
                    r.uses_here,
                    r.consecutive_failures,
                    r.times_exhausted,
                    r.last_exhausted_at,
                );
                // A credential never written whose counters are all zero has nothing to say.
                let was = self.counted.get(key).copied().unwrap_or((0, 0, 0, None));
                (now != was).then(|| (key.clone(), now))
            })
            .collect()
    }

    /// Applies rows that other processes changed, if any process committed since the last
    /// look. With `apply = false`, only notes the rows as seen.
    pub(super) fn pull(&mut self, apply: bool) -> rusqlite::Result<()> {
        let version: i64 = self
            .conn
            .pragma_query_value(None, "data_version", |r| r.get(0))?;
        if version == self.data_version {
            return Ok(());
        }
        self.data_version = version;
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {} FROM credential_state", rows::COLUMNS))?;
        let mut rows = stmt.query([])?;
        let mut changed = Vec::new();
        let mut malformed = HashSet::new();
        while let Some(row) = rows.next()? {
            let row = match rows::read_row(row) {
                Ok(row) => row,
                Err(fault) => {
                    // Skipped, and reported once: the other rows keep syncing.
                    if let StoreFault::MalformedRow {
                        provider,
                        fingerprint,
                        ..
                    } = &fault
                    {
                        let key = (provider.clone(), fingerprint.clone());
                        if !self.malformed.contains(&key) {
                            self.health.fail(fault.clone());
                        }
                        malformed.insert(key);
                    }
                    continue;
                }
            };
            let (state, until, reason, models) =
                (row.state, row.until, row.reason, row.model_cooldowns);
            let key = (row.provider, row.fp_text);
            let was = self.seen.get(&key);
            let models_changed = was.is_none_or(|w| w.3 != models);
            if was.is_some_and(|w| w.0 == state && w.1 == until) && !models_changed {
                continue;
            }
            let was_disabled = was.is_some_and(|w| w.0 == "disabled");
            let explained = decode_reason(reason.as_deref());
            let rests = match models_changed {
                true => super::decode_models(models.as_deref()),
                false => Vec::new(),
            };
            changed.push((
                key.clone(),
                state.clone(),
                until,
                was_disabled,
                explained,
                rests,
            ));
            self.seen.insert(key, (state, until, reason, models));
        }
        drop(rows);
        if malformed.is_empty() {
            self.health.clean();
        }
        self.malformed = malformed;
        drop(stmt);
        if !apply {
            return Ok(());
        }
        for ((provider, fp), state, until, was_disabled, reason, rests) in changed {
            let Ok(fingerprint) = fp.parse::<Fingerprint>() else {
                continue;
            };
            for m in rests {
                self.rotator.apply_remote(
                    &provider,
                    fingerprint,
                    RemoteChange::ModelCooling {
                        model: m.model,
                        until: m.until,
                        reason: Some(m.reason),
                    },
                );
            }
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

/// Merges the credential's running per-model rests into its row: per model the later end
/// wins (with its reason), ended ones are dropped, so no process shortens another's rest.
/// After a reset here (`reset`), the local rests replace the stored ones instead. Creates the
/// row (available) when the credential has none yet.
fn write_models(
    tx: &rusqlite::Transaction<'_>,
    r: &CredentialRecord,
    reset: bool,
    now: i64,
    me: &str,
) -> rusqlite::Result<()> {
    let (provider, fp) = (&*r.provider, r.credential.fingerprint.to_string());
    let stored: Option<Option<String>> = tx
        .query_row(
            "SELECT model_cooldowns FROM credential_state WHERE provider = ?1 AND fingerprint = ?2",
            params![provider, fp],
            |row| row.get(0),
        )
        .optional()?;
    let stored_text = stored.clone().flatten();
    if r.model_cooldowns.is_empty() && stored_text.is_none() {
        return Ok(());
    }
    let now_t = Timestamp::from_millis(now.max(0) as u64);
    let mut merged: std::collections::BTreeMap<_, crate::status::ModelCooldownStatus> =
        std::collections::BTreeMap::new();
    let stored_rests = match reset {
        true => Vec::new(),
        false => super::decode_models(stored_text.as_deref()),
    };
    for m in stored_rests
        .into_iter()
        .chain(r.model_cooldowns.iter().cloned())
    {
        if m.until <= now_t {
            continue;
        }
        match merged.get(&m.model) {
            Some(have) if have.until >= m.until => {}
            _ => {
                merged.insert(m.model, m);
            }
        }
    }
    let merged: Vec<_> = merged.into_values().collect();
    let text = super::encode_models(&merged);
    if text == stored_text && stored.is_some() {
        return Ok(());
    }
    tx.execute(
        "INSERT INTO credential_state (provider, fingerprint, label, state, updated_at, writer, \
           seen_at, model_cooldowns) VALUES (?1, ?2, ?3, 'available', ?4, ?5, ?4, ?6) \
         ON CONFLICT (provider, fingerprint) DO UPDATE SET model_cooldowns = excluded.model_cooldowns, \
           updated_at = excluded.updated_at, writer = excluded.writer",
        params![provider, fp, r.credential.label.as_deref(), now, me, text],
    )?;
    Ok(())
}

/// Writes a credential's counters: adds the uses counted here since the last write (`was`) to
/// the stored count, and sets the failure streak; exhaustions and the last exhaustion keep
/// the larger (every process counts the fleet's cooldowns). Creates the row (available) when
/// the credential has none yet.
fn write_counters(
    tx: &rusqlite::Transaction<'_>,
    r: &CredentialRecord,
    (uses, failures, exhausted, last): Counted,
    was: Option<&Counted>,
    now: i64,
    me: &str,
) -> rusqlite::Result<()> {
    let before = was.map_or(0, |w| w.0);
    // Fewer uses than written means the credential was configured again (a fresh count):
    // all of it is new.
    let added = if uses >= before { uses - before } else { uses };
    let sql_int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    tx.execute(
        "INSERT INTO credential_state (provider, fingerprint, label, state, updated_at, writer, \
           seen_at, times_used, consecutive_failures, times_exhausted, last_exhausted_at) \
         VALUES (?1, ?2, ?3, 'available', ?4, ?5, ?4, ?6, ?7, ?8, ?9) \
         ON CONFLICT (provider, fingerprint) DO UPDATE SET \
           times_used = times_used + excluded.times_used, \
           consecutive_failures = excluded.consecutive_failures, \
           times_exhausted = max(times_exhausted, excluded.times_exhausted), \
           last_exhausted_at = CASE WHEN excluded.last_exhausted_at IS NULL THEN last_exhausted_at \
             ELSE max(coalesce(last_exhausted_at, 0), excluded.last_exhausted_at) END",
        params![
            &*r.provider,
            r.credential.fingerprint.to_string(),
            r.credential.label.as_deref(),
            now,
            me,
            sql_int(added),
            failures,
            sql_int(exhausted),
            last.map(millis),
        ],
    )?;
    Ok(())
}

/// Stamping and pruning (see the module docs of `store::sqlite`).
impl Writer {
    /// Stamps `seen_at` on the rows of this rotator's credentials and deletes the rows nobody
    /// stamped for the grace period. Runs at most every quarter of the grace period of the
    /// rotator's clock, so a live process stamps its rows several times before any could go.
    pub(super) fn maintain(&mut self) -> rusqlite::Result<()> {
        let Some(grace) = self.prune_after else {
            return Ok(());
        };
        let Some(now) = self.rotator.now() else {
            return Ok(());
        };
        if self.next_maintenance.is_some_and(|next| now < next) {
            return Ok(());
        }
        self.next_maintenance = Some(now.saturating_add((grace / 4).max(Duration::from_millis(1))));
        let cutoff = millis(Timestamp::from_millis(
            now.as_millis()
                .saturating_sub(u64::try_from(grace.as_millis()).unwrap_or(u64::MAX)),
        ));
        let now = millis(now);
        let records = self.rotator.records();
        let tx = self.conn.transaction()?;
        {
            let mut touch = tx.prepare_cached(
                "UPDATE credential_state SET seen_at = ?3 \
                 WHERE provider = ?1 AND fingerprint = ?2 AND coalesce(seen_at, 0) < ?3",
            )?;
            for r in &records {
                touch.execute(params![
                    &*r.provider,
                    r.credential.fingerprint.to_string(),
                    now
                ])?;
            }
        }
        let pruned = tx.execute(
            "DELETE FROM credential_state WHERE coalesce(seen_at, updated_at) < ?1",
            params![cutoff],
        )?;
        tx.commit()?;
        if pruned > 0 {
            tracing::info!(
                rows = pruned,
                "SQLite store: pruned the rows of credentials no process configured for the grace period"
            );
            // Forget them here too: a row created again later with the same values must not
            // be taken for one already applied.
            let mut stmt = self
                .conn
                .prepare("SELECT provider, fingerprint FROM credential_state")?;
            let left: std::collections::HashSet<(String, String)> = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .filter_map(Result::ok)
                .collect();
            self.seen.retain(|key, _| left.contains(key));
        }
        Ok(())
    }
}
