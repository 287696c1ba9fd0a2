//! `wskit serve`: the WebSocket server. Echo on `/` and `/echo`, a broadcast chat on `/chat`;
//! on the same port, over plain HTTP: ws-server's built-in test page at `/` and
//! `/sgcWebSockets.html` and its JavaScript client at `/wskit.js` and `/sgcWebSockets.js` (off
//! with `--no-test-page`), server-sent events on `/sse` (a `welcome` event on
//! connect, then every chat message as a `chat` event), multipart uploads on `POST /upload`
//! with `--upload-dir DIR`, and with `--root DIR` the static files of DIR (which win over the
//! embedded page).
//!
//! Every flag can also come from the `[serve]` table of `--config wskit.toml` (same names, with
//! underscores; the token settings too: `jwt_secret`, `oauth2`, `oauth2_db`, ...); flags win
//! over the file, the file over the defaults (one struct for both: see `cmd::config`).

use std::{fmt::Write as _, net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use serde::Deserialize;
use ws_server::{
    AuthConfig, Binding, Body, Ctx, Decision, Filter, Handler, Heartbeat, HttpCompression, Request,
    Response, ServerConfig, SgcAuth, SlowReaderPolicy, SseEvent, Transport, UploadConfig,
    multipart,
    ws_frame::{Message, deflate::DeflateConfig},
};

/// The built-in test page, served by ws-server at `/` and `/sgcWebSockets.html`.
use ws_server::assets::TEST_PAGE_HTML as INDEX_HTML;
#[cfg(test)]
use ws_server::assets::WSKIT_JS;
/// Path of the event stream.
const SSE_PATH: &str = "/sse";
/// Default of `--max-upload`: 64 MiB.
const DEFAULT_MAX_UPLOAD: u64 = 64 << 20;

super::config::layered! {
/// Flags of `wskit serve`, and the `[serve]` table of wskit.toml.
#[derive(Debug, Default, clap::Args, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Args {
    /// Plain listening address (repeatable; a host name resolves). Default: 127.0.0.1:8080.
    #[arg(long = "listen", value_name = "HOST:PORT", value_parser = super::listen_addr)]
    #[serde(deserialize_with = "super::de_listen")]
    pub(crate) listen: Vec<SocketAddr>,
    /// TLS listening address (repeatable; needs --tls-cert). With --tls-cert and no
    /// --tls-listen, the --listen addresses use TLS.
    #[arg(long = "tls-listen", value_name = "HOST:PORT", value_parser = super::listen_addr)]
    #[serde(deserialize_with = "super::de_listen")]
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
    #[serde(alias = "protocol")]
    pub(crate) protocols: Vec<String>,
    /// Most simultaneous connections (0 = unlimited). Default: 100000.
    #[arg(long, value_name = "N")]
    pub(crate) max_connections: Option<usize>,
    /// Allowed Origin (repeatable; `http://host:*` matches any port). Default: all.
    #[arg(long = "origin", value_name = "ORIGIN")]
    #[serde(alias = "origin")]
    pub(crate) origins: Vec<String>,
    /// Largest message in bytes. Default: 64 MiB.
    #[arg(long, value_name = "BYTES")]
    pub(crate) max_message: Option<usize>,
    /// Largest frame in bytes. Default: 16 MiB.
    #[arg(long, value_name = "BYTES")]
    pub(crate) max_frame: Option<usize>,
    /// Most frames one message may be split into; more close with 1009. Default: 65537.
    #[arg(long, value_name = "N")]
    pub(crate) max_fragments: Option<usize>,
    /// Seconds a fragmented message may stay unfinished before the connection is closed with
    /// 1008; 0 = no deadline. Default: 60.
    #[arg(long, value_name = "SECS")]
    pub(crate) message_timeout: Option<u64>,
    /// Bytes in partly received messages, all connections together, past which growing ones
    /// are refused with 1013; 0 = no budget. Default: 1 GiB.
    #[arg(long, value_name = "BYTES")]
    pub(crate) max_partial_bytes: Option<usize>,
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
    /// Basic-auth user as NAME:PASSWORD (repeatable). Any user turns authentication on for
    /// every route: WebSocket upgrades, the test page, static files, /sse and /upload.
    #[arg(long = "user", value_name = "NAME:PASSWORD")]
    #[serde(alias = "user")]
    pub(crate) users: Vec<String>,
    /// A path served without credentials when --user is given (repeatable): exact (`/`,
    /// `/health`), or a prefix ending in `*` (`/static/*`).
    #[arg(long = "public", value_name = "PATH")]
    pub(crate) public: Vec<String>,
    /// With --user: also accept the seed's URL authentication, a WebSocket to
    /// `[PATH]/sgc/auth/url/NAME/PASSWORD` (what wskit.js's `sgcWebSocket({host, user,
    /// password})` sends). Weaker than a header: the password ends up in logs and history.
    #[arg(long)]
    pub(crate) sgc_url_auth: bool,
    /// With --user: also answer `GET [PATH]/sgc/req/auth/session/NAME/PASSWORD` with a one-time
    /// token for `[PATH]/sgc/auth/session/TOKEN`, good for this many seconds (the seed's
    /// session authentication).
    #[arg(long, value_name = "SECS")]
    pub(crate) sgc_session_auth: Option<u64>,
    /// The frame log: --log-frames FILE, --log-payload BYTES (command line only).
    #[command(flatten)]
    #[serde(skip)]
    pub(crate) frame_log: crate::frame_log::FrameLogArgs,
    /// Token authentication: JWT (--jwt-secret, --jwt-key, --jwks) or the OAuth2 server.
    #[command(flatten)]
    #[serde(flatten)]
    pub(crate) token_auth: super::oauth2::TokenAuthArgs,
    /// Every route needs an API key of this database (`wskit apikey add NAME --db FILE`) in the
    /// X-API-Key header or the api_key query parameter; --public paths need none.
    #[arg(long, value_name = "FILE")]
    pub(crate) api_keys: Option<PathBuf>,
    /// Scale-out: --backplane URL, --node-id ID (see cmd::backplane).
    #[command(flatten)]
    #[serde(flatten)]
    pub(crate) backplane: super::backplane::BackplaneArgs,
    /// Serve the static files of this directory to plain HTTP GET/HEAD requests (they win
    /// over the built-in test page).
    #[arg(long, value_name = "DIR")]
    pub(crate) root: Option<PathBuf>,
    /// Milliseconds a small static file (up to 64 KiB) is answered from memory before the
    /// file is looked at again; 0 looks at the file on every request. Default: 1000.
    #[arg(long, value_name = "MS")]
    pub(crate) file_cache_ms: Option<u64>,
    /// Compress HTTP answers (static files, the test page and client, /upload's report) with
    /// gzip or deflate when the request's Accept-Encoding allows: text, JSON, XML, JavaScript,
    /// SVG and other compressible types, of at least --compress-min-size bytes.
    #[arg(long)]
    pub(crate) compress: bool,
    /// With --compress: the smallest body compressed, in bytes. Default: 1024.
    #[arg(long, value_name = "BYTES")]
    pub(crate) compress_min_size: Option<u64>,
    /// With --compress: the level, 0 (store) to 9 (smallest). Default: 6.
    #[arg(long, value_name = "N")]
    pub(crate) compress_level: Option<u32>,
    /// Do not serve the built-in test page at / and the JavaScript client at /wskit.js.
    #[arg(long)]
    pub(crate) no_test_page: bool,
    /// The file's other spelling: `test_page = false` is `no_test_page = true`.
    #[arg(skip)]
    pub(crate) test_page: Option<bool>,
    /// Save multipart/form-data uploads to `POST /upload` in this directory (created when
    /// missing). Default: none (/upload answers 404).
    #[arg(long, value_name = "DIR")]
    pub(crate) upload_dir: Option<PathBuf>,
    /// Receive files into this directory: the files protocol (subprotocol `wskit-files.v1`) on
    /// /files, tus uploads under /files/, the browser client at /wskit-files.js; files sent with
    /// `wskit files send --broadcast --channel C` go on to the clients subscribed to C.
    /// Default: none.
    #[arg(long, value_name = "DIR")]
    pub(crate) files_dir: Option<PathBuf>,
    /// Largest upload request body (and file) in bytes. Default: 64 MiB.
    #[arg(long, value_name = "BYTES")]
    pub(crate) max_upload: Option<u64>,
    /// Configuration file (wskit.toml) with a `[serve]` table.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub(crate) config: Option<PathBuf>,
}
}

