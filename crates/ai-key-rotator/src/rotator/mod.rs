//! [`KeyRotator`]: the public face of the crate.

mod admin;
mod budgets;
mod builder;
mod emitter;
mod fleet;
mod headroom;
mod host;
mod ledger;
mod membership;
pub(crate) mod pick;
mod remote;
mod saved;
mod select;
mod status;
mod ticker;
mod transition;

use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use arc_swap::ArcSwap;

use crate::classify::{Family, Headers, Response, Verdict, classify};
use crate::clock::Clock;
use crate::credential::Credential;
use crate::events::Subscription;
use crate::lease::{AcquireError, AcquireOptions, Lease};
use crate::persist::Persistence;
use crate::pool::{Snapshot, UsageCounters};
use crate::status::{ProviderStatus, RotatorStatus};

pub(crate) use budgets::correct_tokens;
pub use builder::KeyRotatorBuilder;
use emitter::Emitter;
pub use headroom::Headroom;
use ticker::Ticker;
pub use transition::ReportOutcome;

/// Hands out API keys per provider, rotating away from keys that hit their limits and bringing
/// them back exactly when their cooldown ends.
///
/// `KeyRotator` is a cheap handle (`Clone` shares one rotator) and is `Send + Sync`: call it from
/// any number of threads and tasks at once.
///
/// ```
/// use ai_key_rotator::{Cooldown, CredentialConfig, KeyRotator, ProviderConfig};
/// use std::time::Duration;
///
/// let rotator = KeyRotator::builder()
///     .provider(
///         "openai",
///         ProviderConfig::new()
///             .credential(CredentialConfig::new("sk-key1").label("personal"))
///             .credential(CredentialConfig::new("sk-key2").label("work"))
///             .cooldown(Cooldown::fixed(Duration::from_secs(60))),
///     )
///     .build()?;
///
/// let cred = rotator.get_key("openai").expect("a key is available");
/// assert_eq!(cred.expose_key(), "sk-key1");
///
/// // On a rate limit, mark it: the rotator moves on to the next key.
/// rotator.mark_exhausted("openai", Some("sk-key1"));
/// assert_eq!(rotator.get_key("openai").unwrap().label(), Some("work"));
/// # Ok::<(), ai_key_rotator::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct KeyRotator {
    pub(crate) inner: Arc<Inner>,
}

/// The rotator's state. Its fields are private to `rotator/`: every other module asks through
/// methods (and stores through the `StoreHost` trait), and every change of a credential's
/// state goes through `transition.rs`.
pub(crate) struct Inner {
    snapshot: ArcSwap<Snapshot>,
    /// Serializes changes to the set of credentials and providers (rare), so that two of them
    /// never build new snapshots from the same old one and lose each other's change. Readers
    /// never take it. A `std` mutex: it is never held across an await.
    writer: Mutex<()>,
    usage: UsageCounters,
    clock: Arc<dyn Clock>,
    events: Emitter,
    persistence: Option<Arc<dyn Persistence>>,
    /// Why the store's state could not be loaded at build time, if it could not.
    store_error: OnceLock<crate::store::StoreError>,
    ticker: Mutex<Option<Ticker>>,
    /// The store's hub for fleet-wide budgets, when it shares budgets (`rotator/fleet.rs`).
    fleet: Option<Arc<crate::budget::fleet::FleetHub>>,
    /// Per-key usage per provider day (`ledger/`), written by the store when it keeps usage.
    ledger: Arc<crate::ledger::Ledger>,
}

impl KeyRotator {
    /// A builder for a rotator.
    pub fn builder() -> KeyRotatorBuilder {
        KeyRotatorBuilder::default()
    }

    /// A rotator from a configuration, with the system clock and no persistence.
    ///
    /// # Errors
    /// A [`ConfigError`](crate::ConfigError) naming the provider and credential at fault.
    pub fn from_config(config: crate::RotatorConfig) -> Result<Self, crate::ConfigError> {
        Self::builder().config(config).build()
    }

