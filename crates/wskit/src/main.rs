//! `wskit`: the command-line face of the wskit crates.
//!
//! The binary holds no protocol logic: each subcommand is one module under `cmd/` that turns flags (and
//! `--config wskit.toml` where offered) into a library `Config` and calls the library.

mod cmd;
mod files;
mod frame_log;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::{Layer as _, layer::SubscriberExt as _, util::SubscriberInitExt as _};

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

// Parsed once at start-up: a variant's size costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
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
    /// Checks a TURN server: allocate, permission, send, receive, refresh, release.
    TurnClient(cmd::turn_client::Args),
    /// Writes a self-signed certificate and key for development TLS (`serve`, `client`).
    Cert(cmd::cert::Args),
    /// Signs and verifies JSON Web Tokens.
    Jwt(cmd::jwt::Args),
    /// Manages the OAuth2 server's apps and users (`serve --oauth2`); gets tokens as an OAuth2
    /// client (`oauth2 token ...`).
    Oauth2(cmd::oauth2::Args),
    /// Manages API keys for `serve --api-keys FILE`: `apikey add NAME | list | revoke ID | remove ID`.
    Apikey(cmd::apikey::Args),
    /// MQTT client with mosquitto_sub / mosquitto_pub flags: `mqtt sub URL -t F`, `mqtt pub URL -t T -m M`.
    Mqtt(cmd::mqtt::Args),
    /// Sends and receives files over the wskit files protocol: `files send URL FILE...`,
    /// `files receive URL --dir D`.
    Files(files::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(&e),
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cli.log));
    let frames = match &cli.command {
        Command::Serve(a) => Some(&a.frame_log),
        Command::Client(a) => Some(&a.frame_log),
        _ => None,
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    match frame_log::layer(frames)? {
        // The usual case: one subscriber whose filter is global, so the level hint lets every
        // trace and debug call site in the hot paths be skipped by a static check. (A per-layer
        // filter here made each of them ask the subscriber, and cost the echo benchmark a third
        // more server CPU per 16 KiB message.)
        None => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            // No colour codes in logs that go to a file or a pipe.
            .with_ansi(ansi)
            .init(),
        // --log-frames: stderr keeps its filter, the file takes only the frame log target.
        Some(frames) => tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(ansi)
                    .with_filter(filter),
            )
            .with(frames)
            .init(),
    }
    match cli.command {
        Command::Serve(args) => cmd::serve::run(args),
        Command::Bench(args) => cmd::bench::run(args),
        Command::Client(args) => block_on(cmd::client::run(args)),
        Command::Proxy(args) => cmd::proxy::main(args),
        Command::Turn(args) => block_on(cmd::turn::run(args)),
        Command::Stun(args) => block_on(cmd::stun::run(args)),
        Command::StunClient(args) => block_on(cmd::stun_client::run(args)),
        Command::TurnClient(args) => block_on(cmd::turn_client::run(args)),
        Command::Cert(args) => cmd::cert::run(&args),
        Command::Jwt(args) => cmd::jwt::run(args),
        Command::Oauth2(args) => cmd::oauth2::run(args),
        Command::Apikey(args) => cmd::apikey::run(args),
        Command::Mqtt(args) => block_on(cmd::mqtt::run(args)),
        Command::Files(args) => files::run(args),
    }
}

/// Ends the process with this status without printing anything more: the subcommand already
/// said why (e.g. `client`'s "closed: 1006 ..." line).
#[derive(Debug)]
pub(crate) struct Exit(pub(crate) u8);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit status {}", self.0)
    }
}

impl std::error::Error for Exit {}

/// Prints an error as `error: ...` and one `caused by: ...` line per further cause, leaving out
/// causes whose text the line before already shows; never a backtrace (these are user errors,
/// whatever RUST_BACKTRACE says). Exit status 1.
fn report(e: &anyhow::Error) -> ExitCode {
    if let Some(Exit(code)) = e.downcast_ref::<Exit>() {
        return ExitCode::from(*code);
    }
    for line in error_lines(e) {
        eprintln!("{line}");
    }
    ExitCode::FAILURE
}

fn error_lines(e: &anyhow::Error) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut last = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || last.contains(&text) {
            continue;
        }
        let prefix = if lines.is_empty() {
            "error: "
        } else {
            "caused by: "
        };
        lines.push(format!("{prefix}{text}"));
        last = text;
    }
    lines
}

/// Runs an async subcommand on a multi-thread runtime. Once it returned, the runtime is shut
/// down without waiting: a blocking read of stdin (`client`) may never end by itself.
pub(crate) fn block_on(fut: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    let result = rt.block_on(fut);
    rt.shutdown_background();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_already_shown_are_left_out() {
        let inner = std::io::Error::other("tls handshake eof");
        let e = anyhow::Error::new(inner)
            .context("TLS handshake: tls handshake eof")
            .context("connecting to wss://h/");
        assert_eq!(
            error_lines(&e),
            [
                "error: connecting to wss://h/",
                "caused by: TLS handshake: tls handshake eof"
            ]
        );
    }
}
