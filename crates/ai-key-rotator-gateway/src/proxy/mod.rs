//! The proxy: routes a request by path prefix to its provider, checks the client token, and
//! hands it to [`attempt`] with the client's credentials removed.

mod access_log;
pub(crate) mod attempt;
pub(crate) mod body;
pub(crate) mod dialect;
pub(crate) mod preamble;
pub(crate) mod tokens;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use ai_key_rotator::classify::Family;
use ai_key_rotator::execute::Plan;
use ai_key_rotator::{AcquireOptions, KeyRotator};
use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::auth::{AuthError, CREDENTIAL_HEADERS, ClientTokens, strip_query_key};
use crate::config::{AccessLog, GatewayConfig, PreambleLimits, ProviderSettings};
use crate::ops::StatusView;
use crate::ops::metrics::{Metrics, ProviderMetrics};
use crate::upstream::UpstreamClient;
use body::GatewayBody;
use dialect::Dialect;

/// What every connection shares.
#[derive(Debug)]
pub(crate) struct Shared {
    /// One rotator for the life of the process: a reload adds and removes credentials on it,
    /// so running cooldowns are kept.
    pub(crate) rotator: KeyRotator,
    pub(crate) metrics: Metrics,
    /// Everything a reload may change, swapped whole.
    pub(crate) routes: ArcSwap<Routes>,
}

/// The routing table and request settings of one configuration.
#[derive(Debug)]
pub(crate) struct Routes {
    pub(crate) tokens: ClientTokens,
    pub(crate) body_limit: usize,
    pub(crate) body_read_timeout: std::time::Duration,
    pub(crate) access_log: AccessLog,
    pub(crate) preamble: PreambleLimits,
    pub(crate) client: UpstreamClient,
    /// Longest route first, so `/openai-eu` is matched before `/openai`.
    pub(crate) providers: Vec<Arc<ProviderRoute>>,
    /// The configuration this table was built from (for reloads).
    pub(crate) config: GatewayConfig,
}

/// One provider as the proxy sees it.
#[derive(Debug)]
pub(crate) struct ProviderRoute {
    pub(crate) name: Arc<str>,
    pub(crate) family: Family,
    pub(crate) dialect: Dialect,
    pub(crate) route: String,
    /// The upstream's scheme and authority: the only place requests go.
    pub(crate) scheme: http::uri::Scheme,
    pub(crate) authority: http::uri::Authority,
    /// The upstream's base path, without a trailing slash (often empty).
    pub(crate) base_path: String,
    pub(crate) metrics: ProviderMetrics,
    /// The core loop's plan for a request of this route without a session or token estimate:
    /// built once, so the common request allocates none.
    pub(crate) plan: Plan,
    /// Whether requests are placed by the hash of their stable prompt prefix
    /// (`cache_affinity`).
    pub(crate) cache_affinity: bool,
}

impl ProviderRoute {
    fn new(p: &ProviderSettings, config: &GatewayConfig, metrics: &Metrics) -> Self {
        // Fallbacks were checked against the providers when the configuration was loaded.
        let mut plan = Plan::new(p.name.as_str())
            .max_attempts(config.max_attempts)
            .backoff(config.retry.backoff_base, config.retry.backoff_max);
        for name in &p.fallback {
            plan = plan.fallback(name.clone());
        }
        if let Some(d) = config.retry.deadline {
            plan = plan.deadline(d);
        }
        ProviderRoute {
            plan,
            name: Arc::from(p.name.as_str()),
            family: p.family,
            dialect: Dialect::of(p.family),
            route: p.route.clone(),
            scheme: p.origin.scheme.clone(),
            authority: p.origin.authority.clone(),
            base_path: p.origin.base_path.clone(),
            metrics: metrics.provider(&p.name),
            cache_affinity: p.rotator.cache_affinity,
        }
    }
}

