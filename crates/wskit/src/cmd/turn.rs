//! `wskit turn`: a TURN (and STUN) server with coturn-like flags.
//!
//! Every flag can also come from the `[turn]` table of `--config wskit.toml` (same names, with
//! underscores; the repeatable flags' singular names and coturn's names accepted too); flags
//! win over the file, the file over the defaults (one struct for both: see `cmd::config`).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use serde::Deserialize;
use stun_turn::net::{TurnServer, TurnServerConfig};
use stun_turn::policy::Cidr;

super::config::layered! {
/// Flags of `wskit turn`, and the `[turn]` table of wskit.toml.
#[derive(Debug, Default, clap::Args, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Args {
    /// Listening address for UDP and TCP (repeatable; a host name resolves).
    /// Default: 127.0.0.1:3478.
    #[arg(long = "listen", value_name = "HOST:PORT", value_parser = super::listen_addr)]
    #[serde(deserialize_with = "super::de_listen")]
    pub(crate) listen: Vec<SocketAddr>,
    /// Do not listen on UDP.
    #[arg(long)]
    pub(crate) no_udp: bool,
    /// Do not listen on TCP.
    #[arg(long)]
    pub(crate) no_tcp: bool,
    /// Realm of the long-term credentials. Default: wskit.
    #[arg(long)]
    pub(crate) realm: Option<String>,
    /// A static user as NAME:PASSWORD (repeatable).
    #[arg(long = "user", value_name = "NAME:PASSWORD")]
    #[serde(alias = "user")]
    pub(crate) users: Vec<String>,
    /// TURN REST API shared secret (time-limited usernames "expiry:user").
    #[arg(long, alias = "static-auth-secret", value_name = "SECRET")]
    #[serde(alias = "static_auth_secret")]
    pub(crate) auth_secret: Option<String>,
    /// Address relay sockets bind to and advertise. Default: the first listening IP.
    #[arg(long, value_name = "IP")]
    pub(crate) relay_ip: Option<IpAddr>,
    /// Lowest relay port. Default: 49152.
    #[arg(long, value_name = "PORT")]
    pub(crate) min_port: Option<u16>,
    /// Highest relay port. Default: 65535.
    #[arg(long, value_name = "PORT")]
    pub(crate) max_port: Option<u16>,
    /// Let peers on 127.0.0.0/8 and ::1 be reached (off by default: no open relay into this host).
    #[arg(long)]
    pub(crate) allow_loopback_peers: bool,
    /// Allow peers in this network even if it is private or otherwise special (repeatable).
    #[arg(long = "allow-peer", alias = "allowed-peer-ip", value_name = "CIDR")]
    #[serde(alias = "allow_peer", alias = "allowed_peer_ip")]
    pub(crate) allow_peers: Vec<String>,
    /// Never allow peers in this network (repeatable; checked first).
    #[arg(long = "deny-peer", alias = "denied-peer-ip", value_name = "CIDR")]
    #[serde(alias = "deny_peer", alias = "denied_peer_ip")]
    pub(crate) deny_peers: Vec<String>,
    /// Allocations per user. Default: 100.
    #[arg(long, alias = "user-quota", value_name = "N")]
    pub(crate) user_quota: Option<usize>,
    /// Allocations in total. Default: 100000.
    #[arg(long, value_name = "N")]
    pub(crate) total_quota: Option<usize>,
    /// Default allocation lifetime in seconds. Default: 600.
    #[arg(long, value_name = "SECS")]
    pub(crate) lifetime: Option<u64>,
    /// Longest allocation lifetime in seconds. Default: 3600.
    #[arg(long, alias = "max-allocate-lifetime", value_name = "SECS")]
    #[serde(alias = "max_allocate_lifetime")]
    pub(crate) max_lifetime: Option<u64>,
    /// Nonce lifetime in seconds (438 Stale Nonce after). Default: 600.
    #[arg(long, value_name = "SECS")]
    pub(crate) stale_nonce: Option<u64>,
    /// Relayed bytes per second per allocation and direction. Default: unlimited.
    #[arg(long, alias = "max-bps", value_name = "BYTES")]
    #[serde(alias = "max_bps")]
    pub(crate) bandwidth_limit: Option<u64>,
    /// Add FINGERPRINT to every response.
    #[arg(long)]
    pub(crate) fingerprint: bool,
    /// Redirect Allocate requests to this server (300 Try Alternate).
    #[arg(long, value_name = "IP:PORT")]
    pub(crate) alternate_server: Option<SocketAddr>,
    /// Event-loop threads, each with its own socket per UDP listener (0: one shared
    /// multi-thread runtime). Default: one per core.
    #[arg(long, alias = "relay-threads", value_name = "N")]
    #[serde(alias = "relay_threads")]
    pub(crate) threads: Option<usize>,
    /// Configuration file (wskit.toml) with a `[turn]` table.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub(crate) config: Option<PathBuf>,
}
}

