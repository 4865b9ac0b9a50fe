//! A store's health as data ([`StoreHealth`], [`StoreFault`]), and the cell a store keeps it
//! in, which logs each change of health once instead of each failed write.

use std::sync::Mutex;

/// What is wrong with a store, told apart so an operator knows what to fix.
///
/// Never holds a key, a password or a server's URL: only the kind of failure, and the provider
/// or fingerprint it concerns when it concerns one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreFault {
    /// The server refused the store's credentials (a wrong or missing password or user).
    #[error("authentication failed (check the password or user in the store's URL)")]
    AuthenticationFailed,
    /// A key the store uses for `provider` holds another type of value (something else wrote
    /// to it). Only that provider stops sharing; the others go on.
    #[error("a redis key of provider {provider} holds the wrong type of value")]
    WrongType {
        /// The provider whose data is unusable.
        provider: String,
    },
    /// The server accepts no writes (a read-only replica).
    #[error("the server is a read-only replica")]
    ReadOnly,
    /// The server cannot be reached (refused, reset, no route).
    #[error("the server cannot be reached")]
    Unreachable,
    /// The server did not answer in time.
    #[error("the server did not answer in time")]
    Timeout,
    /// A stored row could not be read and was skipped; the others were used.
    #[error(
        "a stored row of provider {provider}, credential {fingerprint}, is malformed ({field}) and was skipped"
    )]
    MalformedRow {
        /// The row's provider.
        provider: String,
        /// The row's fingerprint, as stored (never a key: only fingerprints are stored).
        fingerprint: String,
        /// The column that could not be read.
        field: &'static str,
    },
    /// Any other failure, with the backend's kind of error.
    #[error("{0}")]
    Other(String),
}

impl StoreFault {
    /// Whether only some data is affected (the store still shares the rest), as opposed to
    /// the store failing as a whole.
    pub fn is_partial(&self) -> bool {
        matches!(
            self,
            StoreFault::WrongType { .. } | StoreFault::MalformedRow { .. }
        )
    }
}

/// How a rotator's store is doing; see
/// [`KeyRotator::store_health`](crate::KeyRotator::store_health).
///
/// Failures are counted from the moment the health last changed, so a store failing on every
/// write shows one [`Failing`](Self::Failing) with a growing count (and logged one warning).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreHealth {
    /// The rotator has no store.
    NoStore,
    /// The store reads and writes as it should.
    Healthy,
    /// Part of the stored data is unusable (`fault` is the latest such problem); the rest is
    /// read, written and shared.
    Degraded {
        /// The latest problem.
        fault: StoreFault,
        /// How many times a problem of this kind was met since the health changed.
        count: u64,
    },
    /// The store cannot read or write: the rotator serves from its local view.
    Failing {
        /// The cause.
        fault: StoreFault,
        /// How many operations failed since the health changed.
        count: u64,
    },
}

impl StoreHealth {
    /// Whether nothing is wrong (no store counts as nothing wrong).
    pub fn is_healthy(&self) -> bool {
        matches!(self, StoreHealth::NoStore | StoreHealth::Healthy)
    }
}

/// A store's health, shared by its threads. Logs at warning level each time the health
/// changes, with how many failures the previous state saw, and never on a repeated failure.
#[derive(Debug)]
pub(crate) struct HealthCell {
    name: &'static str,
    state: Mutex<StoreHealth>,
}

impl HealthCell {
    pub(crate) fn new(name: &'static str) -> Self {
        HealthCell {
            name,
            state: Mutex::new(StoreHealth::Healthy),
        }
    }

    pub(crate) fn get(&self) -> StoreHealth {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Notes a failure. A partial fault does not hide a store-wide one.
    pub(crate) fn fail(&self, fault: StoreFault) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let partial = fault.is_partial();
        match &mut *state {
            StoreHealth::Failing { fault: f, count }
            | StoreHealth::Degraded { fault: f, count }
                if *f == fault =>
            {
                *count += 1;
                return;
            }
            StoreHealth::Failing { count, .. } if partial => {
                // Reading some data failed while the store as a whole fails: the store-wide
                // cause is the one to report.
                *count += 1;
                return;
            }
            _ => {}
        }
        let before = describe(&state);
        *state = if partial {
            StoreHealth::Degraded { fault, count: 1 }
        } else {
            StoreHealth::Failing { fault, count: 1 }
        };
        let store = self.name;
        match &*state {
            StoreHealth::Degraded { fault, .. } => {
                tracing::warn!(store, %fault, was = %before, "store degraded; the rest of its data is still shared");
            }
            StoreHealth::Failing { fault, .. } => {
                tracing::warn!(store, %fault, was = %before, "store failing; serving from the local view");
            }
            _ => {}
        }
    }

    /// Notes that the store works again as a whole (a write or a read succeeded). A partial
    /// fault stays until [`clean`](Self::clean).
    pub(crate) fn ok(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let StoreHealth::Failing { fault, count } = &*state {
            tracing::info!(store = self.name, %fault, failures = count, "store recovered");
            *state = StoreHealth::Healthy;
        }
    }

    /// Notes that all the data was read without a problem: a partial fault is over (a
    /// store-wide one stays until [`ok`](Self::ok)).
    pub(crate) fn clean(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let StoreHealth::Degraded { fault, count } = &*state {
            tracing::info!(store = self.name, %fault, failures = count, "store recovered");
            *state = StoreHealth::Healthy;
        }
    }
}

fn describe(state: &StoreHealth) -> String {
    match state {
        StoreHealth::NoStore => "no store".into(),
        StoreHealth::Healthy => "healthy".into(),
        StoreHealth::Degraded { fault, count } => format!("degraded ({fault}) x{count}"),
        StoreHealth::Failing { fault, count } => format!("failing ({fault}) x{count}"),
    }
}
