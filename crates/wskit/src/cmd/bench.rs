//! `wskit bench`: an echo load generator for WebSocket servers.
//!
//! It speaks the protocol of uWebSockets' `benchmarks/load_test.c`, so figures compare with
//! those published for other servers: `--conns` connections are opened first; then each keeps
//! exactly one masked binary message of `--size` bytes in flight, sending the next one as soon
//! as the echo arrives. Messages per second are printed every `--interval` seconds and a
//! summary line closes the run:
//!
//! ```text
//! connected: 100 connections in 0.04 s
//! [   2.0 s] msgs/s: 183211
//! ...
//! summary: msgs_per_sec=181934 conns=100 size=20 secs=10.00 messages=1819340 errors=0
//! ```
//!
//! With `--idle` the connections are opened and then held without traffic for `--secs` (for
//! measuring a server's memory per connection); the summary is then
//! `summary: idle conns=N secs=S`.
//!
//! Each connection is a tokio task running the client handshake and a client-role
//! `ws_frame::Connection` (masking, framing and decoding of the echo), so the generator also
//! exercises our own client path end to end. It runs on its own multi-thread tokio runtime
//! with `--threads` workers (default 1, like the single event loop of uWebSockets' tool); on a
//! machine with cores to spare, raise it so that the generator never becomes the bottleneck
//! (`cargo xtask bench echo` prints the CPU time of both sides to check). Plain `ws://` only.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use bytes::{Bytes, BytesMut};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::{Semaphore, watch},
    task::JoinSet,
};
use ws_frame::{Config, Connection, Event, Message, Role};

/// Flags of `wskit bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Echo endpoint, `ws://HOST[:PORT][/PATH]` (e.g. ws://127.0.0.1:8080/echo).
    #[arg(value_name = "URL")]
    pub(crate) url: String,
    /// Connections, each with one message in flight. Default: 100.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub(crate) conns: usize,
    /// Message size in bytes (binary, masked). Default: 20.
    #[arg(long, value_name = "BYTES", default_value_t = 20)]
    pub(crate) size: usize,
    /// Measurement length in seconds, counted once every connection is open. Default: 10.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub(crate) secs: u64,
    /// Seconds between progress lines. Default: 2.
    #[arg(long, value_name = "SECS", default_value_t = 2)]
    pub(crate) interval: u64,
    /// Worker threads of the generator's own runtime. Default: 1.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub(crate) threads: usize,
    /// Connections being opened at the same time. Default: 64.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub(crate) connect_parallel: usize,
    /// Open the connections, then hold them without traffic for --secs.
    #[arg(long)]
    pub(crate) idle: bool,
}

/// Runs the load generator on its own runtime and prints the figures.
///
/// # Errors
/// A bad URL or flag, a connection or handshake that fails while opening, or any connection
/// that fails during the measurement (after the summary is printed).
pub(crate) fn run(args: Args) -> Result<()> {
    if args.conns == 0 || args.threads == 0 || args.interval == 0 || args.connect_parallel == 0 {
        bail!("--conns, --threads, --interval and --connect-parallel must be at least 1");
    }
    let target = Target::parse(&args.url)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let conns = args.conns;
    let result = runtime.block_on(drive(args, target));
    // Connections still blocked in a read are simply dropped.
    runtime.shutdown_background();
    let report = result?;
    if report.errors > 0 {
        bail!(
            "{} of {conns} connections failed during the run",
            report.errors
        );
    }
    Ok(())
}

/// What a run measured (all zero for `--idle`).
#[derive(Debug, Clone, Copy, Default)]
struct Report {
    /// Echoes received during the measurement.
    messages: u64,
    /// Length of the measurement.
    secs: f64,
    /// Connections that failed during the measurement.
    errors: u64,
}

impl Report {
    /// The closing line, `key=value` pairs that scripts read.
    fn summary(&self, conns: usize, size: usize) -> String {
        format!(
            "summary: msgs_per_sec={:.0} conns={conns} size={size} secs={:.2} messages={} errors={}",
            self.messages as f64 / self.secs.max(f64::EPSILON),
            self.secs,
            self.messages,
            self.errors
        )
    }
}

/// Where to connect, from a `ws://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    /// `host:port` to resolve.
    authority: String,
    /// The `Host` header value (the URL's host and port as written).
    host_header: String,
    /// Request target, starting with `/`.
    path: String,
}

