//! The log of requests the mock received.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use hyper::{HeaderMap, Method};

use crate::route::Dialect;

/// One request as the mock received it: nothing removed, credentials included, because tests
/// need to see which key arrived.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RecordedRequest {
    /// The HTTP method.
    pub method: Method,
    /// The path, without the query.
    pub path: String,
    /// The query string without the `?`, if any.
    pub query: Option<String>,
    /// Every header, as sent.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
    /// The dialect the route was recognised as.
    pub dialect: Dialect,
    /// The credential, read where the dialect's provider reads it (`None` if absent there).
    pub key: Option<String>,
}

impl RecordedRequest {
    /// The value of header `name` if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// What the mock keeps of the requests it receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recording {
    /// Nothing, not even per-key counts: the mode for load benchmarks.
    Off,
    /// The last `n` requests in full, and exact per-key counts of all of them.
    Last(usize),
}

impl Default for Recording {
    /// The last 10 000 requests: plenty for any functional test, bounded for long runs.
    fn default() -> Self {
        Recording::Last(10_000)
    }
}

/// The request log.
///
/// A `std::sync::Mutex` and not a Tokio one: it is held for a push or a copy, never across an
/// `.await`, and the std lock is cheaper for such short sections.
#[derive(Debug)]
pub(crate) struct Recorder {
    mode: Recording,
    log: Mutex<Log>,
}

#[derive(Debug, Default)]
struct Log {
    requests: VecDeque<RecordedRequest>,
    per_key: HashMap<String, u64>,
    total: u64,
}

impl Recorder {
    pub(crate) fn new(mode: Recording) -> Recorder {
        Recorder {
            mode,
            log: Mutex::default(),
        }
    }

    pub(crate) fn is_on(&self) -> bool {
        self.mode != Recording::Off
    }

    pub(crate) fn record(&self, request: RecordedRequest) {
        let Recording::Last(limit) = self.mode else {
            return;
        };
        let mut log = self.lock();
        log.total += 1;
        if let Some(key) = &request.key {
            *log.per_key.entry(key.clone()).or_default() += 1;
        }
        if limit == 0 {
            return;
        }
        if log.requests.len() == limit {
            log.requests.pop_front();
        }
        log.requests.push_back(request);
    }

    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.iter().cloned().collect()
    }

    pub(crate) fn count_for_key(&self, key: &str) -> u64 {
        self.lock().per_key.get(key).copied().unwrap_or(0)
    }

    pub(crate) fn total(&self) -> u64 {
        self.lock().total
    }

    pub(crate) fn clear(&self) {
        *self.lock() = Log::default();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Log> {
        // Every update leaves the log consistent, so a poisoned lock is still usable.
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
