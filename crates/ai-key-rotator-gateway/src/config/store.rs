//! The `store` option: where cooldowns, disabled keys and counters are kept, and how the
//! gateway reaches a shared one (Redis: URL secrets, TLS, prefix, timeouts).
//!
//! ```toml
//! store = { type = "sqlite", path = "state.db" }     # one machine
//! store = { type = "redis", url = "${REDIS_URL}", prefix = "prod" }   # a fleet
//! # TLS with your own CA, the password from a file, and shorter timeouts:
//! store = { type = "redis", url = { file = "secrets/redis-url" }, ca_file = "redis-ca.pem", connect_timeout_ms = 1000, command_timeout_ms = 500 }
//! # A Redis Cluster, given some of its nodes:
//! store = { type = "redis", cluster = ["redis://10.0.0.5:7000", "${REDIS_NODE_2}"] }
//! ```

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::ConfigFileError;
use super::secret::SecretSpec;

/// The SQLite file a configuration file's state goes to when it names no store.
pub const DEFAULT_STATE_FILE: &str = "ai-key-rotator-state.db";

/// The `store` option: where cooldowns, disabled keys and counters are kept. Relative paths are
/// relative to the configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    Redis(RedisSettings),
}

/// How the gateway reaches its Redis store. Its `Debug` output never shows the URL, which may
/// hold a password.
#[derive(Clone)]
pub struct RedisSettings {
    url: SecretString,
    /// A cluster's nodes, instead of `url` (empty for one server).
    cluster: Vec<SecretString>,
    prefix: Option<String>,
    connect_timeout: Option<Duration>,
    command_timeout: Option<Duration>,
    /// The CA certificate (PEM) read from `ca_file`, and the file's name.
    ca: Option<(String, Vec<u8>)>,
}

impl RedisSettings {
    /// The key prefix, when the configuration sets one (the library's `akr` otherwise).
    pub fn prefix(&self) -> Option<&str> {
        self.prefix.as_deref()
    }

    /// Whether the URL asks for TLS (`rediss://`).
    pub fn tls(&self) -> bool {
        self.url.expose_secret().starts_with("rediss://")
    }

    /// How many cluster nodes are given (0: one server).
    pub fn cluster_nodes(&self) -> usize {
        self.cluster.len()
    }
}

impl PartialEq for RedisSettings {
    fn eq(&self, other: &Self) -> bool {
        self.url.expose_secret() == other.url.expose_secret()
            && self.cluster.len() == other.cluster.len()
            && self
                .cluster
                .iter()
                .zip(&other.cluster)
                .all(|(a, b)| a.expose_secret() == b.expose_secret())
            && self.prefix == other.prefix
            && self.connect_timeout == other.connect_timeout
            && self.command_timeout == other.command_timeout
            && self.ca == other.ca
    }
}

impl Eq for RedisSettings {}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &"<redacted>")
            .field("tls", &self.tls())
            .field("cluster_nodes", &self.cluster.len())
            .field("prefix", &self.prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("ca_file", &self.ca.as_ref().map(|(name, _)| name))
            .finish()
    }
}

/// The `store` option as written. serde reads a unit variant of an internally tagged enum
/// with a visitor that ignores other fields, so `{ type = "memory", path = "…" }` would pass
/// as memory; the empty struct variant here rejects them.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub(super) enum RawStore {
    Memory {},
    File {
        path: String,
    },
    Sqlite {
        path: String,
    },
    Redis {
        /// `redis://…` or `rediss://…`: inline, `"${VAR}"` or `{ file = "…" }`, like keys.
        #[serde(default)]
        url: Option<SecretSpec>,
        /// A Redis Cluster's nodes (some or all), each like `url`, instead of `url`.
        #[serde(default)]
        cluster: Vec<SecretSpec>,
        #[serde(default)]
        prefix: Option<String>,
        #[serde(default)]
        connect_timeout_ms: Option<u64>,
        #[serde(default)]
        command_timeout_ms: Option<u64>,
        /// A PEM CA certificate to trust for `rediss://` instead of the system's roots.
        #[serde(default)]
        ca_file: Option<String>,
    },
}

/// A resolved store, and whether its URL holds a password written in the configuration file
/// itself (warned about like an inline key when the file is readable by others).
pub(super) struct Resolved {
    pub(super) store: StoreConfig,
    pub(super) inline_password: bool,
}