fn parse_user(s: &str) -> Result<(String, String)> {
    match s.split_once(':') {
        Some((u, p)) if !u.is_empty() && u.len() <= 513 => Ok((u.to_string(), p.to_string())),
        Some((u, _)) if u.len() > 513 => bail!("--user: the name must be at most 513 bytes"),
        _ => bail!("--user expects NAME:PASSWORD, got {s:?}"),
    }
}

fn parse_cidrs(flag: &str, list: &[String]) -> Result<Vec<Cidr>> {
    list.iter()
        .map(|s| {
            s.parse::<Cidr>().map_err(|_| {
                anyhow::anyhow!("{flag} {s:?}: expected a network as ADDRESS/BITS, e.g. 10.0.0.0/8")
            })
        })
        .collect()
}

/// The checks of the library's `validate`, with the flags' names (the library names fields).
fn check_flags(cfg: &TurnServerConfig) -> Result<()> {
    let s = &cfg.server;
    if cfg.udp.is_empty() && cfg.tcp.is_empty() {
        bail!("--no-udp and --no-tcp together leave nothing to listen on");
    }
    if s.turn && s.users.is_empty() && s.auth_secret.is_none() {
        bail!(
            "wskit turn needs credentials: --user NAME:PASSWORD (repeatable) or \
             --auth-secret SECRET (TURN REST API)"
        );
    }
    if s.auth_secret.as_deref() == Some("") {
        bail!("--auth-secret must not be empty");
    }
    if cfg.min_port == 0 {
        bail!("--min-port must be at least 1");
    }
    if cfg.min_port > cfg.max_port {
        bail!(
            "--min-port {} is above --max-port {}: the relay port range is empty",
            cfg.min_port,
            cfg.max_port
        );
    }
    if s.realm.is_empty() || s.realm.len() > 763 {
        bail!("--realm must be 1 to 763 bytes");
    }
    if s.default_lifetime.is_zero() {
        bail!("--lifetime must be at least 1 second");
    }
    if s.max_lifetime < s.default_lifetime {
        bail!(
            "--lifetime {} is above --max-lifetime {}",
            s.default_lifetime.as_secs(),
            s.max_lifetime.as_secs()
        );
    }
    if s.max_lifetime > Duration::from_secs(u64::from(u32::MAX)) {
        bail!("--max-lifetime must be below 2^32 seconds");
    }
    if s.nonce_lifetime.is_zero() {
        bail!("--stale-nonce must be at least 1 second");
    }
    if s.user_quota == 0 {
        bail!("--user-quota must be at least 1");
    }
    if s.total_quota == 0 {
        bail!("--total-quota must be at least 1");
    }
    if s.bandwidth_limit == Some(0) {
        bail!("--bandwidth-limit must be at least 1 byte per second (leave it out for no limit)");
    }
    if cfg.threads > TurnServerConfig::MAX_THREADS {
        bail!(
            "--threads must be at most {}",
            TurnServerConfig::MAX_THREADS
        );
    }
    let relay_ip = cfg
        .relay_ip
        .or_else(|| cfg.udp.first().or(cfg.tcp.first()).map(SocketAddr::ip));
    match (s.turn, relay_ip, cfg.relay_ip) {
        (true, Some(ip), None) if ip.is_unspecified() => bail!(
            "--relay-ip is needed when --listen is a wildcard address ({ip}): give the address \
             of this host that peers can reach"
        ),
        (true, _, Some(ip)) if ip.is_unspecified() => {
            bail!("--relay-ip {ip}: give the address of this host that peers can reach")
        }
        (true, _, Some(ip)) => {
            // Relay sockets bind there at each allocation: an address not on this host
            // would only fail then.
            if let Err(e) = std::net::UdpSocket::bind((ip, 0)) {
                bail!(
                    "--relay-ip {ip}: cannot bind a relay socket there ({e}); is it an address of this host?"
                );
            }
        }
        _ => {}
    }
    Ok(())
}