    /// An available credential of `provider`, or `None` when the provider is unknown or every
    /// credential is cooling down or disabled.
    ///
    /// The order is sticky ("fill-first"), as in the original: the same credential until it is
    /// marked exhausted, then the next available one in configuration order. A credential whose
    /// cooldown has ended is available again on this very call; there is no waiting for the
    /// background check.
    ///
    /// # Performance
    /// On the common path this is a snapshot load, a hash lookup of the provider name and one
    /// atomic read: no lock, no clock read, no allocation, no write shared between threads.
    /// When every credential is cooling it answers from a cached "exhausted until" in constant
    /// time.
    #[inline]
    pub fn get_key(&self, provider: &str) -> Option<Credential> {
        self.inner.get_key(provider)
    }

    /// An available credential of `provider` for a request to `model`: as
    /// [`get_key`](Self::get_key), but skipping keys that rest for this model after a
    /// per-model limit (see [`LimitScope::Model`](crate::classify::LimitScope::Model)). A text
    /// that is not a model name is treated as no model.
    ///
    /// ```
    /// use ai_key_rotator::classify::{LimitKind, LimitScope, ModelName, Verdict};
    /// use ai_key_rotator::{KeyRotator, ProviderConfig, Timestamp};
    ///
    /// let rotator = KeyRotator::builder()
    ///     .provider("openai", ProviderConfig::new().credential("sk-a").credential("sk-b"))
    ///     .build()?;
    /// let key = rotator.get_key_for("openai", "gpt-4o").unwrap();
    /// let limit = Verdict::RateLimited {
    ///     until: Some(rotator.now().saturating_add(std::time::Duration::from_secs(30))),
    ///     scope: LimitScope::Model(ModelName::new("gpt-4o").unwrap()),
    ///     limit: LimitKind::TokensPerMinute,
    /// };
    /// rotator.report_for_model(&key, &limit);
    /// // gpt-4o goes to the other key; everything else stays on the first.
    /// assert_eq!(rotator.get_key_for("openai", "gpt-4o").unwrap().expose_key(), "sk-b");
    /// assert_eq!(rotator.get_key_for("openai", "gpt-4o-mini").unwrap().expose_key(), "sk-a");
    /// assert_eq!(rotator.get_key("openai").unwrap().expose_key(), "sk-a");
    /// # Ok::<(), ai_key_rotator::ConfigError>(())
    /// ```
    pub fn get_key_for(&self, provider: &str, model: &str) -> Option<Credential> {
        let pick = pick::Pick {
            model: crate::classify::ModelName::new(model).ok(),
            ..pick::Pick::default()
        };
        self.inner.acquire(provider, &pick).ok()
    }

    /// Marks a credential exhausted and starts its cooldown; with `key = None`, the provider's
    /// current credential. Returns `true` when a credential was found and marked.
    ///
    /// A mark while the credential is already cooling extends its cooldown if the new end is
    /// later, and never shortens it. If the marked credential was the current one, the
    /// provider moves to the next available credential (emitting `Rotated`, or `AllExhausted`
    /// when there is none).
    ///
    /// With several threads sharing a rotator, prefer [`mark_credential_exhausted`]
    /// (Self::mark_credential_exhausted) with the credential you were given: "the current one"
    /// may have moved on since.
    pub fn mark_exhausted(&self, provider: &str, key: Option<&str>) -> bool {
        self.inner.mark_exhausted(provider, key)
    }

    /// Marks the credential that [`get_key`](Self::get_key) handed out exhausted. Returns
    /// `false` if it was removed or disabled meanwhile.
    pub fn mark_credential_exhausted(&self, credential: &Credential) -> bool {
        self.inner.mark_credential(credential)
    }

