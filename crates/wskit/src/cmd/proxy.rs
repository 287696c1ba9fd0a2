//! `wskit proxy`: the WebSocket-to-TCP bridge (what websockify does), also WebSocket to
//! WebSocket. `wskit proxy --to tcp://127.0.0.1:5900` lets noVNC reach a VNC server;
//! `--token-file` routes `?token=X` with a websockify token file; `--route /path=URL` by path;
//! `--http-upstream http://127.0.0.1:8000` forwards plain HTTP requests on the same port (a
//! reverse proxy, e.g. for the web app serving noVNC's pages). `--backend URL` (repeatable)
//! spreads connections over several backends (`--balance round-robin|least-connections|
//! cookie:NAME|header:NAME`), with `--health-check tcp|http:/PATH` and a registration API
//! for backends (`--register-secret-file FILE`).
//!
//! Every flag can also come from the `[proxy]` table of `--config wskit.toml` (same names as
//! the flags' fields, with underscores: `routes`, `users`, `allowed_origins`, the singular
//! flag names being accepted too); flags win over the file, the file over the defaults (one
//! struct for both: see `cmd::config`). Routes are a list of `"PATH=URL"` strings or a
//! table of `PATH = "URL"`:
//!
//! ```toml
//! [proxy]
//! listen = ["0.0.0.0:6080"]
//! token_file = "/etc/wskit/tokens"
//! routes = { "/vnc1" = "tcp://10.0.0.5:5901" }
//! http_upstream = "http://127.0.0.1:8000"
//! ```

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;
use ws_proxy::{
    BalancerConfig, Error as ProxyError, HealthCheck, HostHeader, HttpUpstream, Policy, Probe,
    ProxyConfig, ProxyProtocol, ProxyServer, Registration, Target,
    ws_server::{AuthConfig, Binding, Heartbeat, ServerConfig},
};

super::config::layered! {
/// Flags of `wskit proxy`, and the `[proxy]` table of wskit.toml.
#[derive(Debug, Default, clap::Args, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Args {
    /// Listening address (repeatable; a host name resolves). Default: 127.0.0.1:8080.
    #[arg(long = "listen", value_name = "HOST:PORT", value_parser = super::listen_addr)]
    #[serde(deserialize_with = "super::de_listen")]
    pub(crate) listen: Vec<SocketAddr>,
    /// Backend: tcp://host:port, tls://host:port, ws://... or wss://... (host:port means tcp).
    #[arg(long = "to", value_name = "URL")]
    pub(crate) to: Option<String>,
    /// Backend by request path, as PATH=URL (repeatable), e.g. /vnc1=tcp://10.0.0.5:5901.
    #[arg(long = "route", value_name = "PATH=URL")]
    #[serde(alias = "route", deserialize_with = "de_routes")]
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
    #[serde(alias = "allowed_origin")]
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
    #[serde(alias = "user")]
    pub(crate) users: Vec<String>,
    /// Forward plain HTTP requests (not WebSocket upgrades) to this upstream:
    /// http://host:port[/base] or https://... Default: none (404).
    #[arg(long, value_name = "URL")]
    pub(crate) http_upstream: Option<String>,
    /// Send the HTTP upstream its own host as Host (instead of the client's, which then only
    /// goes in X-Forwarded-Host).
    #[arg(long)]
    pub(crate) http_upstream_host: bool,
    /// Seconds the HTTP upstream may take to answer (then 504). Default: 60.
    #[arg(long, value_name = "SECS")]
    pub(crate) http_timeout: Option<u64>,
    /// Balanced backend (repeatable): ws://host:port (WebSocket and HTTP keep their path),
    /// wss://..., tcp://... or tls://...; connections are spread over them.
    #[arg(long = "backend", value_name = "URL")]
    #[serde(alias = "backend")]
    pub(crate) backends: Vec<String>,
    /// How --backend is chosen: round-robin, least-connections, cookie:NAME or header:NAME
    /// (sticky). Default: round-robin.
    #[arg(long, value_name = "POLICY")]
    pub(crate) balance: Option<String>,
    /// Active health check of the backends: tcp (connect) or http:/PATH (GET, 2xx or 3xx).
    /// Default: none (a failed connect takes a backend out for 10 s).
    #[arg(long, value_name = "tcp|http:/PATH")]
    pub(crate) health_check: Option<String>,
    /// Milliseconds between two health checks of a backend. Default: 5000.
    #[arg(long, value_name = "MS")]
    pub(crate) health_interval: Option<u64>,
    /// Milliseconds a health check may take. Default: 2000.
    #[arg(long, value_name = "MS")]
    pub(crate) health_timeout: Option<u64>,
    /// Good checks in a row that bring a backend back. Default: 2.
    #[arg(long, value_name = "N")]
    pub(crate) healthy_threshold: Option<u32>,
    /// Failed checks in a row that take a backend out. Default: 3.
    #[arg(long, value_name = "N")]
    pub(crate) unhealthy_threshold: Option<u32>,
    /// File holding the bearer secret (16 bytes or more) of the registration API, through
    /// which backends add and remove themselves (POST/DELETE /_wskit/backends).
    #[arg(long, value_name = "FILE")]
    pub(crate) register_secret_file: Option<PathBuf>,
    /// Path of the registration API. Default: /_wskit/backends.
    #[arg(long, value_name = "PATH")]
    pub(crate) register_path: Option<String>,
    /// Event-loop threads: 1 (default) runs the proxy on one single-threaded runtime, the
    /// cheapest per relayed message; N > 1 on a multi-thread runtime of N workers; 0 on one
    /// worker per CPU. Raise it when one core is saturated.
    #[arg(long, value_name = "N")]
    pub(crate) threads: Option<usize>,
    /// Configuration file (wskit.toml) with a `[proxy]` table.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub(crate) config: Option<PathBuf>,
}
}

