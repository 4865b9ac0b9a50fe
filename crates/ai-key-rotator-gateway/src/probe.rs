//! Probing a key: the cheapest authenticated call that proves a key works for its provider
//! (its model list: OpenAI and its compatibles and Anthropic `GET /v1/models`, Gemini
//! `GET /v1beta/models`, Azure `GET /openai/models`, as the core's family table says), never a
//! paid completion. The answer is classified by the core and reported against the key, and
//! the outcome comes back as data.
//!
//! Used by the admin action "probe now" and by any background re-check of keys that rest
//! (a depleted key whose provider gave no reset time): both hold a [`Gateway`], so the probe
//! goes through the gateway's own upstream client (its timeouts, its TLS) to the configured
//! upstream and nowhere else.

use std::sync::Arc;

use ai_key_rotator::classify::{self, Verdict};
use ai_key_rotator::{CredentialId, Fingerprint, ReportOutcome};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};

use crate::Gateway;
use crate::proxy::{ProviderRoute, Shared};

/// The most of a probe's answer read to classify it.
const MAX_PROBE_BODY: usize = 64 * 1024;

/// What a probe found.
// One outcome per probe, off the request path: its size costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProbeOutcome {
    /// The provider answered. The verdict was reported against the key (a rate limit cools
    /// it, an invalid key disables it); `effect` says what that changed. A success changes
    /// nothing by itself: a key that rests is brought back by whoever asked, deliberately
    /// (a model list can answer while completions are still rate limited).
    Answered {
        /// The key probed.
        credential: CredentialId,
        /// The provider's HTTP status.
        status: u16,
        /// What the answer means for the key.
        verdict: Verdict,
        /// What reporting it changed.
        effect: ReportOutcome,
    },
    /// No answer (refused, timed out, a broken connection): nothing is said about the key and
    /// nothing was reported.
    Unreachable {
        /// The key probed.
        credential: CredentialId,
        /// Why, without the key or the request.
        reason: String,
    },
}

impl ProbeOutcome {
    /// Whether the provider accepted the key.
    pub fn works(&self) -> bool {
        matches!(self, ProbeOutcome::Answered { verdict, .. } if verdict.is_success())
    }

    /// The key probed.
    pub fn credential(&self) -> &CredentialId {
        match self {
            ProbeOutcome::Answered { credential, .. }
            | ProbeOutcome::Unreachable { credential, .. } => credential,
        }
    }
}

/// Why a probe could not be sent at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// No provider of that name is configured.
    #[error("unknown provider `{0}`")]
    UnknownProvider(String),
    /// The provider has no key with that fingerprint.
    #[error("provider `{provider}` has no key with fingerprint {fingerprint}")]
    UnknownKey {
        /// The provider.
        provider: String,
        /// The fingerprint asked for.
        fingerprint: Fingerprint,
    },
    /// The key cannot be written into a request header (control characters).
    #[error("provider `{provider}` key {credential}: cannot be sent in a header")]
    Malformed {
        /// The provider.
        provider: String,
        /// The key, by label and fingerprint.
        credential: CredentialId,
    },
}

/// Probes the key of `provider` with this fingerprint now, through `gateway`'s upstream
/// client, and reports the classified answer to its rotator.
///
/// ```no_run
/// # async fn run(gateway: ai_key_rotator_gateway::Gateway) -> Result<(), Box<dyn std::error::Error>> {
/// use ai_key_rotator::Fingerprint;
/// use ai_key_rotator_gateway::probe::{probe_key, ProbeOutcome};
///
/// let fingerprint: Fingerprint = "ba7816bf8f01cfea".parse()?;
/// match probe_key(&gateway, "openai", fingerprint).await? {
///     outcome if outcome.works() => println!("{} works", outcome.credential()),
///     outcome => println!("{outcome:?}"),
/// }
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`ProbeError`] when the provider or key is unknown, or the key cannot be sent.
pub async fn probe_key(
    gateway: &Gateway,
    provider: &str,
    fingerprint: Fingerprint,
) -> Result<ProbeOutcome, ProbeError> {
    probe(&gateway.shared, provider, fingerprint).await
}

/// [`probe_key`] for code that holds the gateway's shared state (admin actions, background
/// tasks).
pub(crate) async fn probe(
    shared: &Shared,
    provider: &str,
    fingerprint: Fingerprint,
) -> Result<ProbeOutcome, ProbeError> {
    let routes = shared.routes.load_full();
    let route: Arc<ProviderRoute> = routes
        .by_name(provider)
        .cloned()
        .ok_or_else(|| ProbeError::UnknownProvider(provider.to_owned()))?;
    let credential = shared
        .rotator
        .credential(provider, fingerprint)
        .ok_or_else(|| ProbeError::UnknownKey {
            provider: provider.to_owned(),
            fingerprint,
        })?;
    let id = credential.id().clone();
    let mut headers = http::HeaderMap::new();
    route
        .dialect
        .write_key(&mut headers, credential.expose_key())
        .map_err(|_| ProbeError::Malformed {
            provider: provider.to_owned(),
            credential: id.clone(),
        })?;
    let Some(uri) = probe_uri(&route) else {
        return Ok(ProbeOutcome::Unreachable {
            credential: id,
            reason: "the probe path does not form a valid URI".into(),
        });
    };
    let mut request = http::Request::new(Full::new(Bytes::new()));
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    let response = match routes.client.send(request).await {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(provider, credential = %id, error = %e, "probe: no answer");
            return Ok(ProbeOutcome::Unreachable {
                credential: id,
                reason: e.to_string(),
            });
        }
    };
    let status = response.status().as_u16();
    let (parts, body) = response.into_parts();
    // A 2xx is classified from its headers (the body, a model list, says nothing about the
    // key); an error body is read, up to a bound, for its facts.
    let bytes = if (200..300).contains(&status) {
        drop(body);
        Bytes::new()
    } else {
        match http_body_util::Limited::new(body, MAX_PROBE_BODY)
            .collect()
            .await
        {
            Ok(c) => c.to_bytes(),
            Err(_) => Bytes::new(),
        }
    };
    let verdict = classify::classify(
        route.family,
        &classify::Response::new(status, &parts.headers, &bytes),
        shared.rotator.now(),
    );
    let effect = shared.rotator.report(&credential, &verdict);
    tracing::info!(provider, credential = %id, status, verdict = verdict.reason(), ?effect,
        "probe answered");
    Ok(ProbeOutcome::Answered {
        credential: id,
        status,
        verdict,
        effect,
    })
}

/// The upstream's scheme, authority and base path, and the family's probe path.
fn probe_uri(route: &ProviderRoute) -> Option<http::Uri> {
    let path = format!("{}{}", route.base_path, route.family.info().probe_path);
    http::Uri::builder()
        .scheme(route.scheme.clone())
        .authority(route.authority.clone())
        .path_and_query(path)
        .build()
        .ok()
}