impl Routes {
    pub(crate) fn new(config: GatewayConfig, client: UpstreamClient, metrics: &Metrics) -> Self {
        let mut providers: Vec<Arc<ProviderRoute>> = config
            .providers
            .iter()
            .map(|p| Arc::new(ProviderRoute::new(p, &config, metrics)))
            .collect();
        providers.sort_by_key(|p| std::cmp::Reverse(p.route.len()));
        Routes {
            tokens: ClientTokens::new(&config.client_tokens, config.allow_unauthenticated),
            body_limit: config.body_limit,
            body_read_timeout: config.body_read_timeout,
            access_log: config.access_log,
            preamble: config.preamble,
            client,
            providers,
            config,
        }
    }

    pub(crate) fn by_name(&self, name: &str) -> Option<&Arc<ProviderRoute>> {
        self.providers.iter().find(|p| &*p.name == name)
    }

    fn by_path(&self, path: &str) -> Option<&Arc<ProviderRoute>> {
        self.providers.iter().find(|p| {
            path.strip_prefix(p.route.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
    }
}

/// The service behind every connection.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<GatewayBody>, Infallible> {
    let routes = shared.routes.load_full();
    if !access_log::enabled(routes.access_log) {
        return Ok(route(&shared, &routes, req).await);
    }
    let started = Instant::now();
    let method = req.method().clone();
    // The path only: a query may carry a key (`?key=` for Google).
    let path = req.uri().path().to_owned();
    let mut response = route(&shared, &routes, req).await;
    let served = response.extensions_mut().remove::<attempt::Served>();
    access_log::line(
        routes.access_log,
        &method,
        &path,
        response.status(),
        served.as_ref(),
        started.elapsed(),
    );
    Ok(response)
}

async fn route(
    shared: &Arc<Shared>,
    routes: &Routes,
    req: Request<Incoming>,
) -> Response<GatewayBody> {
    let started = Instant::now();
    // Never a forward proxy: a target in absolute form (`GET http://host/…`) or a CONNECT
    // names a host the client chose. The upstream host comes only from configuration.
    if req.uri().scheme().is_some()
        || req.uri().authority().is_some()
        || req.method() == Method::CONNECT
    {
        return plain_error(
            StatusCode::BAD_REQUEST,
            "this gateway is not a forward proxy",
        );
    }
    let path = req.uri().path();
    match path {
        "/healthz" => {
            let body = crate::ops::health_body(&shared.rotator.store_health());
            return json_response(StatusCode::OK, Bytes::from(body));
        }
        "/status" | "/metrics" => {
            if let Err(e) = routes.tokens.check(req.headers(), req.uri().query()) {
                return auth_error(Dialect::OpenAi, e);
            }
            let status = shared.rotator.status();
            return if path == "/status" {
                let visible: Vec<&str> = routes.providers.iter().map(|p| &*p.name).collect();
                let view = StatusView::of(&status, &visible)
                    .with_fleet(shared.rotator.fleet())
                    .with_usage(&shared.metrics, &shared.rotator)
                    .with_budgets(&shared.rotator);
                let body = serde_json::to_vec_pretty(&view).unwrap_or_default();
                json_response(StatusCode::OK, Bytes::from(body))
            } else {
                for p in &routes.providers {
                    if let Some(b) = shared.rotator.budgets(&p.name) {
                        let rows = crate::ops::budgets::rows(&b, |t| t.as_millis());
                        shared.metrics.observe_budgets(&p.name, &rows);
                    }
                }
                let mut r = Response::new(GatewayBody::full(shared.metrics.render(
                    &status,
                    &shared.rotator.store_health(),
                    &shared.rotator,
                )));
                // prometheus-client writes OpenMetrics text (it ends with `# EOF`); a scraper
                // told `text/plain; version=0.0.4` parses it with the wrong grammar.
                r.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static(
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    ),
                );
                r
            };
        }
        _ => {}
    }
    // The dashboard and the admin actions (`ops/`, `admin.rs`).
    if let Some(response) = crate::ops::serve(shared, routes, &req).await {
        return response;
    }
    if !safe_path(path) {
        return plain_error(StatusCode::BAD_REQUEST, "invalid request path");
    }
    let Some(provider) = routes.by_path(path) else {
        return plain_error(
            StatusCode::NOT_FOUND,
            "no provider is configured at this path",
        );
    };
    let provider = Arc::clone(provider);
    let response = proxy(shared, routes, &provider, req).await;
    provider
        .metrics
        .request(response.status().as_u16(), started.elapsed());
    response
}

async fn proxy(
    shared: &Shared,
    routes: &Routes,
    provider: &Arc<ProviderRoute>,
    req: Request<Incoming>,
) -> Response<GatewayBody> {
    let dialect = provider.dialect;
    if let Err(e) = routes.tokens.check(req.headers(), req.uri().query()) {
        return auth_error(dialect, e);
    }
    let too_large = || {
        error_response(
            dialect,
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            "the request body is larger than the gateway accepts",
        )
    };
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > routes.body_limit as u64) {
        return too_large();
    }
    let (parts, body) = req.into_parts();
    // The whole body within one deadline, not per read: a client sending a byte every few
    // seconds would pass any per-read timeout while holding a connection and a buffer.
    let read = http_body_util::Limited::new(body, routes.body_limit).collect();
    let Ok(read) = tokio::time::timeout(routes.body_read_timeout, read).await else {
        let mut r = error_response(
            dialect,
            StatusCode::REQUEST_TIMEOUT,
            "invalid_request_error",
            "the request body did not arrive in time",
        );
        // The rest of the body may still trickle in: the connection cannot be reused.
        close_after(&mut r);
        return r;
    };
    let body = match read {
        Ok(c) => c.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return too_large(),
        Err(_) => {
            return error_response(
                dialect,
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "the request body could not be read",
            );
        }
    };
    let path = parts.uri.path();
    let mut rest = path[provider.route.len()..].to_owned();
    if let Some(q) = parts.uri.query().and_then(strip_query_key) {
        rest.push('?');
        rest.push_str(&q);
    }
    let mut options = AcquireOptions {
        // The model the request is for: a key resting for it after a per-model limit is
        // skipped, and keeps serving the other models.
        model: ai_key_rotator::request_model(&rest, &body),
        ..AcquireOptions::default()
    };
    if let Some(session) = parts
        .headers
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty())
    {
        options.session = Some(session.to_owned());
    }
    // The model, so that a key resting for this model only (a per-model limit) is skipped:
    // Gemini names it in the path, the others in the body.
    if let Some(model) = model_of(&rest, &body) {
        options = options.model(&model);
    }
    if provider.cache_affinity {
        // Requests sharing a prompt prefix go to one key, where the provider caches it. The
        // body is scanned in place (no parse); a body with no recognizable prefix is placed by
        // the strategy as usual.
        options.affinity = ai_key_rotator::prefix_hash(provider.family.info().api, &body);
    }
    let forward = attempt::Forward {
        method: parts.method,
        rest,
        headers: filter_request_headers(&parts.headers),
        body,
        options,
    };
    attempt::forward(routes, &shared.rotator, &shared.metrics, provider, forward).await
}

