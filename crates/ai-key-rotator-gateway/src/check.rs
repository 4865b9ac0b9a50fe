//! `ai-key-rotator check --config FILE [--probe]`: validate a configuration and, with a probe,
//! ask each provider's cheapest endpoint (the model list) whether each key works.

use std::fmt::Write as _;

use ai_key_rotator::classify;
use ai_key_rotator::{Clock, Fingerprint, SystemClock};
use secrecy::ExposeSecret;

use crate::config::GatewayConfig;
use crate::proxy::dialect::Dialect;

/// One probed key.
#[derive(Debug, Clone)]
pub struct ProbeRow {
    /// The provider.
    pub provider: String,
    /// The key's label, or its fingerprint.
    pub credential: String,
    /// The HTTP status, or `None` when the upstream could not be reached.
    pub status: Option<u16>,
    /// What the answer means for the key.
    pub verdict: String,
}

/// Everything `serve` would refuse in `config` that loading it did not: a check that passes
/// is a configuration that starts. `listen` is where it would listen (the configuration's own
/// address unless `--listen` overrides it).
pub fn refusals(config: &GatewayConfig, listen: std::net::SocketAddr) -> Vec<crate::GatewayError> {
    let mut out = Vec::new();
    if let Err(e) = crate::check_listen(config, listen) {
        out.push(e);
    }
    // A file or SQLite store is created on first start, but its folder must exist.
    if let Some(crate::StoreConfig::File { path } | crate::StoreConfig::Sqlite { path }) =
        &config.store
    {
        let folder = std::path::Path::new(path)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        if !folder.is_dir() {
            out.push(crate::GatewayError::Config(
                crate::ConfigFileError::Invalid(format!(
                    "store {path}: the folder {} does not exist",
                    folder.display()
                )),
            ));
        }
    }
    out
}

/// Probes every key of every provider with a `GET` of its model list.
///
/// # Errors
/// When the HTTP client cannot be built.
pub async fn probe(config: &GatewayConfig) -> Result<Vec<ProbeRow>, crate::GatewayError> {
    // reqwest here: a handful of requests, and its conveniences (text bodies) are welcome.
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .connect_timeout(config.connect_timeout)
        .read_timeout(config.read_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .map_err(|e| crate::GatewayError::Client(e.into()))?;
    let mut rows = Vec::new();
    for p in &config.providers {
        let path = p.family.info().probe_path;
        let dialect = Dialect::of(p.family);
        for c in &p.rotator.credentials {
            let key = c.key.expose_secret();
            let name = c
                .label
                .clone()
                .unwrap_or_else(|| Fingerprint::of(key).to_string());
            let mut headers = http::HeaderMap::new();
            let mut row = ProbeRow {
                provider: p.name.clone(),
                credential: name,
                status: None,
                verdict: String::new(),
            };
            if dialect.write_key(&mut headers, key).is_err() {
                row.verdict = "key cannot be sent in a header".into();
                rows.push(row);
                continue;
            }
            let url = format!("{}{}", p.upstream, path);
            match client.get(url).headers(headers).send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let headers = r.headers().clone();
                    let body = r.bytes().await.unwrap_or_default();
                    let v = classify::classify(
                        p.family,
                        &classify::Response::new(status, &headers, &body),
                        SystemClock.now(),
                    );
                    row.status = Some(status);
                    row.verdict = v.reason().to_owned();
                }
                Err(e) => row.verdict = format!("unreachable: {}", e.without_url()),
            }
            rows.push(row);
        }
    }
    Ok(rows)
}

/// The rows as an aligned table.
pub fn table(rows: &[ProbeRow]) -> String {
    let w0 = rows
        .iter()
        .map(|r| r.provider.len())
        .max()
        .unwrap_or(0)
        .max(8);
    let w1 = rows
        .iter()
        .map(|r| r.credential.len())
        .max()
        .unwrap_or(0)
        .max(10);
    let mut out = format!(
        "{:w0$}  {:w1$}  STATUS  VERDICT\n",
        "PROVIDER", "CREDENTIAL"
    );
    for r in rows {
        let status = r.status.map_or("-".to_owned(), |s| s.to_string());
        let _ = writeln!(
            out,
            "{:w0$}  {:w1$}  {:6}  {}",
            r.provider, r.credential, status, r.verdict
        );
    }
    out
}
