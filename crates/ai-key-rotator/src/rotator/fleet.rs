//! Budgets shared by a fleet: each budget that is not `per_process` joins the store's
//! [`FleetHub`] (see `budget/fleet.rs`), when the store shares budgets.

use std::sync::Arc;

use super::{Inner, KeyRotator};
use crate::budget::fleet::{FleetHub, FleetSubject};
use crate::pool::ProviderSnap;

impl Inner {
    /// Makes every budget of `prov` not yet in the fleet join it. Idempotent, so membership
    /// changes call it again for the provider they changed.
    pub(super) fn join_fleet(&self, prov: &ProviderSnap) {
        let Some(hub) = &self.fleet else {
            return;
        };
        join(hub, prov);
    }
}

impl KeyRotator {
    /// The fleet as the store last saw it: the live processes (gateways, workers) sharing
    /// its state, each one's key-set digest (a replica whose keys differ from most is
    /// flagged), and whether fleet-wide budgets run on this process's share because the
    /// store is out of reach. `None` without a store that knows a fleet (Redis) or before its
    /// first heartbeat.
    ///
    /// ```
    /// use ai_key_rotator::{KeyRotator, ProviderConfig};
    ///
    /// let rotator = KeyRotator::builder()
    ///     .provider("openai", ProviderConfig::new().credential("sk-a"))
    ///     .build()?;
    /// assert!(rotator.fleet().is_none()); // no shared store
    /// # Ok::<(), ai_key_rotator::ConfigError>(())
    /// ```
    pub fn fleet(&self) -> Option<crate::FleetView> {
        self.inner.events.store().and_then(|s| s.fleet_view())
    }
}

fn join(hub: &Arc<FleetHub>, prov: &ProviderSnap) {
    if let Some(limits) = prov.shared.budget.as_ref().filter(|l| l.shared()) {
        for slot in prov.slots.iter() {
            if let Some(usage) = slot.budget.as_ref().filter(|u| !u.in_fleet()) {
                let subject = FleetSubject {
                    provider: Arc::clone(&prov.name),
                    name: slot.id.fingerprint.to_string(),
                };
                usage.join_fleet(hub.join(subject, limits.clone()));
            }
        }
    }
    for (scope, (limits, usage)) in &prov.shared.scope_budgets {
        if limits.shared() && !usage.in_fleet() {
            let subject = FleetSubject {
                provider: Arc::clone(&prov.name),
                name: format!("scope:{scope}"),
            };
            usage.join_fleet(hub.join(subject, limits.clone()));
        }
    }
}
