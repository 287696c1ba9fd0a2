//! `wskit serve`: the WebSocket server. Echo on `/` and `/echo`, a broadcast chat on `/chat`;
//! with `--root DIR`, plain HTTP requests get the static files of DIR on the same port.
//!
//! Every flag can also come from the `[serve]` table of `--config wskit.toml` (same names, with
//! underscores); flags win.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use ws_server::{
    AuthConfig, Binding, Ctx, Decision, Filter, Handler, Heartbeat, Request, Server, ServerConfig,
    SlowReaderPolicy,
    ws_frame::{Message, deflate::DeflateConfig},
};

/// Flags of `wskit serve`.
#[derive(Debug, Default, clap::Args)]
pub(crate) struct Args {
    /// Plain listening address (repeatable). Default: 127.0.0.1:8080.
    #[arg(long = "listen", value_name = "IP:PORT")]
    pub(crate) listen: Vec<SocketAddr>,
    /// TLS listening address (repeatable; needs --tls-cert). With --tls-cert and no
    /// --tls-listen, the --listen addresses use TLS.
    #[arg(long = "tls-listen", value_name = "IP:PORT")]
    pub(crate) tls_listen: Vec<SocketAddr>,
    /// PEM certificate chain (or a combined PEM with the key).
    #[arg(long, value_name = "FILE")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// PEM private key (omit when --tls-cert is a combined PEM).
    #[arg(long, value_name = "FILE")]
    pub(crate) tls_key: Option<PathBuf>,
    /// Worker threads; 0 = one per core. Default: 0.
    #[arg(long, value_name = "N")]
    pub(crate) threads: Option<usize>,
    /// Disable permessage-deflate (on by default).
    #[arg(long)]
    pub(crate) no_deflate: bool,
    /// Compression level 0-9. Default: 1.
    #[arg(long, value_name = "N")]
    pub(crate) deflate_level: Option<u8>,
    /// Supported subprotocol (repeatable).
    #[arg(long = "protocol", value_name = "NAME")]
    pub(crate) protocols: Vec<String>,
    /// Most simultaneous connections (0 = unlimited). Default: 100000.
    #[arg(long, value_name = "N")]
    pub(crate) max_connections: Option<usize>,
    /// Allowed Origin (repeatable; `http://host:*` matches any port). Default: all.
    #[arg(long = "origin", value_name = "ORIGIN")]
    pub(crate) origins: Vec<String>,
    /// Largest message in bytes. Default: 64 MiB.
    #[arg(long, value_name = "BYTES")]
    pub(crate) max_message: Option<usize>,
    /// Largest frame in bytes. Default: 16 MiB.
    #[arg(long, value_name = "BYTES")]
    pub(crate) max_frame: Option<usize>,
    /// Handshake timeout in seconds. Default: 10.
    #[arg(long, value_name = "SECS")]
    pub(crate) handshake_timeout: Option<u64>,
    /// Close connections idle for this many seconds. Default: never.
    #[arg(long, value_name = "SECS")]
    pub(crate) idle_timeout: Option<u64>,
    /// Ping every N seconds. Default: no heartbeat.
    #[arg(long, value_name = "SECS")]
    pub(crate) heartbeat: Option<u64>,
    /// Drop connections whose pong takes longer than this. Default: 10.
    #[arg(long, value_name = "SECS")]
    pub(crate) heartbeat_timeout: Option<u64>,
    /// Ping only connections that were silent for a whole interval.
    #[arg(long)]
    pub(crate) heartbeat_only_idle: bool,
    /// Per-connection limit in bytes per second (each direction). Default: none.
    #[arg(long, value_name = "BYTES")]
    pub(crate) throttle: Option<u64>,
    /// Per-connection command queue capacity. Default: 256.
    #[arg(long, value_name = "N")]
    pub(crate) send_queue: Option<usize>,
    /// Slow readers: `disconnect` (close with 1013) or `backpressure`. Default: disconnect.
    #[arg(long, value_name = "POLICY")]
    pub(crate) slow_reader: Option<String>,
    /// Basic-auth user as NAME:PASSWORD (repeatable); any user turns authentication on.
    #[arg(long = "user", value_name = "NAME:PASSWORD")]
    pub(crate) users: Vec<String>,
    /// Serve the static files of this directory to plain HTTP GET/HEAD requests.
    #[arg(long, value_name = "DIR")]
    pub(crate) root: Option<PathBuf>,
    /// Configuration file with a [serve] table.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
}

