//! Error bodies: the few facts the classifier reads, parsed with borrowed structs.
//!
//! Every provider wraps its error differently (`{"error":{...}}`, Mistral's flat object,
//! Google's `details` array, Anthropic's `details` object, OpenRouter's `metadata`). One lenient
//! shape covers them all: each field is optional, and a field of an unexpected type is skipped
//! instead of failing the whole parse. A body that is not JSON at all (an HTML error page, a
//! truncated prefix) is kept as text so message matching still works.

use std::borrow::Cow;
use std::time::Duration;

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::wait;

/// How much of a body the classifier reads. Every error body in the reference is under 4 KiB;
/// 64 KiB leaves room for verbose gateways while bounding the work done on a hostile response.
pub const MAX_BODY: usize = 64 * 1024;

/// A JSON scalar read as text: error codes are strings for most providers and numbers for
/// Google and OpenRouter.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar<'a> {
    Str(#[serde(borrow)] Cow<'a, str>),
    Int(i64),
    Other(IgnoredAny),
}

impl<'a> Scalar<'a> {
    fn text(self) -> Option<Cow<'a, str>> {
        match self {
            Scalar::Str(s) => Some(s),
            Scalar::Int(n) => Some(Cow::Owned(n.to_string())),
            Scalar::Other(_) => None,
        }
    }
}

/// A value of the expected shape, or anything else (ignored).
#[derive(Deserialize)]
#[serde(untagged)]
enum Lenient<T> {
    Val(T),
    Other(IgnoredAny),
}

impl<T> Lenient<T> {
    fn val(self) -> Option<T> {
        match self {
            Lenient::Val(v) => Some(v),
            Lenient::Other(_) => None,
        }
    }
}

#[derive(Deserialize, Default)]
struct Raw<'a> {
    #[serde(borrow, default)]
    error: Option<Lenient<ErrorField<'a>>>,
    #[serde(borrow, default)]
    message: Option<Scalar<'a>>,
    #[serde(borrow, default, rename = "type")]
    kind: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    code: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    error_type: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    choices: Option<Lenient<Vec<Lenient<Choice<'a>>>>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ErrorField<'a> {
    Obj(#[serde(borrow)] ErrorObj<'a>),
    Text(#[serde(borrow)] Cow<'a, str>),
}

#[derive(Deserialize, Default)]
struct ErrorObj<'a> {
    #[serde(borrow, default)]
    message: Option<Scalar<'a>>,
    #[serde(borrow, default, rename = "type")]
    kind: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    code: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    status: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    error_type: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    details: Option<Details<'a>>,
    #[serde(borrow, default)]
    metadata: Option<Lenient<Metadata<'a>>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Details<'a> {
    /// Google's `details`: a list of typed messages.
    List(#[serde(borrow)] Vec<Lenient<GoogleDetail<'a>>>),
    /// Anthropic's `details`: an object with `error_code`.
    Map(#[serde(borrow)] AnthropicDetails<'a>),
    Other(IgnoredAny),
}

#[derive(Deserialize, Default)]
struct GoogleDetail<'a> {
    #[serde(borrow, default)]
    reason: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    violations: Option<Lenient<Vec<Lenient<Violation<'a>>>>>,
    #[serde(borrow, default, rename = "retryDelay")]
    retry_delay: Option<Scalar<'a>>,
}

#[derive(Deserialize, Default)]
struct Violation<'a> {
    #[serde(borrow, default, rename = "quotaId")]
    quota_id: Option<Scalar<'a>>,
    #[serde(borrow, default, rename = "quotaDimensions")]
    quota_dimensions: Option<Lenient<Dimensions<'a>>>,
}

#[derive(Deserialize, Default)]
struct Dimensions<'a> {
    #[serde(borrow, default)]
    model: Option<Scalar<'a>>,
}

#[derive(Deserialize, Default)]
struct AnthropicDetails<'a> {
    #[serde(borrow, default)]
    error_code: Option<Scalar<'a>>,
}

#[derive(Deserialize, Default)]
struct Metadata<'a> {
    #[serde(borrow, default)]
    error_type: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    limit_source: Option<Scalar<'a>>,
    #[serde(default)]
    provider_code: Option<IgnoredAny>,
    #[serde(default)]
    provider_name: Option<IgnoredAny>,
}

#[derive(Deserialize, Default)]
struct Choice<'a> {
    #[serde(borrow, default)]
    finish_reason: Option<Scalar<'a>>,
}

