//! `ai-key-rotator serve`: a drop-in OpenAI / Anthropic / Gemini gateway that rotates API keys
//! transparently.
//!
//! An SDK only changes its base URL (`http://127.0.0.1:8787/openai/v1`) and uses a *client
//! token* as its API key. The gateway checks the token, picks a provider key from the
//! [`KeyRotator`](ai_key_rotator::KeyRotator), forwards the request to the configured upstream,
//! classifies the answer, and when the key was to blame (a rate limit, a spent quota, an
//! invalid key) cools it and retries with the next key before anything reaches the client.
//!
//! Like mini-redis, the library takes its listener, configuration and shutdown signal from the
//! caller, so tests bind `127.0.0.1:0`:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use ai_key_rotator_gateway::{GatewayConfig, serve};
//!
//! let (config, warnings) = GatewayConfig::load("rotator.toml".as_ref())?;
//! let listener = tokio::net::TcpListener::bind(config.listen()).await?;
//! serve(listener, config, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```
//!
//! # Map
//! - [`config`]: the TOML file, secrets from `${ENV_VAR}`, `{ file = "…" }` or inline.
//! - `auth`: client tokens, compared in constant time.
//! - `proxy`: routing, dialects (how each provider takes its key), and `proxy/attempt.rs`,
//!   the only place that talks to the rotator on the request path.
//! - `ops`: `/healthz`, `/status`, `/metrics`.
//! - `upstream`: the HTTP client (hyper-util, pooled) and its read timeout. `server`: the
//!   accept loop and graceful shutdown.
//! - [`check`]: `ai-key-rotator check --probe`.
//! - `demo` (feature `demo`, default): `ai-key-rotator demo`, the gateway in front of the mock
//!   providers.
//! - [`probe`]: probe one key now (its provider's model list), classified and reported.
//! - [`reload`]: `SIGHUP`, and what a reload changes, as data.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

mod admin;
mod alerts;
mod auth;
pub mod check;
pub mod config;
#[cfg(feature = "demo")]
pub mod demo;
mod error;
mod ops;
pub mod probe;
mod proxy;
mod recheck;
pub mod reload;
mod server;
mod upstream;
mod usage;

use std::future::Future;
use std::sync::Arc;

use ai_key_rotator::KeyRotator;
use arc_swap::ArcSwap;
use tokio::net::TcpListener;

pub use config::{
    ConfigFileError, DEFAULT_STATE_FILE, GatewayConfig, RedisSettings, StoreConfig, Warning,
};
pub use error::GatewayError;
pub use reload::ReloadChange;

use proxy::{Routes, Shared};

/// A gateway: its rotator, metrics and routes. Cloning shares one gateway.
#[derive(Clone, Debug)]
pub struct Gateway {
    pub(crate) shared: Arc<Shared>,
}

