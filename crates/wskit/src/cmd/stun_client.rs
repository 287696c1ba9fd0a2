//! `wskit stun-client HOST:PORT`: prints this host's reflexive address as a STUN server sees it.

use anyhow::{Context, Result};
use tokio::net::lookup_host;

/// Flags of `wskit stun-client`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// STUN server, e.g. stun.example.org:3478.
    #[arg(value_name = "HOST:PORT")]
    pub(crate) server: String,
    /// Use TCP instead of UDP.
    #[arg(long)]
    pub(crate) tcp: bool,
}

/// Sends one Binding request and prints the reflexive address.
pub(crate) async fn run(args: Args) -> Result<()> {
    let server = lookup_host(&args.server)
        .await
        .with_context(|| format!("resolving {}", args.server))?
        .next()
        .with_context(|| format!("{} has no address", args.server))?;
    let addr = stun_turn::net::stun_binding(server, args.tcp)
        .await
        .with_context(|| format!("Binding request to {server}"))?;
    println!("{addr}");
    Ok(())
}
