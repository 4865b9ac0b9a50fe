//! The saved-state format, version 1.
//!
//! ```json
//! {
//!   "version": 1,
//!   "saved_at": 1795599000000,
//!   "providers": {
//!     "openai": {
//!       "current": "3f2a9c0d1e4b5a6f",
//!       "credentials": {
//!         "3f2a9c0d1e4b5a6f": { "label": "work", "state": "cooling", "until": 1795599060000,
//!                               "times_used": 12, "times_exhausted": 1,
//!                               "last_exhausted_at": 1795599000000 }
//!       }
//!     }
//!   }
//! }
//! ```
//!
//! Times are Unix milliseconds. Readers accept any version up to [`VERSION`] and ignore fields
//! they do not know, so a newer library can add fields without a version bump; a change that
//! older readers would misread bumps the version, and the newer library keeps reading the
//! older versions (the migration path).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::credential::Fingerprint;
use crate::error::StateError;
use crate::pool::SlotState;
use crate::rotator::Inner;
use crate::status::CooldownReason;

/// The newest state version this library writes and reads.
pub(crate) const VERSION: u64 = 1;

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct State {
    pub(crate) version: u64,
    pub(crate) saved_at: Timestamp,
    pub(crate) providers: BTreeMap<String, ProviderState>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct ProviderState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) current: Option<Fingerprint>,
    pub(crate) credentials: BTreeMap<Fingerprint, CredentialState>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct CredentialState {
    /// For people reading the file; not used when loading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) label: Option<String>,
    #[serde(flatten)]
    pub(crate) state: Availability,
    #[serde(default)]
    pub(crate) times_used: u64,
    #[serde(default)]
    pub(crate) times_exhausted: u64,
    #[serde(default)]
    pub(crate) last_exhausted_at: Option<Timestamp>,
    /// Why it cools or is disabled (added in 0.1 without a version bump: older readers
    /// ignore it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<CooldownReason>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) consecutive_failures: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, Serialize, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub(crate) enum Availability {
    Available,
    Cooling { until: Timestamp },
    Disabled,
}

/// Only the version, read first so that a newer format is reported as such rather than as
/// corrupt.
#[derive(Deserialize)]
struct VersionProbe {
    version: Option<u64>,
}

/// Describes a JSON error by kind and position only: serde's messages can quote the input,
/// and a foreign file handed to us by mistake might hold keys.
fn describe(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let kind = match e.classify() {
        Category::Io => "read error",
        Category::Syntax => "not valid JSON",
        Category::Data => "unexpected structure",
        Category::Eof => "truncated",
    };
    format!("{kind} at line {} column {}", e.line(), e.column())
}

/// Reads state text of any version up to [`VERSION`], checking all of it before anything
/// uses it.
///
/// # Errors
/// [`StateError::Corrupt`] or [`StateError::UnsupportedVersion`].
pub(crate) fn parse(text: &str) -> Result<State, StateError> {
    let probe: VersionProbe =
        serde_json::from_str(text).map_err(|e| StateError::Corrupt(describe(&e)))?;
    match probe.version {
        None => {
            return Err(StateError::Corrupt(
                "no `version` field: not rotator state".into(),
            ));
        }
        Some(v) if v > VERSION => {
            return Err(StateError::UnsupportedVersion {
                found: v,
                supported: VERSION,
            });
        }
        Some(_) => {}
    }
    // Parse everything before changing anything.
    serde_json::from_str(text).map_err(|e| StateError::Corrupt(describe(&e)))
}

