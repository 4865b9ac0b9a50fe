//! Tokens in and out, read from upstream answers as they pass: the `usage` object of a JSON
//! body (OpenAI chat and Responses, Anthropic) or Gemini's `usageMetadata`, and the same
//! objects inside a stream's events (OpenAI's final chunk with `stream_options.include_usage`,
//! Responses' `response.completed`, Anthropic's `message_start` and `message_delta`, every
//! Gemini chunk).
//!
//! Nothing is buffered beyond one usage object: a JSON body is scanned byte by byte for the
//! key `"usage"` or `"usageMetadata"` and only the object that follows is kept (at most
//! [`MAX_OBJECT`] bytes) and parsed; a stream's events are parsed only when their data holds
//! the bytes `usage` (a memchr search), so the common content chunk costs one scan.
//!
//! Every dialect's figures are cumulative (Anthropic's `message_delta` repeats the output so
//! far, Gemini's last chunk has the totals), so a later figure replaces an earlier one field
//! by field rather than adding to it.

use serde::Deserialize;

/// The most of one usage object kept; real ones are a few hundred bytes.
const MAX_OBJECT: usize = 4 * 1024;

/// The token fields of every dialect's usage object, each as last seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub(crate) struct Fields {
    /// OpenAI chat.
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    /// OpenAI Responses, Anthropic.
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    /// Anthropic: prompt caching, counted apart from `input_tokens`.
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    /// Gemini.
    #[serde(rename = "promptTokenCount")]
    prompt_token_count: Option<u64>,
    #[serde(rename = "candidatesTokenCount")]
    candidates_token_count: Option<u64>,
    #[serde(rename = "thoughtsTokenCount")]
    thoughts_token_count: Option<u64>,
}

/// Tokens in (the prompt, with cached input) and out (the completion, with reasoning).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tokens {
    pub(crate) input: u64,
    pub(crate) output: u64,
}

impl Fields {
    /// Takes every field `newer` has.
    fn merge(&mut self, newer: Fields) {
        macro_rules! take {
            ($($f:ident),*) => { $( if newer.$f.is_some() { self.$f = newer.$f; } )* };
        }
        take!(
            prompt_tokens,
            completion_tokens,
            input_tokens,
            output_tokens,
            cache_creation_input_tokens,
            cache_read_input_tokens,
            prompt_token_count,
            candidates_token_count,
            thoughts_token_count
        );
    }

    /// The totals, or `None` when no field was seen.
    pub(crate) fn tokens(&self) -> Option<Tokens> {
        if *self == Fields::default() {
            return None;
        }
        let n = |v: Option<u64>| v.unwrap_or(0);
        Some(Tokens {
            input: n(self.prompt_tokens)
                .saturating_add(n(self.input_tokens))
                .saturating_add(n(self.cache_creation_input_tokens))
                .saturating_add(n(self.cache_read_input_tokens))
                .saturating_add(n(self.prompt_token_count)),
            output: n(self.completion_tokens)
                .saturating_add(n(self.output_tokens))
                .saturating_add(n(self.candidates_token_count))
                .saturating_add(n(self.thoughts_token_count)),
        })
    }
}

/// Reads a stream's usage from its events.
#[derive(Debug, Default)]
pub(crate) struct StreamUsage {
    fields: Fields,
}

impl StreamUsage {
    /// One event's data. Parsed only if it holds `usage`; a usage object may sit at the top
    /// (OpenAI chat, Anthropic's `message_delta`, Gemini), under `response` (Responses'
    /// `response.completed`) or under `message` (Anthropic's `message_start`).
    pub(crate) fn on_event(&mut self, data: &[u8]) {
        if memchr::memmem::find(data, b"sage").is_none() {
            return;
        }
        #[derive(Deserialize)]
        struct Inner {
            #[serde(default)]
            usage: Option<Fields>,
        }
        #[derive(Deserialize)]
        struct Event {
            #[serde(default)]
            usage: Option<Fields>,
            #[serde(default, rename = "usageMetadata")]
            usage_metadata: Option<Fields>,
            #[serde(default)]
            response: Option<Inner>,
            #[serde(default)]
            message: Option<Inner>,
        }
        let Ok(e) = serde_json::from_slice::<Event>(data) else {
            return;
        };
        for f in [
            e.usage,
            e.usage_metadata,
            e.response.and_then(|r| r.usage),
            e.message.and_then(|m| m.usage),
        ]
        .into_iter()
        .flatten()
        {
            self.fields.merge(f);
        }
    }

