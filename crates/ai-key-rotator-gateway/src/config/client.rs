//! What a *client* of a running gateway needs from its configuration file: the address and a
//! client token. Read on its own so that `ai-key-rotator status` works on a machine (or in a
//! shell) that does not hold the provider keys' environment variables or files.

use std::net::SocketAddr;
use std::path::Path;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::ConfigFileError;
use super::secret::SecretSpec;

/// The address and first client token of a configuration file; providers are not read.
#[derive(Debug)]
pub struct ClientSettings {
    /// Where the gateway listens.
    pub listen: SocketAddr,
    token: Option<SecretString>,
}

/// Only the fields a client needs; every other field is skipped unread (not rejected: the
/// full configuration is checked by `serve` and `check`).
#[derive(Deserialize)]
struct RawClient {
    #[serde(default = "super::default_listen")]
    listen: SocketAddr,
    #[serde(default)]
    client_tokens: Vec<SecretSpec>,
}

impl ClientSettings {
    /// Reads `path`'s `listen` and first client token, resolving only that token's secret.
    ///
    /// # Errors
    /// When the file cannot be read or parsed, or the first token's secret cannot be read.
    pub fn load(path: &Path) -> Result<ClientSettings, ConfigFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let raw: RawClient =
            ai_key_rotator::parse_config(&text, ai_key_rotator::ConfigFormat::Toml)
                .map_err(ConfigFileError::Parse)?;
        let token = raw
            .client_tokens
            .first()
            .map(|spec| spec.resolve("client token #1", base))
            .transpose()?
            .map(|r| r.secret);
        Ok(ClientSettings {
            listen: raw.listen,
            token,
        })
    }

    /// The token to present, if the file names one.
    pub fn token(&self) -> Option<&str> {
        self.token.as_ref().map(|t| t.expose_secret())
    }
}
