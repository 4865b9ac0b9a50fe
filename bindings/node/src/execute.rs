//! `execute(plan, fn)`: the core's retry loop with a JavaScript function as the request.
//!
//! The loop (which key, when to rotate, fall back, back off or give up) is the core's
//! `KeyRotator::execute`, the same one the gateway runs; this file only carries each attempt
//! to JavaScript and the answer back. JavaScript keeps the values its function returned (a
//! `Response`, say) and sends only what the classifier reads: status, headers and, for an
//! error, the body's text. The loop answers with the id of the value to hand to the caller.

use std::time::Duration;

use ai_key_rotator::classify::Response;
use ai_key_rotator::execute::{ExecuteErrorKind, Plan};
use napi::Status;
use napi::bindgen_prelude::{Function, Promise, PromiseRaw};
use napi::threadsafe_function::ThreadsafeFunction;
use napi_derive::napi;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::convert::camel;
use crate::error::{Result, js_error};
use crate::{NativeRotator, pairs};

/// What the JavaScript side of one attempt answered.
#[napi(object)]
#[derive(Debug)]
pub struct AttemptAnswer {
    /// The id under which JavaScript keeps the value (or the error).
    pub id: u32,
    /// The function threw or its promise rejected: a transport failure.
    pub failed: bool,
    pub status: Option<u32>,
    pub headers: Option<Vec<Vec<String>>>,
    /// The body's text (only for a response that is not a success).
    pub body: Option<String>,
}

type AttemptFn = ThreadsafeFunction<Value, Promise<AttemptAnswer>, Value, Status, false>;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PlanConfig {
    providers: Vec<String>,
    #[serde(default)]
    max_attempts: Option<u32>,
    #[serde(default)]
    attempt_timeout_ms: Option<u64>,
    #[serde(default)]
    deadline_ms: Option<u64>,
    #[serde(default)]
    backoff_base_ms: Option<u64>,
    #[serde(default)]
    backoff_max_ms: Option<u64>,
    #[serde(default)]
    session: Option<String>,
    #[serde(default)]
    tokens: Option<u64>,
}

fn plan(config: PlanConfig) -> Result<Plan> {
    let mut providers = config.providers.into_iter();
    let first = providers
        .next()
        .ok_or_else(|| js_error("ERR_INVALID_ARG", "the plan names no provider"))?;
    let mut plan = Plan::new(first);
    for p in providers {
        plan = plan.fallback(p);
    }
    if let Some(n) = config.max_attempts {
        plan = plan.max_attempts(n);
    }
    if let Some(ms) = config.attempt_timeout_ms {
        plan = plan.attempt_timeout(Duration::from_millis(ms));
    }
    if let Some(ms) = config.deadline_ms {
        plan = plan.deadline(Duration::from_millis(ms));
    }
    if config.backoff_base_ms.is_some() || config.backoff_max_ms.is_some() {
        let base = Duration::from_millis(config.backoff_base_ms.unwrap_or(200));
        let max = Duration::from_millis(config.backoff_max_ms.unwrap_or(5_000));
        plan = plan.backoff(base, max);
    }
    if let Some(s) = config.session {
        plan = plan.session(s);
    }
    if let Some(t) = config.tokens {
        plan = plan.tokens(t);
    }
    Ok(plan)
}

#[napi]
impl NativeRotator {
    /// Runs the plan (`{ providers, maxAttempts?, attemptTimeoutMs?, deadlineMs?,
    /// backoffBaseMs?, backoffMaxMs?, session?, tokens? }` as JSON), calling `attempt` with
    /// `{ number, provider, key, label, fingerprint, meta }` for each attempt. Resolves to
    /// `{ ok: true, id }` or `{ ok: false, code, message, retryAt, attempts, lastId, lastFailed }`.
    #[napi(
        ts_args_type = "plan: string, attempt: (attempt: any) => Promise<AttemptAnswer>",
        ts_return_type = "Promise<any>"
    )]
    pub fn execute<'env>(
        &self,
        env: &'env napi::Env,
        plan_json: String,
        attempt: Function<'env, Value, Promise<AttemptAnswer>>,
    ) -> Result<PromiseRaw<'env, Value>> {
        let rotator = self.rotator()?.clone();
        let config: PlanConfig = serde_json::from_str(&plan_json)
            .map_err(|e| js_error("ERR_INVALID_ARG", format!("invalid plan: {e}")))?;
        let plan = plan(config)?;
        let attempt: AttemptFn = attempt
            .build_threadsafe_function::<Value>()
            .callee_handled::<false>()
            .build()
            .map_err(|e| js_error("ERR_INTERNAL", e.to_string()))?;
        let run = async move {
            let result = rotator
                .execute(&plan, |a| {
                    let info = json!({
                        "number": a.number(),
                        "provider": a.provider(),
                        "key": a.expose_key(),
                        "label": a.credential().label(),
                        "fingerprint": a.credential().fingerprint().to_string(),
                        "meta": a.credential().meta(),
                    });
                    let call = attempt.call_async_catch(info);
                    async move {
                        let answer = match call.await {
                            Ok(promise) => promise.await,
                            Err(e) => Err(e),
                        };
                        let answer = answer.map_err(|e| e.reason.clone())?;
                        if answer.failed {
                            return Err(answer.id.to_string());
                        }
                        let status = answer
                            .status
                            .and_then(|s| u16::try_from(s).ok())
                            .unwrap_or(500);
                        let headers = pairs(answer.headers.unwrap_or_default());
                        let body = answer.body.unwrap_or_default();
                        let verdict = a.classify(&Response::new(status, &headers, body.as_bytes()));
                        Ok((verdict, answer.id))
                    }
                })
                .await;
            Ok(match result {
                Ok(id) => json!({ "ok": true, "id": id }),
                Err(e) => {
                    let code = match &e.kind {
                        ExecuteErrorKind::NoKeyAvailable => "ERR_NO_KEY_AVAILABLE",
                        ExecuteErrorKind::AttemptsExhausted => "ERR_ATTEMPTS_EXHAUSTED",
                        ExecuteErrorKind::DeadlineExceeded => "ERR_DEADLINE_EXCEEDED",
                        ExecuteErrorKind::UnknownProvider(_) => "ERR_UNKNOWN_PROVIDER",
                        _ => "ERR_EXECUTE",
                    };
                    let (last_id, last_failed) = match &e.last {
                        Some(Ok(id)) => (Some(*id), false),
                        Some(Err(id)) => (id.parse::<u32>().ok(), true),
                        None => (None, false),
                    };
                    json!({
                        "ok": false,
                        "code": code,
                        "message": e.to_string(),
                        "retryAt": e.retry_at.map(|t| t.as_millis()),
                        "attempts": camel(&e.attempts),
                        "lastId": last_id,
                        "lastFailed": last_failed,
                    })
                }
            })
        };
        env.spawn_future(run)
            .map_err(|e| js_error("ERR_INTERNAL", e.to_string()))
    }
}
