//! A scriptable mock of AI provider APIs, for tests, examples and load benchmarks.
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