/// The `[serve]` table of wskit.toml.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ServeFile {
    listen: Vec<SocketAddr>,
    tls_listen: Vec<SocketAddr>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    threads: Option<usize>,
    no_deflate: bool,
    deflate_level: Option<u8>,
    protocols: Vec<String>,
    max_connections: Option<usize>,
    origins: Vec<String>,
    max_message: Option<usize>,
    max_frame: Option<usize>,
    handshake_timeout: Option<u64>,
    idle_timeout: Option<u64>,
    heartbeat: Option<u64>,
    heartbeat_timeout: Option<u64>,
    heartbeat_only_idle: bool,
    throttle: Option<u64>,
    send_queue: Option<usize>,
    slow_reader: Option<String>,
    users: Vec<String>,
    root: Option<PathBuf>,
}

fn read_file(path: &std::path::Path) -> Result<ServeFile> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value: toml::Value =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let serve = value
        .get("serve")
        .cloned()
        .unwrap_or(toml::Value::Table(Default::default()));
    serve
        .try_into()
        .with_context(|| format!("[serve] in {}", path.display()))
}

fn or_vec<T>(flag: Vec<T>, file: Vec<T>) -> Vec<T> {
    if flag.is_empty() { file } else { flag }
}

/// Turns flags and file into the library configuration; also returns the thread count.
fn build(args: Args) -> Result<(ServerConfig, usize)> {
    let f = match &args.config {
        Some(p) => read_file(p)?,
        None => ServeFile::default(),
    };
    let mut cfg = ServerConfig::default();
    let listen = or_vec(args.listen, f.listen);
    let tls_listen = or_vec(args.tls_listen, f.tls_listen);
    let tls_cert = args.tls_cert.or(f.tls_cert);
    let tls_key = args.tls_key.or(f.tls_key);
    let tls = match &tls_cert {
        Some(cert) => {
            let tls_cfg = match &tls_key {
                Some(key) => ws_tls::ServerTlsConfig::new(cert, key),
                None => ws_tls::ServerTlsConfig::combined(cert),
            };
            Some(ws_tls::server_config(&tls_cfg).context("TLS configuration")?)
        }
        None if !tls_listen.is_empty() => bail!("--tls-listen needs --tls-cert"),
        None => None,
    };
    let mut bindings = Vec::new();
    match (&tls, tls_listen.is_empty()) {
        (Some(tls), true) => {
            let addrs = if listen.is_empty() {
                vec![ServerConfig::DEFAULT_LISTEN.parse()?]
            } else {
                listen
            };
            bindings.extend(addrs.into_iter().map(|a| Binding::tls(a, tls.clone())));
        }
        (Some(tls), false) => {
            bindings.extend(listen.into_iter().map(Binding::plain));
            bindings.extend(tls_listen.into_iter().map(|a| Binding::tls(a, tls.clone())));
        }
        (None, _) => bindings.extend(listen.into_iter().map(Binding::plain)),
    }
    if !bindings.is_empty() {
        cfg.bindings = bindings;
    }
    if !(args.no_deflate || f.no_deflate) {
        let mut d = DeflateConfig::default();
        if let Some(level) = args.deflate_level.or(f.deflate_level) {
            if level > 9 {
                bail!("--deflate-level must be 0..=9");
            }
            d.level = level;
        }
        cfg.deflate = Some(d);
    }
    cfg.protocols = or_vec(args.protocols, f.protocols);
    if let Some(n) = args.max_connections.or(f.max_connections) {
        cfg.max_connections = n;
    }
    cfg.allowed_origins = or_vec(args.origins, f.origins);
    if let Some(n) = args.max_message.or(f.max_message) {
        cfg.ws.max_message = n;
        cfg.ws.max_frame = cfg.ws.max_frame.min(n);
    }
    if let Some(n) = args.max_frame.or(f.max_frame) {
        cfg.ws.max_frame = n;
    }
    if let Some(s) = args.handshake_timeout.or(f.handshake_timeout) {
        cfg.handshake_timeout = Duration::from_secs(s);
    }
    cfg.idle_timeout = args
        .idle_timeout
        .or(f.idle_timeout)
        .map(Duration::from_secs);
    if let Some(interval) = args.heartbeat.or(f.heartbeat) {
        let mut hb = Heartbeat::new(Duration::from_secs(interval), Heartbeat::DEFAULT_TIMEOUT);
        if let Some(t) = args.heartbeat_timeout.or(f.heartbeat_timeout) {
            hb.timeout = Duration::from_secs(t);
        }
        hb.only_if_idle = args.heartbeat_only_idle || f.heartbeat_only_idle;
        cfg.heartbeat = Some(hb);
    }
    cfg.throttle = args.throttle.or(f.throttle);
    if let Some(n) = args.send_queue.or(f.send_queue) {
        cfg.send_queue = n;
    }
    if let Some(p) = args.slow_reader.or(f.slow_reader) {
        cfg.slow_reader = match p.as_str() {
            "disconnect" => SlowReaderPolicy::Disconnect,
            "backpressure" => SlowReaderPolicy::Backpressure,
            other => bail!("--slow-reader: expected disconnect or backpressure, got {other:?}"),
        };
    }
    let users = or_vec(args.users, f.users)
        .iter()
        .map(|s| match s.split_once(':') {
            Some((u, p)) if !u.is_empty() => Ok((u.to_owned(), p.to_owned())),
            _ => bail!("--user expects NAME:PASSWORD, got {s:?}"),
        })
        .collect::<Result<Vec<_>>>()?;
    if !users.is_empty() {
        cfg.auth = Some(AuthConfig::basic(users));
    }
    cfg.document_root = args.root.or(f.root);
    cfg.validate().context("invalid configuration")?;
    Ok((cfg, args.threads.or(f.threads).unwrap_or(0)))
}

