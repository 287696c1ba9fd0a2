//! `wskit files send|receive`, and the files service `wskit serve --files-dir` mounts: the files
//! protocol (proto-files) on the command line. Progress bars (indicatif) only when stdout is a
//! terminal; otherwise one line per finished file on stdout.

use std::{
    collections::HashMap,
    io::IsTerminal as _,
    path::PathBuf,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use clap::{Args as ClapArgs, Subcommand};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use proto_files::{
    Config, Error, EventKind, FileEvent, FileId, Files, FilesClient, Hooks, QoS, SendOptions,
};
use ws_client::ClientConfig;
use ws_server::{
    Body, ConnInfo, Ctx, Decision, Filter, Request, Response, ServerHandle, ws_frame::Message,
};

/// The `data` marker of a file sent with `--broadcast`: `wskit serve` forwards it to the
/// subscribers of its channel once it has it.
pub(crate) const BROADCAST: &str = "wskit:broadcast";

/// Send and receive files over the wskit files protocol (`wskit-files.v1`).
#[derive(Debug, ClapArgs)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: FilesCommand,
}

#[derive(Debug, Subcommand)]
enum FilesCommand {
    /// Sends files to a server (`wskit serve --files-dir`), resuming after a dropped connection.
    Send(SendArgs),
    /// Receives into a directory the files the server sends (those other clients send with
    /// `--broadcast` to a channel this client subscribes to).
    Receive(ReceiveArgs),
}

#[derive(Debug, ClapArgs)]
struct SendArgs {
    /// Server URL, e.g. ws://127.0.0.1:8080/files.
    url: String,
    /// Files to send.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// QoS: 0 sent, 1 every chunk acknowledged, 2 receiver-driven credit.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=2))]
    qos: u8,
    /// Channel the files are sent on (with --broadcast: whose subscribers get them).
    #[arg(long)]
    channel: Option<String>,
    /// Chunk size: bytes, or with K / M (KiB, MiB). Default 64K.
    #[arg(long, value_parser = parse_size)]
    chunk: Option<u32>,
    /// Ask the server to forward each file to the clients subscribed to --channel.
    #[arg(long, requires = "channel")]
    broadcast: bool,
    /// Reconnect and resume this many times after a dropped connection.
    #[arg(long, default_value_t = 10)]
    retries: u32,
}

#[derive(Debug, ClapArgs)]
struct ReceiveArgs {
    /// Server URL, e.g. ws://127.0.0.1:8080/files.
    url: String,
    /// Directory the files are saved in (partial files in DIR/.partial survive a restart).
    #[arg(long)]
    dir: PathBuf,
    /// Channels to subscribe to (repeatable).
    #[arg(long)]
    channel: Vec<String>,
    /// Overwrite files of the same name instead of saving `name (2).ext`.
    #[arg(long)]
    overwrite: bool,
}

fn parse_size(s: &str) -> Result<u32, String> {
    let s = s.trim();
    let (num, mul) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (&s[..i], 1024),
        Some((i, 'm' | 'M')) => (&s[..i], 1024 * 1024),
        _ => (s, 1),
    };
    let n: u32 = num.parse().map_err(|_| format!("not a size: {s}"))?;
    n.checked_mul(mul)
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("size out of range: {s}"))
}

/// Progress bars on a terminal, one line per finished file otherwise.
struct Progress {
    bars: Option<(MultiProgress, Mutex<HashMap<FileId, ProgressBar>>)>,
}

impl Progress {
    fn new() -> Self {
        let bars = std::io::stdout()
            .is_terminal()
            .then(|| (MultiProgress::new(), Mutex::new(HashMap::new())));
        Self { bars }
    }

