//! `wskit stun-client SERVER`: prints this host's reflexive address as a STUN server sees it.
//!
//! SERVER is `HOST`, `HOST:PORT` or a `stun:HOST[:PORT]` URI (RFC 7064); the port defaults to
//! 3478. When nothing answers within `--timeout` seconds, it says so and exits with 1.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use tokio::net::lookup_host;

/// The STUN port (RFC 8489).
const DEFAULT_PORT: u16 = 3478;

/// Flags of `wskit stun-client`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// STUN server: `HOST`, `HOST:PORT` or `stun:HOST[:PORT]` (port 3478 by default), e.g.
    /// `stun.example.org` or `stun:127.0.0.1:3478`.
    #[arg(value_name = "SERVER")]
    pub(crate) server: String,
    /// Use TCP instead of UDP.
    #[arg(long)]
    pub(crate) tcp: bool,
    /// Seconds to wait for the answer.
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    pub(crate) timeout: u64,
}

/// `(host, port)` from `HOST`, `HOST:PORT`, `[V6]:PORT`, a bare IPv6 address, or the same after
/// `stun:` / `stun://`.
fn parse_server(s: &str) -> Result<(String, u16)> {
    let lower = s.to_ascii_lowercase();
    if lower.starts_with("stuns:") || lower.starts_with("turn:") || lower.starts_with("turns:") {
        bail!("{s:?}: only stun: URIs (plain STUN) are supported here");
    }
    let rest = ["stun://", "stun:"]
        .iter()
        .find_map(|p| lower.starts_with(p).then(|| &s[p.len()..]))
        .unwrap_or(s);
    let rest = rest.trim_end_matches('/');
    let port = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| anyhow!("{s:?}: bad port {p:?}"))
    };
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| anyhow!("{s:?}: unclosed '['"))?;
        match after.strip_prefix(':') {
            Some(p) => (host, port(p)?),
            None if after.is_empty() => (host, DEFAULT_PORT),
            None => bail!("{s:?}: expected :PORT after ']'"),
        }
    } else if rest.matches(':').count() > 1 {
        (rest, DEFAULT_PORT) // a bare IPv6 address
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h, port(p)?),
            None => (rest, DEFAULT_PORT),
        }
    };
    if host.is_empty() {
        bail!("{s:?}: no host");
    }
    Ok((host.to_owned(), port))
}

/// Sends one Binding request and prints the reflexive address.
pub(crate) async fn run(args: Args) -> Result<()> {
    let (host, port) = parse_server(&args.server)?;
    let server = lookup_host((host.as_str(), port))
        .await
        .with_context(|| format!("cannot resolve {host}"))?
        .next()
        .with_context(|| format!("{host} has no address"))?;
    let transport = if args.tcp { "TCP" } else { "UDP" };
    let wait = Duration::from_secs(args.timeout.max(1));
    let answer = tokio::time::timeout(wait, stun_turn::net::stun_binding(server, args.tcp)).await;
    let addr = match answer {
        Ok(Ok(addr)) => addr,
        Err(_) | Ok(Err(stun_turn::Error::Timeout)) => bail!(
            "no answer from {server} over {transport} within {} s: is a STUN server running \
             there (`wskit stun` starts one)? {}",
            wait.as_secs(),
            if args.tcp {
                "Try without --tcp for UDP."
            } else {
                "Try --tcp if UDP is filtered."
            }
        ),
        Ok(Err(stun_turn::Error::Closed)) => bail!(
            "no answer from {server} over {transport}: the port is closed (nothing listens there)"
        ),
        Ok(Err(stun_turn::Error::Io(e))) => {
            bail!("no answer from {server} over {transport}: {e}")
        }
        Ok(Err(e)) => bail!("Binding request to {server} over {transport}: {e}"),
    };
    println!("{addr}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_take_the_stun_port_by_default_and_stun_uris() {
        let p = |s: &str| parse_server(s).unwrap();
        assert_eq!(p("127.0.0.1"), ("127.0.0.1".into(), 3478));
        assert_eq!(p("127.0.0.1:3479"), ("127.0.0.1".into(), 3479));
        assert_eq!(
            p("stun:stun.example.org"),
            ("stun.example.org".into(), 3478)
        );
        assert_eq!(p("STUN:127.0.0.1:19302"), ("127.0.0.1".into(), 19302));
        assert_eq!(p("stun://[::1]:3479"), ("::1".into(), 3479));
        assert_eq!(p("[::1]"), ("::1".into(), 3478));
        assert_eq!(p("::1"), ("::1".into(), 3478));
        for bad in ["turn:x", "x:0", "x:port", "stun:", "[::1"] {
            assert!(parse_server(bad).is_err(), "{bad}");
        }
    }
}
