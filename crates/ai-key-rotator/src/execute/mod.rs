//! `execute`: one call that runs a request with failover across keys and providers.
//!
//! The loop every user of the original wrote by hand (get a key, call, on 429 mark it and try
//! again, give up when none is left), done once and properly: a key the provider blames is
//! reported and replaced at once; when the provider has no key left, the next provider of the
//! plan's chain is tried; server errors are retried after a jittered backoff; the loop waits
//! for a key to come back only when that happens before the caller's deadline, and otherwise
//! fails fast with the time to retry.
//!
//! ```
//! use ai_key_rotator::classify::{Usage, Verdict};
//! use ai_key_rotator::execute::Plan;
//! use ai_key_rotator::{KeyRotator, ProviderConfig};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let rotator = KeyRotator::builder()
//!     .provider("openai", ProviderConfig::new().credential("sk-a").credential("sk-b"))
//!     .provider("anthropic", ProviderConfig::new().credential("sk-ant"))
//!     .build()?;
//! let plan = Plan::new("openai").fallback("anthropic");
//! let answer = rotator
//!     .execute(&plan, |attempt| async move {
//!         // Send the request with attempt.expose_key(), adapted to attempt.provider(), then
//!         // classify the response: `attempt.classify(&Response::new(status, &headers, body))`.
//!         let verdict = Verdict::Ok(Usage::default());
//!         Ok::<_, std::io::Error>((verdict, format!("answered by {}", attempt.provider())))
//!     })
//!     .await?;
//! assert_eq!(answer, "answered by openai");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod error;
mod observe;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use error::{AttemptOutcome, AttemptRecord, ExecuteError, ExecuteErrorKind};
pub use observe::Observer;

use crate::classify::{Headers, Response, Verdict, classify};
use crate::clock::{Clock, Timestamp};
use crate::credential::Credential;
use crate::lease::{AcquireError, AcquireOptions};
use crate::rotator::{KeyRotator, ReportOutcome};

/// The shortest wait for a key, so that waiting never spins.
const MIN_WAIT: Duration = Duration::from_millis(10);

/// How [`KeyRotator::execute`] runs a request.
#[derive(Debug, Clone)]
pub struct Plan {
    providers: Vec<String>,
    max_attempts: u32,
    attempt_timeout: Option<Duration>,
    deadline: Option<Duration>,
    backoff_base: Duration,
    backoff_max: Duration,
    options: AcquireOptions,
}

impl Plan {
    /// A plan for `provider`: at most 4 attempts, no timeouts, server errors retried after
    /// 200 ms, 400 ms, … (at most 5 s), with jitter.
    pub fn new(provider: impl Into<String>) -> Self {
        Plan {
            providers: vec![provider.into()],
            max_attempts: 4,
            attempt_timeout: None,
            deadline: None,
            backoff_base: Duration::from_millis(200),
            backoff_max: Duration::from_secs(5),
            options: AcquireOptions::default(),
        }
    }

    /// Adds a provider to fall back to when every earlier one has no key left.
    pub fn fallback(mut self, provider: impl Into<String>) -> Self {
        self.providers.push(provider.into());
        self
    }

    /// The most attempts in all (at least 1).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// A time limit for each attempt; an attempt that takes longer counts as a transport
    /// failure and is retried.
    pub fn attempt_timeout(mut self, d: Duration) -> Self {
        self.attempt_timeout = Some(d);
        self
    }

    /// A time limit for the whole call, attempts and waits included. With a deadline, the call
    /// waits for a cooling key that comes back before it; without one, it never waits for keys.
    pub fn deadline(mut self, d: Duration) -> Self {
        self.deadline = Some(d);
        self
    }

    /// Backoff after server errors and transport failures: `base · 2^(k−1)` for the k-th,
    /// at most `max`, with jitter over its upper half; a provider's `retry-after` wins.
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.backoff_base = base;
        self.backoff_max = max.max(base);
        self
    }

    /// Keeps the request's session on one key (see [`AcquireOptions::session`]).
    pub fn session(mut self, session: impl Into<String>) -> Self {
        self.options.session = Some(session.into());
        self
    }

    /// Keeps requests with the same stable prompt prefix on one key (see
    /// [`AcquireOptions::affinity`]).
    pub fn affinity(mut self, hash: u64) -> Self {
        self.options.affinity = Some(hash);
        self
    }

    /// The model the request is for, so that keys resting for that model only are skipped
    /// (see [`AcquireOptions::model`]).
    pub fn model(mut self, model: &str) -> Self {
        self.options = self.options.model(model);
        self
    }

    /// The tokens the request is expected to use, for token budgets.
    pub fn tokens(mut self, tokens: u64) -> Self {
        self.options.tokens = tokens;
        self
    }

    /// The providers, primary first.
    pub fn providers(&self) -> &[String] {
        &self.providers
    }
}

/// One attempt, handed to the request closure: the key to use and where it belongs.
#[derive(Debug)]
pub struct Attempt {
    credential: Credential,
    number: u32,
    clock: Arc<dyn Clock>,
}

