//! The JavaScript configuration object, read through the core's own serde types.
//!
//! JavaScript spells options in camelCase (`durationMs`, `timeZone`, `scopeBudgets`); the core's
//! configuration is snake_case with a few of the original's camelCase names as aliases. Rather
//! than re-describe every field here, keys are renamed and the object goes through the core's
//! `Deserialize`, so a new core option reaches JavaScript without a change in this crate, and a
//! misspelt option is still rejected by the core's `deny_unknown_fields`.

use ai_key_rotator::{CredentialConfig, ProviderConfig};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::{Result, js_error};

/// Renames object keys from camelCase to snake_case, except inside `meta` (the user's own data)
/// and for the names of providers and scopes, which are data too.
pub(crate) fn snake_keys(value: Value) -> Value {
    snake_keys_in(value, false)
}

fn snake_keys_in(value: Value, keys_are_names: bool) -> Value {
    match value {
        Value::Object(map) => {
            let mut out = Map::with_capacity(map.len());
            for (key, child) in map {
                let key = if keys_are_names { key } else { snake(&key) };
                let child = match key.as_str() {
                    _ if keys_are_names => snake_keys_in(child, false),
                    "meta" => child,
                    "providers" | "scope_budgets" => snake_keys_in(child, true),
                    _ => snake_keys_in(child, false),
                };
                out.insert(key, child);
            }
            Value::Object(out)
        }
        Value::Array(items) => {
            Value::Array(items.into_iter().map(|v| snake_keys_in(v, false)).collect())
        }
        other => other,
    }
}

fn snake(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Parses the JSON text the JavaScript layer sends.
pub(crate) fn parse_json(text: &str, what: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| {
        js_error(
            "ERR_INVALID_CONFIG",
            format!("{what} is not valid JSON: {e}"),
        )
    })
}

/// Reads `value` (already snake_case) as a core configuration type. Serde's message names the
/// field at fault; it never quotes a key's value, because keys are `SecretString`s.
fn read<T: DeserializeOwned>(value: Value, what: &str) -> Result<T> {
    serde_json::from_value(value).map_err(|e| {
        js_error(
            "ERR_INVALID_CONFIG",
            format!("invalid {what}: {}", redact_serde(&e.to_string())),
        )
    })
}

/// Serde's messages quote unexpected string values (``invalid type: string "…"``); a key passed
/// where a label was expected would be quoted too, so quoted strings are dropped.
fn redact_serde(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut in_quote = false;
    for c in message.chars() {
        match c {
            '"' if !in_quote => {
                in_quote = true;
                out.push_str("\"…");
            }
            '"' => {
                in_quote = false;
                out.push('"');
            }
            _ if in_quote => {}
            _ => out.push(c),
        }
    }
    out
}

pub(crate) fn provider_config(name: &str, value: Value) -> Result<ProviderConfig> {
    read(
        snake_keys(value),
        &format!("configuration of provider `{name}`"),
    )
}

pub(crate) fn credential_config(provider: &str, value: Value) -> Result<CredentialConfig> {
    read(
        snake_keys(value),
        &format!("credential of provider `{provider}`"),
    )
}