/// Echo on `/` and `/echo`, broadcast chat on `/chat`, 404 elsewhere.
struct Serve;

const CHAT: &str = "chat";

fn is_chat(url: &str) -> bool {
    url.strip_prefix("/chat")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('?'))
}

impl Handler for Serve {
    async fn on_handshake(&self, request: &Request) -> Decision {
        match request.path() {
            "/" | "/echo" | "/chat" => Decision::accept(),
            _ => Decision::reject(404),
        }
    }

    async fn on_connect(&self, ctx: &mut Ctx<'_>) {
        if is_chat(ctx.info().url()) {
            let _ = ctx.subscribe(CHAT);
        }
    }

    async fn on_message(&self, ctx: &mut Ctx<'_>, msg: Message) {
        if is_chat(ctx.info().url()) {
            let filter = Filter::channel(CHAT).excluding([ctx.id()]);
            let server = ctx.server().clone();
            let _ = ctx.send(msg.clone());
            server.broadcast(msg, &filter).await;
        } else {
            let _ = ctx.send(msg);
        }
    }
}

/// Runs `wskit serve` until Ctrl-C, on its own tokio runtime.
///
/// # Errors
/// Invalid flags or configuration, or addresses that cannot be bound.
pub(crate) fn run(args: Args) -> Result<()> {
    let (config, threads) = build(args)?;
    let runtime = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        if threads > 1 {
            b.worker_threads(threads);
        }
        b.enable_all().build()?
    };
    runtime.block_on(async move {
        let server = Server::start(config, Serve).await?;
        for addr in server.local_addrs() {
            // Scripts (xtask autobahn, tests) read this line to learn the port.
            println!("listening on {addr}");
        }
        tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?;
        tracing::info!("stopping");
        server.stop().await;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_file_map_to_the_library_config() {
        let dir = std::env::temp_dir().join(format!("wskit-serve-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("wskit.toml");
        std::fs::write(
            &path,
            "[serve]\nlisten = [\"127.0.0.1:9001\"]\nheartbeat = 20\nusers = [\"a:b\"]\n\
             slow_reader = \"backpressure\"\n[other]\nx = 1\n",
        )
        .unwrap();
        let args = Args {
            config: Some(path),
            threads: Some(1),
            protocols: vec!["chat".into()],
            no_deflate: true,
            ..Args::default()
        };
        let (cfg, threads) = build(args).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(threads, 1);
        assert_eq!(cfg.bindings[0].addr.to_string(), "127.0.0.1:9001");
        assert_eq!(cfg.heartbeat.unwrap().interval, Duration::from_secs(20));
        assert!(cfg.auth.is_some());
        assert!(cfg.deflate.is_none());
        assert_eq!(cfg.slow_reader, SlowReaderPolicy::Backpressure);
        assert_eq!(cfg.protocols, vec!["chat".to_owned()]);
        assert_eq!(cfg.document_root, None);
    }

    #[test]
    fn root_flag_sets_the_document_root() {
        let dir = std::env::temp_dir();
        let args = Args {
            root: Some(dir.clone()),
            ..Args::default()
        };
        let (cfg, _) = build(args).unwrap();
        assert_eq!(cfg.document_root, Some(dir));
        let args = Args {
            root: Some("/definitely/not/here".into()),
            ..Args::default()
        };
        assert!(build(args).is_err());
    }

    #[test]
    fn bad_flags_are_reported() {
        let args = Args {
            slow_reader: Some("maybe".into()),
            ..Args::default()
        };
        assert!(build(args).is_err());
        let args = Args {
            tls_listen: vec!["127.0.0.1:0".parse().unwrap()],
            ..Args::default()
        };
        assert!(build(args).is_err());
    }
}
