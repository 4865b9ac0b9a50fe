//! How a mock is set up before it starts.

use crate::record::Recording;

/// The settings of a [`MockUpstream`](crate::MockUpstream).
///
/// ```
/// use mock_upstream::{Config, Recording};
///
/// let config = Config::new()
///     .recording(Recording::Last(100))
///     .reply(["Hi", " there", "."]);
/// # let _ = config;
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) recording: Recording,
    pub(crate) chunks: Vec<String>,
    pub(crate) fixed: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            recording: Recording::default(),
            chunks: ["Hello", " from", " the", " mock", " upstream."]
                .map(str::to_owned)
                .to_vec(),
            fixed: false,
        }
    }
}

impl Config {
    /// The default: every dialect answered, the last 10 000 requests recorded, reply
    /// "Hello from the mock upstream." in five chunks.
    pub fn new() -> Config {
        Config::default()
    }

    /// The load-benchmark mode: no recording, no script, no route recognition; every request
    /// gets the same small OpenAI chat completion, prepared once at start.
    pub fn fast() -> Config {
        Config {
            recording: Recording::Off,
            fixed: true,
            ..Config::default()
        }
    }

    /// Sets what is recorded.
    pub fn recording(mut self, recording: Recording) -> Config {
        self.recording = recording;
        self
    }

    /// Sets the assistant's reply as the chunks a stream sends, one text delta per chunk;
    /// a non-streaming reply is their concatenation.
    ///
    /// # Panics
    ///
    /// If `chunks` is empty: every provider's stream carries at least one text delta.
    pub fn reply<S: Into<String>>(mut self, chunks: impl IntoIterator<Item = S>) -> Config {
        let chunks: Vec<String> = chunks.into_iter().map(Into::into).collect();
        assert!(!chunks.is_empty(), "a reply needs at least one chunk");
        self.chunks = chunks;
        self
    }
}
