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
        self.info().name
    }

    /// Everything the gateway and the bindings need to know about the family, from
    /// [`FAMILIES`].
    pub const fn info(self) -> &'static FamilyInfo {
        // `ALL` and `FAMILIES` list the families in the same order (a test checks it).
        &FAMILIES[self as usize]
    }
}

/// What a family's API looks like on the wire: how a key is written into a request, how
/// errors are shaped, and which requests can be sent to another provider unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Api {
    /// The OpenAI API: `Authorization: Bearer KEY`, OpenAI error bodies.
    OpenAi,
    /// Azure OpenAI: `api-key: KEY`, OpenAI error bodies.
    AzureOpenAi,
    /// The Anthropic Messages API: `x-api-key: KEY` (plus `anthropic-version`), Anthropic
    /// error bodies.
    Anthropic,
    /// The Gemini API: `x-goog-api-key: KEY`, Google error bodies.
    Gemini,
}

impl Api {
    /// The request header the key goes in, and what precedes the key in its value.
    pub const fn key_header(self) -> (&'static str, &'static str) {
        match self {
            Api::OpenAi => ("authorization", "Bearer "),
            Api::AzureOpenAi => ("api-key", ""),
            Api::Anthropic => ("x-api-key", ""),
            Api::Gemini => ("x-goog-api-key", ""),
        }
    }
}

/// One row of [`FAMILIES`]: a provider family declared once, for the classifier, the gateway
/// (dialect, default upstream, `check --probe`) and the Node and Python bindings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FamilyInfo {
    /// The family.
    pub family: Family,
    /// Its kebab-case name, as in configurations.
    pub name: &'static str,
    /// Its wire format.
    pub api: Api,
    /// Where its API lives, for configurations that do not say; `None` when it depends on the
    /// account (Azure resources, self-hosted servers).
    pub default_upstream: Option<&'static str>,
    /// A cheap authenticated `GET` that says whether a key works (its model list).
    pub probe_path: &'static str,
    /// Which classifier reads its responses.
    pub(crate) classifier: Classifier,
}

/// The response classifiers; OpenAI's also reads the OpenAI-shaped providers, with their
/// quirks keyed by family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Classifier {
    OpenAi,
    Anthropic,
    Gemini,
    OpenRouter,
    Cohere,
}

const fn row(
    family: Family,
    name: &'static str,
    api: Api,
    default_upstream: Option<&'static str>,
    classifier: Classifier,
) -> FamilyInfo {
    let probe_path = match api {
        Api::Gemini => "/v1beta/models",
        Api::AzureOpenAi => "/openai/models?api-version=2024-10-21",
        Api::OpenAi | Api::Anthropic => "/v1/models",
    };
    FamilyInfo {
        family,
        name,
        api,
        default_upstream,
        probe_path,
        classifier,
    }
}

/// Every family, in the order of [`Family::ALL`]. An OpenAI-shaped provider is one row here
/// (and a variant of [`Family`] above).
#[rustfmt::skip] // One row per line, as a table.
pub const FAMILIES: [FamilyInfo; 13] = {
    use Api as A;
    use Classifier as C;
    use Family as F;
    [
        row(F::OpenAi, "openai", A::OpenAi, Some("https://api.openai.com"), C::OpenAi),
        row(F::AzureOpenAi, "azure-openai", A::AzureOpenAi, None, C::OpenAi),
        row(F::Anthropic, "anthropic", A::Anthropic, Some("https://api.anthropic.com"), C::Anthropic),
        row(F::Gemini, "gemini", A::Gemini, Some("https://generativelanguage.googleapis.com"), C::Gemini),
        row(F::Groq, "groq", A::OpenAi, Some("https://api.groq.com/openai"), C::OpenAi),
        row(F::Mistral, "mistral", A::OpenAi, Some("https://api.mistral.ai"), C::OpenAi),
        row(F::Cohere, "cohere", A::OpenAi, None, C::Cohere),
        row(F::OpenRouter, "openrouter", A::OpenAi, Some("https://openrouter.ai/api"), C::OpenRouter),
        row(F::DeepSeek, "deepseek", A::OpenAi, Some("https://api.deepseek.com"), C::OpenAi),
        row(F::Xai, "xai", A::OpenAi, Some("https://api.x.ai"), C::OpenAi),
        row(F::Together, "together", A::OpenAi, Some("https://api.together.xyz"), C::OpenAi),
        row(F::Fireworks, "fireworks", A::OpenAi, Some("https://api.fireworks.ai/inference"), C::OpenAi),
        row(F::OpenAiCompatible, "openai-compatible", A::OpenAi, None, C::OpenAi),
    ]
};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_lists_every_family_once_in_order() {
        for (i, f) in Family::ALL.into_iter().enumerate() {
            assert_eq!(FAMILIES[i].family, f, "row {i}");
            assert_eq!(f.info().family, f);
            assert_eq!(f.as_str().parse::<Family>(), Ok(f));
            // The serde name is the table's name.
            assert_eq!(
                serde_json::to_string(&f).unwrap(),
                format!("\"{}\"", f.as_str())
            );
        }
    }

    #[test]
    fn default_upstreams_are_https_origins_without_a_trailing_slash() {
        for info in FAMILIES {
            if let Some(u) = info.default_upstream {
                assert!(
                    u.starts_with("https://") && !u.ends_with('/'),
                    "{}: {u}",
                    info.name
                );
            }
        }
    }
}
