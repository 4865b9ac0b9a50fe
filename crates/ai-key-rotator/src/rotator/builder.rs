//! Building a [`KeyRotator`].

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use secrecy::ExposeSecret;

use super::emitter::Emitter;
use super::ticker::Ticker;
use super::transition::Origin;
use super::{Inner, KeyRotator};
use crate::clock::{Clock, SystemClock};
use crate::config::{CredentialConfig, DEFAULT_RESET_INTERVAL_MS, ProviderConfig, RotatorConfig};
use crate::error::ConfigError;
use crate::identity::{CredentialId, Fingerprint};
use crate::persist::Persistence;
use crate::pool::{ProviderShared, ProviderSnap, Slot, Snapshot, UsageCounters};
use crate::store::{StateStore, StoreHost, StoreLink};

/// Events queued per subscriber before the oldest are dropped.
const DEFAULT_EVENT_CAPACITY: usize = 1024;

/// Builds a [`KeyRotator`]; see [`KeyRotator::builder`].
#[must_use]
pub struct KeyRotatorBuilder {
    providers: Vec<(String, ProviderConfig)>,
    clock: Arc<dyn Clock>,
    reset_interval: Duration,
    persistence: Option<Arc<dyn Persistence>>,
    store: Option<Arc<dyn StateStore>>,
    event_capacity: usize,
}

impl Default for KeyRotatorBuilder {
    fn default() -> Self {
        KeyRotatorBuilder {
            providers: Vec::new(),
            clock: Arc::new(SystemClock),
            reset_interval: Duration::from_millis(DEFAULT_RESET_INTERVAL_MS),
            persistence: None,
            store: None,
            event_capacity: DEFAULT_EVENT_CAPACITY,
        }
    }
}

impl std::fmt::Debug for KeyRotatorBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRotatorBuilder")
            .field("providers", &self.providers)
            .field("clock", &self.clock)
            .field("reset_interval", &self.reset_interval)
            .field("persistence", &self.persistence.is_some())
            .field("store", &self.store.is_some())
            .field("event_capacity", &self.event_capacity)
            .finish()
    }
}

impl KeyRotatorBuilder {
    /// Adds a provider. Order matters only for [`KeyRotator::providers`].
    pub fn provider(mut self, name: impl Into<String>, config: ProviderConfig) -> Self {
        self.providers.push((name.into(), config));
        self
    }

    /// Adds every provider of `config` and takes its reset interval.
    pub fn config(mut self, config: RotatorConfig) -> Self {
        self.reset_interval = Duration::from_millis(config.reset_interval_ms);
        self.providers.extend(config.providers);
        self
    }

    /// The clock to read time from; the system clock by default. Tests pass a
    /// [`FakeClock`](crate::FakeClock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// How often the background ticker emits `Reset` events for cooldowns that ended
    /// unobserved; ten minutes by default, `Duration::ZERO` for no ticker (and no thread).
    pub fn reset_interval(mut self, interval: Duration) -> Self {
        self.reset_interval = interval;
        self
    }

    /// Where [`KeyRotator::save`] and [`KeyRotator::load`] keep the state.
    pub fn persistence(mut self, persistence: impl Persistence) -> Self {
        self.persistence = Some(Arc::new(persistence));
        self
    }

