//! `execute` against a scripted fake provider, on tokio's paused clock.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ai_key_rotator::classify::{InvalidKeyCause, LimitKind, LimitScope, Usage, Verdict};
use ai_key_rotator::execute::{AttemptOutcome, ExecuteErrorKind, Plan};
use ai_key_rotator::{Clock, Cooldown, CredentialConfig, KeyRotator, ProviderConfig, Timestamp};

use crate::support::START;

/// The rotator's clock, driven by tokio's (paused) clock, so `execute`'s sleeps and the
/// rotator's cooldowns move together without waiting.
#[derive(Debug, Clone)]
struct TokioClock {
    start: tokio::time::Instant,
}

impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        START.saturating_add(self.start.elapsed())
    }
}

/// A fake provider: each key answers from its script, then `Ok` forever.
#[derive(Clone, Default)]
struct Script {
    answers: Arc<Mutex<HashMap<String, VecDeque<Verdict>>>>,
    calls: Arc<Mutex<Vec<String>>>,
}

impl Script {
    fn on(self, key: &str, verdicts: impl IntoIterator<Item = Verdict>) -> Self {
        self.answers
            .lock()
            .unwrap()
            .entry(key.to_owned())
            .or_default()
            .extend(verdicts);
        self
    }

    fn answer(&self, key: &str) -> Verdict {
        self.calls.lock().unwrap().push(key.to_owned());
        self.answers
            .lock()
            .unwrap()
            .get_mut(key)
            .and_then(VecDeque::pop_front)
            .unwrap_or(Verdict::Ok(Usage::default()))
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

fn rate_limited(secs: u64) -> Verdict {
    Verdict::RateLimited {
        until: Some(START.saturating_add(Duration::from_secs(secs))),
        scope: LimitScope::Key,
        limit: LimitKind::RequestsPerMinute,
    }
}

fn rotator(providers: &[(&str, &[&str])]) -> KeyRotator {
    build(providers.iter().map(|(name, keys)| {
        (
            *name,
            keys.iter().fold(
                ProviderConfig::new().cooldown(Cooldown::fixed(Duration::from_secs(60))),
                |p, k| p.credential(CredentialConfig::new(*k).label(*k)),
            ),
        )
    }))
}

/// A rotator of these providers on the tokio-driven clock.
fn build<'a>(providers: impl IntoIterator<Item = (&'a str, ProviderConfig)>) -> KeyRotator {
    let clock = TokioClock {
        start: tokio::time::Instant::now(),
    };
    providers
        .into_iter()
        .fold(KeyRotator::builder(), |b, (name, p)| b.provider(name, p))
        .clock(clock)
        .reset_interval(Duration::ZERO)
        .build()
        .unwrap()
}

