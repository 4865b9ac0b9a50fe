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
//! config that runs (`ai-key-rotator check` adds what depends on where it runs, such as the
//! listen address); what is suspicious but allowed comes back as [`Warning`]s.

mod alerts;
mod client;
mod secret;
mod store;

pub use alerts::{AlertKind, AlertsConfig};
pub(crate) use alerts::{Webhook, host_of};
pub use client::ClientSettings;
pub use store::{DEFAULT_STATE_FILE, RedisSettings, StoreConfig};

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
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
    /// Tokens for the admin actions (disable, enable, reset, probe, reload), separate from
    /// client tokens; `{ key = "${AKR_ADMIN_TOKEN}", label = "alice" }` names who acted in the
    /// audit log.
    #[serde(default)]
    admin_tokens: Vec<SecretSpec>,
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
    #[serde(default = "default_body_read_timeout")]
    body_read_timeout_ms: u64,
    #[serde(default = "default_max_connections")]
    max_connections: usize,
    #[serde(default = "default_header_limit")]
    header_limit: usize,
    #[serde(default)]
    access_log: AccessLog,
    /// Read before logging starts, by [`LogFormat::of_file`]; nothing else uses it.
    #[serde(default)]
    #[allow(dead_code)]
    log_format: Option<LogFormat>,
    #[serde(default)]
    alerts: alerts::RawAlerts,
    #[serde(default = "default_retry_backoff_base")]
    retry_backoff_base_ms: u64,
    #[serde(default = "default_retry_backoff_max")]
    retry_backoff_max_ms: u64,
    #[serde(default)]
    retry_deadline_ms: Option<u64>,
    #[serde(default = "default_preamble_bytes")]
    stream_preamble_bytes: usize,
    #[serde(default = "default_preamble_ms")]
    stream_preamble_ms: u64,
    /// Where cooldowns are kept across restarts. A configuration file without one keeps
    /// them in SQLite next to itself (see [`GatewayConfig::load`]).
    #[serde(default)]
    store: Option<store::RawStore>,
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
    /// When the provider backs off as a whole after correlated failures.
    #[serde(default)]
    circuit: ai_key_rotator::CircuitConfig,
    /// How depleted keys are re-checked (by the gateway's background task).
    #[serde(default)]
    recheck: ai_key_rotator::RecheckConfig,
    /// Requests sharing a stable prompt prefix stay on one key (prompt-cache affinity).
    #[serde(default)]
    cache_affinity: bool,
    /// The time zone of the provider's day for usage statistics (an IANA name); the family's
    /// quota day by default (Pacific time for Gemini, UTC for others).
    #[serde(default)]
    usage_day_timezone: Option<String>,
    keys: Vec<SecretSpec>,
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
fn default_body_read_timeout() -> u64 {
    // The whole body, not per read: a client trickling a byte every few seconds is cut too.
    // A minute carries 32 MiB over a slow uplink.
    60_000
}
fn default_retry_backoff_base() -> u64 {
    200
}
fn default_retry_backoff_max() -> u64 {
    5_000
}
fn default_preamble_bytes() -> usize {
    // A stream's opening events are a few hundred bytes to a few KiB (OpenAI's
    // `response.created` repeats the request's tools and instructions); 64 KiB holds them all.
    64 * 1024
}
fn default_preamble_ms() -> u64 {
    // Long enough for a provider that sends `message_start` and then thinks for a while
    // before its first token or its error; past it the stream is passed on as it is.
    10_000
}
fn default_max_connections() -> usize {
    1024
}
fn default_header_limit() -> usize {
    DEFAULT_HEADER_LIMIT
}

/// The retry settings of `execute`'s plan: backoff after server errors and transport failures,
/// and an optional deadline for the attempts and waits before a response starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetrySettings {
    pub(crate) backoff_base: Duration,
    pub(crate) backoff_max: Duration,
    pub(crate) deadline: Option<Duration>,
}

/// The bounds on a stream's held preamble (see `proxy/preamble.rs`); holding is off when
/// either is zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PreambleLimits {
    pub(crate) max_bytes: usize,
    pub(crate) max_wait: Duration,
}