/// What `build` makes of flags and file.
struct Setup {
    config: ServerConfig,
    threads: usize,
    app: Serve,
    /// Token authentication (JWT or the OAuth2 server), from flags and file.
    token_auth: super::oauth2::TokenAuthArgs,
    api_keys: Option<PathBuf>,
    backplane: super::backplane::BackplaneArgs,
}

/// Turns flags and file into the library configuration, the thread count and the handler.
fn build(args: Args) -> Result<Setup> {
    let config = args.config.clone();
    let args = super::config::merged(args, config.as_deref(), "serve")?;
    let mut cfg = ServerConfig::default();
    let listen = args.listen;
    let tls_listen = args.tls_listen;
    let tls_cert = args.tls_cert;
    let tls_key = args.tls_key;
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
    if !args.no_deflate {
        let mut d = DeflateConfig::default();
        if let Some(level) = args.deflate_level {
            if level > 9 {
                bail!("--deflate-level must be 0..=9");
            }
            d.level = level;
        }
        cfg.deflate = Some(d);
    }
    cfg.protocols = args.protocols;
    if let Some(n) = args.max_connections {
        cfg.max_connections = n;
    }
    cfg.allowed_origins = args.origins;
    if let Some(n) = args.max_message {
        cfg.ws.max_message = n;
        cfg.ws.max_frame = cfg.ws.max_frame.min(n);
    }
    if let Some(n) = args.max_frame {
        cfg.ws.max_frame = n;
    }
    if let Some(n) = args.max_fragments {
        cfg.ws.max_fragments = n;
    }
    if let Some(s) = args.message_timeout {
        cfg.ws.message_timeout = (s > 0).then(|| Duration::from_secs(s));
    }
    if let Some(n) = args.max_partial_bytes {
        cfg.max_partial_bytes = n;
    }
    if let Some(s) = args.handshake_timeout {
        cfg.handshake_timeout = Duration::from_secs(s);
    }
    cfg.idle_timeout = args.idle_timeout.map(Duration::from_secs);
    if let Some(interval) = args.heartbeat {
        let timeout = args
            .heartbeat_timeout
            .map_or(Heartbeat::DEFAULT_TIMEOUT, Duration::from_secs);
        let mut hb = Heartbeat::new(Duration::from_secs(interval), timeout);
        hb.only_if_idle = args.heartbeat_only_idle;
        cfg.heartbeat = Some(hb);
    }
    cfg.throttle = args.throttle;
    if let Some(n) = args.send_queue {
        cfg.send_queue = n;
    }
    if let Some(p) = args.slow_reader {
        cfg.slow_reader = match p.as_str() {
            "disconnect" => SlowReaderPolicy::Disconnect,
            "backpressure" => SlowReaderPolicy::Backpressure,
            other => bail!("--slow-reader: expected disconnect or backpressure, got {other:?}"),
        };
    }
    let users = args
        .users
        .iter()
        .map(|s| match s.split_once(':') {
            Some((u, p)) if !u.is_empty() => Ok((u.to_owned(), p.to_owned())),
            _ => bail!("--user expects NAME:PASSWORD, got {s:?}"),
        })
        .collect::<Result<Vec<_>>>()?;
    let public = args.public;
    let mut sgc = SgcAuth::default();
    if args.sgc_url_auth {
        sgc = sgc.with_url();
    }
    match args.sgc_session_auth {
        Some(0) => bail!("--sgc-session-auth: a token must live at least 1 second"),
        Some(secs) => sgc = sgc.with_sessions(Duration::from_secs(secs)),
        None => {}
    }
    if sgc.enabled() && users.is_empty() {
        bail!(
            "--sgc-url-auth and --sgc-session-auth check the passwords of --user NAME:PASSWORD; give at least one --user"
        );
    }
    if users.is_empty() && (args.token_auth.enabled() || args.api_keys.is_some()) {
        // The token guard (cmd::oauth2::start) takes the public paths from here.
        let mut auth = AuthConfig::default();
        auth.public_paths = public;
        cfg.auth = Some(auth);
    } else if users.is_empty() {
        if !public.is_empty() {
            bail!(
                "--public makes paths public when --user is given; without --user every path is public already"
            );
        }
    } else {
        let mut auth = AuthConfig::basic(users);
        auth.public_paths = public;
        auth.sgc = sgc;
        cfg.auth = Some(auth);
    }
    cfg.document_root = args.root;
    if let Some(ms) = args.file_cache_ms {
        cfg.file_cache = Duration::from_millis(ms);
    }
    if args.compress {
        let mut c = HttpCompression::on();
        if let Some(n) = args.compress_min_size {
            c.min_size = n;
        }
        if let Some(level) = args.compress_level {
            if level > 9 {
                bail!("--compress-level must be 0..=9");
            }
            c.level = level;
        }
        cfg.compression = c;
    } else if args.compress_min_size.is_some() || args.compress_level.is_some() {
        bail!("--compress-min-size and --compress-level set up --compress; add --compress");
    }
    cfg.sse.enabled = true;
    cfg.sse.paths = vec![SSE_PATH.to_owned()];
    let test_page = !args.no_test_page && args.test_page.unwrap_or(true);
    cfg.html_files = test_page;
    cfg.javascript_files = test_page;
    let max_upload = args.max_upload.unwrap_or(DEFAULT_MAX_UPLOAD);
    if max_upload == 0 {
        bail!("--max-upload must be at least 1 byte");
    }
    let upload = args.upload_dir.map(|dir| {
        let mut u = UploadConfig::new(dir);
        u.max_total_size = max_upload;
        u.max_file_size = max_upload;
        // The server-wide body limit must let the upload through; other routes read no body.
        cfg.http.max_body = cfg.http.max_body.max(max_upload);
        u
    });
    cfg.test_page = test_page_html(upload.is_some());
    let files = args.files_dir.map(crate::files::Service::new).transpose()?;
    if files.is_some() {
        // One tus PATCH may carry a whole file.
        cfg.http.max_body = cfg.http.max_body.max(crate::files::MAX_BODY);
    }
    cfg.validate()
        .map_err(|e| anyhow::anyhow!(super::in_flag_terms::<Args>(&e.to_string())))?;
    Ok(Setup {
        config: cfg,
        threads: args.threads.unwrap_or(0),
        token_auth: args.token_auth,
        api_keys: args.api_keys,
        backplane: args.backplane,
        app: Serve {
            test_page,
            upload,
            files,
        },
    })
}

