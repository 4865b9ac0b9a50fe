//! The gateway's configuration file (TOML): listen address, client tokens, limits, and the
//! providers with their upstreams and keys.
//!
//! ```toml
//! listen = "127.0.0.1:8787"
//! client_tokens = ["${AKR_CLIENT_TOKEN}"]
//!
//! [providers.openai]
//! family = "openai"                      # how keys are written and responses read
//! keys = ["${OPENAI_KEY_1}", { file = "secrets/openai-2", label = "work" }]
//! cooldown = { type = "fixed", duration_ms = 60000 }
//! strategy = "round-robin"               # how the next key is chosen (fill-first by default)
//! budget = { requests_per_minute = 500 } # per key, enforced before sending
//! ```
//!
//! [`GatewayConfig::from_toml`] parses and resolves every secret, so a config that loads is a
//! config that runs; what is suspicious but allowed comes back as [`Warning`]s.

mod secret;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ai_key_rotator::classify::Family;
use ai_key_rotator::{
    Budget, ConfigFormat, Cooldown, CredentialConfig, ProviderConfig, RotatorConfig, Strategy,
};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use secret::SecretSpec;

/// The default request body limit: 32 MiB, enough for image prompts.
pub const DEFAULT_BODY_LIMIT: usize = 32 * 1024 * 1024;

/// The configuration file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigFileError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML is malformed, has unknown fields or values of the wrong type. The message
    /// names the line, provider, key and field, and never quotes the file (its lines may hold
    /// keys).
    #[error(transparent)]
    Parse(ai_key_rotator::ConfigError),
    /// A secret could not be read (its value is never in the message).
    #[error("{what}: {reason}")]
    Secret {
        /// Which secret, e.g. `provider \`openai\` key #2`.
        what: String,
        /// Why.
        reason: String,
    },
    /// A value that is well-formed but unusable.
    #[error("{0}")]
    Invalid(String),
    /// The rotator rejected the providers' keys.
    #[error(transparent)]
    Rotator(#[from] ai_key_rotator::ConfigError),
}

/// Something allowed but worth telling the operator at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning(pub String);

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default = "default_listen")]
    listen: SocketAddr,
    #[serde(default)]
    client_tokens: Vec<SecretSpec>,
    #[serde(default)]
    allow_unauthenticated: bool,
    #[serde(default = "default_body_limit")]
    body_limit: usize,
    #[serde(default = "default_max_attempts")]
    max_attempts: u32,
    #[serde(default = "default_connect_timeout")]
    connect_timeout_ms: u64,
    #[serde(default = "default_read_timeout")]
    read_timeout_ms: u64,
    #[serde(default = "default_grace")]
    shutdown_grace_ms: u64,
    /// Where cooldowns are kept across restarts. A configuration file without one keeps
    /// them in SQLite next to itself (see [`GatewayConfig::load`]).
    #[serde(default)]
    store: Option<StoreConfig>,
    providers: BTreeMap<String, RawProvider>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    family: Family,
    #[serde(default)]
    upstream: Option<String>,
    #[serde(default)]
    route: Option<String>,
    #[serde(default)]
    fallback: Vec<String>,
    #[serde(default)]
    cooldown: Option<Cooldown>,
    /// How the next key is chosen; the core's `fill-first` by default.
    #[serde(default)]
    strategy: Strategy,
    /// Each key's own budget.
    #[serde(default)]
    budget: Option<Budget>,
    /// The budget of each quota scope, shared by the keys that name it.
    #[serde(default)]
    scope_budgets: BTreeMap<String, Budget>,
    keys: Vec<SecretSpec>,
}

/// The `store` option: where cooldowns, disabled keys and counters are kept. Relative paths are
/// relative to the configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "StoreConfigDe")]
#[non_exhaustive]
pub enum StoreConfig {
    /// In memory only.
    Memory,
    /// A JSON file.
    File {
        /// The file's path.
        path: String,
    },
    /// A SQLite database.
    Sqlite {
        /// The database's path.
        path: String,
    },
    /// A Redis server shared by several gateways.
    Redis {
        /// The server's URL.
        url: String,
    },
}

/// How a [`StoreConfig`] is read. serde reads a unit variant of an internally tagged enum with a
/// visitor that ignores other fields, so `{ type = "memory", path = "…" }` would pass as
/// memory; the empty struct variant here rejects them.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
enum StoreConfigDe {
    Memory {},
    File { path: String },
    Sqlite { path: String },
    Redis { url: String },
}

