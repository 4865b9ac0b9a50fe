//! The asynchronous transport's bridge to the core's retry loop: the `execute` future is
//! polled on the caller's asyncio event loop, so that a request costs no thread switch.
//!
//! Each attempt's coroutine becomes a task of that loop; its done-callback completes a
//! oneshot, whose waker schedules the next poll with `call_soon_threadsafe`. Waits inside the
//! loop (a cooling key, a backoff) are tokio timers: the poll enters the runtime, whose thread
//! drives the timers and wakes the same way. The GIL is held only while the event loop's
//! thread polls (never while anything waits).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use ai_key_rotator::KeyRotator;
use ai_key_rotator::classify::Verdict;
use ai_key_rotator::execute::{Attempt, Plan};
use pyo3::prelude::*;
use tokio::sync::oneshot;

use crate::execute::{Outcome, answer, finish};
use crate::runtime::runtime;

type Running = Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// A running asynchronous request. `_step` polls it (always on the event loop's thread);
/// `cancel()` drops it, which cancels the attempt in flight and releases its lease.
#[pyclass(module = "ai_key_rotator._native", name = "Execution", frozen)]
pub(crate) struct PyExecution {
    running: Mutex<Option<(Running, Arc<LoopWaker>)>>,
    rotator: KeyRotator,
    plan: Plan,
    future: Py<PyAny>,
}

impl std::fmt::Debug for PyExecution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Execution").finish_non_exhaustive()
    }
}

/// Wakes the request by scheduling its next poll on its event loop; several wakes before the
/// poll schedule one.
struct LoopWaker {
    event_loop: Py<PyAny>,
    /// The event loop's thread: wakes from it (an attempt's task finished) use the cheaper
    /// `call_soon`; wakes from elsewhere (a tokio timer) must use `call_soon_threadsafe`.
    loop_thread: std::thread::ThreadId,
    execution: Py<PyExecution>,
    scheduled: AtomicBool,
}

impl Wake for LoopWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.scheduled.swap(true, Ordering::AcqRel) {
            return;
        }
        let on_loop = std::thread::current().id() == self.loop_thread;
        Python::try_attach(|py| {
            // On the loop's thread (an attempt's task finished and called back), poll at once
            // rather than in one more turn of the loop, unless a poll is running right now.
            if on_loop {
                match self.execution.get().step(py, false) {
                    Ok(Some(())) => return,
                    Ok(None) => {}
                    Err(e) => return e.write_unraisable(py, None),
                }
            }
            let schedule = if on_loop {
                "call_soon"
            } else {
                "call_soon_threadsafe"
            };
            let step = self.execution.bind(py).getattr("_step");
            let scheduled =
                step.and_then(|step| self.event_loop.bind(py).call_method1(schedule, (step,)));
            if let Err(e) = scheduled {
                // The event loop is closed: nobody waits for this request any more.
                e.write_unraisable(py, None);
            }
        });
    }
}

/// Starts a request and polls it once (the caller is a coroutine on `event_loop`, so this is
/// the loop's thread); `future` (of that loop) is resolved with the response or the
/// exception.
pub(crate) fn start(
    py: Python<'_>,
    rotator: &KeyRotator,
    plan: Plan,
    send: Py<PyAny>,
    event_loop: Py<PyAny>,
    future: Py<PyAny>,
) -> PyResult<Py<PyExecution>> {
    let running: Running = {
        let (rotator, plan, event_loop) = (rotator.clone(), plan.clone(), event_loop.clone_ref(py));
        Box::pin(async move {
            rotator
                .execute(&plan, |attempt| {
                    let (send, event_loop) = (&send, &event_loop);
                    async move { attempt_on_loop(send, event_loop, attempt).await }
                })
                .await
        })
    };
    let execution = Py::new(
        py,
        PyExecution {
            running: Mutex::new(None),
            rotator: rotator.clone(),
            plan,
            future,
        },
    )?;
    let waker = Arc::new(LoopWaker {
        event_loop,
        loop_thread: std::thread::current().id(),
        execution: execution.clone_ref(py),
        scheduled: AtomicBool::new(false),
    });
    *execution.get().lock() = Some((running, waker));
    execution.get()._step(py)?;
    Ok(execution)
}

