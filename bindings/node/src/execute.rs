//! `execute(plan, fn)`: the core's retry loop with a JavaScript function as the request.
//!
//! The loop (which key, when to rotate, fall back, back off or give up) is the core's
//! `KeyRotator::execute`, the same one the gateway runs; this file only carries each attempt
//! to JavaScript and the answer back. JavaScript keeps the values its function returned (a
//! `Response`, say) and sends only what the classifier reads: status, headers and, for an
//! error, the body's text. The loop answers with the id of the value to hand to the caller.
//!
//! The loop's future is polled on the JavaScript thread, by JavaScript: `poll()` runs it until
//! it needs an attempt (JavaScript runs it and calls `answer`), finishes, or waits for a timer
//! (a backoff, a key coming back), whose waker then rings a thread-safe function that
//! JavaScript armed for that wait. A request that succeeds at once thus never leaves the
//! JavaScript thread and makes no system call of ours; handing each step to a runtime thread
//! and back, or ringing on every wake, cost more than the rest of the adapter.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use ai_key_rotator::classify::Response;
use ai_key_rotator::execute::{ExecuteError, ExecuteErrorKind, Plan};
use napi::bindgen_prelude::{Function, within_runtime_if_available};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Either, Status};
use napi_derive::napi;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::convert::camel;
use crate::error::{Result, js_error};
use crate::{NativeRotator, hot, pairs};

/// What the JavaScript side of one attempt answered: the id under which it keeps the value,
/// and what the classifier reads (`None`: the function threw, a transport failure).
struct AttemptAnswer {
    id: u32,
    response: Option<Answered>,
}

/// A provider's answer as the classifier reads it.
struct Answered {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

/// Rings JavaScript to poll again. Ref'd: a pending backoff keeps the process alive, as a
/// timer would.
type Ring = ThreadsafeFunction<Value, (), Value, Status, false>;

/// Whether the future was woken, and the ring JavaScript armed while it waits for a timer.
/// Wakes that happen while JavaScript is polling or running an attempt (the answer to an
/// attempt wakes the future, on this thread) need no ring: JavaScript polls next anyway.
#[derive(Default)]
struct WakeState {
    woken: bool,
    armed: bool,
    ring: Option<Ring>,
}

struct Ringer(Arc<Mutex<WakeState>>);

impl Wake for Ringer {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if state.armed {
            state.armed = false;
            if let Some(ring) = &state.ring {
                ring.call(Value::Null, ThreadsafeFunctionCallMode::NonBlocking);
            }
        } else {
            state.woken = true;
        }
    }
}

/// `poll`: the run is over.
const DONE: i32 = -1;
/// `poll`: the run waits for a timer.
const WAITING: i32 = -2;
/// `poll`: the rotator was destroyed while the run went on.
const DESTROYED: i32 = -3;

/// The attempt the loop waits for: what to tell JavaScript, and where its answer goes.
/// The credential handle, the attempt's number, and where its answer goes.
type Request = (i32, u32, oneshot::Sender<AttemptAnswer>);
type Outcome = std::result::Result<u32, ExecuteError<u32, String>>;

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
    /// Starts running a plan (`{ providers, maxAttempts?, attemptTimeoutMs?, deadlineMs?,
    /// backoffBaseMs?, backoffMaxMs?, session?, tokens? }` as JSON); JavaScript drives it with
    /// `poll`, `answer` and `arm` (see `NativeExecution`).
    #[napi]
    pub fn execute(&self, plan_json: String) -> Result<NativeExecution> {
        let rotator = self.rotator()?.clone();
        let config: PlanConfig = serde_json::from_str(&plan_json)
            .map_err(|e| js_error("ERR_INVALID_ARG", format!("invalid plan: {e}")))?;
        let plan = plan(config)?;
        let requests: Rc<RefCell<Option<Request>>> = Rc::default();
        let slot = Rc::clone(&requests);
        let slot_id = self.slot;
        let run = async move {
            rotator
                .execute(&plan, move |a| {
                    let (tx, rx) = oneshot::channel();
                    // The attempt's credential as a handle of the `getKey` table: JavaScript
                    // already holds (or builds once) its object, so nothing is converted here.
                    let handle = hot::with(slot_id, |h| {
                        let p = h.registry.provider_index(a.provider().to_owned());
                        h.registry.handle(p as u32, a.credential().clone())
                    })
                    .unwrap_or(DESTROYED);
                    *slot.borrow_mut() = Some((handle, a.number(), tx));
                    async move {
                        let answer = rx
                            .await
                            .map_err(|_| "the attempt was abandoned".to_owned())?;
                        let Some(r) = answer.response else {
                            return Err(answer.id.to_string());
                        };
                        let verdict =
                            a.classify(&Response::new(r.status, &r.headers, r.body.as_bytes()));
                        Ok((verdict, answer.id))
                    }
                })
                .await
        };
        let wake = Arc::new(Mutex::new(WakeState::default()));
        Ok(NativeExecution {
            run: Some(Box::pin(run)),
            outcome: None,
            requests,
            reply: None,
            waker: Some(Waker::from(Arc::new(Ringer(Arc::clone(&wake))))),
            wake,
        })
    }
}