impl From<StoreConfigDe> for StoreConfig {
    fn from(s: StoreConfigDe) -> StoreConfig {
        match s {
            StoreConfigDe::Memory {} => StoreConfig::Memory,
            StoreConfigDe::File { path } => StoreConfig::File { path },
            StoreConfigDe::Sqlite { path } => StoreConfig::Sqlite { path },
            StoreConfigDe::Redis { url } => StoreConfig::Redis { url },
        }
    }
}

/// The SQLite file a configuration file's state goes to when it names no store.
pub const DEFAULT_STATE_FILE: &str = "ai-key-rotator-state.db";

impl StoreConfig {
    fn relative_to(self, base: &Path) -> StoreConfig {
        let resolve = |p: String| base.join(p).display().to_string();
        match self {
            StoreConfig::File { path } => StoreConfig::File {
                path: resolve(path),
            },
            StoreConfig::Sqlite { path } => StoreConfig::Sqlite {
                path: resolve(path),
            },
            other => other,
        }
    }

    /// Opens the store; `None` for memory.
    pub(crate) fn open(
        &self,
    ) -> Result<Option<Arc<dyn ai_key_rotator::StateStore>>, ai_key_rotator::StoreError> {
        Ok(match self {
            StoreConfig::Memory => None,
            StoreConfig::File { path } => Some(Arc::new(ai_key_rotator::FileStore::open(path)?)),
            StoreConfig::Sqlite { path } => {
                Some(Arc::new(ai_key_rotator::SqliteStore::open(path)?))
            }
            StoreConfig::Redis { url } => Some(Arc::new(
                ai_key_rotator::RedisStore::builder(url.clone()).build()?,
            )),
        })
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8787))
}
fn default_body_limit() -> usize {
    DEFAULT_BODY_LIMIT
}
fn default_max_attempts() -> u32 {
    4
}
fn default_connect_timeout() -> u64 {
    10_000
}
fn default_read_timeout() -> u64 {
    // Per read, not per request: a long stream is never cut while bytes keep arriving.
    600_000
}
fn default_grace() -> u64 {
    30_000
}

/// A loaded, resolved configuration.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The address the binary listens on (the library takes a listener instead).
    pub listen: SocketAddr,
    /// The tokens clients present in place of an API key.
    pub(crate) client_tokens: Vec<SecretString>,
    /// Accept requests without a client token (loopback only).
    pub allow_unauthenticated: bool,
    /// The largest request body accepted, in bytes.
    pub body_limit: usize,
    /// Upstream attempts per request, across keys and fallback providers.
    pub max_attempts: u32,
    /// Time allowed to connect to an upstream.
    pub connect_timeout: Duration,
    /// Time allowed between two reads from an upstream (headers or body).
    pub read_timeout: Duration,
    /// How long shutdown waits for in-flight requests and streams.
    pub shutdown_grace: Duration,
    /// Where state is kept; `None` = in memory only.
    pub store: Option<StoreConfig>,
    /// The providers, by name.
    pub providers: Vec<ProviderSettings>,
}

/// One provider of the gateway.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    /// Its name: the rotator's provider name and, by default, its route (`/{name}`).
    pub name: String,
    /// The classifier family, which also decides how the key is written.
    pub family: Family,
    /// Scheme, host, port and optional base path; the only place requests go.
    pub upstream: String,
    /// The path prefix clients use, e.g. `/openai`.
    pub route: String,
    /// Providers tried, in order, when this one has no usable key.
    pub fallback: Vec<String>,
    /// The rotator's view: keys, labels and cooldown.
    pub(crate) rotator: ProviderConfig,
}

impl ProviderSettings {
    /// How many keys the provider has.
    pub fn keys(&self) -> usize {
        self.rotator.credentials.len()
    }
}

const RESERVED: [&str; 3] = ["/healthz", "/status", "/metrics"];

