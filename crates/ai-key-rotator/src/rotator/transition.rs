//! State changes of credentials: the one place where cooldowns start, grow and end, and where
//! credentials are disabled, enabled and retired.
//!
//! Policies and the classifier decide *what should change*; this module applies it under the
//! crate's rules and decides, from the change's [`Origin`], which events it emits and whether
//! the store hears of it. The rules:
//!
//! - a running cooldown is extended, never shortened (only a reset ends it early);
//! - disabled and removed credentials are left alone by cooldowns and resets;
//! - a cooldown that ended unobserved is ended properly (with its `Reset`) before anything else
//!   happens to the credential, so every ended cooldown appears in exactly one `Reset`;
//! - whatever makes a credential available again forgets the provider's "all exhausted until T"
//!   cache, so the next time the provider runs out it is announced again.
//!
//! Local marks and reports, other processes' changes (`remote.rs`), restored state
//! (`saved.rs`), resets, disabling and enabling all call the functions below; every write of a
//! state word goes through [`Slot::update`](crate::pool::Slot::update).

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Serialize;

use super::Inner;
use crate::circuit::{CircuitState, ProviderCause, RateLimitEntry};
use crate::classify::{LimitScope, Verdict};
use crate::clock::Timestamp;
use crate::cooldown::CooldownContext;
use crate::credential::Credential;
use crate::events::Event;
use crate::identity::CredentialId;
use crate::pool::{ModelCooldown, ProviderSnap, Slot, SlotState, Snapshot};
use crate::recheck::{Recheck, RecheckKind};
use crate::status::CooldownReason;

/// What a report did to the rotator's state: data, so callers (and the gateway) can act on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ReportOutcome {
    /// Nothing changed: a success, a server-side or client-side error, or a credential that
    /// was removed meanwhile.
    Unchanged,
    /// The credential (and, with `scope`, every credential of its quota scope) cools until
    /// `until`.
    Cooled {
        /// When it becomes available again (the later of any running cooldown and this one).
        until: Timestamp,
        /// The quota scope that cools with it, if the limit was the scope's.
        scope: Option<Arc<str>>,
    },
    /// The credential was disabled.
    Disabled,
    /// The credential (with `scope`, every credential of its quota scope) is out of credits or
    /// over a cap with no known reset: out of use until a re-check proves it (see
    /// [`RecheckConfig`](crate::RecheckConfig)).
    Depleted {
        /// When the re-check is due; `None` when re-checks are off.
        recheck_at: Option<Timestamp>,
        /// The quota scope depleted with it, if the cap was the scope's.
        scope: Option<Arc<str>>,
    },
    /// Several keys failed alike for a cause not about any key: the provider's circuit opened
    /// until `until` (no key was cooled).
    ProviderDegraded {
        /// What the keys failed with.
        cause: ProviderCause,
        /// When a request may probe the provider again.
        until: Timestamp,
    },
    /// The credential (and, with `scope`, every credential of its quota scope) rests for one
    /// model until `until`, and still serves other models.
    ModelCooled {
        /// The model.
        model: crate::classify::ModelName,
        /// When it serves the model again (the later of any running cooldown for the model and
        /// this one).
        until: Timestamp,
        /// The quota scope that rests with it, if the key has one.
        scope: Option<Arc<str>>,
    },
}

/// Where a change comes from. It decides where the change's events go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// This process: a mark, a report, a reset, an operator. Events go to subscribers and to
    /// the store.
    Local,
    /// Another process, through a shared store (or the store's state at start). Events go to
    /// subscribers as `Event::Remote` and never back to the store, so nothing echoes.
    Remote,
    /// State restored by `load`/`import_state`: applied like a local change, so a store hears
    /// what it changed.
    Restore,
    /// The store's state, read when the rotator is built: announced to subscribers as
    /// `Event::Remote` (it is what happened elsewhere or earlier) and not written back.
    Loaded,
}

impl Origin {
    /// Whether the change happens now, so it counts as an exhaustion and moves the provider
    /// off the credential. Restored state brings its own counters and cursor.
    fn is_live(self) -> bool {
        matches!(self, Origin::Local | Origin::Remote)
    }
}

/// The state to move a credential to when a cooldown until `until` starts at `now`, or `None`
/// to leave it: disabled and removed credentials are left alone, a longer running cooldown is
/// kept, and a cooldown that already ended counts as over.
fn cooled(current: SlotState, until: Timestamp, now: Timestamp) -> Option<SlotState> {
    match current {
        SlotState::Disabled | SlotState::Removed => None,
        SlotState::Cooling(t) if t > now && t >= until => None,
        SlotState::Ready | SlotState::Cooling(_) => Some(SlotState::Cooling(until)),
    }
}

impl Inner {
    /// Hands an event to subscribers and, for local and restored changes, to the store.
    pub(super) fn emit(&self, origin: Origin, make: impl FnOnce() -> Event) {
        match origin {
            Origin::Local | Origin::Restore => self.events.emit_with(make),
            Origin::Remote | Origin::Loaded => self.events.emit_remote(make),
        }
    }

