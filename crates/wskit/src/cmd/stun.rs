//! `wskit stun`: a STUN-only server (Binding over UDP and TCP), coturn-like flags.

use std::net::SocketAddr;

use anyhow::Result;

/// Flags of `wskit stun`.
#[derive(Debug, Default, clap::Args)]
pub(crate) struct Args {
    /// Listening address for UDP and TCP (repeatable; a host name resolves).
    /// Default: 127.0.0.1:3478.
    #[arg(long = "listen", value_name = "HOST:PORT", value_parser = super::listen_addr)]
    pub(crate) listen: Vec<SocketAddr>,
    /// Do not listen on UDP.
    #[arg(long)]
    pub(crate) no_udp: bool,
    /// Do not listen on TCP.
    #[arg(long)]
    pub(crate) no_tcp: bool,
    /// Add FINGERPRINT to every response.
    #[arg(long)]
    pub(crate) fingerprint: bool,
    /// Answer every Binding with 300 Try Alternate pointing here.
    #[arg(long, value_name = "IP:PORT")]
    pub(crate) alternate_server: Option<SocketAddr>,
}

/// Runs the STUN server until Ctrl-C or SIGTERM.
pub(crate) async fn run(args: Args) -> Result<()> {
    let turn_args = super::turn::Args {
        listen: args.listen,
        no_udp: args.no_udp,
        no_tcp: args.no_tcp,
        fingerprint: args.fingerprint,
        alternate_server: args.alternate_server,
        ..super::turn::Args::default()
    };
    super::turn::serve(super::turn::build_stun(turn_args)?, "stun").await
}
