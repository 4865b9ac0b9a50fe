//! The `[alerts]` section: webhooks told when the pool is in trouble.
//!
//! ```toml
//! [alerts]
//! healthy_below = 2          # "healthy keys low" when a provider has fewer available keys
//!
//! [[alerts.webhook]]
//! url = "https://hooks.example.com/akr"   # ${VAR} expanded
//! events = ["key-disabled", "all-cooling"] # every kind when absent
//! ```

use serde::Deserialize;

use super::ConfigFileError;

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum AlertKind {
    /// A key was disabled (the provider said it is invalid, or an operator).
    KeyDisabled,
    /// A disabled key was enabled again.
    KeyEnabled,
    /// A provider has fewer available keys than `healthy_below`.
    HealthyLow,
    /// Every key of a provider is cooling or disabled; the alert says when the first returns.
    AllCooling,
    /// The state store is degraded or failing.
    StoreDegraded,
    /// The state store reads and writes again.
    StoreRecovered,
}

impl AlertKind {
    /// Every kind.
    pub const ALL: [AlertKind; 6] = [
        AlertKind::KeyDisabled,
        AlertKind::KeyEnabled,
        AlertKind::HealthyLow,
        AlertKind::AllCooling,
        AlertKind::StoreDegraded,
        AlertKind::StoreRecovered,
    ];
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlerts {
    #[serde(default)]
    healthy_below: Option<usize>,
    #[serde(default)]
    webhook: Vec<RawWebhook>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    url: String,
    #[serde(default)]
    events: Option<Vec<AlertKind>>,
}

/// The checked `[alerts]` section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertsConfig {
    /// "healthy keys low" below this many available keys; 0 = never.
    pub(crate) healthy_below: usize,
    pub(crate) webhooks: Vec<Webhook>,
}

/// One webhook: where alerts are POSTed, and which.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Webhook {
    pub(crate) url: String,
    pub(crate) events: Vec<AlertKind>,
}

impl std::fmt::Debug for Webhook {
    // A webhook URL often carries its own secret (Slack's, say): only its host is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("host", &host_of(&self.url))
            .field("events", &self.events)
            .finish()
    }
}

/// The host of a webhook URL, for logs.
pub(crate) fn host_of(url: &str) -> String {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default()
}

impl RawAlerts {
    pub(super) fn check(self) -> Result<AlertsConfig, ConfigFileError> {
        let mut webhooks = Vec::new();
        for (i, w) in self.webhook.into_iter().enumerate() {
            let bad =
                |why: String| ConfigFileError::Invalid(format!("alerts webhook #{}: {why}", i + 1));
            let url = super::secret::expand_env(&w.url).map_err(|e| bad(e.to_string()))?;
            let parsed = reqwest::Url::parse(&url).map_err(|e| bad(e.to_string()))?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
                return Err(bad("the url must be http or https with a host".into()));
            }
            let events = match w.events {
                Some(e) if e.is_empty() => return Err(bad("`events` is empty".into())),
                Some(e) => e,
                None => AlertKind::ALL.to_vec(),
            };
            webhooks.push(Webhook { url, events });
        }
        Ok(AlertsConfig {
            healthy_below: self.healthy_below.unwrap_or(1),
            webhooks,
        })
    }
}
