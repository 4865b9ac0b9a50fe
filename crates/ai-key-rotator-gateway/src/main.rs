//! `ai-key-rotator`: the command line. Parses arguments, installs logging and signal handlers,
//! and calls the library; nothing else lives here.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use ai_key_rotator_gateway::config::{ClientSettings, ConfigFileError, LogFormat};
use ai_key_rotator_gateway::{Gateway, GatewayConfig, check};
use clap::{Parser, Subcommand};
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

/// Rotate API keys across AI providers.
#[derive(Parser)]
#[command(name = "ai-key-rotator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How log lines are written to stderr; `serve` also reads `log_format` from its
    /// configuration file. `text` by default.
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormatArg>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway: an OpenAI / Anthropic / Gemini proxy that rotates keys.
    Serve {
        /// The configuration file.
        #[arg(long, short, default_value = "rotator.toml")]
        config: PathBuf,
        /// Listen here instead of the configuration's `listen`.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Show a running gateway's keys and their state.
    Status {
        /// The configuration file (for the address and a client token).
        #[arg(long, short, default_value = "rotator.toml")]
        config: PathBuf,
        /// The gateway's base URL, instead of the configuration's `listen`.
        #[arg(long)]
        url: Option<String>,
        /// Print the JSON as the gateway sends it.
        #[arg(long)]
        json: bool,
    },
    /// A gateway in front of mock providers with scripted keys, and a little traffic: see
    /// rotation, cooldowns and the dashboard without a real key.
    #[cfg(feature = "demo")]
    Demo {
        /// Where the gateway listens.
        #[arg(long, default_value = "127.0.0.1:8787")]
        listen: std::net::SocketAddr,
        /// Send no traffic of its own.
        #[arg(long)]
        quiet: bool,
    },
    /// Validate a configuration; with --probe, ask each provider whether each key works.
    Check {
        /// The configuration file.
        #[arg(long, short, default_value = "rotator.toml")]
        config: PathBuf,
        /// Send one model-list request per key.
        #[arg(long)]
        probe: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = match (cli.log_format, &cli.command) {
        (Some(f), _) => matches!(f, LogFormatArg::Json),
        (None, Command::Serve { config, .. }) => {
            LogFormat::of_file(config) == Some(LogFormat::Json)
        }
        _ => false,
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        // One object per line, fields flattened as collectors expect; never coloured.
        logs.json().flatten_event(true).with_ansi(false).init();
    } else {
        // Colour codes only for a person at a terminal: in a file or a log collector they
        // are noise that breaks every search for `field=value`.
        logs.with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
            .init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(&format!("cannot start the runtime: {e}")),
    };
    runtime.block_on(async {
        match cli.command {
            Command::Serve { config, listen } => serve(config, listen).await,
            Command::Status { config, url, json } => status(config, url, json).await,
            Command::Check { config, probe } => check_config(config, probe).await,
            #[cfg(feature = "demo")]
            Command::Demo { listen, quiet } => demo(listen, quiet).await,
        }
    })
}

fn fail(message: &str) -> ExitCode {
    eprintln!("ai-key-rotator: {message}");
    ExitCode::FAILURE
}

fn load(path: &std::path::Path) -> Result<GatewayConfig, ExitCode> {
    match GatewayConfig::load(path) {
        Ok((config, warnings)) => {
            for w in warnings {
                tracing::warn!("{w}");
            }
            Ok(config)
        }
        Err(e) => Err(fail(&format!("{}: {e}", path.display()))),
    }
}

async fn serve(path: PathBuf, listen: Option<std::net::SocketAddr>) -> ExitCode {
    let config = match load(&path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let addr = listen.unwrap_or(config.listen());
    // Refused before anything is opened or bound; `check` reports the same list.
    if let Some(e) = check::refusals(&config, addr).into_iter().next() {
        return fail(&e.to_string());
    }
    // Opening loads the state store (SQLite, or Redis waited for): on a blocking thread.
    let gateway = match Gateway::open(config).await {
        Ok(g) => g,
        Err(e) => return fail(&e.to_string()),
    };
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => return fail(&format!("cannot listen on {addr}: {e}")),
    };
    let local = listener.local_addr().map_or(addr, |a| a);
    tracing::info!(addr = %local, "gateway listening");
    // Tests and scripts read the port from this line when they ask for port 0.
    println!("listening on {local}");

    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        return fail("cannot install signal handlers");
    };
    let reloader = gateway.clone();
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!(config = %path.display(), "SIGHUP: reloading");
            // Reading files (the configuration, `{ file = … }` secrets) and building the TLS
            // client block: not on a runtime worker.
            let (path, reloader) = (path.clone(), reloader.clone());
            let reloaded = tokio::task::spawn_blocking(move || {
                let (config, warnings) = GatewayConfig::load(&path).map_err(|e| e.to_string())?;
                for w in warnings {
                    tracing::warn!("{w}");
                }
                reloader.reload(config).map_err(|e| e.to_string())
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
            match reloaded {
                Ok(changes) => {
                    for change in &changes {
                        match change {
                            ai_key_rotator_gateway::ReloadChange::NeedsRestart { .. } => {
                                tracing::warn!("reload: {change}")
                            }
                            _ => tracing::info!("reload: {change}"),
                        }
                    }
                    tracing::info!(changes = changes.len(), "configuration reloaded");
                }
                Err(e) => {
                    tracing::error!(error = %e, "reload failed; keeping the running configuration")
                }
            }
        }
    });
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("shutdown requested");
    };
    match gateway.serve(listener, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e.to_string()),
    }
}

