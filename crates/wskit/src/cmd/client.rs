//! `wskit client URL`: a WebSocket client on the terminal, like websocat.
//!
//! Every line read from stdin is sent as one message (text, or binary with `--binary`; with a
//! line ending by `--newline` or `--crlf`); every message received goes to stdout (text followed
//! by a newline, binary as raw bytes or hex with `--binary-output hex`, then `--separator`).
//! At the end of stdin the client keeps printing replies until none came for `--linger` seconds
//! (1 by default) or the server closed, then closes with 1000 and waits for the server's Close.
//! Status goes to stderr: `connected to URL`, then once `closed: CODE NAME, by us` (or `by the
//! server`, with the reason when there is one). The exit status is 0 after a close with 1000,
//! 1001 or no code, 1 after any other close (1006 when the connection was lost, 1011, ...) and
//! when the connection could not be made.
//!
//! Every flag but the URL can also come from the `[client]` table of `--config wskit.toml`
//! (same names, with underscores; `header`, `protocol` for the lists too): flags win over the
//! file, the file over the defaults (one struct for both: see `cmd::config`).

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use ws_client::{
    Auth, ClientConfig, ClientEvent, CloseCode, CloseInfo, Heartbeat, Initiator, Message, Proxy,
    ProxyKind, Reconnect, ReconnectingWebSocket, SgcAuth, WebSocket, connect,
    ws_frame::deflate::DeflateConfig,
};

use crate::Exit;

/// How `wskit client` writes binary messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum BinaryOutput {
    /// The bytes as they are.
    #[default]
    Raw,
    /// Lower-case hexadecimal.
    Hex,
}

/// Default of `--linger`, seconds.
const DEFAULT_LINGER: f64 = 1.0;
/// Default of `--connect-timeout`, seconds.
const DEFAULT_CONNECT_TIMEOUT: u64 = 10;

