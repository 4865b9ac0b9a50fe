//! The Redis store for fleets: shared cooldowns, pushed between processes.
//!
//! # Runtime
//! The store runs its own one-thread tokio runtime on a dedicated thread
//! (`ai-key-rotator-redis`). That keeps the core free of any runtime requirement (callers need
//! not be async, and a busy caller runtime never delays propagation), at the cost of one
//! thread per store.
//!
//! # Flow
//! - A local change marks its credentials dirty in the shared queue (`store/worker.rs`; no
//!   I/O); the writer task (`writer.rs`) runs a Lua script (`scripts.rs`) that applies each
//!   one's current local state on the server atomically (the longer cooldown wins) and
//!   publishes it. When the server answers with a longer cooldown than ours, the local view
//!   takes it.
//! - A subscriber task on its own connection receives the other processes' changes and applies
//!   them to the local view at once ([`StoreLink::apply_remote`]); `get_key` only ever reads
//!   the local view.
//! - When Redis goes away, the rotator keeps serving from its local view; the store logs the
//!   outage, counts it ([`RedisStore::outages`]), retries with backoff (the queue keeps one
//!   entry per changed credential, however many changes it saw), and on reconnecting reconciles: it applies the server's cooldowns
//!   locally and writes the local ones to the server, the longer winning both ways. A reset
//!   made during an outage loses against a longer cooldown still on the server.
//!
//! # Failures
//! Each failure is classified (`fault.rs`): a wrong password, a key of the wrong type, a
//! read-only replica, an unreachable server and a timeout are told apart in
//! [`KeyRotator::store_health`](crate::KeyRotator::store_health) and in the log, which says
//! so once per change of health (with the count of failures), not once per write. A
//! provider whose hash holds the wrong type stops sharing alone: the others go on.

mod con;
mod fault;
mod fleet;
mod scripts;
mod usage;
mod writer;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use futures_util::StreamExt;

use super::sealed::Backend;
use super::worker::Queue;
use super::{
    CredentialRecord, FleetView, HealthCell, RemoteChange, StoreError, StoreFault, StoreHealth,
    StoreLink, StoredState,
};
use crate::budget::fleet::FleetHub;
use crate::classify::ModelName;
use crate::clock::Timestamp;
use crate::events::Event;
use crate::identity::Fingerprint;
use crate::status::{CooldownReason, CredentialState, ModelCooldownStatus};
use con::{Con, Target};

/// How long `flush_store` waits, in command timeouts, before it says so and returns.
const FLUSH_TIMEOUTS: u32 = 2;

const MAX_BACKOFF: Duration = Duration::from_secs(2);
const FIRST_BACKOFF: Duration = Duration::from_millis(20);

/// Configures a [`RedisStore`]; see [`RedisStore::builder`].
///
/// Its `Debug` output never shows the URL, which may hold a password.
#[derive(Clone)]
#[must_use]
pub struct RedisStoreBuilder {
    url: String,
    /// A cluster's nodes (some or all), instead of `url`.
    cluster: Vec<String>,
    prefix: String,
    connect_timeout: Duration,
    command_timeout: Duration,
    /// A PEM certificate authority to trust for `rediss://` instead of the system's roots.
    ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStoreBuilder")
            .field("url", &"<redacted>")
            .field("cluster_nodes", &self.cluster.len())
            .field("prefix", &self.prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl RedisStoreBuilder {
    /// The namespace of every Redis key and channel the store uses (`akr` by default), so
    /// several fleets can share one server.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets both the [connect](Self::connect_timeout) and the
    /// [command](Self::command_timeout) timeout (2 s each by default).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self.command_timeout = timeout;
        self
    }

    /// How long opening a connection (TCP, TLS handshake, `AUTH`) may take before the
    /// attempt counts as a [`StoreFault::Timeout`] (2 s by default).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long one command or script may take before it counts as a
    /// [`StoreFault::Timeout`] (2 s by default). Building the rotator waits for the first
    /// load at most the connect timeout plus the command timeout; `flush_store` waits twice
    /// the command timeout.
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// For `rediss://` URLs: trust the certificate authority in `pem` (PEM text, one or more
    /// certificates) instead of the system's roots, for a server whose certificate your own
    /// CA signed. Needs the `redis-tls` feature; without it, [`build`](Self::build) says so.
    pub fn ca_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem = Some(pem.into());
        self
    }

