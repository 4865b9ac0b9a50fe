//! Configuration in the original library's shape, for files (TOML, JSON) and for code.
//!
//! ```
//! use ai_key_rotator::{KeyRotator, RotatorConfig};
//!
//! let config = RotatorConfig::from_json_str(r#"{
//!     "providers": {
//!         "openai": {
//!             "credentials": [{ "key": "sk-key1", "label": "personal" }, { "key": "sk-key2" }],
//!             "cooldown": { "type": "fixed", "duration_ms": 60000 }
//!         }
//!     },
//!     "reset_interval_ms": 0
//! }"#).unwrap();
//! let rotator = KeyRotator::from_config(config).unwrap();
//! assert_eq!(rotator.get_key("openai").unwrap().label(), Some("personal"));
//! ```

mod text;

use crate::error::InvalidPolicy;
use std::collections::BTreeMap;
use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::budget::{Budget, Limits};
use crate::circuit::CircuitConfig;
use crate::classify::Family;
use crate::cooldown::{Cooldown, Policy};
use crate::error::ConfigError;
use crate::identity::Fingerprint;
use crate::strategy::Strategy;

pub(crate) use text::location;
pub use text::{ConfigFormat, parse_config};

/// The default interval of the background check that emits `reset` events for cooldowns that
/// ended unobserved: ten minutes, as in the original.
pub const DEFAULT_RESET_INTERVAL_MS: u64 = 600_000;

/// The whole rotator: providers and the background check interval.
///
/// Deserializes from the original's shape (`resetIntervalMs` and `durationMs` are accepted as
/// aliases). Unknown fields are rejected, so a misspelt option is an error rather than silently
/// ignored.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotatorConfig {
    /// Provider name → its credentials and cooldown.
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Interval of the background check that emits `reset` events, in milliseconds; `0`
    /// disables it. Keys come back exactly when their cooldown ends whatever this is.
    #[serde(default = "default_reset_interval", alias = "resetIntervalMs")]
    pub reset_interval_ms: u64,
}

fn default_reset_interval() -> u64 {
    DEFAULT_RESET_INTERVAL_MS
}

impl RotatorConfig {
    /// Reads a configuration from TOML text.
    ///
    /// Prefer this to `toml::from_str`, whose errors quote the offending line: a typo next to
    /// a key would print the key. These errors name the line, provider, credential and field
    /// instead, and never quote the text.
    ///
    /// ```
    /// use ai_key_rotator::{KeyRotator, RotatorConfig};
    ///
    /// let config = RotatorConfig::from_toml_str(r#"
    ///     reset_interval_ms = 0
    ///     [providers.openai]
    ///     credentials = [{ key = "sk-key1", label = "personal" }, { key = "sk-key2" }]
    ///     cooldown = { type = "fixed", duration_ms = 60000 }
    /// "#)?;
    /// let rotator = KeyRotator::from_config(config)?;
    /// assert_eq!(rotator.get_key("openai").unwrap().label(), Some("personal"));
    ///
    /// let typo = RotatorConfig::from_toml_str(
    ///     "[providers.openai]\ncredentials = [{ key = \"sk-key1\", lable = \"personal\" }]",
    /// );
    /// let message = typo.unwrap_err().to_string();
    /// assert!(message.contains("unknown field `lable`") && !message.contains("sk-key1"));
    /// # Ok::<(), ai_key_rotator::ConfigError>(())
    /// ```
    ///
    /// # Errors
    /// [`ConfigError::Parse`] when the text is malformed, has an unknown or misplaced field, a
    /// value of the wrong type or lacks a required one. The values in the configuration
    /// (cooldowns, keys) are checked by [`KeyRotator::from_config`](crate::KeyRotator::from_config).
    pub fn from_toml_str(text: &str) -> Result<RotatorConfig, ConfigError> {
        parse_config(text, ConfigFormat::Toml)
    }

    /// Reads a configuration from JSON text, in the original's shape (`resetIntervalMs` and
    /// `durationMs` are accepted too). Errors as [`from_toml_str`](Self::from_toml_str).
    ///
    /// # Errors
    /// As [`from_toml_str`](Self::from_toml_str).
    pub fn from_json_str(text: &str) -> Result<RotatorConfig, ConfigError> {
        parse_config(text, ConfigFormat::Json)
    }
}

impl Default for RotatorConfig {
    fn default() -> Self {
        RotatorConfig {
            providers: BTreeMap::new(),
            reset_interval_ms: DEFAULT_RESET_INTERVAL_MS,
        }
    }
}

/// A provider's own budget and its scopes' budgets, checked.
pub(crate) type CompiledBudgets = (Option<Limits>, Vec<(String, Limits)>);