/// The facts of an error body, flattened across providers' shapes.
#[derive(Default)]
pub(crate) struct Facts<'a> {
    /// `error.message` or a top-level `message`; the whole body when it is not JSON.
    pub(crate) message: Option<Cow<'a, str>>,
    /// `error.type` (OpenAI, Anthropic, Mistral) or a top-level `type`.
    pub(crate) kind: Option<Cow<'a, str>>,
    /// `error.code`, as text (OpenAI `"insufficient_quota"`, Google `429`).
    pub(crate) code: Option<Cow<'a, str>>,
    /// Google's `error.status` (`"RESOURCE_EXHAUSTED"`).
    pub(crate) status: Option<Cow<'a, str>>,
    /// Anthropic's `details.error_code`, OpenRouter's `metadata.error_type`, Together's
    /// `error_type`.
    pub(crate) detail: Option<Cow<'a, str>>,
    /// OpenRouter's `metadata.limit_source`.
    pub(crate) limit_source: Option<Cow<'a, str>>,
    /// OpenRouter's `metadata.provider_code`/`provider_name`: the error came from upstream.
    pub(crate) upstream: bool,
    /// Google `ErrorInfo.reason`s (`"API_KEY_INVALID"`).
    pub(crate) reasons: Vec<Cow<'a, str>>,
    /// Google `QuotaFailure.violations[].quotaId`s.
    pub(crate) quota_ids: Vec<Cow<'a, str>>,
    /// Google `QuotaFailure.violations[].quotaDimensions.model`: the model a quota counts.
    pub(crate) quota_model: Option<Cow<'a, str>>,
    /// Google `RetryInfo.retryDelay`.
    pub(crate) retry_delay: Option<Duration>,
    /// A streamed chunk's `choices[].finish_reason` was `"error"` (OpenRouter).
    pub(crate) finish_error: bool,
    /// The body had an `error` member (object or string).
    pub(crate) has_error: bool,
    /// The body was not JSON; `message` holds its text.
    pub(crate) unparsed: bool,
}

impl<'a> Facts<'a> {
    /// Reads the facts from (a prefix of) a body.
    pub(crate) fn parse(body: &'a [u8]) -> Facts<'a> {
        let body = &body[..body.len().min(MAX_BODY)];
        match serde_json::from_slice::<Raw<'a>>(body) {
            Ok(raw) => Facts::from_raw(raw),
            Err(_) => {
                let text = String::from_utf8_lossy(body);
                Facts {
                    message: (!text.trim().is_empty()).then_some(text),
                    unparsed: true,
                    ..Facts::default()
                }
            }
        }
    }

    fn from_raw(raw: Raw<'a>) -> Facts<'a> {
        let mut f = Facts {
            message: raw.message.and_then(Scalar::text),
            kind: raw.kind.and_then(Scalar::text),
            code: raw.code.and_then(Scalar::text),
            detail: raw.error_type.and_then(Scalar::text),
            ..Facts::default()
        };
        f.finish_error = raw
            .choices
            .and_then(Lenient::val)
            .into_iter()
            .flatten()
            .filter_map(Lenient::val)
            .filter_map(|c| c.finish_reason.and_then(Scalar::text))
            .any(|r| r == "error");
        match raw.error.and_then(Lenient::val) {
            None => {}
            Some(ErrorField::Text(t)) => {
                f.has_error = true;
                f.message = f.message.or(Some(t));
            }
            Some(ErrorField::Obj(e)) => {
                f.has_error = true;
                f.message = e.message.and_then(Scalar::text).or(f.message);
                f.kind = e.kind.and_then(Scalar::text).or(f.kind);
                f.code = e.code.and_then(Scalar::text).or(f.code);
                f.status = e.status.and_then(Scalar::text);
                f.detail = e.error_type.and_then(Scalar::text).or(f.detail);
                if let Some(m) = e.metadata.and_then(Lenient::val) {
                    f.detail = m.error_type.and_then(Scalar::text).or(f.detail);
                    f.limit_source = m.limit_source.and_then(Scalar::text);
                    f.upstream = m.provider_code.is_some() || m.provider_name.is_some();
                }
                match e.details {
                    Some(Details::Map(d)) => {
                        f.detail = d.error_code.and_then(Scalar::text).or(f.detail);
                    }
                    Some(Details::List(list)) => {
                        for d in list.into_iter().filter_map(Lenient::val) {
                            f.reasons.extend(d.reason.and_then(Scalar::text));
                            if let Some(delay) = d.retry_delay.and_then(Scalar::text) {
                                f.retry_delay = f.retry_delay.or(wait::protobuf_duration(&delay));
                            }
                            let violations =
                                d.violations.and_then(Lenient::val).into_iter().flatten();
                            for v in violations.filter_map(Lenient::val) {
                                f.quota_ids.extend(v.quota_id.and_then(Scalar::text));
                                let model = v
                                    .quota_dimensions
                                    .and_then(Lenient::val)
                                    .and_then(|d| d.model)
                                    .and_then(Scalar::text);
                                f.quota_model = f.quota_model.take().or(model);
                            }
                        }
                    }
                    Some(Details::Other(_)) | None => {}
                }
            }
        }
        f
    }

    /// Whether a code-like field equals `token`, or, for a body that was not JSON, whether the
    /// text contains it.
    pub(crate) fn has(&self, token: &str) -> bool {
        let eq = |v: &Option<Cow<'_, str>>| v.as_deref() == Some(token);
        eq(&self.code)
            || eq(&self.kind)
            || eq(&self.status)
            || eq(&self.detail)
            || eq(&self.limit_source)
            || self.reasons.iter().any(|r| r == token)
            || (self.unparsed && self.says(token))
    }

    /// Whether the message contains `needle`, ignoring ASCII case.
    pub(crate) fn says(&self, needle: &str) -> bool {
        self.message
            .as_deref()
            .is_some_and(|m| wait::contains_ignore_case(m, needle))
    }

    /// A wait written in the message text.
    pub(crate) fn text_wait(&self) -> Option<Duration> {
        self.message.as_deref().and_then(wait::in_text)
    }
}
