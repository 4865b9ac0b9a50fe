//! The credential pool: an immutable snapshot of every provider's credentials, replaced whole
//! when credentials or providers are added or removed, with each credential's changing state in
//! atomics that outlive snapshots.
//!
//! Readers (`get_key`) load the snapshot through `arc-swap`, which costs no shared write, and
//! read one atomic word of one credential on the common path. Writers that change the set of
//! credentials serialize on the rotator's writer lock and publish a new snapshot; writers that
//! only change a credential's state (mark, reset) touch its atomics and never the snapshot.

mod models;
mod slot;
mod usage;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use foldhash::fast::RandomState;

use crate::budget::{Limits, Usage as BudgetUsage};
use crate::circuit::{Circuit, CircuitConfig};
use crate::classify::Family;
use crate::clock::Timestamp;
use crate::cooldown::Policy;
use crate::identity::Fingerprint;
use crate::strategy::Strategy;

pub(crate) use models::{ModelCooldown, ModelCooldowns, ModelEntry, running_rests};
pub(crate) use slot::{Slot, SlotState};
pub(crate) use usage::UsageCounters;

/// Up to this many providers, `find` compares names instead of hashing.
const LINEAR_FIND: usize = 4;

/// Every provider's credentials at one moment.
#[derive(Default)]
pub(crate) struct Snapshot {
    pub(crate) providers: Vec<ProviderSnap>,
    index: HashMap<Arc<str>, usize, RandomState>,
}

impl Snapshot {
    pub(crate) fn new(providers: Vec<ProviderSnap>) -> Self {
        let index = providers
            .iter()
            .enumerate()
            .map(|(i, p)| (Arc::clone(&p.name), i))
            .collect();
        Snapshot { providers, index }
    }

    /// The position of `provider`. With a few providers, comparing names (lengths first) is
    /// cheaper than hashing the name and probing a table, and `get_key` asks on every call;
    /// beyond that a fast non-cryptographic hash keeps it to a few nanoseconds (provider names
    /// are configuration, not attacker input).
    #[inline]
    pub(crate) fn find(&self, provider: &str) -> Option<usize> {
        if self.providers.len() <= LINEAR_FIND {
            return self
                .providers
                .iter()
                .position(|p| p.name.len() == provider.len() && *p.name == *provider);
        }
        self.index.get(provider).copied()
    }

    pub(crate) fn provider(&self, provider: &str) -> Option<&ProviderSnap> {
        self.find(provider).map(|i| &self.providers[i])
    }
}

/// One provider's credentials at one moment.
#[derive(Clone)]
pub(crate) struct ProviderSnap {
    pub(crate) name: Arc<str>,
    pub(crate) slots: Arc<[Arc<Slot>]>,
    pub(crate) by_fingerprint: Arc<HashMap<Fingerprint, u32, RandomState>>,
    /// Quota scope → positions of its credentials.
    pub(crate) scopes: Arc<HashMap<Arc<str>, Vec<u32>, RandomState>>,
    /// Running sums of weights, for `weighted` picks.
    pub(crate) cumulative_weights: Arc<[u64]>,
    /// Each credential's fingerprint, side by side, for session picks: a session pick hashes
    /// every key's fingerprint, and reading them from one array instead of from each
    /// credential's own allocation is what keeps it near a nanosecond per key at 1 000 keys.
    pub(crate) fingerprints: Arc<[u64]>,
    /// What outlives snapshots: the cursor, the exhaustion cache, the policy.
    pub(crate) shared: Arc<ProviderShared>,
}

impl ProviderSnap {
    pub(crate) fn new(name: Arc<str>, slots: Vec<Arc<Slot>>, shared: Arc<ProviderShared>) -> Self {
        let by_fingerprint = slots
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.fingerprint, i as u32))
            .collect();
        let mut scopes: HashMap<Arc<str>, Vec<u32>, RandomState> = HashMap::default();
        for (i, s) in slots.iter().enumerate() {
            if let Some(scope) = &s.scope {
                scopes.entry(Arc::clone(scope)).or_default().push(i as u32);
            }
        }
        let cumulative_weights = slots
            .iter()
            .scan(0u64, |sum, s| {
                *sum += u64::from(s.weight);
                Some(*sum)
            })
            .collect();
        let fingerprints = slots.iter().map(|s| s.id.fingerprint.as_u64()).collect();
        ProviderSnap {
            name,
            slots: slots.into(),
            by_fingerprint: Arc::new(by_fingerprint),
            scopes: Arc::new(scopes),
            cumulative_weights,
            fingerprints,
            shared,
        }
    }

    /// The position of the credential whose key is `key`.
    pub(crate) fn position_of_key(&self, key: &str) -> Option<usize> {
        use secrecy::ExposeSecret;
        let i = *self.by_fingerprint.get(&Fingerprint::of(key))? as usize;
        // Confirm with the whole key: a fingerprint is a name, not proof.
        (self.slots[i].key.expose_secret() == key).then_some(i)
    }

    pub(crate) fn position_of(&self, fingerprint: Fingerprint) -> Option<usize> {
        self.by_fingerprint.get(&fingerprint).map(|&i| i as usize)
    }
}