/// Turns flags and file into the library configuration.
fn build(args: Args, turn: bool) -> Result<TurnServerConfig> {
    let config = args.config.clone();
    let args = super::config::merged(args, config.as_deref(), "turn")?;
    let mut cfg = TurnServerConfig::default();
    let listen = if !args.listen.is_empty() {
        args.listen
    } else {
        vec![SocketAddr::from(([127, 0, 0, 1], 3478))]
    };
    cfg.udp = if args.no_udp { vec![] } else { listen.clone() };
    cfg.tcp = if args.no_tcp { vec![] } else { listen };
    let s = &mut cfg.server;
    s.turn = turn;
    if let Some(r) = args.realm {
        s.realm = r;
    }
    s.users = args
        .users
        .iter()
        .map(|u| parse_user(u))
        .collect::<Result<_>>()?;
    s.auth_secret = args.auth_secret;
    cfg.relay_ip = args.relay_ip;
    if let Some(p) = args.min_port {
        cfg.min_port = p;
    }
    if let Some(p) = args.max_port {
        cfg.max_port = p;
    }
    let s = &mut cfg.server;
    s.allow_loopback_peers = args.allow_loopback_peers;
    s.allowed_peers = parse_cidrs("--allow-peer", &args.allow_peers)?;
    s.denied_peers = parse_cidrs("--deny-peer", &args.deny_peers)?;
    if let Some(q) = args.user_quota {
        s.user_quota = q;
    }
    if let Some(q) = args.total_quota {
        s.total_quota = q;
    }
    if let Some(l) = args.lifetime {
        s.default_lifetime = Duration::from_secs(l);
    }
    if let Some(l) = args.max_lifetime {
        s.max_lifetime = Duration::from_secs(l);
    }
    if let Some(n) = args.stale_nonce {
        s.nonce_lifetime = Duration::from_secs(n);
    }
    s.bandwidth_limit = args.bandwidth_limit;
    s.fingerprint = args.fingerprint;
    s.alternate_server = args.alternate_server;
    if let Some(n) = args.threads {
        cfg.threads = n;
    }
    check_flags(&cfg)?;
    cfg.validate()
        .map_err(|e| anyhow::anyhow!(super::in_flag_terms::<Args>(&e.to_string())))?;
    Ok(cfg)
}

/// Runs the server until Ctrl-C or SIGTERM.
pub(crate) async fn run(args: Args) -> Result<()> {
    serve(build(args, true)?, "turn").await
}

