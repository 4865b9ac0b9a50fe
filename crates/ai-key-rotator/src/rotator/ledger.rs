//! Per-key usage per provider day (`ledger/`): what callers count, and what they read back.

use std::sync::Arc;

use super::KeyRotator;
use crate::identity::Fingerprint;
use crate::ledger::{DailyUsage, UsageCounts, UsageError, day};
use crate::pool::SlotState;

impl KeyRotator {
    /// Adds `delta` (answers by class, tokens in and out) to a credential's usage on the
    /// provider's current day. Never waits on the store: the delta joins a map that the store
    /// (SQLite, Redis) writes every second as an addition, so processes sharing the store add
    /// up and a restart resumes from the stored totals. Without such a store the totals live in
    /// memory.
    ///
    /// ```
    /// use ai_key_rotator::{AnswerClass, Fingerprint, KeyRotator, ProviderConfig, UsageCounts};
    ///
    /// let rotator = KeyRotator::builder()
    ///     .provider("openai", ProviderConfig::new().credential("sk-a"))
    ///     .build()?;
    /// let a = Fingerprint::of("sk-a");
    /// rotator.record_usage("openai", a, UsageCounts::answer(AnswerClass::Ok))?;
    /// rotator.record_usage("openai", a, UsageCounts::tokens(120, 40))?;
    /// let today = rotator.usage_today("openai").unwrap();
    /// assert_eq!(today.time_zone, "UTC");
    /// let (id, counts) = &today.credentials[0];
    /// assert_eq!(id.fingerprint, a);
    /// assert_eq!((counts.requests(), counts.tokens_in, counts.tokens_out), (1, 120, 40));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`UsageError::UnknownProvider`], [`UsageError::UnknownCredential`] (usage is kept for
    /// configured credentials only), or [`UsageError::Full`] when the store has been away so
    /// long that the deltas waiting for it reached their bound.
    pub fn record_usage(
        &self,
        provider: &str,
        fingerprint: Fingerprint,
        delta: UsageCounts,
    ) -> Result<(), UsageError> {
        let snapshot = self.inner.snapshot.load();
        let Some(p) = snapshot.find(provider) else {
            return Err(UsageError::UnknownProvider {
                provider: provider.to_owned(),
            });
        };
        let prov = &snapshot.providers[p];
        let known = prov
            .position_of(fingerprint)
            .is_some_and(|i| prov.slots[i].state() != SlotState::Removed);
        if !known {
            return Err(UsageError::UnknownCredential {
                provider: provider.to_owned(),
                fingerprint,
            });
        }
        self.inner
            .ledger
            .record(&prov.name, fingerprint, &delta, self.inner.clock.now())
    }

    /// `provider`'s usage on its current day (in its time zone; see
    /// [`ProviderConfig::usage_day_timezone`](crate::ProviderConfig::usage_day_timezone)):
    /// every configured credential's counts, the stored totals (every process's, with a shared
    /// store, as of the store's last read, within a second) plus what this process has not
    /// written yet. `None` for an unknown provider.
    pub fn usage_today(&self, provider: &str) -> Option<DailyUsage> {
        let snapshot = self.inner.snapshot.load();
        let prov = &snapshot.providers[snapshot.find(provider)?];
        let zone = self.inner.ledger.zone(provider);
        let (d, mut counts) = self.inner.ledger.today(provider, self.inner.clock.now());
        let credentials = prov
            .slots
            .iter()
            .filter(|s| s.state() != SlotState::Removed)
            .map(|s| {
                let c = counts.remove(&s.id.fingerprint).unwrap_or_default();
                (s.id.clone(), c)
            })
            .collect();
        Some(DailyUsage {
            provider: Arc::clone(&prov.name).to_string(),
            date: day::date_of(d),
            time_zone: zone.name().to_owned(),
            credentials,
        })
    }

    /// How many (credential, day) entries of usage wait for the store: one per credential and
    /// day however many deltas it had, and never more than a bound far above any
    /// configuration. Zero without a store that keeps usage.
    pub fn usage_pending(&self) -> usize {
        self.inner.ledger.pending()
    }
}