#[cfg(feature = "demo")]
async fn demo(listen: std::net::SocketAddr, quiet: bool) -> ExitCode {
    use ai_key_rotator_gateway::demo::Demo;
    if !listen.ip().is_loopback() {
        return fail("the demo listens on loopback only");
    }
    let listener = match TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            return fail(&format!(
                "cannot listen on {listen}: {e} (try --listen 127.0.0.1:0)"
            ));
        }
    };
    let demo = match Demo::start(listener, !quiet).await {
        Ok(d) => d,
        Err(e) => return fail(&e.to_string()),
    };
    // Tests and scripts read the port from this line when they ask for port 0.
    println!("listening on {}", demo.url.trim_start_matches("http://"));
    println!("{}", demo.banner());
    let _ = tokio::signal::ctrl_c().await;
    match demo.stop().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e.to_string()),
    }
}

async fn status(path: PathBuf, url: Option<String>, json: bool) -> ExitCode {
    // Only the address and a client token are read: the providers' keys (and the environment
    // variables holding them) are the gateway's business, not its client's.
    let client = match ClientSettings::load(&path) {
        Ok(c) => Some(c),
        // With `--url`, a missing file only means no token: an open gateway still answers.
        Err(ConfigFileError::Read { .. }) if url.is_some() => None,
        Err(e) => return fail(&format!("{}: {e}", path.display())),
    };
    let Some(base) = url.or_else(|| client.as_ref().map(|c| format!("http://{}", c.listen))) else {
        return fail("no --url, and no configuration file to read the address from");
    };
    let mut req = reqwest::Client::new().get(format!("{}/status", base.trim_end_matches('/')));
    if let Some(t) = client.as_ref().and_then(ClientSettings::token) {
        req = req.bearer_auth(t);
    }
    let body = match req.send().await {
        Ok(r) if r.status().is_success() => r.text().await.unwrap_or_default(),
        Ok(r) => return fail(&format!("{base}/status answered {}", r.status())),
        Err(e) => {
            // No gateway running: read what the state store remembers instead, which needs
            // the whole configuration.
            eprintln!(
                "ai-key-rotator: cannot reach {base} ({}); reading the state store",
                e.without_url()
            );
            let config = match load(&path) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let opened = tokio::task::spawn_blocking(move || {
                Gateway::new(config).map(|g| {
                    let body = g.status_json().to_string();
                    g.rotator().shutdown();
                    body
                })
            })
            .await;
            match opened {
                Ok(Ok(body)) => body,
                Ok(Err(e)) => return fail(&e.to_string()),
                Err(e) => return fail(&format!("reading the state store failed: {e}")),
            }
        }
    };
    if json {
        println!("{body}");
        return ExitCode::SUCCESS;
    }
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&body) else {
        return fail("the gateway's /status is not JSON");
    };
    println!(
        "{:16} {:20} {:17} {:10} {:25} {:>8} {:>9}",
        "PROVIDER", "LABEL", "FINGERPRINT", "STATE", "UNTIL", "USED", "EXHAUSTED"
    );
    for p in v["providers"].as_array().into_iter().flatten() {
        for c in p["credentials"].as_array().into_iter().flatten() {
            println!(
                "{:16} {:20} {:17} {:10} {:25} {:>8} {:>9}",
                p["name"].as_str().unwrap_or(""),
                c["label"].as_str().unwrap_or("-"),
                c["fingerprint"].as_str().unwrap_or(""),
                c["state"].as_str().unwrap_or(""),
                c["until"].as_str().unwrap_or("-"),
                c["times_used"].as_u64().unwrap_or(0),
                c["times_exhausted"].as_u64().unwrap_or(0),
            );
        }
    }
    ExitCode::SUCCESS
}

async fn check_config(path: PathBuf, probe: bool) -> ExitCode {
    let config = match load(&path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let keys: usize = config.providers().iter().map(|p| p.keys()).sum();
    let refusals = check::refusals(&config, config.listen());
    if !refusals.is_empty() {
        for r in &refusals {
            eprintln!("ai-key-rotator: {}: {r}", path.display());
        }
        return fail(&format!(
            "{}: `serve` would refuse this configuration",
            path.display()
        ));
    }
    println!(
        "{}: ok ({} providers, {keys} keys)",
        path.display(),
        config.providers().len()
    );
    if !probe {
        return ExitCode::SUCCESS;
    }
    match check::probe(&config).await {
        Ok(rows) => {
            print!("{}", check::table(&rows));
            if rows
                .iter()
                .all(|r| r.status.is_some_and(|s| (200..300).contains(&s)))
            {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => fail(&e.to_string()),
    }
}
