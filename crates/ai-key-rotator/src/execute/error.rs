//! What `execute` reports when it gives up.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use crate::classify::Verdict;
use crate::clock::Timestamp;
use crate::identity::CredentialId;

/// Why `execute` gave up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ExecuteErrorKind {
    /// No provider of the plan has a key available, and none comes back before the deadline
    /// (or there is no deadline to wait within).
    NoKeyAvailable,
    /// The plan's attempts are used up.
    AttemptsExhausted,
    /// The deadline passed, or would pass before the next attempt could start.
    DeadlineExceeded,
    /// A provider of the plan is not configured.
    UnknownProvider(String),
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum AttemptOutcome {
    /// The provider answered; this is what the answer meant.
    Verdict(Verdict),
    /// The request failed before an answer (connection, protocol).
    TransportError,
    /// The attempt took longer than its time limit.
    TimedOut,
}

/// One attempt: which key of which provider, and how it ended. Names the key by label or
/// fingerprint only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttemptRecord {
    /// The provider.
    pub provider: Arc<str>,
    /// The credential.
    pub credential: CredentialId,
    /// How it ended.
    pub outcome: AttemptOutcome,
}

impl fmt::Display for AttemptRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let outcome = match &self.outcome {
            AttemptOutcome::Verdict(v) => v.reason(),
            AttemptOutcome::TransportError => "transport error",
            AttemptOutcome::TimedOut => "timed out",
        };
        write!(f, "{}/{}: {}", self.provider, self.credential, outcome)
    }
}

/// `execute` gave up: why, every attempt, when to retry, and the last answer.
pub struct ExecuteError<T, E> {
    /// Why.
    pub kind: ExecuteErrorKind,
    /// Every attempt, in order.
    pub attempts: Vec<AttemptRecord>,
    /// The earliest time a key is known to be back, for a `retry-after`.
    pub retry_at: Option<Timestamp>,
    /// The last attempt's value (an answer that blamed the key or a server error) or
    /// transport error, for callers that pass the provider's answer on.
    pub last: Option<Result<T, E>>,
}

impl<T, E> fmt::Display for ExecuteError<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ExecuteErrorKind::NoKeyAvailable => f.write_str("no key available")?,
            ExecuteErrorKind::AttemptsExhausted => f.write_str("attempts exhausted")?,
            ExecuteErrorKind::DeadlineExceeded => f.write_str("deadline exceeded")?,
            ExecuteErrorKind::UnknownProvider(p) => write!(f, "unknown provider `{p}`")?,
        }
        if let Some(t) = self.retry_at {
            write!(f, " (retry at {t})")?;
        }
        if !self.attempts.is_empty() {
            f.write_str("; attempts: ")?;
            for (i, a) in self.attempts.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{a}")?;
            }
        }
        Ok(())
    }
}

/// Shows everything but the last value and error, whose `Debug` the rotator cannot vouch for
/// (a transport error may quote a URL with a key in its query).
impl<T, E> fmt::Debug for ExecuteError<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecuteError")
            .field("kind", &self.kind)
            .field("attempts", &self.attempts)
            .field("retry_at", &self.retry_at)
            .field(
                "last",
                &self
                    .last
                    .as_ref()
                    .map(|r| if r.is_ok() { "value" } else { "error" }),
            )
            .finish()
    }
}

impl<T, E> std::error::Error for ExecuteError<T, E> {}
