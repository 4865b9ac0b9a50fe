//! Re-checking keys that are out of use for a reason that may end without anyone noticing: a
//! key out of credits (someone pays), over a spend cap with no known reset (someone raises
//! it), or, if the operator asks, a key the provider called invalid.
//!
//! Such a key is *depleted*: it is not handed out, and instead of coming back by itself after
//! a cooldown (and failing again on a real request every minute) it is due for a re-check on a
//! backoff, 1 minute doubling to 1 day by default. The core says which keys are due
//! ([`KeyRotator::due_probes`](crate::KeyRotator::due_probes)); the caller proves each with the
//! cheapest request that needs a valid key (listing models, never a paid completion) and
//! records the outcome ([`probe_succeeded`](crate::KeyRotator::probe_succeeded),
//! [`probe_failed`](crate::KeyRotator::probe_failed)). A cap with a known calendar reset
//! (Anthropic's monthly cap, Gemini's daily quotas) simply cools until then.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;

/// How depleted keys are re-checked. Part of [`ProviderConfig`](crate::ProviderConfig)
/// (`recheck = { ... }` in TOML).
///
/// ```
/// use ai_key_rotator::{ProviderConfig, RecheckConfig};
///
/// // Re-check keys the provider called invalid too (off by default).
/// let config = ProviderConfig::new()
///     .credential("sk-a")
///     .recheck(RecheckConfig { recheck_invalid: true, ..RecheckConfig::default() });
/// # let _ = config;
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecheckConfig {
    /// Whether depleted keys are offered for re-checks at all (default `true`). Off, a
    /// depleted key stays out until [`enable`](crate::KeyRotator::enable)d or its calendar
    /// reset.
    pub enabled: bool,
    /// The first wait before a re-check, in milliseconds (default 60 000); it doubles with
    /// each failed re-check and each depletion in a row.
    pub first_ms: u64,
    /// The longest wait between re-checks, in milliseconds (default 86 400 000, a day).
    pub max_ms: u64,
    /// Whether keys the provider called invalid are re-checked too (default `false`: they
    /// stay disabled until enabled by hand).
    pub recheck_invalid: bool,
}

impl Default for RecheckConfig {
    fn default() -> Self {
        RecheckConfig {
            enabled: true,
            first_ms: 60_000,
            max_ms: 86_400_000,
            recheck_invalid: false,
        }
    }
}

impl RecheckConfig {
    pub(crate) fn validate(&self) -> Result<(), &'static str> {
        if self.first_ms == 0 {
            return Err("`first_ms` must be more than 0");
        }
        if self.max_ms < self.first_ms {
            return Err("`max_ms` must be at least `first_ms`");
        }
        Ok(())
    }

    /// When the re-check after the `failures`-th failure in a row (0-based) is due.
    pub(crate) fn due(&self, now: Timestamp, failures: u32) -> Timestamp {
        let factor = 1u64 << failures.min(40);
        now.saturating_add(Duration::from_millis(
            self.first_ms.saturating_mul(factor).min(self.max_ms),
        ))
    }
}

/// Why a key is due for a re-check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum RecheckKind {
    /// Out of credits or over a spend cap with no known reset.
    Depleted,
    /// Called invalid by the provider (re-checked only with `recheck_invalid`).
    Invalid,
}

/// A key's re-check schedule, kept with its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Recheck {
    pub(crate) kind: RecheckKind,
    /// When it is due; `None` when re-checks are off (it stays out until enabled).
    pub(crate) due: Option<Timestamp>,
}

/// A key due for a re-check, from [`KeyRotator::due_probes`](crate::KeyRotator::due_probes).
#[derive(Debug, Clone)]
pub struct DueProbe {
    /// The key to prove (its [`expose_key`](crate::Credential::expose_key) goes into the probe
    /// request).
    pub credential: crate::Credential,
    /// Why it is out.
    pub kind: RecheckKind,
}
