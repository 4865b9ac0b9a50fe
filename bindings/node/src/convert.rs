//! Core values as JavaScript sees them: camelCase keys and times in Unix milliseconds (what
//! `Date.now()` returns), built from the core's own `Serialize` implementations.

use ai_key_rotator::{ProviderStatus, RotatorStatus};
use serde::Serialize;
use serde_json::{Map, Value};

/// `value` serialized with its keys in camelCase.
pub(crate) fn camel<T: Serialize>(value: &T) -> Value {
    camel_keys(serde_json::to_value(value).unwrap_or(Value::Null))
}

fn camel_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (camel_case(&k), camel_keys(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(camel_keys).collect()),
        other => other,
    }
}

/// `snake_case` and `kebab-case` to `camelCase`.
pub(crate) fn camel_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' || c == '-' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// One provider's status: the core's fields plus the original's names for them (`provider`,
/// `exhausted` as a count; per credential `exhausted`, `exhaustedAt`, `resetAt`).
pub(crate) fn provider_status(status: &ProviderStatus) -> Value {
    let mut value = camel(status);
    if let Value::Object(map) = &mut value {
        map.insert("provider".into(), status.name.clone().into());
        let exhausted = status.total - status.available;
        map.insert("exhausted".into(), exhausted.into());
        if let Some(Value::Array(creds)) = map.get_mut("credentials") {
            for c in creds {
                if let Value::Object(c) = c {
                    let available = c.get("state").and_then(Value::as_str) == Some("available");
                    c.insert("isExhausted".into(), (!available).into());
                    c.insert("exhausted".into(), (!available).into());
                    let at = if available {
                        Value::Null
                    } else {
                        c.get("lastExhaustedAt").cloned().unwrap_or(Value::Null)
                    };
                    c.insert("exhaustedAt".into(), at);
                    c.insert(
                        "resetAt".into(),
                        c.get("until").cloned().unwrap_or(Value::Null),
                    );
                }
            }
        }
    }
    value
}

/// Every provider's status, by provider name, as the original's `getStatus()` returns it.
pub(crate) fn rotator_status(status: &RotatorStatus) -> Value {
    let mut map = Map::with_capacity(status.providers.len());
    for p in &status.providers {
        map.insert(p.name.clone(), provider_status(p));
    }
    Value::Object(map)
}