/// Echo on `/` and `/echo`, broadcast chat on `/chat` (also sent to `/sse` as `chat` events),
/// the test page, uploads; 404 elsewhere.
struct Serve {
    /// The server serves the test page and the client (`ServerConfig::html_files` and
    /// `javascript_files`, with the page from `test_page_html`).
    test_page: bool,
    /// `POST /upload` saves here; `None`: 404.
    upload: Option<UploadConfig>,
    /// `--files-dir`: the files protocol on /files and tus under /files/.
    files: Option<crate::files::Service>,
}

/// Paths that take a WebSocket upgrade.
const WS_PATHS: [&str; 3] = ["/", "/echo", "/chat"];

/// The built-in page as served: its upload form hidden, and how to turn uploads on shown
/// instead, when there is no upload directory.
fn test_page_html(uploads: bool) -> Bytes {
    if uploads {
        return Bytes::from_static(INDEX_HTML.as_bytes());
    }
    INDEX_HTML
        .replacen(r#"<p id="upload-off" hidden>"#, r#"<p id="upload-off">"#, 1)
        .replacen(
            r#"<form id="upload-form""#,
            r#"<form id="upload-form" hidden"#,
            1,
        )
        .into()
}

/// The answer to a successful upload: `saved NAME (N bytes)` per file.
fn upload_report(upload: &multipart::Upload) -> String {
    let mut out = String::new();
    for f in &upload.files {
        let _ = writeln!(out, "saved {} ({} bytes)", f.name(), f.size);
    }
    if upload.files.is_empty() {
        out.push_str("no file saved\n");
    }
    out
}

impl Serve {
    async fn upload(&self, request: &Request, body: &mut Body<'_>) -> Response {
        let Some(config) = &self.upload else {
            return Response::text(
                404,
                "uploads are off: start wskit serve with --upload-dir DIR to accept them\n",
            );
        };
        if request.method() != "POST" {
            return Response::new(405).with_header("Allow", "POST");
        }
        match multipart::save(request, body, config, multipart::save_all).await {
            Ok(upload) => {
                for f in &upload.files {
                    tracing::info!(name = f.name(), size = f.size, peer = %request.peer_addr(), "upload saved");
                }
                Response::text(200, upload_report(&upload))
            }
            Err(e) => {
                tracing::warn!(peer = %request.peer_addr(), "upload failed: {e}");
                e.response()
            }
        }
    }
}

const CHAT: &str = "chat";

fn is_chat(url: &str) -> bool {
    url.strip_prefix("/chat")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('?'))
}

