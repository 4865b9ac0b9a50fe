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
    /// The TLS handshake with the server failed: its certificate is not trusted (give its CA
    /// with `RedisStoreBuilder::ca_certificate_pem`), does not name the host, or expired.
    #[error("the TLS handshake failed ({reason})")]
    Tls {
        /// What TLS said, e.g. `invalid peer certificate: UnknownIssuer`.
        reason: String,
    },
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
///
/// A store-wide fault and a partial one are kept apart, so that a store that recovers from an
/// outage reports the rows or providers still broken instead of "healthy".
#[derive(Debug)]
pub(crate) struct HealthCell {
    name: &'static str,
    state: Mutex<Faults>,
}

#[derive(Debug, Default)]
struct Faults {
    /// The store as a whole fails: the cause and how many times since it changed.
    wide: Option<(StoreFault, u64)>,
    /// Some data is unusable: the latest such problem and how many were met since it changed.
    partial: Option<(StoreFault, u64)>,
}

impl Faults {
    fn health(&self) -> StoreHealth {
        match (&self.wide, &self.partial) {
            (Some((fault, count)), _) => StoreHealth::Failing {
                fault: fault.clone(),
                count: *count,
            },
            (None, Some((fault, count))) => StoreHealth::Degraded {
                fault: fault.clone(),
                count: *count,
            },
            (None, None) => StoreHealth::Healthy,
        }
    }
}

impl HealthCell {
    pub(crate) fn new(name: &'static str) -> Self {
        HealthCell {
            name,
            state: Mutex::new(Faults::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn get(&self) -> StoreHealth {
        self.lock().health()
    }

    /// Notes a failure; logs only when the health it reports changes.
    pub(crate) fn fail(&self, fault: StoreFault) {
        let mut faults = self.lock();
        let slot = if fault.is_partial() {
            &mut faults.partial
        } else {
            &mut faults.wide
        };
        if let Some((f, count)) = slot
            && *f == fault
        {
            *count += 1;
            return;
        }
        let before = faults.health();
        let slot = if fault.is_partial() {
            &mut faults.partial
        } else {
            &mut faults.wide
        };
        *slot = Some((fault, 1));
        self.changed(&before, &faults.health());
    }

    /// Notes that the store works again as a whole (a write or a read succeeded). A partial
    /// fault stays until [`clean`](Self::clean).
    pub(crate) fn ok(&self) {
        let mut faults = self.lock();
        if faults.wide.is_some() {
            let before = faults.health();
            faults.wide = None;
            self.changed(&before, &faults.health());
        }
    }

    /// Notes that all the data was read without a problem: a partial fault is over (a
    /// store-wide one stays until [`ok`](Self::ok)).
    pub(crate) fn clean(&self) {
        let mut faults = self.lock();
        if faults.partial.is_some() {
            let before = faults.health();
            faults.partial = None;
            self.changed(&before, &faults.health());
        }
    }

    fn changed(&self, before: &StoreHealth, now: &StoreHealth) {
        if before == now {
            return;
        }
        let (store, was) = (self.name, describe(before));
        match now {
            StoreHealth::Degraded { fault, .. } => {
                tracing::warn!(store, %fault, was, "store degraded; the rest of its data is still shared");
            }
            StoreHealth::Failing { fault, .. } => {
                tracing::warn!(store, %fault, was, "store failing; serving from the local view");
            }
            _ => tracing::info!(store, was, "store recovered"),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn wrong_type() -> StoreFault {
        StoreFault::WrongType {
            provider: "openai".into(),
        }
    }

    #[test]
    fn counts_repeats_and_keeps_a_partial_fault_under_an_outage() {
        let cell = HealthCell::new("test");
        assert_eq!(cell.get(), StoreHealth::Healthy);
        cell.fail(wrong_type());
        cell.fail(wrong_type());
        assert_eq!(
            cell.get(),
            StoreHealth::Degraded {
                fault: wrong_type(),
                count: 2
            }
        );
        for _ in 0..3 {
            cell.fail(StoreFault::Unreachable);
        }
        assert_eq!(
            cell.get(),
            StoreHealth::Failing {
                fault: StoreFault::Unreachable,
                count: 3
            }
        );
        // The outage ends; the broken provider is still broken.
        cell.ok();
        assert!(matches!(cell.get(), StoreHealth::Degraded { .. }));
        cell.clean();
        assert_eq!(cell.get(), StoreHealth::Healthy);
        // A new cause starts a new count.
        cell.fail(StoreFault::Timeout);
        cell.fail(StoreFault::ReadOnly);
        assert_eq!(
            cell.get(),
            StoreHealth::Failing {
                fault: StoreFault::ReadOnly,
                count: 1
            }
        );
    }
}