impl PreambleLimits {
    pub(crate) fn enabled(&self) -> bool {
        self.max_bytes > 0 && !self.max_wait.is_zero()
    }
}

/// The default cap on a request's head (start line and headers), in bytes: providers' own front
/// ends refuse less than this (typically 8 to 32 KiB), so nothing useful is turned away.
pub const DEFAULT_HEADER_LIMIT: usize = 64 * 1024;

/// The largest `max_connections` accepted.
const MAX_CONNECTIONS_LIMIT: usize = 1_000_000;

/// The smallest `header_limit` accepted: SDKs send about 1 KiB, proxies in between add more.
const MIN_HEADER_LIMIT: usize = 8 * 1024;

/// The `access_log` option: one line per proxied request, at this level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum AccessLog {
    /// No access log.
    Off,
    /// At `debug` (seen with `RUST_LOG=debug`): the default, free when debug is off.
    #[default]
    Debug,
    /// At `info`.
    Info,
}

/// The `log_format` option (or `--log-format`): how log lines are written to stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum LogFormat {
    /// One human-readable line per event (colour only at a terminal, never with `NO_COLOR`).
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `target`, `fields`), for log
    /// collectors.
    Json,
}

impl LogFormat {
    /// The `log_format` of a configuration file, read before logging starts (so before the
    /// file is validated): `None` when the file cannot be read or says nothing; `serve`
    /// reports whatever else is wrong with it.
    pub fn of_file(path: &Path) -> Option<LogFormat> {
        #[derive(Deserialize)]
        struct Peek {
            #[serde(default)]
            log_format: Option<LogFormat>,
        }
        let text = std::fs::read_to_string(path).ok()?;
        ai_key_rotator::parse_config::<Peek>(&text, ConfigFormat::Toml)
            .ok()?
            .log_format
    }
}

/// A loaded, validated configuration. Its fields are private so that what the gateway runs
/// is exactly what [`load`](Self::load) or [`from_toml`](Self::from_toml) checked: nothing
/// can be changed in between, and routes are built from the checked form without a second
/// look.
///
/// ```compile_fail,E0616
/// # fn f(mut config: ai_key_rotator_gateway::GatewayConfig) {
/// config.providers[0].upstream = "not checked".into(); // error: private field
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The address the binary listens on (the library takes a listener instead).
    pub(crate) listen: SocketAddr,
    /// The tokens clients present in place of an API key.
    pub(crate) client_tokens: Vec<SecretString>,
    /// Accept requests without a client token (loopback only).
    pub(crate) allow_unauthenticated: bool,
    /// Webhooks told when the pool is in trouble.
    pub(crate) alerts: AlertsConfig,
    /// The admin tokens, each with the name the audit log gives whoever presents it.
    pub(crate) admin_tokens: Vec<(String, SecretString)>,
    /// The file this configuration was read from, for the admin action "reload".
    pub(crate) source: Option<std::path::PathBuf>,
    /// The largest request body accepted, in bytes.
    pub(crate) body_limit: usize,
    /// Upstream attempts per request, across keys and fallback providers.
    pub(crate) max_attempts: u32,
    /// Time allowed to connect to an upstream.
    pub(crate) connect_timeout: Duration,
    /// Time allowed between two reads from an upstream (headers or body).
    pub(crate) read_timeout: Duration,
    /// How long shutdown waits for in-flight requests and streams.
    pub(crate) shutdown_grace: Duration,
    /// Time allowed to receive a whole request body once its headers are in.
    pub(crate) body_read_timeout: Duration,
    /// The most client connections served at once; more wait in the listen backlog.
    pub(crate) max_connections: usize,
    /// The largest request head (start line and headers), in bytes; larger is answered 431.
    pub(crate) header_limit: usize,
    /// The per-request log line.
    pub(crate) access_log: AccessLog,
    /// How server errors and transport failures are retried (the core's `execute` plan).
    pub(crate) retry: RetrySettings,
    /// How much of a stream's opening is held back to fail over on an early error event.
    pub(crate) preamble: PreambleLimits,
    /// Where state is kept; `None` = in memory only.
    pub(crate) store: Option<StoreConfig>,
    /// The providers, by name.
    pub(crate) providers: Vec<ProviderSettings>,
}