/// Shared by `wskit turn` and `wskit stun`.
pub(crate) async fn serve(cfg: TurnServerConfig, what: &str) -> Result<()> {
    let server = TurnServer::bind(cfg).await.map_err(|e| match e {
        // The library names the address in its bind errors; the io layer adds nothing.
        stun_turn::Error::Io(io) => anyhow::anyhow!("{io}"),
        e => anyhow::anyhow!("{e}"),
    })?;
    for a in server.udp_addrs() {
        tracing::info!("{what}: listening on udp {a}");
    }
    for a in server.tcp_addrs() {
        tracing::info!("{what}: listening on tcp {a}");
    }
    super::shutdown_signal().await?;
    tracing::info!("{what}: shutting down");
    drop(server);
    Ok(())
}

/// For `wskit stun`: the same flags, STUN only (no users needed).
pub(crate) fn build_stun(args: Args) -> Result<TurnServerConfig> {
    build(args, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_map_to_the_library_config() {
        let args = Args {
            listen: vec!["127.0.0.1:3479".parse().unwrap()],
            realm: Some("example.org".into()),
            users: vec!["alice:s3cret".into(), "bob:a:b".into()],
            min_port: Some(50000),
            max_port: Some(50100),
            allow_peers: vec!["10.0.0.0/8".into()],
            stale_nonce: Some(30),
            ..Args::default()
        };
        let cfg = build(args, true).unwrap();
        assert_eq!(cfg.udp, cfg.tcp);
        assert_eq!(cfg.server.realm, "example.org");
        assert_eq!(cfg.server.users[1], ("bob".to_string(), "a:b".to_string()));
        assert_eq!((cfg.min_port, cfg.max_port), (50000, 50100));
        assert_eq!(cfg.server.nonce_lifetime, Duration::from_secs(30));
        assert!(!cfg.server.allow_loopback_peers);
    }

    #[test]
    fn bad_values_are_errors_not_panics() {
        let no_users = Args::default();
        assert!(
            build(no_users, true).is_err(),
            "TURN needs users or a secret"
        );
        let bad_user = Args {
            users: vec!["nocolon".into()],
            ..Args::default()
        };
        assert!(build(bad_user, true).is_err());
        let bad_cidr = Args {
            users: vec!["a:b".into()],
            allow_peers: vec!["10.0.0.0/99".into()],
            ..Args::default()
        };
        assert!(build(bad_cidr, true).is_err());
        let bad_ports = Args {
            users: vec!["a:b".into()],
            min_port: Some(60000),
            max_port: Some(50000),
            ..Args::default()
        };
        assert!(build(bad_ports, true).is_err());
    }

    #[test]
    fn toml_file_fills_what_flags_leave_out() {
        let dir = std::env::temp_dir().join(format!("wskit-turn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("wskit.toml");
        std::fs::write(
            &path,
            "[serve]\nport = 1\n[turn]\nrealm = \"file.org\"\nusers = [\"carol:pw\"]\nmin_port = 40000\nmax_port = 40010\n",
        )
        .unwrap();
        let args = Args {
            config: Some(path.clone()),
            realm: Some("flag.org".into()),
            ..Args::default()
        };
        let cfg = build(args, true).unwrap();
        assert_eq!(cfg.server.realm, "flag.org", "flags win");
        assert_eq!(
            cfg.server.users,
            vec![("carol".to_string(), "pw".to_string())]
        );
        assert_eq!(cfg.min_port, 40000);
        std::fs::write(&path, "[turn]\nrelam = \"typo\"\n").unwrap();
        assert!(
            build(
                Args {
                    config: Some(path),
                    ..Args::default()
                },
                true
            )
            .is_err(),
            "unknown keys rejected"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_example_file_holds_the_defaults() {
        let example =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wskit.toml.example");
        let users = vec!["alice:pw".to_owned()];
        let from_file = build(
            Args {
                config: Some(example),
                users: users.clone(),
                ..Args::default()
            },
            true,
        )
        .unwrap();
        let defaults = build(
            Args {
                users,
                ..Args::default()
            },
            true,
        )
        .unwrap();
        assert_eq!(format!("{from_file:?}"), format!("{defaults:?}"));
    }
}
