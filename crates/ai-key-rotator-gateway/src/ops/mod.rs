//! Operations endpoints: `/healthz`, `/status` (JSON) and `/metrics` (Prometheus text), the
//! dashboard (`/dashboard`, `/dashboard.json`; `/` redirects to it) and the admin actions
//! (`/admin/…`, in `crate::admin`).

pub(crate) mod budgets;
pub(crate) mod dashboard;
pub(crate) mod metrics;
pub(crate) mod stats;

use std::sync::Arc;

use ai_key_rotator::{CredentialState, RotatorStatus, StoreHealth};
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use serde::Serialize;

use crate::proxy::body::GatewayBody;
use crate::proxy::{Routes, Shared};

/// Serves the dashboard, its JSON and the admin actions; `None` for any other path.
///
/// Reading (the page's data, the JSON) needs what `/status` needs: a client token, or none
/// when the gateway allows unauthenticated loopback use. An admin token reads too.
pub(crate) async fn serve<B>(
    shared: &Arc<Shared>,
    routes: &Routes,
    req: &Request<B>,
) -> Option<Response<GatewayBody>> {
    let path = req.uri().path();
    let may_read = || {
        routes.tokens.check(req.headers(), None).is_ok()
            || crate::admin::admin_of(routes, req.headers()).is_ok()
    };
    Some(match path {
        "/" => {
            let mut r = Response::new(GatewayBody::full(Bytes::new()));
            *r.status_mut() = StatusCode::FOUND;
            r.headers_mut().insert(
                http::header::LOCATION,
                HeaderValue::from_static("/dashboard"),
            );
            r
        }
        "/dashboard" => {
            let data = may_read().then(|| dashboard::build(shared, routes));
            page_response(dashboard::page(data.as_ref()))
        }
        "/dashboard.json" => {
            if !may_read() {
                return Some(json(
                    StatusCode::UNAUTHORIZED,
                    br#"{"error":"a client token is needed (Authorization: Bearer ...)"}"#.to_vec(),
                ));
            }
            let body = match shared.metrics.dashboard_cached() {
                Some(body) => body,
                None => {
                    // Building the document of a large pool takes milliseconds: on a blocking
                    // thread, so the runtime's workers keep proxying meanwhile. Built inline,
                    // 10 open dashboards on 1 000 keys raised the proxy's p99 at 1 000 req/s
                    // from 0.2 to 1.3-1.7 ms (scripts/bench-usage.sh). The closure keeps the
                    // document itself, so a poll that goes away mid-build wastes nothing.
                    let shared = Arc::clone(shared);
                    tokio::task::spawn_blocking(move || {
                        let _building = metrics::DashboardBuild(&shared.metrics);
                        let routes = shared.routes.load_full();
                        let body = Bytes::from(
                            serde_json::to_vec(&dashboard::build(&shared, &routes))
                                .unwrap_or_default(),
                        );
                        shared.metrics.dashboard_built(body.clone());
                        body
                    })
                    .await
                    .unwrap_or_default()
                }
            };
            json(StatusCode::OK, body)
        }
        _ if path.starts_with("/admin/") => {
            crate::admin::handle(shared, routes, req.method(), path, req.headers()).await
        }
        _ => return None,
    })
}

/// Usage counts ([`stats::USAGE_FIELDS`] order) as a JSON object: the answers' sum as
/// `requests`, the classes seen, and `tokens_in` and `tokens_out` (always, 0 when none).
pub(crate) fn classes(counts: &stats::UsageCounts) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    let answers = &counts[..stats::CLASSES.len()];
    m.insert("requests".into(), answers.iter().sum::<u64>().into());
    for (i, n) in answers.iter().enumerate().filter(|(_, n)| **n > 0) {
        m.insert(stats::CLASSES[i].into(), (*n).into());
    }
    m.insert("tokens_in".into(), counts[stats::TOKENS_IN].into());
    m.insert("tokens_out".into(), counts[stats::TOKENS_OUT].into());
    m
}