    /// Finds a handed-out credential in the current snapshot, by identity: the handle may come
    /// from an older snapshot in which positions differ, or the credential may be gone.
    fn locate<'s>(
        &self,
        snapshot: &'s Snapshot,
        credential: &Credential,
    ) -> Option<(&'s ProviderSnap, usize)> {
        let prov = snapshot.provider(credential.provider())?;
        let i = prov.position_of(credential.fingerprint())?;
        Arc::ptr_eq(&prov.slots[i], credential.slot_arc()).then_some((prov, i))
    }

    pub(super) fn mark_exhausted(&self, provider: &str, key: Option<&str>) -> bool {
        let snapshot = self.snapshot.load();
        let Some(prov) = snapshot.provider(provider) else {
            return false;
        };
        let n = prov.slots.len();
        let i = match key {
            Some(key) => match prov.position_of_key(key) {
                Some(i) => i,
                None => return false,
            },
            None if n == 0 => return false,
            None => prov.shared.cursor.load(Ordering::Relaxed) as usize % n,
        };
        self.mark_at(prov, i)
    }

    pub(super) fn mark_credential(&self, credential: &Credential) -> bool {
        let snapshot = self.snapshot.load();
        match self.locate(&snapshot, credential) {
            Some((prov, i)) => self.mark_at(prov, i),
            None => false,
        }
    }

    /// A mark by hand: the policy decides, as for a limit the provider gave no time for.
    fn mark_at(&self, prov: &ProviderSnap, i: usize) -> bool {
        let now = self.clock.now();
        let until = self.policy_until(prov, &prov.slots[i], now, None);
        self.cool(
            prov,
            i,
            until,
            now,
            CooldownReason::new("marked exhausted"),
            Origin::Local,
        )
        .is_some()
    }

    /// Counts a failure of the key and asks the provider's policy when its cooldown ends.
    fn policy_until(
        &self,
        prov: &ProviderSnap,
        slot: &Slot,
        now: Timestamp,
        provider_until: Option<Timestamp>,
    ) -> Timestamp {
        let failures = {
            let mut d = slot.detail();
            d.failures = d.failures.saturating_add(1);
            d.failures
        };
        prov.shared.cooldown.until(&CooldownContext {
            now,
            // A time already past says nothing about the future: the policy decides.
            provider_until: provider_until.filter(|&t| t > now),
            failures,
            seed: slot.id.fingerprint.as_u64(),
        })
    }

    /// Applies a verdict. `model_aware`: the request named its model, so a per-model limit
    /// rests the key for that model only; otherwise it cools the key as a whole (see
    /// `KeyRotator::report_for_model`).
    pub(crate) fn report(
        &self,
        credential: &Credential,
        verdict: &Verdict,
        model_aware: bool,
    ) -> ReportOutcome {
        let key_wide;
        let verdict = match verdict {
            Verdict::RateLimited {
                until,
                scope: LimitScope::Model(_),
                limit,
            } if !model_aware => {
                key_wide = Verdict::RateLimited {
                    until: *until,
                    scope: LimitScope::Shared,
                    limit: *limit,
                };
                &key_wide
            }
            Verdict::QuotaExhausted {
                until,
                scope: LimitScope::Model(_),
                limit,
            } if !model_aware => {
                key_wide = Verdict::QuotaExhausted {
                    until: *until,
                    scope: LimitScope::Shared,
                    limit: *limit,
                };
                &key_wide
            }
            _ => verdict,
        };
        let snapshot = self.snapshot.load();
        let Some((prov, i)) = self.locate(&snapshot, credential) else {
            return ReportOutcome::Unchanged;
        };
        let slot = &prov.slots[i];
        let now = self.clock.now();
        if let Some(cause) = verdict.provider_cause() {
            // Any key would fare the same: nothing to hold against this one, but evidence
            // against the provider.
            return match self.provider_failure(prov, i, cause, now) {
                Some(until) => ReportOutcome::ProviderDegraded { cause, until },
                None => {
                    // The next request tries another key (without cooling this one): if it
                    // fails alike, the failure is the provider's, and the circuit learns so.
                    self.move_off(prov, |j| j == i, now);
                    ReportOutcome::Unchanged
                }
            };
        }
        // A 429 on every key within a moment is the provider's limit, not each key's (when the
        // circuit is asked to count them): the provider backs off as a whole.
        let counts_429 = matches!(
            verdict,
            Verdict::RateLimited {
                scope: LimitScope::Key | LimitScope::Shared,
                ..
            }
        ) && prov.shared.circuit_config.enabled
            && prov.shared.circuit_config.rate_limits;
        if counts_429 && let Some(until) = self.rate_limit_circuit(prov, i, verdict.until(), now) {
            return ReportOutcome::ProviderDegraded {
                cause: ProviderCause::RateLimited,
                until,
            };
        }
        // The provider answered about the key or the request: it is reachable.
        self.provider_answered(prov);
        match verdict {
            Verdict::Ok(usage) => {
                {
                    let mut d = slot.detail();
                    d.failures = 0;
                    // A re-check's answer (the key is still out) is not a real success: the
                    // re-check backoff goes on until the key serves a request again.
                    if d.recheck.is_none() {
                        d.recheck_failures = 0;
                    }
                }
                if let Some(left) = usage.remaining_requests.or(usage.remaining_tokens) {
                    slot.remaining.store(left, Ordering::Relaxed);
                }
                if let Some(n) = usage.remaining_requests {
                    slot.remaining_requests.store(n, Ordering::Relaxed);
                }
                if let Some(n) = usage.remaining_tokens {
                    slot.remaining_tokens.store(n, Ordering::Relaxed);
                }
                match usage.exhausted_until().filter(|&t| t > now) {
                    // The provider says the quota is spent: rest until it resets, before the
                    // 429 comes. The headers describe the quota the key draws from, which its
                    // scope shares.
                    Some(t) => {
                        let reason = CooldownReason {
                            cause: Cow::Borrowed("remaining quota is 0"),
                            verdict: Some(Box::new(verdict.clone())),
                            provider_reset: Some(t),
                            scope: slot.scope.clone(),
                        };
                        self.cool_key_or_scope(prov, i, true, t, now, reason)
                    }
                    None => ReportOutcome::Unchanged,
                }
            }
            Verdict::RateLimited {
                until,
                scope: LimitScope::Model(model),
                ..
            }
            | Verdict::QuotaExhausted {
                until,
                scope: LimitScope::Model(model),
                ..
            } => {
                let t = self.policy_until(prov, slot, now, *until);
                let reason = CooldownReason {
                    cause: Cow::Borrowed(verdict.reason()),
                    verdict: Some(Box::new(verdict.clone())),
                    provider_reset: *until,
                    scope: slot.scope.clone(),
                };
                self.cool_model(prov, i, *model, t, now, reason, Origin::Local)
            }
            // Out of credits or over a cap with no known reset: waiting a minute does not
            // help; the key is out until a re-check proves it again.
            Verdict::QuotaExhausted {
                until: None, scope, ..
            } => {
                let shared = *scope == LimitScope::Shared;
                let reason = CooldownReason {
                    cause: Cow::Borrowed(verdict.reason()),
                    verdict: Some(Box::new(verdict.clone())),
                    provider_reset: None,
                    scope: slot.scope.clone().filter(|_| shared),
                };
                self.deplete(prov, i, shared, reason)
            }
            Verdict::RateLimited { until, scope, .. }
            | Verdict::QuotaExhausted { until, scope, .. } => {
                let shared = *scope == LimitScope::Shared;
                let t = self.policy_until(prov, slot, now, *until);
                let reason = CooldownReason {
                    cause: Cow::Borrowed(verdict.reason()),
                    verdict: Some(Box::new(verdict.clone())),
                    provider_reset: *until,
                    scope: slot.scope.clone().filter(|_| shared),
                };
                let outcome = self.cool_key_or_scope(prov, i, shared, t, now, reason);
                if counts_429 && let ReportOutcome::Cooled { until: applied, .. } = outcome {
                    self.note_rate_limit(prov, i, now, applied, *until);
                }
                outcome
            }
            Verdict::InvalidKey { .. } => {
                let reason = CooldownReason {
                    cause: Cow::Borrowed(verdict.reason()),
                    verdict: Some(Box::new(verdict.clone())),
                    provider_reset: None,
                    scope: None,
                };
                if self.disable_at(prov, i, reason, Origin::Local) {
                    ReportOutcome::Disabled
                } else {
                    ReportOutcome::Unchanged
                }
            }
            // Any key would fare the same: nothing to hold against this one.
            _ => ReportOutcome::Unchanged,
        }
    }

    pub(super) fn report_success(&self, credential: &Credential) {
        let snapshot = self.snapshot.load();
        if let Some((prov, i)) = self.locate(&snapshot, credential) {
            {
                let mut d = prov.slots[i].detail();
                d.failures = 0;
                d.recheck_failures = 0;
            }
            self.provider_answered(prov);
        }
    }

    /// The request with `credential` did not reach the provider or got no answer in time.
    pub(super) fn report_transport_failure(&self, credential: &Credential) -> ReportOutcome {
        let snapshot = self.snapshot.load();
        let Some((prov, i)) = self.locate(&snapshot, credential) else {
            return ReportOutcome::Unchanged;
        };
        let cause = ProviderCause::Transport;
        let now = self.clock.now();
        match self.provider_failure(prov, i, cause, now) {
            Some(until) => ReportOutcome::ProviderDegraded { cause, until },
            None => {
                self.move_off(prov, |j| j == i, now);
                ReportOutcome::Unchanged
            }
        }
    }

    fn cool_key_or_scope(
        &self,
        prov: &ProviderSnap,
        i: usize,
        shared: bool,
        until: Timestamp,
        now: Timestamp,
        reason: CooldownReason,
    ) -> ReportOutcome {
        match prov.slots[i].scope.clone().filter(|_| shared) {
            Some(scope) => {
                let applied = self.cool_scope(prov, i, &scope, until, now, reason);
                ReportOutcome::Cooled {
                    until: applied,
                    scope: Some(scope),
                }
            }
            None => match self.cool(prov, i, until, now, reason, Origin::Local) {
                Some(applied) => ReportOutcome::Cooled {
                    until: applied,
                    scope: None,
                },
                None => ReportOutcome::Unchanged,
            },
        }
    }

    /// Sets or extends credential `i`'s cooldown to `until`, recording `reason` if this
    /// cooldown is the one in force. A cooldown that had ended unobserved gets its `Reset`
    /// first. Returns the end in force and whether the state word changed, or `None` if the
    /// credential is disabled or removed.
    fn extend(
        &self,
        prov: &ProviderSnap,
        i: usize,
        until: Timestamp,
        now: Timestamp,
        reason: &CooldownReason,
        origin: Origin,
    ) -> Option<(Timestamp, bool)> {
        let slot = &prov.slots[i];
        match slot.update(|current| cooled(current, until, now)) {
            Ok((old, _)) => {
                if let SlotState::Cooling(t) = old
                    && t <= now
                {
                    self.emit(origin, || Event::Reset {
                        provider: Arc::clone(&prov.name),
                        credentials: vec![slot.id.clone()],
                    });
                }
                slot.detail().reason = Some(Box::new(reason.clone()));
                Some((until, true))
            }
            Err(SlotState::Cooling(t)) => Some((t, false)),
            Err(_) => None,
        }
    }

    /// Cools credential `i` until `until` (or longer, if it already cools longer), counts the
    /// exhaustion and emits `Exhausted`. Returns the end in force, or `None` if it is disabled
    /// or removed.
    ///
    /// A local mark on a credential that already cools longer still counts and is announced
    /// (the caller hit a limit); a remote or restored one that changes nothing is ignored.
    pub(super) fn cool(
        &self,
        prov: &ProviderSnap,
        i: usize,
        until: Timestamp,
        now: Timestamp,
        reason: CooldownReason,
        origin: Origin,
    ) -> Option<Timestamp> {
        let slot = &prov.slots[i];
        let (applied, changed) = self.extend(prov, i, until, now, &reason, origin)?;
        if !changed && origin != Origin::Local {
            return None;
        }
        // The event carries the reason in force: a longer running cooldown keeps its own.
        let reason = match changed {
            true => reason,
            false => slot.detail().reason.as_deref().cloned().unwrap_or(reason),
        };
        if origin.is_live() {
            slot.times_exhausted.fetch_add(1, Ordering::Relaxed);
            slot.last_exhausted_at
                .store(now.as_millis(), Ordering::Relaxed);
        }
        self.emit(origin, || Event::Exhausted {
            provider: Arc::clone(&prov.name),
            credential: slot.id.clone(),
            until: applied,
            reason: Box::new(reason),
        });
        tracing::debug!(provider = %prov.name, credential = %slot.id, until = %applied, ?origin, "credential cools down");
        if origin.is_live() {
            self.move_off(prov, |j| j == i, now);
        }
        Some(applied)
    }

    /// Cools every credential of `scope` until `until`; credential `reporter` is the one whose
    /// response said so. One `ScopeExhausted` event. Returns the reporter's end in force.
    fn cool_scope(
        &self,
        prov: &ProviderSnap,
        reporter: usize,
        scope: &Arc<str>,
        until: Timestamp,
        now: Timestamp,
        reason: CooldownReason,
    ) -> Timestamp {
        {
            // Remembered for credentials that join the scope while it cools.
            let mut scopes = prov
                .shared
                .scope_until
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let t = scopes.entry(Arc::clone(scope)).or_insert(until);
            *t = (*t).max(until);
        }
        let members: &[u32] = prov.scopes.get(scope).map_or(&[], Vec::as_slice);
        let mut cooled: Vec<CredentialId> = Vec::with_capacity(members.len());
        let mut reporter_until = until;
        for &j in members {
            let j = j as usize;
            if let Some((applied, _)) = self.extend(prov, j, until, now, &reason, Origin::Local) {
                cooled.push(prov.slots[j].id.clone());
                if j == reporter {
                    reporter_until = applied;
                }
            }
        }
        let slot = &prov.slots[reporter];
        slot.times_exhausted.fetch_add(1, Ordering::Relaxed);
        slot.last_exhausted_at
            .store(now.as_millis(), Ordering::Relaxed);
        tracing::debug!(provider = %prov.name, scope = %scope, count = cooled.len(), until = %until, "quota scope cools down");
        self.emit(Origin::Local, || Event::ScopeExhausted {
            provider: Arc::clone(&prov.name),
            scope: Arc::clone(scope),
            credentials: cooled,
            until,
            reason: Box::new(reason),
        });
        self.move_off(prov, |j| members.contains(&(j as u32)), now);
        reporter_until
    }

    /// Rests credential `i` (and every credential of its quota scope: a provider counts a
    /// model's limit per project or organization) for `model` until `until`, extending and
    /// never shortening a running per-model cooldown. The state word is not touched: the keys
    /// stay available for other models. One `ModelExhausted` event.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn cool_model(
        &self,
        prov: &ProviderSnap,
        i: usize,
        model: crate::classify::ModelName,
        until: Timestamp,
        now: Timestamp,
        reason: CooldownReason,
        origin: Origin,
    ) -> ReportOutcome {
        let slot = &prov.slots[i];
        let members: Vec<usize> = match slot.scope.as_ref().and_then(|s| prov.scopes.get(s)) {
            Some(m) => m.iter().map(|&j| j as usize).collect(),
            None => vec![i],
        };
        // Disabled and removed keys are left alone, as by cooldowns.
        let members: Vec<usize> = members
            .into_iter()
            .filter(|&j| {
                !matches!(
                    prov.slots[j].state(),
                    SlotState::Disabled | SlotState::Removed
                )
            })
            .collect();
        if members.is_empty() {
            return ReportOutcome::Unchanged;
        }
        let (applied, changed) = prov.shared.models.update(now, |table| {
            let keys = table.entry(model).or_default();
            let mut applied = until;
            let mut changed = false;
            for &j in &members {
                let fp = prov.fingerprints[j];
                match keys.get(&fp) {
                    Some(c) if c.until > now && c.until >= until => {
                        if j == i {
                            applied = c.until;
                        }
                    }
                    _ => {
                        keys.insert(
                            fp,
                            ModelCooldown {
                                until,
                                reason: reason.clone(),
                            },
                        );
                        changed = true;
                    }
                }
            }
            (applied, changed)
        });
        if !changed && origin != Origin::Local {
            return ReportOutcome::Unchanged;
        }
        if origin.is_live() {
            slot.times_exhausted.fetch_add(1, Ordering::Relaxed);
            slot.last_exhausted_at
                .store(now.as_millis(), Ordering::Relaxed);
        }
        tracing::debug!(provider = %prov.name, credential = %slot.id, model = %model, until = %applied, ?origin, "credential rests for one model");
        self.emit(origin, || Event::ModelExhausted {
            provider: Arc::clone(&prov.name),
            model,
            credentials: members.iter().map(|&j| prov.slots[j].id.clone()).collect(),
            until,
            reason: Box::new(reason),
        });
        ReportOutcome::ModelCooled {
            model,
            until: applied,
            scope: slot.scope.clone(),
        }
    }

    /// A failure that is not about the key (`cause`) of credential `i`: counted in the
    /// provider's window; when enough keys failed alike within it, the circuit opens, and a
    /// failure while a probe is out reopens it with a doubled backoff. Returns when the
    /// circuit stays open until, if this report opened it.
    pub(super) fn provider_failure(
        &self,
        prov: &ProviderSnap,
        i: usize,
        cause: ProviderCause,
        now: Timestamp,
    ) -> Option<Timestamp> {
        let config = &prov.shared.circuit_config;
        if !config.enabled {
            return None;
        }
        let circuit = &prov.shared.circuit;
        let mut d = circuit.detail();
        let open_for = match circuit.state() {
            // Stragglers of requests sent before it opened say nothing new.
            CircuitState::Open(_) => return None,
            // The probe (or a request let through with it) failed: back off longer.
            CircuitState::Probing(_) => true,
            CircuitState::Closed => {
                let window = Duration::from_millis(config.window_ms);
                while d
                    .window
                    .front()
                    .is_some_and(|&(_, at, _)| at.saturating_add(window) <= now)
                {
                    d.window.pop_front();
                }
                d.window.push_back((prov.fingerprints[i], now, cause));
                circuit.has_failures.store(true, Ordering::Release);
                let same: Vec<u64> = d
                    .window
                    .iter()
                    .filter(|&&(_, _, c)| c == cause)
                    .map(|&(fp, _, _)| fp)
                    .collect();
                let mut keys = same.clone();
                keys.sort_unstable();
                keys.dedup();
                let threshold = config.threshold as usize;
                // Correlation needs at least two keys: one key failing again and again says
                // nothing about its neighbours, and retries handle it.
                let keys_needed = threshold.min(prov.slots.len()).max(2);
                keys.len() >= keys_needed && same.len() >= threshold
            }
        };
        if !open_for {
            return None;
        }
        let opens = d.opens.saturating_add(1);
        let until = now.saturating_add(config.backoff(opens));
        let changed = circuit.update(|state| match state {
            CircuitState::Open(_) => None,
            CircuitState::Closed | CircuitState::Probing(_) => Some(CircuitState::Open(until)),
        });
        changed?;
        d.opens = opens;
        d.cause = Some(cause);
        d.window.clear();
        circuit.has_failures.store(false, Ordering::Release);
        drop(d);
        tracing::warn!(provider = %prov.name, cause = cause.as_str(), %until, opens, "provider circuit open: keys are not blamed");
        self.emit(Origin::Local, || Event::ProviderDegraded {
            provider: Arc::clone(&prov.name),
            cause,
            until,
        });
        Some(until)
    }

    /// Remembers that credential `i` was cooled until `applied` by a 429 (`reset`: the
    /// provider's own time, if it gave one), for [`rate_limit_circuit`](Self::rate_limit_circuit).
    fn note_rate_limit(
        &self,
        prov: &ProviderSnap,
        i: usize,
        now: Timestamp,
        applied: Timestamp,
        reset: Option<Timestamp>,
    ) {
        let window = Duration::from_millis(prov.shared.circuit_config.rate_limit_window_ms);
        let mut d = prov.shared.circuit.detail();
        d.rate_window
            .retain(|e| e.at.saturating_add(window) > now && e.fingerprint != prov.fingerprints[i]);
        d.rate_window.push_back(RateLimitEntry {
            fingerprint: prov.fingerprints[i],
            at: now,
            applied,
            reset,
        });
    }

    /// A 429 on credential `i` (`reset`: when the provider said its limit lifts), when the
    /// circuit counts rate limits. If, with it, every key that could be asked has answered
    /// 429 within `rate_limit_window_ms` (at least two keys), the limit is the provider's:
    /// the circuit opens until the later of its backoff and the earliest reset the 429s
    /// named, and the cooldowns those 429s put on their keys are ended (the provider backs
    /// off instead, so no key carries a cooldown, an exhaustion count or an alert for it).
    /// A 429 on the probe of a circuit opened so reopens it with a doubled backoff; one that
    /// arrives while it is open says nothing new. Returns when the circuit is open until, or
    /// `None` to cool the key as usual.
    fn rate_limit_circuit(
        &self,
        prov: &ProviderSnap,
        i: usize,
        reset: Option<Timestamp>,
        now: Timestamp,
    ) -> Option<Timestamp> {
        let config = &prov.shared.circuit_config;
        let circuit = &prov.shared.circuit;
        let mut d = circuit.detail();
        let ours = d.cause == Some(ProviderCause::RateLimited);
        match circuit.state() {
            CircuitState::Open(t) => return ours.then_some(t),
            CircuitState::Probing(_) if !ours => return None,
            CircuitState::Probing(_) => {}
            CircuitState::Closed => {
                let window = Duration::from_millis(config.rate_limit_window_ms);
                d.rate_window.retain(|e| e.at.saturating_add(window) > now);
                let me = prov.fingerprints[i];
                let limited =
                    |fp: u64| fp == me || d.rate_window.iter().any(|e| e.fingerprint == fp);
                let keys = prov.fingerprints.iter().filter(|&&fp| limited(fp)).count();
                // A key that could still be asked and has not answered 429: the limit may be
                // this key's own. Cooling or disabled keys were not asked.
                let other_left = prov.slots.iter().enumerate().any(|(j, s)| {
                    !limited(prov.fingerprints[j])
                        && match s.state() {
                            SlotState::Ready => true,
                            SlotState::Cooling(t) => t <= now,
                            SlotState::Disabled | SlotState::Removed => false,
                        }
                });
                if keys < 2 || other_left {
                    return None;
                }
            }
        }
        let opens = d.opens.saturating_add(1);
        let earliest_reset = d
            .rate_window
            .iter()
            .filter_map(|e| e.reset)
            .chain(reset)
            .filter(|&t| t > now)
            .min();
        let backoff = now.saturating_add(config.backoff(opens));
        let until = earliest_reset.map_or(backoff, |t| t.max(backoff));
        circuit.update(|state| match state {
            CircuitState::Open(_) => None,
            CircuitState::Closed | CircuitState::Probing(_) => Some(CircuitState::Open(until)),
        })?;
        d.opens = opens;
        d.cause = Some(ProviderCause::RateLimited);
        d.window.clear();
        circuit.has_failures.store(false, Ordering::Release);
        let cooled: Vec<RateLimitEntry> = d.rate_window.drain(..).collect();
        drop(d);
        tracing::warn!(provider = %prov.name, %until, opens, "every key answered 429 at once: the provider backs off, keys are not blamed");
        for e in cooled {
            let Some(j) = prov.fingerprints.iter().position(|&f| f == e.fingerprint) else {
                continue;
            };
            // The key and, for a shared limit, its scope cooled with it; only cooldowns that
            // end no later than the one the 429 set are ended, so a longer one set since
            // stays.
            let members: Vec<usize> = match &prov.slots[j].scope {
                Some(scope) => prov
                    .scopes
                    .get(scope)
                    .map(|m| m.iter().map(|&k| k as usize).collect())
                    .unwrap_or_else(|| vec![j]),
                None => vec![j],
            };
            self.end_cooldowns(prov, members.into_iter(), e.applied, Origin::Local);
        }
        self.emit(Origin::Local, || Event::ProviderDegraded {
            provider: Arc::clone(&prov.name),
            cause: ProviderCause::RateLimited,
            until,
        });
        Some(until)
    }

    /// The provider answered (a success, or an answer about the key or the request): the
    /// failure window starts again, and an open circuit closes.
    #[inline]
    pub(super) fn provider_answered(&self, prov: &ProviderSnap) {
        let circuit = &prov.shared.circuit;
        if circuit.is_closed() && !circuit.has_failures.load(Ordering::Acquire) {
            return;
        }
        self.provider_answered_slow(prov);
    }

    #[cold]
    fn provider_answered_slow(&self, prov: &ProviderSnap) {
        let circuit = &prov.shared.circuit;
        let mut d = circuit.detail();
        d.window.clear();
        circuit.has_failures.store(false, Ordering::Release);
        let closed = circuit.update(|state| match state {
            CircuitState::Closed => None,
            _ => Some(CircuitState::Closed),
        });
        if closed.is_none() {
            return;
        }
        d.opens = 0;
        d.cause = None;
        drop(d);
        tracing::info!(provider = %prov.name, "provider circuit closed");
        self.emit(Origin::Local, || Event::ProviderRecovered {
            provider: Arc::clone(&prov.name),
        });
    }

    /// Whether a request may go to the provider while its circuit is not closed: once it has
    /// been open long enough, exactly one caller probes (until it reports, or for
    /// `probe_timeout_ms`); the others are told when to try again.
    #[cold]
    pub(super) fn circuit_admit(
        &self,
        prov: &ProviderSnap,
        now: Timestamp,
    ) -> Result<(), (ProviderCause, Timestamp)> {
        let config = &prov.shared.circuit_config;
        let circuit = &prov.shared.circuit;
        let probe_until = now.saturating_add(Duration::from_millis(config.probe_timeout_ms));
        let mut refused = None;
        circuit.update(|state| {
            refused = None;
            match state {
                CircuitState::Closed => None,
                CircuitState::Open(t) if now < t => {
                    refused = Some(t);
                    None
                }
                // While a probe is out, ask again after one base backoff: by then it has
                // usually reported.
                CircuitState::Probing(t) if now < t => {
                    refused =
                        Some(t.min(now.saturating_add(Duration::from_millis(config.backoff_ms))));
                    None
                }
                CircuitState::Open(_) | CircuitState::Probing(_) => {
                    Some(CircuitState::Probing(probe_until))
                }
            }
        });
        match refused {
            Some(t) => {
                let cause = circuit.detail().cause.unwrap_or(ProviderCause::ServerError);
                Err((cause, t))
            }
            None => Ok(()),
        }
    }

    /// Brings credential `i`'s cooldown for `model` to a saved or shared one (this key only:
    /// its scope's keys carry their own), under the rules of local changes: an ended one is
    /// dropped, a longer running one is kept. Returns whether it changed anything.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn restore_model(
        &self,
        prov: &ProviderSnap,
        i: usize,
        model: crate::classify::ModelName,
        until: Timestamp,
        reason: CooldownReason,
        now: Timestamp,
        origin: Origin,
    ) -> bool {
        if until <= now {
            return false;
        }
        let slot = &prov.slots[i];
        let fp = prov.fingerprints[i];
        let changed = prov.shared.models.update(now, |table| {
            let keys = table.entry(model).or_default();
            match keys.get(&fp) {
                Some(c) if c.until >= until => false,
                _ => {
                    keys.insert(
                        fp,
                        ModelCooldown {
                            until,
                            reason: reason.clone(),
                        },
                    );
                    true
                }
            }
        });
        if changed {
            self.emit(origin, || Event::ModelExhausted {
                provider: Arc::clone(&prov.name),
                model,
                credentials: vec![slot.id.clone()],
                until,
                reason: Box::new(reason),
            });
        }
        changed
    }

    /// Ends every per-model cooldown of `prov` (a reset of all), or drops those ended by
    /// `now`.
    ///
    /// A reset of all is told to the store for the keys that rested, so that it forgets their
    /// rests too (a restart must not bring them back). Subscribers are not told, as before: a
    /// rest for one model never made the key unavailable.
    pub(super) fn end_model_cooldowns(&self, prov: &ProviderSnap, now: Timestamp, all: bool) {
        if prov.shared.models.is_empty() {
            return;
        }
        let rested: Vec<u64> = prov.shared.models.update(now, |table| {
            if !all {
                return Vec::new();
            }
            let mut rested: Vec<u64> = table
                .values()
                .flat_map(|keys| keys.keys().copied())
                .collect();
            table.clear();
            rested.sort_unstable();
            rested.dedup();
            rested
        });
        if rested.is_empty() || self.events.store().is_none() {
            return;
        }
        let credentials: Vec<_> = prov
            .slots
            .iter()
            .zip(prov.fingerprints.iter())
            .filter(|(_, fp)| rested.binary_search(fp).is_ok())
            .map(|(slot, _)| slot.id.fingerprint)
            .collect();
        if !credentials.is_empty() {
            self.events.models_reset(&prov.name, &credentials);
        }
    }

    /// Whether credential `i` may be handed out at `now`. A cooldown that has ended is ended
    /// here, by exactly one caller, which emits its `Reset`.
    pub(super) fn ready_at(&self, prov: &ProviderSnap, i: usize, now: Timestamp) -> bool {
        match prov.slots[i].state() {
            SlotState::Ready => true,
            SlotState::Cooling(t) if t <= now => {
                self.end_cooldowns(prov, std::iter::once(i), now, Origin::Local);
                // Whoever ended it, it is ready unless it was changed again meanwhile.
                prov.slots[i].is_ready_now()
            }
            SlotState::Cooling(_) | SlotState::Disabled | SlotState::Removed => false,
        }
    }

    /// Ends the cooldowns of the credentials at `positions` that end at or before `up_to`
    /// (`Timestamp::MAX` for a reset of all), with one `Reset` for those it ended. Returns
    /// how many it ended.
    pub(super) fn end_cooldowns(
        &self,
        prov: &ProviderSnap,
        positions: impl Iterator<Item = usize>,
        up_to: Timestamp,
        origin: Origin,
    ) -> usize {
        let mut ended = Vec::new();
        for i in positions {
            let slot = &prov.slots[i];
            let change = slot.update(|current| match current {
                SlotState::Cooling(t) if t <= up_to => Some(SlotState::Ready),
                _ => None,
            });
            if change.is_ok() {
                ended.push(slot.id.clone());
            }
        }
        if ended.is_empty() {
            return 0;
        }
        // Available again: the provider's "all exhausted until T" no longer holds, and the
        // next time it runs out must be announced again.
        prov.shared.exhaustion.invalidate();
        let count = ended.len();
        tracing::debug!(provider = %prov.name, count, ?origin, "cooldowns ended");
        self.emit(origin, || Event::Reset {
            provider: Arc::clone(&prov.name),
            credentials: ended,
        });
        count
    }

    /// Disables credential `i` for `reason`. Returns `false` if it was already disabled or is
    /// removed.
    pub(super) fn disable_at(
        &self,
        prov: &ProviderSnap,
        i: usize,
        reason: CooldownReason,
        origin: Origin,
    ) -> bool {
        let slot = &prov.slots[i];
        let change = slot.update(|current| match current {
            SlotState::Disabled | SlotState::Removed => None,
            SlotState::Ready | SlotState::Cooling(_) => Some(SlotState::Disabled),
        });
        if change.is_err() {
            return false;
        }
        let cause = reason.cause.clone();
        {
            let mut d = slot.detail();
            d.recheck = self.recheck_for(prov, &reason, d.recheck_failures);
            if d.recheck.is_some() {
                d.recheck_failures = d.recheck_failures.saturating_add(1);
            }
            d.reason = Some(Box::new(reason));
        }
        match origin {
            Origin::Local => {
                tracing::warn!(provider = %prov.name, credential = %slot.id, reason = %cause, "credential disabled")
            }
            _ => {
                tracing::debug!(provider = %prov.name, credential = %slot.id, reason = %cause, ?origin, "credential disabled")
            }
        }
        self.emit(origin, || Event::Disabled {
            provider: Arc::clone(&prov.name),
            credential: slot.id.clone(),
            reason: cause,
        });
        if origin.is_live() {
            self.move_off(prov, |j| j == i, self.clock.now());
        }
        true
    }

    /// The re-check schedule of a key disabled for `reason`: depleted keys (out of credits, a
    /// cap with no known reset) always, invalid keys when the provider re-checks them.
    fn recheck_for(
        &self,
        prov: &ProviderSnap,
        reason: &CooldownReason,
        failures: u32,
    ) -> Option<Box<Recheck>> {
        let config = &prov.shared.recheck;
        let kind = match reason.verdict.as_deref() {
            Some(Verdict::QuotaExhausted { until: None, .. }) => RecheckKind::Depleted,
            Some(Verdict::InvalidKey { .. }) if config.recheck_invalid => RecheckKind::Invalid,
            _ => return None,
        };
        let due = config
            .enabled
            .then(|| config.due(self.clock.now(), failures));
        Some(Box::new(Recheck { kind, due }))
    }

    /// Takes credential `i` (with `shared`, every credential of its quota scope) out of use
    /// until a re-check: disabled with the reason, which schedules the re-check.
    fn deplete(
        &self,
        prov: &ProviderSnap,
        i: usize,
        shared: bool,
        reason: CooldownReason,
    ) -> ReportOutcome {
        let scope = prov.slots[i].scope.clone().filter(|_| shared);
        let members: Vec<usize> = match scope.as_ref().and_then(|s| prov.scopes.get(s)) {
            Some(m) => m.iter().map(|&j| j as usize).collect(),
            None => vec![i],
        };
        let mut any = false;
        for j in members {
            any |= self.disable_at(prov, j, reason.clone(), Origin::Local);
        }
        if !any {
            return ReportOutcome::Unchanged;
        }
        let recheck_at = prov.slots[i].detail().recheck.as_ref().and_then(|r| r.due);
        ReportOutcome::Depleted { recheck_at, scope }
    }

    /// The depleted (or re-checked invalid) credentials of `prov` whose re-check is due at
    /// `now`. Each is claimed: offered again after the first wait if nobody reports (a probe
    /// lost with its caller is not lost for good).
    pub(super) fn claim_due(
        &self,
        prov: &ProviderSnap,
        now: Timestamp,
    ) -> Vec<(usize, RecheckKind)> {
        let config = &prov.shared.recheck;
        if !config.enabled {
            return Vec::new();
        }
        let mut due = Vec::new();
        for (i, slot) in prov.slots.iter().enumerate() {
            if slot.state() != SlotState::Disabled {
                continue;
            }
            let mut d = slot.detail();
            if let Some(r) = d.recheck.as_mut()
                && r.due.is_some_and(|t| t <= now)
            {
                r.due = Some(config.due(now, 0));
                due.push((i, r.kind));
            }
        }
        due
    }

    pub(super) fn due_probes(&self, provider: &str) -> Vec<crate::recheck::DueProbe> {
        let snapshot = self.snapshot.load();
        let Some(p) = snapshot.find(provider) else {
            return Vec::new();
        };
        let due = self.claim_due(&snapshot.providers[p], self.clock.now());
        due.into_iter()
            .map(|(i, kind)| crate::recheck::DueProbe {
                credential: Credential::new(self.snapshot.load(), p, i).detach(),
                kind,
            })
            .collect()
    }

    pub(super) fn probe_succeeded(&self, credential: &Credential) -> bool {
        let snapshot = self.snapshot.load();
        self.locate(&snapshot, credential)
            .is_some_and(|(prov, i)| self.probe_succeeded_at(prov, i))
    }

    pub(super) fn probe_failed(&self, credential: &Credential) -> Option<Timestamp> {
        let snapshot = self.snapshot.load();
        let (prov, i) = self.locate(&snapshot, credential)?;
        self.probe_failed_at(prov, i)
    }

    /// A re-check proved credential `i`: it is enabled again (its backoff is kept until a
    /// real request succeeds, so a key still out of credits backs off further). Returns
    /// whether it was waiting for a re-check.
    pub(super) fn probe_succeeded_at(&self, prov: &ProviderSnap, i: usize) -> bool {
        if prov.slots[i].detail().recheck.is_none() {
            return false;
        }
        self.enable_at(prov, i, Origin::Local)
    }

    /// A re-check failed: the next one is due after a doubled backoff. Returns when, or `None`
    /// if the credential was not waiting for a re-check.
    pub(super) fn probe_failed_at(&self, prov: &ProviderSnap, i: usize) -> Option<Timestamp> {
        let config = &prov.shared.recheck;
        let now = self.clock.now();
        let mut d = prov.slots[i].detail();
        let failures = d.recheck_failures;
        let r = d.recheck.as_mut()?;
        let due = config.enabled.then(|| config.due(now, failures));
        r.due = due;
        d.recheck_failures = failures.saturating_add(1);
        due
    }

    /// Enables disabled credential `i`. Returns `false` if it was not disabled.
    pub(super) fn enable_at(&self, prov: &ProviderSnap, i: usize, origin: Origin) -> bool {
        let slot = &prov.slots[i];
        let change = slot.update(|current| match current {
            SlotState::Disabled => Some(SlotState::Ready),
            _ => None,
        });
        if change.is_err() {
            return false;
        }
        {
            let mut d = slot.detail();
            d.reason = None;
            d.failures = 0;
            d.recheck = None;
        }
        prov.shared.exhaustion.invalidate();
        tracing::info!(provider = %prov.name, credential = %slot.id, ?origin, "credential enabled");
        self.emit(origin, || Event::Enabled {
            provider: Arc::clone(&prov.name),
            credential: slot.id.clone(),
        });
        true
    }

    pub(super) fn disable(&self, provider: &str, key: &str) -> bool {
        let snapshot = self.snapshot.load();
        let Some(prov) = snapshot.provider(provider) else {
            return false;
        };
        match prov.position_of_key(key) {
            Some(i) => self.disable_at(
                prov,
                i,
                CooldownReason::new("disabled by hand"),
                Origin::Local,
            ),
            None => false,
        }
    }

    pub(super) fn enable(&self, provider: &str, key: &str) -> bool {
        let snapshot = self.snapshot.load();
        let Some(prov) = snapshot.provider(provider) else {
            return false;
        };
        match prov.position_of_key(key) {
            Some(i) => self.enable_at(prov, i, Origin::Local),
            None => false,
        }
    }

    /// Ends cooldowns: all of them (`expired_only = false`), or those that ended by now.
    fn reset_where(&self, provider: Option<&str>, expired_only: bool) -> usize {
        let snapshot = self.snapshot.load();
        let up_to = if expired_only {
            self.clock.now()
        } else {
            Timestamp::MAX
        };
        let mut total = 0;
        for prov in &snapshot.providers {
            if provider.is_some_and(|name| name != &*prov.name) {
                continue;
            }
            if !expired_only {
                prov.shared
                    .scope_until
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clear();
            }
            self.end_model_cooldowns(prov, self.clock.now(), !expired_only);
            total += self.end_cooldowns(prov, 0..prov.slots.len(), up_to, Origin::Local);
        }
        total
    }

    pub(super) fn reset_all(&self, provider: Option<&str>) -> usize {
        self.reset_where(provider, false)
    }

    pub(super) fn reset_expired(&self) -> usize {
        self.reset_where(None, true)
    }

    /// Brings credential `i` to a saved or shared state (`saved`), under the rules of local
    /// changes: a longer running cooldown is kept, a removed credential stays removed, and a
    /// saved "available" does not end a running cooldown. Each change is one of the
    /// transitions above, so it emits what the same local change would.
    pub(super) fn restore(
        &self,
        prov: &ProviderSnap,
        i: usize,
        saved: SlotState,
        reason: Option<CooldownReason>,
        now: Timestamp,
        origin: Origin,
    ) {
        let current = prov.slots[i].state();
        if current == SlotState::Removed {
            return;
        }
        match saved {
            SlotState::Disabled => {
                let reason = reason.unwrap_or_else(|| CooldownReason::new("disabled"));
                self.disable_at(prov, i, reason, origin);
            }
            SlotState::Cooling(until) if until > now => {
                if current == SlotState::Disabled {
                    self.enable_at(prov, i, origin);
                }
                let reason = reason.unwrap_or_else(|| CooldownReason::new("marked exhausted"));
                self.cool(prov, i, until, now, reason, origin);
            }
            SlotState::Ready | SlotState::Cooling(_) | SlotState::Removed => {
                if current == SlotState::Disabled {
                    self.enable_at(prov, i, origin);
                }
            }
        }
    }

    /// Marks a credential that left the provider: callers still on an old snapshot skip it,
    /// and nothing revives it.
    pub(super) fn retire(slot: &Slot) {
        let _ = slot.update(|_| Some(SlotState::Removed));
    }

    /// A credential joining quota scope `scope` while the scope cools starts cooling with it.
    /// The credential is not yet published, so no event: nobody has seen it.
    pub(super) fn join_cooling_scope(slot: &Slot, scope: &Arc<str>, until: Timestamp) {
        let _ = slot.update(|_| Some(SlotState::Cooling(until)));
        let mut reason = CooldownReason::new("quota scope cooling");
        reason.scope = Some(Arc::clone(scope));
        slot.detail().reason = Some(Box::new(reason));
    }
}
