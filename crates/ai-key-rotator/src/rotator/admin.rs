//! What an operator (or a health check) asks of one credential by its fingerprint: a handle on
//! it whatever its state, ending its cooldown, disabling and enabling it, and the headroom the
//! provider last reported. Dashboards and admin endpoints name keys by fingerprint only, so
//! these never take the key.

use std::sync::atomic::Ordering;

use super::KeyRotator;
use super::transition::Origin;
use crate::clock::Timestamp;
use crate::credential::Credential;
use crate::identity::Fingerprint;
use crate::pool::SlotState;
use crate::status::CooldownReason;

impl KeyRotator {
    /// A handle on the credential of `provider` with this fingerprint, whatever its state
    /// (cooling and disabled ones too), or `None` if there is none. It does not count as a
    /// use and is never in flight: it is for probing a key or acting on it, not for a request.
    ///
    /// ```
    /// use ai_key_rotator::{Fingerprint, KeyRotator, ProviderConfig};
    ///
    /// let rotator = KeyRotator::builder()
    ///     .provider("openai", ProviderConfig::new().credential("sk-a").credential("sk-b"))
    ///     .build()?;
    /// rotator.disable("openai", "sk-b");
    /// let b = rotator.credential("openai", Fingerprint::of("sk-b")).unwrap();
    /// assert_eq!(b.expose_key(), "sk-b");
    /// assert!(rotator.credential("openai", Fingerprint::of("sk-c")).is_none());
    /// # Ok::<(), ai_key_rotator::ConfigError>(())
    /// ```
    pub fn credential(&self, provider: &str, fingerprint: Fingerprint) -> Option<Credential> {
        let snapshot = self.inner.snapshot.load();
        let p = snapshot.find(provider)?;
        let i = snapshot.providers[p].position_of(fingerprint)?;
        if snapshot.providers[p].slots[i].state() == SlotState::Removed {
            return None;
        }
        // Owned: a probe holds it across an upstream request.
        Some(Credential::new(snapshot, p, i).detach())
    }

    /// Ends the cooldown of one credential (not its scope's other members). Returns `false`
    /// when there is no such credential or it was not cooling; a disabled credential stays
    /// disabled (see [`enable_credential`](Self::enable_credential)).
    ///
    /// ```
    /// use ai_key_rotator::{Fingerprint, KeyRotator, ProviderConfig};
    ///
    /// let rotator = KeyRotator::builder()
    ///     .provider("openai", ProviderConfig::new().credential("sk-a").credential("sk-b"))
    ///     .build()?;
    /// rotator.mark_exhausted("openai", Some("sk-a"));
    /// assert!(rotator.reset_credential("openai", Fingerprint::of("sk-a")));
    /// assert!(!rotator.reset_credential("openai", Fingerprint::of("sk-a")));
    /// # Ok::<(), ai_key_rotator::ConfigError>(())
    /// ```
    pub fn reset_credential(&self, provider: &str, fingerprint: Fingerprint) -> bool {
        let snapshot = self.inner.snapshot.load();
        let Some(prov) = snapshot.provider(provider) else {
            return false;
        };
        let Some(i) = prov.position_of(fingerprint) else {
            return false;
        };
        self.inner
            .end_cooldowns(prov, std::iter::once(i), Timestamp::MAX, Origin::Local)
            == 1
    }

    /// Disables one credential by hand, as [`disable`](Self::disable) does by key, with
    /// `cause` as its reason. Returns `false` when there is no such credential or it is
    /// already disabled.
    pub fn disable_credential(
        &self,
        provider: &str,
        fingerprint: Fingerprint,
        cause: &str,
    ) -> bool {
        let snapshot = self.inner.snapshot.load();
        let Some(prov) = snapshot.provider(provider) else {
            return false;
        };
        let Some(i) = prov.position_of(fingerprint) else {
            return false;
        };
        self.inner.disable_at(
            prov,
            i,
            CooldownReason::new(cause.to_owned()),
            Origin::Local,
        )
    }

    /// Enables one disabled credential, as [`enable`](Self::enable) does by key. Returns
    /// `false` when there is no such credential or it is not disabled.
    pub fn enable_credential(&self, provider: &str, fingerprint: Fingerprint) -> bool {
        let snapshot = self.inner.snapshot.load();
        let Some(prov) = snapshot.provider(provider) else {
            return false;
        };
        let Some(i) = prov.position_of(fingerprint) else {
            return false;
        };
        self.inner.enable_at(prov, i, Origin::Local)
    }

    /// The requests (or, without a request count, tokens) the provider last said remain for
    /// each credential of `provider`, in order: `None` where it never said. Empty for an
    /// unknown provider.
    pub fn remaining(&self, provider: &str) -> Vec<(Fingerprint, Option<u64>)> {
        let snapshot = self.inner.snapshot.load();
        let Some(prov) = snapshot.provider(provider) else {
            return Vec::new();
        };
        prov.slots
            .iter()
            .map(|s| {
                let left = s.remaining.load(Ordering::Relaxed);
                (s.id.fingerprint, (left != u64::MAX).then_some(left))
            })
            .collect()
    }
}
