//! `wskit turn-client URL --user NAME:PASSWORD --peer ADDR`: checks a TURN server end to end.
//!
//! Allocates a relay, installs a permission for the peer, sends one datagram to it through the
//! relay, waits for an answer (an echoing peer answers; a silent one is reported, not an error),
//! refreshes the allocation and releases it, printing one line per step on stdout. A step that
//! fails ends the run with the server's answer and what to check.

use std::{net::SocketAddr, time::Duration};

use anyhow::{Context, Result, anyhow, bail};
use stun_turn::{ClientConfig, Error as TurnError, net::TurnClient};
use tokio::net::lookup_host;

/// Flags of `wskit turn-client`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// TURN server: `turn:HOST[:PORT][?transport=udp|tcp]` or `HOST[:PORT]` (port 3478 by
    /// default).
    #[arg(value_name = "URL")]
    pub(crate) url: String,
    /// Long-term credentials `NAME:PASSWORD` (for a server with --auth-secret: the time-limited
    /// name and the password derived from the secret).
    #[arg(long, value_name = "NAME:PASSWORD")]
    pub(crate) user: String,
    /// The peer to relay to, `IP:PORT` or `HOST:PORT` (an echoing UDP service answers).
    #[arg(long, value_name = "ADDR")]
    pub(crate) peer: String,
    /// Talk to the server over TCP (also `?transport=tcp` in the URL). Default: UDP.
    #[arg(long)]
    pub(crate) tcp: bool,
    /// What to send to the peer.
    #[arg(
        long,
        value_name = "TEXT",
        default_value = "hello from wskit turn-client"
    )]
    pub(crate) data: String,
    /// Seconds to wait for each answer of the server, and for the peer's. Default: 5.
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    pub(crate) timeout: u64,
}

/// Where the server is and how to reach it.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    host_port: String,
    tcp: bool,
}

fn parse_url(url: &str, tcp_flag: bool) -> Result<Target> {
    let lower = url.to_ascii_lowercase();
    let rest = if lower.starts_with("turns:") {
        bail!("{url}: turns: (TURN over TLS) is not supported by turn-client; use turn:");
    } else if lower.starts_with("turn:") {
        &url[5..]
    } else if lower.starts_with("stun:") {
        bail!("{url}: a stun: URL has no relay; use turn:HOST[:PORT]");
    } else {
        url
    };
    let rest = rest.trim_start_matches("//");
    let (authority, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut tcp = tcp_flag;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("transport", "udp")) => {}
            Some(("transport", "tcp")) => tcp = true,
            Some(("transport", other)) => {
                bail!("{url}: transport={other}: use udp or tcp")
            }
            _ => bail!("{url}: unknown parameter {pair:?} (only transport=udp|tcp)"),
        }
    }
    let authority = authority.trim_end_matches('/');
    if authority.is_empty() {
        bail!("{url}: no host");
    }
    let has_port = match authority.rsplit_once(':') {
        // `[v6]:port`, `host:port`; a bare IPv6 address has colons but no brackets.
        Some((h, p)) => p.parse::<u16>().is_ok() && (h.ends_with(']') || !h.contains(':')),
        None => false,
    };
    let host_port = if has_port {
        authority.to_owned()
    } else if authority.contains(':') && !authority.starts_with('[') {
        format!("[{authority}]:3478")
    } else {
        format!("{authority}:3478")
    };
    Ok(Target { host_port, tcp })
}

async fn resolve(what: &str, host_port: &str) -> Result<SocketAddr> {
    lookup_host(host_port)
        .await
        .with_context(|| format!("resolving the {what} {host_port}"))?
        .next()
        .ok_or_else(|| anyhow!("the {what} {host_port} has no address"))
}

