//! Leases: a credential handed out for one request, counted in flight until dropped, and the
//! place where the request's outcome is reported.

use std::fmt;
use std::sync::atomic::Ordering;

use crate::classify::{Family, Headers, ModelName, Response, Verdict, classify};
use crate::clock::Timestamp;
use crate::credential::Credential;
use crate::rotator::{KeyRotator, ReportOutcome};
use crate::strategy::Strategy;

/// What [`KeyRotator::acquire_with`] takes into account.
#[derive(Debug, Clone, Default)]
pub struct AcquireOptions {
    /// Keep this session (a conversation) on one key while it is available: prompt caches are
    /// per key or organization.
    pub session: Option<String>,
    /// Tokens the request is expected to use, taken from token budgets up front and corrected
    /// by [`Lease::success`].
    pub tokens: u64,
    /// The model the request is for: keys resting for this model only (a per-model limit) are
    /// skipped. Without one, such keys are handed out as usual.
    pub model: Option<ModelName>,
    /// The hash of the request's stable prompt prefix ([`prefix_hash`](crate::prefix_hash)):
    /// requests with the same prefix go to the same available key, so the provider's prompt
    /// cache for it keeps hitting. It takes precedence over the provider's strategy; a
    /// [`session`](Self::session) takes precedence over it.
    pub affinity: Option<u64>,
}

impl AcquireOptions {
    /// Options with a session id.
    pub fn session(mut self, session: impl Into<String>) -> Self {
        self.session = Some(session.into());
        self
    }

    /// Options for a request to `model` (see [`AcquireOptions::model`]). A text that is not a
    /// model name (see [`ModelName`]) is ignored: no per-model cooldown can exist for it, since
    /// the classifier records only model names.
    ///
    /// ```
    /// use ai_key_rotator::AcquireOptions;
    ///
    /// assert_eq!(AcquireOptions::default().model("gpt-4o").model.unwrap().as_str(), "gpt-4o");
    /// assert!(AcquireOptions::default().model("not a model").model.is_none());
    /// ```
    pub fn model(mut self, model: &str) -> Self {
        self.model = ModelName::new(model).ok();
        self
    }

    /// Options for a request whose stable prompt prefix hashes to `hash` (see
    /// [`AcquireOptions::affinity`] and [`prefix_hash`](crate::prefix_hash)).
    ///
    /// ```
    /// use ai_key_rotator::classify::Api;
    /// use ai_key_rotator::{AcquireOptions, KeyRotator, ProviderConfig, prefix_hash};
    ///
    /// let rotator = KeyRotator::builder()
    ///     .provider("openai", ProviderConfig::new().credential("sk-a").credential("sk-b"))
    ///     .build()
    ///     .unwrap();
    /// let body = br#"{"messages":[{"role":"system","content":"S"},{"role":"user","content":"U"}]}"#;
    /// let options = AcquireOptions::default().affinity(prefix_hash(Api::OpenAi, body).unwrap());
    /// let first = rotator.acquire_with("openai", &options).unwrap().credential().id().clone();
    /// for _ in 0..10 {
    ///     let lease = rotator.acquire_with("openai", &options).unwrap();
    ///     assert_eq!(lease.credential().id(), &first);
    /// }
    /// assert_eq!(rotator.provider_status("openai").unwrap().affinity_placed, 11);
    /// ```
    pub fn affinity(mut self, hash: u64) -> Self {
        self.affinity = Some(hash);
        self
    }

    /// Options with a token estimate.
    pub fn tokens(mut self, tokens: u64) -> Self {
        self.tokens = tokens;
        self
    }
}

/// No lease could be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AcquireError {
    /// The provider is not configured.
    #[error("unknown provider `{provider}`")]
    UnknownProvider {
        /// The provider.
        provider: String,
    },
    /// Several keys of the provider failed alike for a cause not about any key (a region
    /// block, an outage): the provider backs off as a whole until `retry_at`, when one request
    /// probes it.
    #[error("provider `{provider}` is degraded ({}) until {retry_at}", .cause.as_str())]
    ProviderDegraded {
        /// The provider.
        provider: String,
        /// What its keys failed with.
        cause: crate::ProviderCause,
        /// When to try again.
        retry_at: Timestamp,
    },
    /// Every key is cooling, disabled or over budget.
    #[error("no key of provider `{provider}` is available{}", retry_text(*.retry_at))]
    Unavailable {
        /// The provider.
        provider: String,
        /// The earliest time a key may be available; `None` if none will be by itself (all
        /// disabled).
        retry_at: Option<Timestamp>,
    },
}

fn retry_text(at: Option<Timestamp>) -> String {
    match at {
        Some(t) => format!(" until {t}"),
        None => String::new(),
    }
}

