//! The listener, the connections, and the handle a test holds.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

use crate::config::Config;
use crate::record::RecordedRequest;
use crate::script::Script;
use crate::service::{Shared, handle};

/// A running mock provider.
///
/// Dropping it stops the server as [`MockUpstream::shutdown`] does, without waiting.
#[derive(Debug)]
pub struct MockUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// Dropping the sender is the stop signal, so a mock dropped without `shutdown` stops too.
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl MockUpstream {
    /// Starts a mock on `127.0.0.1` at a free port.
    ///
    /// # Errors
    ///
    /// If no port can be bound.
    pub async fn start(config: Config) -> io::Result<MockUpstream> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        MockUpstream::start_on(listener, config, std::future::pending())
    }

    /// Starts a mock on `listener`, stopping when `shutdown` completes (or on
    /// [`MockUpstream::shutdown`], or on drop, whichever comes first). Must be called within a
    /// Tokio runtime.
    ///
    /// # Errors
    ///
    /// If the listener's local address cannot be read.
    pub fn start_on(
        listener: TcpListener,
        config: Config,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> io::Result<MockUpstream> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(config));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, Arc::clone(&shared), async move {
            tokio::select! {
                _ = shutdown => {}
                _ = stopped => {}
            }
        }));
        Ok(MockUpstream {
            addr,
            shared,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The address the mock listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, without a trailing slash. The OpenAI SDKs want `{base_url}/v1`; the
    /// Anthropic and Gemini SDKs want it as is.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The answer plan; change it at any time.
    pub fn script(&self) -> &Script {
        &self.shared.script
    }

    /// The recorded requests, oldest first (at most the [`Recording`](crate::Recording) limit).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.recorder.requests()
    }

    /// How many requests carried `key`, counted even past the recording limit.
    pub fn count_for_key(&self, key: &str) -> u64 {
        self.shared.recorder.count_for_key(key)
    }

    /// How many requests were recorded in all, counted even past the recording limit.
    pub fn request_count(&self) -> u64 {
        self.shared.recorder.total()
    }

    /// Forgets the recorded requests and counts. The script is left alone.
    pub fn clear(&self) {
        self.shared.recorder.clear();
    }

    /// How many paced streams ([`Behavior::SlowStream`](crate::Behavior::SlowStream)) lost
    /// their client before the last chunk: the proof that a proxy passed a disconnect on.
    pub fn cancelled_streams(&self) -> u64 {
        self.shared.stats.cancelled_streams.load(Ordering::Relaxed)
    }

    /// Stops accepting, closes every connection (in-flight responses included), and waits
    /// until all of it is done.
    pub async fn shutdown(mut self) {
        drop(self.stop.take());
        if let Some(task) = self.task.take() {
            // The task only ends by returning; a panic in it is a bug worth surfacing.
            if let Err(e) = task.await
                && e.is_panic()
            {
                std::panic::resume_unwind(e.into_panic());
            }
        }
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        drop(self.stop.take());
    }
}

/// Runs a mock in the current task until `shutdown` completes: the entry point of the binary.
///
/// # Errors
///
/// None yet; the `Result` leaves room for setup that can fail.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    serve(listener, Arc::new(Shared::new(config)), shutdown).await;
    Ok(())
}

async fn serve(listener: TcpListener, shared: Arc<Shared>, shutdown: impl Future<Output = ()>) {
    // Connections live in a `JoinSet` so that shutdown can end them all, slow streams
    // included, instead of leaving them to the runtime.
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    // Small SSE frames must leave at once, not wait for Nagle's algorithm.
                    let _ = stream.set_nodelay(true);
                    let shared = Arc::clone(&shared);
                    connections.spawn(async move {
                        let service = service_fn(move |req| handle(Arc::clone(&shared), req));
                        // A client that hangs up mid-response is normal here, not an error.
                        let _ = http1::Builder::new()
                            .keep_alive(true)
                            .pipeline_flush(true)
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
                // Out of file descriptors under load, typically: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
}
