//! `wskit client URL`: a WebSocket client on the terminal, like websocat.
//!
//! Every line read from stdin is sent as one message (text, or binary with `--binary`);
//! every message received goes to stdout (text followed by a newline, binary as raw bytes).
//! At the end of stdin the client closes with 1000 and waits for the server's Close. Status
//! (connected, reconnecting, closed with code and reason) goes to stderr.

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};
use ws_client::{
    Auth, ClientConfig, ClientEvent, CloseCode, Heartbeat, Message, Proxy, ProxyKind, Reconnect,
    ReconnectingWebSocket, WebSocket, connect, ws_frame::deflate::DeflateConfig,
};

/// Flags of `wskit client`.
#[derive(Debug, Default, clap::Args)]
pub(crate) struct Args {
    /// `ws://`, `wss://` or `tcp://` URL, with path and query.
    #[arg(value_name = "URL")]
    pub(crate) url: String,
    /// Extra request header `Name: value` (repeatable).
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
    pub(crate) headers: Vec<String>,
    /// Subprotocol to offer (repeatable, in order of preference).
    #[arg(long = "protocol", value_name = "NAME")]
    pub(crate) protocols: Vec<String>,
    /// `Origin` header.
    #[arg(long, value_name = "ORIGIN")]
    pub(crate) origin: Option<String>,
    /// Send stdin lines as binary messages instead of text.
    #[arg(long)]
    pub(crate) binary: bool,
    /// Do not offer permessage-deflate.
    #[arg(long)]
    pub(crate) no_deflate: bool,
    /// Proxy URL: `http://[user:pass@]host:port` (CONNECT), `socks4://host:port`,
    /// `socks4a://host:port` or `socks5://[user:pass@]host:port`.
    #[arg(long, value_name = "URL")]
    pub(crate) proxy: Option<String>,
    /// PEM bundle of CA certificates to trust (instead of the built-in web roots).
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
    /// Ping every SECS seconds; with --ping-timeout, a missing pong closes the connection.
    #[arg(long, value_name = "SECS")]
    pub(crate) ping: Option<u64>,
    /// Seconds to wait for a pong before the peer counts as dead. Default: the ping interval.
    #[arg(long, value_name = "SECS")]
    pub(crate) ping_timeout: Option<u64>,
    /// Reconnect after unexpected disconnects (jittered exponential backoff).
    #[arg(long)]
    pub(crate) reconnect: bool,
    /// Give up after this many reconnect attempts in a row (0: never). Default: 0.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub(crate) max_attempts: u32,
    /// Connect timeout in seconds (DNS, TCP, proxy, TLS and the upgrade). Default: 10.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub(crate) connect_timeout: u64,
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
        r.max_attempts = args.max_attempts;
        c.reconnect = Some(r);
    }
    c.connect_timeout = Duration::from_secs(args.connect_timeout.max(1));
    c.validate().context("invalid client configuration")?;
    Ok(c)
}

/// Runs `wskit client` on stdin and stdout until stdin ends or the connection closes.
pub(crate) async fn run(args: Args) -> Result<()> {
    let stdin = tokio::io::BufReader::new(tokio::io::stdin());
    run_io(args, stdin, tokio::io::stdout()).await
}

fn line_message(line: String, binary: bool) -> Message {
    if binary {
        Message::binary(line.into_bytes())
    } else {
        Message::text(line)
    }
}

async fn write_message<W: AsyncWrite + Unpin>(out: &mut W, msg: &Message) -> Result<()> {
    match msg {
        Message::Text(t) => {
            out.write_all(t.as_bytes()).await?;
            out.write_all(b"\n").await?;
        }
        Message::Binary(b) => out.write_all(b).await?,
    }
    out.flush().await?;
    Ok(())
}

/// The loop of `wskit client` over any input and output (tests use in-memory ones).
pub(crate) async fn run_io<R, W>(args: Args, input: R, mut output: W) -> Result<()>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let config = config(&args)?;
    let mut lines = input.lines();
    if config.reconnect.is_some() {
        let mut ws = ReconnectingWebSocket::connect(args.url.as_str(), config)
            .await
            .with_context(|| format!("connecting to {}", args.url))?;
        eprintln!("connected to {}", ws.url());
        loop {
            tokio::select! {
                line = lines.next_line() => match line? {
                    Some(line) => {
                        if let Err(e) = ws.send(line_message(line, args.binary)).await {
                            eprintln!("not sent ({e})");
                        }
                    }
                    None => {
                        let info = ws.close(CloseCode::NORMAL, "").await?;
                        eprintln!("closed: {info:?}");
                        return Ok(());
                    }
                },
                event = ws.next_event() => match event {
                    Some(ClientEvent::Message(msg)) => write_message(&mut output, &msg).await?,
                    Some(ClientEvent::Disconnected { info, error }) => match error {
                        Some(e) => eprintln!("disconnected: {e}"),
                        None => eprintln!("disconnected: {info:?}"),
                    },
                    Some(ClientEvent::Reconnected { url, attempt }) => {
                        eprintln!("reconnected to {url} (attempt {attempt})");
                    }
                    Some(ClientEvent::AttemptFailed { attempt, error }) => {
                        eprintln!("reconnect attempt {attempt} failed: {error}");
                    }
                    Some(ClientEvent::GaveUp(error)) => bail!("gave up reconnecting: {error}"),
                    Some(_) => {}
                    None => return Ok(()),
                },
            }
        }
    }
    let ws: WebSocket = connect(args.url.as_str(), config)
        .await
        .with_context(|| format!("connecting to {}", args.url))?;
    eprintln!(
        "connected to {}{}",
        ws.url(),
        ws.protocol()
            .map(|p| format!(" (protocol {p})"))
            .unwrap_or_default()
    );
    let (mut reader, writer) = ws.split();
    let mut stdin_open = true;
    loop {
        tokio::select! {
            line = lines.next_line(), if stdin_open => match line? {
                Some(line) => writer.send(line_message(line, args.binary)).await?,
                None => {
                    stdin_open = false;
                    let info = writer.close(CloseCode::NORMAL, "").await?;
                    eprintln!("closed: {info:?}");
                }
            },
            msg = reader.recv() => match msg {
                Some(Ok(msg)) => write_message(&mut output, &msg).await?,
                Some(Err(e)) => return Err(e).context("connection failed"),
                None => {
                    if let Some(info) = reader.close_info() {
                        eprintln!("closed: {info:?}");
                    }
                    return Ok(());
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(url: String) -> Args {
        Args {
            url,
            connect_timeout: 5,
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
    fn flags_map_to_the_library_config() {
        let mut a = args("ws://h/".into());
        a.headers = vec!["X-One: 1".into()];
        a.protocols = vec!["chat".into()];
        a.proxy = Some("socks5://u:p@127.0.0.1:1080".into());
        a.basic = Some("alice:pw".into());
        a.ping = Some(5);
        a.reconnect = true;
        a.max_attempts = 3;
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