super::config::layered! {
/// Flags of `wskit client`, and the `[client]` table of wskit.toml (all but the URL).
#[derive(Debug, Default, clap::Args, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Args {
    /// `ws://`, `wss://` or `tcp://` URL, with path and query.
    #[arg(value_name = "URL")]
    #[serde(skip)]
    pub(crate) url: String,
    /// Extra request header `Name: value` (repeatable).
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
    #[serde(alias = "header")]
    pub(crate) headers: Vec<String>,
    /// Subprotocol to offer (repeatable, in order of preference).
    #[arg(long = "protocol", value_name = "NAME")]
    #[serde(alias = "protocol")]
    pub(crate) protocols: Vec<String>,
    /// `Origin` header.
    #[arg(long, value_name = "ORIGIN")]
    pub(crate) origin: Option<String>,
    /// Send stdin lines as binary messages instead of text.
    #[arg(long)]
    pub(crate) binary: bool,
    /// Append a newline (LF) to every message sent.
    #[arg(long, conflicts_with = "crlf")]
    pub(crate) newline: bool,
    /// Append CR LF to every message sent.
    #[arg(long)]
    pub(crate) crlf: bool,
    /// How binary messages received are written: `raw` bytes or `hex` (text messages are
    /// written as they are, each followed by a newline). Default: raw.
    #[arg(long, value_enum, value_name = "raw|hex")]
    pub(crate) binary_output: Option<BinaryOutput>,
    /// Written after each binary message received (`\n`, `\r`, `\t`, `\0` understood).
    /// Default: nothing after raw messages, a newline after hex ones.
    #[arg(long, value_name = "STRING")]
    pub(crate) separator: Option<String>,
    /// After the input ends, keep printing replies until none came for SECS seconds (or the
    /// server closed), then close. 0 closes at once. Default: 1.
    #[arg(long, value_name = "SECS")]
    pub(crate) linger: Option<f64>,
    /// Do not offer permessage-deflate.
    #[arg(long)]
    pub(crate) no_deflate: bool,
    /// Proxy URL: `http://[user:pass@]host:port` (CONNECT), `socks4://host:port`,
    /// `socks4a://host:port` or `socks5://[user:pass@]host:port`.
    #[arg(long, value_name = "URL")]
    pub(crate) proxy: Option<String>,
    /// PEM bundle of CA certificates to trust (instead of the built-in web roots), for the
    /// WebSocket server and the --oauth2-issuer alike.
    #[arg(long, value_name = "FILE")]
    pub(crate) ca_file: Option<PathBuf>,
    /// Skip TLS certificate verification (development only: anyone can impersonate the server).
    #[arg(long)]
    pub(crate) insecure: bool,
    /// Basic credentials `user:password`.
    #[arg(long, value_name = "USER:PASSWORD")]
    pub(crate) basic: Option<String>,
    /// Bearer token for the `Authorization` header.
    #[arg(long, value_name = "TOKEN")]
    pub(crate) bearer: Option<String>,
    /// Get the bearer token from an OAuth2 server with the client credentials grant (and
    /// again before it expires, at each reconnect): this client id, with
    /// --oauth2-client-secret-file and --oauth2-issuer (or --oauth2-token-url).
    #[arg(long, value_name = "ID")]
    pub(crate) oauth2_client_id: Option<String>,
    /// File holding the OAuth2 client secret (one trailing newline is ignored).
    #[arg(long, value_name = "FILE")]
    pub(crate) oauth2_client_secret_file: Option<PathBuf>,
    /// The OAuth2 server's issuer URL (its token endpoint is ISSUER/oauth2/token, as
    /// `wskit serve --oauth2` has it).
    #[arg(long, value_name = "URL")]
    pub(crate) oauth2_issuer: Option<String>,
    /// The OAuth2 token endpoint (instead of the one --oauth2-issuer implies).
    #[arg(long, value_name = "URL")]
    pub(crate) oauth2_token_url: Option<String>,
    /// Scope to ask the OAuth2 server for (repeatable).
    #[arg(long = "oauth2-scope", value_name = "SCOPE")]
    #[serde(alias = "oauth2_scope")]
    pub(crate) oauth2_scopes: Vec<String>,
    /// Ping every SECS seconds; with --ping-timeout, a missing pong closes the connection.
    #[arg(long, value_name = "SECS")]
    pub(crate) ping: Option<u64>,
    /// Seconds to wait for a pong before the peer counts as dead. Default: the ping interval.
    #[arg(long, value_name = "SECS")]
    pub(crate) ping_timeout: Option<u64>,
    /// Reconnect after unexpected disconnects (jittered exponential backoff); a first connect
    /// that fails for a reason that may pass (refused, timed out, 5xx) is retried too.
    #[arg(long)]
    pub(crate) reconnect: bool,
    /// Give up after this many reconnect attempts in a row (0: never). Default: 0.
    #[arg(long, value_name = "N")]
    pub(crate) max_attempts: Option<u32>,
    /// Connect timeout in seconds (DNS, TCP, proxy, TLS and the upgrade). Default: 10.
    #[arg(long, value_name = "SECS")]
    pub(crate) connect_timeout: Option<u64>,
    /// With --reconnect: further URLs of the same service, tried in turn (round robin) by
    /// the reconnect attempts (repeatable).
    #[arg(long = "fallback-url", value_name = "URL")]
    #[serde(alias = "fallback_url")]
    pub(crate) fallback_urls: Vec<String>,
    /// Fail when nothing arrives for SECS seconds.
    #[arg(long, value_name = "SECS")]
    pub(crate) read_timeout: Option<f64>,
    /// Fail when queued data cannot be written for SECS seconds.
    #[arg(long, value_name = "SECS")]
    pub(crate) write_timeout: Option<f64>,
    /// TCP keep-alive: seconds idle before the first probe.
    #[arg(long, value_name = "SECS")]
    pub(crate) tcp_keepalive: Option<u64>,
    /// TCP keep-alive: seconds between probes (with --tcp-keepalive).
    #[arg(long, value_name = "SECS")]
    pub(crate) tcp_keepalive_interval: Option<u64>,
    /// TCP keep-alive: unanswered probes before the connection is dropped (with
    /// --tcp-keepalive).
    #[arg(long, value_name = "N")]
    pub(crate) tcp_keepalive_count: Option<u32>,
    /// Local IP address to connect from.
    #[arg(long, value_name = "IP")]
    pub(crate) bind: Option<std::net::IpAddr>,
    /// Local ports to connect from, `MIN-MAX` (the first free one is used).
    #[arg(long, value_name = "MIN-MAX")]
    pub(crate) local_ports: Option<String>,
    /// SO_LINGER in seconds; 0 resets the TCP connection when it closes.
    #[arg(long, value_name = "SECS")]
    pub(crate) tcp_linger: Option<u64>,
    /// Most bits per second sent.
    #[arg(long, value_name = "BPS")]
    pub(crate) throttle: Option<u64>,
    /// The sgcWebSockets session authentication, `user:password`: asks
    /// /sgc/req/auth/session/USER/PASS for a token, then connects to /sgc/auth/session/TOKEN.
    /// The credentials travel in URLs (server logs keep them): prefer --basic or --bearer.
    #[arg(long, value_name = "USER:PASSWORD")]
    pub(crate) sgc_session: Option<String>,
    /// The sgcWebSockets URL authentication, `user:password`: connects to
    /// /sgc/auth/url/USER/PASS. Weaker than a header, as --sgc-session.
    #[arg(long, value_name = "USER:PASSWORD")]
    pub(crate) sgc_url_auth: Option<String>,
    /// The frame log: --log-frames FILE, --log-payload BYTES (command line only).
    #[command(flatten)]
    #[serde(skip)]
    pub(crate) frame_log: crate::frame_log::FrameLogArgs,
    /// Configuration file (wskit.toml) with a `[client]` table.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub(crate) config: Option<PathBuf>,
}
}

impl Args {
    /// The flags over the `[client]` table of `--config`.
    fn merged(self) -> Result<Self> {
        let config = self.config.clone();
        super::config::merged(self, config.as_deref(), "client")
    }
}