async fn run(
    r: &KeyRotator,
    plan: &Plan,
    script: &Script,
) -> Result<String, ai_key_rotator::execute::ExecuteError<String, std::io::Error>> {
    r.execute(plan, |attempt| {
        let script = script.clone();
        async move {
            let verdict = script.answer(attempt.expose_key());
            Ok((
                verdict,
                format!("{}:{}", attempt.provider(), attempt.expose_key()),
            ))
        }
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn a_429_is_answered_by_another_key() {
    let r = rotator(&[("openai", &["a", "b"])]);
    let script = Script::default().on("a", [rate_limited(30)]);
    let got = run(&r, &Plan::new("openai"), &script).await.unwrap();
    assert_eq!(got, "openai:b");
    assert_eq!(script.calls(), ["a", "b"]);
    assert!(
        !r.provider_status("openai").unwrap().credentials[0]
            .state
            .eq(&ai_key_rotator::CredentialState::Available)
    );
}

#[tokio::test(start_paused = true)]
async fn all_keys_exhausted_falls_back_to_the_next_provider() {
    let r = rotator(&[("openai", &["a", "b"]), ("anthropic", &["c"])]);
    let script = Script::default()
        .on("a", [rate_limited(30)])
        .on("b", [rate_limited(30)]);
    let plan = Plan::new("openai").fallback("anthropic");
    let got = run(&r, &plan, &script).await.unwrap();
    assert_eq!(got, "anthropic:c");
    assert_eq!(script.calls(), ["a", "b", "c"]);
}

#[tokio::test(start_paused = true)]
async fn all_exhausted_with_a_long_enough_deadline_waits_for_the_earliest_key() {
    let r = rotator(&[("openai", &["a", "b"])]);
    let script = Script::default()
        .on("a", [rate_limited(20)])
        .on("b", [rate_limited(10)]);
    let started = tokio::time::Instant::now();
    let plan = Plan::new("openai").deadline(Duration::from_secs(15));
    let got = run(&r, &plan, &script).await.unwrap();
    assert_eq!(got, "openai:b");
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(10),
        "waited exactly until b was back"
    );
}

#[tokio::test(start_paused = true)]
async fn all_exhausted_beyond_the_deadline_fails_fast_with_when_to_retry() {
    let r = rotator(&[("openai", &["a", "b"])]);
    let script = Script::default()
        .on("a", [rate_limited(20)])
        .on("b", [rate_limited(10)]);
    let started = tokio::time::Instant::now();
    let plan = Plan::new("openai").deadline(Duration::from_secs(5));
    let err = run(&r, &plan, &script).await.unwrap_err();
    assert_eq!(started.elapsed(), Duration::ZERO, "did not wait");
    assert_eq!(err.kind, ExecuteErrorKind::NoKeyAvailable);
    assert_eq!(
        err.retry_at,
        Some(START.saturating_add(Duration::from_secs(10)))
    );
    assert_eq!(
        err.to_string(),
        "no key available (retry at 2026-11-25T09:30:10.000Z); attempts: \
         openai/a: rate limited (requests per minute), openai/b: rate limited (requests per minute)"
    );
    assert!(matches!(err.last, Some(Ok(ref v)) if v == "openai:b"));
}

#[tokio::test(start_paused = true)]
async fn an_invalid_key_is_disabled_and_skipped_from_then_on() {
    let r = rotator(&[("openai", &["a", "b"])]);
    let script = Script::default().on(
        "a",
        [Verdict::InvalidKey {
            cause: InvalidKeyCause::Invalid,
        }],
    );
    assert_eq!(
        run(&r, &Plan::new("openai"), &script).await.unwrap(),
        "openai:b"
    );
    assert_eq!(
        run(&r, &Plan::new("openai"), &script).await.unwrap(),
        "openai:b"
    );
    assert_eq!(script.calls(), ["a", "b", "b"]);
    assert_eq!(
        r.provider_status("openai").unwrap().credentials[0].state,
        ai_key_rotator::CredentialState::Disabled
    );
}

#[tokio::test(start_paused = true)]
async fn a_client_error_is_returned_at_once() {
    let r = rotator(&[("openai", &["a", "b"])]);
    let script = Script::default().on("a", [Verdict::ClientError]);
    assert_eq!(
        run(&r, &Plan::new("openai"), &script).await.unwrap(),
        "openai:a"
    );
    assert_eq!(script.calls(), ["a"]);
}

#[tokio::test(start_paused = true)]
async fn server_errors_back_off_and_give_up_after_max_attempts() {
    let r = rotator(&[("openai", &["a"])]);
    let err5 = || Verdict::ServerError { retry_after: None };
    let script = Script::default().on("a", [err5(), err5(), err5()]);
    let started = tokio::time::Instant::now();
    let plan = Plan::new("openai")
        .max_attempts(3)
        .backoff(Duration::from_millis(100), Duration::from_secs(1));
    let err = run(&r, &plan, &script).await.unwrap_err();
    assert_eq!(err.kind, ExecuteErrorKind::AttemptsExhausted);
    assert_eq!(err.attempts.len(), 3);
    // Two backoffs: 50-100 ms, then 100-200 ms.
    let waited = started.elapsed();
    assert!(
        (Duration::from_millis(150)..=Duration::from_millis(300)).contains(&waited),
        "{waited:?}"
    );
    // A server error does not cool the key.
    assert_eq!(r.provider_status("openai").unwrap().available, 1);
    // With a retry-after, that is the wait.
    let script = Script::default().on(
        "a",
        [Verdict::Overloaded {
            retry_after: Some(r.now().saturating_add(Duration::from_secs(2))),
        }],
    );
    let started = tokio::time::Instant::now();
    assert_eq!(run(&r, &plan, &script).await.unwrap(), "openai:a");
    assert_eq!(started.elapsed(), Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn attempt_timeouts_and_transport_errors_are_retried() {
    let r = rotator(&[("openai", &["a", "b"])]);
    let calls = Arc::new(Mutex::new(0));
    let plan = Plan::new("openai").attempt_timeout(Duration::from_secs(1));
    let result: Result<&str, _> = r
        .execute(&plan, |attempt| {
            let calls = calls.clone();
            async move {
                let n = {
                    let mut c = calls.lock().unwrap();
                    *c += 1;
                    *c
                };
                match n {
                    1 => {
                        tokio::time::sleep(Duration::from_secs(10)).await;
                        unreachable!("timed out before");
                    }
                    2 => Err(std::io::Error::other("connection reset")),
                    _ => {
                        let _ = attempt.number();
                        Ok((Verdict::Ok(Usage::default()), "done"))
                    }
                }
            }
        })
        .await;
    assert_eq!(result.unwrap(), "done");
}

#[tokio::test(start_paused = true)]
async fn dropping_the_future_releases_the_lease() {
    // One key that admits one request in flight at a time: a lease that were not released
    // would lock it out.
    let r = build([(
        "openai",
        ProviderConfig::new()
            .credential("a")
            .budget(ai_key_rotator::Budget {
                max_in_flight: Some(1),
                ..ai_key_rotator::Budget::default()
            }),
    )]);
    let plan = Plan::new("openai");
    let fut = r.execute(&plan, |_attempt| async {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok::<_, std::io::Error>((Verdict::Ok(Usage::default()), ()))
    });
    let mut fut = Box::pin(fut);
    // While the request runs, the key is taken.
    assert!(
        tokio::time::timeout(Duration::from_millis(10), &mut fut)
            .await
            .is_err()
    );
    assert!(r.acquire("openai").is_err(), "in flight");
    drop(fut);
    assert!(r.acquire("openai").is_ok(), "released by the cancellation");
}

#[tokio::test(start_paused = true)]
async fn unknown_providers_and_attempt_records_name_keys_safely() {
    let r = build([(
        "openai",
        ProviderConfig::new()
            .credential(CredentialConfig::new("sk-secret-canary-123456789").label("canary")),
    )]);
    let script = Script::default().on("sk-secret-canary-123456789", [rate_limited(5)]);
    let err = run(&r, &Plan::new("openai"), &script).await.unwrap_err();
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(!text.contains("canary-1234"), "{text}");
    }
    assert!(matches!(
        err.attempts[0].outcome,
        AttemptOutcome::Verdict(Verdict::RateLimited { .. })
    ));
    let err = run(&r, &Plan::new("nope"), &script).await.unwrap_err();
    assert_eq!(err.kind, ExecuteErrorKind::UnknownProvider("nope".into()));
}
