//! Where a secret (a provider key or a client token) comes from: `"${ENV_VAR}"`,
//! `{ file = "…" }`, or inline text.

use std::path::Path;

use std::fmt;

use secrecy::SecretString;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use super::ConfigFileError;

/// A secret as written in the configuration, before it is read.
///
/// ```toml
/// keys = [
///   "${OPENAI_KEY}",                          # from the environment
///   { file = "secrets/openai-2", label = "work" }, # from a file (trailing newline dropped)
///   { key = "sk-inline", label = "inline" },  # inline: warned about if the file is readable by others
///   { key = "${ORG_B_KEY}", scope = "org-b", weight = 3 }, # keys only: quota scope, weight
/// ]
/// ```
#[derive(Clone)]
pub(crate) enum SecretSpec {
    /// Text with `${VAR}` references expanded; inline when it has none.
    Text(String),
    /// A table naming the secret's source and, for keys, its label.
    Table(SecretTable),
}

/// The table form of a [`SecretSpec`]. A field it does not have is an error: a misspelt
/// `lable` must not silently leave a key unlabelled.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SecretTable {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    file: Option<String>,
    #[serde(default)]
    label: Option<String>,
    /// Keys only: the quota scope (keys of one organization or project share it).
    #[serde(default)]
    scope: Option<String>,
    /// Keys only: the share of picks under the `weighted` strategy.
    #[serde(default)]
    weight: Option<u32>,
}

// Written by hand rather than `#[serde(untagged)]`: an untagged enum tries each form and reports
// only "did not match any variant", losing the table's own error (which field is unknown).
impl<'de> Deserialize<'de> for SecretSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Spec;
        impl<'de> Visitor<'de> for Spec {
            type Value = SecretSpec;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a table with `key` or `file`")
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<SecretSpec, E> {
                Ok(SecretSpec::Text(s.to_owned()))
            }

            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<SecretSpec, A::Error> {
                SecretTable::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(SecretSpec::Table)
            }
        }
        d.deserialize_any(Spec)
    }
}

/// A secret that has been read.
pub(crate) struct Resolved {
    pub(crate) secret: SecretString,
    pub(crate) label: Option<String>,
    /// Written in the configuration file itself.
    pub(crate) inline: bool,
}

impl SecretSpec {
    /// Reads the secret; `what` names it in errors (never its value). Relative files are read
    /// from `base`, the configuration file's directory.
    pub(crate) fn resolve(&self, what: &str, base: &Path) -> Result<Resolved, ConfigFileError> {
        let (text, label) = match self {
            SecretSpec::Text(t) => (t, None),
            SecretSpec::Table(SecretTable {
                key: Some(t),
                file: None,
                label,
                ..
            }) => (t, label.clone()),
            SecretSpec::Table(SecretTable {
                key: None,
                file: Some(f),
                label,
                ..
            }) => {
                let path = base.join(f);
                let raw = std::fs::read_to_string(&path).map_err(|e| ConfigFileError::Secret {
                    what: what.to_owned(),
                    reason: format!("cannot read {}: {e}", path.display()),
                })?;
                let value = raw.trim_end_matches(['\n', '\r']).to_owned();
                return Ok(Resolved {
                    secret: value.into(),
                    label: label.clone(),
                    inline: false,
                });
            }
            SecretSpec::Table(_) => {
                return Err(ConfigFileError::Secret {
                    what: what.to_owned(),
                    reason: "give exactly one of `key` or `file`".into(),
                });
            }
        };
        let inline = !text.contains("${");
        let value = expand_env(text).map_err(|reason| ConfigFileError::Secret {
            what: what.to_owned(),
            reason: reason.to_string(),
        })?;
        Ok(Resolved {
            secret: value.into(),
            label,
            inline,
        })
    }
}

impl SecretSpec {
    /// The key's quota scope and weight, when the table gives them.
    pub(crate) fn scope_and_weight(&self) -> (Option<&str>, Option<u32>) {
        match self {
            SecretSpec::Text(_) => (None, None),
            SecretSpec::Table(t) => (t.scope.as_deref(), t.weight),
        }
    }
}

/// Why a `${VAR}` reference could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum EnvError {
    #[error("unterminated `${{` reference")]
    Unterminated,
    #[error("empty `${{}}` reference")]
    Empty,
    #[error("environment variable `{0}` is not set")]
    Unset(String),
}

/// Expands every `${VAR}` in `text` from the environment. A missing variable is an error that
/// names it; `$` not followed by `{` is kept as is.
pub(crate) fn expand_env(text: &str) -> Result<String, EnvError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or(EnvError::Unterminated)?;
        let name = &after[..end];
        if name.is_empty() {
            return Err(EnvError::Empty);
        }
        let value = std::env::var(name).map_err(|_| EnvError::Unset(name.to_owned()))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn expands_references_and_names_missing_variables() {
        // `PATH` is set for every test process; setting a variable would need `unsafe`.
        let path = std::env::var("PATH").unwrap();
        assert_eq!(expand_env("x-${PATH}-y").unwrap(), format!("x-{path}-y"));
        assert_eq!(expand_env("plain $HOME").unwrap(), "plain $HOME");
        assert_eq!(
            expand_env("${AKR_TEST_SURELY_UNSET}"),
            Err(EnvError::Unset("AKR_TEST_SURELY_UNSET".into()))
        );
        assert_eq!(expand_env("${oops"), Err(EnvError::Unterminated));
        assert_eq!(expand_env("${}"), Err(EnvError::Empty));
    }

    #[test]
    fn inline_text_is_marked_inline() {
        let spec = SecretSpec::Text("sk-inline".into());
        let r = spec.resolve("key", Path::new(".")).unwrap();
        assert!(r.inline);
        assert_eq!(r.secret.expose_secret(), "sk-inline");
    }
}