impl Handler for Serve {
    async fn on_handshake(&self, request: &Request) -> Decision {
        if let Some(d) = crate::files::handshake(self.files.as_ref(), request) {
            return d;
        }
        let path = request.path();
        if WS_PATHS.contains(&path) {
            return Decision::accept();
        }
        Decision::Reject(Response::text(
            404,
            format!(
                "no WebSocket endpoint at {path}; this server has {} (echo on / and /echo, chat on /chat)\n",
                WS_PATHS.join(", ")
            ),
        ))
    }

    async fn on_connect(&self, ctx: &mut Ctx<'_>) {
        if crate::files::on_connect(self.files.as_ref(), ctx).await {
            return;
        }
        if ctx.info().transport() == Transport::Sse {
            let _ = ctx.send_event(&SseEvent::new("hello").with_event("welcome"));
        } else if is_chat(ctx.info().url()) {
            let _ = ctx.subscribe(CHAT);
        }
    }

    async fn on_message(&self, ctx: &mut Ctx<'_>, msg: Message) {
        if crate::files::on_message(self.files.as_ref(), ctx, &msg).await {
            return;
        }
        if is_chat(ctx.info().url()) {
            let filter = Filter::channel(CHAT).excluding([ctx.id()]);
            let server = ctx.server().clone();
            let _ = ctx.send(msg.clone());
            let text = match &msg {
                Message::Text(t) => Some(t.as_str().to_owned()),
                Message::Binary(b) => std::str::from_utf8(b).ok().map(str::to_owned),
            };
            server.broadcast(msg, &filter).await;
            if let Some(text) = text {
                let event = SseEvent::new(text).with_event("chat");
                server.broadcast_event(event, &Filter::path(SSE_PATH)).await;
            }
        } else {
            let _ = ctx.send(msg);
        }
    }

