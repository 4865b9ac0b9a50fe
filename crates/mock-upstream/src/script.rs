//! What the mock answers, per key: the [`Script`] a test holds and edits while the server runs.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;

/// How the mock answers one request.
///
/// Every variant produces the status, headers and body that the provider of the route's
/// dialect documents (see the crate docs for the table); `Raw` is the escape hatch for
/// anything else.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Behavior {
    /// A normal completion (JSON, or SSE when the request asked to stream), with the
    /// provider's rate-limit headers.
    Ok,
    /// A per-minute rate limit that lifts after `retry_after`. OpenAI: 429
    /// `rate_limit_exceeded` with "Please try again in 3.202s." and `x-ratelimit-reset-*`;
    /// Azure: 429 with `retry-after` and `retry-after-ms`; Anthropic: 429 `rate_limit_error`
    /// with `retry-after`; Gemini: 429 `RESOURCE_EXHAUSTED` with `RetryInfo` and no header.
    RateLimited {
        /// When the limit lifts.
        retry_after: Duration,
    },
    /// Billing exhausted: OpenAI/Azure 429 `insufficient_quota`; Anthropic 400 "credit balance
    /// is too low"; Gemini 429 with `limit: 0`.
    InsufficientQuota,
    /// A monthly spend cap: Anthropic 429 `enforced_spend_limit_reached` without `retry-after`;
    /// OpenAI/Azure 429 `organization_spend_limit_exceeded`; Gemini as `InsufficientQuota`.
    SpendCap,
    /// The key is not valid: OpenAI/Azure 401, Anthropic 401 `authentication_error`,
    /// Gemini 400 `API_KEY_INVALID`. Also the answer to a request without a credential.
    InvalidKey,
    /// The provider is overloaded: Anthropic 529 `overloaded_error`, OpenAI/Azure 503
    /// `server_is_overloaded`, Gemini 503 `UNAVAILABLE`.
    Overloaded,
    /// An internal error: 500 in the dialect's shape.
    ServerError,
    /// A 200 stream that fails after a few events: Anthropic `event: error` with
    /// `overloaded_error`, OpenAI a `data: {"error":…}` chunk, Gemini a `data: {"error":…}`
    /// chunk; none of them sends its normal end. Streams even if the request did not ask to.
    StreamErrorMidway,
    /// A per-model rate limit: requests for `model` are answered like
    /// [`Behavior::RateLimited`] (OpenAI's "Rate limit reached for {model} ...", Gemini's
    /// `...PerProjectPerModel` quota with `quotaDimensions.model`), requests for any other
    /// model like `Ok`.
    RateLimitedFor {
        /// The model whose limit is spent.
        model: String,
        /// When the limit lifts.
        retry_after: Duration,
    },
    /// The provider refuses the caller's region: OpenAI/Azure 403
    /// `unsupported_country_region_territory`, Anthropic 403 `permission_error` "Request not
    /// allowed", Gemini 400 `FAILED_PRECONDITION` "User location is not supported for the API
    /// use.". Every key gets it alike.
    RegionBlocked,
    /// A 200 stream that fails before its first content: the dialect's opening events, then
    /// an error event, and no normal end. OpenAI chat: the role chunk, then a
    /// `data: {"error":…}` chunk with `insufficient_quota`; OpenAI Responses:
    /// `response.created`, `response.in_progress`, then `event: error` with code
    /// `insufficient_quota`; Anthropic: `message_start`, `ping`, then `event: error` with
    /// `overloaded_error`; Gemini: a `data: {"error":…}` chunk, 429 `RESOURCE_EXHAUSTED`.
    /// Streams even if the request did not ask to.
    StreamErrorAtStart,
    /// A 200 stream that sends the dialect's opening events (as `StreamErrorAtStart` does,
    /// without the error) and then cuts the connection before any content. Streams even if
    /// the request did not ask to.
    StreamBrokenAtStart,
    /// Closes the connection without answering, after reading the request: a transport
    /// failure as a client sees it.
    CloseConnection,
    /// Waits this long, then answers like `Ok`; for upstream-timeout tests.
    Delay(Duration),
    /// A normal stream whose chunks are sent `chunk_interval` apart, really over time; for
    /// streaming and client-disconnect tests. Streams even if the request did not ask to.
    SlowStream {
        /// Time between two SSE events.
        chunk_interval: Duration,
    },
    /// Exactly this response.
    Raw {
        /// The status code.
        status: u16,
        /// Header names and values, in order.
        headers: Vec<(String, String)>,
        /// The body.
        body: Bytes,
    },
}

impl Behavior {
    /// A rate limit that lifts after `retry_after`.
    pub fn rate_limited(retry_after: Duration) -> Behavior {
        Behavior::RateLimited { retry_after }
    }

    /// A `Raw` JSON response with `content-type: application/json`.
    pub fn raw_json(status: u16, body: impl Into<Bytes>) -> Behavior {
        Behavior::Raw {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.into(),
        }
    }
}

/// A rule: answer requests made with `key` (or any key) with `behavior`, forever or a number
/// of times.
///
/// ```
/// use std::time::Duration;
/// use mock_upstream::{Behavior, Rule};
///
/// let rule = Rule::key("sk-a", Behavior::rate_limited(Duration::from_secs(3))).times(2);
/// # let _ = rule;
/// ```
#[derive(Debug, Clone)]
pub struct Rule {
    key: Option<String>,
    behavior: Behavior,
    remaining: Option<u32>,
}

impl Rule {
    /// A rule for requests carrying `key`.
    pub fn key(key: impl Into<String>, behavior: Behavior) -> Rule {
        Rule {
            key: Some(key.into()),
            behavior,
            remaining: None,
        }
    }

