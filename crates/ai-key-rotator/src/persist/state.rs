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

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::error::StateError;
use crate::identity::Fingerprint;
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
    /// The models it rests for (added without a version bump: older readers ignore it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) model_cooldowns: Vec<crate::status::ModelCooldownStatus>,
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
