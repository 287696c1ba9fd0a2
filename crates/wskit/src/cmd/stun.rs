//! `wskit stun`: a STUN-only server (Binding over UDP and TCP), coturn-like flags.

use std::net::SocketAddr;

use anyhow::{Result, bail};
use stun_turn::net::TurnServerConfig;

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
    /// Require credentials on Binding: a user and password (repeatable). Long-term credentials
    /// (realm and nonce, 401 challenge) unless --short-term.
    #[arg(long = "user", value_name = "NAME:PASSWORD")]
    pub(crate) users: Vec<String>,
    /// With --user: short-term credentials (RFC 8489 section 9.1; every request signed with the
    /// password, no realm or nonce), as ICE-style clients use.
    #[arg(long)]
    pub(crate) short_term: bool,
}

/// The library configuration for `args`.
fn build(args: Args) -> Result<TurnServerConfig> {
    if args.short_term && args.users.is_empty() {
        bail!("--short-term needs at least one --user NAME:PASSWORD");
    }
    let stun_auth = !args.users.is_empty();
    let turn_args = super::turn::Args {
        listen: args.listen,
        no_udp: args.no_udp,
        no_tcp: args.no_tcp,
        fingerprint: args.fingerprint,
        alternate_server: args.alternate_server,
        users: args.users,
        ..super::turn::Args::default()
    };
    let mut cfg = super::turn::build_stun(turn_args)?;
    cfg.server.stun_auth = stun_auth;
    cfg.server.short_term = args.short_term;
    Ok(cfg)
}

/// Runs the STUN server until Ctrl-C or SIGTERM.
pub(crate) async fn run(args: Args) -> Result<()> {
    super::turn::serve(build(args)?, "stun").await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_turn_on_binding_auth_and_short_term_needs_one() {
        let open = build(Args::default()).unwrap();
        assert!(!open.server.stun_auth);
        let cfg = build(Args {
            users: vec!["alice:s3cret".into()],
            short_term: true,
            ..Args::default()
        })
        .unwrap();
        assert!(cfg.server.stun_auth && cfg.server.short_term && !cfg.server.turn);
        assert_eq!(cfg.server.users, vec![("alice".into(), "s3cret".into())]);
        let err = build(Args {
            short_term: true,
            ..Args::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("--user"), "{err}");
    }
}
