//! Load through a WebSocket-to-TCP bridge, against a TCP echo backend this program starts
//! itself (it listens on the backend port the bridge forwards to).
//!
//! ```text
//! wskit proxy --listen 127.0.0.1:8080 --to tcp://127.0.0.1:5999 &
//! cargo run --release -p ws-proxy --example proxy_load -- ws://127.0.0.1:8080/ 5999 [TEST CONNS SECS] [--sync]
//! cargo run --release -p ws-proxy --example proxy_load -- self      # an in-process wskit proxy
//! ```
//!
//! Tests (without one: `bulk 1`, `bulk 4`, `rt 1`, `rt 64`, 3 s each):
//!
//! - `bulk CONNS SECS`: every connection sends 64 KiB binary messages for SECS while reading
//!   the echo, then waits for the echo of everything it sent. The rate is the bytes echoed
//!   back (one way) over the time until the last one arrived, in MB/s.
//! - `rt CONNS SECS`: every connection keeps one 64-byte binary message in flight (send, wait
//!   for its echo, again) for SECS. The rate is the total round trips per second.
//!
//! Each test prints one line, `result: test=.. conns=.. secs=.. bytes=.. trips=.. rate=..
//! driver_cpu=..` (`driver_cpu`: CPU seconds of this whole process, client and backend,
//! during the measured window). With `--sync` the window is opened and closed by the caller:
//! once every connection is open the program prints `ready` and waits for a line on stdin;
//! after the result line it waits for another before closing the connections (so that a
//! caller sampling the bridge's CPU time sees neither the handshakes nor the teardown).
//!
//! The driver is kept cheap so that the bridge is what is measured: the client speaks
//! WebSocket over raw sockets (frames masked once, up front, and written again and again;
//! the echo parsed in place, never copied), and the echo backend is a read-then-write loop
//! per connection on its own single-threaded runtime and thread; the client runs on another.

use std::{
    io::BufRead as _,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Payload of one bulk message.
const BULK_SIZE: usize = 64 * 1024;
/// Byte every bulk payload is made of (checked on the way back).
const BULK_BYTE: u8 = 0x5a;
/// Payload of one round trip.
const RT_SIZE: usize = 64;
const RT_BYTE: u8 = 7;
/// How long a read may wait before the run counts as stuck.
const STALL: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Bulk,
    Rt,
}

#[derive(Clone, Copy, Debug)]
struct Test {
    kind: Kind,
    conns: usize,
    secs: f64,
}

/// CPU seconds (user + system) of this process, all threads.
fn process_cpu() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15, 12 and 13 after the command name; USER_HZ = 100.
    let ticks: u64 = f
        .get(11..13)
        .map_or(0, |t| t.iter().filter_map(|s| s.parse::<u64>().ok()).sum());
    ticks as f64 / 100.0
}

// ---------------------------------------------------------------------------------------------
// The echo backend.
// ---------------------------------------------------------------------------------------------

/// Echoes every connection: read up to 64 KiB, write it back, again (TCP's flow control is
/// the backpressure). Runs on its own thread and single-threaded runtime.
fn echo_backend(listener: std::net::TcpListener) {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("echo runtime");
        rt.block_on(async move {
            let l = TcpListener::from_std(listener).expect("echo listener");
            while let Ok((mut s, _)) = l.accept().await {
                let _ = s.set_nodelay(true);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024].into_boxed_slice();
                    loop {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if s.write_all(&buf[..n]).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                });
            }
        });
    });
}

// ---------------------------------------------------------------------------------------------
// A raw WebSocket client.
// ---------------------------------------------------------------------------------------------

/// `ws://HOST:PORT/PATH` as (`HOST:PORT`, `/PATH`).
fn split_url(url: &str) -> Result<(String, String)> {
    let rest = url
        .strip_prefix("ws://")
        .ok_or_else(|| format!("not a ws:// URL: {url}"))?;
    Ok(match rest.find('/') {
        Some(i) => (rest[..i].to_owned(), rest[i..].to_owned()),
        None => (rest.to_owned(), "/".to_owned()),
    })
}