fn proxy(url: &str) -> Result<Proxy> {
    let (scheme, rest) = url
        .split_once("://")
        .with_context(|| format!("proxy {url:?}: expected SCHEME://HOST:PORT"))?;
    let kind = match scheme.to_ascii_lowercase().as_str() {
        "http" => ProxyKind::Http,
        "socks4" => ProxyKind::Socks4,
        "socks4a" => ProxyKind::Socks4a,
        "socks5" | "socks5h" => ProxyKind::Socks5,
        other => bail!("proxy scheme {other:?}: use http, socks4, socks4a or socks5"),
    };
    let rest = rest.trim_end_matches('/');
    let (credentials, host_port) = match rest.rsplit_once('@') {
        Some((cred, hp)) => {
            let (u, p) = cred.split_once(':').unwrap_or((cred, ""));
            (Some((u.to_owned(), p.to_owned())), hp)
        }
        None => (None, rest),
    };
    let (host, port) = host_port
        .rsplit_once(':')
        .with_context(|| format!("proxy {url:?}: missing port"))?;
    let port: u16 = port
        .parse()
        .with_context(|| format!("proxy {url:?}: bad port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let proxy = Proxy::new(kind, host, port);
    Ok(match credentials {
        Some((u, p)) => proxy.with_credentials(u, p),
        None => proxy,
    })
}

/// Turns the flags into the library configuration.
pub(crate) fn config(args: &Args) -> Result<ClientConfig> {
    let mut c = ClientConfig::default();
    for h in &args.headers {
        let (name, value) = h
            .split_once(':')
            .with_context(|| format!("header {h:?}: expected `Name: value`"))?;
        c.headers
            .push((name.trim().to_owned(), value.trim().to_owned()));
    }
    c.protocols.clone_from(&args.protocols);
    c.origin.clone_from(&args.origin);
    if args.newline && args.crlf {
        // clap refuses both on the command line; one of them may come from the file.
        bail!("--newline and --crlf exclude each other");
    }
    c.deflate = (!args.no_deflate).then(DeflateConfig::default);
    if let Some(p) = &args.proxy {
        c.proxy = Some(proxy(p)?);
    }
    if let Some(ca) = &args.ca_file {
        c.tls.ca_file = Some(ca.clone());
        c.tls.webpki_roots = false;
    }
    c.tls.danger_accept_invalid_certs = args.insecure;
    c.auth = match (&args.basic, &args.bearer) {
        (Some(_), Some(_)) => bail!("--basic and --bearer exclude each other"),
        (Some(b), None) => {
            let (u, p) = b
                .split_once(':')
                .context("--basic: expected user:password")?;
            Some(Auth::basic(u, p))
        }
        (None, Some(t)) => Some(Auth::bearer(t)),
        (None, None) => None,
    };
    if let Some(source) = oauth2_source(args)? {
        if c.auth.is_some() {
            bail!("--oauth2-client-id gets its own token: leave out --basic and --bearer");
        }
        c.auth = Some(Auth::bearer_fn(source));
    }
    if let Some(secs) = args.ping {
        if secs == 0 {
            bail!("--ping must be at least 1 second");
        }
        let timeout = Duration::from_secs(args.ping_timeout.unwrap_or(secs));
        c.heartbeat = Some(Heartbeat::new(Duration::from_secs(secs), Some(timeout)));
    } else if args.ping_timeout.is_some() {
        bail!("--ping-timeout needs --ping");
    }
    if args.reconnect {
        let mut r = Reconnect::default();
        r.max_attempts = args.max_attempts.unwrap_or(0);
        r.retry_initial = true;
        c.reconnect = Some(r);
    }
    if !args.fallback_urls.is_empty() {
        let Some(r) = c.reconnect.as_mut() else {
            bail!("--fallback-url needs --reconnect");
        };
        for u in &args.fallback_urls {
            r.urls.push(
                ws_client::IntoUrl::into_url(u.as_str())
                    .with_context(|| format!("--fallback-url {u:?}"))?,
            );
        }
    }
    let secs = |v: Option<f64>, flag: &str| -> Result<Option<Duration>> {
        v.map(|s| {
            Duration::try_from_secs_f64(s)
                .ok()
                .filter(|d| !d.is_zero())
                .with_context(|| format!("{flag} must be a number of seconds above 0"))
        })
        .transpose()
    };
    c.read_timeout = secs(args.read_timeout, "--read-timeout")?;
    c.write_timeout = secs(args.write_timeout, "--write-timeout")?;
    c.tcp_keepalive = args.tcp_keepalive.map(Duration::from_secs);
    c.tcp_keepalive_interval = args.tcp_keepalive_interval.map(Duration::from_secs);
    c.tcp_keepalive_retries = args.tcp_keepalive_count;
    if c.tcp_keepalive.is_none()
        && (c.tcp_keepalive_interval.is_some() || c.tcp_keepalive_retries.is_some())
    {
        bail!("--tcp-keepalive-interval and --tcp-keepalive-count need --tcp-keepalive");
    }
    c.local_addr = args.bind;
    if let Some(range) = &args.local_ports {
        let (min, max) = range.split_once('-').unwrap_or((range, range));
        let port = |p: &str| {
            p.trim()
                .parse::<u16>()
                .with_context(|| format!("--local-ports {range:?}: expected MIN-MAX"))
        };
        c.local_ports = Some((port(min)?, port(max)?));
    }
    c.linger = args.tcp_linger.map(Duration::from_secs);
    c.throttle_bps = args.throttle.filter(|&b| b > 0);
    let user_pass = |v: &str, flag: &str| -> Result<(String, String)> {
        let (u, p) = v
            .split_once(':')
            .with_context(|| format!("{flag}: expected user:password"))?;
        Ok((u.to_owned(), p.to_owned()))
    };
    c.sgc_auth = match (&args.sgc_session, &args.sgc_url_auth) {
        (Some(_), Some(_)) => bail!("--sgc-session and --sgc-url-auth exclude each other"),
        (Some(v), None) => {
            let (user, password) = user_pass(v, "--sgc-session")?;
            Some(SgcAuth::Session { user, password })
        }
        (None, Some(v)) => {
            let (user, password) = user_pass(v, "--sgc-url-auth")?;
            Some(SgcAuth::Url { user, password })
        }
        (None, None) => None,
    };
    c.connect_timeout = Duration::from_secs(
        args.connect_timeout
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT)
            .max(1),
    );
    c.validate().context("invalid client configuration")?;
    Ok(c)
}

/// The token source `--oauth2-client-id` asks for (client credentials), or none.
fn oauth2_source(args: &Args) -> Result<Option<auth_oauth2_jwt::oauth2_client::OAuth2TokenSource>> {
    use auth_oauth2_jwt::oauth2_client::{OAuth2Client, OAuth2TokenSource};
    let Some(id) = &args.oauth2_client_id else {
        if args.oauth2_client_secret_file.is_some()
            || args.oauth2_issuer.is_some()
            || args.oauth2_token_url.is_some()
            || !args.oauth2_scopes.is_empty()
        {
            bail!("the --oauth2-* settings need --oauth2-client-id");
        }
        return Ok(None);
    };
    let Some(secret_file) = &args.oauth2_client_secret_file else {
        bail!(
            "--oauth2-client-id needs --oauth2-client-secret-file (the client credentials grant)"
        );
    };
    if args.oauth2_issuer.is_none() && args.oauth2_token_url.is_none() {
        bail!("--oauth2-client-id needs --oauth2-issuer URL (or --oauth2-token-url URL)");
    }
    let mut s = super::oauth2_client::Endpoints {
        issuer: args.oauth2_issuer.as_deref(),
        token_url: args.oauth2_token_url.as_deref(),
        auth_url: None,
        ca_file: args.ca_file.as_deref(),
    }
    .settings(id)?;
    s.client_secret = Some(super::oauth2_client::read_secret(
        secret_file,
        "client secret",
    )?);
    s.scopes.clone_from(&args.oauth2_scopes);
    let client = OAuth2Client::new(s).context("--oauth2-client-id")?;
    Ok(Some(OAuth2TokenSource::new(
        std::sync::Arc::new(client),
        None,
    )))
}

/// Runs `wskit client` on stdin and stdout until the connection ends.
pub(crate) async fn run(args: Args) -> Result<()> {
    let stdin = tokio::io::BufReader::new(tokio::io::stdin());
    run_io(args, stdin, tokio::io::stdout()).await
}

/// How messages are written to the output.
struct Printer {
    hex: bool,
    separator: Vec<u8>,
}

impl Printer {
    fn new(args: &Args) -> Self {
        let hex = args.binary_output == Some(BinaryOutput::Hex);
        let separator = match &args.separator {
            Some(s) => unescape(s),
            None if hex => b"\n".to_vec(),
            None => Vec::new(),
        };
        Self { hex, separator }
    }

    async fn write<W: AsyncWrite + Unpin>(&self, out: &mut W, msg: &Message) -> Result<()> {
        match msg {
            Message::Text(t) => {
                out.write_all(t.as_bytes()).await?;
                out.write_all(b"\n").await?;
            }
            Message::Binary(b) if self.hex => {
                let mut hex = String::with_capacity(b.len() * 2);
                for byte in b.iter() {
                    hex.push_str(&format!("{byte:02x}"));
                }
                out.write_all(hex.as_bytes()).await?;
                out.write_all(&self.separator).await?;
            }
            Message::Binary(b) => {
                out.write_all(b).await?;
                out.write_all(&self.separator).await?;
            }
        }
        out.flush().await?;
        Ok(())
    }
}

/// `\n`, `\r`, `\t`, `\0` and `\\` in a separator given on the command line.
fn unescape(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        match chars.next() {
            Some('n') => out.push(b'\n'),
            Some('r') => out.push(b'\r'),
            Some('t') => out.push(b'\t'),
            Some('0') => out.push(0),
            Some('\\') => out.push(b'\\'),
            Some(other) => {
                out.push(b'\\');
                let mut buf = [0u8; 4];
                out.extend_from_slice(other.encode_utf8(&mut buf).as_bytes());
            }
            None => out.push(b'\\'),
        }
    }
    out
}

