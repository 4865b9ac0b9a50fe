//! `acquire()`: a lease on a credential, counted in flight until JavaScript reports or
//! releases it.
//!
//! The core's `Lease` borrows its rotator, which a JavaScript object cannot express; the lease
//! is kept in a `self_cell` beside a handle of the rotator it borrows.

use ai_key_rotator::classify::Response;
use ai_key_rotator::{AcquireError, AcquireOptions, KeyRotator, Lease};
use napi::Either;
use napi_derive::napi;
use self_cell::self_cell;
use serde_json::{Value, json};

use crate::convert::camel;
use crate::error::{Result, acquire_error, js_error};
use crate::{NativeRotator, hot, http_status, pairs};

type MaybeLease<'a> = Option<Lease<'a>>;

self_cell!(
    struct LeaseCell {
        owner: KeyRotator,
        #[covariant]
        dependent: MaybeLease,
    }
);

/// A credential held for one request.
#[napi]
pub struct NativeLease {
    cell: LeaseCell,
    handle: i32,
}

impl std::fmt::Debug for NativeLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeLease").finish_non_exhaustive()
    }
}

#[napi]
impl NativeRotator {
    /// A lease on an available credential of `provider`, or, when none is available, the
    /// refusal as data: `{ code, message, retryAt }` (Unix milliseconds, `null` when no key
    /// comes back by itself), for the JavaScript layer to throw with an exact `retryAt`.
    #[napi]
    pub fn acquire(
        &self,
        provider: String,
        session: Option<String>,
        tokens: Option<f64>,
    ) -> Result<Either<NativeLease, Value>> {
        let rotator = self.rotator()?.clone();
        let options = AcquireOptions {
            session,
            tokens: tokens.map_or(0, |t| t.max(0.0) as u64),
            ..AcquireOptions::default()
        };
        match LeaseCell::try_new(rotator, |r| r.acquire_with(&provider, &options).map(Some)) {
            Ok(cell) => {
                // The credential as a handle of the `getKey` table: JavaScript builds its object
                // once and reuses it for every lease and `getKey` of that credential.
                let handle = cell
                    .borrow_dependent()
                    .as_ref()
                    .and_then(|lease| {
                        let credential = lease.credential().clone();
                        hot::with(self.slot, |h| {
                            let p = h.registry.provider_index(credential.provider().to_owned());
                            h.registry.handle(p as u32, credential)
                        })
                    })
                    .unwrap_or(-1);
                Ok(Either::A(NativeLease { cell, handle }))
            }
            Err(e @ AcquireError::Unavailable { .. }) => Ok(Either::B(json!({
                "code": "ERR_NO_KEY_AVAILABLE",
                "message": e.to_string(),
                "retryAt": e.retry_at().map(|t| t.as_millis()),
            }))),
            Err(e) => Err(acquire_error(e)),
        }
    }
}

#[napi]
impl NativeLease {
    fn lease(&self) -> Result<&Lease<'_>> {
        self.cell.borrow_dependent().as_ref().ok_or_else(|| {
            js_error(
                "ERR_LEASE_ENDED",
                "the lease was already reported or released",
            )
        })
    }

    /// The credential's handle in the `getKey` table (see `credentialAt`).
    #[napi]
    pub fn handle(&self) -> i32 {
        self.handle
    }

    /// `{ key, label, meta, provider, fingerprint }`.
    #[napi]
    pub fn info(&self) -> Result<Value> {
        let c = self.lease()?.credential();
        Ok(json!({
            "key": c.expose_key(),
            "label": c.label(),
            "meta": c.meta(),
            "provider": c.provider(),
            "fingerprint": c.fingerprint().to_string(),
        }))
    }

    /// Classifies and reports the response and ends the lease; returns the verdict.
    #[napi]
    pub fn report_response(
        &mut self,
        status: u32,
        headers: Vec<String>,
        body: Option<String>,
    ) -> Result<Value> {
        self.lease()?;
        let status = http_status(status)?;
        let headers = pairs(headers);
        let body = body.unwrap_or_default();
        let verdict = self.cell.with_dependent_mut(|_, lease| {
            lease
                .take()
                .map(|l| l.report_response(&Response::new(status, &headers, body.as_bytes())))
        });
        Ok(verdict.map_or(Value::Null, |v| camel(&v)))
    }

    /// Reports a success, with the tokens really used if known, and ends the lease.
    #[napi]
    pub fn success(&mut self, tokens_used: Option<f64>) -> Result<()> {
        self.lease()?;
        self.cell.with_dependent_mut(|_, lease| {
            if let Some(l) = lease.take() {
                l.success(tokens_used.map(|t| t.max(0.0) as u64));
            }
        });
        Ok(())
    }

    /// Ends the lease without a report (the request was cancelled). Idempotent.
    #[napi]
    pub fn release(&mut self) {
        self.cell.with_dependent_mut(|_, lease| drop(lease.take()));
    }
}