/// A client frame: FIN, `opcode`, masked with a fixed key (the bridges do not care which).
fn masked_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
    let mut f = vec![0x80 | opcode];
    let n = payload.len();
    if n < 126 {
        f.push(0x80 | n as u8);
    } else if n <= 0xffff {
        f.push(0x80 | 126);
        f.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        f.push(0x80 | 127);
        f.extend_from_slice(&(n as u64).to_be_bytes());
    }
    f.extend_from_slice(&KEY);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ KEY[i % 4]));
    f
}

/// Opens a WebSocket (subprotocol `binary`) over a raw TCP socket; returns it with the bytes
/// that came after the response head.
async fn open(host: &str, path: &str) -> Result<(TcpStream, Vec<u8>)> {
    let mut s = TcpStream::connect(host).await?;
    s.set_nodelay(true)?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: binary\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await?;
    let mut head = Vec::with_capacity(1024);
    let end = loop {
        if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if head.len() > 16 * 1024 {
            return Err("response head too long".into());
        }
        let mut chunk = [0u8; 1024];
        let n = tokio::time::timeout(STALL, s.read(&mut chunk)).await??;
        if n == 0 {
            return Err("connection closed during the handshake".into());
        }
        head.extend_from_slice(&chunk[..n]);
    };
    let status = String::from_utf8_lossy(&head[..end]);
    if !status.starts_with("HTTP/1.1 101") {
        let line = status.lines().next().unwrap_or_default();
        return Err(format!("upgrade refused: {line}").into());
    }
    Ok((s, head[end..].to_vec()))
}

/// Parses the server's frames as they arrive, in place: hands over data payload bytes, skips
/// control frames, stops at a Close.
#[derive(Default)]
struct Frames {
    head: [u8; 14],
    have: usize,
    payload_left: u64,
    data: bool,
}

impl Frames {
    /// The length of the header whose first two bytes are in `head`.
    fn head_len(&self) -> usize {
        let len_bytes = match self.head[1] & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask = if self.head[1] & 0x80 != 0 { 4 } else { 0 };
        2 + len_bytes + mask
    }

    /// Feeds bytes; `on_data` sees the payload bytes of data frames. False once a Close came.
    fn feed(&mut self, mut bytes: &[u8], mut on_data: impl FnMut(&[u8])) -> bool {
        while !bytes.is_empty() {
            if self.payload_left > 0 {
                let n = bytes.len().min(self.payload_left as usize);
                if self.data {
                    on_data(&bytes[..n]);
                }
                self.payload_left -= n as u64;
                bytes = &bytes[n..];
                continue;
            }
            // A header: 2 bytes, then the extended length and the mask key (if any).
            let need = if self.have < 2 { 2 } else { self.head_len() };
            let take = (need - self.have).min(bytes.len());
            self.head[self.have..self.have + take].copy_from_slice(&bytes[..take]);
            self.have += take;
            bytes = &bytes[take..];
            if self.have < need || self.have < self.head_len() {
                continue;
            }
            let len = match self.head[1] & 0x7f {
                126 => u64::from(u16::from_be_bytes([self.head[2], self.head[3]])),
                127 => u64::from_be_bytes(self.head[2..10].try_into().unwrap_or_default()),
                n => u64::from(n),
            };
            let opcode = self.head[0] & 0x0f;
            if opcode == 8 {
                return false;
            }
            self.data = opcode < 8;
            self.payload_left = len;
            self.have = 0;
        }
        true
    }
}

/// The echo of one connection: payload bytes counted and checked against the byte sent.
struct Echo {
    frames: Frames,
    byte: u8,
    got: u64,
    bad: bool,
}

impl Echo {
    fn new(byte: u8) -> Self {
        Self {
            frames: Frames::default(),
            byte,
            got: 0,
            bad: false,
        }
    }

