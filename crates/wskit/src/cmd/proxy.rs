//! `wskit proxy`: the WebSocket-to-TCP bridge (what websockify does), also WebSocket to
//! WebSocket. `wskit proxy --to tcp://127.0.0.1:5900` lets noVNC reach a VNC server;
//! `--token-file` routes `?token=X` with a websockify token file; `--route /path=URL` by path.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::{Context, Result, bail};
use ws_proxy::{
    ProxyConfig, ProxyProtocol, ProxyServer, Target,
    ws_server::{AuthConfig, Binding, Heartbeat, ServerConfig},
};

/// Flags of `wskit proxy`.
#[derive(Debug, Default, clap::Args)]
pub(crate) struct Args {
    /// Listening address (repeatable). Default: 127.0.0.1:8080.
    #[arg(long = "listen", value_name = "IP:PORT")]
    pub(crate) listen: Vec<SocketAddr>,
    /// Backend: tcp://host:port, tls://host:port, ws://... or wss://... (host:port means tcp).
    #[arg(long = "to", value_name = "URL")]
    pub(crate) to: Option<String>,
    /// Backend by request path, as PATH=URL (repeatable), e.g. /vnc1=tcp://10.0.0.5:5901.
    #[arg(long = "route", value_name = "PATH=URL")]
    pub(crate) routes: Vec<String>,
    /// websockify token file (`token: host:port` per line), re-read when it changes.
    #[arg(long, value_name = "FILE")]
    pub(crate) token_file: Option<PathBuf>,
    /// Query parameter carrying the token. Default: token.
    #[arg(long, value_name = "NAME")]
    pub(crate) token_param: Option<String>,
    /// PEM certificate chain for wss:// on the listeners (or a combined PEM with the key).
    #[arg(long, value_name = "FILE")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// PEM private key (omit when --tls-cert is a combined PEM).
    #[arg(long, value_name = "FILE")]
    pub(crate) tls_key: Option<PathBuf>,
    /// Send a PROXY protocol header (v1 or v2) to TCP/TLS backends.
    #[arg(long, value_name = "v1|v2")]
    pub(crate) proxy_protocol: Option<String>,
    /// Most simultaneous connections (0 = unlimited). Default: 100000.
    #[arg(long, value_name = "N")]
    pub(crate) max_connections: Option<usize>,
    /// Allowed Origin (repeatable; `http://host:*` matches any port). Default: all.
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    pub(crate) allowed_origins: Vec<String>,
    /// Connect to TCP/TLS backends before answering the upgrade (unreachable: HTTP 502).
    #[arg(long)]
    pub(crate) connect_before_upgrade: bool,
    /// Backend connect timeout in seconds. Default: 10.
    #[arg(long, value_name = "SECS")]
    pub(crate) connect_timeout: Option<u64>,
    /// After the WebSocket closed, seconds the backend may take to finish. Default: 5.
    #[arg(long, value_name = "SECS")]
    pub(crate) drain_timeout: Option<u64>,
    /// CA bundle (PEM) trusted for tls:// and wss:// backends, instead of Mozilla's roots.
    #[arg(long, value_name = "FILE")]
    pub(crate) backend_ca: Option<PathBuf>,
    /// Name to verify the tls:// backend certificate against (and send in SNI).
    #[arg(long, value_name = "NAME")]
    pub(crate) backend_server_name: Option<String>,
    /// Ping browsers every N seconds. Default: no heartbeat.
    #[arg(long, value_name = "SECS")]
    pub(crate) heartbeat: Option<u64>,
    /// Close connections idle for this many seconds. Default: never.
    #[arg(long, value_name = "SECS")]
    pub(crate) idle_timeout: Option<u64>,
    /// Basic-auth user as NAME:PASSWORD (repeatable); any user turns authentication on.
    #[arg(long = "user", value_name = "NAME:PASSWORD")]
    pub(crate) users: Vec<String>,
}