    async fn on_disconnect(
        &self,
        info: &std::sync::Arc<ws_server::ConnInfo>,
        _: ws_server::Disconnect,
    ) {
        crate::files::on_disconnect(self.files.as_ref(), info).await;
    }

    async fn on_http(&self, request: &Request, body: &mut Body<'_>) -> Response {
        if let Some(r) = crate::files::on_http(self.files.as_ref(), request, body).await {
            return r;
        }
        match request.path() {
            // `/` and `/wskit.js` (and the seed's names) are served by ws-server itself.
            "/index.html" if self.test_page => Response::redirect(301, "/"),
            "/upload" => self.upload(request, body).await,
            // Reached only by a GET whose Accept field refuses the stream.
            SSE_PATH => Response::text(
                406,
                "/sse is a server-sent event stream: send Accept: text/event-stream\n",
            ),
            _ => Response::new(404),
        }
    }
}

/// Runs `wskit serve` until Ctrl-C or SIGTERM, on its own tokio runtime.
///
/// # Errors
/// Invalid flags or configuration, or addresses that cannot be bound.
pub(crate) fn run(args: Args) -> Result<()> {
    let Setup {
        config,
        threads,
        app,
        token_auth,
        api_keys,
        backplane,
    } = build(args)?;
    let files = app.files.clone();
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
        let link = backplane.connect()?;
        let server = super::apikey::start(config, app, &token_auth, api_keys.as_deref()).await?;
        super::backplane::attach(&server, link);
        if let Some(f) = &files {
            f.set_server(server.clone());
        }
        for addr in server.local_addrs() {
            // Scripts (xtask autobahn, tests) read this line to learn the port.
            println!("listening on {addr}");
        }
        super::shutdown_signal().await?;
        server.stop().await;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ws_server::Server;

    #[test]
    fn flags_and_file_map_to_the_library_config() {
        let dir = std::env::temp_dir().join(format!("wskit-serve-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("wskit.toml");
        std::fs::write(
            &path,
            "[serve]\nlisten = [\"127.0.0.1:9001\"]\nheartbeat = 20\nusers = [\"a:b\"]\n\
             slow_reader = \"backpressure\"\n[proxy]\nto = \"x:1\"\n",
        )
        .unwrap();
        let args = Args {
            config: Some(path),
            threads: Some(1),
            protocols: vec!["chat".into()],
            no_deflate: true,
            ..Args::default()
        };
        let Setup {
            config: cfg,
            threads,
            app,
            ..
        } = build(args).unwrap();
        assert!(app.test_page);
        assert!(app.upload.is_none());
        assert!(cfg.sse.allows("/sse") && !cfg.sse.allows("/chat"));
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

    /// `wskit serve ARGS` as clap parses it (no clap default may hide the file's value).
    fn parse(args: &[&str]) -> Args {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: Args,
        }
        let argv = std::iter::once("serve").chain(args.iter().copied());
        <Cli as clap::Parser>::try_parse_from(argv).unwrap().args
    }

    #[test]
    fn flags_over_the_file_over_the_defaults() {
        let path = std::env::temp_dir().join(format!("wskit-layers-{}.toml", std::process::id()));
        std::fs::write(
            &path,
            "[serve]\nsend_queue = 7\nprotocols = [\"file\"]\nno_deflate = true\n\
             max_upload = 4096\nupload_dir = \"/srv/up\"\noauth2 = true\n\
             oauth2_db = \"file.db\"\noauth2_jwt_alg = \"EdDSA\"\njwt_alg = [\"HS512\"]\n",
        )
        .unwrap();
        let config = path.to_str().unwrap();
        // Neither: the defaults.
        let s = build(parse(&[])).unwrap();
        assert_eq!(s.config.send_queue, ServerConfig::default().send_queue);
        assert!(s.config.protocols.is_empty());
        assert!(s.config.deflate.is_some());
        assert!(!s.token_auth.oauth2);
        assert_eq!(s.token_auth.oauth2_db, None);
        // The file over the defaults.
        let s = build(parse(&["--config", config])).unwrap();
        assert_eq!(s.config.send_queue, 7);
        assert_eq!(s.config.protocols, ["file"]);
        assert!(s.config.deflate.is_none());
        assert_eq!(s.app.upload.as_ref().unwrap().max_file_size, 4096);
        assert!(s.token_auth.oauth2);
        assert_eq!(s.token_auth.oauth2_db, Some(PathBuf::from("file.db")));
        assert_eq!(s.token_auth.oauth2_jwt_alg.as_deref(), Some("EdDSA"));
        assert_eq!(s.token_auth.jwt_algs, ["HS512"]);
        // The flags over the file.
        let s = build(parse(&[
            "--config",
            config,
            "--send-queue",
            "9",
            "--protocol",
            "a",
            "--protocol",
            "b",
            "--max-upload",
            "100",
            "--oauth2-db",
            "flag.db",
            "--oauth2-jwt-alg",
            "ES384",
        ]))
        .unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(s.config.send_queue, 9);
        assert_eq!(s.config.protocols, ["a", "b"]);
        assert_eq!(s.app.upload.as_ref().unwrap().max_file_size, 100);
        assert_eq!(
            s.app.upload.unwrap().dir,
            PathBuf::from("/srv/up"),
            "what the flags leave out still comes from the file"
        );
        assert_eq!(s.token_auth.oauth2_db, Some(PathBuf::from("flag.db")));
        assert_eq!(s.token_auth.oauth2_jwt_alg.as_deref(), Some("ES384"));
        assert!(s.token_auth.oauth2);
    }

    #[test]
    fn unknown_keys_in_the_serve_table_are_errors() {
        let path = std::env::temp_dir().join(format!("wskit-unknown-{}.toml", std::process::id()));
        // `jwt_secrets` is neither a serve key nor a token key (the token keys sit in a
        // flattened struct: the check must still see them all).
        std::fs::write(&path, "[serve]\njwt_secrets = \"x\"\n").unwrap();
        let e = build(Args {
            config: Some(path.clone()),
            ..Args::default()
        })
        .map(|_| ())
        .unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert!(
            format!("{e:#}").contains("unknown field `jwt_secrets`"),
            "{e:#}"
        );
    }

    #[test]
    fn fragment_budget_message_timeout_and_partial_budget() {
        let cfg = build(Args::default()).unwrap().config;
        assert_eq!(cfg.ws.max_fragments, 65_537);
        assert_eq!(cfg.ws.message_timeout, Some(Duration::from_secs(60)));
        assert_eq!(cfg.max_partial_bytes, 1 << 30);
        let args = Args {
            max_fragments: Some(100),
            message_timeout: Some(0),
            max_partial_bytes: Some(4096),
            ..Args::default()
        };
        let cfg = build(args).unwrap().config;
        assert_eq!(cfg.ws.max_fragments, 100);
        assert_eq!(cfg.ws.message_timeout, None);
        assert_eq!(cfg.max_partial_bytes, 4096);
        let path = std::env::temp_dir().join(format!("wskit-frag-{}.toml", std::process::id()));
        std::fs::write(
            &path,
            "[serve]\nmax_fragments = 7\nmessage_timeout = 5\nmax_partial_bytes = 0\n",
        )
        .unwrap();
        let args = Args {
            config: Some(path.clone()),
            ..Args::default()
        };
        let cfg = build(args).unwrap().config;
        std::fs::remove_file(&path).unwrap();
        assert_eq!(cfg.ws.max_fragments, 7);
        assert_eq!(cfg.ws.message_timeout, Some(Duration::from_secs(5)));
        assert_eq!(cfg.max_partial_bytes, 0);
        let args = Args {
            max_fragments: Some(0),
            ..Args::default()
        };
        assert!(build(args).is_err());
    }

    #[test]
    fn root_flag_sets_the_document_root() {
        let dir = std::env::temp_dir();
        let args = Args {
            root: Some(dir.clone()),
            ..Args::default()
        };
        let cfg = build(args).unwrap().config;
        assert_eq!(cfg.document_root, Some(dir.clone()));
        assert_eq!(cfg.file_cache, ServerConfig::DEFAULT_FILE_CACHE);
        let args = Args {
            root: Some(dir),
            file_cache_ms: Some(0),
            ..Args::default()
        };
        assert_eq!(build(args).unwrap().config.file_cache, Duration::ZERO);
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

    #[test]
    fn test_page_and_upload_flags() {
        let s = build(Args::default()).unwrap();
        assert!(s.app.test_page);
        assert!(s.app.upload.is_none());
        let default_body = ServerConfig::default().http.max_body;
        assert_eq!(s.config.http.max_body, default_body);

        let s = build(Args {
            no_test_page: true,
            upload_dir: Some("/tmp/up".into()),
            ..Args::default()
        })
        .unwrap();
        assert!(!s.app.test_page);
        let up = s.app.upload.unwrap();
        assert_eq!(up.dir, PathBuf::from("/tmp/up"));
        assert_eq!(up.max_file_size, 64 << 20);
        assert_eq!(up.max_total_size, 64 << 20);
        assert!(s.config.http.max_body >= 64 << 20);

        let s = build(Args {
            upload_dir: Some("/tmp/up".into()),
            max_upload: Some(1000),
            ..Args::default()
        })
        .unwrap();
        assert_eq!(s.app.upload.unwrap().max_total_size, 1000);
        assert_eq!(s.config.http.max_body, default_body);
        let s = build(Args {
            upload_dir: Some("/tmp/up".into()),
            max_upload: Some(1 << 30),
            ..Args::default()
        })
        .unwrap();
        assert_eq!(s.config.http.max_body, 1 << 30);
        assert!(
            build(Args {
                max_upload: Some(0),
                ..Args::default()
            })
            .is_err()
        );
    }

    #[test]
    fn compression_from_flags_and_file() {
        // Off by default.
        assert!(!build(parse(&[])).unwrap().config.compression.enabled);
        let c = build(parse(&["--compress"])).unwrap().config.compression;
        assert_eq!(c, HttpCompression::on());
        let c = build(parse(&[
            "--compress",
            "--compress-min-size",
            "10",
            "--compress-level",
            "9",
        ]))
        .unwrap()
        .config
        .compression;
        assert!(c.enabled);
        assert_eq!((c.min_size, c.level), (10, 9));
        // The file's keys, and a flag over one of them.
        let path = std::env::temp_dir().join(format!("wskit-compress-{}.toml", std::process::id()));
        std::fs::write(
            &path,
            "[serve]
compress = true
compress_min_size = 300
compress_level = 2
",
        )
        .unwrap();
        let config = path.to_str().unwrap();
        let c = build(parse(&["--config", config]))
            .unwrap()
            .config
            .compression;
        assert!(c.enabled);
        assert_eq!((c.min_size, c.level), (300, 2));
        let c = build(parse(&["--config", config, "--compress-level", "7"]))
            .unwrap()
            .config
            .compression;
        assert_eq!((c.min_size, c.level), (300, 7));
        std::fs::remove_file(&path).unwrap();
        // Refused: a level past 9, and the settings without --compress.
        let err = |a: &[&str]| build(parse(a)).err().unwrap().to_string();
        assert_eq!(
            err(&["--compress", "--compress-level", "10"]),
            "--compress-level must be 0..=9"
        );
        assert!(err(&["--compress-min-size", "10"]).contains("add --compress"));
    }

    #[test]
    fn test_page_and_upload_from_the_file() {
        let dir = std::env::temp_dir().join(format!("wskit-serve-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("wskit.toml");
        std::fs::write(
            &path,
            "[serve]\ntest_page = false\nupload_dir = \"/srv/up\"\nmax_upload = 4096\n",
        )
        .unwrap();
        let s = build(Args {
            config: Some(path.clone()),
            ..Args::default()
        })
        .unwrap();
        assert!(!s.app.test_page);
        let up = s.app.upload.unwrap();
        assert_eq!(up.dir, PathBuf::from("/srv/up"));
        assert_eq!(up.max_file_size, 4096);
        // Flags win over the file.
        let s = build(Args {
            config: Some(path),
            upload_dir: Some("/other".into()),
            max_upload: Some(8192),
            ..Args::default()
        })
        .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let up = s.app.upload.unwrap();
        assert_eq!(up.dir, PathBuf::from("/other"));
        assert_eq!(up.max_file_size, 8192);
    }

    /// One request on its own connection (`Connection: close`); returns the head and the body.
    async fn http(addr: SocketAddr, raw: &[u8]) -> (String, Vec<u8>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.write_all(raw).await.unwrap();
        let mut all = Vec::new();
        tcp.read_to_end(&mut all).await.unwrap();
        let end = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let head = String::from_utf8_lossy(&all[..end]).into_owned();
        (head, all[end..].to_vec())
    }

    fn get(path: &str) -> Vec<u8> {
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").into_bytes()
    }

    fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
        head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    async fn start(args: Args) -> (ws_server::ServerHandle, SocketAddr) {
        let s = build(Args {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            ..args
        })
        .unwrap();
        let server = Server::start(s.config, s.app).await.unwrap();
        let addr = server.local_addrs()[0];
        (server, addr)
    }

    /// Reads from `io` until `want` shows up (5 s at most); returns what was read.
    async fn read_until(io: &mut tokio::net::TcpStream, buf: &mut Vec<u8>, want: &[u8]) {
        use tokio::io::AsyncReadExt;
        let wait = async {
            while !buf.windows(want.len()).any(|w| w == want) {
                let mut chunk = [0u8; 4096];
                let n = io.read(&mut chunk).await.unwrap();
                assert!(n > 0, "closed; got {:?}", String::from_utf8_lossy(buf));
                buf.extend_from_slice(&chunk[..n]);
            }
        };
        tokio::time::timeout(Duration::from_secs(5), wait)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no {:?} in {:?}",
                    String::from_utf8_lossy(want),
                    String::from_utf8_lossy(buf)
                )
            });
    }

    #[tokio::test]
    async fn page_script_sse_chat_and_upload() {
        use tokio::io::AsyncWriteExt;
        let dir = std::env::temp_dir().join(format!("wskit-serve-up-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (server, addr) = start(Args {
            upload_dir: Some(dir.clone()),
            ..Args::default()
        })
        .await;

        let (head, body) = http(addr, &get("/")).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(
            header(&head, "content-type"),
            Some("text/html; charset=utf-8")
        );
        assert_eq!(body, INDEX_HTML.as_bytes());
        let (head, body) = http(addr, &get("/wskit.js")).await;
        assert_eq!(
            header(&head, "content-type"),
            Some("application/javascript")
        );
        assert_eq!(body, WSKIT_JS.as_bytes());
        // The seed's names, and the old page name sent to `/`.
        assert_eq!(
            http(addr, &get("/sgcWebSockets.html")).await.1,
            INDEX_HTML.as_bytes()
        );
        assert_eq!(
            http(addr, &get("/sgcWebSockets.js")).await.1,
            WSKIT_JS.as_bytes()
        );
        let (head, _) = http(addr, &get("/index.html")).await;
        assert!(head.starts_with("HTTP/1.1 301"), "{head}");
        assert_eq!(header(&head, "location"), Some("/"));
        assert!(
            http(addr, &get("/nothing"))
                .await
                .0
                .starts_with("HTTP/1.1 404")
        );
        let (head, _) = http(addr, &get("/upload")).await;
        assert!(head.starts_with("HTTP/1.1 405"), "{head}");

        // SSE: the welcome event, then chat messages as `chat` events.
        let mut sse = tokio::net::TcpStream::connect(addr).await.unwrap();
        sse.write_all(b"GET /sse HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
            .await
            .unwrap();
        let mut got = Vec::new();
        read_until(&mut sse, &mut got, b"event: welcome\ndata: hello\n\n").await;
        let mut ws = tokio::net::TcpStream::connect(addr).await.unwrap();
        ws.write_all(
            b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .await
        .unwrap();
        let mut wsbuf = Vec::new();
        read_until(&mut ws, &mut wsbuf, b"\r\n\r\n").await;
        assert!(wsbuf.starts_with(b"HTTP/1.1 101"));
        // A masked "Hello" text frame (RFC 6455 section 5.7).
        ws.write_all(&[
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ])
        .await
        .unwrap();
        read_until(&mut sse, &mut got, b"event: chat\ndata: Hello\n\n").await;
        read_until(&mut ws, &mut wsbuf, b"\x81\x05Hello").await;

        // Upload.
        let content: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
        let mut body =
            b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"../a b.bin\"\r\n\
            Content-Type: application/octet-stream\r\n\r\n"
                .to_vec();
        body.extend_from_slice(&content);
        body.extend_from_slice(
            b"\r\n--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n--XyZ--\r\n",
        );
        let mut raw = format!(
            "POST /upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             Content-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        raw.extend_from_slice(&body);
        let (head, text) = http(addr, &raw).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(
            header(&head, "content-type")
                .unwrap()
                .starts_with("text/plain")
        );
        assert_eq!(
            String::from_utf8(text).unwrap(),
            "saved a b.bin (70000 bytes)\n"
        );
        assert_eq!(std::fs::read(dir.join("a b.bin")).unwrap(), content);
        // Not multipart.
        let (head, _) = http(
            addr,
            b"POST /upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi",
        )
        .await;
        assert!(head.starts_with("HTTP/1.1 415"), "{head}");
        drop((sse, ws));
        server.stop().await;
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn no_test_page_no_upload_and_root_files_win() {
        let (server, addr) = start(Args {
            no_test_page: true,
            ..Args::default()
        })
        .await;
        assert!(http(addr, &get("/")).await.0.starts_with("HTTP/1.1 404"));
        for path in ["/wskit.js", "/sgcWebSockets.html", "/sgcWebSockets.js"] {
            let (head, _) = http(addr, &get(path)).await;
            assert!(head.starts_with("HTTP/1.1 404"), "{path}: {head}");
        }
        let post =
            b"POST /upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        assert!(http(addr, post).await.0.starts_with("HTTP/1.1 404"));
        server.stop().await;

        let root = std::env::temp_dir().join(format!("wskit-serve-root-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("index.html"), "mine").unwrap();
        let (server, addr) = start(Args {
            root: Some(root.clone()),
            ..Args::default()
        })
        .await;
        assert_eq!(http(addr, &get("/")).await.1, b"mine");
        // Not in the root: still the embedded client.
        assert_eq!(http(addr, &get("/wskit.js")).await.1, WSKIT_JS.as_bytes());
        server.stop().await;
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn the_example_file_holds_the_defaults() {
        let example =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wskit.toml.example");
        let from_file = build(Args {
            config: Some(example),
            ..Args::default()
        })
        .unwrap();
        let defaults = build(Args::default()).unwrap();
        assert_eq!(
            format!("{:?}", from_file.config),
            format!("{:?}", defaults.config)
        );
        assert_eq!(from_file.threads, defaults.threads);
        assert_eq!(from_file.app.test_page, defaults.app.test_page);
    }
}
