//! Events from the core's bounded queues, delivered to JavaScript on its thread.
//!
//! Two subscriptions per rotator with listeners. The rotator's own one is drained by JavaScript
//! right after each call that can change state, so an event caused by `markExhausted` is
//! emitted before that call returns, as in the original. The other wakes JavaScript for events
//! that happen elsewhere (the background reset check, another process's change through a
//! shared store, a report from `execute`): a thread waits on it and rings a thread-safe
//! function, whose JavaScript side drains the first subscription. Both queues are bounded and
//! drop their oldest events for a reader that falls behind, so the rotator never waits for
//! JavaScript; the thread-safe function is weak (unref'd), so waiting for events does not keep
//! an otherwise idle program alive.

use ai_key_rotator::{RecvError, Subscription};
use napi::Status;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use serde_json::Value;

use crate::convert::camel;

/// The doorbell: JavaScript drains the events when it rings.
pub(crate) type Doorbell = ThreadsafeFunction<Value, (), Value, Status, false, true>;

/// Starts the doorbell thread. It ends when the rotator is gone (the queue closes) or when
/// JavaScript can no longer be called (the environment is shutting down).
pub(crate) fn spawn_doorbell(mut wake: Subscription, doorbell: Doorbell) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("akr-node-events".into())
        .spawn(move || {
            loop {
                match wake.blocking_recv() {
                    // Several events queued at once need one ring: JavaScript drains them all.
                    Ok(_) | Err(RecvError::Lagged(_)) => {
                        drop(wake.drain());
                        let status =
                            doorbell.call(Value::Null, ThreadsafeFunctionCallMode::NonBlocking);
                        if status == Status::Closing {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            }
        })
        .map(drop)
}

/// Every event queued on `events`, as JavaScript objects with camelCase keys.
pub(crate) fn drain(events: &mut Subscription) -> Value {
    let mut out = Vec::new();
    loop {
        match events.try_recv() {
            Ok(event) => out.push(camel(&event)),
            // The oldest events were dropped; the next call returns the oldest kept.
            Err(RecvError::Lagged(_)) => {}
            Err(_) => return Value::Array(out),
        }
    }
}
