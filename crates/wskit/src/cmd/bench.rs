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
use ws_http::{ClientConfig as HsConfig, ClientHandshake, WsUrl};

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
    /// The parsed URL (host header and request target come from it).
    url: WsUrl,
}

impl Target {
    fn parse(url: &str) -> Result<Self> {
        let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        if scheme.as_deref() != Some("ws") {
            bail!(
                "wskit bench speaks plain ws:// only; expected ws://HOST[:PORT][/PATH], got {url:?}"
            );
        }
        let url = WsUrl::parse(url).with_context(|| format!("bad URL {url:?}"))?;
        let authority = if url.host().contains(':') {
            format!("[{}]:{}", url.host(), url.port())
        } else {
            format!("{}:{}", url.host(), url.port())
        };
        Ok(Self { authority, url })
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
    let mut request = BytesMut::with_capacity(256);
    let mut handshake = ClientHandshake::for_url(&HsConfig::default(), &target.url, &mut request)?;
    tcp.write_all(&request).await?;
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        if tcp.read_buf(&mut buf).await? == 0 {
            return Err(handshake.handle_eof().into());
        }
        if handshake.handle_response(&mut buf)?.is_some() {
            // The bytes after the response head stay in `buf`.
            return Ok((tcp, buf));
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
        assert_eq!(t.url.host_header(), "127.0.0.1:9001");
        assert_eq!(t.url.target(), "/echo");
    }

    #[test]
    fn url_defaults_to_port_80_and_root_path() {
        let t = Target::parse("WS://localhost").unwrap();
        assert_eq!(
            (t.authority.as_str(), t.url.target()),
            ("localhost:80", "/")
        );
        let t = Target::parse("ws://[::1]/x?y=1").unwrap();
        assert_eq!(
            (t.authority.as_str(), t.url.target()),
            ("[::1]:80", "/x?y=1")
        );
        let t = Target::parse("ws://[::1]:8080?q").unwrap();
        assert_eq!(
            (t.authority.as_str(), t.url.target()),
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
}