/// The message for one input line (split at LF; a CR before it is removed too), with the line ending the flags
/// ask for. Binary lines may hold any bytes; text lines must be UTF-8.
fn line_message(mut line: Vec<u8>, args: &Args) -> Result<Message> {
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    if args.crlf {
        line.extend_from_slice(b"\r\n");
    } else if args.newline {
        line.push(b'\n');
    }
    if args.binary {
        return Ok(Message::binary(line));
    }
    match String::from_utf8(line) {
        Ok(text) => Ok(Message::text(text)),
        Err(_) => bail!("an input line is not UTF-8 text; send such input with --binary"),
    }
}

/// A close code's name, as RFC 6455 section 7.4 and the IANA registry call it.
fn code_name(code: CloseCode) -> &'static str {
    match u16::from(code) {
        1000 => "normal",
        1001 => "going away",
        1002 => "protocol error",
        1003 => "unsupported data",
        1005 => "no status code",
        1006 => "abnormal closure",
        1007 => "invalid payload",
        1008 => "policy violation",
        1009 => "message too big",
        1010 => "extension required",
        1011 => "internal error",
        1012 => "service restart",
        1013 => "try again later",
        1014 => "bad gateway",
        1015 => "TLS failure",
        3000..=3999 => "registered",
        4000..=4999 => "application",
        _ => "unknown",
    }
}

