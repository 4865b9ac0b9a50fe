//! The listener loop: accept, set `TCP_NODELAY`, serve HTTP/1.1, and shut down gracefully.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::proxy::{Shared, handle};

/// What the accept loop is configured with when it starts (a reload does not change them).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_connections: usize,
    pub(crate) header_limit: usize,
}

/// Serves until `shutdown` completes, then stops accepting and waits up to `grace` for
/// in-flight requests (streams included) to finish.
pub(crate) async fn run(
    listener: TcpListener,
    shared: Arc<Shared>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
    grace: impl Fn() -> Duration,
) {
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        // A client that opens a connection and dribbles headers is cut off.
        .header_read_timeout(Duration::from_secs(30))
        // Headers are forwarded upstream: a request whose head (start line and headers) is
        // larger is answered 431 and its connection closed, before the proxy sees it.
        .max_header_size(limits.header_limit)
        .keep_alive(true);
    // As mini-redis does: each connection holds a permit, and the loop waits for one before
    // accepting, so a flood of idle or slow connections queues in the kernel's backlog
    // instead of growing tasks and buffers without bound.
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(p) => p,
                // The semaphore is never closed.
                Err(_) => break,
            },
        };
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    // Without it a response written in two parts (headers, then body) waits
                    // for the client's delayed ACK: about 40 ms per request.
                    let _ = stream.set_nodelay(true);
                    let shared = Arc::clone(&shared);
                    let service = service_fn(move |req| handle(Arc::clone(&shared), req));
                    let conn = http.serve_connection(TokioIo::new(stream), service);
                    let conn = graceful.watch(conn);
                    tokio::spawn(async move {
                        // A client hanging up mid-response is normal, not an error.
                        if let Err(e) = conn.await {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                        drop(permit);
                    });
                }
                Err(e) => {
                    // Out of file descriptors, typically: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            },
        }
    }
    drop(listener);
    let grace = grace();
    tracing::info!(
        grace_ms = grace.as_millis() as u64,
        "shutting down: waiting for in-flight requests"
    );
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections closed"),
        _ = tokio::time::sleep(grace) => tracing::warn!("grace period over: closing remaining connections"),
    }
}