    /// False once the bridge sent a Close.
    fn feed(&mut self, bytes: &[u8]) -> bool {
        let (byte, got, bad) = (self.byte, &mut self.got, &mut self.bad);
        self.frames.feed(bytes, |p| {
            *got += p.len() as u64;
            *bad |= !p.iter().all(|&b| b == byte);
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The tests.
// ---------------------------------------------------------------------------------------------

/// Ends a connection politely: Close 1000, then wait (briefly) for the bridge to close.
async fn close(mut s: TcpStream) {
    let _ = s.write_all(&masked_frame(8, &1000u16.to_be_bytes())).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let mut buf = [0u8; 4096];
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// One bulk connection: writes until `deadline`, then waits for the whole echo. Returns the
/// stream and the bytes echoed.
async fn bulk_conn(
    s: TcpStream,
    early: Vec<u8>,
    frame: Arc<Vec<u8>>,
    deadline: Instant,
) -> Result<(TcpStream, u64)> {
    let (mut r, mut w) = s.into_split();
    let sent = Arc::new(AtomicU64::new(u64::MAX));
    let sent2 = sent.clone();
    let writer = tokio::spawn(async move {
        let mut n = 0u64;
        while Instant::now() < deadline {
            w.write_all(&frame).await?;
            n += BULK_SIZE as u64;
        }
        sent2.store(n, Ordering::Release);
        Ok::<_, std::io::Error>(w)
    });
    let mut echo = Echo::new(BULK_BYTE);
    if !echo.feed(&early) {
        return Err("the bridge closed the connection".into());
    }
    let mut buf = vec![0u8; 256 * 1024];
    // The writer stores its total right after its last write: the echo of that write cannot
    // all be here before.
    while echo.got < sent.load(Ordering::Acquire) {
        let n = tokio::time::timeout(STALL, r.read(&mut buf)).await??;
        if n == 0 || !echo.feed(&buf[..n]) {
            return Err("the bridge closed the connection".into());
        }
    }
    if echo.bad {
        return Err("the echo differs from what was sent".into());
    }
    let w = writer.await??;
    Ok((r.reunite(w)?, echo.got))
}

/// One round-trip connection until `deadline`; returns the stream and its round trips.
async fn rt_conn(mut s: TcpStream, early: Vec<u8>, deadline: Instant) -> Result<(TcpStream, u64)> {
    if !early.is_empty() {
        return Err("unexpected data before the first message".into());
    }
    let frame = masked_frame(2, &[RT_BYTE; RT_SIZE]);
    let mut echo = Echo::new(RT_BYTE);
    let mut buf = [0u8; 4096];
    let mut trips = 0u64;
    while Instant::now() < deadline {
        s.write_all(&frame).await?;
        let want = echo.got + RT_SIZE as u64;
        while echo.got < want {
            let n = tokio::time::timeout(STALL, s.read(&mut buf)).await??;
            if n == 0 || !echo.feed(&buf[..n]) {
                return Err("the bridge closed the connection".into());
            }
        }
        if echo.bad || echo.got != want {
            return Err("the echo differs from what was sent".into());
        }
        trips += 1;
    }
    Ok((s, trips))
}

fn wait_line(sync: bool) {
    if sync {
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
    }
}

async fn run(url: &str, test: Test, sync: bool) -> Result<()> {
    let (host, path) = split_url(url)?;
    let mut conns = Vec::with_capacity(test.conns);
    for _ in 0..test.conns {
        conns.push(open(&host, &path).await?);
    }
    if sync {
        println!("ready");
    }
    wait_line(sync);
    let cpu0 = process_cpu();
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(test.secs);
    let frame = Arc::new(masked_frame(2, &[BULK_BYTE; BULK_SIZE]));
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|(s, early)| match test.kind {
            Kind::Bulk => tokio::spawn(bulk_conn(s, early, frame.clone(), deadline)),
            Kind::Rt => tokio::spawn(rt_conn(s, early, deadline)),
        })
        .collect();
    let mut streams = Vec::with_capacity(tasks.len());
    let mut total = 0u64;
    for t in tasks {
        let (s, n) = t.await??;
        streams.push(s);
        total += n;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let driver_cpu = process_cpu() - cpu0;
    let (name, bytes, trips, rate) = match test.kind {
        Kind::Bulk => ("bulk", total, 0, total as f64 / 1e6 / elapsed),
        Kind::Rt => ("rt", 0, total, total as f64 / elapsed),
    };
    println!(
        "result: test={name} conns={} secs={elapsed:.3} bytes={bytes} trips={trips} \
         rate={rate:.1} driver_cpu={driver_cpu:.2}",
        test.conns
    );
    wait_line(sync);
    for s in streams {
        close(s).await;
    }
    Ok(())
}

fn parse_test(args: &[String]) -> Result<Option<Test>> {
    let Some(kind) = args.first() else {
        return Ok(None);
    };
    let kind = match kind.as_str() {
        "bulk" => Kind::Bulk,
        "rt" => Kind::Rt,
        other => return Err(format!("unknown test {other} (bulk, rt)").into()),
    };
    let conns = args.get(1).map_or(Ok(1), |c| c.parse())?;
    let secs: f64 = args.get(2).map_or(Ok(3.0), |s| s.parse())?;
    if conns == 0 || secs <= 0.0 {
        return Err("CONNS and SECS must be positive".into());
    }
    Ok(Some(Test { kind, conns, secs }))
}

fn main() -> Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let sync = args.iter().any(|a| a == "--sync");
    args.retain(|a| a != "--sync");
    let url_arg = args.first().cloned().unwrap_or_else(|| "self".into());
    let port: u16 = args.get(1).map_or(Ok(0), |p| p.parse())?;
    let tests = match parse_test(args.get(2..).unwrap_or_default())? {
        Some(t) => vec![t],
        None => [
            (Kind::Bulk, 1),
            (Kind::Bulk, 4),
            (Kind::Rt, 1),
            (Kind::Rt, 64),
        ]
        .into_iter()
        .map(|(kind, conns)| Test {
            kind,
            conns,
            secs: 3.0,
        })
        .collect(),
    };

    let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
    listener.set_nonblocking(true)?;
    let backend: SocketAddr = listener.local_addr()?;
    echo_backend(listener);

    // `self`: an in-process proxy on a runtime of its own (two workers, as `wskit proxy`
    // would have here).
    let proxy_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (url, _proxy) = if url_arg == "self" {
        let mut c =
            ws_proxy::ProxyConfig::to(ws_proxy::Target::parse(&format!("tcp://{backend}"))?);
        c.server.bindings = vec![ws_server::Binding::plain("127.0.0.1:0".parse()?)];
        let p = proxy_rt.block_on(ws_proxy::ProxyServer::start(c))?;
        (format!("ws://{}/", p.local_addrs()[0]), Some(p))
    } else {
        (url_arg, None)
    };
    eprintln!("proxy {url}, echo backend {backend}");

    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    for test in tests {
        client.block_on(run(&url, test, sync))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_parsed_across_reads() {
        // Two server frames (unmasked): 3-byte binary, 200-byte binary (16-bit length), a
        // ping, then a close.
        let mut wire = vec![0x82, 3, 1, 2, 3, 0x82, 126, 0, 200];
        wire.extend_from_slice(&[9u8; 200]);
        wire.extend_from_slice(&[0x89, 1, 0xee, 0x88, 2, 0x03, 0xe8]);
        for chunk in [1, 2, 5, 1000] {
            let mut f = Frames::default();
            let mut data = Vec::new();
            let mut open = true;
            for c in wire.chunks(chunk) {
                open = f.feed(c, |p| data.extend_from_slice(p));
            }
            assert!(!open);
            assert_eq!(data.len(), 203);
            assert_eq!(&data[..3], &[1, 2, 3]);
            assert!(data[3..].iter().all(|&b| b == 9));
        }
    }
}
