//! Interop against real peers nobody here wrote: the Python `websockets` server, the Node `ws`
//! server, and real proxies (tinyproxy for HTTP CONNECT; pproxy for SOCKS5, SOCKS4 and a second
//! HTTP CONNECT implementation) in front of an in-process ws-server echo.
//!
//! Each peer is a child process on 127.0.0.1: the WebSocket servers bind a port the OS picks
//! and print it (`listening PORT`, scripts in `tests/peers/`); the proxies get a free port picked
//! here (retried when it was taken meanwhile). Children are killed by pid when the test ends
//! (the scripts also exit when their stdin closes). Every test runs under a time limit, so a hang
//! fails instead of blocking.
//!
//! A missing peer makes the tests that need it print `SKIPPED: ...` and pass, unless
//! `WSKIT_REQUIRE_PEERS=1` (CI sets it), which turns that into a failure. Install:
//! `python3 -m pip install websockets pproxy`, `apt-get install -y tinyproxy nodejs npm`; the Node
//! `ws` package (version pinned in `tests/peers/node/package.json`) is installed by the test with
//! `npm install --no-audit --no-fund` when `tests/peers/node/node_modules` is missing.
//! `WSKIT_PYTHON` names another interpreter than `python3`.

mod common;

use std::{
    future::Future,
    io::{BufRead as _, BufReader, Read},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::mpsc;
use ws_client::{
    Auth, ClientConfig, CloseCode, Error, HandshakeError, Incoming, Initiator, Message, Proxy,
    ProxyKind, WebSocket, connect,
};
use ws_frame::deflate::DeflateConfig;

use common::echo;

// ---------------------------------------------------------------------------------------------
// Harness: availability, child processes, time limits.
// ---------------------------------------------------------------------------------------------

/// How long one test may take in all.
const TEST_LIMIT: Duration = Duration::from_secs(90);
/// How long a peer may take to start listening.
const START_LIMIT: Duration = Duration::from_secs(20);

/// Reports a missing peer through `ws_testkit::peers` (a skip, or a failure under
/// `WSKIT_REQUIRE_PEERS=1`); returns false for the caller to pass on.
fn missing(why: &str) -> bool {
    ws_testkit::peers::missing(
        why,
        "the install line in this file's header; bash .ci/run installs every peer",
    );
    false
}

fn python() -> String {
    std::env::var("WSKIT_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn peers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers")
}

/// Runs `cmd` to completion (bounded by `limit`); `Ok(stdout)` when it exits 0.
fn probe(cmd: &mut Command, limit: Duration) -> Result<String, String> {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(out)) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout).into()),
        Ok(Ok(out)) => Err(format!(
            "{cmd:?} exited with {}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(Err(e)) => Err(format!("{cmd:?}: {e}")),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            Err(format!("{cmd:?} did not finish within {limit:?}"))
        }
    }
}

/// Python with the `websockets` package (asyncio API, >= 14).
fn have_python_websockets() -> bool {
    static FOUND: OnceLock<Result<String, String>> = OnceLock::new();
    let found = FOUND.get_or_init(|| {
        probe(
            Command::new(python()).args([
                "-c",
                "import websockets, websockets.asyncio.server; print(websockets.__version__)",
            ]),
            Duration::from_secs(20),
        )
    });
    match found {
        Ok(_) => true,
        Err(e) => missing(&format!(
            "Python `websockets` is not usable ({e}); python3 -m pip install websockets"
        )),
    }
}

/// Python with `pproxy`.
fn have_pproxy() -> bool {
    static FOUND: OnceLock<Result<String, String>> = OnceLock::new();
    let found = FOUND.get_or_init(|| {
        probe(
            Command::new(python()).args(["-m", "pproxy", "--version"]),
            Duration::from_secs(20),
        )
    });
    match found {
        Ok(_) => true,
        Err(e) => missing(&format!(
            "pproxy is not usable ({e}); python3 -m pip install pproxy"
        )),
    }
}

fn tinyproxy_bin() -> Option<PathBuf> {
    ["tinyproxy", "/usr/bin/tinyproxy", "/usr/sbin/tinyproxy"]
        .iter()
        .map(PathBuf::from)
        .find(|p| probe(Command::new(p).arg("-v"), Duration::from_secs(10)).is_ok())
}

fn have_tinyproxy() -> Option<PathBuf> {
    static FOUND: OnceLock<Option<PathBuf>> = OnceLock::new();
    let found = FOUND.get_or_init(tinyproxy_bin);
    if found.is_none() {
        missing("tinyproxy is not installed; apt-get install -y tinyproxy");
    }
    found.clone()
}

/// Node with the pinned `ws` installed in `tests/peers/node` (installing it when missing).
fn have_node_ws() -> bool {
    static FOUND: OnceLock<Result<(), String>> = OnceLock::new();
    let found = FOUND.get_or_init(|| {
        probe(
            Command::new("node").arg("--version"),
            Duration::from_secs(10),
        )?;
        let dir = peers_dir().join("node");
        if !dir.join("node_modules/ws/package.json").exists() {
            eprintln!("installing Node `ws` in {}", dir.display());
            probe(
                Command::new("npm")
                    .args(["install", "--no-audit", "--no-fund"])
                    .current_dir(&dir),
                Duration::from_secs(180),
            )?;
        }
        Ok(())
    });
    match found {
        Ok(()) => true,
        Err(e) => missing(&format!(
            "Node `ws` is not usable ({e}); apt-get install -y nodejs npm, then npm install in \
             crates/ws-client/tests/peers/node"
        )),
    }
}

