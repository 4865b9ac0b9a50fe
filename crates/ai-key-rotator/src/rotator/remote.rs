//! Changes made by other processes, applied to the local view.
//!
//! Shared stores (SQLite, Redis) hand in what another process did through the store's link
//! (`store::StoreLink::apply_remote`). Each change is one of `transition.rs`'s transitions with
//! [`Origin::Remote`]: the same rules as local changes (a running cooldown is only extended,
//! disabled stays disabled until enabled, removed stays removed, an ended cooldown gets its
//! `Reset`), and events go to subscribers as `Event::Remote`, never back to the store.

// Only the shared stores (SQLite, Redis) bring in other processes' changes; without them this
// is compiled and checked but has no caller.
#![cfg_attr(not(any(feature = "sqlite", feature = "redis")), allow(dead_code))]

use super::Inner;
use super::transition::Origin;
use crate::identity::Fingerprint;
use crate::status::CooldownReason;
use crate::store::RemoteChange;

impl Inner {
    pub(crate) fn apply_remote(
        &self,
        provider: &str,
        fingerprint: Fingerprint,
        change: RemoteChange,
    ) -> bool {
        let snapshot = self.snapshot.load();
        let Some(prov) = snapshot.provider(provider) else {
            return false;
        };
        let Some(i) = prov.position_of(fingerprint) else {
            return false;
        };
        let now = self.clock.now();
        match change {
            RemoteChange::Cooling { until, reason } => {
                if until <= now {
                    return false;
                }
                let reason = reason.unwrap_or_else(|| CooldownReason::new("marked exhausted"));
                let before = prov.slots[i].state();
                self.cool(prov, i, until, now, reason, Origin::Remote);
                prov.slots[i].state() != before
            }
            RemoteChange::Reset { up_to } => {
                self.end_cooldowns(prov, std::iter::once(i), up_to, Origin::Remote) > 0
            }
            RemoteChange::Disabled { reason } => {
                let reason = reason.unwrap_or_else(|| CooldownReason::new("disabled"));
                self.disable_at(prov, i, reason, Origin::Remote)
            }
            RemoteChange::Enabled => self.enable_at(prov, i, Origin::Remote),
            RemoteChange::ModelCooling {
                model,
                until,
                reason,
            } => {
                let reason = reason.unwrap_or_else(|| CooldownReason::new("marked exhausted"));
                self.restore_model(prov, i, model, until, reason, now, Origin::Remote)
            }
        }
    }
}