    fn bar(&self, e: &FileEvent) -> Option<ProgressBar> {
        let (multi, bars) = self.bars.as_ref()?;
        let mut bars = bars.lock().ok()?;
        Some(
            bars.entry(e.file_id)
                .or_insert_with(|| {
                    let b = multi.add(ProgressBar::new(e.info.size));
                    b.set_style(
                        ProgressStyle::with_template(
                            "{msg:24!} {bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                    );
                    b.set_message(e.info.name.clone());
                    b
                })
                .clone(),
        )
    }

    fn done(&self, e: &FileEvent) {
        if let Some((_, bars)) = &self.bars
            && let Ok(mut bars) = bars.lock()
            && let Some(b) = bars.remove(&e.file_id)
        {
            match &e.error {
                Some(err) => b.abandon_with_message(format!("{}: {err}", e.info.name)),
                None => b.finish(),
            }
        }
    }

    fn line(&self, text: String) {
        match &self.bars {
            Some((multi, _)) => {
                let _ = multi.println(text);
            }
            None => println!("{text}"),
        }
    }
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

impl Hooks for Progress {
    fn on_event(&self, e: &FileEvent) {
        match e.kind {
            EventKind::BeforeSent | EventKind::ReceivedAuthorization => {
                if let Some(b) = self.bar(e) {
                    b.set_position(e.position);
                }
            }
            EventKind::SentFragment | EventKind::ReceivedFragment => {
                if let Some(b) = self.bar(e) {
                    b.set_position(e.position);
                }
            }
            EventKind::Received => {
                self.done(e);
                let path = e
                    .path
                    .as_ref()
                    .map_or(e.info.name.clone(), |p| p.display().to_string());
                self.line(format!(
                    "received {path} {} sha256 {}",
                    e.info.size,
                    hex(&e.sha256.unwrap_or_default())
                ));
            }
            EventKind::Sent | EventKind::SentError | EventKind::ReceivedError => self.done(e),
            _ => {}
        }
    }
}

pub(crate) fn run(args: Args) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match args.command {
            FilesCommand::Send(a) => send(a).await,
            FilesCommand::Receive(a) => receive(a).await,
        }
    })
}

async fn send(a: SendArgs) -> Result<()> {
    let mut config = Config::default();
    if let Some(c) = a.chunk {
        config.chunk = c;
    }
    config.validate()?;
    let progress = Arc::new(Progress::new());
    let qos = QoS::from_u8(a.qos).unwrap_or_default();
    let mut failed = 0;
    let mut client: Option<FilesClient> = None;
    for path in &a.files {
        let mut opts = SendOptions::qos(qos);
        opts.channel = a.channel.clone().unwrap_or_default();
        if a.broadcast {
            opts.data = BROADCAST.into();
        }
        let mut attempt = 0;
        loop {
            if client.as_ref().is_none_or(FilesClient::is_closed) {
                client = Some(
                    FilesClient::connect(
                        a.url.as_str(),
                        ClientConfig::default(),
                        config.clone(),
                        None,
                        SharedHooks(progress.clone()),
                    )
                    .await
                    .with_context(|| format!("connecting to {}", a.url))?,
                );
            }
            let Some(c) = client.as_ref() else {
                bail!("no connection")
            };
            match c.send_file(path, &opts).await {
                Ok(r) => {
                    progress.line(format!(
                        "sent {} {} sha256 {}{}",
                        path.display(),
                        r.size,
                        hex(&r.sha256),
                        if r.resumed_at > 0 {
                            format!(" (resumed at {})", r.resumed_at)
                        } else {
                            String::new()
                        }
                    ));
                    break;
                }
                Err(Error::Closed | Error::Client(_)) if attempt < a.retries => {
                    attempt += 1;
                    client = None;
                    tokio::time::sleep(Duration::from_millis(250 * u64::from(attempt.min(8))))
                        .await;
                }
                Err(e) => {
                    eprintln!("error: {}: {e}", path.display());
                    failed += 1;
                    break;
                }
            }
        }
    }
    if let Some(c) = client {
        c.close().await;
    }
    if failed > 0 {
        bail!("{failed} of {} files not sent", a.files.len());
    }
    Ok(())
}

