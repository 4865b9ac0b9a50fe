//! Everything the gateway asks of the rotator for one request, in one place: pick a key, send,
//! classify, report, and decide whether to retry with the next key or fail over to the next
//! provider.
//!
//! Keys are leased with [`KeyRotator::acquire_with`] (the provider's strategy and budgets, and
//! the client's session for affinity) and every answer is reported with
//! [`Lease::report`], which applies the verdict exactly (cooldown until the provider's own
//! time, scope-wide cooling, disabling invalid keys). The core's `execute` loop is not used:
//! the gateway must decide per attempt whether anything has reached the client yet, and hands
//! the successful upstream body on unbuffered, which `execute`'s closure-based shape does not
//! allow without buffering. Nothing outside this module talks to the rotator on the request
//! path.

use std::sync::Arc;
use std::time::Instant;

use ai_key_rotator::classify::{self, Family, Verdict};
use ai_key_rotator::{AcquireOptions, Credential, KeyRotator, Lease, ReportOutcome, Timestamp};
use bytes::Bytes;
use http::{HeaderMap, Method, Response, StatusCode};
use http_body_util::{BodyExt, Full};

use super::body::{GatewayBody, SseScanner, Upstream};
use super::{ProviderRoute, Routes, error_response, filter_response_headers, rate_limited};
use crate::ops::metrics::Metrics;

/// The most of an upstream error body read to classify it. Error bodies are small; a larger
/// one is answered with 502 rather than buffered.
const MAX_ERROR_BODY: usize = 1024 * 1024;

/// A client request, ready to be sent to any provider of its chain.
#[derive(Debug)]
pub(crate) struct Forward {
    pub(crate) method: Method,
    /// The path below the provider's route, starting with `/` (or empty), plus `?query`.
    pub(crate) rest: String,
    /// The client's headers, credentials and hop-by-hop headers already removed.
    pub(crate) headers: HeaderMap,
    /// The whole request body, kept so that a retry can send it again.
    pub(crate) body: Bytes,
    /// The client's session (`x-session-id`), kept on one key while that key is available.
    pub(crate) options: AcquireOptions,
}

/// What the access log says of a proxied request: which provider and key answered last, after
/// how many upstream attempts. Carried to it in the response's extensions.
#[derive(Debug, Clone)]
pub(crate) struct Served {
    pub(crate) provider: Arc<str>,
    pub(crate) route: String,
    /// The key of the last attempt; `None` when no key was usable.
    pub(crate) credential: Option<ai_key_rotator::CredentialId>,
    pub(crate) attempts: u32,
}

/// Sends `req` through `primary` (then its fallbacks), rotating keys as responses blame them.
pub(crate) async fn forward(
    routes: &Routes,
    rotator: &KeyRotator,
    metrics: &Metrics,
    primary: &Arc<ProviderRoute>,
    req: Forward,
) -> Response<GatewayBody> {
    let mut served = Served {
        provider: Arc::clone(&primary.name),
        route: primary.route.clone(),
        credential: None,
        attempts: 0,
    };
    let mut response = forward_inner(routes, rotator, metrics, primary, req, &mut served).await;
    response.extensions_mut().insert(served);
    response
}

async fn forward_inner(
    routes: &Routes,
    rotator: &KeyRotator,
    metrics: &Metrics,
    primary: &Arc<ProviderRoute>,
    req: Forward,
    served: &mut Served,
) -> Response<GatewayBody> {
    let chain: Vec<&Arc<ProviderRoute>> = std::iter::once(primary)
        .chain(primary.fallback.iter().filter_map(|n| routes.by_name(n)))
        .collect();
    let mut attempts = 0u32;
    // The last upstream answer that blamed its key, returned if attempts run out first.
    let mut last_blamed: Option<Response<GatewayBody>> = None;
    // The earliest time a key of the chain comes back, from the rotator's refusals.
    let mut retry_at: Option<Timestamp> = None;
    for (i, provider) in chain.iter().enumerate() {
        if i > 0 {
            metrics.failover(&primary.name, &provider.name);
        }
        while attempts < routes.max_attempts {
            let lease = match rotator.acquire_with(&provider.name, &req.options) {
                Ok(lease) => lease,
                Err(e) => {
                    // This provider has no usable key: fail over.
                    if let Some(t) = e.retry_at() {
                        retry_at = Some(retry_at.map_or(t, |r| r.min(t)));
                    }
                    break;
                }
            };
            attempts += 1;
            served.provider = Arc::clone(&provider.name);
            served.route = provider.route.clone();
            served.credential = Some(lease.credential().id().clone());
            served.attempts = attempts;
            if attempts > 1 {
                metrics.retry(&provider.name);
            }
            match send(routes, rotator, provider, lease, &req, metrics).await {
                Sent::Done(response) => return response,
                Sent::Blamed(response) => last_blamed = Some(response),
            }
        }
        if attempts >= routes.max_attempts {
            break;
        }
    }
    if attempts >= routes.max_attempts
        && let Some(response) = last_blamed
    {
        return response;
    }
    no_key_available(primary, retry_at, rotator.now(), last_blamed)
}