/// The server's refusal with what to check.
fn explain(step: &str, e: TurnError) -> anyhow::Error {
    let hint = match &e {
        TurnError::Response { code, .. } => match code.0 {
            401 => {
                Some("check --user NAME:PASSWORD against the server's users (or its --auth-secret)")
            }
            403 if step == "permission" => Some(
                "the server refuses this peer; loopback and private peers need \
                 --allow-loopback-peers or --allow-peer CIDR on the server",
            ),
            437 => Some("an allocation from this address exists already; retry in a moment"),
            486 => Some("the user's allocation quota is used up"),
            508 => Some("the server has no relay port free"),
            _ => None,
        },
        TurnError::Timeout => {
            return anyhow!("{step} failed: no answer (is a TURN server listening there?)");
        }
        TurnError::Closed => {
            return anyhow!(
                "{step} failed: the server is unreachable or closed the connection (is a TURN \
                 server listening there?)"
            );
        }
        _ => None,
    };
    match hint {
        Some(h) => anyhow!("{step} failed: {e} ({h})"),
        None => anyhow!("{step} failed: {e}"),
    }
}

/// Runs one request with the step's timeout.
async fn step<T>(
    name: &str,
    timeout: Duration,
    fut: impl Future<Output = Result<T, TurnError>>,
) -> Result<T> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r.map_err(|e| explain(name, e)),
        Err(_) => Err(explain(name, TurnError::Timeout)),
    }
}

/// Allocate, permission, send, receive, refresh, release.
pub(crate) async fn run(args: Args) -> Result<()> {
    let target = parse_url(&args.url, args.tcp)?;
    let (user, password) = args
        .user
        .split_once(':')
        .context("--user: expected NAME:PASSWORD")?;
    let server = resolve("TURN server", &target.host_port).await?;
    let peer = resolve("peer", &args.peer).await?;
    let timeout = Duration::from_secs(args.timeout.max(1));
    let config = ClientConfig::with_credentials(user, password);
    let transport = if target.tcp { "tcp" } else { "udp" };
    let mut client = if target.tcp {
        step("connect", timeout, TurnClient::tcp(server, config)).await?
    } else {
        step("connect", timeout, TurnClient::udp(server, config)).await?
    };
    println!(
        "server: {server} over {transport}, from {}",
        client.local_addr()
    );
    let relayed = step("allocate", timeout, client.allocate()).await?;
    println!("allocate: relayed address {relayed}");
    step(
        "permission",
        timeout,
        client.create_permission(std::slice::from_ref(&peer)),
    )
    .await?;
    println!("permission: {} may send to the relay", peer.ip());
    step("send", timeout, client.send_to(peer, args.data.as_bytes())).await?;
    println!("send: {} bytes to {peer}", args.data.len());
    match tokio::time::timeout(timeout, client.recv_from()).await {
        Ok(Some((from, data))) => println!(
            "receive: {} bytes from {from}: {:?}",
            data.len(),
            String::from_utf8_lossy(&data)
        ),
        Ok(None) => bail!("receive failed: the client stopped"),
        Err(_) => println!(
            "receive: nothing from {peer} within {} s (the peer may not answer)",
            timeout.as_secs()
        ),
    }
    let lifetime = step(
        "refresh",
        timeout,
        client.refresh(ClientConfig::DEFAULT_LIFETIME.as_secs().try_into()?),
    )
    .await?;
    println!("refresh: lifetime {lifetime} s");
    step("release", timeout, client.refresh(0)).await?;
    println!("release: done");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = |u: &str| parse_url(u, false).unwrap();
        assert_eq!(
            t("turn:example.org"),
            Target {
                host_port: "example.org:3478".into(),
                tcp: false
            }
        );
        assert_eq!(
            t("turn:127.0.0.1:3479?transport=tcp").host_port,
            "127.0.0.1:3479"
        );
        assert!(t("turn:127.0.0.1:3479?transport=tcp").tcp);
        assert_eq!(t("[::1]:5349").host_port, "[::1]:5349");
        assert_eq!(t("::1").host_port, "[::1]:3478");
        assert_eq!(t("h:1").host_port, "h:1");
        assert!(parse_url("turns:h", false).is_err());
        assert!(parse_url("turn:h?transport=sctp", false).is_err());
        assert!(parse_url("turn:", false).is_err());
    }
}