impl Target {
    fn parse(url: &str) -> Result<Self> {
        let rest = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("ws") => rest,
            Some((scheme, _)) if scheme.eq_ignore_ascii_case("wss") => {
                bail!("wskit bench speaks plain ws:// only")
            }
            _ => bail!("expected a ws://HOST[:PORT][/PATH] URL, got {url:?}"),
        };
        let (host_port, path) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_owned()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_owned()),
        };
        if host_port.is_empty() || host_port.contains('@') {
            bail!("expected a host in {url:?}");
        }
        // A port follows the last ':' unless that ':' is inside an IPv6 literal.
        let has_port = match host_port.rfind(':') {
            Some(i) => !host_port[i..].contains(']'),
            None => false,
        };
        let authority = if has_port {
            host_port.to_owned()
        } else {
            format!("{host_port}:80")
        };
        Ok(Self {
            authority,
            host_header: host_port.to_owned(),
            path,
        })
    }
}

/// Counters shared by every connection task.
#[derive(Debug, Default)]
struct Shared {
    messages: AtomicU64,
    errors: AtomicU64,
    stop: AtomicBool,
}

/// Opens the connections, runs the measurement and prints progress and the summary line.
async fn drive(args: Args, target: Target) -> Result<Report> {
    let addr = tokio::net::lookup_host(&target.authority)
        .await
        .with_context(|| format!("resolving {}", target.authority))?
        .next()
        .with_context(|| format!("{} has no address", target.authority))?;
    let target = Arc::new(target);

    // Phase 1: open every connection (handshake included) before any traffic.
    let started = Instant::now();
    let permits = Arc::new(Semaphore::new(args.connect_parallel));
    let mut opening = JoinSet::new();
    for _ in 0..args.conns {
        let permits = Arc::clone(&permits);
        let target = Arc::clone(&target);
        opening.spawn(async move {
            let _permit = permits.acquire_owned().await?;
            open(addr, &target).await
        });
    }
    let mut open_conns = Vec::with_capacity(args.conns);
    while let Some(joined) = opening.join_next().await {
        match joined.context("connection task")? {
            Ok(conn) => open_conns.push(conn),
            Err(e) => {
                opening.abort_all();
                return Err(e.context(format!(
                    "opening connection {} of {} to {addr}",
                    open_conns.len() + 1,
                    args.conns
                )));
            }
        }
    }
    println!(
        "connected: {} connections in {:.2} s",
        open_conns.len(),
        started.elapsed().as_secs_f64()
    );

    if args.idle {
        tokio::time::sleep(Duration::from_secs(args.secs)).await;
        println!(
            "summary: idle conns={} secs={}",
            open_conns.len(),
            args.secs
        );
        return Ok(Report::default());
    }

    // Phase 2: every connection keeps one message in flight.
    let shared = Arc::new(Shared::default());
    let payload = Bytes::from(vec![b'T'; args.size]);
    let (go_tx, go_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    for (tcp, leftover) in open_conns {
        let shared = Arc::clone(&shared);
        let payload = payload.clone();
        let mut go = go_rx.clone();
        tasks.spawn(async move {
            if go.wait_for(|&go| go).await.is_err() {
                return;
            }
            if echo_loop(tcp, leftover, payload, &shared).await.is_err() {
                shared.errors.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let start = Instant::now();
    go_tx.send_replace(true);
    let end = start + Duration::from_secs(args.secs);
    let interval = Duration::from_secs(args.interval);
    let (mut last_time, mut last_count) = (start, 0);
    loop {
        let next = (last_time + interval).min(end);
        tokio::time::sleep_until(next.into()).await;
        let now = Instant::now();
        let count = shared.messages.load(Ordering::Relaxed);
        let rate = (count - last_count) as f64 / (now - last_time).as_secs_f64();
        println!("[{:>6.1} s] msgs/s: {rate:.0}", (now - start).as_secs_f64());
        (last_time, last_count) = (now, count);
        if now >= end {
            break;
        }
    }
    shared.stop.store(true, Ordering::Relaxed);
    let report = Report {
        messages: shared.messages.load(Ordering::Relaxed),
        secs: start.elapsed().as_secs_f64(),
        errors: shared.errors.load(Ordering::Relaxed),
    };
    tasks.abort_all();
    println!("{}", report.summary(args.conns, args.size));
    Ok(report)
}

/// Connects and runs the opening handshake; returns the stream and any bytes that arrived
/// after the response head.
async fn open(addr: SocketAddr, target: &Target) -> Result<(TcpStream, BytesMut)> {
    let mut tcp = match TcpStream::connect(addr).await {
        Ok(tcp) => tcp,
        Err(e) if e.raw_os_error() == Some(24) => {
            return Err(e).context("too many open files: raise the limit (ulimit -n)");
        }
        Err(e) => return Err(e).context("connect"),
    };
    tcp.set_nodelay(true)?;
    let (request, expected_accept) = handshake::request(&target.host_header, &target.path)?;
    tcp.write_all(request.as_bytes()).await?;
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        if tcp.read_buf(&mut buf).await? == 0 {
            bail!("the server closed the connection during the handshake");
        }
        if let Some(head_len) = handshake::check_response(&buf, &expected_accept)? {
            let _ = buf.split_to(head_len);
            return Ok((tcp, buf));
        }
        if buf.len() > handshake::MAX_RESPONSE_HEAD {
            bail!(
                "handshake response head over {} bytes",
                handshake::MAX_RESPONSE_HEAD
            );
        }
    }
}

/// Sends a message, waits for its echo, repeats until told to stop.
async fn echo_loop(
    mut tcp: TcpStream,
    leftover: BytesMut,
    payload: Bytes,
    shared: &Shared,
) -> Result<()> {
    let mut config = Config::default();
    config.max_frame = config.max_frame.max(payload.len());
    config.max_message = config.max_message.max(payload.len());
    let mut conn = Connection::new(Role::Client, config)?;
    conn.feed(&leftover);
    let mut out = BytesMut::with_capacity(payload.len() + ws_frame::MAX_HEADER_LEN);
    while !shared.stop.load(Ordering::Relaxed) {
        conn.send(Message::binary(payload.clone()))?;
        out.clear();
        while conn.poll_transmit(&mut out) {}
        tcp.write_all(&out).await?;
        'echo: loop {
            while let Some(event) = conn.poll_event()? {
                match event {
                    Event::Message(m) if m.len() == payload.len() => {
                        shared.messages.fetch_add(1, Ordering::Relaxed);
                        break 'echo;
                    }
                    Event::Message(m) => {
                        bail!(
                            "echo of {} bytes for a {}-byte message",
                            m.len(),
                            payload.len()
                        )
                    }
                    Event::Closed { code, .. } => bail!("the server closed ({code:?})"),
                    // Pings are answered by the connection (auto-pong), flushed below.
                    _ => {}
                }
            }
            if conn.pending_transmit_bytes() > 0 {
                out.clear();
                while conn.poll_transmit(&mut out) {}
                tcp.write_all(&out).await?;
            }
            if tcp.read_buf(conn.read_buf()).await? == 0 {
                bail!("the server closed the TCP connection");
            }
        }
    }
    Ok(())
}

/// The client side of the opening handshake (RFC 6455 section 4.1), no extensions offered.
/// Kept minimal and private: it gives way to ws-http's client handshake once that crate has one.
mod handshake {
    use anyhow::{Result, bail};
    use base64::{Engine as _, engine::general_purpose::STANDARD};
    use sha1::{Digest, Sha1};

    const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    /// Largest response head accepted.
    pub(super) const MAX_RESPONSE_HEAD: usize = 16 * 1024;

    /// The request text and the `Sec-WebSocket-Accept` value the server must answer with.
    pub(super) fn request(host: &str, path: &str) -> Result<(String, String)> {
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).map_err(|e| anyhow::anyhow!("random key: {e}"))?;
        let key = STANDARD.encode(nonce);
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        Ok((request, accept_for(&key)))
    }

    pub(super) fn accept_for(key: &str) -> String {
        let mut sha = Sha1::new();
        sha.update(key.as_bytes());
        sha.update(GUID.as_bytes());
        STANDARD.encode(sha.finalize())
    }

    fn has_token(value: &[u8], token: &str) -> bool {
        std::str::from_utf8(value)
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    }

    /// `Ok(None)`: the head is incomplete. `Ok(Some(len))`: a valid 101 response head of
    /// `len` bytes.
    pub(super) fn check_response(buf: &[u8], expected_accept: &str) -> Result<Option<usize>> {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        let len = match response.parse(buf)? {
            httparse::Status::Complete(len) => len,
            httparse::Status::Partial => return Ok(None),
        };
        if response.code != Some(101) {
            bail!(
                "the server answered {} {} instead of 101",
                response.code.unwrap_or(0),
                response.reason.unwrap_or("")
            );
        }
        let header = |name: &str| {
            response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| h.value)
        };
        if !header("upgrade").is_some_and(|v| has_token(v, "websocket")) {
            bail!("101 response without Upgrade: websocket");
        }
        if !header("connection").is_some_and(|v| has_token(v, "upgrade")) {
            bail!("101 response without Connection: Upgrade");
        }
        if header("sec-websocket-accept").map(<[u8]>::trim_ascii)
            != Some(expected_accept.as_bytes())
        {
            bail!("wrong or missing Sec-WebSocket-Accept");
        }
        if header("sec-websocket-extensions").is_some() {
            bail!("the server chose an extension that was not offered");
        }
        Ok(Some(len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(url: String, conns: usize, size: usize) -> Args {
        Args {
            url,
            conns,
            size,
            secs: 1,
            interval: 1,
            threads: 1,
            connect_parallel: 2,
            idle: false,
        }
    }

    #[test]
    fn generator_counts_echoes_of_a_ws_server_for_small_and_large_messages() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let bind = ws_server::Binding::plain("127.0.0.1:0".parse().unwrap());
            let config = ws_server::ServerConfig::new(vec![bind]);
            let server = ws_server::Server::start(config, ws_server::EchoHandler)
                .await
                .unwrap();
            let url = format!("ws://{}/echo", server.local_addrs()[0]);
            for (conns, size) in [(3, 20), (2, 200_000), (1, 0)] {
                let args = args(url.clone(), conns, size);
                let target = Target::parse(&args.url).unwrap();
                let report = drive(args, target).await.unwrap();
                assert_eq!(report.errors, 0, "{conns}x{size}");
                assert!(report.messages > 0, "{conns}x{size}: no echo counted");
            }
            server.stop().await;
        });
    }

    #[test]
    fn summary_line_is_key_value_pairs() {
        let report = Report {
            messages: 1000,
            secs: 2.0,
            errors: 0,
        };
        assert_eq!(
            report.summary(10, 20),
            "summary: msgs_per_sec=500 conns=10 size=20 secs=2.00 messages=1000 errors=0"
        );
    }

    #[test]
    fn opening_fails_when_nothing_listens() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let args = args(format!("ws://127.0.0.1:{port}/"), 2, 20);
        let target = Target::parse(&args.url).unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let err = runtime.block_on(drive(args, target)).unwrap_err();
        assert!(format!("{err:#}").contains("opening connection"), "{err:#}");
    }

    #[test]
    fn url_with_port_and_path() {
        let t = Target::parse("ws://127.0.0.1:9001/echo").unwrap();
        assert_eq!(t.authority, "127.0.0.1:9001");
        assert_eq!(t.host_header, "127.0.0.1:9001");
        assert_eq!(t.path, "/echo");
    }

    #[test]
    fn url_defaults_to_port_80_and_root_path() {
        let t = Target::parse("WS://localhost").unwrap();
        assert_eq!(
            (t.authority.as_str(), t.path.as_str()),
            ("localhost:80", "/")
        );
        let t = Target::parse("ws://[::1]/x?y=1").unwrap();
        assert_eq!(
            (t.authority.as_str(), t.path.as_str()),
            ("[::1]:80", "/x?y=1")
        );
        let t = Target::parse("ws://[::1]:8080?q").unwrap();
        assert_eq!(
            (t.authority.as_str(), t.path.as_str()),
            ("[::1]:8080", "/?q")
        );
    }

    #[test]
    fn urls_that_are_not_plain_ws_are_refused() {
        for url in [
            "wss://h/",
            "http://h/",
            "h:80",
            "ws:///path",
            "ws://user@h/",
        ] {
            assert!(Target::parse(url).is_err(), "{url}");
        }
    }

    #[test]
    fn accept_value_matches_rfc6455_example() {
        // RFC 6455 section 1.3.
        assert_eq!(
            handshake::accept_for("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn response_check_accepts_101_and_reports_the_head_length() {
        let accept = handshake::accept_for("dGhlIHNhbXBsZSBub25jZQ==");
        let head = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n\
             Sec-WebSocket-Accept: {accept}\r\n\r\n"
        );
        let mut buf = head.clone().into_bytes();
        assert_eq!(
            handshake::check_response(&buf[..20], &accept).unwrap(),
            None
        );
        buf.extend_from_slice(&[0x82, 0x00]);
        assert_eq!(
            handshake::check_response(&buf, &accept).unwrap(),
            Some(head.len())
        );
    }

    #[test]
    fn response_check_refuses_wrong_status_accept_or_extension() {
        let accept = handshake::accept_for("dGhlIHNhbXBsZSBub25jZQ==");
        let cases = [
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_owned(),
            "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: AAAA\r\n\r\n"
                .to_owned(),
            format!(
                "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
            ),
            format!(
                "HTTP/1.1 101 OK\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            ),
        ];
        for head in cases {
            assert!(
                handshake::check_response(head.as_bytes(), &accept).is_err(),
                "{head}"
            );
        }
    }
}