/// One provider: its credentials, in the order they are used, and its cooldown policy.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// The credentials, in order of preference.
    pub credentials: Vec<CredentialConfig>,
    /// What happens to a credential marked exhausted; midnight UTC by default.
    #[serde(default)]
    pub cooldown: Cooldown,
    /// How to read this provider's responses (see [`classify`](crate::classify)). By default
    /// the family whose name is the provider's name, else generic OpenAI-compatible.
    #[serde(default)]
    pub family: Option<Family>,
    /// How to choose among available credentials; fill-first by default.
    #[serde(default)]
    pub strategy: Strategy,
    /// Client-side limits for each key of the provider.
    #[serde(default)]
    pub budget: Option<Budget>,
    /// Client-side limits for all keys of a quota scope together.
    #[serde(default)]
    pub scope_budgets: BTreeMap<String, Budget>,
    /// When the provider as a whole backs off after correlated failures (see
    /// [`CircuitConfig`]).
    #[serde(default)]
    pub circuit: CircuitConfig,
    /// How keys out of credits (and, if asked, invalid keys) are re-checked (see
    /// [`RecheckConfig`](crate::RecheckConfig)).
    #[serde(default)]
    pub recheck: crate::recheck::RecheckConfig,
    /// Prompt-cache affinity (default off): requests whose stable prompt prefix is the same
    /// (see [`prefix_hash`](crate::prefix_hash)) go to the same key. The gateway and other
    /// callers that see request bodies read it ([`KeyRotator::cache_affinity`]) to know
    /// whether to hash the prefix; an acquire that carries a hash is placed by it either way.
    ///
    /// [`KeyRotator::cache_affinity`]: crate::KeyRotator::cache_affinity
    #[serde(default)]
    pub cache_affinity: bool,
    /// The time zone (an IANA name) of the provider's day, for per-key usage
    /// ([`KeyRotator::usage_today`](crate::KeyRotator::usage_today)): the zone where its daily
    /// quotas reset. By default `America/Los_Angeles` for the Gemini family (its daily quotas
    /// reset at midnight Pacific time), `UTC` for the others.
    #[serde(default)]
    pub usage_day_timezone: Option<String>,
}

impl ProviderConfig {
    /// An empty provider configuration with the default cooldown.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a credential.
    pub fn credential(mut self, credential: impl Into<CredentialConfig>) -> Self {
        self.credentials.push(credential.into());
        self
    }

    /// Sets the cooldown policy.
    pub fn cooldown(mut self, cooldown: Cooldown) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// Sets the selection strategy.
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Sets when the provider's circuit opens and how it backs off.
    pub fn circuit(mut self, circuit: CircuitConfig) -> Self {
        self.circuit = circuit;
        self
    }

    /// Turns prompt-cache affinity on or off (see [`ProviderConfig::cache_affinity`]).
    pub fn cache_affinity(mut self, on: bool) -> Self {
        self.cache_affinity = on;
        self
    }

    /// Sets how depleted keys are re-checked.
    pub fn recheck(mut self, recheck: crate::recheck::RecheckConfig) -> Self {
        self.recheck = recheck;
        self
    }