impl AcquireError {
    /// The earliest time a key may be available, if known.
    pub fn retry_at(&self) -> Option<Timestamp> {
        match self {
            AcquireError::Unavailable { retry_at, .. } => *retry_at,
            AcquireError::ProviderDegraded { retry_at, .. } => Some(*retry_at),
            AcquireError::UnknownProvider { .. } => None,
        }
    }
}

/// A credential held for one request.
///
/// Counted in flight (for `least-in-flight` and concurrency budgets) until dropped. Report how
/// the request went with [`report`](Lease::report), [`report_response`](Lease::report_response)
/// or [`success`](Lease::success); a lease dropped without a report counts as neither success
/// nor failure (for example when the caller's future was cancelled).
///
/// A lease borrows its rotator and holds its credential's snapshot by an owned reference (one
/// reference-count increment per lease), not by the short-lived arc-swap guard `get_key` uses:
/// a lease lives as long as an upstream request. To move work onto another task, move a clone
/// of the [`KeyRotator`] there and acquire inside it.
pub struct Lease<'r> {
    rotator: &'r KeyRotator,
    credential: Credential,
    tokens: u64,
    /// The model the lease was acquired for, if the caller named one.
    model: Option<ModelName>,
    /// Whether the credential's in-flight count includes this lease: only providers whose
    /// strategy reads it (`least-in-flight`) keep one, so that other leases cost no shared
    /// write. Budgets with a concurrency cap keep their own count.
    counted: bool,
}

impl<'r> Lease<'r> {
    pub(crate) fn new(
        rotator: &'r KeyRotator,
        credential: Credential,
        tokens: u64,
        model: Option<ModelName>,
    ) -> Self {
        let counted = credential.provider_snap().shared.strategy == Strategy::LeastInFlight;
        Lease {
            rotator,
            credential: credential.detach(),
            tokens,
            model,
            counted,
        }
    }

    /// The credential.
    pub fn credential(&self) -> &Credential {
        &self.credential
    }

    /// The API key, to be written into the request.
    pub fn expose_key(&self) -> &str {
        self.credential.expose_key()
    }

    /// The provider the credential belongs to.
    pub fn provider(&self) -> &str {
        self.credential.provider()
    }

    /// The family whose responses the provider sends.
    pub fn family(&self) -> Family {
        self.credential.provider_snap().shared.family
    }

    /// Classifies a response without reporting it.
    pub fn classify<H: Headers + ?Sized>(&self, response: &Response<'_, H>) -> Verdict {
        classify(self.family(), response, self.rotator.now())
    }

    /// Reports the verdict on the request (see [`KeyRotator::report`]) and ends the lease.
    ///
    /// A limit the provider counts per model rests the key for that model only when the lease
    /// was acquired for a model ([`AcquireOptions::model`]). A caller that names no model
    /// cannot be steered away from the key for one model, so for it the limit cools the key
    /// as a whole (with its scope), as before per-model limits were told apart.
    pub fn report(self, verdict: &Verdict) -> ReportOutcome {
        self.rotator
            .inner
            .report(&self.credential, verdict, self.model.is_some())
    }

    /// The model the lease was acquired for, if any.
    pub fn model(&self) -> Option<ModelName> {
        self.model
    }

    /// Classifies and reports the response, and ends the lease.
    pub fn report_response<H: Headers + ?Sized>(self, response: &Response<'_, H>) -> Verdict {
        let verdict = self.classify(response);
        self.report(&verdict);
        verdict
    }

    /// Reports that the request got no answer (see
    /// [`KeyRotator::report_transport_failure`]) and ends the lease.
    pub fn transport_failed(self) -> ReportOutcome {
        self.rotator.report_transport_failure(&self.credential)
    }

    /// Reports a success, with the tokens the request really used if known, and ends the
    /// lease.
    pub fn success(self, tokens_used: Option<u64>) {
        self.settle_tokens(tokens_used);
        self.rotator.report_success(&self.credential);
    }

    /// Corrects token budgets from the estimate to the real use.
    fn settle_tokens(&self, used: Option<u64>) {
        let Some(used) = used else { return };
        crate::rotator::correct_tokens(&self.credential, self.rotator.now(), self.tokens, used);
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let slot = self.credential.slot_arc();
        if self.counted {
            slot.in_flight.fetch_sub(1, Ordering::Release);
        }
        if let Some(usage) = &slot.budget {
            usage.release();
        }
        if let Some(scope) = &slot.scope
            && let Some((_, usage)) = self
                .credential
                .provider_snap()
                .shared
                .scope_budgets
                .get(scope)
        {
            usage.release();
        }
    }
}

impl fmt::Debug for Lease<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("credential", &self.credential)
            .field("tokens", &self.tokens)
            .finish_non_exhaustive()
    }
}
