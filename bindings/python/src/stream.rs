//! Watching a successful event stream for an error event that arrives after the 200 (an
//! Anthropic `event: error`, an OpenAI or Gemini error chunk), so the key's state learns of
//! it as it does through the gateway. The transports pass every chunk through unchanged and
//! feed it here; the verdict is applied with the core's `report`.

use std::sync::Mutex;

use ai_key_rotator::classify::{Family, classify_stream_event};
use ai_key_rotator::{Credential, KeyRotator};
use pyo3::prelude::*;

/// The most of one event kept for classification; error events are far smaller.
const MAX_EVENT: usize = 64 * 1024;

/// Splits a server-sent event stream into events (the `event:` name and the `data:`
/// payload). The same rules as the gateway's scanner (`proxy/body.rs`).
#[derive(Debug, Default)]
struct Scanner {
    line: Vec<u8>,
    event: Option<String>,
    data: Vec<u8>,
}

impl Scanner {
    fn feed(&mut self, mut bytes: &[u8], on_event: &mut impl FnMut(Option<&str>, &[u8])) {
        while let Some(i) = bytes.iter().position(|&b| b == b'\n') {
            self.push(&bytes[..i]);
            bytes = &bytes[i + 1..];
            let line = std::mem::take(&mut self.line);
            self.line_done(&line, on_event);
            self.line = line;
            self.line.clear();
        }
        self.push(bytes);
    }

    fn push(&mut self, part: &[u8]) {
        let room = MAX_EVENT.saturating_sub(self.line.len());
        self.line.extend_from_slice(&part[..part.len().min(room)]);
    }

    fn line_done(&mut self, line: &[u8], on_event: &mut impl FnMut(Option<&str>, &[u8])) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            if !self.data.is_empty() || self.event.is_some() {
                on_event(self.event.as_deref(), &self.data);
            }
            self.event = None;
            self.data.clear();
        } else if let Some(v) = line.strip_prefix(b"event:") {
            self.event = Some(String::from_utf8_lossy(v.trim_ascii()).into_owned());
        } else if let Some(v) = line.strip_prefix(b"data:") {
            if !self.data.is_empty() {
                self.data.push(b'\n');
            }
            let v = v.strip_prefix(b" ").unwrap_or(v);
            let room = MAX_EVENT.saturating_sub(self.data.len());
            self.data.extend_from_slice(&v[..v.len().min(room)]);
        }
    }

    fn finish(&mut self, on_event: &mut impl FnMut(Option<&str>, &[u8])) {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.line_done(&line, on_event);
        }
        self.line_done(b"", on_event);
    }
}

/// Watches one response's event stream on behalf of the credential that sent the request.
#[pyclass(module = "ai_key_rotator._native", name = "StreamWatch", frozen)]
#[derive(Debug)]
pub(crate) struct PyStreamWatch {
    rotator: KeyRotator,
    credential: Credential,
    family: Family,
    scanner: Mutex<Option<Scanner>>,
}

impl PyStreamWatch {
    pub(crate) fn new(rotator: KeyRotator, credential: Credential) -> Self {
        let family = rotator
            .family(credential.provider())
            .unwrap_or(Family::OpenAiCompatible);
        PyStreamWatch {
            rotator,
            credential,
            family,
            scanner: Mutex::new(Some(Scanner::default())),
        }
    }

    fn with_scanner(&self, f: impl FnOnce(&mut Scanner, &mut dyn FnMut(Option<&str>, &[u8]))) {
        let mut guard = self.scanner.lock().unwrap_or_else(|e| e.into_inner());
        let Some(scanner) = guard.as_mut() else {
            return;
        };
        let mut on_event = |event: Option<&str>, data: &[u8]| {
            let now = self.rotator.now();
            if let Some(verdict) = classify_stream_event(self.family, event, data, now) {
                self.rotator.report(&self.credential, &verdict);
            }
        };
        f(scanner, &mut on_event);
    }
}

#[pymethods]
impl PyStreamWatch {
    /// Reads a chunk of the stream (as it passes through).
    fn feed(&self, chunk: &[u8]) {
        self.with_scanner(|s, on_event| s.feed(chunk, &mut |e, d| on_event(e, d)));
    }

    /// The stream ended: an event without its final blank line still counts.
    fn finish(&self) {
        self.with_scanner(|s, on_event| s.finish(&mut |e, d| on_event(e, d)));
        *self.scanner.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}
