//! Adding and removing credentials and providers at run time.
//!
//! Each change builds a new snapshot from the current one under the writer lock and publishes
//! it; readers switch over on their next call. Credential state lives in shared slots, so a
//! change to one provider carries every other credential's state over untouched.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use secrecy::ExposeSecret;

use super::Inner;
use super::builder::{new_provider, new_slot};
use crate::config::{CredentialConfig, ProviderConfig};
use crate::error::ConfigError;
use crate::events::Event;
use crate::pool::{ProviderSnap, Snapshot};

impl Inner {
    fn lock_writer(&self) -> std::sync::MutexGuard<'_, ()> {
        // The lock guards no data of its own, so a panic elsewhere cannot have left anything
        // half-done behind it.
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes `snapshot` with provider `p` replaced by `prov`.
    fn publish_with(&self, snapshot: &Snapshot, p: usize, prov: ProviderSnap) {
        let mut providers = snapshot.providers.clone();
        providers[p] = prov;
        self.snapshot.store(Arc::new(Snapshot::new(providers)));
    }

    pub(super) fn add_credential(
        &self,
        provider: &str,
        credential: CredentialConfig,
    ) -> Result<(), ConfigError> {
        let _writer = self.lock_writer();
        let snapshot = self.snapshot.load_full();
        let p = snapshot
            .find(provider)
            .ok_or_else(|| ConfigError::UnknownProvider {
                provider: provider.to_owned(),
            })?;
        let prov = &snapshot.providers[p];
        credential.validate(provider, prov.slots.len())?;
        if prov
            .position_of_key(credential.key.expose_secret())
            .is_some()
        {
            return Err(ConfigError::DuplicateKey {
                provider: provider.to_owned(),
                credential: credential.name(),
            });
        }
        if u32::try_from(prov.slots.len() + 1).is_err() {
            return Err(ConfigError::TooManyCredentials {
                provider: provider.to_owned(),
            });
        }
        let slot = new_slot(credential, &self.usage, prov.shared.budget.is_some());
        // A credential joining a quota scope that is cooling cools with it.
        if let Some(scope) = &slot.scope {
            let now = self.clock.now();
            let until = prov
                .shared
                .scope_until
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(scope)
                .copied()
                .filter(|&t| t > now);
            if let Some(until) = until {
                Self::join_cooling_scope(&slot, scope, until);
            }
        }
        let mut slots = prov.slots.to_vec();
        slots.push(Arc::new(slot));
        let shared = Arc::clone(&prov.shared);
        let next = ProviderSnap::new(Arc::clone(&prov.name), slots, Arc::clone(&shared));
        self.join_fleet(&next);
        self.publish_with(&snapshot, p, next);
        // A new available credential ends any "all exhausted" the provider was in.
        shared.exhaustion.invalidate();
        Ok(())
    }

    pub(super) fn remove_credential(&self, provider: &str, key: &str) -> bool {
        let _writer = self.lock_writer();
        let snapshot = self.snapshot.load_full();
        let Some(p) = snapshot.find(provider) else {
            return false;
        };
        let prov = &snapshot.providers[p];
        let Some(i) = prov.position_of_key(key) else {
            return false;
        };
        // Mark it first: callers still on the old snapshot then skip it too.
        let removed = &prov.slots[i];
        Self::retire(removed);
        let mut slots = prov.slots.to_vec();
        slots.remove(i);
        let remaining = slots.len();
        let next = ProviderSnap::new(Arc::clone(&prov.name), slots, Arc::clone(&prov.shared));

        // Keep the cursor on the same credential; if it was the removed one, the credential
        // after it takes its place.
        let cursor = prov.shared.cursor.load(Ordering::Relaxed) as usize;
        let was_current = cursor == i;
        let mut moved = if cursor > i { cursor - 1 } else { cursor };
        if moved >= remaining {
            moved = 0;
        }
        prov.shared.cursor.store(moved as u32, Ordering::Relaxed);
        if was_current && remaining > 0 {
            let to = next.slots[moved].id.clone();
            self.events.emit_with(|| Event::Rotated {
                provider: Arc::clone(&prov.name),
                from: Some(removed.id.clone()),
                to,
            });
        }
        self.publish_with(&snapshot, p, next);
        tracing::debug!(provider, credential = %removed.id, "credential removed");
        true
    }

    pub(super) fn add_provider(
        &self,
        name: &str,
        config: ProviderConfig,
    ) -> Result<(), ConfigError> {
        let _writer = self.lock_writer();
        let snapshot = self.snapshot.load_full();
        if snapshot.find(name).is_some() {
            return Err(ConfigError::DuplicateProvider {
                provider: name.to_owned(),
            });
        }
        let zone = config.usage_day_zone(name);
        let prov = new_provider(name, config, &self.usage)?;
        self.ledger.set_zone(name, zone);
        self.join_fleet(&prov);
        let mut providers = snapshot.providers.clone();
        providers.push(prov);
        self.snapshot.store(Arc::new(Snapshot::new(providers)));
        Ok(())
    }
}