/// Turns the flags into the library configuration.
fn build(args: Args) -> Result<ProxyConfig> {
    let mut cfg = ProxyConfig::default();
    let addrs = if args.listen.is_empty() {
        vec![ServerConfig::DEFAULT_LISTEN.parse()?]
    } else {
        args.listen
    };
    let tls = match &args.tls_cert {
        Some(cert) => {
            let t = match &args.tls_key {
                Some(key) => ws_tls::ServerTlsConfig::new(cert, key),
                None => ws_tls::ServerTlsConfig::combined(cert),
            };
            Some(ws_tls::server_config(&t).context("TLS configuration")?)
        }
        None if args.tls_key.is_some() => bail!("--tls-key needs --tls-cert"),
        None => None,
    };
    cfg.server.bindings = addrs
        .into_iter()
        .map(|a| match &tls {
            Some(t) => Binding::tls(a, t.clone()),
            None => Binding::plain(a),
        })
        .collect();
    if let Some(to) = &args.to {
        cfg.target = Some(Target::parse(to).with_context(|| format!("--to {to}"))?);
    }
    for route in &args.routes {
        let Some((path, url)) = route.split_once('=') else {
            bail!("--route expects PATH=URL, got {route:?}");
        };
        let target = Target::parse(url).with_context(|| format!("--route {route}"))?;
        cfg.paths.push((path.to_owned(), target));
    }
    cfg.token_file = args.token_file;
    if let Some(p) = args.token_param {
        cfg.token_param = p;
    }
    if let Some(v) = &args.proxy_protocol {
        cfg.proxy_protocol = Some(ProxyProtocol::parse(v)?);
    }
    if let Some(n) = args.max_connections {
        cfg.server.max_connections = n;
    }
    cfg.server.allowed_origins = args.allowed_origins;
    cfg.connect_before_upgrade = args.connect_before_upgrade;
    if let Some(s) = args.connect_timeout {
        cfg.connect_timeout = Duration::from_secs(s);
    }
    if let Some(s) = args.drain_timeout {
        cfg.drain_timeout = Duration::from_secs(s);
    }
    if let Some(ca) = args.backend_ca {
        cfg.backend_tls.ca_file = Some(ca.clone());
        cfg.backend_tls.webpki_roots = false;
        cfg.upstream_ws.tls.ca_file = Some(ca);
        cfg.upstream_ws.tls.webpki_roots = false;
    }
    cfg.backend_tls_server_name = args.backend_server_name;
    if let Some(s) = args.heartbeat {
        cfg.server.heartbeat = Some(Heartbeat::new(
            Duration::from_secs(s),
            Heartbeat::DEFAULT_TIMEOUT,
        ));
    }
    cfg.server.idle_timeout = args.idle_timeout.map(Duration::from_secs);
    let users = args
        .users
        .iter()
        .map(|s| match s.split_once(':') {
            Some((u, p)) if !u.is_empty() => Ok((u.to_owned(), p.to_owned())),
            _ => bail!("--user expects NAME:PASSWORD, got {s:?}"),
        })
        .collect::<Result<Vec<_>>>()?;
    if !users.is_empty() {
        cfg.server.auth = Some(AuthConfig::basic(users));
    }
    cfg.validate().context("invalid configuration")?;
    Ok(cfg)
}

/// Runs `wskit proxy` until Ctrl-C.
///
/// # Errors
/// Invalid flags or configuration, an unreadable token file, addresses that cannot be bound.
pub(crate) async fn run(args: Args) -> Result<()> {
    let config = build(args)?;
    let proxy = ProxyServer::start(config).await?;
    for addr in proxy.local_addrs() {
        // Scripts and tests read this line to learn the port.
        println!("listening on {addr}");
    }
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    tracing::info!("stopping");
    proxy.stop().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_map_to_the_library_config() {
        let args = Args {
            listen: vec!["127.0.0.1:9100".parse().unwrap()],
            to: Some("tcp://127.0.0.1:5900".into()),
            routes: vec!["/vnc2=tls://10.0.0.2:5901".into()],
            proxy_protocol: Some("v2".into()),
            max_connections: Some(10),
            allowed_origins: vec!["http://localhost:*".into()],
            users: vec!["a:b".into()],
            ..Args::default()
        };
        let cfg = build(args).unwrap();
        assert_eq!(cfg.server.bindings[0].addr.to_string(), "127.0.0.1:9100");
        assert_eq!(cfg.target.unwrap().to_string(), "tcp://127.0.0.1:5900");
        assert_eq!(cfg.paths[0].0, "/vnc2");
        assert_eq!(cfg.proxy_protocol, Some(ProxyProtocol::V2));
        assert_eq!(cfg.server.max_connections, 10);
        assert_eq!(cfg.server.allowed_origins.len(), 1);
        assert!(cfg.server.auth.is_some());
    }

    #[test]
    fn defaults_and_bad_flags() {
        let cfg = build(Args {
            to: Some("127.0.0.1:22".into()),
            ..Args::default()
        })
        .unwrap();
        assert_eq!(cfg.server.bindings[0].addr.to_string(), "127.0.0.1:8080");
        assert!(build(Args::default()).is_err(), "no upstream");
        for bad in [
            Args {
                to: Some("http://x:1".into()),
                ..Args::default()
            },
            Args {
                to: Some("x:1".into()),
                proxy_protocol: Some("v3".into()),
                ..Args::default()
            },
            Args {
                routes: vec!["novalue".into()],
                ..Args::default()
            },
            Args {
                to: Some("x:1".into()),
                users: vec!["nopassword".into()],
                ..Args::default()
            },
        ] {
            assert!(build(bad).is_err());
        }
    }
}
