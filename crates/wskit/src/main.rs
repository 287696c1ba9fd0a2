//! `wskit`: the command-line face of the wskit crates.
//!
//! The binary holds no protocol logic: each subcommand is one module under `cmd/` that turns flags (and
//! `--config wskit.toml` where offered) into a library `Config` and calls the library.

mod cmd;

use clap::{Parser, Subcommand};

/// Protocol layers for real-time systems: WebSocket, HTTP, STUN/TURN and more.
#[derive(Debug, Parser)]
#[command(name = "wskit", version, about, long_about = None)]
struct Cli {
    /// Log filter, e.g. `info`, `debug`, `ws_server=trace` (or set RUST_LOG).
    #[arg(long, global = true, default_value = "info")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// WebSocket + HTTP server: test page at /, echo on /echo, chat on /chat, SSE on /sse,
    /// static files (--root) and uploads (--upload-dir); 127.0.0.1:8080 by default.
    Serve(cmd::serve::Args),
    /// WebSocket client on the terminal: stdin lines become messages, messages go to stdout.
    Client(cmd::client::Args),
    /// WebSocket-to-TCP bridge (websockify-compatible): browsers reach any TCP service.
    Proxy(cmd::proxy::Args),
    /// Echo load generator (the protocol of uWebSockets' load_test).
    Bench(cmd::bench::Args),
    /// TURN server (and STUN), with coturn-like flags.
    Turn(cmd::turn::Args),
    /// STUN-only server.
    Stun(cmd::stun::Args),
    /// Prints this host's reflexive address as a STUN server sees it.
    StunClient(cmd::stun_client::Args),
    /// Signs and verifies JSON Web Tokens.
    Jwt(cmd::jwt::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cli.log));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // No colour codes in logs that go to a file or a pipe.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match cli.command {
        Command::Serve(args) => cmd::serve::run(args),
        Command::Bench(args) => cmd::bench::run(args),
        Command::Client(args) => block_on(cmd::client::run(args)),
        Command::Proxy(args) => cmd::proxy::main(args),
        Command::Turn(args) => block_on(cmd::turn::run(args)),
        Command::Stun(args) => block_on(cmd::stun::run(args)),
        Command::StunClient(args) => block_on(cmd::stun_client::run(args)),
        Command::Jwt(args) => cmd::jwt::run(args),
    }
}

/// Runs an async subcommand on a multi-thread runtime.
fn block_on(fut: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()?.block_on(fut)
}
