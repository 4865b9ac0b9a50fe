//! The access log: one line per request, at the level the configuration chooses. It names the
//! key that answered by label and fingerprint, never by value.

use std::time::Duration;

use http::{Method, StatusCode};

use super::attempt::Served;
use crate::config::AccessLog;

/// The log's target, so that `RUST_LOG` can single it out.
const TARGET: &str = "ai_key_rotator_gateway::access";

/// Whether a line at `level` would be written: when not, the request path pays nothing (not
/// even the copy of its path).
pub(super) fn enabled(level: AccessLog) -> bool {
    match level {
        AccessLog::Info => tracing::enabled!(target: TARGET, tracing::Level::INFO),
        AccessLog::Debug => tracing::enabled!(target: TARGET, tracing::Level::DEBUG),
        _ => false,
    }
}

/// Writes the line for one request. For a stream, `elapsed` runs to the response's headers:
/// the line is written when the answer starts, not when the stream ends.
pub(super) fn line(
    level: AccessLog,
    method: &Method,
    path: &str,
    status: StatusCode,
    served: Option<&Served>,
    elapsed: Duration,
) {
    let provider = served.map_or("-", |s| &*s.provider);
    let route = served.map_or("-", |s| s.route.as_str());
    let label = served
        .and_then(|s| s.credential.as_ref())
        .and_then(|c| c.label.as_deref())
        .unwrap_or("-");
    let fingerprint = served
        .and_then(|s| s.credential.as_ref())
        .map_or_else(|| "-".to_owned(), |c| c.fingerprint.to_string());
    let attempts = served.map_or(0, |s| s.attempts);
    let status = status.as_u16();
    let duration_ms = elapsed.as_secs_f64() * 1000.0;
    // `tracing`'s level is fixed per call site, hence one call per level.
    match level {
        AccessLog::Info => tracing::info!(
            target: TARGET,
            %method, path, route, provider, key_label = label, key_fingerprint = %fingerprint,
            status, attempts, duration_ms, "request"
        ),
        AccessLog::Debug => tracing::debug!(
            target: TARGET,
            %method, path, route, provider, key_label = label, key_fingerprint = %fingerprint,
            status, attempts, duration_ms, "request"
        ),
        _ => {}
    }
}
