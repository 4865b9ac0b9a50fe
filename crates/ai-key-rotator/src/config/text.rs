//! Reading configuration text (TOML, JSON) with errors that never quote it.
//!
//! A configuration file holds keys, and the parsers' own errors quote the offending line (toml)
//! or the offending value (serde's "invalid type: string \"sk-…\""), so a typo next to a key
//! would print the key. Errors here are built from positions and names only: the line number,
//! the path in the document (provider, credential, field) and the parser's message with every
//! value taken out.

use std::fmt;

use serde::de::DeserializeOwned;
use serde_path_to_error::Segment;

use crate::error::ConfigError;
use crate::identity::Fingerprint;

/// The language a configuration text is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConfigFormat {
    /// TOML.
    Toml,
    /// JSON.
    Json,
}

impl fmt::Display for ConfigFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConfigFormat::Toml => "TOML",
            ConfigFormat::Json => "JSON",
        })
    }
}

/// Deserializes a configuration of any shape from `text`, with errors that never quote the
/// text. [`RotatorConfig::from_toml_str`](crate::RotatorConfig::from_toml_str) and
/// [`from_json_str`](crate::RotatorConfig::from_json_str) use it; so can a program that embeds
/// the rotator's configuration in its own (the gateway does).
///
/// An error ([`ConfigError::Parse`]) names where the problem is: the line, and from the path in
/// the document, the provider (`providers.<name>`), the credential (an entry of the provider's
/// `credentials` or `keys` list, by its `label`, else by the fingerprint of its `key`, else by
/// position) and the field.
///
/// ```
/// use ai_key_rotator::{ConfigFormat, RotatorConfig, parse_config};
///
/// let text = "[providers.openai]\ncredentials = [{ key = \"sk-secret\", lable = \"x\" }]";
/// let err = parse_config::<RotatorConfig>(text, ConfigFormat::Toml).unwrap_err().to_string();
/// assert!(err.contains("line 2") && err.contains("`lable`"), "{err}");
/// assert!(!err.contains("sk-secret"));
/// ```
///
/// # Errors
/// [`ConfigError::Parse`] for malformed text, unknown or misplaced fields, values of the wrong
/// type and missing fields. Field names appear in it; values never do.
pub fn parse_config<T: DeserializeOwned>(
    text: &str,
    format: ConfigFormat,
) -> Result<T, ConfigError> {
    match format {
        ConfigFormat::Toml => {
            let de = toml::Deserializer::parse(text).map_err(|e| toml_error(text, &e, &[]))?;
            serde_path_to_error::deserialize(de)
                .map_err(|e| toml_error(text, e.inner(), &segments(e.path())))
        }
        ConfigFormat::Json => {
            let mut de = serde_json::Deserializer::from_str(text);
            let value = serde_path_to_error::deserialize(&mut de)
                .map_err(|e| json_error(text, e.inner(), &segments(e.path())))?;
            de.end().map_err(|e| json_error(text, &e, &[]))?;
            Ok(value)
        }
    }
}

fn segments(path: &serde_path_to_error::Path) -> Vec<Segment> {
    path.iter().cloned().collect()
}

fn toml_error(text: &str, e: &toml::de::Error, path: &[Segment]) -> ConfigError {
    let line = e
        .span()
        .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
    located(text, ConfigFormat::Toml, line, e.message(), path)
}

fn json_error(text: &str, e: &serde_json::Error, path: &[Segment]) -> ConfigError {
    // serde_json's `Display` ends with " at line L column C"; the position is kept apart.
    let message = e.to_string();
    let message = match message.rfind(" at line ") {
        Some(i) if e.line() > 0 => message[..i].to_owned(),
        _ => message,
    };
    let line = (e.line() > 0).then(|| e.line());
    located(text, ConfigFormat::Json, line, &message, path)
}

fn located(
    text: &str,
    format: ConfigFormat,
    line: Option<usize>,
    message: &str,
    segments: &[Segment],
) -> ConfigError {
    let mut provider = None;
    let mut credential = None;
    let mut field = None;
    let mut rest = segments;
    if let [
        Segment::Map { key: top },
        Segment::Map { key: name },
        tail @ ..,
    ] = rest
        && top == "providers"
    {
        provider = Some(name.as_str().into());
        rest = tail;
        if let [
            Segment::Map { key: list },
            Segment::Seq { index },
            tail @ ..,
        ] = rest
            && (list == "credentials" || list == "keys")
        {
            credential = Some(credential_name(text, format, name, list, *index).into());
            rest = tail;
        }
    }
    // The field: the one a field error names, else the innermost named one of the path.
    if let Some(name) = field_in_message(message) {
        field = Some(name.into());
    } else if let Some(Segment::Map { key }) =
        rest.iter().rev().find(|s| matches!(s, Segment::Map { .. }))
    {
        field = Some(key.as_str().into());
    }
    ConfigError::Parse {
        format,
        line,
        provider,
        credential,
        field,
        reason: without_values(message).into(),
    }
}