impl GatewayConfig {
    /// Reads and resolves a configuration file. Without a `store` option, state goes to
    /// [`DEFAULT_STATE_FILE`] in the file's directory, so restarts remember cooldowns;
    /// `store = { type = "memory" }` opts out.
    ///
    /// # Errors
    /// A [`ConfigFileError`] naming what is wrong (never a secret's value).
    pub fn load(path: &Path) -> Result<(GatewayConfig, Vec<Warning>), ConfigFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let (mut config, mut warnings, inline) = Self::parse(&text, base)?;
        if config.store.is_none() {
            config.store = Some(StoreConfig::Sqlite {
                path: base.join(DEFAULT_STATE_FILE).display().to_string(),
            });
        }
        if inline && readable_by_others(path) {
            warnings.push(Warning(format!(
                "{} holds inline keys or tokens and is readable by other users; \
                 chmod 600 it or use ${{ENV_VAR}} / {{ file = \"…\" }}",
                path.display()
            )));
        }
        Ok((config, warnings))
    }

    /// Parses a configuration from text; relative secret files are read from `base`.
    ///
    /// # Errors
    /// As [`load`](Self::load).
    pub fn from_toml(
        text: &str,
        base: &Path,
    ) -> Result<(GatewayConfig, Vec<Warning>), ConfigFileError> {
        Self::parse(text, base).map(|(c, w, _)| (c, w))
    }

    fn parse(
        text: &str,
        base: &Path,
    ) -> Result<(GatewayConfig, Vec<Warning>, bool), ConfigFileError> {
        let raw: RawConfig = ai_key_rotator::parse_config(text, ConfigFormat::Toml)
            .map_err(ConfigFileError::Parse)?;
        let mut warnings = Vec::new();
        let mut inline = false;

        let mut client_tokens = Vec::new();
        for (i, spec) in raw.client_tokens.iter().enumerate() {
            if spec.scope_and_weight() != (None, None) {
                return Err(ConfigFileError::Invalid(format!(
                    "client token #{}: `scope` and `weight` apply to provider keys only",
                    i + 1
                )));
            }
            let r = spec.resolve(&format!("client token #{}", i + 1), base)?;
            if r.secret.expose_secret().len() < 16 {
                warnings.push(Warning(format!(
                    "client token #{} is shorter than 16 characters",
                    i + 1
                )));
            }
            inline |= r.inline;
            client_tokens.push(r.secret);
        }
        if client_tokens.is_empty() && !raw.allow_unauthenticated {
            return Err(ConfigFileError::Invalid(
                "no client_tokens configured: add at least one, or set \
                 allow_unauthenticated = true (accepted on loopback only)"
                    .into(),
            ));
        }
        if raw.max_attempts == 0 {
            return Err(ConfigFileError::Invalid(
                "max_attempts must be at least 1".into(),
            ));
        }
        if raw.body_limit == 0 {
            return Err(ConfigFileError::Invalid(
                "body_limit must be positive".into(),
            ));
        }
        if raw.connect_timeout_ms == 0 || raw.read_timeout_ms == 0 {
            return Err(ConfigFileError::Invalid("timeouts must be positive".into()));
        }
        if raw.providers.is_empty() {
            return Err(ConfigFileError::Invalid("no providers configured".into()));
        }

        let mut providers = Vec::new();
        for (name, p) in &raw.providers {
            let upstream = match (&p.upstream, default_upstream(p.family)) {
                (Some(u), _) => secret::expand_env(u).map_err(|reason| {
                    ConfigFileError::Invalid(format!("provider `{name}` upstream: {reason}"))
                })?,
                (None, Some(u)) => u.to_owned(),
                (None, None) => {
                    return Err(ConfigFileError::Invalid(format!(
                        "provider `{name}` (family {}) needs an `upstream`",
                        p.family
                    )));
                }
            };
            let upstream = check_upstream(name, &upstream)?;
            let route = p.route.clone().unwrap_or_else(|| format!("/{name}"));
            check_route(name, &route)?;
            let mut rotator = ProviderConfig::new()
                .family(p.family)
                .cooldown(
                    p.cooldown
                        .clone()
                        .unwrap_or(Cooldown::fixed(Duration::from_secs(60))),
                )
                .strategy(p.strategy);
            if let Some(b) = &p.budget {
                rotator = rotator.budget(b.clone());
            }
            for (scope, b) in &p.scope_budgets {
                rotator = rotator.scope_budget(scope.clone(), b.clone());
            }
            for (i, spec) in p.keys.iter().enumerate() {
                let r = spec.resolve(&format!("provider `{name}` key #{}", i + 1), base)?;
                inline |= r.inline;
                let mut c = CredentialConfig::new(r.secret.expose_secret().to_owned());
                if let Some(l) = r.label {
                    c = c.label(l);
                }
                let (scope, weight) = spec.scope_and_weight();
                if let Some(s) = scope {
                    c = c.scope(s);
                }
                if let Some(w) = weight {
                    c = c.weight(w);
                }
                rotator = rotator.credential(c);
            }
            for scope in p.scope_budgets.keys() {
                if !rotator
                    .credentials
                    .iter()
                    .any(|c| c.scope.as_deref() == Some(scope))
                {
                    warnings.push(Warning(format!(
                        "provider `{name}` has a budget for scope `{scope}` that no key names"
                    )));
                }
            }
            if p.strategy != Strategy::Weighted
                && rotator.credentials.iter().any(|c| c.weight.is_some())
            {
                warnings.push(Warning(format!(
                    "provider `{name}` gives keys a `weight`, which only the `weighted` \
                     strategy uses"
                )));
            }
            providers.push(ProviderSettings {
                name: name.clone(),
                family: p.family,
                upstream,
                route,
                fallback: p.fallback.clone(),
                rotator,
            });
        }
        for p in &providers {
            for f in &p.fallback {
                let Some(target) = providers.iter().find(|q| &q.name == f) else {
                    return Err(ConfigFileError::Invalid(format!(
                        "provider `{}` falls back to unknown provider `{f}`",
                        p.name
                    )));
                };
                if wire(target.family) != wire(p.family) {
                    return Err(ConfigFileError::Invalid(format!(
                        "provider `{}` ({}) cannot fall back to `{f}` ({}): different API",
                        p.name, p.family, target.family
                    )));
                }
            }
            if providers.iter().filter(|q| q.route == p.route).count() > 1 {
                return Err(ConfigFileError::Invalid(format!(
                    "route {} is used by more than one provider",
                    p.route
                )));
            }
        }
        let config = GatewayConfig {
            listen: raw.listen,
            client_tokens,
            allow_unauthenticated: raw.allow_unauthenticated,
            body_limit: raw.body_limit,
            max_attempts: raw.max_attempts,
            connect_timeout: Duration::from_millis(raw.connect_timeout_ms),
            read_timeout: Duration::from_millis(raw.read_timeout_ms),
            shutdown_grace: Duration::from_millis(raw.shutdown_grace_ms),
            store: raw.store.map(|s| s.relative_to(base)),
            providers,
        };
        // Let the rotator validate keys now (empty, duplicate), so errors name the provider.
        config
            .rotator_config()?
            .providers
            .iter()
            .try_for_each(|(n, p)| {
                ai_key_rotator::KeyRotator::builder()
                    .provider(n.clone(), p.clone())
                    .reset_interval(Duration::ZERO)
                    .build()
                    .map(drop)
            })?;
        Ok((config, warnings, inline))
    }

    /// The rotator's configuration: every provider's keys and cooldown.
    pub(crate) fn rotator_config(&self) -> Result<RotatorConfig, ConfigFileError> {
        let mut rc = RotatorConfig {
            reset_interval_ms: 0,
            ..RotatorConfig::default()
        };
        for p in &self.providers {
            rc.providers.insert(p.name.clone(), p.rotator.clone());
        }
        Ok(rc)
    }

    /// The configured client tokens (for the `status` subcommand to call a running gateway).
    pub fn first_client_token(&self) -> Option<&str> {
        self.client_tokens.first().map(|t| t.expose_secret())
    }
}