/// `closed: 1000 normal, by us`, `closed: 1011 internal error, by the server: backend
/// unavailable: ...`; `error` stands in for an empty reason.
fn close_line(info: &CloseInfo, error: Option<&str>) -> String {
    format!("closed: {}", close_text(info, error))
}

/// [`close_line`] without `closed: `.
fn close_text(info: &CloseInfo, error: Option<&str>) -> String {
    describe_close(info.code, &info.reason, info.by, error)
}

fn describe_close(code: CloseCode, reason: &str, by: Initiator, error: Option<&str>) -> String {
    let mut line = if code == CloseCode::ABNORMAL {
        format!("{code} abnormal closure, the connection ended without a Close frame")
    } else {
        let by = match by {
            Initiator::User => "by us",
            Initiator::Remote => "by the server",
            Initiator::Local => "by us (the connection failed)",
        };
        format!("{code} {}, {by}", code_name(code))
    };
    // A lost connection is what 1006 already says.
    let lost = code == CloseCode::ABNORMAL && reason == ws_frame::Error::UnexpectedEof.to_string();
    let reason = if reason.is_empty() || lost {
        error.unwrap_or("")
    } else {
        reason
    };
    if !reason.is_empty() {
        line.push_str(": ");
        line.push_str(reason);
    }
    line
}

/// Whether a connection that ended with `code` ended the way a session should: 1000, 1001 (the
/// server is going away) or a Close frame without a code.
fn is_clean_code(code: CloseCode) -> bool {
    [CloseCode::NORMAL, CloseCode::AWAY, CloseCode::NO_STATUS].contains(&code)
}

/// Why a connection failed, for the close line: nothing for a lost connection (1006 says it
/// already), the error's text otherwise.
fn failure_text(e: &ws_client::Error) -> Option<String> {
    let lost = matches!(
        e,
        ws_client::Error::Protocol(ws_frame::Error::UnexpectedEof)
    );
    (!lost).then(|| e.to_string())
}

/// Prints the close line once and turns an abnormal close into exit status 1.
fn finish(info: Option<&CloseInfo>, error: Option<&str>) -> Result<()> {
    match info {
        Some(info) => {
            eprintln!("{}", close_line(info, error));
            if is_clean_code(info.code) {
                Ok(())
            } else {
                Err(Exit(1).into())
            }
        }
        None => {
            eprintln!("closed: {}", error.unwrap_or("connection ended"));
            Err(Exit(1).into())
        }
    }
}

/// The library error with the URL as context; a refused upgrade's short text body (it often
/// says why, e.g. which paths the server has) goes on the same line as the status.
fn connect_error(e: ws_client::Error, url: &str) -> anyhow::Error {
    let body = match &e {
        ws_client::Error::Http(r) => std::str::from_utf8(&r.body)
            .ok()
            .map(str::trim)
            .filter(|b| !b.is_empty() && b.len() <= 300 && !b.starts_with('<'))
            .map(str::to_owned),
        _ => None,
    };
    let e = match body {
        Some(b) => anyhow::anyhow!("{e}: {b}"),
        None => anyhow::Error::new(e),
    };
    e.context(format!("connecting to {url}"))
}

/// Sleeps until `deadline`, or forever without one.
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn linger(args: &Args) -> Result<Duration> {
    let secs = args.linger.unwrap_or(DEFAULT_LINGER);
    Duration::try_from_secs_f64(secs)
        .map_err(|_| anyhow::anyhow!("--linger {secs}: expected seconds, 0 or more"))
}