impl Attempt {
    /// The credential to send the request with.
    pub fn credential(&self) -> &Credential {
        &self.credential
    }

    /// The API key, to be written into the request.
    pub fn expose_key(&self) -> &str {
        self.credential.expose_key()
    }

    /// The provider of this attempt: adapt the request to it (the fallback hook).
    pub fn provider(&self) -> &str {
        self.credential.provider()
    }

    /// 1 for the first attempt, 2 for the second, …
    pub fn number(&self) -> u32 {
        self.number
    }

    /// Classifies the provider's response with the provider's family, for the closure's
    /// result.
    pub fn classify<H: Headers + ?Sized>(&self, response: &Response<'_, H>) -> Verdict {
        classify(self.credential.family(), response, self.clock.now())
    }
}

impl KeyRotator {
    /// Runs `request` with automatic failover; see the [module docs](crate::execute).
    ///
    /// `request` gets an [`Attempt`] and returns the provider's verdict with the caller's own
    /// value (for example the response), or a transport error. `execute` returns:
    /// - `Ok(value)` for the first success, and for a `ClientError` (the request's own fault:
    ///   another key would get the same answer, so it is returned at once);
    /// - `Err(ExecuteError)` when no key is left, attempts run out or the deadline passes,
    ///   with every attempt (provider, credential label or fingerprint, verdict), the time to
    ///   retry when known, and the last value or error.
    ///
    /// Dropping the returned future cancels the request and releases its lease.
    ///
    /// # Errors
    /// See above.
    pub async fn execute<T, E, F, Fut>(
        &self,
        plan: &Plan,
        request: F,
    ) -> Result<T, ExecuteError<T, E>>
    where
        F: FnMut(Attempt) -> Fut,
        Fut: Future<Output = Result<(Verdict, T), E>>,
    {
        self.execute_observed(plan, &mut (), request).await
    }