fn json(status: StatusCode, body: impl Into<Bytes>) -> Response<GatewayBody> {
    let mut r = Response::new(GatewayBody::full(body.into()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    r
}

/// The page, with headers that forbid any request to another origin (the page makes none),
/// framing, and caching of data that may be private.
fn page_response(html: String) -> Response<GatewayBody> {
    let mut r = Response::new(GatewayBody::full(Bytes::from(html)));
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        http::header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; \
             connect-src 'self'; img-src 'self' data:; form-action 'none'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    h.insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        http::header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

/// `/healthz`: `{"status":"ok"}`, or `{"status":"degraded","store":{…}}` with the state store's
/// trouble and its cause. Always served with 200: the gateway keeps serving from its local view
/// while its store fails, so a load balancer must not take it out; monitors read `status`.
pub(crate) fn health_body(health: &StoreHealth) -> Vec<u8> {
    let (state, fault, count) = match health {
        StoreHealth::Degraded { fault, count } => ("degraded", fault, count),
        StoreHealth::Failing { fault, count } => ("failing", fault, count),
        _ => return b"{\"status\":\"ok\"}\n".to_vec(),
    };
    let body = serde_json::json!({
        "status": "degraded",
        "store": { "state": state, "cause": fault.to_string(), "count": count },
    });
    let mut out = serde_json::to_vec(&body).unwrap_or_default();
    out.push(b'\n');
    out
}

/// `/status`: every provider and credential, by label and fingerprint. Built field by field
/// from the core's status so that nothing derived from a key (not even its masked form) is
/// published.
#[derive(Debug, Serialize)]
pub(crate) struct StatusView {
    at: String,
    providers: Vec<ProviderView>,
    /// The gateways and other processes sharing the Redis store, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    fleet: Option<FleetJson>,
}

/// The fleet part of `/status`: processes by id, with a digest of their key sets (never a
/// key), the one whose keys differ from most flagged.
#[derive(Debug, Serialize)]
struct FleetJson {
    live_processes: u32,
    /// `limit / n` while Redis is out of reach and budgets run on this process's share.
    #[serde(skip_serializing_if = "Option::is_none")]
    budgets_fallback: Option<u32>,
    replicas: Vec<ReplicaJson>,
}

#[derive(Debug, Serialize)]
struct ReplicaJson {
    id: String,
    key_digest: String,
    credentials: u64,
    last_seen_ms_ago: u64,
    keys_differ: bool,
    this_process: bool,
}

impl ReasonView {
    fn of(r: &ai_key_rotator::CooldownReason) -> ReasonView {
        ReasonView {
            cause: r.cause.to_string(),
            provider_reset: r.provider_reset.map(|t| t.to_string()),
            scope: r.scope.as_deref().map(str::to_owned),
        }
    }
}

impl StatusView {
    /// Adds the fleet as the store last saw it.
    pub(crate) fn with_fleet(mut self, fleet: Option<ai_key_rotator::FleetView>) -> StatusView {
        self.fleet = fleet.map(|f| FleetJson {
            live_processes: f.live_processes,
            budgets_fallback: f.budgets_fallback,
            replicas: f
                .replicas
                .into_iter()
                .map(|r| ReplicaJson {
                    id: r.id,
                    key_digest: r.key_digest,
                    credentials: r.credentials,
                    last_seen_ms_ago: r.last_seen_ms_ago,
                    keys_differ: r.differs,
                    this_process: r.this_process,
                })
                .collect(),
        });
        self
    }
}

#[derive(Debug, Serialize)]
struct ProviderView {
    name: String,
    total: usize,
    available: usize,
    next_available_at: Option<String>,
    /// The provider's circuit, while it is open or probing (several keys failed alike for a
    /// cause not about any key).
    #[serde(skip_serializing_if = "Option::is_none")]
    circuit: Option<CircuitView>,
    /// Its client-side budgets' use against their limits (keys summed, then each scope).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    budgets: Vec<budgets::BudgetRow<String>>,
    /// Requests placed on their key by prompt-cache affinity (their prompt prefix's hash).
    affinity_placed: u64,
    /// The day the credentials' `today` counts are for: the provider's day, in the time zone
    /// where its daily quotas reset.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage_day: Option<UsageDayView>,
    credentials: Vec<CredentialView>,
}

#[derive(Debug, Serialize)]
struct UsageDayView {
    /// `YYYY-MM-DD`.
    date: String,
    /// The IANA time zone of the day (`UTC`, `America/Los_Angeles`).
    time_zone: String,
}

#[derive(Debug, Serialize)]
struct CircuitView {
    cause: &'static str,
    until: String,
    probing: bool,
}

/// A key resting for one model only after that model's limit: it serves the others.
#[derive(Debug, Serialize)]
struct ModelCooldownView {
    model: String,
    until: String,
    reason: ReasonView,
}

#[derive(Debug, Serialize)]
struct CredentialView {
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<String>,
    fingerprint: String,
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    until: Option<String>,
    times_used: u64,
    times_exhausted: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_exhausted_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    /// Why it cools or is disabled: the verdict's description, the provider's reset time and
    /// the quota scope, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<ReasonView>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    model_cooldowns: Vec<ModelCooldownView>,
    consecutive_failures: u32,
    /// Upstream answers today (the provider's day, see `usage_day`) by class, and the tokens
    /// in and out, as kept in the state store.
    #[serde(skip_serializing_if = "Option::is_none")]
    today: Option<serde_json::Map<String, serde_json::Value>>,
    /// The key's own budget's use against its limits.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    budget: Vec<budgets::BudgetRow<String>>,
}

#[derive(Debug, Serialize)]
struct ReasonView {
    cause: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider_reset: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
}

impl StatusView {
    /// Adds each key's usage today (answers by class, tokens) and the day it is for.
    pub(crate) fn with_usage(
        mut self,
        metrics: &metrics::Metrics,
        rotator: &ai_key_rotator::KeyRotator,
    ) -> StatusView {
        for p in &mut self.providers {
            let Some(today) = metrics.usage_today(rotator, &p.name) else {
                continue;
            };
            for c in &mut p.credentials {
                let Ok(fp) = c.fingerprint.parse() else {
                    continue;
                };
                c.today = Some(classes(&today.of(fp)));
            }
            p.usage_day = Some(UsageDayView {
                date: today.date,
                time_zone: today.time_zone,
            });
        }
        self
    }

    /// Adds each provider's and each key's budget use.
    pub(crate) fn with_budgets(mut self, rotator: &ai_key_rotator::KeyRotator) -> StatusView {
        for p in &mut self.providers {
            let Some(b) = rotator.budgets(&p.name) else {
                continue;
            };
            p.budgets = budgets::rows(&b, |t| t.to_string());
            for k in &b.keys {
                let fp = k.id.fingerprint.to_string();
                if let Some(c) = p.credentials.iter_mut().find(|c| c.fingerprint == fp) {
                    let own = ai_key_rotator::ProviderBudgets {
                        provider: b.provider.clone(),
                        at: b.at,
                        keys: vec![k.clone()],
                        scopes: Vec::new(),
                    };
                    c.budget = budgets::rows(&own, |t| t.to_string());
                }
            }
        }
        self
    }

    pub(crate) fn of(status: &RotatorStatus, visible: &[&str]) -> StatusView {
        StatusView {
            at: status.at.to_string(),
            providers: status
                .providers
                .iter()
                .filter(|p| visible.contains(&p.name.as_str()))
                .map(|p| ProviderView {
                    name: p.name.clone(),
                    total: p.total,
                    available: p.available,
                    next_available_at: p.next_available_at.map(|t| t.to_string()),
                    circuit: p.circuit.as_ref().map(|c| CircuitView {
                        cause: c.cause.as_str(),
                        until: c.until.to_string(),
                        probing: c.probing,
                    }),
                    budgets: Vec::new(),
                    affinity_placed: p.affinity_placed,
                    usage_day: None,
                    credentials: p
                        .credentials
                        .iter()
                        .map(|c| {
                            let (state, until) = match c.state {
                                CredentialState::Available => ("available", None),
                                CredentialState::Cooling { until } => {
                                    ("cooling", Some(until.to_string()))
                                }
                                CredentialState::Disabled => ("disabled", None),
                                CredentialState::Depleted { recheck_at } => {
                                    ("depleted", recheck_at.map(|t| t.to_string()))
                                }
                                _ => ("unknown", None),
                            };
                            CredentialView {
                                label: c.id.label.as_deref().map(str::to_owned),
                                fingerprint: c.id.fingerprint.to_string(),
                                state,
                                until,
                                times_used: c.times_used,
                                times_exhausted: c.times_exhausted,
                                last_exhausted_at: c.last_exhausted_at.map(|t| t.to_string()),
                                scope: c.scope.as_deref().map(str::to_owned),
                                reason: c.reason.as_ref().map(ReasonView::of),
                                model_cooldowns: c
                                    .model_cooldowns
                                    .iter()
                                    .map(|m| ModelCooldownView {
                                        model: m.model.as_str().to_owned(),
                                        until: m.until.to_string(),
                                        reason: ReasonView::of(&m.reason),
                                    })
                                    .collect(),
                                consecutive_failures: c.consecutive_failures,
                                today: None,
                                budget: Vec::new(),
                            }
                        })
                        .collect(),
                })
                .collect(),
            fleet: None,
        }
    }
}
