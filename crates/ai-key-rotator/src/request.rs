//! What the rotator reads from a request before sending it: the model it is for (for
//! per-model cooldowns), and, for prompt-cache affinity, the hash of its stable prefix
//! (see `affinity`). For the gateway and the bindings' HTTP adapters, which see requests as
//! bytes.

use crate::classify::ModelName;

/// The model a provider request is for: Gemini's path (`/v1beta/models/{model}:generateContent`,
/// `:streamGenerateContent`), else the body's `"model"` field (OpenAI chat and responses,
/// Anthropic messages and every OpenAI-compatible API). `None` when neither names one, or the
/// name is not a [`ModelName`].
///
/// The body is not parsed: the first `"model"` key whose value is a string is read, which is
/// the top-level field in every provider's request (a tool schema's property named `model`
/// has an object as its value and is skipped). That keeps it a scan of the bytes, with no
/// allocation, on every request.
///
/// ```
/// use ai_key_rotator::request_model;
///
/// let body = br#"{"messages":[{"role":"user","content":"say \"model\": \"x\""}],"model":"gpt-4o"}"#;
/// assert_eq!(request_model("/v1/chat/completions", body).unwrap().as_str(), "gpt-4o");
/// let gemini = request_model("/v1beta/models/gemini-2.0-flash:generateContent", b"{}");
/// assert_eq!(gemini.unwrap().as_str(), "gemini-2.0-flash");
/// assert!(request_model("/v1/models", b"").is_none());
/// ```
pub fn request_model(path: &str, body: &[u8]) -> Option<ModelName> {
    if let Some(model) = gemini_path_model(path) {
        return Some(model);
    }
    body_model(body)
}

fn gemini_path_model(path: &str) -> Option<ModelName> {
    let i = path.find("/models/")?;
    let rest = &path[i + "/models/".len()..];
    let (model, method) = rest.split_once(':')?;
    if !method.contains("enerateContent") && !method.starts_with("countTokens") {
        return None;
    }
    ModelName::new(model).ok()
}

fn body_model(body: &[u8]) -> Option<ModelName> {
    const KEY: &[u8] = b"\"model\"";
    let mut from = 0;
    while let Some(at) = find(&body[from..], KEY) {
        let after = from + at + KEY.len();
        from = after;
        let rest = skip_ws(&body[after..]);
        let Some(rest) = rest.strip_prefix(b":") else {
            continue;
        };
        let rest = skip_ws(rest);
        let Some(value) = rest.strip_prefix(b"\"") else {
            continue;
        };
        let end = value.iter().position(|&b| b == b'"' || b == b'\\')?;
        if value[end] != b'"' {
            return None;
        }
        return std::str::from_utf8(&value[..end])
            .ok()
            .and_then(|m| ModelName::new(m).ok());
    }
    None
}

fn skip_ws(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|c| c.is_ascii_whitespace()).count();
    &b[n..]
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}
