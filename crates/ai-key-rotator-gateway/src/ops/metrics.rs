//! Prometheus metrics, in a registry owned by the gateway (not a process-global recorder), so
//! that tests running several gateways in one process each see their own numbers.
//!
//! No label ever carries a key: providers are named by their configured name, credentials
//! only appear in `/status`, by label and fingerprint.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use ai_key_rotator::classify::Verdict;
use ai_key_rotator::{Fingerprint, KeyRotator, RotatorStatus, StoreHealth};

use super::stats::{CLASSES, KeyTable, TOKENS_IN, TOKENS_OUT, Window, now_ms};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabels {
    provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    provider: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailoverLabels {
    from: String,
    to: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyLabels {
    provider: String,
    /// The key's label, or its fingerprint: bounded by the configuration.
    key: String,
    fingerprint: String,
    class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    provider: String,
    /// The key's label, or its fingerprint: bounded by the configuration.
    key: String,
    fingerprint: String,
    /// `in` (the prompt) or `out` (the completion).
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BudgetLabels {
    provider: String,
    /// `keys` (every key's own budget, summed) or `scope:<name>`: bounded by configuration.
    budget: String,
    /// The budget field (`requests_per_minute`, …, `max_in_flight`).
    limit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlertLabels {
    /// `sent`, `failed` (every try refused or unanswered) or `dropped` (a full queue).
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreLabels {
    /// `degraded` (part of the data unusable) or `failing` (no reads or writes).
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CooldownLabels {
    provider: String,
    reason: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.25 ms to about 4 min.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 20))
}

/// One provider's per-request metrics, resolved ahead of time. Cloned handles share their
/// values with the registry's families.
#[derive(Debug)]
pub(crate) struct ProviderMetrics {
    name: String,
    metrics: Metrics,
    requests: StatusCounters,
    upstream: StatusCounters,
    duration: Histogram,
    upstream_duration: Histogram,
    /// The last minute and today, for the dashboard.
    window: Arc<Window>,
}

/// A counter per HTTP status, each created in its family on first use.
#[derive(Debug)]
struct StatusCounters(Box<[OnceLock<Counter>]>);

impl StatusCounters {
    fn new() -> Self {
        StatusCounters((100..600).map(|_| OnceLock::new()).collect())
    }

    fn inc(&self, family: &Family<StatusLabels, Counter>, provider: &str, status: u16) {
        let make = || {
            family
                .get_or_create(&StatusLabels {
                    provider: provider.to_owned(),
                    status,
                })
                .clone()
        };
        match self.0.get(usize::from(status).wrapping_sub(100)) {
            Some(slot) => slot.get_or_init(make).inc(),
            // Not an HTTP status a response can carry; counted the slow way.
            None => make().inc(),
        };
    }
}

impl ProviderMetrics {
    /// A request answered with `status` after `elapsed`.
    pub(crate) fn request(&self, status: u16, elapsed: Duration) {
        self.requests
            .inc(&self.metrics.inner.requests, &self.name, status);
        self.duration.observe(elapsed.as_secs_f64());
        self.window.record(status, now_ms());
    }

    /// An upstream answer (or 502/504 for none).
    pub(crate) fn upstream_status(&self, status: u16) {
        self.upstream
            .inc(&self.metrics.inner.upstream, &self.name, status);
    }

    /// Time from sending upstream to its response headers.
    pub(crate) fn upstream_latency(&self, elapsed: Duration) {
        self.upstream_duration.observe(elapsed.as_secs_f64());
    }
}

/// The gateway's metrics. Cloning shares them.
#[derive(Clone, Debug)]
pub(crate) struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    requests: Family<StatusLabels, Counter>,
    upstream: Family<StatusLabels, Counter>,
    retries: Family<ProviderLabels, Counter>,
    failovers: Family<FailoverLabels, Counter>,
    cooldowns: Family<CooldownLabels, Counter>,
    stream_errors: Family<ProviderLabels, Counter>,
    keys_available: Family<ProviderLabels, Gauge>,
    keys_total: Family<ProviderLabels, Gauge>,
    affinity_placed: Family<ProviderLabels, Gauge>,
    duration: HistogramFamily<ProviderLabels>,
    upstream_duration: HistogramFamily<ProviderLabels>,
    key_answers: Family<KeyLabels, Gauge>,
    store_up: Gauge,
    store_errors: Family<StoreLabels, Counter>,
    /// The store's health at the last scrape, to count its failures between scrapes.
    store_seen: Mutex<Option<(&'static str, u64)>>,
    /// Each provider's window, by name: kept across reloads, which make new handles.
    windows: Mutex<HashMap<String, Arc<Window>>>,
    keys: KeyTable,
    /// Today's per-key counts, kept in the state store.
    usage: crate::usage::Usage,
    key_answers_today: Family<KeyLabels, Gauge>,
    key_tokens: Family<TokenLabels, Counter>,
    key_tokens_today: Family<TokenLabels, Gauge>,
    budget_used: Family<BudgetLabels, Gauge>,
    budget_limit: Family<BudgetLabels, Gauge>,
    alerts: Family<AlertLabels, Counter>,
    /// The last `/dashboard.json` document and when it was built (Unix ms): every open
    /// dashboard polls, and they share one build per second.
    dashboard: Mutex<Option<(u64, bytes::Bytes)>>,
    /// A build of the next document is under way: other polls take the previous one meanwhile
    /// instead of waiting (and holding a runtime worker) for it.
    dashboard_building: std::sync::atomic::AtomicBool,
}

fn provider(p: &str) -> ProviderLabels {
    ProviderLabels {
        provider: p.to_owned(),
    }
}

impl Metrics {
    /// Metrics whose per-key usage statistics go to `usage`.
    pub(crate) fn with_usage(usage: crate::usage::Usage) -> Self {
        let mut registry = Registry::with_prefix("akr_gateway");
        let requests = Family::<StatusLabels, Counter>::default();
        let upstream = Family::<StatusLabels, Counter>::default();
        let retries = Family::<ProviderLabels, Counter>::default();
        let failovers = Family::<FailoverLabels, Counter>::default();
        let cooldowns = Family::<CooldownLabels, Counter>::default();
        let stream_errors = Family::<ProviderLabels, Counter>::default();
        let keys_available = Family::<ProviderLabels, Gauge>::default();
        let keys_total = Family::<ProviderLabels, Gauge>::default();
        let duration: HistogramFamily<ProviderLabels> =
            Family::new_with_constructor(latency_histogram);
        let upstream_duration: HistogramFamily<ProviderLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "requests",
            "Requests answered, by provider and status sent to the client",
            requests.clone(),
        );
        registry.register(
            "upstream_responses",
            "Upstream responses, by provider and status (502/504: no response)",
            upstream.clone(),
        );
        registry.register(
            "retries",
            "Upstream attempts after the first, within one request",
            retries.clone(),
        );
        registry.register(
            "failovers",
            "Requests that moved on to a fallback provider",
            failovers.clone(),
        );
        registry.register(
            "cooldowns",
            "Keys cooled or disabled because a response blamed them",
            cooldowns.clone(),
        );
        registry.register(
            "stream_errors",
            "Error events seen inside streams that began with a 2xx",
            stream_errors.clone(),
        );
        registry.register(
            "keys_available",
            "Keys available now, per provider",
            keys_available.clone(),
        );
        registry.register("keys", "Keys configured, per provider", keys_total.clone());
        let affinity_placed = Family::<ProviderLabels, Gauge>::default();
        registry.register(
            "affinity_placed",
            "Requests placed on their key by prompt-cache affinity since start, per provider \
             (read from the rotator's status)",
            affinity_placed.clone(),
        );
        let key_answers = Family::<KeyLabels, Gauge>::default();
        registry.register(
            "key_answers",
            "Upstream answers per key since start, by class of verdict (ok, rate_limited, \
             quota_exhausted, invalid_key, overloaded, server_error, client_error)",
            key_answers.clone(),
        );
        let key_answers_today = Family::<KeyLabels, Gauge>::default();
        registry.register(
            "key_answers_today",
            "Upstream answers per key today (in the provider's day), by class, as kept in the \
             state store (with a shared store: every gateway's)",
            key_answers_today.clone(),
        );
        let key_tokens = Family::<TokenLabels, Counter>::default();
        registry.register(
            "key_tokens",
            "Tokens per key since start, by direction (in: prompt, out: completion), as the \
             providers' usage reports said",
            key_tokens.clone(),
        );
        let key_tokens_today = Family::<TokenLabels, Gauge>::default();
        registry.register(
            "key_tokens_today",
            "Tokens per key today (in the provider's day), by direction, as kept in the state \
             store (with a shared store: every gateway's)",
            key_tokens_today.clone(),
        );
        let budget_used = Family::<BudgetLabels, Gauge>::default();
        registry.register(
            "budget_used",
            "Client-side budget use now, per provider, budget (keys summed, or scope:<name>) \
             and limit; per-minute limits drain continuously",
            budget_used.clone(),
        );
        let budget_limit = Family::<BudgetLabels, Gauge>::default();
        registry.register(
            "budget_limit",
            "Client-side budget limits, per provider, budget and limit (keys: summed over keys)",
            budget_limit.clone(),
        );
        let alerts = Family::<AlertLabels, Counter>::default();
        registry.register(
            "alerts",
            "Webhook alerts, by outcome (sent, failed, dropped from a full queue)",
            alerts.clone(),
        );
        let store_up = Gauge::default();
        registry.register(
            "store_up",
            "1 when the state store reads and writes (or there is none), 0 when it is degraded \
             or failing",
            store_up.clone(),
        );
        let store_errors = Family::<StoreLabels, Counter>::default();
        registry.register(
            "store_errors",
            "State store failures seen, by state (degraded: part of the data, failing: all)",
            store_errors.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from request to response headers, as the client sees it",
            duration.clone(),
        );
        registry.register(
            "upstream_duration_seconds",
            "Time from sending upstream to its response headers, per attempt",
            upstream_duration.clone(),
        );
        Metrics {
            inner: Arc::new(Inner {
                registry,
                requests,
                upstream,
                retries,
                failovers,
                cooldowns,
                stream_errors,
                keys_available,
                keys_total,
                affinity_placed,
                duration,
                upstream_duration,
                key_answers,
                store_up,
                store_errors,
                store_seen: Mutex::new(None),
                windows: Mutex::new(HashMap::new()),
                keys: KeyTable::default(),
                usage,
                key_answers_today,
                key_tokens,
                key_tokens_today,
                budget_used,
                budget_limit,
                alerts,
                dashboard: Mutex::new(None),
                dashboard_building: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// `p`'s window of the last minute and today.
    pub(crate) fn window(&self, p: &str) -> Arc<Window> {
        let mut w = self.inner.windows.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(w.entry(p.to_owned()).or_default())
    }

    /// Counts an upstream answer's verdict against its key.
    pub(crate) fn verdict(&self, p: &str, fingerprint: Fingerprint, verdict: &Verdict) {
        self.inner.keys.record(p, fingerprint, verdict);
    }

    /// Counts the tokens of one answer against its key (see [`KeyTable::record_tokens`]).
    pub(crate) fn tokens(
        &self,
        p: &str,
        fingerprint: Fingerprint,
        tokens_in: u64,
        tokens_out: u64,
    ) {
        self.inner
            .keys
            .record_tokens(p, fingerprint, tokens_in, tokens_out);
    }

    /// A key's answers by class since start, and its last verdict.
    pub(crate) fn key_counts(
        &self,
        p: &str,
        fingerprint: Fingerprint,
    ) -> super::stats::KeyCountsView {
        self.inner.keys.get(p, fingerprint)
    }

    /// The dashboard document to answer with, if there is one: the cached one when it is
    /// under a second old, or, while another poll builds the next one, the previous one.
    /// `None` tells the caller to build it and hand it to [`dashboard_built`](Self::dashboard_built)
    /// (through a [`DashboardBuild`] guard, so that a failed build lets the next poll try).
    pub(crate) fn dashboard_cached(&self) -> Option<bytes::Bytes> {
        use std::sync::atomic::Ordering;
        let now = now_ms();
        let cached = self
            .inner
            .dashboard
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match &*cached {
            Some((at, body)) if now.saturating_sub(*at) < 1000 => Some(body.clone()),
            Some((_, body)) if self.inner.dashboard_building.swap(true, Ordering::AcqRel) => {
                Some(body.clone())
            }
            _ => {
                self.inner.dashboard_building.store(true, Ordering::Release);
                None
            }
        }
    }

    /// Keeps a newly built dashboard document for the next second's polls.
    pub(crate) fn dashboard_built(&self, body: bytes::Bytes) {
        *self
            .inner
            .dashboard
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some((now_ms(), body));
    }

    /// Counts a webhook alert's outcome.
    pub(crate) fn alert(&self, outcome: &'static str) {
        self.inner
            .alerts
            .get_or_create(&AlertLabels { outcome })
            .inc();
    }

    /// `p`'s usage today (in its provider day): each key's answers by class and tokens, the
    /// core's totals plus what is not handed over yet.
    pub(crate) fn usage_today(&self, rotator: &KeyRotator, p: &str) -> Option<crate::usage::Today> {
        self.inner.usage.today(&self.inner.keys, rotator, p)
    }

    /// Hands what is new in the per-key counts to the core's usage ledger, which its state
    /// store writes. In memory only: never blocks.
    pub(crate) fn sync_usage(&self, rotator: &KeyRotator) {
        self.inner.usage.sync(&self.inner.keys, rotator);
    }

    /// Reads the store's health into `store_up` and `store_errors`. The store counts failures
    /// since its health last changed; the counter adds what is new since the last scrape.
    fn observe_store(&self, health: &StoreHealth) {
        let (state, count) = match health {
            StoreHealth::Degraded { count, .. } => (Some("degraded"), *count),
            StoreHealth::Failing { count, .. } => (Some("failing"), *count),
            _ => (None, 0),
        };
        self.inner.store_up.set(i64::from(state.is_none()));
        let mut seen = self
            .inner
            .store_seen
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(state) = state {
            let new = match *seen {
                Some((s, before)) if s == state && count >= before => count - before,
                _ => count,
            };
            self.inner
                .store_errors
                .get_or_create(&StoreLabels { state })
                .inc_by(new);
            *seen = Some((state, count));
        } else {
            *seen = None;
        }
    }

    /// The handles of `p`'s per-request metrics, looked up once (per configuration) instead
    /// of on every request: a family lookup hashes an allocated label set under a lock.
    pub(crate) fn provider(&self, p: &str) -> ProviderMetrics {
        ProviderMetrics {
            name: p.to_owned(),
            metrics: self.clone(),
            requests: StatusCounters::new(),
            upstream: StatusCounters::new(),
            duration: self.inner.duration.get_or_create(&provider(p)).clone(),
            upstream_duration: self
                .inner
                .upstream_duration
                .get_or_create(&provider(p))
                .clone(),
            window: self.window(p),
        }
    }

    pub(crate) fn retry(&self, p: &str) {
        self.inner.retries.get_or_create(&provider(p)).inc();
    }

    pub(crate) fn failover(&self, from: &str, to: &str) {
        self.inner
            .failovers
            .get_or_create(&FailoverLabels {
                from: from.to_owned(),
                to: to.to_owned(),
            })
            .inc();
    }

    pub(crate) fn cooldown(&self, p: &str, reason: &str) {
        self.inner
            .cooldowns
            .get_or_create(&CooldownLabels {
                provider: p.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    pub(crate) fn stream_error(&self, p: &str) {
        self.inner.stream_errors.get_or_create(&provider(p)).inc();
    }

    /// Sets the budget gauges from `rows`.
    pub(crate) fn observe_budgets(&self, p: &str, rows: &[super::budgets::BudgetRow<u64>]) {
        for r in rows {
            let l = BudgetLabels {
                provider: p.to_owned(),
                budget: r.budget.clone(),
                limit: r.kind,
            };
            self.inner
                .budget_used
                .get_or_create(&l)
                .set(i64::try_from(r.used).unwrap_or(i64::MAX));
            self.inner
                .budget_limit
                .get_or_create(&l)
                .set(i64::try_from(r.limit).unwrap_or(i64::MAX));
        }
    }

    /// The text exposition, with the key gauges read from `status`, the usage from
    /// `rotator` and the store's health first.
    pub(crate) fn render(
        &self,
        status: &RotatorStatus,
        store: &StoreHealth,
        rotator: &KeyRotator,
    ) -> String {
        self.observe_store(store);
        for p in &status.providers {
            let usage = self.usage_today(rotator, &p.name).unwrap_or_default();
            let l = provider(&p.name);
            self.inner
                .keys_available
                .get_or_create(&l)
                .set(p.available as i64);
            self.inner.keys_total.get_or_create(&l).set(p.total as i64);
            self.inner
                .affinity_placed
                .get_or_create(&l)
                .set(i64::try_from(p.affinity_placed).unwrap_or(i64::MAX));
            // Per configured key only (bounded), and only classes it has seen.
            for c in &p.credentials {
                let today = usage.of(c.id.fingerprint);
                for (i, n) in today[..CLASSES.len()]
                    .iter()
                    .enumerate()
                    .filter(|(_, n)| **n > 0)
                {
                    let (key, fingerprint) = key_labels(&c.id);
                    self.inner
                        .key_answers_today
                        .get_or_create(&KeyLabels {
                            provider: p.name.clone(),
                            key,
                            fingerprint,
                            class: CLASSES[i],
                        })
                        .set(*n as i64);
                }
                let counts = self.inner.keys.get(&p.name, c.id.fingerprint);
                let tokens = [
                    ("in", counts.tokens_in, today[TOKENS_IN]),
                    ("out", counts.tokens_out, today[TOKENS_OUT]),
                ];
                for (direction, since_start, today) in tokens {
                    if since_start == 0 && today == 0 {
                        continue;
                    }
                    let (key, fingerprint) = key_labels(&c.id);
                    let labels = TokenLabels {
                        provider: p.name.clone(),
                        key,
                        fingerprint,
                        direction,
                    };
                    // The counter follows the key's own (monotonic) count since start.
                    let counter = self.inner.key_tokens.get_or_create(&labels);
                    counter.inc_by(since_start.saturating_sub(counter.get()));
                    self.inner
                        .key_tokens_today
                        .get_or_create(&labels)
                        .set(today as i64);
                }
                for (i, n) in counts.by_class.iter().enumerate().filter(|(_, n)| **n > 0) {
                    let (key, fingerprint) = key_labels(&c.id);
                    self.inner
                        .key_answers
                        .get_or_create(&KeyLabels {
                            provider: p.name.clone(),
                            key,
                            fingerprint,
                            class: CLASSES[i],
                        })
                        .set(*n as i64);
                }
            }
        }
        let mut out = String::new();
        // Writing into a `String` cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.inner.registry);
        out
    }
}

/// A key's `key` and `fingerprint` labels: its label (its fingerprint when it has none) and its
/// fingerprint; never the key itself.
fn key_labels(id: &ai_key_rotator::CredentialId) -> (String, String) {
    let fingerprint = id.fingerprint.to_string();
    let key = id
        .label
        .as_deref()
        .map_or_else(|| fingerprint.clone(), str::to_owned);
    (key, fingerprint)
}

/// Marks a dashboard build as under way for as long as it lives; dropping it (after the build,
/// or when the build panicked) lets the next stale poll start another.
#[derive(Debug)]
pub(crate) struct DashboardBuild<'a>(pub(crate) &'a Metrics);

impl Drop for DashboardBuild<'_> {
    fn drop(&mut self) {
        self.0
            .inner
            .dashboard_building
            .store(false, std::sync::atomic::Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ai_key_rotator::{CredentialConfig, KeyRotator, ProviderConfig};

    #[test]
    fn tokens_reach_the_metrics_and_today_by_key_label() {
        let rotator = KeyRotator::builder()
            .provider(
                "openai",
                ProviderConfig::new()
                    .credential(CredentialConfig::new("sk-canary-tokens-1").label("work")),
            )
            .build()
            .unwrap();
        let fp = Fingerprint::of("sk-canary-tokens-1");
        let metrics = Metrics::with_usage(crate::usage::Usage::default());
        metrics.verdict("openai", fp, &Verdict::Ok(Default::default()));
        metrics.tokens("openai", fp, 120, 45);
        metrics.tokens("openai", fp, 10, 5);
        let today = metrics.usage_today(&rotator, "openai").unwrap().of(fp);
        assert_eq!(
            (today[TOKENS_IN], today[TOKENS_OUT], today[0]),
            (130, 50, 1)
        );
        let text = metrics.render(&rotator.status(), &StoreHealth::Healthy, &rotator);
        let line = |name: &str, direction: &str| {
            format!(
                "akr_gateway_{name}{{provider=\"openai\",key=\"work\",fingerprint=\"{fp}\",direction=\"{direction}\"}}"
            )
        };
        assert!(
            text.contains(&format!("{} 130", line("key_tokens_total", "in"))),
            "{text}"
        );
        assert!(
            text.contains(&format!("{} 50", line("key_tokens_total", "out"))),
            "{text}"
        );
        assert!(
            text.contains(&format!("{} 130", line("key_tokens_today", "in"))),
            "{text}"
        );
        // A second scrape after more tokens counts on from the first (a counter, not reset).
        metrics.tokens("openai", fp, 1, 0);
        let text = metrics.render(&rotator.status(), &StoreHealth::Healthy, &rotator);
        assert!(
            text.contains(&format!("{} 131", line("key_tokens_total", "in"))),
            "{text}"
        );
        assert!(!text.contains("sk-canary"), "{text}");
    }

    #[test]
    fn one_poll_builds_a_stale_dashboard_while_the_others_take_the_previous_one() {
        let metrics = Metrics::with_usage(crate::usage::Usage::default());
        // Nothing built yet: the first poll builds.
        assert_eq!(metrics.dashboard_cached(), None);
        let build = DashboardBuild(&metrics);
        metrics.dashboard_built(bytes::Bytes::from_static(b"first"));
        drop(build);
        // Under a second old: every poll shares it, none builds.
        assert_eq!(metrics.dashboard_cached().as_deref(), Some(&b"first"[..]));
        // Stale: one poll is told to build; while it does, the others get the previous one.
        *metrics.inner.dashboard.lock().unwrap() = Some((0, bytes::Bytes::from_static(b"first")));
        assert_eq!(metrics.dashboard_cached(), None);
        let build = DashboardBuild(&metrics);
        assert_eq!(metrics.dashboard_cached().as_deref(), Some(&b"first"[..]));
        assert_eq!(metrics.dashboard_cached().as_deref(), Some(&b"first"[..]));
        // A build that ends without a document (it panicked) lets the next stale poll try.
        drop(build);
        assert_eq!(metrics.dashboard_cached(), None);
        let build = DashboardBuild(&metrics);
        metrics.dashboard_built(bytes::Bytes::from_static(b"second"));
        drop(build);
        assert_eq!(metrics.dashboard_cached().as_deref(), Some(&b"second"[..]));
    }
}