impl Inner {
    pub(crate) fn export_state(&self) -> String {
        let snapshot = self.snapshot.load();
        let now = self.clock.now();
        let providers = snapshot
            .providers
            .iter()
            .map(|prov| {
                let n = prov.slots.len();
                let current = (n > 0).then(|| {
                    prov.slots[prov.shared.cursor.load(Ordering::Relaxed) as usize % n]
                        .id
                        .fingerprint
                });
                let credentials = prov
                    .slots
                    .iter()
                    .map(|slot| {
                        let state = match slot.state() {
                            SlotState::Cooling(until) if until > now => {
                                Availability::Cooling { until }
                            }
                            SlotState::Disabled => Availability::Disabled,
                            _ => Availability::Available,
                        };
                        let detail = slot.detail().clone();
                        let saved = CredentialState {
                            label: slot.id.label.as_deref().map(str::to_owned),
                            reason: detail
                                .reason
                                .map(|r| *r)
                                .filter(|_| state != Availability::Available),
                            consecutive_failures: detail.failures,
                            state,
                            times_used: self.uses(slot),
                            times_exhausted: slot.times_exhausted.load(Ordering::Relaxed),
                            last_exhausted_at: slot.last_exhausted(),
                        };
                        (slot.id.fingerprint, saved)
                    })
                    .collect();
                (
                    prov.name.to_string(),
                    ProviderState {
                        current,
                        credentials,
                    },
                )
            })
            .collect();
        let state = State {
            version: VERSION,
            saved_at: now,
            providers,
        };
        // Serializing plain data with string keys cannot fail.
        serde_json::to_string(&state).unwrap_or_default()
    }

    pub(crate) fn import_state(&self, text: &str) -> Result<(), StateError> {
        self.apply(parse(text)?);
        Ok(())
    }

    pub(crate) fn apply(&self, state: State) {
        let snapshot = self.snapshot.load();
        let now = self.clock.now();
        for (name, saved) in state.providers {
            let Some(prov) = snapshot.provider(&name) else {
                continue;
            };
            for (fingerprint, c) in &saved.credentials {
                let Some(i) = prov.position_of(*fingerprint) else {
                    continue;
                };
                let slot = &prov.slots[i];
                let new = match c.state {
                    Availability::Cooling { until } if until > now => SlotState::Cooling(until),
                    Availability::Disabled => SlotState::Disabled,
                    _ => SlotState::Ready,
                };
                // A credential removed meanwhile stays removed; otherwise the saved state wins
                // except that a longer local cooldown is kept.
                let current = slot.state();
                let keep_local = match (current, new) {
                    (SlotState::Removed, _) => true,
                    (SlotState::Cooling(a), SlotState::Cooling(b)) => a >= b,
                    (SlotState::Cooling(_), SlotState::Ready) => true,
                    _ => false,
                };
                if !keep_local {
                    slot.swap(new);
                    let mut d = slot.detail();
                    d.reason = c.reason.clone().map(Box::new);
                    d.failures = c.consecutive_failures;
                }
                let counted = self.usage.total(slot.usage_index);
                slot.uses_base
                    .store(c.times_used.saturating_sub(counted), Ordering::Relaxed);
                slot.times_exhausted
                    .store(c.times_exhausted, Ordering::Relaxed);
                slot.last_exhausted_at.store(
                    c.last_exhausted_at.map_or(0, Timestamp::as_millis),
                    Ordering::Relaxed,
                );
            }
            if let Some(i) = saved.current.and_then(|fp| prov.position_of(fp)) {
                prov.shared.cursor.store(i as u32, Ordering::Relaxed);
            }
            // Availability may have gone either way: forget what was known.
            prov.shared.exhaustion.invalidate();
        }
    }

    pub(crate) async fn save(&self) -> Result<(), StateError> {
        let Some(persistence) = &self.persistence else {
            return Ok(());
        };
        let text = self.export_state();
        persistence
            .save(text)
            .await
            .map_err(StateError::Persistence)
    }

    pub(crate) async fn load(&self) -> Result<bool, StateError> {
        let Some(persistence) = &self.persistence else {
            return Ok(false);
        };
        let persistence = Arc::clone(persistence);
        match persistence.load().await.map_err(StateError::Persistence)? {
            None => Ok(false),
            Some(text) => {
                let text: String = text;
                self.import_state(text.as_str())?;
                Ok(true)
            }
        }
    }
}