impl PyExecution {
    /// Polls once. Without `wait`, returns `None` (doing nothing) if a poll is running.
    fn step(&self, py: Python<'_>, wait: bool) -> PyResult<Option<()>> {
        let outcome = {
            let mut running = if wait {
                self.lock()
            } else {
                match self.running.try_lock() {
                    Ok(guard) => guard,
                    Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
                    Err(std::sync::TryLockError::WouldBlock) => return Ok(None),
                }
            };
            let Some((future, waker)) = running.as_mut() else {
                return Ok(Some(()));
            };
            waker.scheduled.store(false, Ordering::Release);
            let waker = Waker::from(Arc::clone(waker));
            let _runtime = runtime().enter();
            match future.as_mut().poll(&mut Context::from_waker(&waker)) {
                Poll::Pending => return Ok(Some(())),
                Poll::Ready(outcome) => {
                    // Dropping the finished future and its waker here breaks the cycle
                    // execution → waker → execution.
                    *running = None;
                    outcome
                }
            }
        };
        let (ok, value) = match finish(py, &self.rotator, &self.plan, outcome) {
            Ok(v) => (true, v),
            Err(e) => (false, e.into_value(py).into_any()),
        };
        py.import("ai_key_rotator._util")?
            .getattr("resolve")?
            .call1((&self.future, ok, value))?;
        Ok(Some(()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Running, Arc<LoopWaker>)>> {
        // A panic inside a poll ends the request (the slot is emptied below), so a poisoned
        // lock holds nothing half-done.
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[pymethods]
impl PyExecution {
    /// Polls the request once; resolves its future when it is done.
    fn _step(&self, py: Python<'_>) -> PyResult<()> {
        self.step(py, true).map(|_| ())
    }

    /// Stops the request: the attempt in flight is cancelled and its lease released without
    /// a report.
    fn cancel(&self) {
        let running = self.lock().take();
        drop(running);
    }
}

/// One attempt: `send(...)`'s coroutine runs as a task of the event loop (this is polled on
/// that loop's thread), and the attempt waits for it through its done-callback.
async fn attempt_on_loop(
    send: &Py<PyAny>,
    event_loop: &Py<PyAny>,
    attempt: Attempt,
) -> Result<(Verdict, Py<PyAny>), PyErr> {
    let (tx, rx) = oneshot::channel();
    let task = Python::attach(|py| -> PyResult<Py<PyAny>> {
        let coro =
            send.bind(py)
                .call1((attempt.expose_key(), attempt.provider(), attempt.number()))?;
        let task = event_loop.bind(py).call_method1("create_task", (coro,))?;
        let signal = DoneSignal {
            tx: Mutex::new(Some(tx)),
        };
        task.call_method1("add_done_callback", (signal,))?;
        Ok(task.unbind())
    })?;
    let mut guard = CancelOnDrop(Some(task));
    // An error means the signal was dropped unfired; `result()` below raises the reason.
    let _ = rx.await;
    let task = guard
        .0
        .take()
        .expect("the attempt's task is held until done");
    Python::attach(|py| {
        let out = task.bind(py).call_method0("result")?;
        answer(&out, &attempt)
    })
}

/// Cancels the attempt's task if the request is dropped (cancelled) while it is in flight.
struct CancelOnDrop(Option<Py<PyAny>>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            Python::try_attach(|py| {
                let _ = task.bind(py).call_method0("cancel");
            });
        }
    }
}

/// The done-callback of an attempt's task: wakes the request.
#[pyclass(module = "ai_key_rotator._native", frozen)]
struct DoneSignal {
    tx: Mutex<Option<oneshot::Sender<()>>>,
}

#[pymethods]
impl DoneSignal {
    fn __call__(&self, _task: &Bound<'_, PyAny>) {
        if let Some(tx) = self.tx.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = tx.send(());
        }
    }
}
