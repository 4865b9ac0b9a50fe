//! Which provider API a request speaks, which operation it asks for, and where its
//! credential is.

use hyper::{HeaderMap, Method};

/// The provider protocol a request was recognised as.
///
/// The dialect decides the shape of every answer: an error for an OpenAI route has OpenAI's
/// body, the same error on a Gemini route has Google's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Dialect {
    /// OpenAI and the OpenAI-compatible providers (Groq, Mistral, OpenRouter, DeepSeek, …):
    /// `Authorization: Bearer KEY` on `/v1/...`.
    OpenAi,
    /// Azure OpenAI: `api-key: KEY` on `/openai/...`, or on an OpenAI route.
    Azure,
    /// Anthropic: `x-api-key: KEY` (or `Authorization: Bearer KEY`, as the 2.x Python SDK
    /// sends it) plus `anthropic-version`.
    Anthropic,
    /// Google Gemini API: `x-goog-api-key: KEY` or `?key=KEY` on `/v1beta/...`.
    Gemini,
}

/// The operation a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    /// OpenAI chat completions (and Azure's deployment form of it).
    ChatCompletions,
    /// OpenAI Responses API.
    Responses,
    /// Anthropic messages.
    Messages,
    /// Gemini `generateContent` / `streamGenerateContent` for `model`.
    Generate { model: String, stream: bool },
    /// The model list of the dialect.
    ListModels,
    /// Gemini's single model lookup.
    GetModel { model: String },
    /// No such route.
    NotFound,
}

/// A recognised request: dialect, operation and credential.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    pub(crate) dialect: Dialect,
    pub(crate) op: Op,
    pub(crate) key: Option<String>,
}

