//! Prompt-cache affinity: the hash of a request's stable prefix, so that requests sharing a
//! prompt prefix land on the same key.
//!
//! Providers cache prompts per key or organization. A rotator that spreads requests over keys
//! turns a 95 % cache hit rate into nearly none, unless requests that start alike stay on one
//! key. Without a session id the rotator recognizes them by their *stable prefix*: the part of
//! a request that the next turn of the same conversation (or another request of the same
//! application) repeats byte for byte:
//!
//! | wire format | the stable prefix |
//! |---|---|
//! | OpenAI chat (and every OpenAI-shaped API) | `tools`, and `messages` up to the first user message (system and developer messages come first) |
//! | OpenAI Responses | `instructions`, `tools`, and the first item of `input` (or `input` when it is a string) |
//! | Anthropic Messages | `system`, `tools`, and `messages` up to the first user message |
//! | Gemini | `systemInstruction`, `tools`, and `contents` up to the first user content |
//!
//! [`prefix_hash`] hashes those bytes (XXH3 with a fixed seed: the same value in every process
//! and every version, so a fleet places a prefix alike); an acquire that carries it
//! ([`AcquireOptions::affinity`](crate::AcquireOptions::affinity)) takes, among the keys that
//! may be handed out, the one with the highest rendezvous score for it. A key that goes away
//! moves only its own prefixes; the others stay where their caches are.
//!
//! The body is scanned, not parsed: string contents are skipped with `memchr`, and the scan
//! stops at the first user message, so a long conversation costs little more than its first
//! turn. The bytes are hashed as sent: two clients that format the same prompt differently
//! (other whitespace, other key order inside a message) get different hashes, which costs a
//! cache miss, never a wrong answer.

use memchr::memchr;
use xxhash_rust::xxh3::Xxh3;

use crate::classify::Api;

/// The seed of every prefix hash. Changing it moves every prefix to another key once, so it
/// never changes.
const SEED: u64 = 0x0c4c_e0af_f1e1_7e00;

/// Nested arrays and objects deeper than this are not followed: a body that deep is no
/// provider's request, and the bound keeps the scan's work linear in the body.
const MAX_DEPTH: usize = 128;

/// The hash of the request body's stable prefix for a provider of wire format `api`, or
/// `None` when the body is not a JSON object or holds none of the fields the prefix is made of
/// (see the [module documentation](self) for which fields those are).
///
/// Stable across processes and versions: XXH3 over the prefix's bytes with a fixed seed.
///
/// ```
/// use ai_key_rotator::classify::Api;
/// use ai_key_rotator::prefix_hash;
///
/// let first = br#"{"model":"gpt-4o","messages":[
///     {"role":"system","content":"You are a terse assistant."},
///     {"role":"user","content":"What is Rust?"}]}"#;
/// let later = br#"{"model":"gpt-4o","messages":[
///     {"role":"system","content":"You are a terse assistant."},
///     {"role":"user","content":"What is Rust?"},
///     {"role":"assistant","content":"A language."},
///     {"role":"user","content":"Who made it?"}]}"#;
/// let other = br#"{"model":"gpt-4o","messages":[
///     {"role":"system","content":"You are a poet."},
///     {"role":"user","content":"What is Rust?"}]}"#;
/// let h = prefix_hash(Api::OpenAi, first).unwrap();
/// assert_eq!(prefix_hash(Api::OpenAi, later), Some(h));
/// assert_ne!(prefix_hash(Api::OpenAi, other), Some(h));
/// assert_eq!(prefix_hash(Api::OpenAi, b"not json"), None);
/// ```
pub fn prefix_hash(api: Api, body: &[u8]) -> Option<u64> {
    let fields: &[(&[u8], Part)] = match api {
        Api::Anthropic => &ANTHROPIC,
        Api::Gemini => &GEMINI,
        // `Api` is non-exhaustive: a new wire format is read as OpenAI's until it has its own
        // row, as the gateway's dialects do.
        _ => &OPENAI,
    };
    let mut found: [Option<&[u8]>; PARTS] = [None; PARTS];
    let mut s = Scanner { b: body, i: 0 };
    s.ws();
    s.expect(b'{')?;
    s.ws();
    if s.peek()? != b'}' {
        loop {
            let key = s.string()?;
            s.ws();
            s.expect(b':')?;
            s.ws();
            let start = s.i;
            let part = fields
                .iter()
                .find(|(name, _)| *name == key)
                .map(|&(_, p)| p);
            match part {
                Some(Part::Turns(rule)) if found[Part::TURNS].is_none() => {
                    found[Part::TURNS] = Some(s.turns(rule)?);
                }
                Some(p) if found[p.index()].is_none() => {
                    s.value(0)?;
                    found[p.index()] = Some(&body[start..s.i]);
                }
                _ => s.value(0)?,
            }
            s.ws();
            match s.next()? {
                b',' => s.ws(),
                b'}' => break,
                _ => return None,
            }
        }
    }
    if found.iter().all(Option::is_none) {
        return None;
    }
    let mut h = Xxh3::with_seed(SEED);
    for (tag, part) in found.iter().enumerate() {
        // Each part is tagged and its length written, so that moving bytes from one part to
        // another (or dropping a part) always changes the hash.
        let bytes = part.unwrap_or_default();
        h.update(&[tag as u8 + u8::from(part.is_some()) * 0x80]);
        h.update(&(bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    }
    Some(h.digest())
}

/// How much of the conversation belongs to the stable prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// Every element up to and including the first user turn (an element whose `role` is
    /// `"user"`, or that has no role, as Gemini's single-turn contents).
    UpToUser,
    /// The first element only (the Responses API's `input`, whose items need not have roles);
    /// a string is taken whole.
    FirstItem,
}

/// The parts of a stable prefix, hashed in this order whatever the order of the body's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    System,
    Tools,
    Turns(Rule),
}

