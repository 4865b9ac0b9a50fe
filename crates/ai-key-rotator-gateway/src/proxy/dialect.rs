//! Per-provider dialects: how a key is written into a request, and how an error the gateway
//! itself produces is shaped so the client's SDK parses it as its provider's.

use ai_key_rotator::classify::{Api, Family};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};

/// The `anthropic-version` sent when the client did not send one.
const ANTHROPIC_VERSION: &str = "2023-06-01";

/// How a provider's API is spoken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// `Authorization: Bearer KEY`; OpenAI error bodies.
    OpenAi,
    /// `api-key: KEY`; OpenAI error bodies.
    Azure,
    /// `x-api-key: KEY` plus `anthropic-version`; Anthropic error bodies.
    Anthropic,
    /// `x-goog-api-key: KEY`; Google error bodies.
    Gemini,
}

impl Dialect {
    /// The family's dialect, from its wire format in the core's family table.
    pub(crate) fn of(family: Family) -> Dialect {
        match family.info().api {
            Api::AzureOpenAi => Dialect::Azure,
            Api::Anthropic => Dialect::Anthropic,
            Api::Gemini => Dialect::Gemini,
            // `Api` is non-exhaustive: a wire format added to the core without a dialect here
            // speaks OpenAI's, as every OpenAI-shaped provider does.
            _ => Dialect::OpenAi,
        }
    }

    /// The wire format this dialect speaks.
    fn api(self) -> Api {
        match self {
            Dialect::OpenAi => Api::OpenAi,
            Dialect::Azure => Api::AzureOpenAi,
            Dialect::Anthropic => Api::Anthropic,
            Dialect::Gemini => Api::Gemini,
        }
    }

    /// Writes `key` where the provider reads it (the header named by the core's family table).
    /// The value is marked sensitive so that hyper's and reqwest's `Debug` output (and HTTP/2
    /// header compression) never expose it.
    pub(crate) fn write_key(self, headers: &mut HeaderMap, key: &str) -> Result<(), InvalidKey> {
        if self == Dialect::Anthropic && !headers.contains_key("anthropic-version") {
            headers.insert(
                "anthropic-version",
                HeaderValue::from_static(ANTHROPIC_VERSION),
            );
        }
        let (name, prefix) = self.api().key_header();
        let value = if prefix.is_empty() {
            HeaderValue::try_from(key)
        } else {
            HeaderValue::try_from(format!("{prefix}{key}"))
        };
        let mut value = value.map_err(|_| InvalidKey)?;
        value.set_sensitive(true);
        headers.insert(HeaderName::from_static(name), value);
        Ok(())
    }

    /// An error body in the provider's shape, as close to the provider's own as the SDKs read
    /// it: they branch on OpenAI's `code`, Anthropic's `error.type` and Google's `status` and
    /// `details`. `kind` is an OpenAI/Anthropic error type such as `rate_limit_error`; Google's
    /// status is derived from the HTTP status. `retry_secs` is the wait a 429 announces.
    pub(crate) fn error_body(
        self,
        status: u16,
        kind: &str,
        message: &str,
        retry_secs: Option<u64>,
    ) -> Bytes {
        let body = match self {
            Dialect::OpenAi => {
                // OpenAI's own: a 401 is an `invalid_request_error` with code
                // `invalid_api_key`, a 429 has code `rate_limit_exceeded`.
                let (kind, code) = match status {
                    401 => ("invalid_request_error", Some("invalid_api_key")),
                    429 => (kind, Some("rate_limit_exceeded")),
                    _ => (kind, None),
                };
                serde_json::json!({
                    "error": { "message": message, "type": kind, "param": null, "code": code }
                })
            }
            // Azure's shape: the HTTP status as a string code, no type.
            Dialect::Azure => serde_json::json!({
                "error": { "code": status.to_string(), "message": message }
            }),
            Dialect::Anthropic => serde_json::json!({
                "type": "error",
                "error": { "type": kind, "message": message }
            }),
            Dialect::Gemini => {
                let mut error = serde_json::json!({
                    "code": status, "message": message, "status": google_status(status)
                });
                if let Some(secs) = retry_secs {
                    error["details"] = serde_json::json!([{
                        "@type": "type.googleapis.com/google.rpc.RetryInfo",
                        "retryDelay": format!("{secs}s"),
                    }]);
                }
                serde_json::json!({ "error": error })
            }
        };
        Bytes::from(body.to_string())
    }
}

/// A key that cannot be written into a header (control characters): a configuration mistake.
#[derive(Debug)]
pub(crate) struct InvalidKey;

fn google_status(status: u16) -> &'static str {
    match status {
        400 | 413 | 431 => "INVALID_ARGUMENT",
        408 | 504 => "DEADLINE_EXCEEDED",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        _ => "INTERNAL",
    }
}
