//! Black-box tests of the core rotator, one module per area.

mod budgets;
mod concurrency;
mod config;
mod events;
mod execute;
mod get_key;
mod membership;
mod models;
mod persistence;
mod policies;
mod report;
mod secrets;
mod strategies;
mod support;
