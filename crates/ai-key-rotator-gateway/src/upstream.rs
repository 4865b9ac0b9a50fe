//! The HTTP client that talks to upstream providers.

use crate::config::GatewayConfig;

/// A client with a connection pool shared by every request, `TCP_NODELAY` (small SSE frames
/// and request bodies leave at once), a connect timeout, and a *per-read* timeout: a stream is
/// cut only when the upstream goes silent, never because it is long. There is deliberately no
/// whole-request timeout.
///
/// Redirects are not followed (a redirect would take the request, key included, to a host the
/// configuration did not name) and system proxy variables are ignored for the same reason.
pub(crate) fn client(config: &GatewayConfig) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .tcp_nodelay(true)
        .connect_timeout(config.connect_timeout)
        .read_timeout(config.read_timeout)
        .pool_idle_timeout(std::time::Duration::from_secs(90))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
}