impl Route {
    /// Recognises a request from its method, path, query and headers.
    pub(crate) fn recognise(
        method: &Method,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Route {
        let (dialect, op) = recognise_op(method, path, headers);
        let key = credential(dialect, query, headers);
        Route { dialect, op, key }
    }
}

fn recognise_op(method: &Method, path: &str, headers: &HeaderMap) -> (Dialect, Op) {
    let post = method == Method::POST;
    let get = method == Method::GET;

    // Azure puts the deployment in the path (`/openai/deployments/{d}/chat/completions`) or
    // uses the newer `/openai/v1/...` form; both map onto the OpenAI operations.
    if let Some(rest) = path.strip_prefix("/openai/") {
        let rest = if let Some(r) = rest.strip_prefix("deployments/") {
            r.split_once('/').map_or("", |(_, tail)| tail)
        } else {
            rest.strip_prefix("v1/").unwrap_or("")
        };
        let op = match rest {
            "chat/completions" if post => Op::ChatCompletions,
            "responses" if post => Op::Responses,
            "models" if get => Op::ListModels,
            _ => Op::NotFound,
        };
        return (Dialect::Azure, op);
    }

    // Gemini: `/v1beta/models`, `/v1beta/models/{m}`, `/v1beta/models/{m}:method`.
    for prefix in ["/v1beta/models", "/v1/models/"] {
        let Some(rest) = path.strip_prefix(prefix) else {
            continue;
        };
        let rest = rest.trim_start_matches('/');
        if rest.is_empty() {
            return (
                Dialect::Gemini,
                if get { Op::ListModels } else { Op::NotFound },
            );
        }
        let op = match rest.split_once(':') {
            Some((model, "generateContent")) if post => Op::Generate {
                model: model.to_owned(),
                stream: false,
            },
            Some((model, "streamGenerateContent")) if post => Op::Generate {
                model: model.to_owned(),
                stream: true,
            },
            None if get
                && (prefix == "/v1beta/models" || headers.contains_key("x-goog-api-key")) =>
            {
                Op::GetModel {
                    model: rest.to_owned(),
                }
            }
            // `/v1/models/{id}` without a method is OpenAI's model lookup; leave it to the
            // OpenAI branch below.
            None => break,
            _ => Op::NotFound,
        };
        return (Dialect::Gemini, op);
    }

    match path {
        "/v1/messages" if post => (Dialect::Anthropic, Op::Messages),
        "/v1/chat/completions" | "/chat/completions" if post => {
            (openai_or_azure(headers), Op::ChatCompletions)
        }
        "/v1/responses" | "/responses" if post => (openai_or_azure(headers), Op::Responses),
        // OpenAI, Anthropic and (since google-genai 3) Gemini all serve `GET /v1/models`;
        // the headers tell them apart.
        "/v1/models" if get => {
            if headers.contains_key("x-goog-api-key") {
                (Dialect::Gemini, Op::ListModels)
            } else if headers.contains_key("x-api-key") || headers.contains_key("anthropic-version")
            {
                (Dialect::Anthropic, Op::ListModels)
            } else {
                (openai_or_azure(headers), Op::ListModels)
            }
        }
        _ if path.starts_with("/v1/messages") => (Dialect::Anthropic, Op::NotFound),
        _ => (openai_or_azure(headers), Op::NotFound),
    }
}

fn openai_or_azure(headers: &HeaderMap) -> Dialect {
    if headers.contains_key("api-key") && !headers.contains_key("authorization") {
        Dialect::Azure
    } else {
        Dialect::OpenAi
    }
}

/// Reads the credential where the dialect's provider reads it, and nowhere else: a proxy
/// that sends an Anthropic key in Azure's `api-key` header must see the 401 it would get for real.
fn credential(dialect: Dialect, query: Option<&str>, headers: &HeaderMap) -> Option<String> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let bearer = || {
        headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    match dialect {
        Dialect::OpenAi => bearer(),
        // Azure also accepts an Entra ID bearer token in place of the key.
        Dialect::Azure => header("api-key").or_else(bearer),
        // The documented header is `x-api-key`, but the Python SDK 2.x sends
        // `Authorization: Bearer` (observed with anthropic 2.13), and the API accepts both.
        Dialect::Anthropic => header("x-api-key").or_else(bearer),
        Dialect::Gemini => header("x-goog-api-key").or_else(|| {
            query?
                .split('&')
                .find_map(|pair| pair.strip_prefix("key="))
                .filter(|k| !k.is_empty())
                .map(str::to_owned)
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn check(
        method: Method,
        path: &str,
        query: Option<&str>,
        hdrs: &[(&'static str, &str)],
    ) -> Route {
        let mut headers = HeaderMap::new();
        for (k, v) in hdrs {
            headers.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        Route::recognise(&method, path, query, &headers)
    }

    #[test]
    fn recognises_routes_and_keys() {
        let r = check(
            Method::POST,
            "/v1/chat/completions",
            None,
            &[("authorization", "Bearer sk-a")],
        );
        assert_eq!(
            (r.dialect, r.op, r.key.as_deref()),
            (Dialect::OpenAi, Op::ChatCompletions, Some("sk-a"))
        );

        let r = check(
            Method::POST,
            "/openai/deployments/gpt4/chat/completions",
            Some("api-version=2024-10-21"),
            &[("api-key", "az")],
        );
        assert_eq!(
            (r.dialect, r.op, r.key.as_deref()),
            (Dialect::Azure, Op::ChatCompletions, Some("az"))
        );

        let r = check(
            Method::POST,
            "/v1/messages",
            None,
            &[("x-api-key", "ant"), ("anthropic-version", "2023-06-01")],
        );
        assert_eq!(
            (r.dialect, r.op, r.key.as_deref()),
            (Dialect::Anthropic, Op::Messages, Some("ant"))
        );

        // An Anthropic route reads a bearer token too, as the 2.x SDK sends one...
        let r = check(
            Method::POST,
            "/v1/messages",
            None,
            &[("authorization", "Bearer ant")],
        );
        assert_eq!(r.key.as_deref(), Some("ant"));
        // ...but not Azure's header.
        let r = check(Method::POST, "/v1/messages", None, &[("api-key", "ant")]);
        assert_eq!(r.key, None);
        let r = check(Method::GET, "/v1/models", None, &[("x-goog-api-key", "g")]);
        assert_eq!((r.dialect, r.op), (Dialect::Gemini, Op::ListModels));

        let r = check(Method::GET, "/v1/models", None, &[("x-api-key", "ant")]);
        assert_eq!((r.dialect, r.op), (Dialect::Anthropic, Op::ListModels));
        let r = check(
            Method::GET,
            "/v1/models",
            None,
            &[("authorization", "Bearer sk")],
        );
        assert_eq!((r.dialect, r.op), (Dialect::OpenAi, Op::ListModels));

        let r = check(
            Method::POST,
            "/v1beta/models/gemini-2.0-flash:streamGenerateContent",
            Some("alt=sse&key=g1"),
            &[],
        );
        assert_eq!(r.dialect, Dialect::Gemini);
        assert_eq!(
            r.op,
            Op::Generate {
                model: "gemini-2.0-flash".into(),
                stream: true
            }
        );
        assert_eq!(r.key.as_deref(), Some("g1"));

        let r = check(
            Method::POST,
            "/v1beta/models/gemini-2.0-flash:generateContent",
            None,
            &[("x-goog-api-key", "g2")],
        );
        assert_eq!(r.key.as_deref(), Some("g2"));
        let r = check(
            Method::GET,
            "/v1beta/models",
            None,
            &[("x-goog-api-key", "g2")],
        );
        assert_eq!((r.dialect, r.op), (Dialect::Gemini, Op::ListModels));
        let r = check(Method::GET, "/nope", None, &[]);
        assert_eq!(r.op, Op::NotFound);
    }
}
