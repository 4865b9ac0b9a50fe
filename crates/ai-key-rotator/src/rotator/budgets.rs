//! Budgets seen from outside: each budget's use against its limits (a read-only view for
//! status pages and metrics), and the real token use of a request reported after its lease
//! ended (a stream's usage arrives with its last event, long after `execute` reported it).

use super::KeyRotator;
use crate::budget::{Limits, Usage};
use crate::clock::Timestamp;
use crate::credential::Credential;
use crate::pool::SlotState;
use crate::status::{KeyBudget, ProviderBudgets, ScopeBudget};

impl KeyRotator {
    /// The provider's budgets and their use now: each key's own budget (the provider's
    /// `budget`) and each quota scope's (`scope_budgets`), limit by limit. `None` for an
    /// unknown provider; empty lists for a provider without budgets. Reads atomics (and the
    /// daily counters' lock, held for a copy): a status page may call it every second.
    ///
    /// ```
    /// use ai_key_rotator::{Budget, KeyRotator, LimitKind, ProviderConfig};
    ///
    /// let rotator = KeyRotator::builder()
    ///     .provider(
    ///         "openai",
    ///         ProviderConfig::new()
    ///             .credential("sk-a")
    ///             .budget(Budget { requests_per_minute: Some(60), ..Budget::default() }),
    ///     )
    ///     .build()?;
    /// let lease = rotator.acquire("openai").unwrap();
    /// lease.success(None);
    /// let budgets = rotator.budgets("openai").unwrap();
    /// let rpm = &budgets.keys[0].limits[0];
    /// assert_eq!((rpm.kind, rpm.used, rpm.limit), (LimitKind::RequestsPerMinute, 1, 60));
    /// assert_eq!(rpm.kind.window(), "minute");
    /// # Ok::<(), ai_key_rotator::ConfigError>(())
    /// ```
    pub fn budgets(&self, provider: &str) -> Option<ProviderBudgets> {
        let snapshot = self.inner.snapshot.load();
        let prov = snapshot.provider(provider)?;
        let now = self.now();
        let keys = match &prov.shared.budget {
            Some(limits) => prov
                .slots
                .iter()
                .filter(|s| s.state() != SlotState::Removed)
                .filter_map(|s| {
                    let usage = s.budget.as_deref()?;
                    Some(KeyBudget {
                        id: s.id.clone(),
                        fleet: usage.in_fleet(),
                        limits: usage.view(limits, now),
                    })
                })
                .collect(),
            None => Vec::new(),
        };
        let mut scopes: Vec<ScopeBudget> = prov
            .shared
            .scope_budgets
            .iter()
            .map(|(scope, (limits, usage))| ScopeBudget {
                scope: scope.clone(),
                fleet: usage.in_fleet(),
                limits: usage.view(limits, now),
            })
            .collect();
        scopes.sort_by(|a, b| a.scope.cmp(&b.scope));
        Some(ProviderBudgets {
            provider: prov.name.to_string(),
            at: now,
            keys,
            scopes,
        })
    }

    /// Charges the tokens a request of `credential` really used to its key's and its scope's
    /// token budgets, given the estimate it was admitted with (`0` when it gave none). For use
    /// after the lease is gone, when the real use arrives late (the usage object at the end of
    /// a stream); while the lease is held, [`Lease::success`](crate::Lease::success) does the
    /// same. Does nothing for a provider without token budgets.
    ///
    /// ```
    /// use ai_key_rotator::{Budget, KeyRotator, LimitKind, ProviderConfig};
    ///
    /// let rotator = KeyRotator::builder()
    ///     .provider(
    ///         "openai",
    ///         ProviderConfig::new()
    ///             .credential("sk-a")
    ///             .budget(Budget { tokens_per_day: Some(10_000), ..Budget::default() }),
    ///     )
    ///     .build()?;
    /// let key = rotator.get_key("openai").unwrap();
    /// rotator.tokens_used(&key, 0, 1_200);
    /// let tpd = rotator.budgets("openai").unwrap().keys[0].limits[0];
    /// assert_eq!((tpd.kind, tpd.used, tpd.limit), (LimitKind::TokensPerDay, 1_200, 10_000));
    /// # Ok::<(), ai_key_rotator::ConfigError>(())
    /// ```
    pub fn tokens_used(&self, credential: &Credential, estimated: u64, used: u64) {
        correct_tokens(credential, self.now(), estimated, used);
    }
}

/// Corrects the key's and its scope's token budgets from `estimated` to `used`.
pub(crate) fn correct_tokens(credential: &Credential, now: Timestamp, estimated: u64, used: u64) {
    let prov = credential.provider_snap();
    let slot = credential.slot_arc();
    let mut budgets: [Option<(&Limits, &Usage)>; 2] = [None, None];
    if let (Some(limits), Some(usage)) = (&prov.shared.budget, &slot.budget) {
        budgets[0] = Some((limits, usage));
    }
    if let Some((limits, usage)) = slot
        .scope
        .as_ref()
        .and_then(|s| prov.shared.scope_budgets.get(s))
    {
        budgets[1] = Some((limits, usage));
    }
    for (limits, usage) in budgets.into_iter().flatten() {
        usage.correct_tokens(limits, now, estimated, used);
    }
}