impl RawStore {
    /// Reads the store's secrets and files; relative paths are relative to `base`.
    pub(super) fn resolve(self, base: &Path) -> Result<Resolved, ConfigFileError> {
        let path = |p: String| base.join(p).display().to_string();
        let store = match self {
            RawStore::Memory {} => StoreConfig::Memory,
            RawStore::File { path: p } => StoreConfig::File { path: path(p) },
            RawStore::Sqlite { path: p } => StoreConfig::Sqlite { path: path(p) },
            RawStore::Redis {
                url,
                cluster,
                prefix,
                connect_timeout_ms,
                command_timeout_ms,
                ca_file,
            } => {
                let is_cluster = !cluster.is_empty();
                let specs: Vec<(String, SecretSpec)> = match (url, cluster.is_empty()) {
                    (Some(u), true) => vec![("store url".to_owned(), u)],
                    (None, false) => cluster
                        .into_iter()
                        .enumerate()
                        .map(|(i, s)| (format!("store cluster node #{}", i + 1), s))
                        .collect(),
                    _ => {
                        return Err(ConfigFileError::Invalid(
                            "a redis store needs either `url` or `cluster` (a list of node URLs)"
                                .into(),
                        ));
                    }
                };
                let mut urls = Vec::new();
                let mut inline_password = false;
                for (what, spec) in specs {
                    if spec.scope_and_weight() != (None, None) {
                        return Err(ConfigFileError::Invalid(format!(
                            "{what}: `scope` and `weight` apply to provider keys only"
                        )));
                    }
                    let r = spec.resolve(&what, base)?;
                    let text = r.secret.expose_secret();
                    if !(text.starts_with("redis://") || text.starts_with("rediss://")) {
                        // The scheme only: the rest may hold a password.
                        return Err(ConfigFileError::Invalid(format!(
                            "{what} must start with redis:// or rediss:// (TLS)"
                        )));
                    }
                    inline_password |= r.inline && has_userinfo(text);
                    urls.push(r.secret);
                }
                let timeout = |name: &str, ms: Option<u64>| match ms {
                    Some(0) => Err(ConfigFileError::Invalid(format!(
                        "store {name} must be positive"
                    ))),
                    _ => Ok(ms.map(Duration::from_millis)),
                };
                if prefix.as_deref().is_some_and(|p| {
                    p.is_empty() || p.contains(['{', '}']) || p.chars().any(char::is_whitespace)
                }) {
                    return Err(ConfigFileError::Invalid(
                        "store prefix must be non-empty, without braces or spaces".into(),
                    ));
                }
                let ca = match ca_file {
                    None => None,
                    Some(f) => {
                        let file = path(f);
                        let pem = std::fs::read(&file).map_err(|e| {
                            ConfigFileError::Invalid(format!("store ca_file {file}: {e}"))
                        })?;
                        Some((file, pem))
                    }
                };
                let url = urls.first().cloned().expect("one URL at least");
                let cluster = if is_cluster { urls } else { Vec::new() };
                let settings = RedisSettings {
                    cluster,
                    prefix,
                    connect_timeout: timeout("connect_timeout_ms", connect_timeout_ms)?,
                    command_timeout: timeout("command_timeout_ms", command_timeout_ms)?,
                    ca,
                    url,
                };
                if settings.ca.is_some() && !settings.tls() {
                    return Err(ConfigFileError::Invalid(
                        "store ca_file is for rediss:// (TLS) URLs only".into(),
                    ));
                }
                return Ok(Resolved {
                    inline_password,
                    store: StoreConfig::Redis(settings),
                });
            }
        };
        Ok(Resolved {
            store,
            inline_password: false,
        })
    }
}

/// Whether a URL carries a user or password (`redis://:pw@host`, `redis://user:pw@host`).
fn has_userinfo(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    authority.contains('@')
}

impl StoreConfig {
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
            StoreConfig::Redis(s) => Some(Arc::new(s.builder().build()?)),
        })
    }
}

impl RedisSettings {
    fn builder(&self) -> ai_key_rotator::RedisStoreBuilder {
        let mut b = if self.cluster.is_empty() {
            ai_key_rotator::RedisStore::builder(self.url.expose_secret())
        } else {
            ai_key_rotator::RedisStore::cluster(self.cluster.iter().map(|u| u.expose_secret()))
        };
        if let Some(p) = &self.prefix {
            b = b.prefix(p.clone());
        }
        if let Some(t) = self.connect_timeout {
            b = b.connect_timeout(t);
        }
        if let Some(t) = self.command_timeout {
            b = b.command_timeout(t);
        }
        if let Some((_, pem)) = &self.ca {
            b = b.ca_certificate_pem(pem.clone());
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_found_only_in_the_authority() {
        for (url, expected) in [
            ("redis://:pw@127.0.0.1:6379", true),
            ("rediss://user:pw@h/0", true),
            ("redis://127.0.0.1:6379", false),
            ("redis://h/0?x=a@b", false),
        ] {
            assert_eq!(has_userinfo(url), expected, "{url}");
        }
    }
}
