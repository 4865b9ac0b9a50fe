//! Per-model cooldowns: which keys rest for which model, off the state word.
//!
//! A limit a provider counts per model (Gemini's per-model quotas, OpenAI's "Rate limit reached
//! for gpt-4o") leaves the key usable for its other models, so it cannot go into the key's
//! state word, which every `get_key` reads. It goes into this side table instead, which only a
//! pick *for a model* reads, and only while some per-model cooldown is recorded: `get_key` and
//! picks without a model never look at it.
//!
//! The table is an immutable map behind `arc-swap`, replaced whole by writers (reports of
//! per-model limits, resets: failure paths, rare), so a pick reads it without a lock or a
//! shared write, as it reads the snapshot. Writers serialize on a mutex so that none loses
//! another's change. Each model keeps a cursor, so a fill-first pick for a model whose first
//! keys rest starts where the last one ended instead of stepping over them again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use foldhash::fast::RandomState;

use crate::classify::ModelName;
use crate::clock::Timestamp;
use crate::status::CooldownReason;

/// One key's cooldown for one model.
#[derive(Debug, Clone)]
pub(crate) struct ModelCooldown {
    pub(crate) until: Timestamp,
    pub(crate) reason: CooldownReason,
}

/// The keys resting for one model, by fingerprint (fingerprints outlive snapshots; positions
/// do not).
#[derive(Debug, Default)]
pub(crate) struct ModelEntry {
    pub(crate) keys: HashMap<u64, ModelCooldown, RandomState>,
    /// Where the last fill-first pick for this model found a key.
    pub(crate) cursor: AtomicU32,
}

impl ModelEntry {
    /// Whether the key with `fingerprint` rests for this model at `now`.
    #[inline]
    pub(crate) fn cools(&self, fingerprint: u64, now: Timestamp) -> Option<Timestamp> {
        self.keys
            .get(&fingerprint)
            .map(|c| c.until)
            .filter(|&t| t > now)
    }
}

/// The rests of the key with `fingerprint` still running at `now`, in the order of `models`
/// (a [`ModelCooldowns::all`] list): what status, saved state and stores show of it. Ended
/// rests are left out: nobody writes or shows them.
pub(crate) fn running_rests(
    models: &[(ModelName, Arc<ModelEntry>)],
    fingerprint: u64,
    now: Timestamp,
) -> Vec<crate::status::ModelCooldownStatus> {
    models
        .iter()
        .filter_map(|(model, entry)| {
            let c = entry.keys.get(&fingerprint).filter(|c| c.until > now)?;
            Some(crate::status::ModelCooldownStatus {
                model: *model,
                until: c.until,
                reason: c.reason.clone(),
            })
        })
        .collect()
}

type Table = HashMap<ModelName, Arc<ModelEntry>, RandomState>;

/// Every per-model cooldown of one provider.
#[derive(Default)]
pub(crate) struct ModelCooldowns {
    table: ArcSwap<Table>,
    /// Serializes writers; readers never take it.
    writer: Mutex<()>,
}

impl ModelCooldowns {
    /// The entry of `model`, if any key rests (or rested, until the next prune) for it.
    #[inline]
    pub(crate) fn entry(&self, model: &ModelName) -> Option<Arc<ModelEntry>> {
        let table = self.table.load();
        if table.is_empty() {
            return None;
        }
        table.get(model).cloned()
    }

    /// Whether any per-model cooldown is recorded.
    pub(crate) fn is_empty(&self) -> bool {
        self.table.load().is_empty()
    }

    /// Every model's entry, for status and saved state.
    pub(crate) fn all(&self) -> Vec<(ModelName, Arc<ModelEntry>)> {
        let mut v: Vec<_> = self
            .table
            .load()
            .iter()
            .map(|(m, e)| (*m, Arc::clone(e)))
            .collect();
        v.sort_by_key(|e| e.0);
        v
    }

    /// Changes the table: `change` edits a copy of it (model → key → cooldown), then ended
    /// cooldowns at `now` and empty models are dropped and the copy published. Returns what
    /// `change` returned. Cursors carry over.
    pub(crate) fn update<R>(
        &self,
        now: Timestamp,
        change: impl FnOnce(&mut HashMap<ModelName, HashMap<u64, ModelCooldown, RandomState>>) -> R,
    ) -> R {
        let _guard = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.table.load_full();
        let mut plain: HashMap<ModelName, HashMap<u64, ModelCooldown, RandomState>> =
            old.iter().map(|(m, e)| (*m, e.keys.clone())).collect();
        let out = change(&mut plain);
        let table: Table = plain
            .into_iter()
            .filter_map(|(m, mut keys)| {
                keys.retain(|_, c| c.until > now);
                if keys.is_empty() {
                    return None;
                }
                let cursor = old.get(&m).map_or(0, |e| e.cursor.load(Ordering::Relaxed));
                Some((
                    m,
                    Arc::new(ModelEntry {
                        keys,
                        cursor: AtomicU32::new(cursor),
                    }),
                ))
            })
            .collect();
        self.table.store(Arc::new(table));
        out
    }
}