/// One provider of the gateway.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    /// Its name: the rotator's provider name and, by default, its route (`/{name}`).
    pub(crate) name: String,
    /// The classifier family, which also decides how the key is written.
    pub(crate) family: Family,
    /// Scheme, host, port and optional base path; the only place requests go.
    pub(crate) upstream: String,
    /// The path prefix clients use, e.g. `/openai`.
    pub(crate) route: String,
    /// Providers tried, in order, when this one has no usable key.
    pub(crate) fallback: Vec<String>,
    /// The rotator's view: keys, labels and cooldown.
    pub(crate) rotator: ProviderConfig,
    /// `upstream`, parsed when it was checked.
    pub(crate) origin: Origin,
}

/// An upstream URL's parts, as checked at load: the proxy builds every request's URI from
/// these and from the client's (checked) path.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    pub(crate) scheme: http::uri::Scheme,
    pub(crate) authority: http::uri::Authority,
    /// The base path without a trailing slash (often empty).
    pub(crate) base_path: String,
}

impl ProviderSettings {
    /// How many keys the provider has.
    pub fn keys(&self) -> usize {
        self.rotator.credentials.len()
    }

    /// Its name: the rotator's provider name and, by default, its route (`/{name}`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The classifier family, which also decides how the key is written.
    pub fn family(&self) -> Family {
        self.family
    }

    /// Scheme, host, port and optional base path; the only place requests go.
    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    /// The path prefix clients use, e.g. `/openai`.
    pub fn route(&self) -> &str {
        &self.route
    }

    /// Providers tried, in order, when this one has no usable key.
    pub fn fallback(&self) -> &[String] {
        &self.fallback
    }
}

