//! Everything the gateway asks of the rotator for one request, in one place: the core's
//! retry loop ([`KeyRotator::execute_observed`]) with an HTTP request as its attempt.
//!
//! The loop's rules are the core's, the same in-process and here: a key the provider blames is
//! reported and replaced at once; when a provider has no key left the next of its fallback
//! chain is tried; server errors (5xx, an overload) and transport failures (the upstream could
//! not be reached, broke the connection, or timed out) are retried after a jittered backoff,
//! within `max_attempts` and the optional deadline. The gateway only translates HTTP: it
//! sends, classifies the answer, and hands the value on; the loop reports the verdict.
//!
//! A successful answer is the value as it is: its body is not buffered. An event stream's
//! opening events are held first ([`preamble`](super::preamble)): an error event among them
//! makes the attempt fail with that event's verdict, so another key is tried and the client
//! sees one clean stream. After the first content the stream passes through, watched for
//! error events, which are reported against the key ([`StreamWatch`]).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use ai_key_rotator::classify::{self, Family, Verdict};
use ai_key_rotator::execute::{
    Attempt, AttemptOutcome, AttemptRecord, ExecuteError, ExecuteErrorKind, Observer, Plan,
};
use ai_key_rotator::{AcquireOptions, Credential, KeyRotator, ReportOutcome, Timestamp};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body_util::{BodyExt, Full};

use super::body::{GatewayBody, SseScanner, Upstream};
use super::preamble::{self, Held};
use super::tokens::{BodyUsage, StreamUsage, Tokens};
use super::{ProviderRoute, Routes, error_response, filter_response_headers, rate_limited};
use crate::ops::metrics::Metrics;

/// The most of an upstream error body read to classify it. Error bodies are small; a larger
/// one counts as a broken answer.
const MAX_ERROR_BODY: usize = 1024 * 1024;

/// The response headers that tell the client how much the pool has left for the route: the
/// sums, over the provider's available keys, of the remaining requests and tokens each key's
/// last success reported. Absent when no available key has reported that figure.
pub(crate) const POOL_REMAINING_REQUESTS: &str = "x-akr-pool-remaining-requests";
/// See [`POOL_REMAINING_REQUESTS`].
pub(crate) const POOL_REMAINING_TOKENS: &str = "x-akr-pool-remaining-tokens";
/// The number of keys of the route's provider available now.
pub(crate) const POOL_AVAILABLE_KEYS: &str = "x-akr-pool-available-keys";

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

/// Sends `req` through `primary` (then its fallbacks), rotating keys as responses blame them
/// and retrying server errors and transport failures, as the core's loop decides.
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
    let mut response = run(routes, rotator, metrics, primary, &req, &mut served).await;
    add_headroom(&mut response, rotator, &served.provider);
    response.extensions_mut().insert(served);
    response
}

/// The plan of one request: the route's, with the client's session, model, prompt-prefix hash
/// and token estimate when it has them.
fn plan<'p>(
    primary: &'p ProviderRoute,
    options: &AcquireOptions,
    own: &'p mut Option<Plan>,
) -> &'p Plan {
    if options.session.is_none()
        && options.tokens == 0
        && options.model.is_none()
        && options.affinity.is_none()
    {
        return &primary.plan;
    }
    let mut plan = primary.plan.clone().tokens(options.tokens);
    if let Some(s) = &options.session {
        plan = plan.session(s.clone());
    }
    if let Some(m) = &options.model {
        plan = plan.model(m.as_str());
    }
    if let Some(h) = options.affinity {
        plan = plan.affinity(h);
    }
    own.insert(plan)
}

async fn run(
    routes: &Routes,
    rotator: &KeyRotator,
    metrics: &Metrics,
    primary: &Arc<ProviderRoute>,
    req: &Forward,
    served: &mut Served,
) -> Response<GatewayBody> {
    let mut own = None;
    let plan = plan(primary, &req.options, &mut own);
    let mut observer = Observe { metrics };
    let mut current: Arc<str> = Arc::clone(&primary.name);
    let result = rotator
        .execute_observed(plan, &mut observer, |attempt| {
            // Book-keeping happens here, before the attempt's future, which borrows nothing
            // of it.
            let provider = routes.by_name(attempt.provider()).cloned();
            if let Some(p) = &provider {
                if attempt.number() > 1 {
                    metrics.retry(&p.name);
                }
                if p.name != current {
                    metrics.failover(&primary.name, &p.name);
                    current = Arc::clone(&p.name);
                }
                served.provider = Arc::clone(&p.name);
                served.route = p.route.clone();
            }
            served.credential = Some(attempt.credential().id().clone());
            served.attempts = attempt.number();
            send(routes, rotator, metrics, provider, attempt, req)
        })
        .await;
    match result {
        Ok(response) => response,
        Err(e) => gave_up(primary, e, rotator),
    }
}