    /// The store. It connects when the rotator is built with it.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the URL is invalid, names `rediss://` without the
    /// `redis-tls` feature, or the CA certificate cannot be read. The message never quotes
    /// the URL (it may hold a password).
    pub fn build(self) -> Result<RedisStore, StoreError> {
        let target = if self.cluster.is_empty() {
            Target::Single(open_client(&self.url, self.ca_pem.as_deref())?)
        } else {
            open_cluster(&self.cluster, self.ca_pem.as_deref(), &self)?
        };
        let origin = format!(
            "{}-{:x}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        );
        Ok(RedisStore {
            shared: Arc::new(Shared {
                prefix: self.prefix,
                origin,
                connect_timeout: self.connect_timeout,
                command_timeout: self.command_timeout,
                outages: AtomicU64::new(0),
                connected: AtomicBool::new(false),
                health: HealthCell::new("redis"),
                queue: Queue::default(),
                ready: (Mutex::new(false), Condvar::new()),
                known: Mutex::new(HashMap::new()),
                counted: Mutex::new(HashMap::new()),
                loaded: Mutex::new(None),
                hub: FleetHub::new(),
                view: Mutex::new(None),
                ledger: std::sync::OnceLock::new(),
            }),
            target,
            attached: AtomicBool::new(false),
            thread: Mutex::new(None),
        })
    }
}

/// A cluster client for `nodes`, and one plain client per node for the subscription.
fn open_cluster(
    nodes: &[String],
    ca_pem: Option<&[u8]>,
    settings: &RedisStoreBuilder,
) -> Result<Target, StoreError> {
    let clients = nodes
        .iter()
        .map(|n| open_client(n, ca_pem))
        .collect::<Result<Vec<_>, _>>()?;
    let infos = clients.iter().map(|c| c.get_connection_info().clone());
    #[allow(unused_mut)] // TLS adds to it
    let mut builder = redis::cluster::ClusterClientBuilder::new(infos)
        .connection_timeout(settings.connect_timeout)
        .response_timeout(settings.command_timeout);
    #[cfg(feature = "redis-tls")]
    if let Some(pem) = ca_pem {
        builder = builder.certs(redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(pem.to_vec()),
        });
    }
    let client = builder
        .build()
        .map_err(|e| invalid(format!("invalid redis cluster: {}", e.category())))?;
    Ok(Target::Cluster {
        client: Box::new(client),
        nodes: clients,
    })
}

/// Why a store URL could not be used, without quoting it.
fn invalid(what: String) -> StoreError {
    StoreError::Backend(what.into())
}

/// A client for `url`, trusting `ca_pem` for TLS when given.
fn open_client(url: &str, ca_pem: Option<&[u8]>) -> Result<redis::Client, StoreError> {
    use redis::IntoConnectionInfo;
    let tls = url.starts_with("rediss://");
    if tls && !cfg!(feature = "redis-tls") {
        return Err(invalid(
            "a rediss:// (TLS) store URL needs the `redis-tls` feature of ai-key-rotator".into(),
        ));
    }
    if ca_pem.is_some() && !tls {
        return Err(invalid(
            "a CA certificate was given for a store URL that is not rediss:// (TLS)".into(),
        ));
    }
    // The parser's errors name what is wrong with the URL, never the URL itself.
    let info = url
        .into_connection_info()
        .map_err(|e| invalid(format!("invalid redis URL: {}", e.category())))?;
    match ca_pem {
        #[cfg(feature = "redis-tls")]
        Some(pem) => {
            use rustls::pki_types::{CertificateDer, pem::PemObject};
            // The redis crate would take text without a certificate as "trust nothing";
            // say so instead.
            let certs = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| invalid(format!("the CA certificate is not valid PEM: {e}")))?;
            if certs.is_empty() {
                return Err(invalid(
                    "the CA certificate PEM holds no certificate".into(),
                ));
            }
            redis::Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.to_vec()),
                },
            )
            .map_err(|e| invalid(format!("cannot use the CA certificate: {e}")))
        }
        _ => redis::Client::open(info)
            .map_err(|e| invalid(format!("invalid redis URL: {}", e.category()))),
    }
}