/// The part of a provider that is not replaced with its snapshot.
pub(crate) struct ProviderShared {
    /// Index (in the current snapshot) of the credential that fill-first hands out.
    pub(crate) cursor: AtomicU32,
    pub(crate) exhaustion: ExhaustionCache,
    pub(crate) cooldown: Policy,
    pub(crate) family: Family,
    /// Until when each quota scope cools, so that a credential added to a cooling scope cools
    /// with it. Only slow paths touch it.
    pub(crate) scope_until: Mutex<HashMap<Arc<str>, Timestamp, RandomState>>,
    pub(crate) strategy: Strategy,
    /// Picks so far, for `round-robin` and `weighted`, and the tick of `least-recently-used`.
    pub(crate) picks: AtomicU64,
    /// Each key's budget, if any.
    pub(crate) budget: Option<Limits>,
    /// Each quota scope's budget and its use.
    pub(crate) scope_budgets: HashMap<Arc<str>, (Limits, Arc<BudgetUsage>), RandomState>,
    /// Fill-first with no budget: `get_key`'s sticky fast path applies.
    pub(crate) plain_fill_first: bool,
    /// Keys resting for one model only; read by picks for a model, never by `get_key`.
    pub(crate) models: ModelCooldowns,
    /// The provider's circuit: one word every pick reads (0 while closed).
    pub(crate) circuit: Circuit,
    pub(crate) circuit_config: CircuitConfig,
    /// How depleted keys are re-checked.
    pub(crate) recheck: crate::recheck::RecheckConfig,
    /// Whether faces (the gateway, adapters) derive a prompt-prefix hash from request bodies
    /// for this provider (`cache_affinity`); picks honour a hash whatever it says.
    pub(crate) cache_affinity: bool,
    /// Picks placed by a prompt-prefix hash; written only by such picks.
    pub(crate) affinity_placed: AtomicU64,
}

impl ProviderShared {
    pub(crate) fn new(cooldown: Policy, family: Family) -> Self {
        ProviderShared {
            cursor: AtomicU32::new(0),
            exhaustion: ExhaustionCache::default(),
            cooldown,
            family,
            scope_until: Mutex::new(HashMap::default()),
            strategy: Strategy::FillFirst,
            picks: AtomicU64::new(0),
            budget: None,
            scope_budgets: HashMap::default(),
            plain_fill_first: true,
            models: ModelCooldowns::default(),
            circuit: Circuit::default(),
            circuit_config: CircuitConfig::default(),
            recheck: crate::recheck::RecheckConfig::default(),
            cache_affinity: false,
            affinity_placed: AtomicU64::new(0),
        }
    }

    /// Whether `get_key` may take the sticky fast path: fill-first with no budget to check.
    /// Computed once, since `get_key` asks on every call.
    pub(crate) fn finish(mut self) -> Self {
        self.plain_fill_first = self.strategy == Strategy::FillFirst
            && self.budget.is_none()
            && self.scope_budgets.is_empty();
        self
    }
}

/// Remembers "every credential is unavailable until T" so that a provider with no key left
/// answers in constant time instead of scanning all its credentials on every call.
///
/// One word holds a generation (high 16 bits) and T in milliseconds (low 48 bits; 0 = nothing
/// known). Anything that can make a credential available again (a reset, an added credential)
/// bumps the generation after changing the credential; a scanner stores its result only if the
/// generation did not move while it scanned, so a result computed before a reset can never
/// hide the reset.
#[derive(Default)]
pub(crate) struct ExhaustionCache(AtomicU64);

const GENERATION_SHIFT: u32 = 48;
const UNTIL_MASK: u64 = (1 << GENERATION_SHIFT) - 1;
/// "No credential will come back by itself" (all disabled).
const NEVER: u64 = UNTIL_MASK;

/// What the cache said when a scan began.
#[derive(Clone, Copy)]
pub(crate) struct CacheWord(u64);

/// The cache's knowledge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exhaustion {
    /// Nothing known: scan.
    Unknown,
    /// Every credential is unavailable until this time (then scan again).
    Until(Timestamp),
    /// Every credential is disabled.
    Never,
}

impl CacheWord {
    pub(crate) fn exhaustion(self) -> Exhaustion {
        match self.0 & UNTIL_MASK {
            0 => Exhaustion::Unknown,
            NEVER => Exhaustion::Never,
            ms => Exhaustion::Until(Timestamp::from_millis(ms)),
        }
    }
}

impl ExhaustionCache {
    pub(crate) fn load(&self) -> CacheWord {
        CacheWord(self.0.load(Ordering::Acquire))
    }

    /// Records the scan's finding, unless something was made available since `before`.
    /// Returns whether it was recorded.
    pub(crate) fn record(&self, before: CacheWord, found: Exhaustion) -> bool {
        let until = match found {
            Exhaustion::Unknown => 0,
            Exhaustion::Never => NEVER,
            Exhaustion::Until(t) => t.as_millis().clamp(1, NEVER - 1),
        };
        let word = (before.0 & !UNTIL_MASK) | until;
        self.0
            .compare_exchange(before.0, word, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Forgets what is known; call after making a credential available.
    pub(crate) fn invalidate(&self) {
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                let generation = (w >> GENERATION_SHIFT).wrapping_add(1) & 0xFFFF;
                Some(generation << GENERATION_SHIFT)
            });
    }
}
