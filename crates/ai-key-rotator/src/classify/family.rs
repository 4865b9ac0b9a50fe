//! [`Family`]: which provider's conventions a response follows.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A provider family: whose headers, bodies and time formats to expect.
///
/// Names are kebab-case (`"openai"`, `"azure-openai"`, ...) in [`FromStr`], [`Display`] and serde.
///
/// ```
/// use ai_key_rotator::classify::Family;
///
/// let f: Family = "azure-openai".parse().unwrap();
/// assert_eq!(f, Family::AzureOpenAi);
/// assert_eq!(f.to_string(), "azure-openai");
/// assert_eq!(
///     "open-ai".parse::<Family>().unwrap_err().to_string(),
///     "unknown provider family `open-ai` (expected one of: openai, azure-openai, anthropic, \
///      gemini, groq, mistral, cohere, openrouter, deepseek, xai, together, fireworks, \
///      openai-compatible)"
/// );
/// ```
///
/// [`Display`]: fmt::Display
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Family {
    /// OpenAI (`api.openai.com`).
    #[serde(rename = "openai")]
    OpenAi,
    /// Azure OpenAI.
    #[serde(rename = "azure-openai")]
    AzureOpenAi,
    /// Anthropic (`api.anthropic.com`).
    #[serde(rename = "anthropic")]
    Anthropic,
    /// Google Gemini API (`generativelanguage.googleapis.com`).
    #[serde(rename = "gemini")]
    Gemini,
    /// Groq.
    #[serde(rename = "groq")]
    Groq,
    /// Mistral.
    #[serde(rename = "mistral")]
    Mistral,
    /// Cohere.
    #[serde(rename = "cohere")]
    Cohere,
    /// OpenRouter.
    #[serde(rename = "openrouter")]
    OpenRouter,
    /// DeepSeek.
    #[serde(rename = "deepseek")]
    DeepSeek,
    /// xAI.
    #[serde(rename = "xai")]
    Xai,
    /// Together AI.
    #[serde(rename = "together")]
    Together,
    /// Fireworks.
    #[serde(rename = "fireworks")]
    Fireworks,
    /// Any other server speaking the OpenAI API; classified by status and OpenAI-style headers.
    #[serde(rename = "openai-compatible")]
    OpenAiCompatible,
}

impl Family {
    /// Every family, in declaration order.
    pub const ALL: [Family; 13] = [
        Family::OpenAi,
        Family::AzureOpenAi,
        Family::Anthropic,
        Family::Gemini,
        Family::Groq,
        Family::Mistral,
        Family::Cohere,
        Family::OpenRouter,
        Family::DeepSeek,
        Family::Xai,
        Family::Together,
        Family::Fireworks,
        Family::OpenAiCompatible,
    ];

    /// The family's kebab-case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Family::OpenAi => "openai",
            Family::AzureOpenAi => "azure-openai",
            Family::Anthropic => "anthropic",
            Family::Gemini => "gemini",
            Family::Groq => "groq",
            Family::Mistral => "mistral",
            Family::Cohere => "cohere",
            Family::OpenRouter => "openrouter",
            Family::DeepSeek => "deepseek",
            Family::Xai => "xai",
            Family::Together => "together",
            Family::Fireworks => "fireworks",
            Family::OpenAiCompatible => "openai-compatible",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Family {
    type Err = UnknownFamily;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Family::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| UnknownFamily { name: s.to_owned() })
    }
}

/// A provider family name that is not one of [`Family::ALL`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown provider family `{name}` (expected one of: {})", expected())]
pub struct UnknownFamily {
    name: String,
}

impl UnknownFamily {
    /// The name that was given.
    pub fn name(&self) -> &str {
        &self.name
    }
}

fn expected() -> String {
    Family::ALL.map(Family::as_str).join(", ")
}