/// Shares cooldowns across a fleet through Redis, pushing each change to every other process.
///
/// Redis holds fingerprints, never keys. See the module docs of `store::redis` and
/// `docs/stores.md` for the key layout.
///
/// ```no_run
/// use ai_key_rotator::{KeyRotator, ProviderConfig, RedisStore};
///
/// let store = RedisStore::builder("redis://127.0.0.1:6379").prefix("prod").build()?;
/// let rotator = KeyRotator::builder()
///     .provider("openai", ProviderConfig::new().credential("sk-a").credential("sk-b"))
///     .store(store)
///     .build()?;
/// // A mark here is skipped by every other process within milliseconds.
/// rotator.mark_exhausted("openai", Some("sk-a"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct RedisStore {
    shared: Arc<Shared>,
    target: Target,
    /// Set once the store's thread started, so a store attached twice starts one.
    attached: AtomicBool,
    thread: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Debug)]
struct Shared {
    prefix: String,
    /// This store's id in published messages, to skip its own.
    origin: String,
    connect_timeout: Duration,
    command_timeout: Duration,
    outages: AtomicU64,
    connected: AtomicBool,
    health: HealthCell,
    /// The credentials whose changes wait to be written (bounded; see `worker.rs`).
    queue: Queue,
    /// Set after the first reconcile, which `load` waits for.
    ready: (Mutex<bool>, Condvar),
    /// The latest cooldown end known here per credential: what a reset covers.
    known: Mutex<HashMap<(Arc<str>, Fingerprint), Timestamp>>,
    /// Each credential's counters as last written (see `writer::Counted`), so only changes
    /// are written and uses are added once.
    counted: Mutex<HashMap<(Arc<str>, Fingerprint), writer::Counted>>,
    /// What the first reconcile read, handed to the rotator by `load`: counters, failure
    /// streaks, reasons and per-model rests.
    loaded: Mutex<Option<Vec<CredentialRecord>>>,
    /// The rotator's fleet-wide budgets, leased by the fleet task (`fleet.rs`).
    hub: Arc<FleetHub>,
    /// The fleet as the last heartbeat saw it.
    view: Mutex<Option<FleetView>>,
    /// The rotator's usage ledger, handed over before `attach` (`usage.rs`).
    ledger: std::sync::OnceLock<Arc<crate::ledger::Ledger>>,
}

impl Shared {
    /// How long connecting and the first reconcile may take together.
    fn session_timeout(&self) -> Duration {
        self.connect_timeout + self.command_timeout
    }

    fn key(&self, provider: &str) -> String {
        format!("{{{}:{}}}:cooldowns", self.prefix, provider)
    }

    /// The hash of reasons, in the same hash slot as the cooldowns.
    fn reasons_key(&self, provider: &str) -> String {
        format!("{{{}:{}}}:reasons", self.prefix, provider)
    }

    /// The hash of per-model rests, in the same hash slot as the cooldowns.
    fn models_key(&self, provider: &str) -> String {
        format!("{{{}:{}}}:models", self.prefix, provider)
    }

    /// The hash of counters, in the same hash slot as the cooldowns.
    fn counters_key(&self, provider: &str) -> String {
        format!("{{{}:{}}}:counters", self.prefix, provider)
    }

    fn channel(&self) -> String {
        format!("{}:changes", self.prefix)
    }

    /// Notes a failure. A store-wide one means the connection is lost (counted as an
    /// outage when it was up); the health cell logs each change of health once.
    fn fail(&self, what: &str, fault: StoreFault) {
        tracing::debug!(%fault, "redis store: {what}");
        let disconnected = matches!(
            fault,
            StoreFault::Unreachable
                | StoreFault::Timeout
                | StoreFault::AuthenticationFailed
                | StoreFault::Tls { .. }
        );
        if disconnected && self.connected.swap(false, Ordering::AcqRel) {
            self.outages.fetch_add(1, Ordering::Relaxed);
        }
        self.health.fail(fault);
    }

    fn know(&self, provider: &str, fp: Fingerprint, until: Timestamp) {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        let e = known.entry((provider.into(), fp)).or_insert(until);
        *e = (*e).max(until);
    }

    fn known(&self, provider: &str, fp: Fingerprint) -> Option<Timestamp> {
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known.get(&(Arc::<str>::from(provider), fp)).copied()
    }
}

