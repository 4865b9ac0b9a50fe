//! Black-box tests of the core rotator, one module per area.

mod affinity;
mod budgets;
mod circuit;
mod circuit_429;
mod concurrency;
mod config;
mod e2e;
mod events;
mod execute;
mod get_key;
mod membership;
mod models;
mod persistence;
mod policies;
mod recheck;
mod report;
mod secrets;
mod strategies;
mod support;