/// One run of the core's `execute` loop, driven from JavaScript.
#[napi]
pub struct NativeExecution {
    run: Option<Pin<Box<dyn Future<Output = Outcome>>>>,
    outcome: Option<Outcome>,
    requests: Rc<RefCell<Option<Request>>>,
    /// The running attempt's number and where its answer goes.
    reply: Option<(u32, oneshot::Sender<AttemptAnswer>)>,
    waker: Option<Waker>,
    wake: Arc<Mutex<WakeState>>,
}

impl std::fmt::Debug for NativeExecution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeExecution")
            .field("running", &self.run.is_some())
            .finish_non_exhaustive()
    }
}

#[napi]
impl NativeExecution {
    /// Runs the loop as far as it goes now. Returns the credential handle of the attempt to
    /// run (then `answer` or `fail`), `WAITING` (-2: `arm`, then poll again when rung),
    /// `DONE` (-1: read `outcome`) or `DESTROYED` (-3). Numbers rather than objects: this runs once or twice per
    /// request.
    #[napi]
    pub fn poll(&mut self) -> i32 {
        let (Some(run), Some(waker)) = (self.run.as_mut(), self.waker.as_ref()) else {
            return DONE;
        };
        self.wake.lock().unwrap_or_else(|e| e.into_inner()).woken = false;
        let mut cx = Context::from_waker(waker);
        // Timers (backoff, waiting for a key) belong to the addon's runtime, which drives them
        // on its own thread and wakes this future, which rings.
        let polled = within_runtime_if_available(|| run.as_mut().poll(&mut cx));
        match polled {
            Poll::Ready(outcome) => {
                self.close();
                self.outcome = Some(outcome);
                DONE
            }
            Poll::Pending => match self.requests.borrow_mut().take() {
                Some((handle, number, reply)) => {
                    // An attempt still running here was given up (timed out): its answer, if
                    // it comes, is no longer awaited.
                    self.reply = Some((number, reply));
                    handle
                }
                None => WAITING,
            },
        }
    }

    /// Once `poll` returned `DONE`: the id of the value to return (a number), or why the run
    /// failed, `{ code, message, retryAt, attempts, lastId, lastFailed }`.
    #[napi]
    pub fn outcome(&mut self) -> Either<u32, Value> {
        match self.outcome.take() {
            Some(Ok(id)) => Either::A(id),
            Some(Err(e)) => Either::B(failure_json(e)),
            None => Either::B(Value::Null),
        }
    }

    /// The answer to the attempt `poll` asked for: the id under which JavaScript keeps it, and
    /// the status, headers (`[name, value, name, value, …]`) and, for an error, body.
    #[napi]
    pub fn answer(&mut self, id: u32, status: u32, headers: Vec<String>, body: Option<String>) {
        let status = u16::try_from(status)
            .ok()
            .filter(|s| (100..=599).contains(s))
            .unwrap_or(500);
        self.reply(AttemptAnswer {
            id,
            response: Some(Answered {
                status,
                headers: pairs(headers),
                body: body.unwrap_or_default(),
            }),
        });
    }

    /// The attempt's function threw: a transport failure, kept by JavaScript under `id`.
    #[napi]
    pub fn fail(&mut self, id: u32) {
        self.reply(AttemptAnswer { id, response: None });
    }

    fn reply(&mut self, answer: AttemptAnswer) {
        // Ids count attempts from 0, the loop from 1. The answer to an attempt the loop gave up
        // on (timed out) is dropped.
        if self
            .reply
            .as_ref()
            .is_some_and(|(n, _)| *n == answer.id + 1)
            && let Some((_, reply)) = self.reply.take()
        {
            // JavaScript polls next: the wake this send causes needs no ring.
            self.wake.lock().unwrap_or_else(|e| e.into_inner()).armed = false;
            // The loop may have been closed meanwhile; then nobody waits for the answer.
            let _ = reply.send(answer);
        }
    }

    /// Called when `poll` said `waiting`, or while an attempt runs under a time limit: `ring`
    /// is called (on this thread) when the timer the loop waits for fires. Returns `true` when
    /// it already fired: poll again at once.
    #[napi(ts_args_type = "ring: () => void")]
    pub fn arm(&mut self, ring: Function<'_, Value, ()>) -> Result<bool> {
        let mut state = self.wake.lock().unwrap_or_else(|e| e.into_inner());
        if state.woken {
            return Ok(true);
        }
        if state.ring.is_none() {
            state.ring = Some(
                ring.build_threadsafe_function::<Value>()
                    .callee_handled::<false>()
                    .build()
                    .map_err(|e| js_error("ERR_INTERNAL", e.to_string()))?,
            );
        }
        state.armed = true;
        Ok(false)
    }

    /// Stops the run (dropping it releases its lease and its timers) and the ring, so that
    /// nothing keeps the process alive. Idempotent.
    #[napi]
    pub fn close(&mut self) {
        self.run = None;
        self.reply = None;
        self.requests.borrow_mut().take();
        self.waker = None;
        let ring = {
            let mut state = self.wake.lock().unwrap_or_else(|e| e.into_inner());
            state.armed = false;
            state.ring.take()
        };
        drop(ring);
    }
}

fn failure_json(e: ExecuteError<u32, String>) -> Value {
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
        "code": code,
        "message": e.to_string(),
        "retryAt": e.retry_at.map(|t| t.as_millis()),
        "attempts": camel(&e.attempts),
        "lastId": last_id,
        "lastFailed": last_failed,
    })
}
