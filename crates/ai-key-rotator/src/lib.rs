//! Rotate API keys across AI providers.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

pub mod classify;
mod clock;

pub use clock::{Clock, FakeClock, SystemClock, Timestamp};
