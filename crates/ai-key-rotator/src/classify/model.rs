//! Model names as the classifier reads them from limit messages, and as callers pass them to
//! `acquire`: short, checked, and `Copy`, so a [`LimitScope`](super::LimitScope) stays plain
//! data.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest model name kept. The longest names in use ("gemini-2.5-flash-preview-native-
/// audio-dialog", fine-tuned OpenAI names such as "ft:gpt-4o-mini-2024-07-18:org:suffix:id")
/// fit with room to spare; a longer one is not a model name the pool needs to tell apart.
pub const MAX_MODEL_NAME: usize = 96;

/// A model name such as `gpt-4o` or `gemini-2.0-flash`, at most [`MAX_MODEL_NAME`] bytes of
/// ASCII letters, digits and `- _ . : / @`.
///
/// The classifier reads it from an error body, which can echo a key: the character set and the
/// length keep anything else out, and only the text at the place a provider names its model is
/// read. Stored inline (no allocation), so it is `Copy`.
///
/// ```
/// use ai_key_rotator::classify::ModelName;
///
/// let m = ModelName::new("gpt-4o").unwrap();
/// assert_eq!(m.as_str(), "gpt-4o");
/// assert!(ModelName::new("").is_err());
/// assert!(ModelName::new("gpt 4o").is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ModelName {
    len: u8,
    bytes: [u8; MAX_MODEL_NAME],
}

/// A text that is not a usable model name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidModelName {
    /// Empty.
    #[error("model name is empty")]
    Empty,
    /// Longer than [`MAX_MODEL_NAME`] bytes.
    #[error("model name is longer than {MAX_MODEL_NAME} bytes")]
    TooLong,
    /// Holds a character other than ASCII letters, digits and `- _ . : / @`.
    #[error("model name holds a character other than ASCII letters, digits and `-_.:/@`")]
    BadCharacter,
}

impl ModelName {
    /// A checked model name.
    ///
    /// # Errors
    /// [`InvalidModelName`] naming what is wrong.
    pub fn new(name: &str) -> Result<ModelName, InvalidModelName> {
        let b = name.as_bytes();
        if b.is_empty() {
            return Err(InvalidModelName::Empty);
        }
        if b.len() > MAX_MODEL_NAME {
            return Err(InvalidModelName::TooLong);
        }
        if !b
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.:/@".contains(c))
        {
            return Err(InvalidModelName::BadCharacter);
        }
        let mut bytes = [0; MAX_MODEL_NAME];
        bytes[..b.len()].copy_from_slice(b);
        Ok(ModelName {
            len: b.len() as u8,
            bytes,
        })
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored (see `new`).
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl std::hash::Hash for ModelName {
    // The name only, not the padding: consistent with `Eq`, since the padding is always zero.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for ModelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for ModelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ModelName {
    type Err = InvalidModelName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ModelName::new(s)
    }
}

impl Serialize for ModelName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ModelName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        ModelName::new(&s).map_err(serde::de::Error::custom)
    }
}

/// The model an OpenAI-style limit message names: "Rate limit reached for gpt-4o in
/// organization org-x on tokens per min (TPM) ..." (OpenAI, Groq: "for model `llama-3...`").
pub(crate) fn in_openai_message(message: &str) -> Option<ModelName> {
    const LEAD: &str = "rate limit reached for ";
    let start = super::wait::find_ignore_case(message.as_bytes(), LEAD.as_bytes())? + LEAD.len();
    let rest = &message[start..];
    let rest = rest.strip_prefix("model ").unwrap_or(rest);
    let word = rest.split_whitespace().next()?;
    let word = word.trim_matches(|c| c == '`' || c == '\'' || c == '"');
    // "Rate limit reached for requests" (an older wording) names no model.
    if matches!(word, "requests" | "tokens" | "organization") {
        return None;
    }
    ModelName::new(word).ok()
}