impl RedisStore {
    /// A builder for a store on a Redis Cluster, given some of its nodes' URLs (the client
    /// discovers the rest). Every key the store uses carries a hash tag, so each script runs
    /// on one slot; after a failover the store follows the promoted replica and writes its
    /// local view again, so writes the old master acknowledged but had not replicated are not
    /// lost.
    ///
    /// ```no_run
    /// use ai_key_rotator::RedisStore;
    ///
    /// let store = RedisStore::cluster(["redis://10.0.0.5:7000", "redis://10.0.0.6:7000"])
    ///     .prefix("prod")
    ///     .build()?;
    /// # Ok::<(), ai_key_rotator::StoreError>(())
    /// ```
    pub fn cluster(nodes: impl IntoIterator<Item = impl Into<String>>) -> RedisStoreBuilder {
        let cluster: Vec<String> = nodes.into_iter().map(Into::into).collect();
        RedisStoreBuilder {
            url: cluster.first().cloned().unwrap_or_default(),
            cluster,
            ..Self::builder("")
        }
    }

    /// A builder for a store on the server at `url` (`redis://host:port/db`).
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder {
            url: url.into(),
            cluster: Vec::new(),
            prefix: "akr".into(),
            connect_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_secs(2),
            ca_pem: None,
        }
    }

    /// How many times the connection to Redis was lost.
    pub fn outages(&self) -> u64 {
        self.shared.outages.load(Ordering::Relaxed)
    }

    /// Whether the store is connected and subscribed right now.
    pub fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::Acquire)
    }

    /// A handle that reports [`outages`](Self::outages) and
    /// [`is_connected`](Self::is_connected) after the store was handed to the builder.
    pub fn monitor(&self) -> RedisMonitor {
        RedisMonitor(Arc::clone(&self.shared))
    }
}

/// Reads a [`RedisStore`]'s connection health; see [`RedisStore::monitor`].
#[derive(Debug, Clone)]
pub struct RedisMonitor(Arc<Shared>);

impl RedisMonitor {
    /// How many times the connection to Redis was lost.
    pub fn outages(&self) -> u64 {
        self.0.outages.load(Ordering::Relaxed)
    }

    /// Whether the store is connected and subscribed right now.
    pub fn is_connected(&self) -> bool {
        self.0.connected.load(Ordering::Acquire)
    }

    /// The fleet as this process's last heartbeat saw it (every second): the live
    /// processes, each one's key-set digest (flagged when it differs from most), and whether
    /// fleet-wide budgets run on this process's share because Redis is out of reach. `None`
    /// before the first heartbeat.
    pub fn fleet(&self) -> Option<FleetView> {
        let view = self
            .0
            .view
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        view.map(|mut v| {
            v.budgets_fallback = self.0.hub.fallback();
            v
        })
    }

    /// How many credentials have changes waiting to be written to Redis. At most one entry
    /// per credential, however many changes it had: during an outage the queue stays as
    /// small as the configuration.
    pub fn queued(&self) -> usize {
        self.0.queue.len()
    }
}

