//! A scriptable mock of AI provider APIs, for tests, examples and load benchmarks.
//!
//! Real providers are out of reach in tests, so this crate plays them on `127.0.0.1`,
//! speaking each one's documented protocol closely enough for the official SDKs to parse it
//! (checked with `openai` 3.57, `anthropic` 2.13 and `google-genai` 3.6 for Python; see
//! `tests/sdk_smoke.py`). A test holds the [`Script`] and decides, per key, what the
//! "provider" answers; the mock records what it received.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use mock_upstream::{Behavior, Config, MockUpstream, Rule};
//! # use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! # async fn post(mock: &MockUpstream, key: &str) -> std::io::Result<String> {
//! #     let mut s = tokio::net::TcpStream::connect(mock.addr()).await?;
//! #     let body = r#"{"model":"gpt-4o-mini","messages":[]}"#;
//! #     let req = format!("POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\
//! #         authorization: Bearer {key}\r\ncontent-length: {}\r\n\r\n{body}", body.len());
//! #     s.write_all(req.as_bytes()).await?;
//! #     let mut out = String::new();
//! #     s.read_to_string(&mut out).await?;
//! #     Ok(out)
//! # }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let mock = MockUpstream::start(Config::new()).await?;
//! // The first request with this key is rate limited, the next ones succeed.
//! mock.script()
//!     .add(Rule::key("sk-a", Behavior::rate_limited(Duration::from_millis(3202))).once());
//!
//! // Point the code under test at `mock.base_url()` (OpenAI SDKs: `{base_url}/v1`).
//! let first = post(&mock, "sk-a").await?;
//! assert!(first.starts_with("HTTP/1.1 429"));
//! assert!(first.contains("Please try again in 3.202s."));
//! let second = post(&mock, "sk-a").await?;
//! assert!(second.starts_with("HTTP/1.1 200"));
//!
//! assert_eq!(mock.count_for_key("sk-a"), 2);
//! assert_eq!(mock.requests()[0].header("authorization"), Some("Bearer sk-a"));
//! mock.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Routes
//!
//! | dialect | credential | routes |
//! |---|---|---|
//! | OpenAI and compatibles | `Authorization: Bearer` | `POST /v1/chat/completions`, `POST /v1/responses`, `GET /v1/models` |
//! | Azure OpenAI | `api-key` (or bearer) | `/openai/deployments/{d}/chat/completions`, `/openai/v1/...` |
//! | Anthropic | `x-api-key` (or bearer), `anthropic-version` required | `POST /v1/messages`, `GET /v1/models` |
//! | Gemini | `x-goog-api-key` or `?key=` | `POST /v1beta/models/{m}:generateContent`, `:streamGenerateContent[?alt=sse]`, `GET /v1beta/models[/{m}]`, `GET /v1/models` |
//!
//! Streaming follows the request (`"stream": true`, or Gemini's stream method). A request
//! without its dialect's credential gets the dialect's invalid-key answer; an unknown route a
//! 404; an Anthropic request without `anthropic-version` a 400. These do not use up script
//! rules. Everything else answers as the [`Script`] says, [`Behavior::Ok`] by default.
//!
//! # Shape of the crate
//!
//! The library takes its listener and shutdown from the caller ([`MockUpstream::start_on`],
//! [`run`]); `src/main.rs` only parses arguments. `route` recognises dialect, operation and
//! key; `script` picks a behaviour; `reply/` writes it in the dialect (one file per
//! provider family); `record` keeps the log. Time is the real clock here on purpose: the
//! mock plays a remote server, and its delays exist to exercise real timeouts.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

mod body;
mod config;
mod record;
mod reply;
mod route;
mod script;
mod server;
mod service;
mod time;

pub use config::Config;
pub use record::{RecordedRequest, Recording};
pub use route::Dialect;
pub use script::{Behavior, Rule, Script};
pub use server::{MockUpstream, run};