    pub(crate) fn tokens(&self) -> Option<Tokens> {
        self.fields.tokens()
    }
}

/// Reads a JSON body's usage as it passes, keeping only the object after a `"usage"` or
/// `"usageMetadata"` key. Inside a JSON string a quote is escaped, so the bytes `"usage"`
/// followed by `:` are a key; a nested one (a tool's arguments) that does not parse as usage
/// changes nothing.
#[derive(Debug, Default)]
pub(crate) struct BodyUsage {
    state: Scan,
    object: Vec<u8>,
    fields: Fields,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Scan {
    /// Looking for a key: `matched` bytes of `"usage` matched so far.
    #[default]
    Seek,
    Key(u8),
    /// After `"usage`: the rest of `Metadata"` or the closing quote.
    Meta(u8),
    /// After the key's closing quote: whitespace, then `:`.
    Colon,
    /// After the colon: whitespace, then `{`.
    Open,
    /// Inside the object: its depth, whether in a string, whether after a backslash.
    Object {
        depth: u32,
        string: bool,
        escape: bool,
    },
}

const KEY: &[u8] = b"\"usage";
const META: &[u8] = b"Metadata\"";

impl BodyUsage {
    /// Feeds the next bytes of the body.
    pub(crate) fn feed(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        while !rest.is_empty() {
            if self.state == Scan::Seek {
                // The common case: jump to the next quote.
                match memchr::memchr(b'"', rest) {
                    Some(i) => {
                        self.state = Scan::Key(1);
                        rest = &rest[i + 1..];
                    }
                    None => return,
                }
                continue;
            }
            let b = rest[0];
            rest = &rest[1..];
            self.step(b);
        }
    }

    fn step(&mut self, b: u8) {
        self.state = match self.state {
            Scan::Seek => {
                if b == b'"' {
                    Scan::Key(1)
                } else {
                    Scan::Seek
                }
            }
            Scan::Key(i) => {
                let i = usize::from(i);
                if i == KEY.len() {
                    match b {
                        b'"' => Scan::Colon,
                        b'M' => Scan::Meta(1),
                        _ => Scan::Seek,
                    }
                } else if b == KEY[i] {
                    Scan::Key(i as u8 + 1)
                } else if b == b'"' {
                    Scan::Key(1)
                } else {
                    Scan::Seek
                }
            }
            Scan::Meta(i) => {
                let i = usize::from(i);
                if b == META[i] {
                    if i + 1 == META.len() {
                        Scan::Colon
                    } else {
                        Scan::Meta(i as u8 + 1)
                    }
                } else if b == b'"' {
                    Scan::Key(1)
                } else {
                    Scan::Seek
                }
            }
            Scan::Colon => match b {
                b':' => Scan::Open,
                b' ' | b'\t' | b'\r' | b'\n' => Scan::Colon,
                b'"' => Scan::Key(1),
                _ => Scan::Seek,
            },
            Scan::Open => match b {
                b'{' => {
                    self.object.clear();
                    self.object.push(b);
                    Scan::Object {
                        depth: 1,
                        string: false,
                        escape: false,
                    }
                }
                b' ' | b'\t' | b'\r' | b'\n' => Scan::Open,
                // `null`, or anything else: not a usage object.
                _ => Scan::Seek,
            },
            Scan::Object { .. } if self.object.len() >= MAX_OBJECT => {
                // Not a usage object (or a hostile one): dropped, and the scan goes on.
                self.object.clear();
                Scan::Seek
            }
            Scan::Object {
                depth,
                string,
                escape,
            } => {
                self.object.push(b);
                let (depth, string, escape) = match (string, escape, b) {
                    (true, true, _) => (depth, true, false),
                    (true, false, b'\\') => (depth, true, true),
                    (true, false, b'"') => (depth, false, false),
                    (true, false, _) => (depth, true, false),
                    (false, _, b'"') => (depth, true, false),
                    (false, _, b'{' | b'[') => (depth + 1, false, false),
                    (false, _, b'}' | b']') => (depth - 1, false, false),
                    (false, _, _) => (depth, false, false),
                };
                if depth == 0 {
                    if let Ok(f) = serde_json::from_slice::<Fields>(&self.object) {
                        self.fields.merge(f);
                    }
                    self.object.clear();
                    Scan::Seek
                } else {
                    Scan::Object {
                        depth,
                        string,
                        escape,
                    }
                }
            }
        };
    }