impl Backend for RedisStore {
    fn attach(&self, rotator: StoreLink) {
        if self.attached.swap(true, Ordering::AcqRel) {
            return;
        }
        let shared = Arc::clone(&self.shared);
        let target = self.target.clone();
        let spawned = std::thread::Builder::new()
            .name("ai-key-rotator-redis".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(error) => {
                        tracing::error!(%error, "redis store: could not start its runtime");
                        return;
                    }
                };
                runtime.block_on(writer::run(shared, target, rotator));
            });
        match spawned {
            Ok(h) => *self.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(h),
            Err(error) => tracing::error!(%error, "redis store: could not start its thread"),
        }
    }

    fn load(&self) -> Result<Option<StoredState>, StoreError> {
        // The first reconcile applies the fleet's state directly; wait for it, boundedly.
        let (flag, cv) = &self.shared.ready;
        let guard = flag.lock().unwrap_or_else(|e| e.into_inner());
        let (guard, _) = cv
            .wait_timeout_while(guard, self.shared.session_timeout(), |ready| !*ready)
            .unwrap_or_else(|e| e.into_inner());
        if *guard {
            drop(guard);
            let loaded = self
                .shared
                .loaded
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            Ok(loaded
                .filter(|records| !records.is_empty())
                .map(StoredState::from_records))
        } else {
            // Say why, when a failure was seen: a wrong password is not an outage.
            Err(StoreError::Unavailable(match self.shared.health.get() {
                StoreHealth::Failing { fault, .. } => fault,
                _ => StoreFault::Timeout,
            }))
        }
    }

    fn record(&self, change: &Event) {
        self.shared.queue.record(change);
    }

    fn models_reset(&self, provider: &Arc<str>, credentials: &[Fingerprint]) {
        self.shared.queue.models_reset(
            credentials
                .iter()
                .map(|fp| (Arc::clone(provider), *fp))
                .collect(),
        );
    }

    fn flush(&self) {
        // While Redis is away the writer retries; do not wait for it long.
        if let Err(error) = self.flush_within(self.shared.command_timeout * FLUSH_TIMEOUTS) {
            tracing::warn!(%error, "redis store: flush gave up");
        }
    }

    fn flush_within(&self, timeout: Duration) -> Result<(), StoreError> {
        if self
            .thread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
        {
            // No writer (never attached, or it could not start): nothing will be written.
            return Ok(());
        }
        let start = std::time::Instant::now();
        // While Redis is away, counters cannot be written: wait only for the changes (as a
        // flush always did), not for a batch that waits for the server.
        let sync = self.shared.connected.load(Ordering::Acquire);
        self.shared
            .queue
            .flush(timeout, sync)
            .map_err(|pending| StoreError::FlushTimedOut {
                waited: timeout,
                pending,
            })?;
        // Usage too: a sync that began after this call, so its totals are read back as well.
        match self.shared.ledger.get() {
            Some(ledger) => ledger
                .flush(timeout.saturating_sub(start.elapsed()))
                .map_err(|pending| StoreError::FlushTimedOut {
                    waited: timeout,
                    pending,
                }),
            None => Ok(()),
        }
    }

    fn keep_usage(&self, ledger: Arc<crate::ledger::Ledger>) -> bool {
        self.shared.ledger.set(ledger).is_ok()
    }

    fn health(&self) -> StoreHealth {
        self.shared.health.get()
    }

    fn fleet(&self) -> Option<Arc<FleetHub>> {
        Some(Arc::clone(&self.shared.hub))
    }

    fn fleet_view(&self) -> Option<FleetView> {
        self.monitor().fleet()
    }
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        // Closing the queue ends the writer task, and with it the runtime and its thread.
        self.shared.queue.close();
        let handle = self
            .thread
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(h) = handle
            && h.thread().id() != std::thread::current().id()
        {
            let _ = h.join();
        }
    }
}

/// A reason as the scripts store and publish it: JSON, or empty for none.
fn encode_reason(reason: Option<&CooldownReason>) -> String {
    reason
        .and_then(|r| serde_json::to_string(r).ok())
        .unwrap_or_default()
}

/// A stored or published reason, if it is one this library can read; an unreadable one is
/// dropped (it only explains a state, it never decides one).
fn decode_reason(text: &str) -> Option<CooldownReason> {
    serde_json::from_str(text).ok()
}

fn parse_cooling(value: &str) -> Option<Timestamp> {
    value
        .strip_prefix("c:")
        .and_then(|ms| ms.parse().ok())
        .map(Timestamp::from_millis)
}