async fn receive(a: ReceiveArgs) -> Result<()> {
    let mut config = Config::default();
    config.overwrite = a.overwrite;
    let mut url = a.url.clone();
    for (i, ch) in a.channel.iter().enumerate() {
        url.push(if i == 0 && !url.contains('?') {
            '?'
        } else {
            '&'
        });
        url.push_str("channel=");
        url.push_str(&encode(ch));
    }
    let progress = Arc::new(Progress::new());
    let mut client = FilesClient::connect(
        url.as_str(),
        ClientConfig::default(),
        config,
        Some(a.dir.clone()),
        SharedHooks(progress),
    )
    .await
    .with_context(|| format!("connecting to {}", a.url))?;
    eprintln!("receiving into {} (Ctrl-C to stop)", a.dir.display());
    tokio::select! {
        () = client.closed() => eprintln!("the server closed the connection"),
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

struct SharedHooks(Arc<Progress>);

impl Hooks for SharedHooks {
    fn on_event(&self, e: &FileEvent) {
        self.0.on_event(e);
    }
}

/// Where `wskit serve --files-dir` takes files-protocol WebSockets (and, below it, tus).
pub(crate) const FILES_PATH: &str = "/files";

/// The largest request body `serve` takes with `--files-dir` (one tus PATCH may carry a
/// whole file).
pub(crate) const MAX_BODY: u64 = 64 << 30;

/// The files service of `wskit serve --files-dir DIR`: the files protocol on `/files`, tus
/// uploads under `/files/`, the browser client at `/wskit-files.js`; files sent with
/// `--broadcast` go on to the subscribers of their channel.
#[derive(Clone)]
pub(crate) struct Service {
    files: Files,
    server: Arc<OnceLock<ServerHandle>>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service").finish_non_exhaustive()
    }
}

impl Service {
    pub(crate) fn new(dir: PathBuf) -> Result<Self> {
        let server = Arc::new(OnceLock::new());
        let files_slot: Arc<OnceLock<Files>> = Arc::new(OnceLock::new());
        let hooks = ServeHooks {
            server: server.clone(),
            files: files_slot.clone(),
        };
        let files = Files::new(Config::default(), Some(dir), hooks).context("--files-dir")?;
        let _ = files_slot.set(files.clone());
        Ok(Self { files, server })
    }

    /// The running server (for broadcasts).
    pub(crate) fn set_server(&self, server: ServerHandle) {
        let _ = self.server.set(server);
    }
}

fn is_files(path: &str) -> bool {
    path == FILES_PATH
}

/// `Some(decision)` for an upgrade to the files endpoint.
pub(crate) fn handshake(s: Option<&Service>, request: &Request) -> Option<Decision> {
    s?;
    if !is_files(request.path()) {
        return None;
    }
    Some(if request.protocols().contains(&proto_files::SUBPROTOCOL) {
        Decision::accept_protocol(proto_files::SUBPROTOCOL)
    } else {
        Decision::accept()
    })
}

/// True when the connection is the files service's.
pub(crate) async fn on_connect(s: Option<&Service>, ctx: &mut Ctx<'_>) -> bool {
    match s {
        Some(s) if is_files(ctx.info().path()) => {
            s.files.on_connect(ctx).await;
            true
        }
        _ => false,
    }
}

/// True when the message was the files service's.
pub(crate) async fn on_message(s: Option<&Service>, ctx: &mut Ctx<'_>, msg: &Message) -> bool {
    match s {
        Some(s) if is_files(ctx.info().path()) => {
            if let Message::Binary(b) = msg {
                s.files.on_binary(ctx, b.clone()).await;
            }
            true
        }
        _ => false,
    }
}

pub(crate) async fn on_disconnect(s: Option<&Service>, info: &ConnInfo) {
    if let Some(s) = s
        && is_files(info.path())
    {
        s.files.on_disconnect(info).await;
    }
}

/// `Some(response)` for tus requests and `/wskit-files.js`.
pub(crate) async fn on_http(
    s: Option<&Service>,
    request: &Request,
    body: &mut Body<'_>,
) -> Option<Response> {
    s?.files.on_http(request, body).await
}

struct ServeHooks {
    server: Arc<OnceLock<ServerHandle>>,
    files: Arc<OnceLock<Files>>,
}

impl Hooks for ServeHooks {
    fn on_event(&self, e: &FileEvent) {
        match e.kind {
            EventKind::Received => {
                tracing::info!(
                    name = %e.info.name, size = e.info.size, conn = e.conn,
                    "file received"
                );
                if e.info.data == BROADCAST && !e.info.channel.is_empty() {
                    let (Some(server), Some(files), Some(path)) = (
                        self.server.get().cloned(),
                        self.files.get().cloned(),
                        e.path.clone(),
                    ) else {
                        return;
                    };
                    let filter = Filter::channel(e.info.channel.clone())
                        .excluding([ws_server::ConnId(e.conn)]);
                    // At least QoS 1: acknowledgements bound what waits in each client's queue.
                    let qos = e.info.qos.max(QoS::Acknowledged);
                    tokio::spawn(async move {
                        let out = files
                            .broadcast_file(&server, &path, &filter, &SendOptions::qos(qos))
                            .await;
                        let ok = out.iter().filter(|(_, r)| r.is_ok()).count();
                        tracing::info!(path = %path.display(), sent = ok, of = out.len(), "file broadcast");
                    });
                }
            }
            EventKind::ReceivedError => {
                tracing::warn!(name = %e.info.name, error = ?e.error, "file not received");
            }
            _ => {}
        }
    }
}