    /// Applies what a provider's response said about a credential that [`get_key`]
    /// (Self::get_key) handed out:
    ///
    /// | verdict | effect |
    /// |---|---|
    /// | `Ok` with a remaining quota of 0 | cools (with its scope) until the quota resets, before the 429 comes |
    /// | `Ok` otherwise | resets the key's consecutive-failure count |
    /// | `RateLimited`, `QuotaExhausted` | cools until the provider's time, else the policy's; a `Shared` limit (and here a per-model one: see [`report_for_model`](Self::report_for_model)) cools the key's whole quota scope |
    /// | `QuotaExhausted` with no reset time (credits, spend caps) | the key is depleted: out until a re-check (see [`due_probes`](Self::due_probes)) |
    /// | `InvalidKey` | disables the key until [`enable`](Self::enable)d or added again |
    /// | `Overloaded`, `ServerError`, `RegionBlocked` | nothing against the key; counted by the provider's circuit, and the next request tries another key |
    /// | `ClientError` | nothing: another key would fare the same |
    ///
    /// A running cooldown is only ever extended. Returns what changed, as data.
    ///
    /// ```
    /// use ai_key_rotator::classify::{LimitKind, LimitScope, Verdict};
    /// use ai_key_rotator::{FakeClock, KeyRotator, ProviderConfig, ReportOutcome, Timestamp};
    ///
    /// let clock = FakeClock::new(Timestamp::from_secs(1_000));
    /// let rotator = KeyRotator::builder()
    ///     .provider("openai", ProviderConfig::new().credential("sk-a").credential("sk-b"))
    ///     .clock(clock)
    ///     .build()?;
    /// let key = rotator.get_key("openai").unwrap();
    /// let verdict = Verdict::RateLimited {
    ///     until: Some(Timestamp::from_secs(1_003)),
    ///     scope: LimitScope::Key,
    ///     limit: LimitKind::TokensPerMinute,
    /// };
    /// assert_eq!(
    ///     rotator.report(&key, &verdict),
    ///     ReportOutcome::Cooled { until: Timestamp::from_secs(1_003), scope: None }
    /// );
    /// assert_eq!(rotator.get_key("openai").unwrap().expose_key(), "sk-b");
    /// # Ok::<(), ai_key_rotator::ConfigError>(())
    /// ```
    pub fn report(&self, credential: &Credential, verdict: &Verdict) -> ReportOutcome {
        self.inner.report(credential, verdict, false)
    }

    /// As [`report`](Self::report), for a request made for a model (a key from
    /// [`get_key_for`](Self::get_key_for)): a limit the provider counts per model rests the key
    /// for that model only, and it keeps serving the others.
    ///
    /// [`report`](Self::report) cannot do that: a caller that does not name models when it
    /// asks for a key would be handed the same key for the limited model again, so there a
    /// per-model limit cools the key as a whole (with its quota scope).
    pub fn report_for_model(&self, credential: &Credential, verdict: &Verdict) -> ReportOutcome {
        self.inner.report(credential, verdict, true)
    }

    /// Classifies a provider response with the credential's provider family and the
    /// rotator's clock, applies it as [`report`](Self::report) does, and returns the verdict.
    pub fn report_response<H: Headers + ?Sized>(
        &self,
        credential: &Credential,
        response: &Response<'_, H>,
    ) -> Verdict {
        let family = self
            .family(credential.provider())
            .unwrap_or(Family::OpenAiCompatible);
        let verdict = classify(family, response, self.inner.clock.now());
        self.inner.report(credential, &verdict, false);
        verdict
    }

    /// Records that a request with `credential` never got an answer (connection refused or
    /// reset, timed out): nothing against the key, but evidence against the provider, whose
    /// circuit opens when several keys fail so (see [`CircuitConfig`](crate::CircuitConfig)).
    pub fn report_transport_failure(&self, credential: &Credential) -> ReportOutcome {
        self.inner.report_transport_failure(credential)
    }

    /// Records a successful request: the key's consecutive-failure count (which exponential
    /// cooldowns grow with) starts again from zero.
    pub fn report_success(&self, credential: &Credential) {
        self.inner.report_success(credential)
    }