    /// [`execute`](Self::execute), telling `observer` what each report changed and each wait
    /// before it happens: the same loop, for callers that count and log (the gateway).
    ///
    /// ```
    /// use ai_key_rotator::classify::{LimitKind, LimitScope, Verdict, Usage};
    /// use ai_key_rotator::execute::{AttemptRecord, Observer, Plan};
    /// use ai_key_rotator::{KeyRotator, ProviderConfig, ReportOutcome};
    ///
    /// #[derive(Default)]
    /// struct Cooled(u32);
    /// impl Observer for Cooled {
    ///     fn reported(&mut self, _: &AttemptRecord, outcome: &ReportOutcome) {
    ///         if matches!(outcome, ReportOutcome::Cooled { .. }) {
    ///             self.0 += 1;
    ///         }
    ///     }
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let rotator = KeyRotator::builder()
    ///     .provider("openai", ProviderConfig::new().credential("sk-a").credential("sk-b"))
    ///     .build()?;
    /// let mut cooled = Cooled::default();
    /// let answer = rotator
    ///     .execute_observed(&Plan::new("openai"), &mut cooled, |attempt| async move {
    ///         let verdict = if attempt.expose_key() == "sk-a" {
    ///             Verdict::RateLimited { until: None, scope: LimitScope::Key, limit: LimitKind::Unknown }
    ///         } else {
    ///             Verdict::Ok(Usage::default())
    ///         };
    ///         Ok::<_, std::io::Error>((verdict, attempt.number()))
    ///     })
    ///     .await?;
    /// assert_eq!((answer, cooled.0), (2, 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// As [`execute`](Self::execute).
    pub async fn execute_observed<T, E, F, Fut, O>(
        &self,
        plan: &Plan,
        observer: &mut O,
        mut request: F,
    ) -> Result<T, ExecuteError<T, E>>
    where
        F: FnMut(Attempt) -> Fut,
        Fut: Future<Output = Result<(Verdict, T), E>>,
        O: Observer + ?Sized,
    {
        let clock = self.clock();
        let started = clock.now();
        let deadline = plan.deadline.map(|d| started.saturating_add(d));
        let mut attempts: Vec<AttemptRecord> = Vec::new();
        let mut last: Option<Result<T, E>> = None;
        let mut failures_in_a_row = 0u32;

        let fail = |kind, attempts, retry_at, last| ExecuteError {
            kind,
            attempts,
            retry_at,
            last,
        };

        loop {
            if attempts.len() as u32 >= plan.max_attempts {
                return Err(fail(
                    ExecuteErrorKind::AttemptsExhausted,
                    attempts,
                    None,
                    last,
                ));
            }
            // The first provider of the chain with a key wins.
            let mut earliest: Option<Timestamp> = None;
            let mut lease = None;
            for provider in &plan.providers {
                match self.acquire_with(provider, &plan.options) {
                    Ok(l) => {
                        lease = Some(l);
                        break;
                    }
                    Err(
                        e @ (AcquireError::Unavailable { .. }
                        | AcquireError::ProviderDegraded { .. }),
                    ) => {
                        if let Some(t) = e.retry_at() {
                            earliest = Some(earliest.map_or(t, |e| e.min(t)));
                        }
                    }
                    Err(AcquireError::UnknownProvider { provider }) => {
                        return Err(fail(
                            ExecuteErrorKind::UnknownProvider(provider),
                            attempts,
                            None,
                            last,
                        ));
                    }
                }
            }
            let Some(lease) = lease else {
                // Wait for the earliest key only if it is back before the deadline.
                match (earliest, deadline) {
                    (Some(at), Some(dl)) if at <= dl => {
                        // A budget whose concurrency cap is full says "now"; give the leases
                        // out a moment rather than spinning.
                        let at = at.max(clock.now().saturating_add(MIN_WAIT));
                        sleep_until(&*clock, at.min(dl)).await;
                        if clock.now() >= dl {
                            return Err(fail(
                                ExecuteErrorKind::DeadlineExceeded,
                                attempts,
                                earliest,
                                last,
                            ));
                        }
                        continue;
                    }
                    _ => {
                        return Err(fail(
                            ExecuteErrorKind::NoKeyAvailable,
                            attempts,
                            earliest,
                            last,
                        ));
                    }
                }
            };

            let attempt = Attempt {
                credential: lease.credential().clone(),
                number: attempts.len() as u32 + 1,
                clock: Arc::clone(&clock),
            };
            let provider: Arc<str> = Arc::from(lease.provider());
            let credential = lease.credential().id().clone();
            let limit = remaining(&*clock, plan.attempt_timeout, deadline);
            let result = match limit {
                Some(limit) => tokio::time::timeout(limit, request(attempt)).await.ok(),
                None => Some(request(attempt).await),
            };
            let retry_after = match result {
                Some(Ok((verdict, value))) => {
                    let success = verdict.is_success();
                    let client_error = verdict == Verdict::ClientError;
                    let blames_key = verdict.blames_key();
                    let retry_after = match &verdict {
                        Verdict::Overloaded { retry_after }
                        | Verdict::ServerError { retry_after } => *retry_after,
                        _ => None,
                    };
                    let outcome: ReportOutcome = lease.report(&verdict);
                    let record = AttemptRecord {
                        provider,
                        credential,
                        outcome: AttemptOutcome::Verdict(verdict),
                    };
                    observer.reported(&record, &outcome);
                    attempts.push(record);
                    if success || client_error {
                        return Ok(value);
                    }
                    last = Some(Ok(value));
                    if blames_key {
                        // Another key may work at once.
                        failures_in_a_row = 0;
                        continue;
                    }
                    retry_after
                }
                Some(Err(e)) => {
                    // A transport failure says nothing about the key, but counts against the
                    // provider (its circuit).
                    lease.transport_failed();
                    attempts.push(AttemptRecord {
                        provider,
                        credential,
                        outcome: AttemptOutcome::TransportError,
                    });
                    last = Some(Err(e));
                    None
                }
                None => {
                    lease.transport_failed();
                    attempts.push(AttemptRecord {
                        provider,
                        credential,
                        outcome: AttemptOutcome::TimedOut,
                    });
                    None
                }
            };
            if attempts.len() as u32 >= plan.max_attempts {
                continue; // reported as AttemptsExhausted at the top
            }
            // A server-side failure: back off before the next attempt.
            failures_in_a_row += 1;
            let now = clock.now();
            let wait_until = retry_after
                .filter(|&t| t > now)
                .unwrap_or_else(|| now.saturating_add(backoff(plan, failures_in_a_row, now)));
            if let Some(dl) = deadline
                && wait_until > dl
            {
                return Err(fail(
                    ExecuteErrorKind::DeadlineExceeded,
                    attempts,
                    Some(wait_until),
                    last,
                ));
            }
            observer.backing_off(wait_until);
            sleep_until(&*clock, wait_until).await;
        }
    }
}

/// The time an attempt may take: the per-attempt limit, cut to what is left of the deadline.
fn remaining(
    clock: &dyn Clock,
    attempt_timeout: Option<Duration>,
    deadline: Option<Timestamp>,
) -> Option<Duration> {
    let left = deadline.map(|dl| dl.saturating_duration_since(clock.now()));
    match (attempt_timeout, left) {
        (Some(a), Some(l)) => Some(a.min(l)),
        (a, l) => a.or(l),
    }
}

/// Jittered exponential backoff for the k-th failure in a row.
fn backoff(plan: &Plan, k: u32, now: Timestamp) -> Duration {
    let exp = k.saturating_sub(1).min(20);
    let full = plan
        .backoff_base
        .saturating_mul(1 << exp)
        .min(plan.backoff_max);
    let half = full / 2;
    let r = crate::cooldown::mix(now.as_millis() ^ u64::from(k));
    let jitter_ns = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    half + Duration::from_nanos(r % (jitter_ns + 1))
}

/// Sleeps until the rotator's clock reads `at`. The sleep itself is tokio's, so tests that
/// pause tokio's clock (and drive the rotator's clock from it) do not wait.
async fn sleep_until(clock: &dyn Clock, at: Timestamp) {
    let wait = at.saturating_duration_since(clock.now());
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
}