/// Receives the other processes' changes; on every (re)connection, reconciles first.
async fn subscribe(shared: Arc<Shared>, target: Target, mut con: Con, rotator: StoreLink) {
    let channel = shared.channel();
    let mut backoff = FIRST_BACKOFF;
    let mut attempt = 0usize;
    while rotator.is_alive() {
        let client = target.subscriber(attempt);
        attempt += 1;
        let session = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            // Subscribed first, so nothing published during the reconcile is missed.
            reconcile(&shared, &mut con, &rotator).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        match tokio::time::timeout(shared.session_timeout(), session).await {
            Ok(Ok(mut pubsub)) => {
                shared.connected.store(true, Ordering::Release);
                shared.health.ok();
                {
                    let (flag, cv) = &shared.ready;
                    *flag.lock().unwrap_or_else(|e| e.into_inner()) = true;
                    cv.notify_all();
                }
                backoff = FIRST_BACKOFF;
                let mut messages = pubsub.on_message();
                while let Some(msg) = messages.next().await {
                    if let Ok(payload) = msg.get_payload::<String>() {
                        handle(&shared, &rotator, &payload);
                    }
                }
                shared.fail("subscription connection lost", StoreFault::Unreachable);
            }
            Ok(Err(error)) => shared.fail("cannot subscribe", fault::classify(&error, None)),
            Err(_) => shared.fail("cannot subscribe", StoreFault::Timeout),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Applies one published change of another process.
fn handle(shared: &Shared, rotator: &StoreLink, payload: &str) {
    let mut parts = payload.splitn(6, '\n');
    let (Some(origin), Some(fp), Some(value), Some(provider)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return;
    };
    let reason = parts.next().and_then(decode_reason);
    let model = parts.next();
    if origin == shared.origin {
        return;
    }
    let Ok(fp) = fp.parse::<Fingerprint>() else {
        return;
    };
    let change = if let Some(t) = parse_cooling(value) {
        shared.know(provider, fp, t);
        RemoteChange::Cooling { until: t, reason }
    } else if let Some(ms) = value.strip_prefix("r:").and_then(|ms| ms.parse().ok()) {
        RemoteChange::Reset {
            up_to: Timestamp::from_millis(ms),
        }
    } else if value == "d" {
        RemoteChange::Disabled { reason }
    } else if value == "e" {
        RemoteChange::Enabled
    } else if let (Some(ms), Some(Ok(model))) = (
        value.strip_prefix("m:").and_then(|ms| ms.parse().ok()),
        model.map(ModelName::new),
    ) {
        RemoteChange::ModelCooling {
            model,
            until: Timestamp::from_millis(ms),
            reason,
        }
    } else {
        return;
    };
    rotator.apply_remote(provider, fp, change);
}

/// A stored per-model rest (`<until-ms>:<reason JSON>` under `<fp>:<model>`), if readable.
fn parse_model_rest(field: &str, value: &str) -> Option<(Fingerprint, ModelCooldownStatus)> {
    let (fp, model) = field.split_once(':')?;
    let (until, reason) = value.split_once(':')?;
    Some((
        fp.parse().ok()?,
        ModelCooldownStatus {
            model: ModelName::new(model).ok()?,
            until: Timestamp::from_millis(until.parse().ok()?),
            reason: decode_reason(reason)
                .unwrap_or_else(|| CooldownReason::new("marked exhausted")),
        },
    ))
}

/// What the first reconcile reads for one provider: each configured credential's stored
/// state, reason, counters and per-model rests, for `load`.
fn loaded_records(
    provider: &Arc<str>,
    configured: &[&CredentialRecord],
    stored: &HashMap<String, String>,
    reasons: &HashMap<String, String>,
    counters: &HashMap<String, String>,
    rests: &[(Fingerprint, ModelCooldownStatus)],
) -> Vec<CredentialRecord> {
    configured
        .iter()
        .filter_map(|local| {
            let fp = local.credential.fingerprint;
            let fp_text = fp.to_string();
            let count = |what: &str| {
                counters
                    .get(&format!("{fp_text}:{what}"))
                    .and_then(|v| v.parse::<u64>().ok())
            };
            let models: Vec<ModelCooldownStatus> = rests
                .iter()
                .filter(|(f, _)| *f == fp)
                .map(|(_, m)| m.clone())
                .collect();
            let value = stored.get(&fp_text);
            if value.is_none() && models.is_empty() && count("used").is_none() {
                return None;
            }
            let state = match value.map(String::as_str) {
                Some("d") => CredentialState::Disabled,
                Some(v) => parse_cooling(v).map_or(CredentialState::Available, |until| {
                    CredentialState::Cooling { until }
                }),
                None => CredentialState::Available,
            };
            let mut record =
                CredentialRecord::new(Arc::clone(provider), local.credential.clone(), state);
            record.reason = reasons.get(&fp_text).and_then(|r| decode_reason(r));
            record.times_used = count("used").unwrap_or(0);
            record.times_exhausted = count("exhausted").unwrap_or(0);
            record.last_exhausted_at = count("last").map(Timestamp::from_millis);
            record.consecutive_failures =
                count("failures").map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX));
            record.model_cooldowns = models;
            Some(record)
        })
        .collect()
}

/// Makes the server and the local view agree, the longer cooldown winning both ways. The
/// first one (before `load` returns) also reads what a restart must find again.
async fn reconcile(shared: &Shared, con: &mut Con, rotator: &StoreLink) -> redis::RedisResult<()> {
    let first = !*shared.ready.0.lock().unwrap_or_else(|e| e.into_inner());
    let mut loaded = Vec::new();
    let records = rotator.records();
    let mut providers: Vec<Arc<str>> = records.iter().map(|r| Arc::clone(&r.provider)).collect();
    providers.dedup();
    // Providers whose data is unusable: they are skipped, the others still share.
    let mut broken: Vec<Arc<str>> = Vec::new();
    let mut partial = false;
    for provider in &providers {
        let read = async {
            let stored: HashMap<String, String> = redis::cmd("HGETALL")
                .arg(shared.key(provider))
                .query_async(con)
                .await?;
            let reasons: HashMap<String, String> = redis::cmd("HGETALL")
                .arg(shared.reasons_key(provider))
                .query_async(con)
                .await?;
            let models: HashMap<String, String> = redis::cmd("HGETALL")
                .arg(shared.models_key(provider))
                .query_async(con)
                .await?;
            let counters: HashMap<String, String> = match first {
                true => {
                    redis::cmd("HGETALL")
                        .arg(shared.counters_key(provider))
                        .query_async(con)
                        .await?
                }
                false => HashMap::new(),
            };
            Ok::<_, redis::RedisError>((stored, reasons, models, counters))
        };
        let (stored, reasons, models, counters) = match read.await {
            Ok(read) => read,
            Err(error) => match fault::classify(&error, Some(provider)) {
                fault if fault.is_partial() => {
                    shared.fail("cannot read a provider's state", fault);
                    partial = true;
                    broken.push(Arc::clone(provider));
                    continue;
                }
                _ => return Err(error),
            },
        };
        let now = rotator.now().unwrap_or(Timestamp::UNIX_EPOCH);
        // Ended rests are dropped here; the next `MARK_MODEL` deletes them on the server.
        let rests: Vec<(Fingerprint, ModelCooldownStatus)> = models
            .iter()
            .filter_map(|(field, value)| parse_model_rest(field, value))
            .filter(|(_, m)| m.until > now)
            .collect();
        if first {
            let configured: Vec<&CredentialRecord> =
                records.iter().filter(|r| r.provider == *provider).collect();
            loaded.extend(loaded_records(
                provider,
                &configured,
                &stored,
                &reasons,
                &counters,
                &rests,
            ));
        }
        for (fp, m) in rests {
            rotator.apply_remote(
                provider,
                fp,
                RemoteChange::ModelCooling {
                    model: m.model,
                    until: m.until,
                    reason: Some(m.reason),
                },
            );
        }
        for (fp_text, value) in &stored {
            let Ok(fp) = fp_text.parse::<Fingerprint>() else {
                continue;
            };
            let reason = reasons
                .get(fp_text)
                .map(String::as_str)
                .and_then(decode_reason);
            if let Some(t) = parse_cooling(value) {
                shared.know(provider, fp, t);
                rotator.apply_remote(provider, fp, RemoteChange::Cooling { until: t, reason });
            } else if value == "d" {
                rotator.apply_remote(provider, fp, RemoteChange::Disabled { reason });
            }
        }
    }
    let channel = shared.channel();
    let now = rotator.now().unwrap_or(Timestamp::UNIX_EPOCH);
    for r in records {
        if broken.contains(&r.provider) {
            continue;
        }
        for m in &r.model_cooldowns {
            if let Err(error) = writer::mark_model(shared, con, &r, m, now).await {
                match fault::classify(&error, Some(&r.provider)) {
                    fault if fault.is_partial() => {
                        shared.fail("cannot write a provider's state", fault);
                        partial = true;
                    }
                    _ => return Err(error),
                }
            }
        }
        let (script, value) = match r.state {
            CredentialState::Cooling { until } => (&*scripts::MARK, until.as_millis().to_string()),
            CredentialState::Disabled => (&*scripts::DISABLE, "d".to_owned()),
            _ => continue,
        };
        let written: redis::RedisResult<redis::Value> = script
            .key(shared.key(&r.provider))
            .key(shared.reasons_key(&r.provider))
            .arg(r.credential.fingerprint.to_string())
            .arg(value)
            .arg(&channel)
            .arg(&shared.origin)
            .arg(&*r.provider)
            .arg(encode_reason(r.reason.as_ref()))
            .invoke_async(con)
            .await;
        if let Err(error) = written {
            match fault::classify(&error, Some(&r.provider)) {
                fault if fault.is_partial() => {
                    shared.fail("cannot write a provider's state", fault);
                    partial = true;
                }
                _ => return Err(error),
            }
        }
    }
    if first {
        *shared.loaded.lock().unwrap_or_else(|e| e.into_inner()) = Some(loaded);
    }
    if !partial {
        shared.health.clean();
    }
    Ok(())
}
