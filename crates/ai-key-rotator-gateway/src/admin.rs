//! Admin actions, behind admin tokens that are separate from client tokens: disable, enable,
//! reset a key's cooldown, probe a key now, reload the configuration.
//!
//! ```text
//! POST /admin/keys/{provider}/{fingerprint}/disable | enable | reset | probe
//! POST /admin/reload
//! Authorization: Bearer <admin token>
//! ```
//!
//! Keys are named by fingerprint, never by key. No token is answered 401, a client token (or
//! any token that is not an admin token) 403. Every action is written to the audit log at
//! info level (target `audit`): who (the admin token's label), what, which key by provider and
//! fingerprint, and the result.

use std::sync::Arc;

use ai_key_rotator::Fingerprint;
use bytes::Bytes;
use http::{HeaderMap, Method, Response, StatusCode};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::probe::{self, ProbeOutcome};
use crate::proxy::body::GatewayBody;
use crate::proxy::{Routes, Shared};

/// Why a request may not act.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No token: 401.
    Missing,
    /// A token that is not an admin token (a client token, say): 403.
    NotAdmin,
}

/// The label of the admin token the request presents in `Authorization: Bearer`, compared
/// through SHA-256 digests in constant time against every admin token.
pub(crate) fn admin_of<'r>(routes: &'r Routes, headers: &HeaderMap) -> Result<&'r str, Refusal> {
    let presented = headers
        .get(http::header::AUTHORIZATION)
        .map(|v| {
            let v = v.as_bytes();
            v.strip_prefix(b"Bearer ")
                .or_else(|| v.strip_prefix(b"bearer "))
                .unwrap_or(v)
                .trim_ascii()
        })
        .filter(|t| !t.is_empty())
        .ok_or(Refusal::Missing)?;
    let d: [u8; 32] = Sha256::digest(presented).into();
    let mut found = None;
    for (label, token) in &routes.config.admin_tokens {
        let t: [u8; 32] = Sha256::digest(token.expose_secret().as_bytes()).into();
        if bool::from(t.ct_eq(&d)) && found.is_none() {
            found = Some(label.as_str());
        }
    }
    found.ok_or(Refusal::NotAdmin)
}

