//! Black-box tests of the core rotator, one module per area.

mod concurrency;
mod config;
mod events;
mod get_key;
mod membership;
mod persistence;
mod policies;
mod report;
mod secrets;
mod support;