/// How an error names the credential at `providers.<provider>.<list>[index]`: its label, else
/// the fingerprint of its inline key, else its position. Read from the document again, which
/// parses (a data error comes after a successful parse), as untyped values.
fn credential_name(
    text: &str,
    format: ConfigFormat,
    provider: &str,
    list: &str,
    index: usize,
) -> String {
    let doc: Option<serde_json::Value> = match format {
        ConfigFormat::Toml => toml::from_str(text).ok(),
        ConfigFormat::Json => serde_json::from_str(text).ok(),
    };
    let entry = doc
        .as_ref()
        .and_then(|d| d.get("providers")?.get(provider)?.get(list)?.get(index));
    let key = |k: &str| -> Option<Fingerprint> {
        // A `${VAR}` reference is not the key; its fingerprint would name nothing.
        (!k.contains("${")).then(|| Fingerprint::of(k))
    };
    let named = match entry {
        Some(serde_json::Value::String(k)) => key(k.as_str()).map(|f| f.to_string()),
        Some(serde_json::Value::Object(m)) => match m.get("label") {
            Some(serde_json::Value::String(l)) => Some(l.clone()),
            _ => match m.get("key") {
                Some(serde_json::Value::String(k)) => key(k.as_str()).map(|f| f.to_string()),
                _ => None,
            },
        },
        _ => None,
    };
    named.unwrap_or_else(|| format!("#{}", index + 1))
}

/// The field an "unknown field", "missing field" or "duplicate field" error names.
fn field_in_message(message: &str) -> Option<&str> {
    let rest = [
        "unknown field `",
        "missing field `",
        "duplicate field `",
        "duplicate key `",
    ]
    .iter()
    .find_map(|p| message.strip_prefix(p))?;
    let name = &rest[..rest.find('`')?];
    is_field_name(name).then_some(name)
}

/// Whether a word from the document may be shown: a field name, not a value. Keys are longer
/// and are values; a short identifier-like word is a field name someone typed.
fn is_field_name(word: &str) -> bool {
    !word.is_empty()
        && word.len() <= 40
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The parser's message with every value of the document taken out: double-quoted strings, and
/// back-quoted words other than a field error's field name and the names the parser expected.
fn without_values(message: &str) -> String {
    let message = message.trim().replace('\n', "; ");
    // What follows "expected" lists the schema's own names (fields, variants, tokens), which
    // come from the program, not from the document.
    let (head, tail) = match message.find("expected") {
        Some(i) => message.split_at(i),
        None => (message.as_str(), ""),
    };
    let keep_field = field_in_message(head).is_some();
    let mut out = String::with_capacity(message.len());
    let mut chars = head.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                // Skip to the closing quote, over escapes.
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
                trim_space(&mut out);
            }
            '`' => {
                let word: String = chars.by_ref().take_while(|&c| c != '`').collect();
                if keep_field && is_field_name(&word) {
                    out.push('`');
                    out.push_str(&word);
                    out.push('`');
                } else {
                    trim_space(&mut out);
                }
            }
            c => out.push(c),
        }
    }
    out.push_str(tail);
    out
}

fn trim_space(out: &mut String) {
    while out.ends_with(' ') {
        out.pop();
    }
}

/// Where a [`ConfigError::Parse`] is, for its message: `" at line 3 (provider `openai`,
/// credential work, field `lable`)"`.
pub(crate) fn location(
    line: &Option<usize>,
    provider: &Option<Box<str>>,
    credential: &Option<Box<str>>,
    field: &Option<Box<str>>,
) -> String {
    let mut out = String::new();
    if let Some(line) = line {
        out.push_str(&format!(" at line {line}"));
    }
    let mut parts = Vec::new();
    if let Some(p) = provider {
        parts.push(format!("provider `{p}`"));
    }
    if let Some(c) = credential {
        parts.push(format!("credential {c}"));
    }
    if let Some(x) = field {
        parts.push(format!("field `{x}`"));
    }
    if !parts.is_empty() {
        out.push_str(&format!(" ({})", parts.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_taken_out_of_messages() {
        for (message, expected) in [
            (
                "invalid type: string \"sk-secret\\\"x\", expected u32",
                "invalid type: string, expected u32",
            ),
            (
                "unknown field `lable`, expected one of `key`, `label`",
                "unknown field `lable`, expected one of `key`, `label`",
            ),
            (
                "unknown variant `sk-secret`, expected `fixed`",
                "unknown variant, expected `fixed`",
            ),
            (
                "invalid value: integer `123456`, expected a day",
                "invalid value: integer, expected a day",
            ),
            (
                "invalid type: character `x`, expected a string",
                "invalid type: character, expected a string",
            ),
            (
                "unknown field `sk-proj-0123456789abcdefghijklmnopqrstuvwxyz`, expected `key`",
                "unknown field, expected `key`",
            ),
        ] {
            assert_eq!(without_values(message), expected, "{message}");
        }
    }
}