impl Gateway {
    /// A gateway for `config`, from async code: [`new`](Self::new) on a blocking thread.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub async fn open(config: GatewayConfig) -> Result<Gateway, GatewayError> {
        tokio::task::spawn_blocking(move || Gateway::new(config))
            .await
            .map_err(|e| GatewayError::Io(std::io::Error::other(e)))?
    }

    /// A gateway for `config`.
    ///
    /// This blocks: it loads the state store (a SQLite file, or a Redis server waited for up
    /// to its timeout) and the platform's TLS roots. From async code use [`open`](Self::open).
    ///
    /// # Errors
    /// When the rotator rejects the keys or the HTTP client cannot be built.
    pub fn new(config: GatewayConfig) -> Result<Gateway, GatewayError> {
        let mut builder = KeyRotator::builder().config(config.rotator_config()?);
        if let Some(store) = config
            .store
            .as_ref()
            .map(|s| s.open())
            .transpose()?
            .flatten()
        {
            builder = builder.shared_store(store);
        }
        let rotator = builder
            .build()
            .map_err(|e| GatewayError::Config(e.into()))?;
        if let Some(e) = rotator.store_error() {
            tracing::warn!(error = %e, "state store could not be loaded; starting fresh");
        }
        let client = upstream::client(&config).map_err(GatewayError::Client)?;
        // Usage is kept by the rotator's own state store (see `usage.rs`).
        let metrics = ops::metrics::Metrics::with_usage(usage::Usage::default());
        let routes = Routes::new(config, client, &metrics);
        Ok(Gateway {
            shared: Arc::new(Shared {
                rotator,
                metrics,
                routes: ArcSwap::from_pointee(routes),
            }),
        })
    }

    /// The `/status` document: every configured provider and key, by label and fingerprint,
    /// with each key's usage today (in the provider's day) and the day it is for.
    pub fn status_json(&self) -> serde_json::Value {
        let routes = self.shared.routes.load();
        let visible: Vec<&str> = routes.providers.iter().map(|p| &*p.name).collect();
        let view = ops::StatusView::of(&self.shared.rotator.status(), &visible)
            .with_fleet(self.shared.rotator.fleet())
            .with_usage(&self.shared.metrics, &self.shared.rotator)
            .with_budgets(&self.shared.rotator);
        serde_json::to_value(view).unwrap_or_default()
    }

    /// Probes one key now: see [`probe::probe_key`].
    ///
    /// # Errors
    /// As [`probe::probe_key`].
    pub async fn probe_key(
        &self,
        provider: &str,
        fingerprint: ai_key_rotator::Fingerprint,
    ) -> Result<probe::ProbeOutcome, probe::ProbeError> {
        probe::probe(&self.shared, provider, fingerprint).await
    }

    /// The rotator behind the gateway.
    pub fn rotator(&self) -> &KeyRotator {
        &self.shared.rotator
    }

    /// Serves connections from `listener` until `shutdown` completes, then lets in-flight
    /// requests and streams finish (up to `shutdown_grace_ms`).
    ///
    /// # Errors
    /// [`GatewayError::UnauthenticatedNotLoopback`] when the configuration allows requests
    /// without a client token and the listener is not on a loopback address.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), GatewayError> {
        let addr = listener.local_addr()?;
        {
            let routes = self.shared.routes.load();
            check_listen(&routes.config, addr)?;
            if routes.config.allow_unauthenticated {
                tracing::warn!(%addr, "allow_unauthenticated: any local process can use the keys");
            }
        }
        let shared = Arc::clone(&self.shared);
        let limits = {
            let routes = self.shared.routes.load();
            server::Limits {
                max_connections: routes.config.max_connections,
                header_limit: routes.config.header_limit,
            }
        };
        // Depleted keys are re-checked while the gateway serves.
        let rechecks = recheck::spawn(Arc::clone(&self.shared));
        // Usage statistics reach the core's ledger every second, off the request path (an
        // in-memory step; the core's store writes them).
        let writer = {
            let shared = Arc::clone(&self.shared);
            tokio::spawn(async move {
                let mut every = tokio::time::interval(usage::WRITE_EVERY);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    every.tick().await;
                    shared.metrics.sync_usage(&shared.rotator);
                }
            })
        };
        let alerts = {
            let config = self.shared.routes.load().config.alerts.clone();
            alerts::start(&self.shared, &config)
        };
        server::run(
            listener,
            Arc::clone(&self.shared),
            limits,
            shutdown,
            move || shared.routes.load().config.shutdown_grace,
        )
        .await;
        rechecks.abort();
        writer.abort();
        if let Some(a) = alerts {
            a.stop();
        }
        // Everything recorded reaches the store before the process goes. The flush waits for
        // the store's writes (a SQLite fsync, Redis round trips): on a blocking thread, so
        // that the runtime's workers keep serving whatever else shares them.
        let rotator = self.shared.rotator.clone();
        let metrics = self.shared.metrics.clone();
        tokio::task::spawn_blocking(move || {
            metrics.sync_usage(&rotator);
            rotator.flush_store()
        })
        .await
        .map_err(|e| GatewayError::Io(std::io::Error::other(e)))?;
        Ok(())
    }

    /// Applies a new configuration without dropping connections or forgetting cooldowns:
    /// credentials are added to and removed from the live rotator, new providers added, and
    /// routes, tokens and limits swapped. Returns what changed ([`reload::diff`]), including
    /// the settings that wait for a restart.
    ///
    /// This blocks (it builds the upstream client, which reads the platform's TLS roots): from
    /// async code call it on a blocking thread.
    ///
    /// # Errors
    /// When the new configuration cannot be applied; the old one then stays in force.
    pub fn reload(&self, config: GatewayConfig) -> Result<Vec<ReloadChange>, GatewayError> {
        reload::apply(&self.shared, config)
    }
}

/// Whether `config` may be served on `addr`: one rule for `serve` and `check`.
pub(crate) fn check_listen(
    config: &GatewayConfig,
    addr: std::net::SocketAddr,
) -> Result<(), GatewayError> {
    if config.allow_unauthenticated && !addr.ip().is_loopback() {
        return Err(GatewayError::UnauthenticatedNotLoopback(addr));
    }
    Ok(())
}

/// Runs a gateway for `config` on `listener` until `shutdown` completes.
///
/// # Errors
/// As [`Gateway::new`] and [`Gateway::serve`].
pub async fn serve(
    listener: TcpListener,
    config: GatewayConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), GatewayError> {
    Gateway::open(config).await?.serve(listener, shutdown).await
}