    /// The keys of `provider` due for a re-check now: keys out of credits or over a cap with
    /// no known reset (and, with [`RecheckConfig::recheck_invalid`](crate::RecheckConfig),
    /// keys called invalid), on a backoff of 1 minute doubling to a day by default. Prove each
    /// with the cheapest request that needs a valid key (listing models; never a paid
    /// completion) and record the outcome with [`probe_succeeded`](Self::probe_succeeded) or
    /// [`probe_failed`](Self::probe_failed). Each key returned is claimed: it is offered again
    /// only after another backoff if no outcome is recorded. Empty when re-checks are off.
    ///
    /// ```
    /// use ai_key_rotator::classify::{LimitKind, LimitScope, Verdict};
    /// use ai_key_rotator::{FakeClock, KeyRotator, ProviderConfig, ReportOutcome, Timestamp};
    /// use std::time::Duration;
    ///
    /// let clock = FakeClock::new(Timestamp::from_secs(1_000));
    /// let rotator = KeyRotator::builder()
    ///     .provider("openai", ProviderConfig::new().credential("sk-a").credential("sk-b"))
    ///     .clock(clock.clone())
    ///     .build()?;
    /// let key = rotator.get_key("openai").unwrap();
    /// let no_credits = Verdict::QuotaExhausted {
    ///     until: None,
    ///     scope: LimitScope::Key,
    ///     limit: LimitKind::Credits,
    /// };
    /// assert!(matches!(rotator.report(&key, &no_credits), ReportOutcome::Depleted { .. }));
    /// assert!(rotator.due_probes("openai").is_empty());
    ///
    /// clock.advance(Duration::from_secs(60));
    /// let due = rotator.due_probes("openai");
    /// assert_eq!(due[0].credential.expose_key(), "sk-a");
    /// // ... list models with that key; it answers 200 (someone paid):
    /// assert!(rotator.probe_succeeded(&due[0].credential));
    /// assert_eq!(rotator.provider_status("openai").unwrap().available, 2);
    /// # Ok::<(), ai_key_rotator::ConfigError>(())
    /// ```
    pub fn due_probes(&self, provider: &str) -> Vec<crate::DueProbe> {
        self.inner.due_probes(provider)
    }

    /// Records that a re-check of a key from [`due_probes`](Self::due_probes) succeeded: it
    /// is handed out again (`Enabled`). Its backoff is kept until a real request succeeds, so a
    /// key that is valid but still out of credits is re-checked less and less often. Returns
    /// `false` if the key was not waiting for a re-check.
    pub fn probe_succeeded(&self, credential: &Credential) -> bool {
        self.inner.probe_succeeded(credential)
    }

    /// Records that a re-check failed: the next is due after a doubled backoff, returned
    /// (`None` if the key was not waiting for a re-check, or re-checks are off).
    pub fn probe_failed(&self, credential: &Credential) -> Option<crate::Timestamp> {
        self.inner.probe_failed(credential)
    }

    /// Disables the credential whose key is `key` until [`enable`](Self::enable)d. Returns
    /// `false` if there is no such credential or it is already disabled.
    pub fn disable(&self, provider: &str, key: &str) -> bool {
        self.inner.disable(provider, key)
    }

    /// Enables a disabled credential. Returns `false` if there is no such credential or it is
    /// not disabled.
    pub fn enable(&self, provider: &str, key: &str) -> bool {
        self.inner.enable(provider, key)
    }

    /// The family whose responses `provider` sends, or `None` for an unknown provider.
    pub fn family(&self, provider: &str) -> Option<Family> {
        self.inner
            .snapshot
            .load()
            .provider(provider)
            .map(|p| p.shared.family)
    }

    /// Whether `provider` has prompt-cache affinity on (see
    /// [`ProviderConfig::cache_affinity`](crate::ProviderConfig::cache_affinity)): callers that
    /// see request bodies then pass [`prefix_hash`](crate::prefix_hash) in
    /// [`AcquireOptions::affinity`](crate::AcquireOptions::affinity). `false` for an unknown
    /// provider.
    pub fn cache_affinity(&self, provider: &str) -> bool {
        self.inner
            .snapshot
            .load()
            .provider(provider)
            .is_some_and(|p| p.shared.cache_affinity)
    }

    /// The rotator's clock, for code of this crate that waits (`execute`).
    pub(crate) fn clock(&self) -> Arc<dyn Clock> {
        Arc::clone(&self.inner.clock)
    }

    /// The current time on the rotator's clock.
    pub fn now(&self) -> crate::Timestamp {
        self.inner.clock.now()
    }