enum Sent {
    /// The answer for the client.
    Done(Response<GatewayBody>),
    /// The key was to blame; another may do better.
    Blamed(Response<GatewayBody>),
}

async fn send(
    routes: &Routes,
    rotator: &KeyRotator,
    provider: &ProviderRoute,
    lease: Lease<'_>,
    req: &Forward,
    metrics: &Metrics,
) -> Sent {
    let credential = lease.credential();
    let dialect = provider.dialect;
    let mut headers = req.headers.clone();
    if dialect
        .write_key(&mut headers, credential.expose_key())
        .is_err()
    {
        tracing::error!(provider = %provider.name, credential = %credential.id(),
            "key cannot be written into a header");
        return Sent::Done(error_response(
            dialect,
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            "the gateway's key for this provider is malformed",
        ));
    }
    // The upstream's scheme and host come only from configuration, by construction: the
    // client supplies nothing but the (checked) path and query.
    let Some(uri) = upstream_uri(provider, &req.rest) else {
        return Sent::Done(error_response(
            dialect,
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "invalid request path",
        ));
    };
    let mut request = http::Request::new(Full::new(req.body.clone()));
    *request.method_mut() = req.method.clone();
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    let started = Instant::now();
    let response = match routes.client.send(request).await {
        Ok(r) => r,
        Err(e) => {
            let timeout = e.is_timeout();
            tracing::warn!(provider = %provider.name, timeout, error = %e,
                "upstream request failed");
            provider
                .metrics
                .upstream_status(if timeout { 504 } else { 502 });
            let (status, msg) = if timeout {
                (
                    StatusCode::GATEWAY_TIMEOUT,
                    "the upstream provider timed out",
                )
            } else {
                (
                    StatusCode::BAD_GATEWAY,
                    "the upstream provider could not be reached",
                )
            };
            return Sent::Done(error_response(dialect, status, "api_error", msg));
        }
    };
    let status = response.status();
    provider.metrics.upstream_status(status.as_u16());
    provider.metrics.upstream_latency(started.elapsed());
    let (mut parts, body) = response.into_parts();
    filter_response_headers(&mut parts.headers);

    if status.is_success() {
        // A 2xx is classified from its headers alone: the remaining budget may already say
        // the key must rest.
        let verdict = lease.classify(&classify::Response::new(
            status.as_u16(),
            &parts.headers,
            b"",
        ));
        let watch = is_event_stream(&parts.headers).then(|| StreamWatch {
            scanner: SseScanner::default(),
            family: provider.family,
            provider: Arc::clone(&provider.name),
            credential: credential.clone(),
            metrics: metrics.clone(),
            rotator: rotator.clone(),
        });
        let id = credential.id().clone();
        let outcome = lease.report(&verdict);
        note_outcome(&provider.name, &id, &verdict, &outcome, metrics);
        let body = GatewayBody::Upstream(Box::new(Upstream { inner: body, watch }));
        return Sent::Done(Response::from_parts(parts, body));
    }

    let bytes = match http_body_util::Limited::new(body, MAX_ERROR_BODY)
        .collect()
        .await
    {
        Ok(c) => c.to_bytes(),
        Err(_) => {
            return Sent::Done(error_response(
                dialect,
                StatusCode::BAD_GATEWAY,
                "api_error",
                "the upstream provider's error response could not be read",
            ));
        }
    };
    let verdict = lease.classify(&classify::Response::new(
        status.as_u16(),
        &parts.headers,
        &bytes,
    ));
    // Error bodies may echo the key ("Incorrect API key provided: sk-…"); the client must never
    // see a provider key, so it is cut out of everything passed on.
    let bytes = redact(bytes, credential.expose_key());
    let key = credential.expose_key().as_bytes();
    let echoing: Vec<http::HeaderName> = parts
        .headers
        .iter()
        .filter(|(_, v)| find(v.as_bytes(), key).is_some())
        .map(|(n, _)| n.clone())
        .collect();
    for name in echoing {
        parts.headers.remove(name);
    }
    let id = credential.id().clone();
    let outcome = lease.report(&verdict);
    note_outcome(&provider.name, &id, &verdict, &outcome, metrics);
    parts.headers.remove(http::header::CONTENT_LENGTH);
    let response = Response::from_parts(parts, GatewayBody::full(bytes));
    if verdict.blames_key() {
        Sent::Blamed(response)
    } else {
        Sent::Done(response)
    }
}

