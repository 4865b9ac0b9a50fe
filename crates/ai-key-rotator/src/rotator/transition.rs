//! State changes of credentials: the one place where cooldowns start, grow and end, and where
//! credentials are disabled and enabled.
//!
//! Policies and the classifier decide *what should change*; this module applies it under the
//! crate's rules (a running cooldown is extended, never shortened; disabled and removed
//! credentials are left alone; a scope-wide limit cools the whole scope; every change emits its
//! event) and is where later layers (persistence, sharing) hear about each change.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde::Serialize;

use super::Inner;
use crate::classify::{LimitScope, Verdict};
use crate::clock::Timestamp;
use crate::cooldown::CooldownContext;
use crate::credential::Credential;
use crate::events::Event;
use crate::pool::{ProviderSnap, Slot, SlotState, Snapshot};
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
}

impl Inner {
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
        self.cool(prov, i, until, now, CooldownReason::new("marked exhausted"))
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

    pub(super) fn report(&self, credential: &Credential, verdict: &Verdict) -> ReportOutcome {
        let snapshot = self.snapshot.load();
        let Some((prov, i)) = self.locate(&snapshot, credential) else {
            return ReportOutcome::Unchanged;
        };
        let slot = &prov.slots[i];
        let now = self.clock.now();
        match verdict {
            Verdict::Ok(usage) => {
                slot.detail().failures = 0;
                if let Some(left) = usage.remaining_requests.or(usage.remaining_tokens) {
                    slot.remaining.store(left, Ordering::Relaxed);
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
                self.cool_key_or_scope(prov, i, shared, t, now, reason)
            }
            Verdict::InvalidKey { .. } => {
                let reason = CooldownReason {
                    cause: Cow::Borrowed(verdict.reason()),
                    verdict: Some(Box::new(verdict.clone())),
                    provider_reset: None,
                    scope: None,
                };
                if self.disable_at(prov, i, reason) {
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
            prov.slots[i].detail().failures = 0;
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
            None => match self.cool(prov, i, until, now, reason) {
                Some(applied) => ReportOutcome::Cooled {
                    until: applied,
                    scope: None,
                },
                None => ReportOutcome::Unchanged,
            },
        }
    }

    /// Sets or extends credential `i`'s cooldown to `until`, without events or counters.
    /// Returns the cooldown end now in force, or `None` if it is disabled or removed.
    fn extend(
        &self,
        prov: &ProviderSnap,
        i: usize,
        until: Timestamp,
        now: Timestamp,
    ) -> Option<Timestamp> {
        let slot = &prov.slots[i];
        loop {
            let current = slot.state();
            let target = match current {
                SlotState::Disabled | SlotState::Removed => return None,
                SlotState::Ready => until,
                SlotState::Cooling(t) if t <= now => {
                    // The previous cooldown ended unobserved; end it properly (with its
                    // `Reset`) before starting the new one.
                    self.ready_at(prov, i, now);
                    continue;
                }
                SlotState::Cooling(t) => t.max(until),
            };
            if current == SlotState::Cooling(target)
                || slot.replace(current, SlotState::Cooling(target))
            {
                return Some(target);
            }
        }
    }

    /// Records why `slot` cools, unless a longer cooldown with its own reason is running.
    fn explain(slot: &Slot, applied: Timestamp, until: Timestamp, reason: CooldownReason) {
        if applied == until {
            slot.detail().reason = Some(Box::new(reason));
        }
    }

    /// Cools credential `i` until `until` (or longer, if it already cools longer). Returns the
    /// end in force, or `None` if it is disabled or removed.
    pub(super) fn cool(
        &self,
        prov: &ProviderSnap,
        i: usize,
        until: Timestamp,
        now: Timestamp,
        reason: CooldownReason,
    ) -> Option<Timestamp> {
        let slot = &prov.slots[i];
        let applied = self.extend(prov, i, until, now)?;
        Self::explain(slot, applied, until, reason);
        slot.times_exhausted.fetch_add(1, Ordering::Relaxed);
        slot.last_exhausted_at
            .store(now.as_millis(), Ordering::Relaxed);
        self.events.emit_with(|| Event::Exhausted {
            provider: Arc::clone(&prov.name),
            credential: slot.id.clone(),
            until: applied,
        });
        tracing::debug!(provider = %prov.name, credential = %slot.id, until = %applied, "credential cools down");
        self.move_off(prov, |j| j == i, now);
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
        let mut cooled = Vec::with_capacity(members.len());
        let mut reporter_until = until;
        for &j in members {
            let j = j as usize;
            if let Some(applied) = self.extend(prov, j, until, now) {
                Self::explain(&prov.slots[j], applied, until, reason.clone());
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
        self.events.emit_with(|| Event::ScopeExhausted {
            provider: Arc::clone(&prov.name),
            scope: Arc::clone(scope),
            credentials: cooled,
            until,
        });
        self.move_off(prov, |j| members.contains(&(j as u32)), now);
        reporter_until
    }

    /// If the current credential is among those just made unavailable, moves the provider on
    /// now, so the next caller does not pay for the search (and `Rotated` or `AllExhausted`
    /// follow the change that caused them).
    pub(super) fn move_off(
        &self,
        prov: &ProviderSnap,
        affected: impl Fn(usize) -> bool,
        now: Timestamp,
    ) {
        let n = prov.slots.len();
        if n == 0 {
            return;
        }
        let cursor = prov.shared.cursor.load(Ordering::Relaxed);
        let current = cursor as usize % n;
        if !affected(current) {
            return;
        }
        let before = prov.shared.exhaustion.load();
        match self.find_ready(prov, current + 1, n - 1, now) {
            Some(next) => self.move_cursor(prov, cursor, next),
            None => self.note_exhausted(prov, before),
        }
    }

    fn disable_at(&self, prov: &ProviderSnap, i: usize, reason: CooldownReason) -> bool {
        let slot = &prov.slots[i];
        loop {
            let current = slot.state();
            if matches!(current, SlotState::Disabled | SlotState::Removed) {
                return false;
            }
            if slot.replace(current, SlotState::Disabled) {
                break;
            }
        }
        let cause = reason.cause.clone();
        slot.detail().reason = Some(Box::new(reason));
        tracing::warn!(provider = %prov.name, credential = %slot.id, reason = %cause, "credential disabled");
        self.events.emit_with(|| Event::Disabled {
            provider: Arc::clone(&prov.name),
            credential: slot.id.clone(),
            reason: cause,
        });
        self.move_off(prov, |j| j == i, self.clock.now());
        true
    }

    pub(super) fn disable(&self, provider: &str, key: &str) -> bool {
        let snapshot = self.snapshot.load();
        let Some(prov) = snapshot.provider(provider) else {
            return false;
        };
        match prov.position_of_key(key) {
            Some(i) => self.disable_at(prov, i, CooldownReason::new("disabled by hand")),
            None => false,
        }
    }

    pub(super) fn enable(&self, provider: &str, key: &str) -> bool {
        let snapshot = self.snapshot.load();
        let Some(prov) = snapshot.provider(provider) else {
            return false;
        };
        let Some(i) = prov.position_of_key(key) else {
            return false;
        };
        let slot = &prov.slots[i];
        if !slot.replace(SlotState::Disabled, SlotState::Ready) {
            return false;
        }
        {
            let mut d = slot.detail();
            d.reason = None;
            d.failures = 0;
        }
        prov.shared.exhaustion.invalidate();
        tracing::info!(provider = %prov.name, credential = %slot.id, "credential enabled");
        self.events.emit_with(|| Event::Enabled {
            provider: Arc::clone(&prov.name),
            credential: slot.id.clone(),
        });
        true
    }

    /// Ends cooldowns: all of them (`expired_only = false`), or those that ended by `now`.
    fn reset_where(&self, provider: Option<&str>, expired_only: bool) -> usize {
        let snapshot = self.snapshot.load();
        let now = self.clock.now();
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
            let mut reset = Vec::new();
            for slot in prov.slots.iter() {
                loop {
                    match slot.state() {
                        SlotState::Cooling(t) if !expired_only || t <= now => {
                            if slot.replace(SlotState::Cooling(t), SlotState::Ready) {
                                reset.push(slot.id.clone());
                                break;
                            }
                        }
                        _ => break,
                    }
                }
            }
            if reset.is_empty() {
                continue;
            }
            prov.shared.exhaustion.invalidate();
            total += reset.len();
            tracing::debug!(provider = %prov.name, count = reset.len(), "cooldowns reset");
            self.events.emit_with(|| Event::Reset {
                provider: Arc::clone(&prov.name),
                credentials: reset,
            });
        }
        total
    }

    pub(super) fn reset_all(&self, provider: Option<&str>) -> usize {
        self.reset_where(provider, false)
    }

    pub(super) fn reset_expired(&self) -> usize {
        self.reset_where(None, true)
    }
}