/// The loop of `wskit client` over any input and output (tests use in-memory ones).
///
/// Input lines are sent until the input ends; replies keep being printed until none came for
/// `--linger` seconds, then the client closes with 1000 and waits for the server's Close. The
/// close is printed once; an abnormal one ends in [`Exit`] 1.
pub(crate) async fn run_io<R, W>(args: Args, input: R, mut output: W) -> Result<()>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let args = args.merged()?;
    let config = config(&args)?;
    let linger = linger(&args)?;
    let printer = Printer::new(&args);
    let mut lines = input.split(b'\n');
    if config.reconnect.is_some() {
        return run_reconnecting(args, config, linger, &printer, lines, output).await;
    }
    let ws: WebSocket = connect(args.url.as_str(), config)
        .await
        .map_err(|e| connect_error(e, &args.url))?;
    eprintln!(
        "connected to {}{}",
        ws.url(),
        ws.protocol()
            .map(|p| format!(" (protocol {p})"))
            .unwrap_or_default()
    );
    let (mut reader, writer) = ws.split();
    let mut stdin_open = true;
    // Set once the input ended: when to close if no reply comes before.
    let mut deadline: Option<Instant> = None;
    loop {
        tokio::select! {
            line = lines.next_segment(), if stdin_open => match line? {
                Some(line) => {
                    if writer.send(line_message(line, &args)?).await.is_err() {
                        // The connection is closing; what is left to read says why.
                        stdin_open = false;
                    }
                }
                None => {
                    stdin_open = false;
                    deadline = Some(Instant::now() + linger);
                }
            },
            msg = reader.recv() => match msg {
                Some(Ok(msg)) => {
                    printer.write(&mut output, &msg).await?;
                    if let Some(d) = &mut deadline {
                        *d = Instant::now() + linger;
                    }
                }
                Some(Err(e)) => {
                    let info = reader.close_info();
                    return finish(info.as_ref(), failure_text(&e).as_deref());
                }
                None => return finish(reader.close_info().as_ref(), None),
            },
            () = until(deadline) => {
                deadline = None;
                // Close in the background: the reader keeps draining until the server's Close.
                let w = writer.clone();
                tokio::spawn(async move { w.close(CloseCode::NORMAL, "").await });
            },
        }
    }
}

async fn run_reconnecting<R, W>(
    args: Args,
    config: ClientConfig,
    linger: Duration,
    printer: &Printer,
    mut lines: tokio::io::Split<R>,
    mut output: W,
) -> Result<()>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut ws = ReconnectingWebSocket::connect(args.url.as_str(), config)
        .await
        .map_err(|e| connect_error(e, &args.url))?;
    if ws.is_connected() {
        eprintln!("connected to {}", ws.url());
    } else {
        eprintln!("{} did not answer; retrying", ws.url());
    }
    let mut stdin_open = true;
    let mut deadline: Option<Instant> = None;
    loop {
        tokio::select! {
            line = lines.next_segment(), if stdin_open => match line? {
                Some(line) => {
                    if let Err(e) = ws.send(line_message(line, &args)?).await {
                        eprintln!("not sent ({e})");
                    }
                }
                None => {
                    stdin_open = false;
                    deadline = Some(Instant::now() + linger);
                }
            },
            event = ws.next_event() => match event {
                Some(ClientEvent::Message(msg)) => {
                    printer.write(&mut output, &msg).await?;
                    if let Some(d) = &mut deadline {
                        *d = Instant::now() + linger;
                    }
                }
                Some(ClientEvent::Disconnected { info, error }) => {
                    let error = error.and_then(|e| failure_text(&e));
                    let why = match &info {
                        Some(i) => close_text(i, error.as_deref()),
                        None => error.unwrap_or_default(),
                    };
                    eprintln!("disconnected: {why}; reconnecting");
                }
                Some(ClientEvent::Reconnected { url, attempt }) => {
                    eprintln!("connected to {url} (attempt {attempt})");
                }
                Some(ClientEvent::AttemptFailed { attempt, error }) => {
                    eprintln!("attempt {attempt} failed: {error}");
                }
                Some(ClientEvent::GaveUp(error)) => {
                    return Err(anyhow::Error::new(ClientError(error)))
                        .context("gave up reconnecting");
                }
                Some(_) => {}
                None => return finish(None, None),
            },
            () = until(deadline) => {
                return match ws.close(CloseCode::NORMAL, "").await {
                    Ok(info) => finish(Some(&info), None),
                    Err(ws_client::Error::Closed) => finish(None, Some("not connected")),
                    Err(e) => finish(None, Some(&e.to_string())),
                };
            },
        }
    }
}

