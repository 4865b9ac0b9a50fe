//! [`Credential`]: the handle `get_key` hands out.
//!
//! Its naming ([`CredentialId`], [`Fingerprint`], masking) lives in the leaf module `identity`.

use std::fmt;
use std::sync::Arc;

use arc_swap::Guard;
use secrecy::ExposeSecret;

use crate::identity::{CredentialId, Fingerprint, mask};
use crate::pool::{Slot, Snapshot};

/// A credential handed out by [`KeyRotator::get_key`](crate::KeyRotator::get_key).
///
/// This is a short-lived handle: it borrows the rotator's current snapshot of the provider's
/// credentials without touching a shared reference count, which is what lets `get_key` scale
/// across threads. Hold it for the duration of a request. It stays valid (and keeps its key
/// readable) even if the credential is removed meanwhile.
///
/// The key is only readable through [`expose_key`](Credential::expose_key); `Debug` and
/// `Display` show the label and fingerprint.
pub struct Credential {
    snapshot: Guard<Arc<Snapshot>>,
    provider: u32,
    index: u32,
}

impl Credential {
    pub(crate) fn new(snapshot: Guard<Arc<Snapshot>>, provider: usize, index: usize) -> Self {
        // Both indices come from the snapshot itself, whose sizes are bounded by u32 at
        // construction.
        Credential {
            snapshot,
            provider: provider as u32,
            index: index as u32,
        }
    }

    /// The same credential, holding the snapshot by an owned reference instead of an arc-swap
    /// guard. `get_key` hands out guards because they cost no shared write, but arc-swap wants
    /// guards short-lived (a thread has a few debt slots, and a held guard keeps one); a
    /// [`Lease`](crate::Lease), held for a whole upstream request, takes this instead.
    pub(crate) fn detach(self) -> Self {
        Credential {
            snapshot: Guard::from_inner(Guard::into_inner(self.snapshot)),
            provider: self.provider,
            index: self.index,
        }
    }

    fn slot(&self) -> &Slot {
        &self.snapshot.providers[self.provider as usize].slots[self.index as usize]
    }

    /// The API key, to be written into the request. This is the only way to read it.
    pub fn expose_key(&self) -> &str {
        self.slot().key.expose_secret()
    }

    /// The label given in the configuration, if any.
    pub fn label(&self) -> Option<&str> {
        self.slot().id.label.as_deref()
    }

    /// The key's fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        self.slot().id.fingerprint
    }

    /// The credential's name for events, status and logs.
    pub fn id(&self) -> &CredentialId {
        &self.slot().id
    }

    /// The provider this credential belongs to.
    pub fn provider(&self) -> &str {
        &self.snapshot.providers[self.provider as usize].name
    }

    /// The free-form metadata given in the configuration (the original's `meta`).
    pub fn meta(&self) -> Option<&serde_json::Map<String, serde_json::Value>> {
        self.slot().meta.as_deref()
    }

    /// The family whose responses the credential's provider sends.
    pub fn family(&self) -> crate::classify::Family {
        self.provider_snap().shared.family
    }

    /// A masked form of the key for people, such as `sk-…wxyz`.
    pub fn masked_key(&self) -> String {
        mask(self.expose_key())
    }

    /// The provider's snapshot this handle came from.
    pub(crate) fn provider_snap(&self) -> &crate::pool::ProviderSnap {
        &self.snapshot.providers[self.provider as usize]
    }

    pub(crate) fn slot_arc(&self) -> &Arc<Slot> {
        &self.snapshot.providers[self.provider as usize].slots[self.index as usize]
    }
}

impl Clone for Credential {
    fn clone(&self) -> Self {
        Credential {
            snapshot: Guard::from_inner(Arc::clone(&self.snapshot)),
            provider: self.provider,
            index: self.index,
        }
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("provider", &self.provider())
            .field("id", self.id())
            .finish_non_exhaustive()
    }
}

impl fmt::Display for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.provider(), self.id())
    }
}
