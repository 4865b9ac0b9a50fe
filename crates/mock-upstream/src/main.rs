//! `mock-upstream --listen ADDR [--fast]`: the mock as a process, for SDK checks and wrk.

use std::process::ExitCode;

use mock_upstream::Config;
use tokio::net::TcpListener;

const USAGE: &str = "usage: mock-upstream [--listen ADDR] [--fast]

  --listen ADDR  address to listen on (default 127.0.0.1:9000)
  --fast         answer every request with one fixed OpenAI chat completion, record nothing
                 (for load benchmarks); without it every provider dialect is answered";

#[tokio::main]
async fn main() -> ExitCode {
    let mut listen = "127.0.0.1:9000".to_owned();
    let mut config = Config::new().recording(mock_upstream::Recording::Off);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => match args.next() {
                Some(addr) => listen = addr,
                None => return usage_error("--listen needs an address"),
            },
            "--fast" => config = Config::fast(),
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
    eprintln!("mock-upstream: listening on {listen}");
    // No shutdown future: the process ends when it is signalled, and it holds nothing that
    // would need a clean close.
    match mock_upstream::run(listener, config, std::future::pending()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mock-upstream: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("mock-upstream: {message}\n{USAGE}");
    ExitCode::from(2)
}