    /// The store the rotator writes every state change through and loads its state from
    /// when built (see [`StateStore`] and `docs/stores.md`). Without one, state lives in memory
    /// only.
    ///
    /// A store that cannot load (corrupt file, unreachable server) does not fail the build:
    /// the error is logged, kept for [`KeyRotator::store_error`], and the rotator starts fresh.
    pub fn store(mut self, store: impl StateStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// Like [`store`](Self::store), for a store that is already shared.
    pub fn shared_store(mut self, store: Arc<dyn StateStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Events queued per subscriber before the oldest are dropped (1024 by default).
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity;
        self
    }

    /// Builds the rotator and, unless the reset interval is zero, starts its ticker thread.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the provider and credential at fault.
    pub fn build(self) -> Result<KeyRotator, ConfigError> {
        let usage = UsageCounters::new();
        let ledger = Arc::new(crate::ledger::Ledger::new());
        let mut providers: Vec<ProviderSnap> = Vec::with_capacity(self.providers.len());
        for (name, config) in self.providers {
            if providers.iter().any(|p| *p.name == *name) {
                return Err(ConfigError::DuplicateProvider { provider: name });
            }
            let zone = config.usage_day_zone(&name);
            providers.push(new_provider(&name, config, &usage)?);
            ledger.set_zone(&name, zone);
        }
        // Before `attach`, so that the store's writer starts with the ledger in hand.
        if let Some(store) = &self.store
            && store.keep_usage(Arc::clone(&ledger))
        {
            ledger.keep();
        }
        let inner = Arc::new(Inner {
            snapshot: ArcSwap::from_pointee(Snapshot::new(providers)),
            writer: Mutex::new(()),
            usage,
            clock: self.clock,
            events: Emitter::new(self.event_capacity, self.store.clone()),
            persistence: self.persistence,
            store_error: OnceLock::new(),
            ticker: Mutex::new(None),
            fleet: self.store.as_ref().and_then(|s| s.fleet()),
            ledger,
        });
        for prov in inner.snapshot.load().providers.iter() {
            inner.join_fleet(prov);
        }
        if let Some(store) = &self.store {
            let host: Arc<dyn StoreHost> = inner.clone();
            store.attach(StoreLink::new(Arc::downgrade(&host)));
            match store.load() {
                // The store's state is what other processes (or this one, earlier) did:
                // announced as remote, and not written back.
                Ok(Some(state)) => inner.apply(state.0, Origin::Loaded),
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(%error, "could not load stored state; starting fresh");
                    let _ = inner.store_error.set(error);
                }
            }
        }
        if !self.reset_interval.is_zero() {
            let ticker = Ticker::spawn(Arc::downgrade(&inner), self.reset_interval);
            *inner.ticker.lock().unwrap_or_else(|e| e.into_inner()) = Some(ticker);
        }
        Ok(KeyRotator { inner })
    }
}

/// A provider's first snapshot, after checking its configuration.
pub(super) fn new_provider(
    name: &str,
    config: ProviderConfig,
    usage: &UsageCounters,
) -> Result<ProviderSnap, ConfigError> {
    config.validate(name)?;
    let policy = config.compiled_cooldown(name)?;
    let family = config.resolved_family(name);
    let (budget, scope_budgets) = config.compiled_budgets(name)?;
    let mut shared = ProviderShared::new(policy, family);
    shared.strategy = config.strategy;
    shared.circuit_config = config.circuit.clone();
    shared.recheck = config.recheck.clone();
    shared.cache_affinity = config.cache_affinity;
    shared.budget = budget;
    shared.scope_budgets = scope_budgets
        .into_iter()
        .map(|(scope, limits)| (Arc::from(scope), (limits, Arc::default())))
        .collect();
    let with_budget = shared.budget.is_some();
    if u32::try_from(config.credentials.len()).is_err() {
        return Err(ConfigError::TooManyCredentials {
            provider: name.to_owned(),
        });
    }
    let slots = config
        .credentials
        .into_iter()
        .map(|c| Arc::new(new_slot(c, usage, with_budget)))
        .collect();
    Ok(ProviderSnap::new(
        name.into(),
        slots,
        Arc::new(shared.finish()),
    ))
}

/// A credential's state, fresh and available.
pub(super) fn new_slot(config: CredentialConfig, usage: &UsageCounters, with_budget: bool) -> Slot {
    let id = CredentialId {
        label: config.label.map(Arc::from),
        fingerprint: Fingerprint::of(config.key.expose_secret()),
    };
    Slot::new(
        config.key,
        id,
        config.meta.map(Arc::new),
        config.scope.map(Arc::from),
        usage.allocate().unwrap_or(u32::MAX),
        config.weight.unwrap_or(1),
        with_budget,
    )
}
