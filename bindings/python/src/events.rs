//! Event delivery: a thread per rotator (started by the first `on`) that receives the core's
//! events from its bounded queue and calls the Python callbacks with the GIL held.
//!
//! The rotator never waits for this thread: the core drops the oldest events of a subscriber
//! that falls behind (and says how many), so a slow callback costs events, never `get_key`
//! latency.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ai_key_rotator::{Event, RecvError, Subscription};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert::to_py;

/// Event names callbacks can be registered for; `"*"` receives every event.
pub(crate) const EVENTS: &[&str] = &[
    "exhausted",
    "rotated",
    "all_exhausted",
    "scope_exhausted",
    "disabled",
    "enabled",
    "reset",
    "remote",
    "lagged",
    "*",
];

/// The name a callback is registered under: the core's kebab-case and the original's
/// camelCase (`allExhausted`) both become snake_case.
pub(crate) fn normalize(name: &str) -> Option<&'static str> {
    let snake: String = name
        .chars()
        .flat_map(|c| {
            if c == '-' {
                vec!['_']
            } else if c.is_ascii_uppercase() {
                vec!['_', c.to_ascii_lowercase()]
            } else {
                vec![c]
            }
        })
        .collect();
    EVENTS.iter().copied().find(|e| *e == snake)
}

/// Callbacks by event name. Cleared by `close()`, which also drops any reference cycle
/// between a callback and its rotator.
#[derive(Debug, Default)]
pub(crate) struct Listeners {
    map: Mutex<HashMap<&'static str, Vec<Py<PyAny>>>>,
    started: Mutex<bool>,
}

impl Listeners {
    pub(crate) fn add(&self, event: &'static str, callback: Py<PyAny>) {
        self.lock().entry(event).or_default().push(callback);
    }

    pub(crate) fn remove(&self, py: Python<'_>, event: &'static str, callback: &Bound<'_, PyAny>) {
        if let Some(list) = self.lock().get_mut(event) {
            list.retain(|c| !c.bind(py).is(callback));
        }
    }

    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    /// Starts the delivery thread unless it runs already; `subscribe` is called only then, so
    /// a rotator nobody listens to pays nothing for events.
    pub(crate) fn start(self: &Arc<Self>, subscribe: impl FnOnce() -> Subscription) {
        let mut started = self.started.lock().unwrap_or_else(|e| e.into_inner());
        if *started {
            return;
        }
        *started = true;
        let subscription = subscribe();
        let listeners = Arc::clone(self);
        std::thread::Builder::new()
            .name("ai-key-rotator-events".into())
            .spawn(move || listeners.pump(subscription))
            .expect("the event thread starts");
    }

    /// Runs until the rotator is gone (every handle dropped) or the interpreter exits.
    fn pump(&self, mut subscription: Subscription) {
        loop {
            match subscription.blocking_recv() {
                Ok(event) => {
                    if self.deliver(&event).is_none() {
                        return;
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    if self.deliver_lagged(n).is_none() {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    }

    fn callbacks(&self, py: Python<'_>, name: &str) -> Vec<Py<PyAny>> {
        let map = self.lock();
        map.get(name)
            .into_iter()
            .chain(map.get("*"))
            .flatten()
            .map(|c| c.clone_ref(py))
            .collect()
    }

    /// Calls the callbacks of `event`; `None` when the interpreter is shutting down.
    fn deliver(&self, event: &Event) -> Option<()> {
        Python::try_attach(|py| {
            let name = event_name(event);
            let callbacks = self.callbacks(py, name);
            if callbacks.is_empty() {
                return;
            }
            let data = match event_dict(py, event, name) {
                Ok(d) => d,
                Err(e) => return e.write_unraisable(py, None),
            };
            for cb in callbacks {
                if let Err(e) = cb.bind(py).call1((data.clone(),)) {
                    // A callback's exception must not end delivery to the others: report it
                    // the way Python reports errors in callbacks it cannot raise to anyone.
                    e.write_unraisable(py, Some(cb.bind(py)));
                }
            }
        })
    }

    fn deliver_lagged(&self, missed: u64) -> Option<()> {
        Python::try_attach(|py| {
            for cb in self.callbacks(py, "lagged") {
                let data = PyDict::new(py);
                let filled = data
                    .set_item("event", "lagged")
                    .and_then(|_| data.set_item("missed", missed))
                    .and_then(|_| cb.bind(py).call1((data,)));
                if let Err(e) = filled {
                    e.write_unraisable(py, Some(cb.bind(py)));
                }
            }
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<&'static str, Vec<Py<PyAny>>>> {
        // Callbacks are only pushed and removed under the lock; a panic cannot leave the map
        // half-changed, so a poisoned lock is still usable.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn event_name(event: &Event) -> &'static str {
    match event {
        Event::Exhausted { .. } => "exhausted",
        Event::Rotated { .. } => "rotated",
        Event::AllExhausted { .. } => "all_exhausted",
        Event::ScopeExhausted { .. } => "scope_exhausted",
        Event::Disabled { .. } => "disabled",
        Event::Enabled { .. } => "enabled",
        Event::Reset { .. } => "reset",
        Event::Remote { .. } => "remote",
        _ => "*",
    }
}

/// The event as a dict: the core's serialized form (credentials by label and fingerprint,
/// times in Unix milliseconds) with the event's snake_case name under `"event"`.
fn event_dict<'py>(py: Python<'py>, event: &Event, name: &str) -> PyResult<Bound<'py, PyAny>> {
    let data = to_py(py, event)?;
    if let Ok(dict) = data.cast::<PyDict>() {
        dict.set_item("event", name)?;
    }
    Ok(data)
}