/// Serves `POST /admin/...`.
pub(crate) async fn handle(
    shared: &Arc<Shared>,
    routes: &Routes,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Response<GatewayBody> {
    let who = match admin_of(routes, headers) {
        Ok(who) => who.to_owned(),
        Err(Refusal::Missing) => {
            return reply(
                StatusCode::UNAUTHORIZED,
                error("an admin token is needed (Authorization: Bearer …)"),
            );
        }
        Err(Refusal::NotAdmin) => {
            tracing::warn!(target: "audit", path, "admin action refused: not an admin token");
            return reply(
                StatusCode::FORBIDDEN,
                error("this token may not use the admin actions"),
            );
        }
    };
    if method != Method::POST {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            error("admin actions are POST requests"),
        );
    }
    if path == "/admin/reload" {
        return reload(shared, &who).await;
    }
    let Some(rest) = path.strip_prefix("/admin/keys/") else {
        return reply(StatusCode::NOT_FOUND, error("no such admin action"));
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let [provider, fingerprint, action] = parts[..] else {
        return reply(
            StatusCode::NOT_FOUND,
            error("expected /admin/keys/{provider}/{fingerprint}/{action}"),
        );
    };
    let Ok(fp) = fingerprint.parse::<Fingerprint>() else {
        return reply(
            StatusCode::BAD_REQUEST,
            error("the fingerprint must be 16 hexadecimal digits"),
        );
    };
    if routes.by_name(provider).is_none() || shared.rotator.credential(provider, fp).is_none() {
        return reply(
            StatusCode::NOT_FOUND,
            error(&format!("provider `{provider}` has no key {fp}")),
        );
    }
    let rotator = &shared.rotator;
    let (changed, result) = match action {
        "disable" => {
            let done = rotator.disable_credential(provider, fp, &format!("disabled by {who}"));
            (done, if done { "disabled" } else { "already disabled" })
        }
        "enable" => {
            let done = rotator.enable_credential(provider, fp);
            (done, if done { "enabled" } else { "was not disabled" })
        }
        "reset" => {
            let done = rotator.reset_credential(provider, fp);
            (
                done,
                if done {
                    "cooldown ended"
                } else {
                    "was not cooling"
                },
            )
        }
        "probe" => {
            let outcome = probe::probe(shared, provider, fp).await;
            return probed(&who, provider, fp, outcome);
        }
        _ => {
            return reply(
                StatusCode::NOT_FOUND,
                error("the action is one of disable, enable, reset, probe"),
            );
        }
    };
    tracing::info!(target: "audit", who, action, provider, credential = %fp, result,
        "admin action");
    reply(
        StatusCode::OK,
        serde_json::json!({ "action": action, "provider": provider,
            "fingerprint": fp.to_string(), "changed": changed, "result": result }),
    )
}

fn probed(
    who: &str,
    provider: &str,
    fp: Fingerprint,
    outcome: Result<ProbeOutcome, probe::ProbeError>,
) -> Response<GatewayBody> {
    let body = match &outcome {
        Ok(ProbeOutcome::Answered {
            status,
            verdict,
            effect,
            ..
        }) => serde_json::json!({
            "action": "probe", "provider": provider, "fingerprint": fp.to_string(),
            "works": verdict.is_success(), "status": status,
            "result": verdict.reason(), "effect": effect,
        }),
        Ok(ProbeOutcome::Unreachable { reason, .. }) => serde_json::json!({
            "action": "probe", "provider": provider, "fingerprint": fp.to_string(),
            "works": false, "result": format!("unreachable: {reason}"),
        }),
        Err(e) => {
            tracing::info!(target: "audit", who, action = "probe", provider,
                credential = %fp, result = %e, "admin action");
            return reply(StatusCode::NOT_FOUND, error(&e.to_string()));
        }
    };
    tracing::info!(target: "audit", who, action = "probe", provider, credential = %fp,
        result = body["result"].as_str().unwrap_or(""), "admin action");
    reply(StatusCode::OK, body)
}

async fn reload(shared: &Arc<Shared>, who: &str) -> Response<GatewayBody> {
    let Some(path) = shared.routes.load().config.source.clone() else {
        return reply(
            StatusCode::CONFLICT,
            error("this gateway was not started from a configuration file"),
        );
    };
    let s = Arc::clone(shared);
    // Reading files and building the TLS client block: not on a runtime worker.
    let result = tokio::task::spawn_blocking(move || {
        let (config, warnings) = crate::GatewayConfig::load(&path).map_err(|e| e.to_string())?;
        for w in warnings {
            tracing::warn!("{w}");
        }
        crate::reload::apply(&s, config).map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    match result {
        Ok(changes) => {
            let changes: Vec<String> = changes.iter().map(ToString::to_string).collect();
            for c in &changes {
                tracing::info!("reload: {c}");
            }
            tracing::info!(target: "audit", who, action = "reload", changes = changes.len(),
                "admin action");
            reply(
                StatusCode::OK,
                serde_json::json!({ "action": "reload", "result":
                    format!("{} changes", changes.len()), "changes": changes }),
            )
        }
        Err(e) => {
            tracing::warn!(target: "audit", who, action = "reload", error = %e,
                "admin action failed; keeping the running configuration");
            reply(StatusCode::UNPROCESSABLE_ENTITY, error(&e))
        }
    }
}

fn error(message: &str) -> serde_json::Value {
    serde_json::json!({ "error": message })
}

fn reply(status: StatusCode, body: serde_json::Value) -> Response<GatewayBody> {
    let mut r = Response::new(GatewayBody::full(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    r
}
