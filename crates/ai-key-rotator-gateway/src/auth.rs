//! Client tokens: what an SDK sends as its "API key" is, to the gateway, a client token.
//!
//! Each SDK writes its key where its provider expects it (`Authorization: Bearer`, `x-api-key`,
//! `x-goog-api-key`, `api-key`, or `?key=`), so the gateway reads all of those places. Tokens
//! are compared through their SHA-256 digests in constant time, so neither a token's content nor
//! its length leaks through timing.

use http::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Header names that carry a credential in one provider dialect or another. All are removed
/// before a request goes upstream.
pub(crate) const CREDENTIAL_HEADERS: [&str; 4] =
    ["authorization", "x-api-key", "x-goog-api-key", "api-key"];

/// The configured client tokens, kept only as digests.
#[derive(Clone)]
pub(crate) struct ClientTokens {
    digests: Vec<[u8; 32]>,
    allow_unauthenticated: bool,
}

impl std::fmt::Debug for ClientTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTokens")
            .field("count", &self.digests.len())
            .field("allow_unauthenticated", &self.allow_unauthenticated)
            .finish()
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthError {
    Missing,
    Wrong,
}

impl ClientTokens {
    pub(crate) fn new(tokens: &[SecretString], allow_unauthenticated: bool) -> Self {
        ClientTokens {
            digests: tokens
                .iter()
                .map(|t| digest(t.expose_secret().as_bytes()))
                .collect(),
            allow_unauthenticated,
        }
    }

    /// Checks the request's client credential.
    pub(crate) fn check(&self, headers: &HeaderMap, query: Option<&str>) -> Result<(), AuthError> {
        let presented = presented_token(headers, query);
        let Some(token) = presented else {
            return if self.allow_unauthenticated {
                Ok(())
            } else {
                Err(AuthError::Missing)
            };
        };
        if self.allow_unauthenticated && self.digests.is_empty() {
            return Ok(());
        }
        let d = digest(token);
        // Compare against every token without stopping early.
        let mut ok = subtle::Choice::from(0u8);
        for t in &self.digests {
            ok |= t.ct_eq(&d);
        }
        if bool::from(ok) {
            Ok(())
        } else {
            Err(AuthError::Wrong)
        }
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The token the client presented, from the first place that has one.
fn presented_token<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> Option<&'a [u8]> {
    if let Some(v) = headers.get("authorization") {
        let v = v.as_bytes();
        let token = v
            .strip_prefix(b"Bearer ")
            .or_else(|| v.strip_prefix(b"bearer "))
            .unwrap_or(v);
        return Some(token.trim_ascii());
    }
    for name in &CREDENTIAL_HEADERS[1..] {
        if let Some(v) = headers.get(*name) {
            return Some(v.as_bytes().trim_ascii());
        }
    }
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("key="))
        .map(str::as_bytes)
}

/// The query without its `key=` parameters (Gemini's query-string credential).
pub(crate) fn strip_query_key(query: &str) -> Option<String> {
    if !query.split('&').any(|p| p.starts_with("key=")) {
        return Some(query.to_owned()).filter(|q| !q.is_empty());
    }
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| !p.starts_with("key=") && !p.is_empty())
        .collect();
    (!kept.is_empty()).then(|| kept.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn tokens() -> ClientTokens {
        ClientTokens::new(&[SecretString::from("tok-right".to_owned())], false)
    }

    fn check(headers: &[(&'static str, &str)], query: Option<&str>) -> Result<(), AuthError> {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        tokens().check(&map, query)
    }

    #[test]
    fn reads_every_dialect_and_refuses_wrong_or_missing() {
        assert_eq!(
            check(&[("authorization", "Bearer tok-right")], None),
            Ok(())
        );
        assert_eq!(check(&[("x-api-key", "tok-right")], None), Ok(()));
        assert_eq!(check(&[("x-goog-api-key", "tok-right")], None), Ok(()));
        assert_eq!(check(&[("api-key", "tok-right")], None), Ok(()));
        assert_eq!(check(&[], Some("alt=sse&key=tok-right")), Ok(()));
        assert_eq!(
            check(&[("authorization", "Bearer tok-wrong")], None),
            Err(AuthError::Wrong)
        );
        assert_eq!(
            check(&[("authorization", "Bearer tok-righ")], None),
            Err(AuthError::Wrong)
        );
        assert_eq!(check(&[], None), Err(AuthError::Missing));
    }

    #[test]
    fn strips_key_from_query() {
        assert_eq!(strip_query_key("alt=sse&key=x"), Some("alt=sse".into()));
        assert_eq!(strip_query_key("key=x"), None);
        assert_eq!(strip_query_key("a=1"), Some("a=1".into()));
        assert_eq!(strip_query_key(""), None);
    }
}