const PARTS: usize = 3;

impl Part {
    const TURNS: usize = 2;

    fn index(self) -> usize {
        match self {
            Part::System => 0,
            Part::Tools => 1,
            Part::Turns(_) => Part::TURNS,
        }
    }
}

const OPENAI: [(&[u8], Part); 4] = [
    (b"messages", Part::Turns(Rule::UpToUser)),
    (b"input", Part::Turns(Rule::FirstItem)),
    (b"instructions", Part::System),
    (b"tools", Part::Tools),
];

const ANTHROPIC: [(&[u8], Part); 3] = [
    (b"messages", Part::Turns(Rule::UpToUser)),
    (b"system", Part::System),
    (b"tools", Part::Tools),
];

const GEMINI: [(&[u8], Part); 4] = [
    (b"contents", Part::Turns(Rule::UpToUser)),
    (b"systemInstruction", Part::System),
    (b"system_instruction", Part::System),
    (b"tools", Part::Tools),
];

/// A cursor over JSON bytes that skips values without building them. Every method returns
/// `None` on malformed input (or input cut short) instead of panicking.
struct Scanner<'b> {
    b: &'b [u8],
    i: usize,
}

impl<'b> Scanner<'b> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn expect(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.i += 1;
        }
    }

    /// A string at the cursor: its raw contents (escapes left as they are).
    fn string(&mut self) -> Option<&'b [u8]> {
        self.expect(b'"')?;
        let start = self.i;
        self.skip_string_rest()?;
        Some(&self.b[start..self.i - 1])
    }

    /// Past the closing quote of a string whose opening quote is behind the cursor.
    ///
    /// It jumps from quote to quote (`memchr`, which compares 16 or 32 bytes at once) and
    /// tells an escaped quote by the backslashes right before it (an odd number): stopping
    /// at every backslash instead would stop at every `\n` of a prompt, and cost more than
    /// the rest of the scan.
    fn skip_string_rest(&mut self) -> Option<()> {
        let start = self.i;
        loop {
            let at = self.i + memchr(b'"', &self.b[self.i..])?;
            // Backslashes right before the quote, within the string (its opening quote is
            // not one, so the count stops there at the latest).
            let backslashes = self.b[start..at]
                .iter()
                .rev()
                .take_while(|&&c| c == b'\\')
                .count();
            self.i = at + 1;
            if backslashes % 2 == 0 {
                return Some(());
            }
        }
    }

    /// Past one value of any kind.
    fn value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => {
                self.i += 1;
                self.skip_string_rest()
            }
            b'{' | b'[' => self.nested(depth),
            _ => {
                // A number, `true`, `false` or `null`: up to the next delimiter.
                let start = self.i;
                while let Some(c) = self.peek() {
                    if matches!(c, b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t') {
                        break;
                    }
                    self.i += 1;
                }
                (self.i > start).then_some(())
            }
        }
    }

    /// Past an object or array, counting brackets and skipping strings whole. Only bracket
    /// balance is checked inside: the prefix is hashed, not interpreted.
    fn nested(&mut self, depth: usize) -> Option<()> {
        let mut level = 0usize;
        loop {
            match self.next()? {
                b'"' => self.skip_string_rest()?,
                b'{' | b'[' => {
                    level += 1;
                    if depth + level > MAX_DEPTH {
                        return None;
                    }
                }
                b'}' | b']' => {
                    level -= 1;
                    if level == 0 {
                        return Some(());
                    }
                }
                _ => {}
            }
        }
    }

    /// The conversation's stable part: the bytes of its first elements as `rule` says, read
    /// from the cursor, which ends past the whole value.
    fn turns(&mut self, rule: Rule) -> Option<&'b [u8]> {
        let start = self.i;
        if self.peek()? != b'[' {
            // Not an array (the Responses API's `input` may be a string): the value whole.
            self.value(0)?;
            return Some(&self.b[start..self.i]);
        }
        self.i += 1;
        self.ws();
        let first = self.i;
        let mut end = None;
        if self.peek()? != b']' {
            loop {
                let is_user = self.element(rule)?;
                if end.is_none() && (rule == Rule::FirstItem || is_user) {
                    end = Some(self.i);
                }
                self.ws();
                match self.next()? {
                    b',' => self.ws(),
                    b']' => break,
                    _ => return None,
                }
            }
        } else {
            self.i += 1;
        }
        // No user turn at all: the whole conversation is the prefix.
        let end = end.unwrap_or(self.i.saturating_sub(1).max(first));
        Some(&self.b[first..end])
    }

    /// Past one conversation element; whether it is a user turn (read only for `UpToUser`).
    fn element(&mut self, rule: Rule) -> Option<bool> {
        if rule == Rule::FirstItem || self.peek()? != b'{' {
            self.value(1)?;
            return Some(false);
        }
        self.i += 1;
        self.ws();
        let mut role = None;
        if self.peek()? == b'}' {
            self.i += 1;
            return Some(true);
        }
        loop {
            let key = self.string()?;
            self.ws();
            self.expect(b':')?;
            self.ws();
            if key == b"role" && self.peek()? == b'"' {
                role = Some(self.string()?);
            } else {
                self.value(2)?;
            }
            self.ws();
            match self.next()? {
                b',' => self.ws(),
                b'}' => break,
                _ => return None,
            }
        }
        Some(role.is_none_or(|r| r == b"user"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(api: Api, body: &str) -> Option<u64> {
        prefix_hash(api, body.as_bytes())
    }

    #[test]
    fn openai_chat_prefix_is_system_tools_and_first_user_message() {
        let tools = r#""tools":[{"type":"function","function":{"name":"f","parameters":{}}}]"#;
        let a = format!(
            r#"{{"model":"gpt-4o",{tools},"messages":[{{"role":"system","content":"S"}},{{"role":"user","content":"U1"}}]}}"#
        );
        let b = format!(
            r#"{{"messages":[{{"role":"system","content":"S"}},{{"role":"user","content":"U1"}},{{"role":"assistant","content":"A"}},{{"role":"user","content":"U2"}}],"stream":true,{tools},"model":"gpt-4o-mini"}}"#
        );
        assert_eq!(h(Api::OpenAi, &a), h(Api::OpenAi, &b));
        assert!(h(Api::OpenAi, &a).is_some());
        // Another system prompt, first user message or tool list is another prefix.
        let c = a.replace(r#""S""#, r#""S2""#);
        let d = a.replace(r#""U1""#, r#""U9""#);
        let e = a.replace(r#""name":"f""#, r#""name":"g""#);
        for other in [c, d, e] {
            assert_ne!(h(Api::OpenAi, &a), h(Api::OpenAi, &other), "{other}");
        }
    }

    #[test]
    fn responses_prefix_is_instructions_tools_and_first_input_item() {
        let a = r#"{"instructions":"Be brief.","input":[{"role":"user","content":"Hi"}]}"#;
        let b = r#"{"input":[{"role":"user","content":"Hi"},{"type":"function_call_output","call_id":"c","output":"x"}],"instructions":"Be brief."}"#;
        assert_eq!(h(Api::OpenAi, a), h(Api::OpenAi, b));
        let s = r#"{"instructions":"Be brief.","input":"Hi"}"#;
        let t = r#"{"instructions":"Be brief.","input":"Bye"}"#;
        assert!(h(Api::OpenAi, s).is_some());
        assert_ne!(h(Api::OpenAi, s), h(Api::OpenAi, t));
    }

    #[test]
    fn anthropic_and_gemini_prefixes() {
        let a = r#"{"system":"S","messages":[{"role":"user","content":"U"}],"max_tokens":10}"#;
        let b = r#"{"system":"S","messages":[{"role":"user","content":"U"},{"role":"assistant","content":"A"},{"role":"user","content":"V"}],"max_tokens":99}"#;
        assert_eq!(h(Api::Anthropic, a), h(Api::Anthropic, b));
        assert_ne!(
            h(Api::Anthropic, a),
            h(Api::Anthropic, &a.replace("\"S\"", "\"T\""))
        );
        let g = r#"{"systemInstruction":{"parts":[{"text":"S"}]},"contents":[{"role":"user","parts":[{"text":"U"}]}]}"#;
        let g2 = r#"{"contents":[{"role":"user","parts":[{"text":"U"}]},{"role":"model","parts":[{"text":"A"}]},{"role":"user","parts":[{"text":"V"}]}],"systemInstruction":{"parts":[{"text":"S"}]},"generationConfig":{"temperature":1}}"#;
        assert_eq!(h(Api::Gemini, g), h(Api::Gemini, g2));
        // A content without a role is the user's.
        let bare = r#"{"contents":[{"parts":[{"text":"U"}]},{"parts":[{"text":"V"}]}]}"#;
        let bare2 = r#"{"contents":[{"parts":[{"text":"U"}]}]}"#;
        assert_eq!(h(Api::Gemini, bare), h(Api::Gemini, bare2));
    }

    #[test]
    fn escapes_nesting_and_look_alike_keys_are_handled() {
        // A quote and a bracket inside strings, and a `"messages"` key inside a tool schema.
        let a = r#"{"tools":[{"parameters":{"messages":{"type":"array"}}}],"messages":[{"role":"system","content":"say \"]}\" \\"},{"role":"user","content":"x"}]}"#;
        let b = a.replace(
            r#""content":"x"}]"#,
            r#""content":"x"},{"role":"user","content":"y"}]"#,
        );
        assert_eq!(h(Api::OpenAi, a), h(Api::OpenAi, &b));
        assert!(h(Api::OpenAi, a).is_some());
    }

    #[test]
    fn bad_input_gives_none_never_a_panic() {
        let cases = [
            "",
            "[]",
            "{}",
            r#"{"model":"gpt-4o"}"#,
            r#"{"messages":"#,
            r#"{"messages":[{"role":"user","content":"x"#,
            r#"{"messages":[{"role":"user","content":"x\"#,
            r#"{"messages":[{"role":"user" "content":"x"}]}"#,
            r#"{"messages":[1,2,}"#,
            "{\"tools\":[[[[[[[",
            "\"just a string\"",
        ];
        for body in cases {
            assert_eq!(h(Api::OpenAi, body), None, "{body}");
        }
        let deep = format!("{{\"tools\":{}{}}}", "[".repeat(500), "]".repeat(500));
        assert_eq!(h(Api::OpenAi, &deep), None);
        // Every cut of a valid body is handled.
        let full =
            r#"{"system":"S","tools":[{"name":"t"}],"messages":[{"role":"user","content":"U"}]}"#;
        for n in 0..full.len() {
            let _ = h(Api::Anthropic, &full[..n]);
        }
    }

    #[test]
    fn the_hash_is_fixed_across_versions() {
        // A change of this value moves every prefix to another key in every fleet: it must
        // never change by accident.
        let body =
            r#"{"messages":[{"role":"system","content":"S"},{"role":"user","content":"U"}]}"#;
        assert_eq!(h(Api::OpenAi, body), Some(EXPECTED));
    }

    const EXPECTED: u64 = 0xae10_e58f_0c7a_629c;
}