    /// Sets the budget of each key.
    pub fn budget(mut self, budget: Budget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Sets the budget of a quota scope.
    pub fn scope_budget(mut self, scope: impl Into<String>, budget: Budget) -> Self {
        self.scope_budgets.insert(scope.into(), budget);
        self
    }

    pub(crate) fn compiled_budgets(&self, provider: &str) -> Result<CompiledBudgets, ConfigError> {
        let invalid = |reason: InvalidPolicy| ConfigError::InvalidBudget {
            provider: provider.to_owned(),
            reason,
        };
        let own = self
            .budget
            .as_ref()
            .map(Budget::compile)
            .transpose()
            .map_err(invalid)?;
        let scopes = self
            .scope_budgets
            .iter()
            .map(|(scope, b)| b.compile().map(|l| (scope.clone(), l)))
            .collect::<Result<_, _>>()
            .map_err(invalid)?;
        Ok((own, scopes))
    }

    /// Sets the time zone of the provider's day for usage counts (see
    /// [`usage_day_timezone`](Self::usage_day_timezone)).
    pub fn usage_day_timezone(mut self, zone: impl Into<String>) -> Self {
        self.usage_day_timezone = Some(zone.into());
        self
    }

    /// The zone of the provider's day: the configured one (checked by `validate`), else the
    /// family's default.
    pub(crate) fn usage_day_zone(&self, provider: &str) -> crate::ledger::DayZone {
        let name = self
            .usage_day_timezone
            .as_deref()
            .unwrap_or_else(|| crate::ledger::day::default_zone(self.resolved_family(provider)));
        crate::ledger::DayZone::named(name).unwrap_or_else(crate::ledger::DayZone::utc)
    }

    /// Sets the family whose responses this provider sends.
    pub fn family(mut self, family: Family) -> Self {
        self.family = Some(family);
        self
    }

    /// The family: the configured one, else the one named like the provider, else generic
    /// OpenAI-compatible.
    pub(crate) fn resolved_family(&self, provider: &str) -> Family {
        self.family
            .or_else(|| provider.parse().ok())
            .unwrap_or(Family::OpenAiCompatible)
    }

    pub(crate) fn compiled_cooldown(&self, provider: &str) -> Result<Policy, ConfigError> {
        self.cooldown.compile().map_err(|reason| match reason {
            InvalidPolicy::ZeroLength => ConfigError::ZeroCooldown {
                provider: provider.to_owned(),
            },
            reason => ConfigError::InvalidCooldown {
                provider: provider.to_owned(),
                reason,
            },
        })
    }

    /// Checks the provider's own rules: at least one credential, no empty or duplicate key, a
    /// usable cooldown.
    pub(crate) fn validate(&self, provider: &str) -> Result<(), ConfigError> {
        if provider.is_empty() {
            return Err(ConfigError::EmptyProviderName);
        }
        if self.credentials.is_empty() {
            return Err(ConfigError::NoCredentials {
                provider: provider.to_owned(),
            });
        }
        self.compiled_cooldown(provider)?;
        self.compiled_budgets(provider)?;
        if let Some(zone) = &self.usage_day_timezone
            && crate::ledger::DayZone::named(zone).is_none()
        {
            return Err(ConfigError::UnknownTimeZone {
                provider: provider.to_owned(),
                zone: zone.clone(),
            });
        }
        self.circuit
            .validate()
            .map_err(|reason| ConfigError::InvalidCircuit {
                provider: provider.to_owned(),
                reason,
            })?;
        self.recheck
            .validate()
            .map_err(|reason| ConfigError::InvalidRecheck {
                provider: provider.to_owned(),
                reason,
            })?;
        let mut seen = std::collections::HashSet::new();
        for (i, c) in self.credentials.iter().enumerate() {
            c.validate(provider, i)?;
            if !seen.insert(c.key.expose_secret()) {
                return Err(ConfigError::DuplicateKey {
                    provider: provider.to_owned(),
                    credential: c.name(),
                });
            }
        }
        Ok(())
    }
}

/// One credential: the key, an optional label, and free-form metadata.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialConfig {
    /// The API key. Held as a secret: dropped memory is zeroed and `Debug` redacts it.
    pub key: SecretString,
    /// A name for people; shown in status, events and logs instead of the key.
    #[serde(default)]
    pub label: Option<String>,
    /// Free-form metadata, handed back with the credential (for example the model it is for).
    #[serde(default)]
    pub meta: Option<serde_json::Map<String, serde_json::Value>>,
    /// The quota scope this key shares with others of the provider (a Google Cloud project,
    /// an OpenAI organization, an account). A limit the provider applies to the scope cools
    /// every key of the scope at once. A key without a scope is its own scope.
    #[serde(default)]
    pub scope: Option<String>,
    /// Share of picks under the `weighted` strategy (1 by default, at least 1).
    #[serde(default)]
    pub weight: Option<u32>,
}

impl CredentialConfig {
    /// A credential with the given key.
    pub fn new(key: impl Into<String>) -> Self {
        CredentialConfig {
            key: SecretString::from(key.into()),
            label: None,
            meta: None,
            scope: None,
            weight: None,
        }
    }

    /// Sets the weight under the `weighted` strategy.
    pub fn weight(mut self, weight: u32) -> Self {
        self.weight = Some(weight);
        self
    }

    /// Sets the quota scope.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// Sets the label.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Sets the metadata.
    pub fn meta(mut self, meta: serde_json::Map<String, serde_json::Value>) -> Self {
        self.meta = Some(meta);
        self
    }

    /// How errors name this credential: its label, else its fingerprint.
    pub(crate) fn name(&self) -> String {
        match &self.label {
            Some(l) => l.clone(),
            None => Fingerprint::of(self.key.expose_secret()).to_string(),
        }
    }

    pub(crate) fn validate(&self, provider: &str, index: usize) -> Result<(), ConfigError> {
        if self.key.expose_secret().trim().is_empty() {
            return Err(ConfigError::EmptyKey {
                provider: provider.to_owned(),
                credential: match &self.label {
                    Some(l) => l.clone(),
                    None => format!("#{}", index + 1),
                },
            });
        }
        if self.weight == Some(0) {
            return Err(ConfigError::ZeroWeight {
                provider: provider.to_owned(),
                credential: self.name(),
            });
        }
        Ok(())
    }
}

impl fmt::Debug for CredentialConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialConfig")
            .field("key", &"[REDACTED]")
            .field("label", &self.label)
            .field("meta", &self.meta)
            .field("scope", &self.scope)
            .field("weight", &self.weight)
            .finish()
    }
}

impl From<&str> for CredentialConfig {
    fn from(key: &str) -> Self {
        CredentialConfig::new(key)
    }
}

impl From<String> for CredentialConfig {
    fn from(key: String) -> Self {
        CredentialConfig::new(key)
    }
}
