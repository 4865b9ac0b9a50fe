//! Handles for credentials handed to JavaScript.
//!
//! `getKey` is the hot path: building a JavaScript object with the key, label and metadata on
//! every call would cost more than the whole Rust lookup. Instead each credential gets a small
//! number (a handle) the first time it is handed out; JavaScript builds its object once, keeps
//! it in an array, and `getKey` returns the number across the boundary.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use ai_key_rotator::{Credential, Fingerprint};
use serde_json::{Value, json};

#[derive(Default)]
pub(crate) struct Registry {
    providers: Vec<String>,
    handles: HashMap<(u32, Fingerprint), i32, BuildHasherDefault<FoldHasher>>,
    credentials: Vec<Credential>,
}

impl Registry {
    pub(crate) fn provider_index(&mut self, name: String) -> i32 {
        let index = match self.providers.iter().position(|p| *p == name) {
            Some(i) => i,
            None => {
                self.providers.push(name);
                self.providers.len() - 1
            }
        };
        i32::try_from(index).unwrap_or(-1)
    }

    pub(crate) fn provider_name(&self, index: u32) -> Option<&str> {
        self.providers.get(index as usize).map(String::as_str)
    }

    pub(crate) fn handle(&mut self, provider: u32, credential: Credential) -> i32 {
        let id = (provider, credential.fingerprint());
        if let Some(&h) = self.handles.get(&id) {
            return h;
        }
        let h = i32::try_from(self.credentials.len()).unwrap_or(-1);
        if h >= 0 {
            // The handle keeps the credential it was made from: reports about it go to that
            // credential even after the provider moved on. A clone holds its snapshot by a
            // plain reference count, where the handed-out value holds one of the thread's few
            // fast-path slots that `get_key` needs free.
            self.credentials.push(credential.clone());
            self.handles.insert(id, h);
        }
        h
    }

    pub(crate) fn credential(&self, handle: u32) -> Option<&Credential> {
        self.credentials.get(handle as usize)
    }

    pub(crate) fn credential_object(&self, handle: u32) -> Option<Value> {
        let c = self.credential(handle)?;
        Some(json!({
            "key": c.expose_key(),
            "label": c.label(),
            "meta": c.meta(),
            "provider": c.provider(),
            "fingerprint": c.fingerprint().to_string(),
        }))
    }

    pub(crate) fn forget(&mut self, provider: &str, key: &str) {
        if let Some(p) = self.providers.iter().position(|n| n == provider) {
            self.handles.remove(&(p as u32, Fingerprint::of(key)));
        }
    }
}

/// The map's keys are fingerprints, already a cryptographic hash prefix: folding their bytes
/// is enough, and far cheaper on the `getKey` path than SipHash.
#[derive(Default)]
pub(crate) struct FoldHasher(u64);

impl Hasher for FoldHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = self.0.rotate_left(32) ^ u64::from(n);
    }

    fn finish(&self) -> u64 {
        self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
}