/// Runs `fut`, failing the test when it takes longer than [`TEST_LIMIT`].
async fn within<F: Future>(fut: F) -> F::Output {
    match tokio::time::timeout(TEST_LIMIT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("test did not finish within {TEST_LIMIT:?}"),
    }
}

/// A peer process; killed (by its pid) when dropped.
struct PeerProcess {
    name: String,
    child: Child,
    /// Held open: the scripts exit when it closes.
    _stdin: Option<ChildStdin>,
    /// Lines of stdout.
    lines: mpsc::UnboundedReceiver<String>,
    /// Everything printed on stdout and stderr, for failure messages.
    log: Arc<Mutex<String>>,
}

impl std::fmt::Debug for PeerProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (pid {})", self.name, self.child.id())
    }
}

impl PeerProcess {
    fn spawn(name: &str, mut cmd: Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, lines) = mpsc::unbounded_channel();
        let out = child.stdout.take().unwrap();
        let out_log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                out_log.lock().unwrap().push_str(&format!("{line}\n"));
                let _ = tx.send(line);
            }
        });
        let mut err = child.stderr.take().unwrap();
        let err_log = log.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                err_log
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Self {
            name: name.to_owned(),
            _stdin: child.stdin.take(),
            child,
            lines,
            log,
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The next stdout line starting with `prefix` (others are skipped).
    async fn line(&mut self, prefix: &str, limit: Duration) -> String {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) if line.starts_with(prefix) => return line,
                Ok(Some(_)) => {}
                Ok(None) => panic!(
                    "{} ended before printing {prefix:?}:\n{}",
                    self.name,
                    self.log()
                ),
                Err(_) => panic!(
                    "{} printed no {prefix:?} within {limit:?}:\n{}",
                    self.name,
                    self.log()
                ),
            }
        }
    }

    /// Waits until the peer accepts TCP connections on `port`; `false` when it exited first.
    async fn wait_listening(&mut self, port: u16) -> bool {
        let deadline = Instant::now() + START_LIMIT;
        loop {
            if self.exited().is_some() {
                return false;
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return true;
            }
            assert!(
                Instant::now() < deadline,
                "{} does not listen on {port} after {START_LIMIT:?}:\n{}",
                self.name,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    ws_testkit::peers::free_port()
}

/// Starts a peer that listens on a port chosen here, retrying with another port when the
/// process exits before listening (the port was taken meanwhile).
async fn start_on_free_port(name: &str, make: impl Fn(u16) -> Command) -> (PeerProcess, u16) {
    let mut last = String::new();
    for _ in 0..3 {
        let port = free_port();
        let mut peer = PeerProcess::spawn(name, make(port));
        if peer.wait_listening(port).await {
            return (peer, port);
        }
        last = peer.log();
    }
    panic!("{name} did not start:\n{last}");
}

/// A directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "wskit-ws-client-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------------------------
// Shared client helpers.
// ---------------------------------------------------------------------------------------------

use ws_testkit::noise;

/// Compressible text of `len` bytes.
fn prose(len: usize) -> String {
    let words = ["alpha ", "beta ", "gamma ", "delta ", "wskit ", "interop "];
    let mut s = String::with_capacity(len + 8);
    let mut i = 0usize;
    while s.len() < len {
        s.push_str(words[i % words.len()]);
        s.push_str(&(i % 97).to_string());
        i += 1;
    }
    s.truncate(len);
    s
}

async fn next(ws: &mut WebSocket) -> Message {
    match ws.recv().await {
        Some(Ok(m)) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

/// Sends `msg` and expects it back unchanged.
async fn round_trip(ws: &mut WebSocket, msg: Message) {
    ws.send(msg.clone()).await.unwrap();
    let back = next(ws).await;
    assert_eq!(back.is_text(), msg.is_text(), "message kind changed");
    assert!(
        back.as_bytes() == msg.as_bytes(),
        "echo differs: sent {} bytes, got {}",
        msg.len(),
        back.len()
    );
}

/// Exchanges a few messages of both kinds, small and large.
async fn exchange(ws: &mut WebSocket) {
    round_trip(ws, Message::text("hello, peer")).await;
    round_trip(ws, Message::text("")).await;
    round_trip(ws, Message::text("ünïcødé ✓ 🦀")).await;
    round_trip(ws, Message::binary(vec![0u8, 1, 2, 255])).await;
    round_trip(ws, Message::text(prose(70_000))).await;
    round_trip(ws, Message::binary(noise(200_000, 7))).await;
}

/// Closes with 4000 "client bye" and checks the close completed as ours.
async fn close_as_client(ws: &WebSocket) {
    let info = ws
        .close(CloseCode::from_u16(4000), "client bye")
        .await
        .unwrap();
    assert_eq!(info.code, CloseCode::from_u16(4000));
    assert_eq!(info.by, Initiator::User);
}

/// The string value of `"key"` in a flat JSON object (`None` for null or absent). Enough for
/// the scripts' `/info` answers, which hold plain header values.
fn json_str(json: &str, key: &str) -> Option<String> {
    let at = json.find(&format!("\"{key}\""))? + key.len() + 2;
    let rest = json[at..].trim_start().strip_prefix(':')?.trim_start();
    let body = rest.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => out.push(chars.next()?),
            c => out.push(c),
        }
    }
    None
}

fn with_protocols(protocols: &[&str]) -> ClientConfig {
    let mut config = ClientConfig::default();
    config.protocols = protocols.iter().map(|p| (*p).to_owned()).collect();
    config
}

fn with_deflate(deflate: DeflateConfig) -> ClientConfig {
    let mut config = ClientConfig::default();
    config.deflate = Some(deflate);
    config
}

// ---------------------------------------------------------------------------------------------
// Python `websockets` server.
// ---------------------------------------------------------------------------------------------

/// Starts `tests/peers/websockets_server.py` with `args`; `None` when the peer is missing.
async fn websockets_server(args: &[&Path]) -> Option<(PeerProcess, u16)> {
    if !have_python_websockets() {
        return None;
    }
    let mut cmd = Command::new(python());
    cmd.arg(peers_dir().join("websockets_server.py"));
    for (flag, value) in ["--cert", "--key", "--client-ca"].iter().zip(args) {
        cmd.arg(flag).arg(value);
    }
    let mut peer = PeerProcess::spawn("python websockets server", cmd);
    let line = peer.line("listening ", START_LIMIT).await;
    let port = line["listening ".len()..].trim().parse().unwrap();
    Some((peer, port))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_echo_fragments_and_client_close() {
    let Some((mut peer, port)) = websockets_server(&[]).await else {
        return;
    };
    within(async {
        let mut ws = connect(
            format!("ws://127.0.0.1:{port}/echo"),
            ClientConfig::default(),
        )
        .await
        .unwrap();
        assert_eq!(ws.protocol(), None);
        assert!(ws.deflate().is_none());
        exchange(&mut ws).await;
        // Our fragmenting send, reassembled by websockets and echoed whole.
        let text = prose(10_000);
        ws.send_fragmented(Message::text(text.clone()), 1000)
            .await
            .unwrap();
        assert_eq!(next(&mut ws).await.as_text(), Some(text.as_str()));
        close_as_client(&ws).await;
        assert!(ws.recv().await.is_none());
        // The server saw our code and reason.
        let line = peer.line("closed /echo", Duration::from_secs(10)).await;
        assert_eq!(line, "closed /echo 4000 client bye");

        // websockets sends fragmented messages (an iterable); we reassemble them.
        let mut ws = connect(
            format!("ws://localhost:{port}/fragments"),
            ClientConfig::default(),
        )
        .await
        .unwrap();
        assert_eq!(next(&mut ws).await.as_text(), Some("fragmented"));
        assert_eq!(next(&mut ws).await, Message::binary(vec![0u8, 1, 2]));
        round_trip(&mut ws, Message::text("after fragments")).await;
        close_as_client(&ws).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_wss_with_generated_ca() {
    let pki = ws_tls::test_certs::TestPki::generate();
    let Some((_peer, port)) =
        websockets_server(&[&pki.server.cert_file, &pki.server.key_file]).await
    else {
        return;
    };
    within(async {
        for host in ["localhost", "127.0.0.1"] {
            let mut config = ClientConfig::default();
            config.tls = pki.client_config();
            let mut ws = connect(format!("wss://{host}:{port}/echo"), config)
                .await
                .unwrap_or_else(|e| panic!("wss://{host}: {e}"));
            exchange(&mut ws).await;
            round_trip(&mut ws, Message::binary(noise(1 << 20, 11))).await;
            close_as_client(&ws).await;
        }
        // Mozilla's roots do not include our CA: the TLS handshake fails.
        match connect(
            format!("wss://localhost:{port}/echo"),
            ClientConfig::default(),
        )
        .await
        {
            Err(Error::Tls(_)) => {}
            other => panic!("expected a TLS error, got {other:?}"),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_wss_with_client_certificate() {
    let pki = ws_tls::test_certs::TestPki::generate();
    let Some((_peer, port)) = websockets_server(&[
        &pki.server.cert_file,
        &pki.server.key_file,
        &pki.ca.cert_file,
    ])
    .await
    else {
        return;
    };
    within(async {
        let mut config = ClientConfig::default();
        config.tls = pki.client_config_with_cert();
        let mut ws = connect(format!("wss://localhost:{port}/echo"), config)
            .await
            .unwrap();
        exchange(&mut ws).await;
        close_as_client(&ws).await;
        // Without a client certificate the server (Python's ssl, CERT_REQUIRED) refuses.
        let mut config = ClientConfig::default();
        config.tls = pki.client_config();
        let refused = match connect(format!("wss://localhost:{port}/echo"), config).await {
            Err(e) => Some(e),
            Ok(mut ws) => ws.recv().await.and_then(Result::err),
        };
        assert!(
            matches!(refused, Some(Error::Tls(_) | Error::Io(_))),
            "{refused:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_permessage_deflate() {
    let Some((_peer, port)) = websockets_server(&[]).await else {
        return;
    };
    within(async {
        let url = format!("ws://127.0.0.1:{port}/info");
        // Default offer: websockets accepts (it also answers client_max_window_bits).
        let mut ws = connect(url.as_str(), with_deflate(DeflateConfig::default()))
            .await
            .unwrap();
        let params = ws.deflate().expect("permessage-deflate negotiated").clone();
        let info = next(&mut ws).await;
        let info = info.as_text().unwrap();
        let answered = json_str(info, "extensions").expect("server answered an extension");
        assert!(answered.starts_with("permessage-deflate"), "{info}");
        let offer = json_str(info, "offer").expect("offer seen by the server");
        assert!(offer.starts_with("permessage-deflate"), "{offer}");
        let seen = ws
            .response()
            .unwrap()
            .header("sec-websocket-extensions")
            .map(str::to_owned);
        assert_eq!(seen.as_deref(), Some(answered.as_str()), "{params:?}");
        exchange(&mut ws).await;
        // Context takeover across many similar messages, both ways.
        for i in 0..50 {
            round_trip(&mut ws, Message::text(format!("{} #{i}", prose(300)))).await;
        }
        round_trip(&mut ws, Message::text(prose(4 << 20))).await;
        close_as_client(&ws).await;

        // No context takeover either way, smaller server window: still agreed.
        let mut deflate = DeflateConfig::default();
        deflate.server_no_context_takeover = true;
        deflate.client_no_context_takeover = true;
        deflate.server_max_window_bits = 10;
        let mut ws = connect(url.as_str(), with_deflate(deflate)).await.unwrap();
        let params = ws.deflate().expect("negotiated").response_value();
        assert!(params.contains("server_no_context_takeover"), "{params}");
        assert!(params.contains("server_max_window_bits=10"), "{params}");
        let info = next(&mut ws).await;
        let answered = json_str(info.as_text().unwrap(), "extensions").unwrap();
        assert!(
            answered.contains("server_no_context_takeover"),
            "{answered}"
        );
        exchange(&mut ws).await;
        for i in 0..20 {
            round_trip(&mut ws, Message::text(format!("{} #{i}", prose(300)))).await;
        }
        close_as_client(&ws).await;

        // Not offered: not used.
        let mut ws = connect(url.as_str(), ClientConfig::default())
            .await
            .unwrap();
        assert!(ws.deflate().is_none());
        let info = next(&mut ws).await;
        assert_eq!(json_str(info.as_text().unwrap(), "extensions"), None);
        close_as_client(&ws).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_subprotocol_selection() {
    let Some((_peer, port)) = websockets_server(&[]).await else {
        return;
    };
    within(async {
        let url = format!("ws://127.0.0.1:{port}/info");
        // The server prefers "chat": it picks that although we listed it second.
        for (offer, want) in [
            (&["superchat", "chat"][..], "chat"),
            (&["wskit.v1", "superchat"][..], "superchat"),
            (&["chat"][..], "chat"),
        ] {
            let mut ws = connect(url.as_str(), with_protocols(offer)).await.unwrap();
            assert_eq!(ws.protocol(), Some(want), "offer {offer:?}");
            let info = next(&mut ws).await;
            assert_eq!(
                json_str(info.as_text().unwrap(), "protocol").as_deref(),
                Some(want)
            );
            round_trip(&mut ws, Message::text("with a subprotocol")).await;
            close_as_client(&ws).await;
        }
        // Nothing offered: none selected.
        let ws = connect(url.as_str(), ClientConfig::default())
            .await
            .unwrap();
        assert_eq!(ws.protocol(), None);
        close_as_client(&ws).await;
        // Nothing in common: websockets answers 400.
        match connect(url.as_str(), with_protocols(&["nope"])).await {
            Err(e @ Error::Http(_)) => assert_eq!(e.status(), Some(400)),
            other => panic!("expected HTTP 400, got {other:?}"),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_large_messages() {
    let Some((_peer, port)) = websockets_server(&[]).await else {
        return;
    };
    within(async {
        let url = format!("ws://127.0.0.1:{port}/echo");
        for config in [
            ClientConfig::default(),
            with_deflate(DeflateConfig::default()),
        ] {
            let deflate = config.deflate.is_some();
            let mut ws = connect(url.as_str(), config).await.unwrap();
            assert_eq!(ws.deflate().is_some(), deflate);
            round_trip(&mut ws, Message::binary(noise(1 << 20, 1))).await;
            round_trip(&mut ws, Message::binary(vec![0x5a; 3 << 20])).await;
            round_trip(&mut ws, Message::text(prose(2 << 20))).await;
            // Fragmented 1 MiB in 64 KiB frames.
            let big = noise(1 << 20, 2);
            ws.send_fragmented(Message::binary(big.clone()), 64 * 1024)
                .await
                .unwrap();
            assert!(next(&mut ws).await.as_bytes() == big.as_slice());
            close_as_client(&ws).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_close_codes_and_pings() {
    let Some((mut peer, port)) = websockets_server(&[]).await else {
        return;
    };
    within(async {
        // The server closes with 4001 "bye": the stream ends cleanly and tells why.
        let mut ws = connect(
            format!("ws://127.0.0.1:{port}/close"),
            ClientConfig::default(),
        )
        .await
        .unwrap();
        assert!(ws.recv().await.is_none(), "clean close expected");
        let info = ws.close_info().expect("close info");
        assert_eq!(info.code, CloseCode::from_u16(4001));
        assert_eq!(info.reason, "bye");
        assert_eq!(info.by, Initiator::Remote);
        assert!(ws.is_closed());
        assert!(matches!(ws.send_text("late").await, Err(Error::Closed)));
        // websockets saw our reply to its close frame: the same code (RFC 6455 5.5.1; the
        // reason is not echoed).
        let line = peer.line("closed /close", Duration::from_secs(10)).await;
        assert_eq!(line.trim_end(), "closed /close 4001");

        // The server pings; our automatic pong satisfies it.
        let mut ws = connect(
            format!("ws://127.0.0.1:{port}/ping"),
            ClientConfig::default(),
        )
        .await
        .unwrap();
        assert_eq!(next(&mut ws).await.as_text(), Some("pong received"));
        // Our ping; websockets pongs with the same payload.
        ws.ping(&b"wskit ping"[..]).await.unwrap();
        loop {
            match ws.recv_incoming().await {
                Some(Ok(Incoming::Pong(p))) => {
                    assert_eq!(&p[..], b"wskit ping");
                    break;
                }
                Some(Ok(Incoming::Ping(_))) => {}
                other => panic!("expected a pong, got {other:?}"),
            }
        }
        // Close codes the application may use, with a 123-byte reason (the most allowed).
        let reason = "r".repeat(123);
        let info = ws.close(CloseCode::from_u16(1001), &reason).await.unwrap();
        assert_eq!(info.code, CloseCode::from_u16(1001));
        let line = peer.line("closed /ping", Duration::from_secs(10)).await;
        assert_eq!(line, format!("closed /ping 1001 {reason}"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_redirect_and_basic_auth() {
    let Some((_peer, port)) = websockets_server(&[]).await else {
        return;
    };
    within(async {
        // 302 from websockets' process_request: followed to /echo.
        let mut ws = connect(
            format!("ws://127.0.0.1:{port}/redirect"),
            ClientConfig::default(),
        )
        .await
        .unwrap();
        assert_eq!(ws.url().path(), "/echo");
        round_trip(&mut ws, Message::text("redirected")).await;
        close_as_client(&ws).await;

        let url = format!("ws://127.0.0.1:{port}/auth");
        match connect(url.as_str(), ClientConfig::default()).await {
            Err(Error::Http(r)) => {
                assert_eq!(r.status, 401);
                assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"wskit\""));
                assert_eq!(&r.body[..], b"who are you?\n");
            }
            other => panic!("expected 401, got {other:?}"),
        }
        let mut config = ClientConfig::default();
        config.auth = Some(Auth::basic("alice", "wrong"));
        assert_eq!(
            connect(url.as_str(), config)
                .await
                .err()
                .and_then(|e| e.status()),
            Some(401)
        );
        let mut config = ClientConfig::default();
        config.auth = Some(Auth::basic("alice", "s3cret"));
        let mut ws = connect(url.as_str(), config).await.unwrap();
        round_trip(&mut ws, Message::text("authenticated")).await;
        close_as_client(&ws).await;
        // Credentials in the URL are sent as Basic too.
        let mut ws = connect(
            format!("ws://alice:s3cret@127.0.0.1:{port}/auth"),
            ClientConfig::default(),
        )
        .await
        .unwrap();
        round_trip(&mut ws, Message::text("authenticated by URL")).await;
        close_as_client(&ws).await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Node `ws` server.
// ---------------------------------------------------------------------------------------------

async fn node_ws_server() -> Option<(PeerProcess, u16)> {
    if !have_node_ws() {
        return None;
    }
    let dir = peers_dir().join("node");
    let mut cmd = Command::new("node");
    cmd.arg(dir.join("server.js")).current_dir(&dir);
    let mut peer = PeerProcess::spawn("node ws server", cmd);
    let line = peer.line("listening ", START_LIMIT).await;
    let port = line["listening ".len()..].trim().parse().unwrap();
    Some((peer, port))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_ws_echo_and_close_codes() {
    let Some((mut peer, port)) = node_ws_server().await else {
        return;
    };
    within(async {
        let mut ws = connect(
            format!("ws://127.0.0.1:{port}/echo"),
            ClientConfig::default(),
        )
        .await
        .unwrap();
        assert!(ws.deflate().is_none());
        exchange(&mut ws).await;
        round_trip(&mut ws, Message::binary(noise(1 << 20, 3))).await;
        let text = prose(10_000);
        ws.send_fragmented(Message::text(text.clone()), 777)
            .await
            .unwrap();
        assert_eq!(next(&mut ws).await.as_text(), Some(text.as_str()));
        close_as_client(&ws).await;
        let line = peer.line("closed /echo", Duration::from_secs(10)).await;
        assert_eq!(line, "closed /echo 4000 client bye");

        let mut ws = connect(
            format!("ws://localhost:{port}/close"),
            ClientConfig::default(),
        )
        .await
        .unwrap();
        assert!(ws.recv().await.is_none(), "clean close expected");
        let info = ws.close_info().unwrap();
        assert_eq!(
            (info.code, info.reason.as_str(), info.by),
            (CloseCode::from_u16(4001), "bye", Initiator::Remote)
        );
        // ws saw our reply to its close frame: the same code.
        let line = peer.line("closed /close", Duration::from_secs(10)).await;
        assert_eq!(line.trim_end(), "closed /close 4001");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_ws_permessage_deflate() {
    let Some((_peer, port)) = node_ws_server().await else {
        return;
    };
    within(async {
        let url = format!("ws://127.0.0.1:{port}/info");
        let mut ws = connect(url.as_str(), with_deflate(DeflateConfig::default()))
            .await
            .unwrap();
        assert!(ws.deflate().is_some(), "permessage-deflate not negotiated");
        let info = next(&mut ws).await;
        let info = info.as_text().unwrap();
        assert!(
            json_str(info, "offer").is_some_and(|o| o.starts_with("permessage-deflate")),
            "{info}"
        );
        let seen = ws
            .response()
            .unwrap()
            .header("sec-websocket-extensions")
            .unwrap_or_default()
            .to_owned();
        assert!(seen.starts_with("permessage-deflate"), "{seen}");
        exchange(&mut ws).await;
        for i in 0..50 {
            round_trip(&mut ws, Message::text(format!("{} #{i}", prose(300)))).await;
        }
        round_trip(&mut ws, Message::text(prose(4 << 20))).await;
        round_trip(&mut ws, Message::binary(noise(1 << 20, 5))).await;
        close_as_client(&ws).await;

        let mut deflate = DeflateConfig::default();
        deflate.server_no_context_takeover = true;
        deflate.client_no_context_takeover = true;
        deflate.client_max_window_bits = 9;
        deflate.server_max_window_bits = 9;
        let mut ws = connect(url.as_str(), with_deflate(deflate)).await.unwrap();
        let params = ws.deflate().expect("negotiated").response_value();
        assert!(params.contains("server_no_context_takeover"), "{params}");
        let _info = next(&mut ws).await;
        exchange(&mut ws).await;
        for i in 0..20 {
            round_trip(&mut ws, Message::text(format!("{} #{i}", prose(300)))).await;
        }
        close_as_client(&ws).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_ws_subprotocol_selection() {
    let Some((_peer, port)) = node_ws_server().await else {
        return;
    };
    within(async {
        let url = format!("ws://127.0.0.1:{port}/info");
        for (offer, want) in [
            (&["superchat", "chat"][..], "chat"),
            (&["wskit.v1", "superchat"][..], "superchat"),
        ] {
            let mut ws = connect(url.as_str(), with_protocols(offer)).await.unwrap();
            assert_eq!(ws.protocol(), Some(want), "offer {offer:?}");
            let info = next(&mut ws).await;
            assert_eq!(
                json_str(info.as_text().unwrap(), "protocol").as_deref(),
                Some(want)
            );
            round_trip(&mut ws, Message::text("with a subprotocol")).await;
            close_as_client(&ws).await;
        }
        // Nothing in common: ws accepts without a subprotocol ...
        let ws = connect(url.as_str(), with_protocols(&["nope"]))
            .await
            .unwrap();
        assert_eq!(ws.protocol(), None);
        close_as_client(&ws).await;
        // ... which require_protocol refuses.
        let mut config = with_protocols(&["nope"]);
        config.require_protocol = true;
        match connect(url.as_str(), config).await {
            Err(Error::Handshake(HandshakeError::NoProtocol)) => {}
            other => panic!("expected NoProtocol, got {other:?}"),
        }
    })
    .await;
}

/// The value of `name=N` in a permessage-deflate response, if present.
fn window_param(response: &str, name: &str) -> Option<u8> {
    let at = response.find(&format!("{name}="))? + name.len() + 1;
    let digits: String = response[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Every combination of server and client window sizes (8, 9, 12, 15 bits) against the peer on
/// `port`: whatever it agrees to, messages longer than any window (so matches could reach past a
/// small one) must round-trip. The peer's inflater enforces the client window we promised.
async fn window_bits_matrix(port: u16) -> Vec<String> {
    let mut agreed = Vec::new();
    for server_bits in [8u8, 9, 12, 15] {
        for client_bits in [8u8, 9, 12, 15] {
            let mut deflate = DeflateConfig::default();
            deflate.server_max_window_bits = server_bits;
            deflate.client_max_window_bits = client_bits;
            let what = format!("offer server {server_bits} client {client_bits}");
            let mut ws = connect(format!("ws://127.0.0.1:{port}/echo"), with_deflate(deflate))
                .await
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            let params = ws.deflate().map(|p| p.response_value());
            if let Some(p) = &params {
                let server = window_param(p, "server_max_window_bits").unwrap_or(15);
                let client = window_param(p, "client_max_window_bits").unwrap_or(15);
                assert!(server <= server_bits, "{what}: {p}");
                assert!(client <= client_bits, "{what}: {p}");
            }
            for i in 0..2 {
                round_trip(&mut ws, Message::text(format!("{} {i}", prose(100_000)))).await;
            }
            round_trip(&mut ws, Message::binary(noise(100_000, 3))).await;
            close_as_client(&ws).await;
            agreed.push(format!("{what}: {params:?}"));
        }
    }
    agreed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_deflate_window_sizes() {
    let Some((_peer, port)) = websockets_server(&[]).await else {
        return;
    };
    let agreed = within(window_bits_matrix(port)).await;
    // websockets declines server_max_window_bits=8 (zlib cannot deflate with it) and accepts
    // the rest.
    assert_eq!(
        agreed.iter().filter(|a| a.ends_with(": None")).count(),
        4,
        "{agreed:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_ws_deflate_window_sizes() {
    let Some((_peer, port)) = node_ws_server().await else {
        return;
    };
    let agreed = within(window_bits_matrix(port)).await;
    assert!(agreed.iter().all(|a| !a.ends_with(": None")), "{agreed:#?}");
}

// ---------------------------------------------------------------------------------------------
// Real proxies in front of an in-process ws-server echo.
// ---------------------------------------------------------------------------------------------

/// Connects to `url` through `proxy` and exchanges messages.
async fn via(proxy: Proxy, url: &str, tls: Option<ws_tls::ClientTlsConfig>) -> Result<(), Error> {
    let mut config = ClientConfig::default();
    config.proxy = Some(proxy);
    if let Some(tls) = tls {
        config.tls = tls;
    }
    let mut ws = connect(url, config).await?;
    round_trip(&mut ws, Message::text("through the proxy")).await;
    round_trip(&mut ws, Message::binary(noise(300_000, 9))).await;
    close_as_client(&ws).await;
    Ok(())
}

fn proxy_error(r: Result<(), Error>, what: &str) -> String {
    match r {
        Err(Error::Proxy(m)) => m,
        other => panic!("{what}: expected Error::Proxy, got {other:?}"),
    }
}

/// An in-process TLS echo server; the PKI must outlive it.
async fn tls_echo(pki: &ws_tls::test_certs::TestPki) -> (ws_server::ServerHandle, SocketAddr) {
    let rustls = ws_tls::server_config(&pki.server_config()).unwrap();
    let config = ws_server::ServerConfig::new(vec![ws_server::Binding::tls(
        "127.0.0.1:0".parse().unwrap(),
        rustls,
    )]);
    common::start(config, ws_server::EchoHandler).await
}

/// tinyproxy on a free port, allowing CONNECT to `ports` only, with optional Basic credentials.
async fn tinyproxy(
    bin: &Path,
    ports: &[u16],
    auth: Option<(&str, &str)>,
) -> (PeerProcess, u16, TempDir) {
    let dir = TempDir::new("tinyproxy");
    let conf = dir.0.join("tinyproxy.conf");
    let (peer, port) = start_on_free_port("tinyproxy", |port| {
        let mut text = format!(
            "Port {port}\nListen 127.0.0.1\nTimeout 60\nAllow 127.0.0.1\nMaxClients 50\n\
             LogLevel Info\nDisableViaHeader Yes\n"
        );
        for p in ports {
            text.push_str(&format!("ConnectPort {p}\n"));
        }
        if let Some((u, p)) = auth {
            text.push_str(&format!("BasicAuth {u} {p}\n"));
        }
        std::fs::write(&conf, text).unwrap();
        let mut cmd = Command::new(bin);
        cmd.arg("-d").arg("-c").arg(&conf);
        cmd
    })
    .await;
    (peer, port, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tinyproxy_http_connect() {
    let Some(bin) = have_tinyproxy() else {
        return;
    };
    within(async {
        let (server, addr) = echo().await;
        let pki = ws_tls::test_certs::TestPki::generate();
        let (tls_server, tls_addr) = tls_echo(&pki).await;
        let (proxy, pport, _dir) = tinyproxy(&bin, &[addr.port(), tls_addr.port()], None).await;
        let through = || Proxy::new(ProxyKind::Http, "127.0.0.1", pport);
        via(through(), &format!("ws://127.0.0.1:{}/", addr.port()), None)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", proxy.log()));
        // tinyproxy resolves the name itself.
        via(through(), &format!("ws://localhost:{}/", addr.port()), None)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", proxy.log()));
        // TLS inside the tunnel.
        via(
            through(),
            &format!("wss://localhost:{}/", tls_addr.port()),
            Some(pki.client_config()),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", proxy.log()));
        // A port outside ConnectPort: tinyproxy refuses with 403.
        let closed = common::closed_port().await;
        let m = proxy_error(
            via(
                through(),
                &format!("ws://127.0.0.1:{}/", closed.port()),
                None,
            )
            .await,
            "port not allowed",
        );
        assert!(m.contains("403"), "{m}");
        server.stop().await;
        tls_server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tinyproxy_basic_auth() {
    let Some(bin) = have_tinyproxy() else {
        return;
    };
    within(async {
        let (server, addr) = echo().await;
        let (proxy, pport, _dir) = tinyproxy(&bin, &[addr.port()], Some(("alice", "s3cret"))).await;
        let url = format!("ws://127.0.0.1:{}/", addr.port());
        let through = || Proxy::new(ProxyKind::Http, "127.0.0.1", pport);
        via(through().with_credentials("alice", "s3cret"), &url, None)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", proxy.log()));
        // tinyproxy 1.11 answers a wrong password with 401 (and WWW-Authenticate), not 407.
        let m = proxy_error(
            via(through().with_credentials("alice", "wrong"), &url, None).await,
            "wrong password",
        );
        assert!(m.contains("401") || m.contains("407"), "{m}");
        let m = proxy_error(via(through(), &url, None).await, "no credentials");
        assert!(m.contains("407"), "{m}");
        server.stop().await;
    })
    .await;
}

/// `python3 -m pproxy -l SCHEME://127.0.0.1:PORT[#auth]` on a free port. `--auth 0` turns off
/// pproxy's "authenticated by IP for 30 days" cache, so every connection authenticates.
async fn pproxy(scheme: &str, auth: Option<&str>) -> (PeerProcess, u16) {
    start_on_free_port(&format!("pproxy {scheme}"), |port| {
        let mut listen = format!("{scheme}://127.0.0.1:{port}");
        if let Some(a) = auth {
            listen.push('#');
            listen.push_str(a);
        }
        let mut cmd = Command::new(python());
        cmd.args(["-m", "pproxy", "-l", &listen, "--auth", "0", "-v"]);
        cmd
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pproxy_socks5() {
    if !have_pproxy() {
        return;
    }
    within(async {
        let (server, addr) = echo().await;
        let pki = ws_tls::test_certs::TestPki::generate();
        let (tls_server, tls_addr) = tls_echo(&pki).await;
        let (proxy, pport) = pproxy("socks5", None).await;
        let through = || Proxy::new(ProxyKind::Socks5, "127.0.0.1", pport);
        // ATYP 1 (IPv4) and ATYP 3 (a name pproxy resolves).
        for url in [
            format!("ws://127.0.0.1:{}/", addr.port()),
            format!("ws://localhost:{}/", addr.port()),
        ] {
            via(through(), &url, None)
                .await
                .unwrap_or_else(|e| panic!("{url}: {e}\n{}", proxy.log()));
        }
        via(
            through(),
            &format!("wss://localhost:{}/", tls_addr.port()),
            Some(pki.client_config()),
        )
        .await
        .unwrap_or_else(|e| panic!("wss: {e}\n{}", proxy.log()));
        server.stop().await;
        tls_server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pproxy_socks5_credentials() {
    if !have_pproxy() {
        return;
    }
    within(async {
        let (server, addr) = echo().await;
        let (proxy, pport) = pproxy("socks5", Some("alice:s3cret")).await;
        let url = format!("ws://127.0.0.1:{}/", addr.port());
        let through = || Proxy::new(ProxyKind::Socks5, "127.0.0.1", pport);
        // pproxy drops the connection on bad credentials (no RFC 1929 failure reply).
        proxy_error(
            via(through().with_credentials("alice", "wrong"), &url, None).await,
            "wrong password",
        );
        via(through().with_credentials("alice", "s3cret"), &url, None)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", proxy.log()));
        proxy_error(
            via(through().with_credentials("mallory", "s3cret"), &url, None).await,
            "wrong user",
        );
        proxy_error(via(through(), &url, None).await, "no credentials");
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pproxy_socks4() {
    if !have_pproxy() {
        return;
    }
    within(async {
        let (server, addr) = echo().await;
        let (proxy, pport) = pproxy("socks4", None).await;
        let through = || Proxy::new(ProxyKind::Socks4, "127.0.0.1", pport);
        // SOCKS4 carries an IPv4 address: "localhost" is resolved here first.
        for url in [
            format!("ws://127.0.0.1:{}/", addr.port()),
            format!("ws://localhost:{}/", addr.port()),
        ] {
            via(through(), &url, None)
                .await
                .unwrap_or_else(|e| panic!("{url}: {e}\n{}", proxy.log()));
        }
        // pproxy checks SOCKS4's USERID against its user list.
        let (locked, lport) = pproxy("socks4", Some("alice")).await;
        let url = format!("ws://127.0.0.1:{}/", addr.port());
        let through = || Proxy::new(ProxyKind::Socks4, "127.0.0.1", lport);
        via(through().with_credentials("alice", ""), &url, None)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", locked.log()));
        proxy_error(
            via(through().with_credentials("mallory", ""), &url, None).await,
            "wrong USERID",
        );
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pproxy_http_connect() {
    if !have_pproxy() {
        return;
    }
    within(async {
        let (server, addr) = echo().await;
        let (proxy, pport) = pproxy("http", Some("alice:s3cret")).await;
        let url = format!("ws://127.0.0.1:{}/", addr.port());
        let through = || Proxy::new(ProxyKind::Http, "127.0.0.1", pport);
        via(through().with_credentials("alice", "s3cret"), &url, None)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", proxy.log()));
        let m = proxy_error(
            via(through().with_credentials("alice", "wrong"), &url, None).await,
            "wrong password",
        );
        assert!(m.contains("407"), "{m}");
        server.stop().await;
    })
    .await;
}