    /// A lease on an available credential of `provider`, counted in flight until dropped.
    ///
    /// # Errors
    /// [`AcquireError::Unavailable`] with the earliest time a key may be available (for an
    /// exact `retry-after`), or [`AcquireError::UnknownProvider`].
    pub fn acquire(&self, provider: &str) -> Result<Lease<'_>, AcquireError> {
        self.acquire_with(provider, &AcquireOptions::default())
    }

    /// A lease for a request of a session and a token estimate; see [`AcquireOptions`].
    ///
    /// # Errors
    /// As [`acquire`](Self::acquire).
    pub fn acquire_with(
        &self,
        provider: &str,
        options: &AcquireOptions,
    ) -> Result<Lease<'_>, AcquireError> {
        let pick = pick::Pick {
            session: options.session.as_deref(),
            affinity: options.affinity,
            tokens: options.tokens,
            hold: true,
            model: options.model,
            cools: None,
        };
        match self.inner.acquire(provider, &pick) {
            Ok(credential) => Ok(Lease::new(self, credential, options.tokens, options.model)),
            Err(pick::Refusal::Unknown) => Err(AcquireError::UnknownProvider {
                provider: provider.to_owned(),
            }),
            Err(pick::Refusal::NotNow(retry_at)) => Err(AcquireError::Unavailable {
                provider: provider.to_owned(),
                retry_at,
            }),
            Err(pick::Refusal::Degraded(cause, retry_at)) => Err(AcquireError::ProviderDegraded {
                provider: provider.to_owned(),
                cause,
                retry_at,
            }),
        }
    }

    /// Moves the provider to the next available credential, even if the current one is fine.
    /// Returns `false` if there is no other available credential.
    pub fn rotate_next(&self, provider: &str) -> bool {
        self.inner.rotate_next(provider)
    }

    /// Whether `provider` has an available credential right now.
    pub fn has_available(&self, provider: &str) -> bool {
        self.inner.has_available(provider)
    }

    /// The provider names, in the order they were added.
    pub fn providers(&self) -> Vec<String> {
        self.inner
            .snapshot
            .load()
            .providers
            .iter()
            .map(|p| p.name.to_string())
            .collect()
    }

    /// Ends every running cooldown of `provider`, or of every provider with `None`. Disabled
    /// credentials stay disabled. Returns how many credentials became available; each appears
    /// in one `Reset` event.
    pub fn reset_all(&self, provider: Option<&str>) -> usize {
        self.inner.reset_all(provider)
    }

    /// Makes available every credential whose cooldown has ended but that nobody has asked for
    /// since, emitting their `Reset` events. The background ticker calls this; `get_key` does
    /// not need it. Returns how many credentials it made available.
    pub fn reset_expired(&self) -> usize {
        self.inner.reset_expired()
    }

    /// Adds a credential to an existing provider, at the end of its order.
    ///
    /// # Errors
    /// [`ConfigError::UnknownProvider`](crate::ConfigError::UnknownProvider), or the
    /// credential's own errors (empty or duplicate key).
    pub fn add_credential(
        &self,
        provider: &str,
        credential: impl Into<crate::CredentialConfig>,
    ) -> Result<(), crate::ConfigError> {
        self.inner.add_credential(provider, credential.into())
    }

    /// Removes the credential whose key is `key`. Returns `false` if there is none. If it was
    /// the current credential the provider moves to the next one. Handles already given out
    /// stay readable, but it is never handed out again.
    pub fn remove_credential(&self, provider: &str, key: &str) -> bool {
        self.inner.remove_credential(provider, key)
    }

    /// Adds a provider.
    ///
    /// # Errors
    /// [`ConfigError::DuplicateProvider`](crate::ConfigError::DuplicateProvider) or the
    /// configuration's own errors.
    pub fn add_provider(
        &self,
        name: &str,
        config: crate::ProviderConfig,
    ) -> Result<(), crate::ConfigError> {
        self.inner.add_provider(name, config)
    }

    /// The state of every provider and credential.
    pub fn status(&self) -> RotatorStatus {
        self.inner.status()
    }

    /// The state of one provider, or `None` if it is unknown.
    pub fn provider_status(&self, provider: &str) -> Option<ProviderStatus> {
        self.inner.provider_status(provider)
    }

    /// Subscribes to [`Event`](crate::Event)s.
    pub fn subscribe(&self) -> Subscription {
        self.inner.events.subscribe()
    }

    /// Saves the state through the configured [`Persistence`]. Without one, does nothing.
    ///
    /// # Errors
    /// The adapter's error.
    pub async fn save(&self) -> Result<(), crate::StateError> {
        self.inner.save().await
    }

    /// Restores state saved by [`save`](Self::save). Returns `false` when there is no
    /// persistence or nothing was saved. Credentials that no longer exist are ignored, new
    /// ones start available, and cooldowns that ended meanwhile are over.
    ///
    /// # Errors
    /// [`StateError`](crate::StateError) when the saved text is corrupt, foreign or from a
    /// newer version; nothing is changed then.
    pub async fn load(&self) -> Result<bool, crate::StateError> {
        self.inner.load().await
    }

    /// The state as versioned JSON, the text [`save`](Self::save) writes. It names
    /// credentials by fingerprint only.
    pub fn export_state(&self) -> String {
        self.inner.export_state()
    }

    /// Restores state from text produced by [`export_state`](Self::export_state).
    ///
    /// # Errors
    /// As [`load`](Self::load).
    pub fn import_state(&self, state: &str) -> Result<(), crate::StateError> {
        self.inner.import_state(state)
    }

    /// Why the [store](crate::KeyRotatorBuilder::store)'s state could not be loaded when the
    /// rotator was built (it then started fresh), or `None` if it loaded or there is no store.
    pub fn store_error(&self) -> Option<&crate::StoreError> {
        self.inner.store_error.get()
    }

    /// How the [store](crate::KeyRotatorBuilder::store) is doing now: healthy, degraded (some
    /// stored data unusable, the rest shared) or failing, with the cause and a count of
    /// failures since the health last changed. [`StoreHealth::NoStore`] without a store.
    ///
    /// ```
    /// use ai_key_rotator::{KeyRotator, ProviderConfig, StoreHealth};
    ///
    /// let rotator = KeyRotator::builder()
    ///     .provider("openai", ProviderConfig::new().credential("sk-a"))
    ///     .build()?;
    /// assert_eq!(rotator.store_health(), StoreHealth::NoStore);
    /// # Ok::<(), ai_key_rotator::ConfigError>(())
    /// ```
    pub fn store_health(&self) -> crate::StoreHealth {
        self.inner
            .events
            .store()
            .map_or(crate::StoreHealth::NoStore, |store| store.health())
    }

    /// Waits until the store has written every change made so far. Without a store, returns
    /// at once. Blocks the thread: call it at checkpoints, not on a request path.
    ///
    /// The wait is bounded (30 s for SQLite, twice the command timeout for Redis); a store
    /// that gives up logs it. Use [`flush_store_within`](Self::flush_store_within) to be told.
    pub fn flush_store(&self) {
        if let Some(store) = self.inner.events.store() {
            store.flush();
        }
    }

    /// Like [`flush_store`](Self::flush_store), waiting at most `timeout`: says when the
    /// store did not write everything in time (during an outage, say) instead of returning as
    /// if it had. The changes are not lost: the store keeps writing them.
    ///
    /// # Errors
    /// [`StoreError::FlushTimedOut`](crate::StoreError::FlushTimedOut) with how many
    /// credentials' changes still wait.
    pub fn flush_store_within(
        &self,
        timeout: std::time::Duration,
    ) -> Result<(), crate::StoreError> {
        match self.inner.events.store() {
            Some(store) => store.flush_within(timeout),
            None => Ok(()),
        }
    }

    /// Stops the background ticker and waits for its thread to end (the original's
    /// `destroy`), after the store has written every change. Dropping the last handle stops
    /// the ticker too, without waiting.
    pub fn shutdown(&self) {
        self.flush_store();
        let ticker = self
            .inner
            .ticker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(t) = ticker {
            t.stop_and_join();
        }
    }
}

impl fmt::Debug for KeyRotator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRotator")
            .field("providers", &self.providers())
            .field("clock", &self.inner.clock)
            .field("persistence", &self.inner.persistence.is_some())
            .field("store", &self.inner.events.store().is_some())
            .finish_non_exhaustive()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(t) = self
            .ticker
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            // This may run on the ticker's own thread (it briefly holds the last handle), so
            // signal without joining.
            t.stop();
        }
    }
}
