//! `mock-upstream --listen ADDR [--fast] [--on-key KEY=BEHAVIOR]…`: the mock as a process, for
//! SDK checks and wrk, and for tests in other languages (the Node package's), which script it
//! with `--on-key` since they cannot hold its `Script`.

use std::process::ExitCode;
use std::time::Duration;

use mock_upstream::{Behavior, Config, MockUpstream};
use tokio::net::TcpListener;

const USAGE: &str = "usage: mock-upstream [--listen ADDR] [--fast] [--on-key KEY=BEHAVIOR]...

  --listen ADDR         address to listen on (default 127.0.0.1:9000; port 0 picks a free one,
                        printed as `mock-upstream: listening on ADDR` on stderr)
  --fast                answer every request with one fixed OpenAI chat completion, record
                        nothing (for load benchmarks); without it every provider dialect is
                        answered
  --on-key KEY=BEHAVIOR answer every request made with KEY so; BEHAVIOR is one of ok,
                        rate-limited:MS, rate-limited-for:MODEL:MS, insufficient-quota,
                        spend-cap, invalid-key, overloaded, server-error, region-blocked,
                        stream-error-at-start, stream-error-midway, close-connection,
                        stream-broken-at-start";

/// A `--on-key` behaviour by name.
fn behavior(name: &str) -> Option<Behavior> {
    Some(match name {
        "ok" => Behavior::Ok,
        "insufficient-quota" => Behavior::InsufficientQuota,
        "spend-cap" => Behavior::SpendCap,
        "invalid-key" => Behavior::InvalidKey,
        "overloaded" => Behavior::Overloaded,
        "server-error" => Behavior::ServerError,
        "region-blocked" => Behavior::RegionBlocked,
        _ if name.starts_with("rate-limited-for:") => {
            let (model, ms) = name["rate-limited-for:".len()..].rsplit_once(':')?;
            Behavior::RateLimitedFor {
                model: model.to_owned(),
                retry_after: Duration::from_millis(ms.parse().ok()?),
            }
        }
        "stream-error-at-start" => Behavior::StreamErrorAtStart,
        "stream-error-midway" => Behavior::StreamErrorMidway,
        "close-connection" => Behavior::CloseConnection,
        "stream-broken-at-start" => Behavior::StreamBrokenAtStart,
        _ => {
            let ms = name.strip_prefix("rate-limited:")?.parse().ok()?;
            Behavior::rate_limited(Duration::from_millis(ms))
        }
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut listen = "127.0.0.1:9000".to_owned();
    let mut config = Config::new().recording(mock_upstream::Recording::Off);
    let mut rules = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => match args.next() {
                Some(addr) => listen = addr,
                None => return usage_error("--listen needs an address"),
            },
            "--fast" => config = Config::fast(),
            "--on-key" => match args.next().as_deref().and_then(|r| r.split_once('=')) {
                Some((key, name)) => match behavior(name) {
                    Some(b) => rules.push((key.to_owned(), b)),
                    None => return usage_error(&format!("unknown behavior {name}")),
                },
                None => return usage_error("--on-key needs KEY=BEHAVIOR"),
            },
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => return usage_error(&format!("unknown argument {other}")),
        }
    }
    let listener = match TcpListener::bind(&listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("mock-upstream: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("mock-upstream: {e}");
            return ExitCode::FAILURE;
        }
    };
    // No shutdown future: the process ends when it is signalled, and it holds nothing that
    // would need a clean close.
    let mock = match MockUpstream::start_on(listener, config, std::future::pending()) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("mock-upstream: {e}");
            return ExitCode::FAILURE;
        }
    };
    for (key, behavior) in rules {
        mock.script().on_key(key, behavior);
    }
    eprintln!("mock-upstream: listening on {addr}");
    std::future::pending::<()>().await;
    ExitCode::SUCCESS
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("mock-upstream: {message}\n{USAGE}");
    ExitCode::from(2)
}