/// The provider's scheme and authority, its base path, and the client's path and query.
fn upstream_uri(provider: &ProviderRoute, rest: &str) -> Option<http::Uri> {
    let mut path = String::with_capacity(provider.base_path.len() + rest.len() + 1);
    path.push_str(&provider.base_path);
    path.push_str(rest);
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(provider.scheme.clone());
    parts.authority = Some(provider.authority.clone());
    parts.path_and_query =
        Some(http::uri::PathAndQuery::from_maybe_shared(Bytes::from(path)).ok()?);
    http::Uri::from_parts(parts).ok()
}

/// Counts and logs what a report changed.
fn note_outcome(
    provider: &str,
    credential: &ai_key_rotator::CredentialId,
    verdict: &Verdict,
    outcome: &ReportOutcome,
    metrics: &Metrics,
) {
    metrics.verdict(provider, credential.fingerprint, verdict);
    match outcome {
        ReportOutcome::Cooled { until, scope } => {
            metrics.cooldown(provider, verdict.reason());
            tracing::info!(provider, %credential, reason = verdict.reason(), %until,
                scope = scope.as_deref().unwrap_or("-"), "key cooled");
        }
        ReportOutcome::Disabled => {
            metrics.cooldown(provider, verdict.reason());
            tracing::warn!(provider, %credential, reason = verdict.reason(), "key disabled");
        }
        _ => {}
    }
}

/// Watches an event stream that began with a 2xx for an error event (Anthropic's mid-stream
/// `overloaded_error`, an OpenAI `{"error":…}` chunk) and reports it.
#[derive(Debug)]
pub(crate) struct StreamWatch {
    scanner: SseScanner,
    family: Family,
    provider: Arc<str>,
    credential: Credential,
    metrics: Metrics,
    rotator: KeyRotator,
}

impl StreamWatch {
    pub(crate) fn feed(&mut self, data: &[u8]) {
        let StreamWatch {
            scanner,
            family,
            provider,
            credential,
            metrics,
            rotator,
        } = self;
        scanner.feed(data, &mut |event, data| {
            on_event(*family, provider, credential, metrics, rotator, event, data)
        });
    }

    pub(crate) fn finish(&mut self) {
        let StreamWatch {
            scanner,
            family,
            provider,
            credential,
            metrics,
            rotator,
        } = self;
        scanner.finish(&mut |event, data| {
            on_event(*family, provider, credential, metrics, rotator, event, data)
        });
    }
}

fn on_event(
    family: Family,
    provider: &str,
    credential: &Credential,
    metrics: &Metrics,
    rotator: &KeyRotator,
    event: Option<&str>,
    data: &[u8],
) {
    let Some(verdict) = classify::classify_stream_event(family, event, data, rotator.now()) else {
        return;
    };
    metrics.stream_error(provider);
    tracing::warn!(provider, credential = %credential.id(), reason = verdict.reason(),
        "error event inside a stream");
    let outcome = rotator.report(credential, &verdict);
    note_outcome(provider, credential.id(), &verdict, &outcome, metrics);
}

fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
}

/// 429 with the exact time the first key of the chain comes back, or the last upstream error
/// when no key will come back by itself (all disabled).
fn no_key_available(
    primary: &ProviderRoute,
    retry_at: Option<Timestamp>,
    now: Timestamp,
    last_blamed: Option<Response<GatewayBody>>,
) -> Response<GatewayBody> {
    let Some(earliest) = retry_at else {
        return last_blamed.unwrap_or_else(|| {
            error_response(
                primary.dialect,
                StatusCode::SERVICE_UNAVAILABLE,
                "api_error",
                "no usable key for this provider",
            )
        });
    };
    let wait_ms = earliest.as_millis().saturating_sub(now.as_millis());
    let secs = wait_ms.div_ceil(1000).max(1);
    rate_limited(
        primary.dialect,
        secs,
        &format!("every key of this provider is cooling down; retry in {secs} s"),
    )
}

/// `bytes` with every occurrence of `key` replaced by `[redacted]`.
fn redact(bytes: Bytes, key: &str) -> Bytes {
    let key = key.as_bytes();
    if find(&bytes, key).is_none() {
        return bytes;
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = &bytes[..];
    while let Some(i) = find(rest, key) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(b"[redacted]");
        rest = &rest[i + key.len()..];
    }
    out.extend_from_slice(rest);
    Bytes::from(out)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || needle.len() > haystack.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_every_occurrence_of_the_key() {
        let b = Bytes::from_static(b"bad key sk-123; again sk-123.");
        assert_eq!(
            &redact(b, "sk-123")[..],
            b"bad key [redacted]; again [redacted]."
        );
        let b = Bytes::from_static(b"nothing here");
        assert_eq!(&redact(b, "sk-123")[..], b"nothing here");
    }
}
