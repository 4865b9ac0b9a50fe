//! The Redis store for fleets: shared cooldowns, pushed between processes.
//!
//! # Runtime
//! The store runs its own one-thread tokio runtime on a dedicated thread
//! (`ai-key-rotator-redis`). That keeps the core free of any runtime requirement (callers need
//! not be async, and a busy caller runtime never delays propagation), at the cost of one
//! thread per store.
//!
//! # Flow
//! - A local change is enqueued by [`StateStore::record`] (no I/O); the writer task runs a Lua
//!   script (`scripts.rs`) that applies it on the server atomically (the longer cooldown wins)
//!   and publishes it. When the server answers with a longer cooldown than ours, the local view
//!   takes it.
//! - A subscriber task on its own connection receives the other processes' changes and applies
//!   them to the local view at once ([`StoreLink::apply_remote`]); `get_key` only ever reads
//!   the local view.
//! - When Redis goes away, the rotator keeps serving from its local view; the store logs the
//!   outage, counts it ([`RedisStore::outages`]), retries with backoff (queued changes are
//!   replayed in order), and on reconnecting reconciles: it applies the server's cooldowns
//!   locally and writes the local ones to the server, the longer winning both ways. A reset
//!   made during an outage loses against a longer cooldown still on the server.

mod scripts;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use tokio::sync::mpsc;

use super::sealed::Backend;
use super::{RemoteChange, StoreError, StoreLink, StoredState};
use crate::clock::Timestamp;
use crate::events::Event;
use crate::identity::Fingerprint;
use crate::status::{CooldownReason, CredentialState};

const MAX_BACKOFF: Duration = Duration::from_secs(2);
const FIRST_BACKOFF: Duration = Duration::from_millis(20);

/// Configures a [`RedisStore`]; see [`RedisStore::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct RedisStoreBuilder {
    url: String,
    prefix: String,
    timeout: Duration,
}

impl RedisStoreBuilder {
    /// The namespace of every Redis key and channel the store uses (`akr` by default), so
    /// several fleets can share one server.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long connecting, one command, and the first load may take (2 s by default).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The store. It connects when the rotator is built with it.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the URL is invalid.
    pub fn build(self) -> Result<RedisStore, StoreError> {
        let client =
            redis::Client::open(self.url.as_str()).map_err(|e| StoreError::Backend(Box::new(e)))?;
        let (sender, receiver) = mpsc::unbounded_channel();
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
                timeout: self.timeout,
                outages: AtomicU64::new(0),
                connected: AtomicBool::new(false),
                ready: (Mutex::new(false), Condvar::new()),
                known: Mutex::new(HashMap::new()),
            }),
            client,
            sender: Some(sender),
            receiver: Mutex::new(Some(receiver)),
            thread: Mutex::new(None),
        })
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
    client: redis::Client,
    /// `None` once dropping, which ends the writer task.
    sender: Option<mpsc::UnboundedSender<Cmd>>,
    receiver: Mutex<Option<mpsc::UnboundedReceiver<Cmd>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Debug)]
enum Cmd {
    Change(Event),
    Flush(std::sync::mpsc::SyncSender<()>),
}

#[derive(Debug)]
struct Shared {
    prefix: String,
    /// This store's id in published messages, to skip its own.
    origin: String,
    timeout: Duration,
    outages: AtomicU64,
    connected: AtomicBool,
    /// Set after the first reconcile, which `load` waits for.
    ready: (Mutex<bool>, Condvar),
    /// The latest cooldown end known here per credential: what a reset covers.
    known: Mutex<HashMap<(Arc<str>, Fingerprint), Timestamp>>,
}

impl Shared {
    fn key(&self, provider: &str) -> String {
        format!("{{{}:{}}}:cooldowns", self.prefix, provider)
    }

    /// The hash of reasons, in the same hash slot as the cooldowns.
    fn reasons_key(&self, provider: &str) -> String {
        format!("{{{}:{}}}:reasons", self.prefix, provider)
    }

    fn channel(&self) -> String {
        format!("{}:changes", self.prefix)
    }

    fn lost(&self, what: &str, error: &dyn std::fmt::Display) {
        if self.connected.swap(false, Ordering::AcqRel) {
            self.outages.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%error, "redis store: {what}; serving from the local view until it returns");
        } else {
            tracing::debug!(%error, "redis store: {what}");
        }
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
    /// A builder for a store on the server at `url` (`redis://host:port/db`).
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder {
            url: url.into(),
            prefix: "akr".into(),
            timeout: Duration::from_secs(2),
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
}

impl Backend for RedisStore {
    fn attach(&self, rotator: StoreLink) {
        let Some(receiver) = self
            .receiver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
        let shared = Arc::clone(&self.shared);
        let client = self.client.clone();
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
                runtime.block_on(run(shared, client, rotator, receiver));
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
            .wait_timeout_while(guard, self.shared.timeout, |ready| !*ready)
            .unwrap_or_else(|e| e.into_inner());
        if *guard {
            Ok(None)
        } else {
            Err(StoreError::Backend(
                "redis unreachable at start; serving from the local view and reconciling when it returns"
                    .into(),
            ))
        }
    }