/// A shared library error as an error source.
#[derive(Debug)]
struct ClientError(std::sync::Arc<ws_client::Error>);

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for ClientError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(url: String) -> Args {
        Args {
            url,
            connect_timeout: Some(5),
            ..Args::default()
        }
    }

    #[test]
    fn stdin_lines_are_echoed_to_stdout_and_eof_closes() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let bind = ws_server::Binding::plain("127.0.0.1:0".parse().unwrap());
            let mut config = ws_server::ServerConfig::new(vec![bind]);
            config.deflate = Some(DeflateConfig::default());
            let server = ws_server::Server::start(config, ws_server::EchoHandler)
                .await
                .unwrap();
            let url = format!("ws://{}/echo", server.local_addrs()[0]);
            let input: &[u8] = b"hello\nsecond line\n";
            let mut out = Vec::new();
            run_io(args(url.clone()), input, &mut out).await.unwrap();
            assert_eq!(out, b"hello\nsecond line\n");

            let mut binary = args(url);
            binary.binary = true;
            let mut out = Vec::new();
            run_io(binary, &b"ab\ncd\n"[..], &mut out).await.unwrap();
            assert_eq!(out, b"abcd");
            server.stop().await;
        });
    }

    #[test]
    fn close_lines_and_exit_statuses() {
        let line = |code: u16, reason: &str, by, error| {
            format!("closed: {}", describe_close(code.into(), reason, by, error))
        };
        assert_eq!(
            line(1000, "", Initiator::User, None),
            "closed: 1000 normal, by us"
        );
        assert_eq!(
            line(1011, "backend unavailable", Initiator::Remote, None),
            "closed: 1011 internal error, by the server: backend unavailable"
        );
        let eof = ws_frame::Error::UnexpectedEof.to_string();
        assert_eq!(
            line(1006, &eof, Initiator::Remote, None),
            "closed: 1006 abnormal closure, the connection ended without a Close frame"
        );
        assert_eq!(
            line(1002, "", Initiator::Local, Some("bad frame")),
            "closed: 1002 protocol error, by us (the connection failed): bad frame"
        );
        for clean in [1000, 1001, 1005] {
            assert!(is_clean_code(clean.into()));
        }
        for abnormal in [1002, 1006, 1008, 1011, 4000] {
            assert!(!is_clean_code(abnormal.into()));
        }
        assert_eq!(unescape("a\\n\\t\\\\\\q"), b"a\n\t\\\\q");
    }

    #[test]
    fn flags_map_to_the_library_config() {
        let mut a = args("ws://h/".into());
        a.headers = vec!["X-One: 1".into()];
        a.protocols = vec!["chat".into()];
        a.proxy = Some("socks5://u:p@127.0.0.1:1080".into());
        a.basic = Some("alice:pw".into());
        a.ping = Some(5);
        a.reconnect = true;
        a.max_attempts = Some(3);
        let c = config(&a).unwrap();
        assert_eq!(c.headers, vec![("X-One".to_owned(), "1".to_owned())]);
        assert_eq!(c.protocols, vec!["chat".to_owned()]);
        let p = c.proxy.unwrap();
        assert_eq!(
            (p.kind, p.host.as_str(), p.port),
            (ProxyKind::Socks5, "127.0.0.1", 1080)
        );
        assert_eq!(p.credentials, Some(("u".into(), "p".into())));
        assert_eq!(c.heartbeat.unwrap().interval, Duration::from_secs(5));
        assert_eq!(c.reconnect.unwrap().max_attempts, 3);
        assert!(c.deflate.is_some());
    }

    /// `wskit client ARGS` as clap parses it, merged with `--config` as `run_io` does.
    fn parse(args: &[&str]) -> Result<Args> {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: Args,
        }
        let argv = std::iter::once("client").chain(args.iter().copied());
        <Cli as clap::Parser>::try_parse_from(argv)
            .unwrap()
            .args
            .merged()
    }

    #[test]
    fn flags_over_the_file_over_the_defaults() {
        let path = std::env::temp_dir().join(format!("wskit-client-{}.toml", std::process::id()));
        std::fs::write(
            &path,
            "[client]\nheader = [\"X-File: 1\"]\nlinger = 5\nconnect_timeout = 3\n\
             binary_output = \"hex\"\nbearer = \"file-token\"\nreconnect = true\n\
             max_attempts = 4\nnewline = true\n",
        )
        .unwrap();
        let file = path.to_str().unwrap();
        // Neither: the defaults.
        let a = parse(&["ws://h/"]).unwrap();
        assert_eq!(linger(&a).unwrap(), Duration::from_secs(1));
        let c = config(&a).unwrap();
        assert_eq!(c.connect_timeout, Duration::from_secs(10));
        assert!(c.headers.is_empty() && c.auth.is_none() && c.reconnect.is_none());
        assert!(!Printer::new(&a).hex);
        // The file over the defaults.
        let a = parse(&["--config", file, "ws://h/"]).unwrap();
        assert_eq!(a.url, "ws://h/");
        assert_eq!(linger(&a).unwrap(), Duration::from_secs(5));
        let c = config(&a).unwrap();
        assert_eq!(c.connect_timeout, Duration::from_secs(3));
        assert_eq!(c.headers, [("X-File".to_owned(), "1".to_owned())]);
        assert!(c.auth.is_some());
        assert_eq!(c.reconnect.unwrap().max_attempts, 4);
        assert!(Printer::new(&a).hex);
        assert_eq!(
            line_message(b"x".to_vec(), &a).unwrap(),
            Message::text("x\n")
        );
        // The flags over the file.
        let a = parse(&[
            "--config",
            file,
            "--linger",
            "0",
            "--connect-timeout",
            "7",
            "-H",
            "X-Flag: 2",
            "--binary-output",
            "raw",
            "--max-attempts",
            "9",
            "ws://h/",
        ])
        .unwrap();
        assert_eq!(linger(&a).unwrap(), Duration::ZERO);
        let c = config(&a).unwrap();
        assert_eq!(c.connect_timeout, Duration::from_secs(7));
        assert_eq!(c.headers, [("X-Flag".to_owned(), "2".to_owned())]);
        assert_eq!(c.reconnect.unwrap().max_attempts, 9);
        assert!(!Printer::new(&a).hex);
        // --crlf on the command line and newline in the file: refused like both flags.
        let a = parse(&["--config", file, "--crlf", "ws://h/"]).unwrap();
        assert!(config(&a).is_err());
        std::fs::remove_file(&path).unwrap();
        // The URL never comes from the file.
        std::fs::write(&path, "[client]\nurl = \"ws://h/\"\n").unwrap();
        let e = parse(&["--config", file, "ws://x/"]).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert!(format!("{e:#}").contains("unknown field `url`"), "{e:#}");
    }

    #[test]
    fn socket_timeout_balance_and_sgc_flags_map_to_the_library_config() {
        let c = config(&Args {
            reconnect: true,
            fallback_urls: vec!["ws://b:81/".into(), "wss://c/".into()],
            read_timeout: Some(2.5),
            write_timeout: Some(4.0),
            tcp_keepalive: Some(30),
            tcp_keepalive_interval: Some(5),
            tcp_keepalive_count: Some(3),
            bind: Some("127.0.0.1".parse().unwrap()),
            local_ports: Some("40000-40010".into()),
            tcp_linger: Some(0),
            throttle: Some(64_000),
            sgc_session: Some("alice:pw".into()),
            ..args("ws://h/".into())
        })
        .unwrap();
        let urls = &c.reconnect.as_ref().unwrap().urls;
        assert_eq!(
            (urls.len(), urls[0].port(), urls[1].is_secure()),
            (2, 81, true)
        );
        assert_eq!(c.read_timeout, Some(Duration::from_millis(2500)));
        assert_eq!(c.write_timeout, Some(Duration::from_secs(4)));
        assert_eq!(
            (
                c.tcp_keepalive,
                c.tcp_keepalive_interval,
                c.tcp_keepalive_retries
            ),
            (
                Some(Duration::from_secs(30)),
                Some(Duration::from_secs(5)),
                Some(3)
            )
        );
        assert_eq!(c.local_ports, Some((40000, 40010)));
        assert_eq!(c.local_addr, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(c.linger, Some(Duration::ZERO));
        assert_eq!(c.throttle_bps, Some(64_000));
        assert!(matches!(&c.sgc_auth, Some(SgcAuth::Session { user, .. }) if user == "alice"));
        let c = config(&Args {
            sgc_url_auth: Some("bob:pw".into()),
            ..args("ws://h/".into())
        })
        .unwrap();
        assert!(matches!(&c.sgc_auth, Some(SgcAuth::Url { user, .. }) if user == "bob"));
    }

    #[test]
    fn bad_flags_are_errors() {
        for bad in [
            Args {
                headers: vec!["no colon".into()],
                ..args("ws://h/".into())
            },
            Args {
                proxy: Some("ftp://h:1".into()),
                ..args("ws://h/".into())
            },
            Args {
                proxy: Some("http://h".into()),
                ..args("ws://h/".into())
            },
            Args {
                basic: Some("a:b".into()),
                bearer: Some("t".into()),
                ..args("ws://h/".into())
            },
            Args {
                ping_timeout: Some(3),
                ..args("ws://h/".into())
            },
            Args {
                fallback_urls: vec!["ws://b/".into()],
                ..args("ws://h/".into())
            },
            Args {
                tcp_keepalive_count: Some(3),
                ..args("ws://h/".into())
            },
            Args {
                local_ports: Some("9000-x".into()),
                ..args("ws://h/".into())
            },
            Args {
                read_timeout: Some(0.0),
                ..args("ws://h/".into())
            },
            Args {
                sgc_session: Some("a:b".into()),
                sgc_url_auth: Some("a:b".into()),
                ..args("ws://h/".into())
            },
            Args {
                oauth2_issuer: Some("http://127.0.0.1:1".into()),
                ..args("ws://h/".into())
            },
            Args {
                oauth2_client_id: Some("id".into()),
                oauth2_issuer: Some("http://127.0.0.1:1".into()),
                ..args("ws://h/".into())
            },
            Args {
                oauth2_client_id: Some("id".into()),
                oauth2_client_secret_file: Some("/nonexistent/secret".into()),
                oauth2_issuer: Some("http://127.0.0.1:1".into()),
                ..args("ws://h/".into())
            },
        ] {
            assert!(config(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn refused_connection_is_a_clear_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let err = rt
            .block_on(run_io(
                args(format!("ws://127.0.0.1:{port}/")),
                &b""[..],
                Vec::new(),
            ))
            .unwrap_err();
        assert!(format!("{err:#}").contains("connecting to"), "{err:#}");
    }
}
