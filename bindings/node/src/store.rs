//! `store: { type: "file" | "sqlite" | "redis", … }`: the core's shared state stores, so a Node
//! process shares cooldowns with the gateway and with Rust and Python processes.

use std::sync::Arc;
use std::time::Duration;

use ai_key_rotator::{FileStore, RedisStore, SqliteStore, StateStore};
use serde::Deserialize;
use serde_json::Value;

use crate::error::{Result, js_error, store_error};

/// The `store` option, after the keys were made snake_case.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
enum StoreConfig {
    Memory,
    File {
        path: String,
    },
    Sqlite {
        path: String,
        #[serde(default)]
        poll_interval_ms: Option<u64>,
    },
    Redis {
        url: String,
        #[serde(default)]
        prefix: Option<String>,
        #[serde(default)]
        timeout_ms: Option<u64>,
        /// For `rediss://`: a PEM file of the certificate authority to trust instead of the
        /// system's roots (a server whose certificate your own CA signed).
        #[serde(default)]
        ca_file: Option<String>,
    },
}

/// The store the option describes, or `None` for `memory`.
pub(crate) fn open(value: Value) -> Result<Option<Arc<dyn StateStore>>> {
    let config: StoreConfig = serde_json::from_value(value)
        .map_err(|e| js_error("ERR_INVALID_CONFIG", format!("invalid store: {e}")))?;
    let store: Arc<dyn StateStore> = match config {
        StoreConfig::Memory => return Ok(None),
        StoreConfig::File { path } => Arc::new(FileStore::open(path).map_err(store_error)?),
        StoreConfig::Sqlite {
            path,
            poll_interval_ms,
        } => {
            let mut store = SqliteStore::open(path).map_err(store_error)?;
            if let Some(ms) = poll_interval_ms {
                store = store.poll_interval(Duration::from_millis(ms));
            }
            Arc::new(store)
        }
        StoreConfig::Redis {
            url,
            prefix,
            timeout_ms,
            ca_file,
        } => {
            let mut builder = RedisStore::builder(url);
            if let Some(path) = ca_file {
                // The path is the user's own configuration, not a secret: naming it is what
                // makes the error useful.
                let pem = std::fs::read(&path).map_err(|e| {
                    js_error(
                        "ERR_INVALID_CONFIG",
                        format!("invalid store: cannot read caFile {path:?}: {e}"),
                    )
                })?;
                builder = builder.ca_certificate_pem(pem);
            }
            if let Some(p) = prefix {
                builder = builder.prefix(p);
            }
            if let Some(ms) = timeout_ms {
                builder = builder.timeout(Duration::from_millis(ms));
            }
            Arc::new(builder.build().map_err(store_error)?)
        }
    };
    Ok(Some(store))
}
