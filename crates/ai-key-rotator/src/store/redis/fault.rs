//! Telling Redis failures apart: what an operator must fix (a password, a key of the wrong
//! type, a replica given as the server) is not what waiting cures (an outage, a slow server).

#[cfg(feature = "redis-tls")]
use std::sync::Arc;

use redis::{ErrorKind, RedisError, ServerErrorKind};

use crate::store::StoreFault;

/// What kind of failure `error` is; `provider` is the provider whose keys the command used,
/// when it used one provider's keys.
pub(super) fn classify(error: &RedisError, provider: Option<&str>) -> StoreFault {
    let code = error.code().unwrap_or_default();
    // Inside a Lua script, older servers wrap the error a command raised in a generic one:
    // its code is still the first word of the detail.
    let detail = error.detail().unwrap_or_default();
    let is = |c: &str| code == c || detail.starts_with(c) || detail.contains(&format!(" {c} "));
    if error.kind() == ErrorKind::AuthenticationFailed
        || is("NOAUTH")
        || is("WRONGPASS")
        || is("NOPERM")
    {
        StoreFault::AuthenticationFailed
    } else if is("WRONGTYPE") {
        StoreFault::WrongType {
            provider: provider.unwrap_or("<unknown>").to_owned(),
        }
    } else if error.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly) || is("READONLY") {
        StoreFault::ReadOnly
    } else if let Some(reason) = tls_failure(error) {
        StoreFault::Tls { reason }
    } else if error.is_timeout() {
        StoreFault::Timeout
    } else if error.is_io_error()
        || error.is_connection_refusal()
        || error.is_connection_dropped()
        || error.kind() == ErrorKind::Server(ServerErrorKind::BusyLoading)
        || error.kind() == ErrorKind::Server(ServerErrorKind::MasterDown)
    {
        StoreFault::Unreachable
    } else {
        // The category, not the message: a server's message may quote what it was sent.
        StoreFault::Other(format!("redis: {}", error.category()))
    }
}

/// What TLS said, when `error` is a failed TLS handshake (rustls' error inside an I/O error).
#[cfg(feature = "redis-tls")]
fn tls_failure(error: &RedisError) -> Option<String> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(e) = cause {
        // The redis crate keeps its cause behind an `Arc`, which is itself the `dyn Error`.
        let e = e
            .downcast_ref::<Arc<dyn std::error::Error + Send + Sync>>()
            .map_or(e, |arc| &**arc as &(dyn std::error::Error + 'static));
        let tls = e.downcast_ref::<rustls::Error>().or_else(|| {
            e.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(tls) = tls {
            return Some(tls.to_string());
        }
        cause = e.source();
    }
    None
}

#[cfg(not(feature = "redis-tls"))]
fn tls_failure(_: &RedisError) -> Option<String> {
    None
}

/// Whether retrying the same write later can succeed without anyone changing the data: an
/// outage ends, a replica is promoted, a password is fixed on the server. A permanent fault
/// (data of the wrong type, a script the server rejects) is given up on for that credential,
/// so it never wedges the writer.
pub(super) fn is_transient(fault: &StoreFault) -> bool {
    matches!(
        fault,
        StoreFault::Unreachable
            | StoreFault::Timeout
            | StoreFault::ReadOnly
            | StoreFault::AuthenticationFailed
            | StoreFault::Tls { .. }
    )
}
