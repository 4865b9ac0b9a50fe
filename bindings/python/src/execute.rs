//! The httpx transports' bridge to the core's retry loop (`KeyRotator::execute`): the loop,
//! its rules (what is retried, rotated, waited for or returned) and its waits stay in the
//! core; Python only sends one request per attempt and hands back the answer.
//!
//! Sync (here): the loop runs on the caller's thread inside `block_on`, with the GIL released
//! except while Python sends. Async: see `aio.rs`.

use std::sync::Mutex;
use std::time::Duration;

use ai_key_rotator::KeyRotator;
use ai_key_rotator::classify::{Response, Verdict};
use ai_key_rotator::execute::{Attempt, AttemptOutcome, ExecuteError, ExecuteErrorKind, Plan};
use pyo3::prelude::*;
use tokio::sync::Notify;

use crate::convert::{bytes_of, headers};
use crate::credential::PyCredential;
use crate::errors::{no_key, raise};
use crate::runtime::runtime;

pub(crate) type Outcome = Result<Py<PyAny>, ExecuteError<Py<PyAny>, PyErr>>;

/// The plan of one request: the providers in order (primary first), the most attempts, and
/// an optional deadline within which the loop may wait for a cooling key.
pub(crate) fn plan(
    py: Python<'_>,
    providers: Vec<String>,
    max_attempts: u32,
    deadline: Option<f64>,
    session: Option<String>,
    tokens: u64,
) -> PyResult<Plan> {
    let mut names = providers.into_iter();
    let Some(first) = names.next() else {
        return Err(raise(
            py,
            "ConfigError",
            "a transport needs a provider".into(),
        ));
    };
    let mut plan = Plan::new(first).max_attempts(max_attempts).tokens(tokens);
    for p in names {
        plan = plan.fallback(p);
    }
    if let Some(d) = deadline {
        if !(d.is_finite() && d >= 0.0) {
            return Err(raise(
                py,
                "ConfigError",
                format!("deadline must be seconds ≥ 0, not {d}"),
            ));
        }
        plan = plan.deadline(Duration::from_secs_f64(d));
    }
    if let Some(s) = session {
        plan = plan.session(s);
    }
    Ok(plan)
}

/// Calls `send(key, provider, attempt_number)` and classifies what it returns:
/// `(status, headers, body, response)`, where `body` is the error body (or `None` for a
/// success, which is classified from its headers alone and passed on unread).
pub(crate) fn answer(
    out: &Bound<'_, PyAny>,
    attempt: &Attempt,
) -> Result<(Verdict, Py<PyAny>), PyErr> {
    let (status, hdrs, body, response): (u16, Bound<'_, PyAny>, Bound<'_, PyAny>, Py<PyAny>) =
        out.extract()?;
    let headers = headers(&hdrs)?;
    let body = if body.is_none() {
        Vec::new()
    } else {
        bytes_of(&body)?
    };
    Ok((
        attempt.classify(&Response::new(status, &headers, &body)),
        response,
    ))
}

/// Runs the loop on this thread.
///
/// An exception that is not an `Exception` (`KeyboardInterrupt`, `SystemExit`) raised while
/// sending ends the loop at once and is raised again: it is no transport error to retry.
pub(crate) fn blocking(
    py: Python<'_>,
    rotator: &KeyRotator,
    plan: Plan,
    send: Py<PyAny>,
) -> PyResult<Py<PyAny>> {
    let fatal: Mutex<Option<PyErr>> = Mutex::new(None);
    let stop = Notify::new();
    // The error is the core's `ExecuteError`, handed straight to `finish`: boxing it would
    // only add an allocation to the failure path.
    #[allow(clippy::result_large_err)]
    let result: Option<Outcome> = py.detach(|| {
        let run = rotator.execute(&plan, |attempt| {
            let (send, fatal, stop) = (&send, &fatal, &stop);
            async move {
                Python::attach(|py| {
                    let out = send
                        .bind(py)
                        .call1((
                            PyCredential::new(attempt.credential().clone()),
                            attempt.provider(),
                            attempt.number(),
                        ))
                        .inspect_err(|e| {
                            if !e.is_instance_of::<pyo3::exceptions::PyException>(py) {
                                *fatal.lock().unwrap_or_else(|e| e.into_inner()) =
                                    Some(e.clone_ref(py));
                                stop.notify_one();
                            }
                        })?;
                    answer(&out, &attempt)
                })
            }
        });
        runtime().block_on(async {
            tokio::select! {
                outcome = run => Some(outcome),
                () = stop.notified() => None,
            }
        })
    });
    match result {
        Some(outcome) => finish(py, rotator, &plan, outcome),
        None => Err(fatal
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .expect("the loop stops only for a fatal error")),
    }
}

/// Turns the loop's outcome into the transport's: the response, or
/// - `NoKeyAvailable` (with `retry_after`, and the provider's last answer as
///   `last_response`) when no key is left, or none comes back before the deadline;
/// - the provider's last answer (a server error) when the attempts or the deadline ran out
///   on failures that were not the key's;
/// - the last transport error (a connection failure) likewise.
pub(crate) fn finish(
    py: Python<'_>,
    rotator: &KeyRotator,
    plan: &Plan,
    result: Outcome,
) -> PyResult<Py<PyAny>> {
    let e = match result {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    let last_blamed_key = matches!(
        e.attempts.last().map(|a| &a.outcome),
        Some(AttemptOutcome::Verdict(v)) if v.blames_key()
    );
    let message = format!("provider `{}`: {e}", plan.providers()[0]);
    match e.kind {
        ExecuteErrorKind::UnknownProvider(p) => Err(raise(
            py,
            "UnknownProvider",
            format!("unknown provider `{p}`"),
        )),
        ExecuteErrorKind::NoKeyAvailable | ExecuteErrorKind::DeadlineExceeded
            if last_blamed_key || e.last.is_none() =>
        {
            let err = no_key(py, &plan.providers()[0], message, e.retry_at, rotator.now());
            if let Some(Ok(response)) = e.last {
                err.value(py).setattr("last_response", response)?;
            }
            Err(err)
        }
        _ => match e.last {
            Some(Ok(response)) => Ok(response),
            Some(Err(transport)) => Err(transport),
            None => Err(raise(py, "RotatorError", message)),
        },
    }
}