    pub(crate) fn tokens(&self) -> Option<Tokens> {
        self.fields.tokens()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::body::SseScanner;

    fn t(input: u64, output: u64) -> Option<Tokens> {
        Some(Tokens { input, output })
    }

    /// A JSON body fed whole and in every two-piece split, and in single bytes.
    fn body(text: &str) -> Option<Tokens> {
        let bytes = text.as_bytes();
        let mut whole = BodyUsage::default();
        whole.feed(bytes);
        let expected = whole.tokens();
        for cut in 0..=bytes.len() {
            let mut u = BodyUsage::default();
            u.feed(&bytes[..cut]);
            u.feed(&bytes[cut..]);
            assert_eq!(u.tokens(), expected, "split at {cut} of {text}");
        }
        let mut u = BodyUsage::default();
        for b in bytes {
            u.feed(std::slice::from_ref(b));
        }
        assert_eq!(u.tokens(), expected, "byte by byte: {text}");
        expected
    }

    /// An event stream fed in every two-piece split.
    fn stream(text: &str) -> Option<Tokens> {
        let bytes = text.as_bytes();
        let run = |parts: &[&[u8]]| {
            let mut scanner = SseScanner::default();
            let mut usage = StreamUsage::default();
            for p in parts {
                scanner.feed(p, &mut |_, data| usage.on_event(data));
            }
            scanner.finish(&mut |_, data| usage.on_event(data));
            usage.tokens()
        };
        let expected = run(&[bytes]);
        for cut in 0..=bytes.len() {
            assert_eq!(
                run(&[&bytes[..cut], &bytes[cut..]]),
                expected,
                "split at {cut}"
            );
        }
        expected
    }

    #[test]
    fn json_bodies_of_every_dialect() {
        let rows: &[(&str, Option<Tokens>)] = &[
            // OpenAI chat completions.
            (
                r#"{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Hi \"usage\": {\"prompt_tokens\": 999}"},"finish_reason":"stop"}],"usage":{"prompt_tokens":19,"completion_tokens":10,"total_tokens":29,"prompt_tokens_details":{"cached_tokens":4}},"system_fingerprint":"fp"}"#,
                t(19, 10),
            ),
            // OpenAI Responses: usage near the end, followed by more fields.
            (
                r#"{"id":"resp_1","object":"response","status":"completed","output":[],"usage":{"input_tokens":36,"input_tokens_details":{"cached_tokens":0},"output_tokens":87,"output_tokens_details":{"reasoning_tokens":12},"total_tokens":123},"user":null,"metadata":{}}"#,
                t(36, 87),
            ),
            // Anthropic: cache tokens count as input.
            (
                r#"{"id":"msg_1","type":"message","content":[{"type":"text","text":"x"}],"usage":{"input_tokens":2095,"cache_creation_input_tokens":100,"cache_read_input_tokens":3000,"output_tokens":503}}"#,
                t(5195, 503),
            ),
            // Gemini: thoughts count as output.
            (
                r#"{"candidates":[{"content":{"parts":[{"text":"x"}],"role":"model"}}],"usageMetadata":{"promptTokenCount":8,"candidatesTokenCount":20,"thoughtsTokenCount":30,"totalTokenCount":58,"promptTokensDetails":[{"modality":"TEXT","tokenCount":8}]},"modelVersion":"gemini-2.5-flash"}"#,
                t(8, 50),
            ),
            // Gemini's streamGenerateContent without alt=sse: one array; the last chunk wins.
            (
                r#"[{"candidates":[],"usageMetadata":{"promptTokenCount":8,"candidatesTokenCount":1}},
                   {"candidates":[],"usageMetadata" : {"promptTokenCount":8,"candidatesTokenCount":7}}]"#,
                t(8, 7),
            ),
            // Pretty-printed, with whitespace around the colon.
            (
                "{\n  \"usage\" :\n  {\n    \"prompt_tokens\": 3,\n    \"completion_tokens\": 4\n  }\n}",
                t(3, 4),
            ),
            // No usage, a null usage, an error body.
            (r#"{"data":[{"id":"gpt-4o"}]}"#, None),
            (r#"{"usage":null}"#, None),
            (r#"{"error":{"message":"usage limit","type":"x"}}"#, None),
            // A nested "usage" that is not a usage object changes nothing.
            (
                r#"{"args":{"usage":{"note":"x"}},"usage":{"input_tokens":1,"output_tokens":2}}"#,
                t(1, 2),
            ),
        ];
        let mut failures = Vec::new();
        for (text, expected) in rows {
            let got = body(text);
            if got != *expected {
                failures.push(format!("{text}: got {got:?}, expected {expected:?}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn an_oversized_object_is_dropped_not_kept() {
        let mut u = BodyUsage::default();
        u.feed(b"{\"usage\":{\"pad\":\"");
        u.feed(&vec![b'a'; MAX_OBJECT * 2]);
        u.feed(b"\",\"prompt_tokens\":1}}");
        assert_eq!(u.tokens(), None);
        assert!(u.object.capacity() <= MAX_OBJECT * 2);
    }

    #[test]
    fn streams_of_every_dialect() {
        let rows: &[(&str, &str, Option<Tokens>)] = &[
            (
                "openai chat with include_usage",
                concat!(
                    "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n",
                    "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
                    "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\"total_tokens\":11}}\n\n",
                    "data: [DONE]\n\n",
                ),
                t(9, 2),
            ),
            (
                "openai chat without usage",
                "data: {\"id\":\"c\",\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: [DONE]\n\n",
                None,
            ),
            (
                "openai responses",
                concat!(
                    "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"r\",\"usage\":null}}\n\n",
                    "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Hi\"}\n\n",
                    "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"r\",\"status\":\"completed\",\"usage\":{\"input_tokens\":12,\"output_tokens\":5,\"output_tokens_details\":{\"reasoning_tokens\":2},\"total_tokens\":17}}}\n\n",
                ),
                t(12, 5),
            ),
            (
                "anthropic message_start then message_delta",
                concat!(
                    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"usage\":{\"input_tokens\":25,\"cache_read_input_tokens\":5,\"output_tokens\":1}}}\n\n",
                    "event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\r\n\r\n",
                    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":15}}\n\n",
                    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
                ),
                t(30, 15),
            ),
            (
                "gemini sse: the last chunk's totals",
                concat!(
                    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}]}}],\"usageMetadata\":{\"promptTokenCount\":7,\"candidatesTokenCount\":1,\"totalTokenCount\":8}}\r\n\r\n",
                    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"b\"}]},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":7,\"candidatesTokenCount\":4,\"thoughtsTokenCount\":3,\"totalTokenCount\":14}}\r\n\r\n",
                ),
                t(7, 7),
            ),
        ];
        let mut failures = Vec::new();
        for (name, text, expected) in rows {
            let got = stream(text);
            if got != *expected {
                failures.push(format!("{name}: got {got:?}, expected {expected:?}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