/// Routes in the `[proxy]` table: `["/a=tcp://h:1"]` or `{ "/a" = "tcp://h:1" }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Routes {
    List(Vec<String>),
    Table(BTreeMap<String, String>),
}

impl Routes {
    /// As `PATH=URL` strings, like the flag.
    fn into_flags(self) -> Vec<String> {
        match self {
            Self::List(v) => v,
            Self::Table(t) => t.into_iter().map(|(p, u)| format!("{p}={u}")).collect(),
        }
    }
}

/// `routes` in the `[proxy]` table, as `PATH=URL` strings like the flag.
fn de_routes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Routes::deserialize(d)?.into_flags())
}

/// The flags over the `[proxy]` table of `--config`.
fn merge(args: Args) -> Result<Args> {
    let config = args.config.clone();
    super::config::merged(args, config.as_deref(), "proxy")
}

/// Turns flags and file into the library configuration.
fn build(args: Args) -> Result<ProxyConfig> {
    let args = merge(args)?;
    let mut cfg = ProxyConfig::default();
    let balanced = balance(&args)?;
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
    if args.to.is_none()
        && args.routes.is_empty()
        && args.token_file.is_none()
        && args.http_upstream.is_none()
        && args.backends.is_empty()
        && args.register_secret_file.is_none()
    {
        bail!(
            "nothing to proxy to: give --to URL (e.g. --to tcp://127.0.0.1:5900), \
             --route PATH=URL, --token-file FILE, --http-upstream URL or --backend URL"
        );
    }
    cfg.balance = balanced;
    if let Some(to) = &args.to {
        cfg.target = Some(Target::parse(to).map_err(|e| flag_error("--to", to, &e))?);
    }
    for route in &args.routes {
        let Some((path, url)) = route.split_once('=') else {
            bail!("--route expects PATH=URL (e.g. /vnc=tcp://127.0.0.1:5900), got {route:?}");
        };
        if !path.starts_with('/') {
            bail!("--route {route:?}: the path must start with '/'");
        }
        let target = Target::parse(url).map_err(|e| flag_error("--route", route, &e))?;
        cfg.paths.push((path.to_owned(), target));
    }
    if let Some(file) = &args.token_file {
        if let Err(e) = std::fs::metadata(file) {
            bail!("--token-file {}: {e}", file.display());
        }
    }
    cfg.token_file = args.token_file;
    if let Some(p) = args.token_param {
        if p.is_empty() {
            bail!("--token-param must not be empty");
        }
        cfg.token_param = p;
    }
    if let Some(v) = &args.proxy_protocol {
        let Ok(pp) = ProxyProtocol::parse(v) else {
            bail!("--proxy-protocol expects v1 or v2, got {v:?}");
        };
        cfg.proxy_protocol = Some(pp);
    }
    if let Some(n) = args.max_connections {
        cfg.server.max_connections = n;
    }
    cfg.server.allowed_origins = args.allowed_origins;
    cfg.connect_before_upgrade = args.connect_before_upgrade;
    if let Some(s) = args.connect_timeout {
        if s == 0 {
            bail!("--connect-timeout must be at least 1 second");
        }
        cfg.connect_timeout = Duration::from_secs(s);
    }
    if let Some(s) = args.drain_timeout {
        if s == 0 {
            bail!("--drain-timeout must be at least 1 second");
        }
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
    if let Some(url) = &args.http_upstream {
        let mut up =
            HttpUpstream::parse(url).map_err(|e| flag_error("--http-upstream", url, &e))?;
        if args.http_upstream_host {
            up.host_header = HostHeader::Upstream;
        }
        if let Some(s) = args.http_timeout {
            up.response_timeout = Duration::from_secs(s);
        }
        cfg.http_upstream = Some(up);
    } else if args.http_upstream_host {
        bail!("--http-upstream-host needs --http-upstream");
    } else if args.http_timeout.is_some() {
        bail!("--http-timeout needs --http-upstream");
    }
    cfg.validate()
        .map_err(|e| anyhow!(super::in_flag_terms::<Args>(&e.to_string())))?;
    Ok(cfg)
}

/// The load balancer from --backend, --balance, --health-*, --register-*.
fn balance(args: &Args) -> Result<Option<BalancerConfig>> {
    let registration = match &args.register_secret_file {
        Some(file) => {
            let secret = std::fs::read_to_string(file)
                .with_context(|| format!("--register-secret-file {}", file.display()))?;
            let mut r = Registration::new(secret.trim());
            if let Some(p) = &args.register_path {
                r.path.clone_from(p);
            }
            Some(r)
        }
        None if args.register_path.is_some() => {
            bail!("--register-path needs --register-secret-file")
        }
        None => None,
    };
    let health_flags = args.health_interval.is_some()
        || args.health_timeout.is_some()
        || args.healthy_threshold.is_some()
        || args.unhealthy_threshold.is_some();
    if args.backends.is_empty() && registration.is_none() {
        if args.balance.is_some() || args.health_check.is_some() || health_flags {
            bail!("--balance and --health-* need --backend URL or --register-secret-file FILE");
        }
        return Ok(None);
    }
    let policy = match &args.balance {
        Some(p) => Policy::parse(p).map_err(|_| {
            anyhow!(
                "--balance {p:?}: expected round-robin, least-connections, cookie:NAME or header:NAME"
            )
        })?,
        None => Policy::RoundRobin,
    };
    let mut cfg = BalancerConfig::new(policy);
    for b in &args.backends {
        cfg.backends
            .push(Target::parse(b).map_err(|e| flag_error("--backend", b, &e))?);
    }
    cfg.health = match args.health_check.as_deref() {
        Some(kind) => {
            let mut h = HealthCheck::default();
            h.probe = match kind {
                "tcp" => Probe::Tcp,
                _ => match kind.strip_prefix("http:") {
                    Some(path) if path.starts_with('/') => Probe::Http {
                        path: path.to_owned(),
                    },
                    _ => bail!("--health-check expects tcp or http:/PATH, got {kind:?}"),
                },
            };
            if let Some(ms) = args.health_interval {
                h.interval = Duration::from_millis(ms);
            }
            if let Some(ms) = args.health_timeout {
                h.timeout = Duration::from_millis(ms);
            }
            if let Some(n) = args.healthy_threshold {
                h.healthy_threshold = n;
            }
            if let Some(n) = args.unhealthy_threshold {
                h.unhealthy_threshold = n;
            }
            Some(h)
        }
        None if health_flags => bail!("--health-interval and the thresholds need --health-check"),
        None => None,
    };
    cfg.registration = registration;
    Ok(Some(cfg))
}

/// `FLAG "VALUE": why`, from a library error that quotes the value itself
/// (`invalid target "x": missing port`).
fn flag_error(flag: &str, value: &str, e: &ProxyError) -> anyhow::Error {
    match e {
        ProxyError::InvalidTarget { reason, .. }
        | ProxyError::InvalidHttpUpstream { reason, .. } => {
            anyhow!("{flag} {value:?}: {reason}")
        }
        ProxyError::InvalidTargetUrl { source, .. } => anyhow!("{flag} {value:?}: {source}"),
        ProxyError::InvalidHttpUpstreamUrl { source, .. } => anyhow!("{flag} {value:?}: {source}"),
        ProxyError::InvalidProxyProtocol { .. } => anyhow!("{flag} {value:?}: expected v1 or v2"),
        _ => anyhow!("{flag} {value:?}: {e}"),
    }
}

/// `wskit proxy`: builds the runtime `--threads` asks for and runs the proxy on it.
///
/// # Errors
/// As [`run`], and a runtime that cannot start.
pub(crate) fn main(args: Args) -> Result<()> {
    let args = merge(args)?;
    let rt = match args.threads.unwrap_or(1) {
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        0 => tokio::runtime::Runtime::new()?,
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build()?,
    };
    rt.block_on(run(args))
}

/// Runs `wskit proxy` until Ctrl-C or SIGTERM.
///
/// # Errors
/// Invalid flags or configuration, an unreadable token file, addresses that cannot be bound.
pub(crate) async fn run(args: Args) -> Result<()> {
    let config = build(args)?;
    let proxy = ProxyServer::start(config).await.map_err(|e| match e {
        ProxyError::TokenFile { path, source } => {
            anyhow!("--token-file {}: {source}", path.display())
        }
        e => anyhow!("{e}"),
    })?;
    for addr in proxy.local_addrs() {
        // Scripts and tests read this line to learn the port.
        println!("listening on {addr}");
    }
    super::shutdown_signal().await?;
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
            Args {
                http_upstream: Some("ftp://x:1".into()),
                ..Args::default()
            },
            Args {
                to: Some("x:1".into()),
                http_timeout: Some(5),
                ..Args::default()
            },
        ] {
            assert!(build(bad).is_err());
        }
    }

    #[test]
    fn balance_flags() {
        let dir = std::env::temp_dir().join(format!("wskit-proxy-lb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let secret = dir.join("secret");
        std::fs::write(&secret, "0123456789abcdef0123\n").unwrap();
        let cfg = build(Args {
            backends: vec!["ws://127.0.0.1:9001".into(), "ws://127.0.0.1:9002".into()],
            balance: Some("header:X-User".into()),
            health_check: Some("http:/health".into()),
            health_interval: Some(250),
            unhealthy_threshold: Some(1),
            register_secret_file: Some(secret.clone()),
            ..Args::default()
        })
        .unwrap();
        let b = cfg.balance.unwrap();
        assert_eq!(b.backends.len(), 2);
        assert_eq!(b.policy, Policy::StickyHeader("X-User".into()));
        let h = b.health.unwrap();
        assert_eq!(
            h.probe,
            Probe::Http {
                path: "/health".into()
            }
        );
        assert_eq!(h.interval, Duration::from_millis(250));
        assert_eq!((h.healthy_threshold, h.unhealthy_threshold), (2, 1));
        let r = b.registration.unwrap();
        assert_eq!(r.secret, "0123456789abcdef0123", "trimmed");
        assert_eq!(r.path, Registration::DEFAULT_PATH);
        // The registration API alone is enough to start.
        assert!(
            build(Args {
                register_secret_file: Some(secret.clone()),
                ..Args::default()
            })
            .is_ok()
        );
        for bad in [
            Args {
                backends: vec!["http://x:1".into()],
                ..Args::default()
            },
            Args {
                backends: vec!["ws://x:1".into()],
                balance: Some("random".into()),
                ..Args::default()
            },
            Args {
                backends: vec!["ws://x:1".into()],
                health_check: Some("udp".into()),
                ..Args::default()
            },
            Args {
                backends: vec!["ws://x:1".into()],
                health_interval: Some(5),
                ..Args::default()
            },
            Args {
                to: Some("x:1".into()),
                balance: Some("round-robin".into()),
                ..Args::default()
            },
            Args {
                register_secret_file: Some(dir.join("missing")),
                ..Args::default()
            },
        ] {
            assert!(build(bad).is_err());
        }
        std::fs::write(&secret, "short").unwrap();
        assert!(
            build(Args {
                register_secret_file: Some(secret),
                ..Args::default()
            })
            .is_err(),
            "a short secret"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn http_upstream_flags() {
        let cfg = build(Args {
            http_upstream: Some("http://127.0.0.1:8000/app".into()),
            http_upstream_host: true,
            http_timeout: Some(7),
            ..Args::default()
        })
        .unwrap();
        let up = cfg.http_upstream.unwrap();
        assert_eq!(up.to_string(), "http://127.0.0.1:8000/app");
        assert_eq!(up.host_header, HostHeader::Upstream);
        assert_eq!(up.response_timeout, Duration::from_secs(7));
        assert!(cfg.target.is_none(), "an HTTP upstream alone is enough");
    }

    #[test]
    fn toml_file_fills_what_flags_leave_out() {
        let dir = std::env::temp_dir().join(format!("wskit-proxy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("wskit.toml");
        let tokens = dir.join("tokens");
        std::fs::write(&tokens, "vnc: 127.0.0.1:5900\n").unwrap();
        std::fs::write(
            &path,
            format!(
                "[serve]\nport = 1\n[turn]\nrealm = \"x\"\n[proxy]\n\
                 listen = [\"127.0.0.1:9200\"]\nto = \"tcp://127.0.0.1:5900\"\n\
                 routes = [\"/vnc1=tcp://10.0.0.5:5901\", \"/vnc2=tls://10.0.0.6:5902\"]\n\
                 token_file = {tokens:?}\ntoken_param = \"t\"\nproxy_protocol = \"v1\"\n\
                 max_connections = 5\nallowed_origins = [\"http://a:*\"]\n\
                 connect_before_upgrade = true\nconnect_timeout = 3\ndrain_timeout = 4\n\
                 heartbeat = 20\nidle_timeout = 60\nusers = [\"file:pw\"]\n\
                 http_upstream = \"http://127.0.0.1:8000\"\nhttp_timeout = 9\nthreads = 3\n"
            ),
        )
        .unwrap();
        let cfg = build(Args {
            config: Some(path.clone()),
            to: Some("tcp://127.0.0.1:5999".into()),
            max_connections: Some(50),
            ..Args::default()
        })
        .unwrap();
        assert_eq!(
            cfg.target.as_ref().unwrap().to_string(),
            "tcp://127.0.0.1:5999",
            "flags win"
        );
        assert_eq!(cfg.server.max_connections, 50, "flags win");
        assert_eq!(cfg.server.bindings[0].addr.to_string(), "127.0.0.1:9200");
        let paths: Vec<String> = cfg.paths.iter().map(|(p, t)| format!("{p}={t}")).collect();
        assert_eq!(
            paths,
            ["/vnc1=tcp://10.0.0.5:5901", "/vnc2=tls://10.0.0.6:5902"]
        );
        assert_eq!(cfg.token_file.as_deref(), Some(tokens.as_path()));
        assert_eq!(cfg.token_param, "t");
        assert_eq!(cfg.proxy_protocol, Some(ProxyProtocol::V1));
        assert_eq!(cfg.server.allowed_origins, ["http://a:*"]);
        assert!(cfg.connect_before_upgrade);
        assert_eq!(cfg.connect_timeout, Duration::from_secs(3));
        assert_eq!(cfg.drain_timeout, Duration::from_secs(4));
        assert!(cfg.server.heartbeat.is_some());
        assert_eq!(cfg.server.idle_timeout, Some(Duration::from_secs(60)));
        assert!(cfg.server.auth.is_some());
        let up = cfg.http_upstream.as_ref().unwrap();
        assert_eq!(up.to_string(), "http://127.0.0.1:8000");
        assert_eq!(up.response_timeout, Duration::from_secs(9));
        assert_eq!(up.host_header, HostHeader::Client);
        // The runtime's threads come from the file too, unless the flag says otherwise.
        let file_threads = merge(Args {
            config: Some(path.clone()),
            ..Args::default()
        })
        .unwrap();
        assert_eq!(file_threads.threads, Some(3));
        let flag_threads = merge(Args {
            config: Some(path.clone()),
            threads: Some(1),
            ..Args::default()
        })
        .unwrap();
        assert_eq!(flag_threads.threads, Some(1));

        // A flag list replaces the file's; routes as a table.
        std::fs::write(
            &path,
            "[proxy]\nroutes = { \"/b\" = \"tcp://h:2\", \"/a\" = \"ws://h:1/x\" }\n",
        )
        .unwrap();
        let cfg = build(Args {
            config: Some(path.clone()),
            ..Args::default()
        })
        .unwrap();
        let paths: Vec<&str> = cfg.paths.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["/a", "/b"]);
        let cfg = build(Args {
            config: Some(path.clone()),
            routes: vec!["/flag=tcp://h:3".into()],
            ..Args::default()
        })
        .unwrap();
        assert_eq!(cfg.paths.len(), 1);
        assert_eq!(cfg.paths[0].0, "/flag");

        for bad in [
            "[proxy]\nlisen = [\"127.0.0.1:1\"]\n",
            "[proxy]\nto = 5\n",
            "[proxy]\nhttp_upstream = \"ws://x:1\"\n",
        ] {
            std::fs::write(&path, bad).unwrap();
            assert!(
                build(Args {
                    config: Some(path.clone()),
                    ..Args::default()
                })
                .is_err(),
                "{bad}"
            );
        }
        assert!(
            build(Args {
                config: Some(dir.join("missing.toml")),
                to: Some("x:1".into()),
                ..Args::default()
            })
            .is_err(),
            "a missing file is an error"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_example_file_holds_the_defaults() {
        let example =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wskit.toml.example");
        let to = Some("tcp://127.0.0.1:5900".to_owned());
        let from_file = merge(Args {
            config: Some(example),
            to: to.clone(),
            ..Args::default()
        })
        .unwrap();
        let defaults = Args {
            to,
            ..Args::default()
        };
        assert_eq!(
            format!(
                "{:?}",
                build(Args {
                    config: None,
                    ..from_file
                })
                .unwrap()
            ),
            format!("{:?}", build(defaults).unwrap())
        );
    }
}