    fn record(&self, change: &Event) {
        if super::changes_state(change)
            && let Some(sender) = &self.sender
        {
            let _ = sender.send(Cmd::Change(change.clone()));
        }
    }

    fn flush(&self) {
        let Some(sender) = &self.sender else { return };
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        if sender.send(Cmd::Flush(tx)).is_ok() {
            // While Redis is away the writer retries; do not wait for it longer than a command.
            let _ = rx.recv_timeout(self.shared.timeout * 2);
        }
    }
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        // Closing the channel ends the writer task, and with it the runtime and its thread.
        self.sender = None;
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

async fn run(
    shared: Arc<Shared>,
    client: redis::Client,
    rotator: StoreLink,
    mut receiver: mpsc::UnboundedReceiver<Cmd>,
) {
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(shared.timeout))
        .set_response_timeout(Some(shared.timeout))
        .set_number_of_retries(1)
        .set_max_delay(MAX_BACKOFF);
    let mut backoff = FIRST_BACKOFF;
    let manager = loop {
        match client
            .get_connection_manager_with_config(config.clone())
            .await
        {
            Ok(m) => break m,
            Err(error) => {
                shared.lost("cannot connect", &error);
                // Let `load` give up early instead of waiting out its timeout.
                if !rotator.is_alive() {
                    return;
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    cmd = receiver.recv() => match cmd {
                        // Changes made before the first connection are covered by the first
                        // reconcile, which writes the whole local view.
                        Some(Cmd::Flush(tx)) => { let _ = tx.send(()); }
                        Some(Cmd::Change(_)) => {}
                        None => return,
                    },
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    };
    let subscriber = tokio::spawn(subscribe(
        Arc::clone(&shared),
        client,
        manager.clone(),
        rotator.clone(),
    ));
    let mut con = manager;
    let mut batch = Vec::new();
    while receiver.recv_many(&mut batch, 1024).await > 0 {
        let mut flushes = Vec::new();
        let mut changes = Vec::new();
        for cmd in batch.drain(..) {
            match cmd {
                Cmd::Flush(tx) => flushes.push(tx),
                Cmd::Change(event) => changes.push(event),
            }
        }
        for event in coalesce(changes) {
            let mut backoff = FIRST_BACKOFF;
            // Retry until it is written: what queues meanwhile is replayed in order, and
            // every script keeps the longer cooldown, so nothing is lost or shortened.
            while let Err(error) = write(&shared, &mut con, &rotator, &event).await {
                shared.lost("write failed", &error);
                if !rotator.is_alive() {
                    break;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
        for tx in flushes {
            let _ = tx.send(());
        }
    }
    subscriber.abort();
}

/// Folds a burst of changes: successive extensions of one credential's cooldown (with no reset
/// between them) become one write of the latest end, so a backlog never grows with the mark
/// rate.
fn coalesce(changes: Vec<Event>) -> Vec<Event> {
    let mut out: Vec<Event> = Vec::with_capacity(changes.len());
    let mut pending: HashMap<(Arc<str>, Fingerprint), usize> = HashMap::new();
    for event in changes {
        match &event {
            Event::Exhausted {
                provider,
                credential,
                until,
                ..
            } => {
                let key = (Arc::clone(provider), credential.fingerprint);
                if let Some(&i) = pending.get(&key)
                    && let Event::Exhausted { until: earlier, .. } = &mut out[i]
                {
                    *earlier = (*earlier).max(*until);
                    continue;
                }
                pending.insert(key, out.len());
            }
            Event::Reset {
                provider,
                credentials,
            } => {
                for c in credentials {
                    pending.remove(&(Arc::clone(provider), c.fingerprint));
                }
            }
            _ => {}
        }
        out.push(event);
    }
    out
}

async fn write(
    shared: &Shared,
    con: &mut ConnectionManager,
    rotator: &StoreLink,
    event: &Event,
) -> redis::RedisResult<()> {
    let channel = shared.channel();
    match event {
        Event::Exhausted {
            provider,
            credential,
            until,
            reason,
        } => {
            let fp = credential.fingerprint;
            shared.know(provider, fp, *until);
            let (stored, why): (String, String) = scripts::MARK
                .key(shared.key(provider))
                .key(shared.reasons_key(provider))
                .arg(fp.to_string())
                .arg(until.as_millis())
                .arg(&channel)
                .arg(&shared.origin)
                .arg(&**provider)
                .arg(encode_reason(Some(reason)))
                .invoke_async(con)
                .await?;
            // Another process may have set a longer one: agree on it, and on why.
            if let Some(t) = parse_cooling(&stored)
                && t > *until
            {
                shared.know(provider, fp, t);
                let reason = decode_reason(&why);
                rotator.apply_remote(provider, fp, RemoteChange::Cooling { until: t, reason });
            }
        }
        Event::ScopeExhausted {
            provider,
            credentials,
            until,
            reason,
            ..
        } => {
            // One cooldown per member, each agreed with the server like a single mark.
            for c in credentials {
                let single = Event::Exhausted {
                    provider: Arc::clone(provider),
                    credential: c.clone(),
                    until: *until,
                    reason: reason.clone(),
                };
                Box::pin(write(shared, con, rotator, &single)).await?;
            }
        }
        Event::Disabled {
            provider,
            credential,
            ..
        }
        | Event::Enabled {
            provider,
            credential,
        } => {
            let (flag, why) = match event {
                Event::Disabled { reason, .. } => (
                    "d",
                    encode_reason(Some(&CooldownReason::new(reason.clone()))),
                ),
                _ => ("e", String::new()),
            };
            let _: i64 = scripts::DISABLE
                .key(shared.key(provider))
                .key(shared.reasons_key(provider))
                .arg(credential.fingerprint.to_string())
                .arg(flag)
                .arg(&channel)
                .arg(&shared.origin)
                .arg(&**provider)
                .arg(why)
                .invoke_async(con)
                .await?;
        }
        Event::Reset {
            provider,
            credentials,
        } => {
            let now = rotator.now().unwrap_or(Timestamp::UNIX_EPOCH);
            for c in credentials {
                let fp = c.fingerprint;
                let up_to = shared.known(provider, fp).unwrap_or(now).max(now);
                let _: i64 = scripts::RESET
                    .key(shared.key(provider))
                    .key(shared.reasons_key(provider))
                    .arg(fp.to_string())
                    .arg(up_to.as_millis())
                    .arg(&channel)
                    .arg(&shared.origin)
                    .arg(&**provider)
                    .invoke_async(con)
                    .await?;
            }
        }
        _ => {}
    }
    Ok(())
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
async fn subscribe(
    shared: Arc<Shared>,
    client: redis::Client,
    mut con: ConnectionManager,
    rotator: StoreLink,
) {
    let channel = shared.channel();
    let mut backoff = FIRST_BACKOFF;
    while rotator.is_alive() {
        let session = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            // Subscribed first, so nothing published during the reconcile is missed.
            reconcile(&shared, &mut con, &rotator).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        match tokio::time::timeout(shared.timeout, session).await {
            Ok(Ok(mut pubsub)) => {
                if !shared.connected.swap(true, Ordering::AcqRel)
                    && shared.outages.load(Ordering::Relaxed) > 0
                {
                    tracing::info!("redis store: reconnected and reconciled");
                }
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
                shared.lost("subscription connection lost", &"closed");
            }
            Ok(Err(error)) => shared.lost("cannot subscribe", &error),
            Err(_) => shared.lost("cannot subscribe", &"timed out"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Applies one published change of another process.
fn handle(shared: &Shared, rotator: &StoreLink, payload: &str) {
    let mut parts = payload.splitn(5, '\n');
    let (Some(origin), Some(fp), Some(value), Some(provider)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return;
    };
    let reason = parts.next().and_then(decode_reason);
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
    } else {
        return;
    };
    rotator.apply_remote(provider, fp, change);
}

/// Makes the server and the local view agree, the longer cooldown winning both ways.
async fn reconcile(
    shared: &Shared,
    con: &mut ConnectionManager,
    rotator: &StoreLink,
) -> redis::RedisResult<()> {
    let records = rotator.records();
    let mut providers: Vec<Arc<str>> = records.iter().map(|r| Arc::clone(&r.provider)).collect();
    providers.dedup();
    for provider in &providers {
        let stored: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(shared.key(provider))
            .query_async(con)
            .await?;
        let mut reasons: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(shared.reasons_key(provider))
            .query_async(con)
            .await?;
        for (fp_text, value) in &stored {
            let Ok(fp) = fp_text.parse::<Fingerprint>() else {
                continue;
            };
            let reason = reasons.remove(fp_text).as_deref().and_then(decode_reason);
            if let Some(t) = parse_cooling(value) {
                shared.know(provider, fp, t);
                rotator.apply_remote(provider, fp, RemoteChange::Cooling { until: t, reason });
            } else if value == "d" {
                rotator.apply_remote(provider, fp, RemoteChange::Disabled { reason });
            }
        }
    }
    let channel = shared.channel();
    for r in records {
        let (script, value) = match r.state {
            CredentialState::Cooling { until } => (&*scripts::MARK, until.as_millis().to_string()),
            CredentialState::Disabled => (&*scripts::DISABLE, "d".to_owned()),
            _ => continue,
        };
        let _: redis::Value = script
            .key(shared.key(&r.provider))
            .key(shared.reasons_key(&r.provider))
            .arg(r.credential.fingerprint.to_string())
            .arg(value)
            .arg(&channel)
            .arg(&shared.origin)
            .arg(&*r.provider)
            .arg(encode_reason(r.reason.as_ref()))
            .invoke_async(con)
            .await?;
    }
    Ok(())
}
