//! The HTTP client that talks to upstream providers: hyper-util's pooled client, plus the two
//! timeouts the gateway needs (connect, and silence while reading) and nothing else.
//!
//! reqwest did this job before; its per-request layers (parsing the URL into a `Url` and back
//! into a `Uri`, boxing, cloning its connector stack, and a fresh timer for every body read)
//! were a third of the gateway's own CPU time at saturation (see the gateway section of `BENCHMARKS.md`).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::{Instant, Sleep};

use crate::config::GatewayConfig;
use crate::proxy::body::BoxError;

/// The client shared by every request of one configuration. Cloning shares its pool.
#[derive(Clone, Debug)]
pub(crate) struct UpstreamClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    read_timeout: Duration,
}

/// Why an upstream request got no response.
#[derive(Debug)]
pub(crate) enum SendError {
    /// Connecting, or waiting for the response headers, took too long.
    Timeout,
    /// The upstream could not be reached or broke the connection.
    Failed(hyper_util::client::legacy::Error),
}

impl SendError {
    pub(crate) fn is_timeout(&self) -> bool {
        match self {
            SendError::Timeout => true,
            // hyper-util reports its connect timeout as an I/O error of kind `TimedOut`.
            SendError::Failed(e) => {
                let mut source = std::error::Error::source(e);
                while let Some(s) = source {
                    if s.downcast_ref::<std::io::Error>()
                        .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
                    {
                        return true;
                    }
                    source = s.source();
                }
                false
            }
        }
    }
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Timeout => f.write_str("no response headers within the read timeout"),
            SendError::Failed(e) => {
                write!(f, "{e}")?;
                let mut source = std::error::Error::source(e);
                while let Some(s) = source {
                    write!(f, ": {s}")?;
                    source = s.source();
                }
                Ok(())
            }
        }
    }
}

/// A pool shared by every request, `TCP_NODELAY` (small SSE frames and request bodies leave at
/// once), a connect timeout, and a read timeout that applies to *silence*: waiting for the
/// response headers, then each wait for the next body frame ([`TimedBody`]). A stream is cut
/// only when the upstream goes quiet, never because it is long. There is deliberately no
/// whole-request timeout.
///
/// Redirects are not followed (hyper never does: a redirect would take the request, key
/// included, to a host the configuration did not name) and proxy environment variables are
/// not read. HTTPS upstreams use rustls with the platform's verifier and negotiate HTTP/2 by
/// ALPN, as reqwest did.
pub(crate) fn client(config: &GatewayConfig) -> Result<UpstreamClient, BoxError> {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(Some(config.connect_timeout));
    // `https_or_http` below decides by scheme; the HTTP connector must let `https` through.
    http.enforce_http(false);
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?;
    let tls = rustls_platform_verifier::BuilderVerifierExt::with_platform_verifier(tls)?
        .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(https);
    Ok(UpstreamClient {
        client,
        read_timeout: config.read_timeout,
    })
}

impl UpstreamClient {
    /// Sends `req` and waits for the response headers, at most the read timeout (plus the
    /// connect timeout when a new connection is needed).
    pub(crate) async fn send(
        &self,
        req: http::Request<Full<Bytes>>,
    ) -> Result<http::Response<TimedBody>, SendError> {
        let response = tokio::time::timeout(self.read_timeout, self.client.request(req))
            .await
            .map_err(|_| SendError::Timeout)?
            .map_err(SendError::Failed)?;
        let timeout = self.read_timeout;
        Ok(response.map(|inner| TimedBody::new(inner, timeout)))
    }
}

/// An upstream body that fails with [`ReadTimeout`] when the upstream sends nothing for the
/// read timeout while the gateway is waiting for it.
///
/// The timer is armed only once the body has had to wait, and re-armed only when it fires
/// early (not on every frame): a response whose body came with its headers costs no timer at
/// all, a stream one timer per read-timeout period. Time the *client* takes to accept a frame
/// does not count, since the upstream is not being waited for then.
#[derive(Debug)]
pub(crate) struct TimedBody {
    inner: Incoming,
    timeout: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    /// Since when the body has been waiting for the upstream, if it is.
    waiting_since: Option<Instant>,
}

impl TimedBody {
    fn new(inner: Incoming, timeout: Duration) -> Self {
        TimedBody {
            inner,
            timeout,
            sleep: None,
            waiting_since: None,
        }
    }
}

/// The upstream sent nothing for the read timeout.
#[derive(Debug)]
pub(crate) struct ReadTimeout;

impl std::fmt::Display for ReadTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the upstream sent nothing within the read timeout")
    }
}

impl std::error::Error for ReadTimeout {}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            this.waiting_since = None;
            return Poll::Ready(frame.map(|r| r.map_err(Into::into)));
        }
        let since = *this.waiting_since.get_or_insert_with(Instant::now);
        let deadline = since + this.timeout;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        while sleep.as_mut().poll(cx).is_ready() {
            // The timer may date from an earlier wait: it only says "look again".
            if Instant::now() >= deadline {
                return Poll::Ready(Some(Err(Box::new(ReadTimeout))));
            }
            sleep.as_mut().reset(deadline);
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