const RESERVED: [&str; 5] = ["/healthz", "/status", "/metrics", "/dashboard", "/admin"];

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
        config.source = Some(path.to_owned());
        if config.store.is_none() {
            config.store = Some(StoreConfig::Sqlite {
                path: base.join(DEFAULT_STATE_FILE).display().to_string(),
            });
        }
        if inline && readable_by_others(path) {
            warnings.push(Warning(format!(
                "{} holds inline keys, tokens or a store password and is readable by other \
                 users; chmod 600 it or use ${{ENV_VAR}} / {{ file = \"…\" }}",
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
        let mut admin_tokens = Vec::new();
        for (i, spec) in raw.admin_tokens.iter().enumerate() {
            let what = format!("admin token #{}", i + 1);
            if spec.scope_and_weight() != (None, None) {
                return Err(ConfigFileError::Invalid(format!(
                    "{what}: `scope` and `weight` apply to provider keys only"
                )));
            }
            let r = spec.resolve(&what, base)?;
            // An admin token that is also a client token would give every client the admin
            // actions; one shorter than 16 characters is guessable.
            if client_tokens
                .iter()
                .any(|t| t.expose_secret() == r.secret.expose_secret())
            {
                return Err(ConfigFileError::Invalid(format!(
                    "{what} is also a client token: admin tokens must be separate"
                )));
            }
            if r.secret.expose_secret().len() < 16 {
                return Err(ConfigFileError::Invalid(format!(
                    "{what} is shorter than 16 characters"
                )));
            }
            inline |= r.inline;
            admin_tokens.push((r.label.unwrap_or(what), r.secret));
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
        // The upper bound keeps the semaphore's constructor (which panics past its maximum)
        // and the process's file descriptors in a sane range.
        if !(1..=MAX_CONNECTIONS_LIMIT).contains(&raw.max_connections) {
            return Err(ConfigFileError::Invalid(format!(
                "max_connections must be between 1 and {MAX_CONNECTIONS_LIMIT}"
            )));
        }
        if raw.header_limit < MIN_HEADER_LIMIT {
            return Err(ConfigFileError::Invalid(format!(
                "header_limit must be at least {MIN_HEADER_LIMIT} bytes"
            )));
        }
        if raw.connect_timeout_ms == 0 || raw.read_timeout_ms == 0 || raw.body_read_timeout_ms == 0
        {
            return Err(ConfigFileError::Invalid("timeouts must be positive".into()));
        }
        if raw.retry_backoff_max_ms < raw.retry_backoff_base_ms {
            return Err(ConfigFileError::Invalid(
                "retry_backoff_max_ms must be at least retry_backoff_base_ms".into(),
            ));
        }
        if raw.retry_deadline_ms == Some(0) {
            return Err(ConfigFileError::Invalid(
                "retry_deadline_ms must be positive (leave it out for no deadline)".into(),
            ));
        }
        if raw.providers.is_empty() {
            return Err(ConfigFileError::Invalid("no providers configured".into()));
        }
        let store = match raw.store {
            Some(s) => {
                let r = s.resolve(base)?;
                inline |= r.inline_password;
                Some(r.store)
            }
            None => None,
        };

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
            let (upstream, origin) = check_upstream(name, &upstream)?;
            let route = p.route.clone().unwrap_or_else(|| format!("/{name}"));
            check_route(name, &route)?;
            let mut rotator = ProviderConfig::new()
                .family(p.family)
                .cooldown(
                    p.cooldown
                        .clone()
                        .unwrap_or(Cooldown::fixed(Duration::from_secs(60))),
                )
                .strategy(p.strategy)
                .circuit(p.circuit.clone())
                .recheck(p.recheck.clone())
                .cache_affinity(p.cache_affinity);
            if let Some(b) = &p.budget {
                rotator = rotator.budget(b.clone());
            }
            if let Some(zone) = &p.usage_day_timezone {
                rotator = rotator.usage_day_timezone(zone.clone());
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
                origin,
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
            admin_tokens,
            alerts: raw.alerts.check()?,
            source: None,
            body_limit: raw.body_limit,
            max_attempts: raw.max_attempts,
            connect_timeout: Duration::from_millis(raw.connect_timeout_ms),
            read_timeout: Duration::from_millis(raw.read_timeout_ms),
            shutdown_grace: Duration::from_millis(raw.shutdown_grace_ms),
            body_read_timeout: Duration::from_millis(raw.body_read_timeout_ms),
            max_connections: raw.max_connections,
            header_limit: raw.header_limit,
            access_log: raw.access_log,
            retry: RetrySettings {
                backoff_base: Duration::from_millis(raw.retry_backoff_base_ms),
                backoff_max: Duration::from_millis(raw.retry_backoff_max_ms),
                deadline: raw.retry_deadline_ms.map(Duration::from_millis),
            },
            preamble: PreambleLimits {
                max_bytes: raw.stream_preamble_bytes,
                max_wait: Duration::from_millis(raw.stream_preamble_ms),
            },
            store,
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

    /// The first client token (for a client of the running gateway).
    pub fn first_client_token(&self) -> Option<&str> {
        self.client_tokens.first().map(|t| t.expose_secret())
    }

    /// The address the binary listens on (the library takes a listener instead).
    pub fn listen(&self) -> SocketAddr {
        self.listen
    }

    /// Whether requests without a client token are accepted (on loopback only).
    pub fn allow_unauthenticated(&self) -> bool {
        self.allow_unauthenticated
    }

    /// The largest request body accepted, in bytes.
    pub fn body_limit(&self) -> usize {
        self.body_limit
    }

    /// Where state is kept; `None` = in memory only.
    pub fn store(&self) -> Option<&StoreConfig> {
        self.store.as_ref()
    }

    /// The providers, in name order.
    pub fn providers(&self) -> &[ProviderSettings] {
        &self.providers
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

fn check_upstream(name: &str, upstream: &str) -> Result<(String, Origin), ConfigFileError> {
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
    let uri = upstream
        .parse::<http::Uri>()
        .map_err(|_| bad("not a valid HTTP URI"))?;
    let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
        return Err(bad("not a valid HTTP URI"));
    };
    let origin = Origin {
        scheme: scheme.clone(),
        authority: authority.clone(),
        base_path: uri.path().trim_end_matches('/').to_owned(),
    };
    Ok((upstream.to_owned(), origin))
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
            "provider `{name}` route {route:?} must look like /name (and not /healthz, /status, \
             /metrics, /dashboard or /admin)"
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
mod tests;