/// Counts and logs what the loop's reports changed.
struct Observe<'a> {
    metrics: &'a Metrics,
}

impl Observer for Observe<'_> {
    fn reported(&mut self, record: &AttemptRecord, outcome: &ReportOutcome) {
        if let AttemptOutcome::Verdict(verdict) = &record.outcome {
            note_outcome(
                &record.provider,
                &record.credential,
                verdict,
                outcome,
                self.metrics,
            );
        }
    }

    fn backing_off(&mut self, until: Timestamp) {
        tracing::debug!(%until, "retrying after a server error or transport failure");
    }
}

/// Why an attempt got no answer from the upstream.
#[derive(Debug)]
struct NoAnswer {
    /// The upstream was silent for the read timeout (504), rather than unreachable or broken
    /// (502).
    timeout: bool,
}

type Sent = Result<(Verdict, Response<GatewayBody>), NoAnswer>;

async fn send(
    routes: &Routes,
    rotator: &KeyRotator,
    metrics: &Metrics,
    provider: Option<Arc<ProviderRoute>>,
    attempt: Attempt,
    req: &Forward,
) -> Sent {
    let Some(provider) = provider else {
        // A reload removed the provider while its key was leased: nothing to send it to.
        return Ok((
            Verdict::ClientError,
            error_response(
                super::dialect::Dialect::OpenAi,
                StatusCode::SERVICE_UNAVAILABLE,
                "api_error",
                "this provider was removed by a reload",
            ),
        ));
    };
    let credential = attempt.credential().clone();
    let dialect = provider.dialect;
    let mut headers = req.headers.clone();
    if dialect
        .write_key(&mut headers, credential.expose_key())
        .is_err()
    {
        tracing::error!(provider = %provider.name, credential = %credential.id(),
            "key cannot be written into a header");
        // Not the request's fault, but no other attempt can mend a configuration: answer at
        // once (a client error ends the loop and changes no key's state).
        return Ok((
            Verdict::ClientError,
            error_response(
                dialect,
                StatusCode::INTERNAL_SERVER_ERROR,
                "api_error",
                "the gateway's key for this provider is malformed",
            ),
        ));
    }
    // The upstream's scheme and host come only from configuration, by construction: the
    // client supplies nothing but the (checked) path and query.
    let Some(uri) = upstream_uri(&provider, &req.rest) else {
        return Ok((
            Verdict::ClientError,
            error_response(
                dialect,
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid request path",
            ),
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
            tracing::warn!(provider = %provider.name, credential = %credential.id(), timeout,
                error = %e, "upstream request failed");
            provider
                .metrics
                .upstream_status(if timeout { 504 } else { 502 });
            return Err(NoAnswer { timeout });
        }
    };
    let status = response.status();
    provider.metrics.upstream_status(status.as_u16());
    provider.metrics.upstream_latency(started.elapsed());
    let (mut parts, mut body) = response.into_parts();
    filter_response_headers(&mut parts.headers);

    if status.is_success() {
        // A 2xx is classified from its headers alone: the remaining budget may already say
        // the key must rest.
        let verdict = attempt.classify(&classify::Response::new(
            status.as_u16(),
            &parts.headers,
            b"",
        ));
        let mut watch = StreamWatch {
            scanner: SseScanner::default(),
            family: provider.family,
            provider: Arc::clone(&provider.name),
            credential,
            metrics: metrics.clone(),
            rotator: rotator.clone(),
            usage: Usage::new(is_event_stream(&parts.headers), req.options.tokens),
        };
        if !watch.usage.is_stream() {
            // A JSON body: watched only for its usage, as it passes.
            let body = GatewayBody::Upstream(Box::new(Upstream {
                held: VecDeque::new(),
                inner: body,
                watch: Some(watch),
            }));
            return Ok((verdict, Response::from_parts(parts, body)));
        }
        if !routes.preamble.enabled() {
            let body = GatewayBody::Upstream(Box::new(Upstream {
                held: VecDeque::new(),
                inner: body,
                watch: Some(watch),
            }));
            return Ok((verdict, Response::from_parts(parts, body)));
        }
        let (held, preamble) = preamble::hold(&mut body, provider.family, routes.preamble, || {
            rotator.now()
        })
        .await;
        return match held {
            Held::Pass => {
                for late in &preamble.late_errors {
                    watch.on_verdict(late);
                }
                watch.scanner = preamble.scanner;
                watch.usage.go_on_from(preamble.usage);
                let body = GatewayBody::Upstream(Box::new(Upstream {
                    held: preamble.frames.into(),
                    inner: body,
                    watch: (!preamble.ended).then_some(watch),
                }));
                Ok((verdict, Response::from_parts(parts, body)))
            }
            Held::Error(verdict) => {
                metrics.stream_error(&provider.name);
                tracing::warn!(provider = %provider.name, credential = %watch.credential.id(),
                    reason = verdict.reason(), "error event before the stream's first content");
                // Should no other attempt do better, the client gets this stream as it came,
                // up to and including its error event; the rest is not waited for. Like an
                // error body, an error event may echo the key: it is cut out.
                parts.headers.remove(http::header::CONTENT_LENGTH);
                let held = Bytes::from(preamble.frames.concat());
                let body = GatewayBody::full(redact(held, watch.credential.expose_key()));
                Ok((verdict, Response::from_parts(parts, body)))
            }
            Held::Broken(e) => {
                let timeout = e.is::<crate::upstream::ReadTimeout>();
                tracing::warn!(provider = %provider.name, credential = %watch.credential.id(),
                    timeout, error = %e, "upstream stream broke before its first content");
                Err(NoAnswer { timeout })
            }
        };
    }

    let bytes = match http_body_util::Limited::new(body, MAX_ERROR_BODY)
        .collect()
        .await
    {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            tracing::warn!(provider = %provider.name, credential = %credential.id(),
                status = status.as_u16(), error = %e,
                "the upstream's error response could not be read");
            return Err(NoAnswer { timeout: false });
        }
    };
    let verdict = attempt.classify(&classify::Response::new(
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
    parts.headers.remove(http::header::CONTENT_LENGTH);
    Ok((
        verdict,
        Response::from_parts(parts, GatewayBody::full(bytes)),
    ))
}

/// The answer when the loop gave up: 429 with the exact time the first key of the chain comes
/// back when no key was left; else the last upstream answer (the client learns what the
/// provider said), or 502/504 when the last attempt got none.
fn gave_up(
    primary: &ProviderRoute,
    e: ExecuteError<Response<GatewayBody>, NoAnswer>,
    rotator: &KeyRotator,
) -> Response<GatewayBody> {
    let dialect = primary.dialect;
    let now = rotator.now();
    // No upstream answer to pass on, and the provider's circuit is open (several keys failed
    // alike for a cause not about any key): 503, not "every key is cooling".
    if e.last.is_none()
        && let Some(at) = e.retry_at
        && rotator
            .provider_status(&primary.name)
            .is_some_and(|s| s.circuit.is_some())
    {
        return provider_degraded(primary, at, now);
    }
    match (e.kind, e.retry_at, e.last) {
        (ExecuteErrorKind::NoKeyAvailable, Some(at), _) | (_, Some(at), None) => {
            let wait_ms = at.as_millis().saturating_sub(now.as_millis());
            let secs = wait_ms.div_ceil(1000).max(1);
            rate_limited(
                dialect,
                secs,
                &format!("every key of this provider is cooling down; retry in {secs} s"),
            )
        }
        (_, _, Some(Ok(response))) => response,
        (_, _, Some(Err(NoAnswer { timeout: true }))) => error_response(
            dialect,
            StatusCode::GATEWAY_TIMEOUT,
            "api_error",
            "the upstream provider timed out",
        ),
        (_, _, Some(Err(NoAnswer { timeout: false }))) => error_response(
            dialect,
            StatusCode::BAD_GATEWAY,
            "api_error",
            "the upstream provider could not be reached",
        ),
        (ExecuteErrorKind::DeadlineExceeded, None, None) => error_response(
            dialect,
            StatusCode::GATEWAY_TIMEOUT,
            "api_error",
            "the upstream provider did not answer before the retry deadline",
        ),
        (_, None, None) => error_response(
            dialect,
            StatusCode::SERVICE_UNAVAILABLE,
            "api_error",
            "no usable key for this provider",
        ),
    }
}

/// The provider's circuit is open (several keys failed alike for a cause not about any key):
/// 503 with the time its next probe may go in `retry-after`, in the provider's error shape.
fn provider_degraded(
    primary: &ProviderRoute,
    at: Timestamp,
    now: Timestamp,
) -> Response<GatewayBody> {
    let secs = at
        .as_millis()
        .saturating_sub(now.as_millis())
        .div_ceil(1000)
        .max(1);
    let mut response = error_response(
        primary.dialect,
        StatusCode::SERVICE_UNAVAILABLE,
        "api_error",
        &format!("the provider is failing for every key; retry in {secs} s"),
    );
    response
        .headers_mut()
        .insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
    response
}

/// Adds the pool's headroom for the provider that answered (see [`POOL_REMAINING_REQUESTS`]).
fn add_headroom(response: &mut Response<GatewayBody>, rotator: &KeyRotator, provider: &str) {
    let Some(h) = rotator.headroom(provider) else {
        return;
    };
    let headers = response.headers_mut();
    headers.insert(POOL_AVAILABLE_KEYS, HeaderValue::from(h.available));
    if let Some(n) = h.requests {
        headers.insert(POOL_REMAINING_REQUESTS, HeaderValue::from(n));
    }
    if let Some(n) = h.tokens {
        headers.insert(POOL_REMAINING_TOKENS, HeaderValue::from(n));
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

/// Watches a 2xx body as it passes: an event stream for an error event (Anthropic's mid-stream
/// `overloaded_error`, an OpenAI `{"error":…}` chunk), which it reports; either kind for the
/// tokens the answer says it used, which it counts against the key when the body ends (or is
/// dropped, when the client goes away first).
#[derive(Debug)]
pub(crate) struct StreamWatch {
    scanner: SseScanner,
    family: Family,
    provider: Arc<str>,
    credential: Credential,
    metrics: Metrics,
    rotator: KeyRotator,
    usage: Usage,
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
            usage,
        } = self;
        let Usage::Stream { usage, .. } = usage else {
            usage.feed_json(data);
            return;
        };
        scanner.feed(data, &mut |event, data| {
            usage.on_event(data);
            on_event(*family, provider, credential, metrics, rotator, event, data)
        });
    }

    /// Reports an error event found while the preamble was held, after the first content.
    fn on_verdict(&self, verdict: &Verdict) {
        report_stream_error(
            &self.provider,
            &self.credential,
            &self.metrics,
            &self.rotator,
            verdict,
        );
    }

    pub(crate) fn finish(&mut self) {
        let StreamWatch {
            scanner,
            family,
            provider,
            credential,
            metrics,
            rotator,
            usage,
        } = self;
        if let Usage::Stream { usage, .. } = usage {
            scanner.finish(&mut |event, data| {
                usage.on_event(data);
                on_event(*family, provider, credential, metrics, rotator, event, data)
            });
        }
        self.count_tokens();
    }

    /// Counts the answer's tokens against the key (its statistics, and the core's token
    /// budgets, corrected from the request's estimate), once.
    fn count_tokens(&mut self) {
        let Some((tokens, estimate)) = self.usage.take() else {
            return;
        };
        let fingerprint = self.credential.id().fingerprint;
        self.metrics
            .tokens(&self.provider, fingerprint, tokens.input, tokens.output);
        self.rotator.tokens_used(
            &self.credential,
            estimate,
            tokens.input.saturating_add(tokens.output),
        );
    }
}

impl Drop for StreamWatch {
    fn drop(&mut self) {
        // The client went away before the end (or the stream ended while its preamble was
        // held): what the answer said so far still counts.
        self.count_tokens();
    }
}

/// What a watch reads the tokens from: a JSON body's usage object, or a stream's events.
#[derive(Debug)]
enum Usage {
    Json {
        usage: BodyUsage,
        estimate: u64,
    },
    Stream {
        usage: StreamUsage,
        estimate: u64,
    },
    /// Counted.
    Done,
}

impl Usage {
    fn new(stream: bool, estimate: u64) -> Usage {
        if stream {
            Usage::Stream {
                usage: StreamUsage::default(),
                estimate,
            }
        } else {
            Usage::Json {
                usage: BodyUsage::default(),
                estimate,
            }
        }
    }

    fn is_stream(&self) -> bool {
        matches!(self, Usage::Stream { .. })
    }

    fn feed_json(&mut self, data: &[u8]) {
        if let Usage::Json { usage, .. } = self {
            usage.feed(data);
        }
    }

    /// Goes on from what a held preamble read.
    fn go_on_from(&mut self, held: StreamUsage) {
        if let Usage::Stream { usage, .. } = self {
            *usage = held;
        }
    }

    /// The tokens seen and the request's estimate, once; `None` when none were seen.
    fn take(&mut self) -> Option<(Tokens, u64)> {
        match std::mem::replace(self, Usage::Done) {
            Usage::Json { usage, estimate } => Some((usage.tokens()?, estimate)),
            Usage::Stream { usage, estimate } => Some((usage.tokens()?, estimate)),
            Usage::Done => None,
        }
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
    let Some(verdict) = preamble::stream_error(family, event, data, rotator.now()) else {
        return;
    };
    report_stream_error(provider, credential, metrics, rotator, &verdict);
}

/// Reports an error event that came after the stream's first content: too late to retry, but
/// the key's state (and, for an overload, the provider's) learns of it.
fn report_stream_error(
    provider: &str,
    credential: &Credential,
    metrics: &Metrics,
    rotator: &KeyRotator,
    verdict: &Verdict,
) {
    metrics.stream_error(provider);
    tracing::warn!(provider, credential = %credential.id(), reason = verdict.reason(),
        "error event inside a stream");
    let outcome = rotator.report(credential, verdict);
    note_outcome(provider, credential.id(), verdict, &outcome, metrics);
}

fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
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