/// The model a request is for: Gemini's `/models/{model}:method` path segment, else the JSON
/// body's `model` field (read without building the rest of the document).
fn model_of(rest: &str, body: &[u8]) -> Option<String> {
    if let Some(after) = rest.split_once("/models/").map(|(_, a)| a) {
        let model = after.split([':', '/', '?']).next().unwrap_or_default();
        if !model.is_empty() {
            return Some(model.to_owned());
        }
    }
    #[derive(serde::Deserialize)]
    struct ModelOnly<'a> {
        #[serde(borrow, default)]
        model: Option<std::borrow::Cow<'a, str>>,
    }
    serde_json::from_slice::<ModelOnly<'_>>(body)
        .ok()?
        .model
        .map(std::borrow::Cow::into_owned)
}

/// Asks hyper to close the connection after this response.
fn close_after(response: &mut Response<GatewayBody>) {
    response
        .headers_mut()
        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
}

/// The request header naming a client's session (a conversation): its requests stay on one
/// key while that key is available, because prompt caches are per key or organization. It is
/// passed on upstream like any other header.
pub(crate) const SESSION_HEADER: &str = "x-session-id";

/// Rejects paths that could climb out of a provider's route or confuse an upstream:
/// `.`/`..` segments (also percent-encoded), empty segments and backslashes.
fn safe_path(path: &str) -> bool {
    if !path.starts_with('/') || path.contains("//") || path.contains('\\') {
        return false;
    }
    let lower = path.to_ascii_lowercase();
    if lower.contains("%2e") || lower.contains("%2f") || lower.contains("%5c") {
        return false;
    }
    !path.split('/').any(|s| s == "." || s == "..")
}

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The client's headers minus its credentials, hop-by-hop headers, `host` (the upstream's comes
/// from its URL), `content-length` (recomputed) and `accept-encoding` (so error bodies and
/// event streams arrive readable for classification).
fn filter_request_headers(headers: &HeaderMap) -> HeaderMap {
    let named_by_connection: Vec<HeaderName> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::try_from(n.trim()).ok())
        .collect();
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let n = name.as_str();
        if HOP_BY_HOP.contains(&n)
            || CREDENTIAL_HEADERS.contains(&n)
            || matches!(n, "host" | "content-length" | "accept-encoding")
            || named_by_connection.contains(name)
        {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

/// Removes hop-by-hop headers from an upstream response.
pub(crate) fn filter_response_headers(headers: &mut HeaderMap) {
    for h in HOP_BY_HOP {
        headers.remove(h);
    }
}

/// An error in the provider's shape, made by the gateway.
pub(crate) fn error_response(
    dialect: Dialect,
    status: StatusCode,
    kind: &str,
    message: &str,
) -> Response<GatewayBody> {
    json_response(
        status,
        dialect.error_body(status.as_u16(), kind, message, None),
    )
}

/// A 429 made by the gateway, with the wait in `retry-after` and, for Google, in the body's
/// `RetryInfo` as its SDKs expect.
pub(crate) fn rate_limited(dialect: Dialect, secs: u64, message: &str) -> Response<GatewayBody> {
    let status = StatusCode::TOO_MANY_REQUESTS;
    let mut response = json_response(
        status,
        dialect.error_body(status.as_u16(), "rate_limit_error", message, Some(secs)),
    );
    response
        .headers_mut()
        .insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
    response
}

fn plain_error(status: StatusCode, message: &str) -> Response<GatewayBody> {
    error_response(Dialect::OpenAi, status, "invalid_request_error", message)
}

fn auth_error(dialect: Dialect, e: AuthError) -> Response<GatewayBody> {
    let message = match e {
        AuthError::Missing => "missing client token: send it as your SDK's API key",
        AuthError::Wrong => "invalid client token",
    };
    error_response(
        dialect,
        StatusCode::UNAUTHORIZED,
        "authentication_error",
        message,
    )
}

fn json_response(status: StatusCode, body: Bytes) -> Response<GatewayBody> {
    let mut r = Response::new(GatewayBody::full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_paths_are_refused() {
        for p in [
            "/openai/v1/chat/completions",
            "/gemini/v1beta/models/g:generateContent",
        ] {
            assert!(safe_path(p), "{p}");
        }
        for p in [
            "/openai/../admin",
            "/openai/v1/..",
            "/openai/./v1",
            "/openai//evil.example/x",
            "/openai/%2e%2e/x",
            "/openai/%2E./x",
            "/openai/a%2fb",
            "/openai\\..\\x",
            "openai",
        ] {
            assert!(!safe_path(p), "{p}");
        }
    }

    #[test]
    fn credentials_and_hop_by_hop_headers_are_removed() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("authorization", "Bearer tok"),
            ("x-api-key", "tok"),
            ("x-goog-api-key", "tok"),
            ("api-key", "tok"),
            ("host", "evil.example"),
            ("connection", "keep-alive, x-secret-hop"),
            ("x-secret-hop", "1"),
            ("content-type", "application/json"),
            ("anthropic-version", "2023-06-01"),
        ] {
            h.append(k, HeaderValue::from_static(v));
        }
        let out = filter_request_headers(&h);
        let names: Vec<&str> = out.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["content-type", "anthropic-version"]);
    }
}