/// Providers whose requests can be sent to one another unchanged: those of one wire format.
fn wire(f: Family) -> ai_key_rotator::classify::Api {
    f.info().api
}

/// Where each family's API lives, for configs that do not say (the core's family table).
fn default_upstream(f: Family) -> Option<&'static str> {
    f.info().default_upstream
}

fn check_upstream(name: &str, upstream: &str) -> Result<String, ConfigFileError> {
    let bad = |why: &str| {
        ConfigFileError::Invalid(format!("provider `{name}` upstream {upstream:?}: {why}"))
    };
    let url = reqwest::Url::parse(upstream).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("scheme must be http or https"));
    }
    if url.host_str().is_none() || !url.username().is_empty() || url.password().is_some() {
        return Err(bad("needs a host and no user info"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must not have a query or fragment"));
    }
    let upstream = upstream.trim_end_matches('/');
    // The proxy builds request URIs from this one's scheme and authority.
    match upstream.parse::<http::Uri>() {
        Ok(u) if u.scheme().is_some() && u.authority().is_some() => {}
        _ => return Err(bad("not a valid HTTP URI")),
    }
    Ok(upstream.to_owned())
}

fn check_route(name: &str, route: &str) -> Result<(), ConfigFileError> {
    let ok = route.starts_with('/')
        && route.len() > 1
        && !route.ends_with('/')
        && route
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.'))
        && !route.split('/').any(|s| s == "." || s == "..")
        && !RESERVED
            .iter()
            .any(|r| route == *r || route.starts_with(&format!("{r}/")));
    if ok {
        Ok(())
    } else {
        Err(ConfigFileError::Invalid(format!(
            "provider `{name}` route {route:?} must look like /name (and not /healthz, /status \
             or /metrics)"
        )))
    }
}

#[cfg(unix)]
fn readable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o044 != 0)
}