    /// A rule for every request, whatever its key.
    pub fn any(behavior: Behavior) -> Rule {
        Rule {
            key: None,
            behavior,
            remaining: None,
        }
    }

    /// Applies the rule to the next `n` matching requests only, then drops it.
    pub fn times(mut self, n: u32) -> Rule {
        self.remaining = Some(n);
        self
    }

    /// Same as `times(1)`.
    pub fn once(self) -> Rule {
        self.times(1)
    }
}

/// The shared, thread-safe answer plan of a running mock.
///
/// Cloning gives another handle on the same plan. Requests pick their behaviour in this order:
///
/// 1. counted rules ([`Rule::times`]) in the order they were added, the first that matches the
///    request's key (or is for any key) answering and losing one use;
/// 2. the standing behaviour of the key, set by [`Script::on_key`] (the latest call wins);
/// 3. the default, set by [`Script::set_default`], [`Behavior::Ok`] unless changed.
///
/// So "twice rate limited, then a 500, then fine" is three calls, written in the order the
/// answers come:
///
/// ```
/// # use std::time::Duration;
/// # use mock_upstream::{Behavior, Rule, Script};
/// let script = Script::new();
/// script
///     .add(Rule::key("sk-a", Behavior::rate_limited(Duration::from_secs(3))).times(2))
///     .add(Rule::key("sk-a", Behavior::ServerError).once());
/// assert!(matches!(script.next_for(Some("sk-a")), Behavior::RateLimited { .. }));
/// assert!(matches!(script.next_for(Some("sk-a")), Behavior::RateLimited { .. }));
/// assert_eq!(script.next_for(Some("sk-a")), Behavior::ServerError);
/// assert_eq!(script.next_for(Some("sk-a")), Behavior::Ok);
/// ```
///
/// # Concurrency
///
/// One `std::sync::Mutex` guards the plan. It is held only to pick a behaviour, never across
/// an `.await`, so a test may change the plan at any moment; a request sees the plan as it
/// was when the request arrived.
#[derive(Debug, Clone, Default)]
pub struct Script {
    inner: Arc<Mutex<Plan>>,
}

#[derive(Debug, Default)]
struct Plan {
    counted: VecDeque<Rule>,
    standing: HashMap<String, Behavior>,
    default: Option<Behavior>,
}

impl Script {
    /// An empty plan: everything answers [`Behavior::Ok`].
    pub fn new() -> Script {
        Script::default()
    }

    /// Sets the standing behaviour for `key`, replacing an earlier one.
    pub fn on_key(&self, key: impl Into<String>, behavior: Behavior) -> &Self {
        self.lock().standing.insert(key.into(), behavior);
        self
    }

    /// Adds a rule. A rule without [`Rule::times`] is standing: for a key it is the same as
    /// [`Script::on_key`], for any key the same as [`Script::set_default`].
    pub fn add(&self, rule: Rule) -> &Self {
        let mut plan = self.lock();
        match (rule.remaining, rule.key) {
            (Some(_), key) => plan.counted.push_back(Rule { key, ..rule }),
            (None, Some(key)) => {
                plan.standing.insert(key, rule.behavior);
            }
            (None, None) => plan.default = Some(rule.behavior),
        }
        self
    }

    /// Sets the behaviour for requests no other rule matches.
    pub fn set_default(&self, behavior: Behavior) -> &Self {
        self.lock().default = Some(behavior);
        self
    }

    /// Forgets every rule and the default.
    pub fn reset(&self) {
        *self.lock() = Plan::default();
    }

    /// How many uses of counted rules are left; `0` once every `times(n)` has been used up.
    pub fn pending(&self) -> u32 {
        self.lock()
            .counted
            .iter()
            .map(|r| r.remaining.unwrap_or(0))
            .sum()
    }

    /// Picks (and uses up) the behaviour for a request carrying `key`. The server calls this
    /// once per request; tests may call it to check a plan.
    pub fn next_for(&self, key: Option<&str>) -> Behavior {
        let mut plan = self.lock();
        let hit = plan
            .counted
            .iter()
            .position(|r| r.key.is_none() || r.key.as_deref() == key);
        if let Some(i) = hit {
            let rule = &mut plan.counted[i];
            let behavior = rule.behavior.clone();
            let left = rule.remaining.unwrap_or(1).saturating_sub(1);
            rule.remaining = Some(left);
            if left == 0 {
                plan.counted.remove(i);
            }
            return behavior;
        }
        if let Some(b) = key.and_then(|k| plan.standing.get(k)) {
            return b.clone();
        }
        plan.default.clone().unwrap_or(Behavior::Ok)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Plan> {
        // A panic while holding the lock cannot leave the plan half-written (every update is
        // a single insert or push), so a poisoned lock is still safe to use.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_of_precedence() {
        let s = Script::new();
        s.set_default(Behavior::ServerError);
        s.on_key("a", Behavior::InvalidKey);
        s.add(Rule::any(Behavior::Overloaded).once());
        s.add(Rule::key("b", Behavior::SpendCap).times(2));
        assert_eq!(s.pending(), 3);
        assert_eq!(s.next_for(Some("b")), Behavior::Overloaded);
        assert_eq!(s.next_for(Some("a")), Behavior::InvalidKey);
        assert_eq!(s.next_for(Some("b")), Behavior::SpendCap);
        assert_eq!(s.next_for(Some("b")), Behavior::SpendCap);
        assert_eq!(s.next_for(Some("b")), Behavior::ServerError);
        assert_eq!(s.next_for(None), Behavior::ServerError);
        assert_eq!(s.pending(), 0);
        s.reset();
        assert_eq!(s.next_for(Some("a")), Behavior::Ok);
    }
}
