//! [`GatewayError`]: why the gateway could not start or reload.

use crate::config::ConfigFileError;

/// The gateway could not start, serve or reload.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigFileError),
    /// `allow_unauthenticated = true` on an address other than loopback.
    #[error(
        "allow_unauthenticated is only accepted on a loopback address, not {0}: \
         configure client_tokens"
    )]
    UnauthenticatedNotLoopback(std::net::SocketAddr),
    /// The state store could not be opened.
    #[error("cannot open the state store: {0}")]
    Store(#[from] ai_key_rotator::StoreError),
    /// The upstream HTTP client could not be built.
    #[error("cannot build the upstream client: {0}")]
    Client(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Accepting connections failed.
    #[error("listener error: {0}")]
    Io(#[from] std::io::Error),
}