#[cfg(not(unix))]
fn readable_by_others(_: &Path) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<(GatewayConfig, Vec<Warning>), ConfigFileError> {
        GatewayConfig::from_toml(text, Path::new("."))
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let (c, w) = parse(
            r#"client_tokens = ["a-long-enough-client-token"]
               [providers.openai]
               family = "openai"
               keys = ["sk-1", { key = "sk-2", label = "two" }]"#,
        )
        .unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.body_limit, DEFAULT_BODY_LIMIT);
        assert_eq!(c.providers[0].route, "/openai");
        assert_eq!(c.providers[0].upstream, "https://api.openai.com");
        assert_eq!(c.listen, default_listen());
    }

    #[test]
    fn rejects_unsafe_or_incomplete_configs() {
        let cases = [
            // No tokens and not explicitly unauthenticated.
            (
                r#"[providers.o]
                family = "openai"
                keys = ["k"]"#,
                "client_tokens",
            ),
            (
                r#"client_tokens = ["t"]
                [providers.a]
                family = "azure-openai"
                keys = ["k"]"#,
                "needs an `upstream`",
            ),
            (
                r#"client_tokens = ["t"]
                [providers.o]
                family = "openai"
                upstream = "ftp://x"
                keys = ["k"]"#,
                "scheme",
            ),
            (
                r#"client_tokens = ["t"]
                [providers.o]
                family = "openai"
                route = "/status"
                keys = ["k"]"#,
                "route",
            ),
            (
                r#"client_tokens = ["t"]
                [providers.o]
                family = "openai"
                fallback = ["a"]
                keys = ["k"]
                [providers.a]
                family = "anthropic"
                keys = ["k"]"#,
                "different API",
            ),
            (
                r#"client_tokens = ["t"]
                [providers.o]
                family = "openai"
                keys = ["k", "k"]"#,
                "duplicate",
            ),
            (
                r#"client_tokens = ["t"]
                [providers.o]
                family = "openai"
                keys = ["${AKR_SURELY_UNSET_VAR}"]"#,
                "AKR_SURELY_UNSET_VAR",
            ),
            (
                r#"client_tokens = ["t"]
                typo = 1
                [providers.o]
                family = "openai"
                keys = ["k"]"#,
                "typo",
            ),
        ];
        for (text, needle) in cases {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{needle:?} not in {err:?}");
        }
    }

    #[test]
    fn selection_and_budgets_reach_the_rotator() {
        let (c, w) = parse(
            r#"client_tokens = ["a-long-enough-client-token"]
               [providers.openai]
               family = "openai"
               strategy = "weighted"
               budget = { requests_per_minute = 500, max_in_flight = 8 }
               scope_budgets = { org-a = { requests_per_day = 10000, time_zone = "UTC" } }
               keys = [
                 { key = "sk-1", scope = "org-a", weight = 3 },
                 { key = "sk-2", label = "two", scope = "org-a" },
                 "sk-3",
               ]"#,
        )
        .unwrap();
        assert!(w.is_empty(), "{w:?}");
        let p = &c.providers[0].rotator;
        assert_eq!(p.strategy, Strategy::Weighted);
        let budget = p.budget.as_ref().unwrap();
        assert_eq!(budget.requests_per_minute, Some(500));
        assert_eq!(budget.max_in_flight, Some(8));
        assert_eq!(p.scope_budgets["org-a"].requests_per_day, Some(10_000));
        let keys: Vec<(Option<&str>, Option<u32>)> = p
            .credentials
            .iter()
            .map(|c| (c.scope.as_deref(), c.weight))
            .collect();
        assert_eq!(
            keys,
            [
                (Some("org-a"), Some(3)),
                (Some("org-a"), None),
                (None, None)
            ]
        );
    }

    #[test]
    fn every_strategy_name_parses() {
        for (name, expected) in [
            ("fill-first", Strategy::FillFirst),
            ("round-robin", Strategy::RoundRobin),
            ("least-recently-used", Strategy::LeastRecentlyUsed),
            ("weighted", Strategy::Weighted),
            ("least-in-flight", Strategy::LeastInFlight),
            ("most-remaining", Strategy::MostRemaining),
        ] {
            let (c, _) = parse(&format!(
                "client_tokens = [\"a-long-enough-client-token\"]\n\
                 [providers.o]\nfamily = \"openai\"\nstrategy = \"{name}\"\nkeys = [\"k\"]"
            ))
            .unwrap();
            assert_eq!(c.providers[0].rotator.strategy, expected, "{name}");
        }
        let (c, _) = parse(
            r#"client_tokens = ["a-long-enough-client-token"]
               [providers.o]
               family = "openai"
               keys = ["k"]"#,
        )
        .unwrap();
        assert_eq!(c.providers[0].rotator.strategy, Strategy::FillFirst);
    }

    #[test]
    fn rejects_bad_selection_and_budget_settings() {
        let cases = [
            (
                "strategy = \"random\"\nkeys = [\"k\"]",
                "field `strategy`): unknown variant",
            ),
            (
                "keys = [{ key = \"k\", weight = 0 }]\nstrategy = \"weighted\"",
                "weight 0",
            ),
            (
                "budget = { requests_per_minute = 0 }\nkeys = [\"k\"]",
                "budget",
            ),
            (
                "budget = { requests_per_hour = 5 }\nkeys = [\"k\"]",
                "requests_per_hour",
            ),
            (
                "budget = { requests_per_day = 5, time_zone = \"Mars/Base\" }\nkeys = [\"k\"]",
                "Mars/Base",
            ),
        ];
        for (provider, needle) in cases {
            let text = format!(
                "client_tokens = [\"a-long-enough-client-token\"]\n\
                 [providers.o]\nfamily = \"openai\"\n{provider}"
            );
            let err = parse(&text).unwrap_err().to_string();
            assert!(err.contains(needle), "{needle:?} not in {err:?}");
        }
        let err = parse(
            r#"client_tokens = [{ key = "a-long-enough-client-token", scope = "x" }]
               [providers.o]
               family = "openai"
               keys = ["k"]"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("provider keys only"), "{err}");
    }

    #[test]
    fn warns_about_settings_that_do_nothing() {
        let (_, w) = parse(
            r#"client_tokens = ["a-long-enough-client-token"]
               [providers.o]
               family = "openai"
               scope_budgets = { nobody = { requests_per_minute = 5 } }
               keys = [{ key = "k", weight = 2 }]"#,
        )
        .unwrap();
        assert!(w.iter().any(|w| w.0.contains("scope `nobody`")), "{w:?}");
        assert!(w.iter().any(|w| w.0.contains("`weighted`")), "{w:?}");
    }

    #[test]
    fn store_paths_are_relative_to_the_configuration() {
        let (c, _) = parse(
            r#"client_tokens = ["a-long-enough-client-token"]
               store = { type = "sqlite", path = "state.db" }
               [providers.openai]
               family = "openai"
               keys = ["sk-1"]"#,
        )
        .unwrap();
        assert_eq!(
            c.store,
            Some(StoreConfig::Sqlite {
                path: "./state.db".into()
            })
        );
        // A file without a store keeps state in SQLite next to itself.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rotator.toml");
        std::fs::write(
            &path,
            "client_tokens = [\"a-long-enough-client-token\"]\n\
             [providers.openai]\nfamily = \"openai\"\nkeys = [\"sk-1\"]\n",
        )
        .unwrap();
        let (c, _) = GatewayConfig::load(&path).unwrap();
        assert_eq!(
            c.store,
            Some(StoreConfig::Sqlite {
                path: dir.path().join(DEFAULT_STATE_FILE).display().to_string()
            })
        );
    }
}
