//! The httpx transports' bridge to the core's retry loop (`KeyRotator::execute`): the loop,
//! its rules (what is retried, rotated, waited for or returned) and its waits stay in the
//! core; Python only sends one request per attempt and hands back the answer.
//!
//! Sync: the loop runs on the caller's thread inside `block_on`, with the GIL released
//! except while Python sends. Async: the loop runs on the runtime's thread; each attempt's
//! coroutine is scheduled on the caller's event loop and awaited through a done-callback, and
//! the result is handed back with `call_soon_threadsafe`.

use std::sync::Mutex;
use std::time::Duration;

use ai_key_rotator::KeyRotator;
use ai_key_rotator::classify::{Response, Verdict};
use ai_key_rotator::execute::{Attempt, AttemptOutcome, ExecuteError, ExecuteErrorKind, Plan};
use pyo3::prelude::*;
use tokio::sync::oneshot;
use tokio::task::AbortHandle;

use crate::convert::{bytes_of, headers};
use crate::errors::{no_key, raise};
use crate::runtime::runtime;

type Outcome = Result<Py<PyAny>, ExecuteError<Py<PyAny>, PyErr>>;

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
fn answer(out: &Bound<'_, PyAny>, attempt: &Attempt) -> Result<(Verdict, Py<PyAny>), PyErr> {
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
pub(crate) fn blocking(
    py: Python<'_>,
    rotator: &KeyRotator,
    plan: Plan,
    send: Py<PyAny>,
) -> PyResult<Py<PyAny>> {
    // The error is the core's `ExecuteError`, handed straight to `finish`: boxing it would
    // only add an allocation to the failure path.
    #[allow(clippy::result_large_err)]
    let result: Outcome = py.detach(|| {
        runtime().block_on(rotator.execute(&plan, |attempt| {
            let send = &send;
            async move {
                Python::attach(|py| {
                    let out = send.bind(py).call1((
                        attempt.expose_key(),
                        attempt.provider(),
                        attempt.number(),
                    ))?;
                    answer(&out, &attempt)
                })
            }
        }))
    });
    finish(py, rotator, &plan, result)
}

/// Turns the loop's outcome into the transport's: the response, or
/// - `NoKeyAvailable` (with `retry_after`, and the provider's last answer as
///   `last_response`) when no key is left, or none comes back before the deadline;
/// - the provider's last answer (a server error) when the attempts or the deadline ran out
///   on failures that were not the key's;
/// - the last transport error (a connection failure) likewise.
fn finish(
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

/// A running asynchronous request; `cancel()` stops its loop (and the attempt in flight).
#[pyclass(module = "ai_key_rotator._native", name = "Execution", frozen)]
#[derive(Debug)]
pub(crate) struct PyExecution {
    handle: Mutex<Option<AbortHandle>>,
}

#[pymethods]
impl PyExecution {
    /// Stops the request: the loop ends, the attempt in flight is cancelled and its lease
    /// released without a report.
    fn cancel(&self) {
        if let Some(h) = self.handle.lock().unwrap_or_else(|e| e.into_inner()).take() {
            h.abort();
        }
    }
}

/// Starts the loop on the runtime; `future` is resolved on `event_loop` when it ends.
pub(crate) fn spawn(
    rotator: &KeyRotator,
    plan: Plan,
    send: Py<PyAny>,
    event_loop: Py<PyAny>,
    future: Py<PyAny>,
) -> PyExecution {
    let rotator = rotator.clone();
    let task = runtime().spawn(async move {
        let result = rotator
            .execute(&plan, |attempt| {
                let (send, event_loop) = (&send, &event_loop);
                async move { attempt_async(send, event_loop, attempt).await }
            })
            .await;
        Python::try_attach(|py| {
            let (ok, value) = match finish(py, &rotator, &plan, result) {
                Ok(v) => (true, v),
                Err(e) => (false, e.into_value(py).into_any()),
            };
            let resolved = py
                .import("ai_key_rotator._util")
                .and_then(|m| m.getattr("resolve"))
                .and_then(|resolve| {
                    event_loop
                        .bind(py)
                        .call_method1("call_soon_threadsafe", (resolve, &future, ok, value))
                });
            if let Err(e) = resolved {
                // The loop is closed: nobody is waiting any more.
                e.write_unraisable(py, None);
            }
        });
    });
    PyExecution {
        handle: Mutex::new(Some(task.abort_handle())),
    }
}

/// One attempt of the asynchronous loop: `send(...)` is a coroutine run on the caller's event
/// loop; this task waits for it without holding the GIL.
async fn attempt_async(
    send: &Py<PyAny>,
    event_loop: &Py<PyAny>,
    attempt: Attempt,
) -> Result<(Verdict, Py<PyAny>), PyErr> {
    let (tx, rx) = oneshot::channel();
    let scheduled = Python::attach(|py| -> PyResult<Py<PyAny>> {
        let coro =
            send.bind(py)
                .call1((attempt.expose_key(), attempt.provider(), attempt.number()))?;
        let cfut = py
            .import("asyncio")?
            .call_method1("run_coroutine_threadsafe", (coro, event_loop))?;
        let signal = DoneSignal {
            tx: Mutex::new(Some(tx)),
        };
        cfut.call_method1("add_done_callback", (signal,))?;
        Ok(cfut.unbind())
    })?;
    let mut guard = CancelOnDrop(Some(scheduled));
    // An error means the signal was dropped unfired; `result()` below raises the reason.
    let _ = rx.await;
    let cfut = guard
        .0
        .take()
        .expect("the attempt's future is held until done");
    Python::attach(|py| {
        let out = cfut.bind(py).call_method0("result")?;
        answer(&out, &attempt)
    })
}

/// Cancels the scheduled coroutine if the loop is dropped (the caller cancelled) while the
/// attempt is in flight.
struct CancelOnDrop(Option<Py<PyAny>>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            Python::try_attach(|py| {
                let _ = f.bind(py).call_method0("cancel");
            });
        }
    }
}

/// The done-callback of an attempt's future: wakes the waiting task.
#[pyclass(module = "ai_key_rotator._native", frozen)]
struct DoneSignal {
    tx: Mutex<Option<oneshot::Sender<()>>>,
}

#[pymethods]
impl DoneSignal {
    fn __call__(&self, _future: &Bound<'_, PyAny>) {
        if let Some(tx) = self.tx.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = tx.send(());
        }
    }
}
