//! The asynchronous transport's bridge to the core's retry loop: the `execute` future is
//! driven by the awaiting coroutine itself, so a request costs no thread switch, no extra
//! task and no extra turn of the event loop.
//!
//! The coroutine (`_transport.py`) calls `poll()` in a loop. Each answer says what the core's
//! loop needs: the response (done), an attempt to send (`(credential, provider, number)`: the
//! coroutine awaits the send inline and hands the answer back with `give`, or the exception
//! with `fail`), or a wait (a cooling key, a backoff: an asyncio future that the tokio timer's
//! waker resolves with `call_soon_threadsafe`). Polls happen with the GIL held, on the event
//! loop's thread; nothing waits while holding it.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};

use ai_key_rotator::execute::Plan;
use ai_key_rotator::{Credential, KeyRotator};
use pyo3::prelude::*;
use tokio::sync::oneshot;

use crate::credential::PyCredential;
use crate::errors::raise;
use crate::execute::{Outcome, answer, finish};
use crate::runtime::runtime;

type Running = Pin<Box<dyn Future<Output = Outcome> + Send>>;
type Reply = oneshot::Sender<PyResult<Py<PyAny>>>;

/// What the request's loop and its coroutine share.
struct Shared {
    event_loop: Py<PyAny>,
    /// The attempt the loop wants sent, set by the loop and taken by `poll`.
    request: Mutex<Option<(Credential, u32, Reply)>>,
    /// Where `give`/`fail` send the attempt's answer.
    reply: Mutex<Option<Reply>>,
    /// Set by a wake; `poll` clears it before polling.
    woken: AtomicBool,
    /// The asyncio future the coroutine awaits while the loop waits on a timer.
    waiting: Mutex<Option<Py<PyAny>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section is a take or a put: a panic cannot leave a value half-written.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Wake for Shared {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }

    /// A wake that comes while the coroutine awaits a wait-future resolves it (from the
    /// runtime's timer thread, hence `call_soon_threadsafe`); any other wake is seen by the
    /// next `poll` through `woken`.
    fn wake_by_ref(self: &Arc<Self>) {
        let waiting = {
            let mut waiting = lock(&self.waiting);
            self.woken.store(true, Ordering::Release);
            waiting.take()
        };
        if let Some(future) = waiting {
            Python::try_attach(|py| {
                let woke = py
                    .import("ai_key_rotator._util")
                    .and_then(|m| m.getattr("wake"))
                    .and_then(|wake| {
                        self.event_loop
                            .bind(py)
                            .call_method1("call_soon_threadsafe", (wake, future))
                    });
                if let Err(e) = woke {
                    // The event loop is closed: nobody waits for this request any more.
                    e.write_unraisable(py, None);
                }
            });
        }
    }
}

/// A request running through the core's retry loop; see the module docs.
#[pyclass(module = "ai_key_rotator._native", name = "Execution", frozen)]
pub(crate) struct PyExecution {
    running: Mutex<Option<Running>>,
    shared: Arc<Shared>,
    rotator: KeyRotator,
    plan: Plan,
}

impl std::fmt::Debug for PyExecution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Execution").finish_non_exhaustive()
    }
}

/// A request of `plan` on `rotator`, to be driven by a coroutine on `event_loop`.
pub(crate) fn start(rotator: &KeyRotator, plan: Plan, event_loop: Py<PyAny>) -> PyExecution {
    let shared = Arc::new(Shared {
        event_loop,
        request: Mutex::new(None),
        reply: Mutex::new(None),
        woken: AtomicBool::new(false),
        waiting: Mutex::new(None),
    });
    let running: Running = {
        let (rotator, plan, shared) = (rotator.clone(), plan.clone(), Arc::clone(&shared));
        Box::pin(async move {
            rotator
                .execute(&plan, |attempt| {
                    let shared = &shared;
                    async move {
                        let (tx, rx) = oneshot::channel();
                        *lock(&shared.request) =
                            Some((attempt.credential().clone(), attempt.number(), tx));
                        let out = match rx.await {
                            Ok(out) => out?,
                            Err(_) => {
                                return Err(Python::attach(|py| {
                                    raise(py, "RotatorError", "the attempt was abandoned".into())
                                }));
                            }
                        };
                        Python::attach(|py| answer(out.bind(py), &attempt))
                    }
                })
                .await
        })
    };
    PyExecution {
        running: Mutex::new(Some(running)),
        shared,
        rotator: rotator.clone(),
        plan,
    }
}

/// What `poll` answers: the response, an attempt to send, "poll again", or a future to await.
const DONE: u8 = 0;
const SEND: u8 = 1;
const AGAIN: u8 = 2;
const WAIT: u8 = 3;

#[pymethods]
impl PyExecution {
    /// Advances the loop; returns `(0, response)`, `(1, (credential, provider, attempt))`, `(2, None)`
    /// or `(3, future)`, or raises what the request ends with (`NoKeyAvailable`, …).
    fn poll(&self, py: Python<'_>) -> PyResult<(u8, Py<PyAny>)> {
        let outcome = {
            let mut running = lock(&self.running);
            let Some(future) = running.as_mut() else {
                return Err(raise(py, "RotatorError", "the request has ended".into()));
            };
            self.shared.woken.store(false, Ordering::Release);
            let waker = Waker::from(Arc::clone(&self.shared));
            let _runtime = runtime().enter();
            match future.as_mut().poll(&mut Context::from_waker(&waker)) {
                Poll::Ready(outcome) => {
                    *running = None;
                    outcome
                }
                Poll::Pending => return self.pending(py),
            }
        };
        finish(py, &self.rotator, &self.plan, outcome).map(|response| (DONE, response))
    }

    /// The answer of the attempt `poll` asked for: `(status, headers, body, response)`.
    fn give(&self, answer: Py<PyAny>) {
        if let Some(reply) = lock(&self.shared.reply).take() {
            let _ = reply.send(Ok(answer));
        }
    }

    /// The attempt failed before an answer (a transport error): the loop decides whether to
    /// retry.
    fn fail(&self, error: Bound<'_, PyAny>) {
        if let Some(reply) = lock(&self.shared.reply).take() {
            let _ = reply.send(Err(PyErr::from_value(error)));
        }
    }

    /// Ends the request (the coroutine was cancelled): the lease of the attempt in flight is
    /// released without a report. Nothing happens if it has ended.
    fn cancel(&self) {
        let running = lock(&self.running).take();
        drop(running);
    }
}

impl PyExecution {
    fn pending(&self, py: Python<'_>) -> PyResult<(u8, Py<PyAny>)> {
        if let Some((credential, number, reply)) = lock(&self.shared.request).take() {
            *lock(&self.shared.reply) = Some(reply);
            let provider = credential.provider().to_owned();
            let attempt = (PyCredential::new(credential), provider, number);
            return Ok((SEND, attempt.into_pyobject(py)?.into_any().unbind()));
        }
        // The loop waits on a timer. The wake may already have come (a short wait, a busy
        // machine); `woken` is read under the same lock the waker takes.
        let mut waiting = lock(&self.shared.waiting);
        if self.shared.woken.load(Ordering::Acquire) {
            return Ok((AGAIN, py.None()));
        }
        let future = self
            .shared
            .event_loop
            .bind(py)
            .call_method0("create_future")?;
        *waiting = Some(future.clone().unbind());
        Ok((WAIT, future.unbind()))
    }
}
