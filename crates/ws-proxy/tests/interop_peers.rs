//! Interop of the proxy with WebSocket clients nobody here wrote, through an in-process
//! [`ProxyServer`] to TCP backends started by the test:
//!
//! - the Python `websockets` client (`tests/peers/websockets_proxy_client.py`) with the
//!   websockify subprotocols `binary` and `base64`, with none, and offering both: a TCP echo
//!   backend and a line backend (each `\n`-terminated line answered upper-cased), 5 MiB each way
//!   checked byte for byte; a backend that sends 5 MiB and closes gives Close 1000 after the
//!   data; a websockify token file routes `?token=`;
//! - headless Chromium (Debian's `/usr/bin/chromium`, driven by playwright-core from
//!   `xtask/interop/browser/proxy.mjs`): raw `new WebSocket(url, ['binary'])` and `['base64']`,
//!   noVNC's own `Websock` (Debian's `/usr/share/novnc/core/websock.js`) and noVNC's RFB client
//!   (`core/rfb.js`) against a minimal RFB 3.8 server: handshake, framebuffer, clipboard both ways.
//!
//! Peers are child processes on 127.0.0.1, killed by pid when the test ends (the scripts also
//! exit when their stdin closes); every test runs under a time limit. A missing peer makes the
//! test print `SKIPPED: ...` and pass, unless `WSKIT_REQUIRE_PEERS=1` turns that into a failure.
//! Install: `python3 -m pip install websockets`; `apt-get install -y chromium novnc nodejs npm`;
//! `npm ci` in `xtask/interop/browser` (done by the test when `node_modules` is missing).
//! `WSKIT_PYTHON` names another interpreter than `python3`, `CHROMIUM` another browser,
//! `NOVNC_DIR` another noVNC tree.

mod common;

use common::{missing, python};
use std::{
    future::Future,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};
use ws_testkit::noise;

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    process::Command,
    sync::mpsc,
};
use ws_proxy::{ProxyConfig, ProxyServer, Target, ws_server::Binding};

// ---------------------------------------------------------------------------------------------
// Harness: availability, child processes, time limits.
// ---------------------------------------------------------------------------------------------

/// How long one test may take in all.
const TEST_LIMIT: Duration = Duration::from_secs(180);
/// How long one peer run may take.
const PEER_LIMIT: Duration = Duration::from_secs(150);

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn browser_dir() -> PathBuf {
    manifest_dir().join("../../xtask/interop/browser")
}

/// The result of a peer run.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    fn describe(&self) -> String {
        format!("stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr)
    }
}

/// Runs `cmd` to completion within `limit` (its stdin held open as a pipe); the child is killed
/// (by its pid, through `kill_on_drop`) when the limit passes or the test panics.
async fn run(mut cmd: Command, limit: Duration) -> Result<Run, String> {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    // Held open while it runs (`wait_with_output` would close it): the scripts exit on EOF.
    let _stdin = child.stdin.take();
    match tokio::time::timeout(limit, child.wait_with_output()).await {
        Ok(Ok(out)) => Ok(Run {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        // Dropping the future drops the child, which kills it.
        Err(_) => Err(format!("{what} did not finish within {limit:?} (killed)")),
    }
}

/// Python with the `websockets` package (asyncio API).
async fn have_python_websockets() -> bool {
    static FOUND: OnceLock<Result<(), String>> = OnceLock::new();
    if FOUND.get().is_none() {
        let mut cmd = Command::new(python());
        cmd.args(["-c", "import websockets.asyncio.client"]);
        let r = match run(cmd, Duration::from_secs(30)).await {
            Ok(r) if r.ok => Ok(()),
            Ok(r) => Err(r.stderr.trim().to_owned()),
            Err(e) => Err(e),
        };
        let _ = FOUND.set(r);
    }
    match FOUND.get().unwrap() {
        Ok(()) => true,
        Err(e) => missing(&format!(
            "Python `websockets` is not usable ({e}); python3 -m pip install websockets"
        )),
    }
}

/// Chromium, node, noVNC and playwright-core (installed with `npm ci` when missing).
async fn have_browser() -> bool {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return missing(&format!(
            "{chromium} not found; apt-get install -y chromium"
        ));
    }
    if !novnc_dir().join("core/rfb.js").exists() {
        return missing(&format!(
            "noVNC not found in {}; apt-get install -y novnc",
            novnc_dir().display()
        ));
    }
    let mut node = Command::new("node");
    node.arg("--version");
    match run(node, Duration::from_secs(20)).await {
        Ok(r) if r.ok => {}
        _ => return missing("node is not installed; apt-get install -y nodejs npm"),
    }
    let dir = browser_dir();
    if !dir
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        eprintln!("installing playwright-core in {}", dir.display());
        let mut npm = Command::new("npm");
        npm.args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir);
        match run(npm, Duration::from_secs(300)).await {
            Ok(r) if r.ok => {}
            Ok(r) => return missing(&format!("npm ci failed:\n{}", r.describe())),
            Err(e) => return missing(&format!("npm ci failed: {e}")),
        }
    }
    true
}

fn novnc_dir() -> PathBuf {
    std::env::var_os("NOVNC_DIR").map_or_else(|| PathBuf::from("/usr/share/novnc"), PathBuf::from)
}

/// Runs `fut`, failing the test when it takes longer than [`TEST_LIMIT`].
async fn within<F: Future>(fut: F) -> F::Output {
    match tokio::time::timeout(TEST_LIMIT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("test did not finish within {TEST_LIMIT:?}"),
    }
}

/// Runs the Python client script with `args`; returns its stdout, panicking on failure.
async fn python_client(args: &[&str]) -> String {
    let script = manifest_dir().join("tests/peers/websockets_proxy_client.py");
    let mut cmd = Command::new(python());
    cmd.arg(script).args(args);
    let r = run(cmd, PEER_LIMIT).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        r.ok,
        "the Python client failed ({args:?}):\n{}",
        r.describe()
    );
    eprint!("{}", r.stdout);
    r.stdout
}

fn expect_lines(stdout: &str, prefixes: &[String]) {
    for p in prefixes {
        assert!(
            stdout.lines().any(|l| l.starts_with(p.as_str())),
            "no line starting with {p:?} in:\n{stdout}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Backends and the proxy.
// ---------------------------------------------------------------------------------------------

/// Connections a backend accepted, and how many of them the proxy closed (EOF seen).
#[derive(Default)]
struct Counts {
    accepted: AtomicUsize,
    eof: AtomicUsize,
}

impl Counts {
    /// Waits until every accepted connection saw EOF from the proxy.
    async fn all_closed(&self, want: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let (a, e) = (
                self.accepted.load(Ordering::SeqCst),
                self.eof.load(Ordering::SeqCst),
            );
            if a == want && e == want {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "backend: {a} connections accepted, {e} closed by the proxy; expected {want}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Accepts connections forever, serving each with `serve`.
async fn backend<F, Fut>(serve: F) -> (SocketAddr, Arc<Counts>)
where
    F: Fn(TcpStream, Arc<Counts>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let counts = Arc::new(Counts::default());
    let c = counts.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            c.accepted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(s, c.clone()));
        }
    });
    (addr, counts)
}

/// A TCP echo backend; counts the EOFs it reads.
async fn echo_backend() -> (SocketAddr, Arc<Counts>) {
    backend(|mut s, counts| async move {
        let (mut r, mut w) = s.split();
        if tokio::io::copy(&mut r, &mut w).await.is_ok() {
            counts.eof.fetch_add(1, Ordering::SeqCst);
        }
    })
    .await
}

/// Answers each `\n`-terminated line with its upper-case.
async fn line_backend() -> (SocketAddr, Arc<Counts>) {
    backend(|s, counts| async move {
        let (r, mut w) = s.into_split();
        let mut r = BufReader::new(r);
        let mut line = Vec::new();
        loop {
            line.clear();
            match r.read_until(b'\n', &mut line).await {
                Ok(0) => {
                    counts.eof.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                Ok(_) if line.ends_with(b"\n") => {
                    line.make_ascii_uppercase();
                    if w.write_all(&line).await.is_err() {
                        return;
                    }
                }
                // A last line without `\n`, then EOF.
                Ok(_) => {}
                Err(_) => return,
            }
        }
    })
    .await
}

/// Sends `data`, then closes the connection.
async fn sending_backend(data: Arc<Vec<u8>>) -> (SocketAddr, Arc<Counts>) {
    backend(move |mut s, counts| {
        let data = data.clone();
        async move {
            if s.write_all(&data).await.is_ok() && s.shutdown().await.is_ok() {
                counts.eof.fetch_add(1, Ordering::SeqCst);
            }
        }
    })
    .await
}

fn tcp(addr: SocketAddr) -> Target {
    Target::parse(&format!("tcp://{addr}")).unwrap()
}

async fn start_proxy(mut config: ProxyConfig) -> (ProxyServer, SocketAddr) {
    config.server.bindings = vec![Binding::plain("127.0.0.1:0".parse().unwrap())];
    let proxy = ProxyServer::start(config).await.unwrap();
    let addr = proxy.local_addrs()[0];
    (proxy, addr)
}

const MODES: [&str; 4] = ["binary", "base64", "none", "both"];

// ---------------------------------------------------------------------------------------------
// Python `websockets`.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_websockets_through_proxy_to_tcp_echo() {
    if !have_python_websockets().await {
        return;
    }
    within(async {
        let (echo, counts) = echo_backend().await;
        let (proxy, addr) = start_proxy(ProxyConfig::to(tcp(echo))).await;
        let url = format!("ws://{addr}/");
        let mut args = vec!["echo", url.as_str()];
        args.extend(MODES);
        let out = python_client(&args).await;
        expect_lines(
            &out,
            &MODES.map(|m| format!("ok echo {m} 5242880 bytes twice")),
        );
        // Each client close reached its backend connection as EOF.
        counts.all_closed(MODES.len()).await;
        proxy.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_websockets_through_proxy_to_line_backend() {
    if !have_python_websockets().await {
        return;
    }
    within(async {
        let (lines, counts) = line_backend().await;
        let (proxy, addr) = start_proxy(ProxyConfig::to(tcp(lines))).await;
        let url = format!("ws://{addr}/");
        let modes = ["binary", "base64", "none"];
        let mut args = vec!["lines", url.as_str()];
        args.extend(modes);
        let out = python_client(&args).await;
        expect_lines(&out, &modes.map(|m| format!("ok lines {m} 5242880 bytes")));
        counts.all_closed(modes.len()).await;
        proxy.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_websockets_backend_eof_gives_close_1000_after_the_data() {
    if !have_python_websockets().await {
        return;
    }
    within(async {
        let data = Arc::new(noise(5 * 1024 * 1024 + 17, 0x5eed));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("backend.bin");
        std::fs::write(&file, &*data).unwrap();
        let (sender, counts) = sending_backend(data.clone()).await;
        let (proxy, addr) = start_proxy(ProxyConfig::to(tcp(sender))).await;
        let url = format!("ws://{addr}/");
        let file = file.to_str().unwrap();
        let modes = ["binary", "base64", "none"];
        let mut args = vec!["eof", url.as_str(), file];
        args.extend(modes);
        let out = python_client(&args).await;
        expect_lines(
            &out,
            &modes.map(|m| format!("ok eof {m} {} bytes", data.len())),
        );
        counts.all_closed(modes.len()).await;
        proxy.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_websockets_routed_by_websockify_token_file() {
    if !have_python_websockets().await {
        return;
    }
    within(async {
        let (echo, echo_counts) = echo_backend().await;
        let (lines, line_counts) = line_backend().await;
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens.cfg");
        // websockify's TokenFile format.
        std::fs::write(
            &tokens,
            format!(
                "# websockify targets\necho: {echo}\nlines: 127.0.0.1:{}\n",
                lines.port()
            ),
        )
        .unwrap();
        let mut config = ProxyConfig::default();
        config.token_file = Some(tokens);
        let (proxy, addr) = start_proxy(config).await;
        let echo_url = format!("ws://{addr}/websockify?token=echo");
        let lines_url = format!("ws://{addr}/websockify?token=lines");
        let out = python_client(&["echo", &echo_url, "binary"]).await;
        expect_lines(&out, &["ok echo binary".to_owned()]);
        let out = python_client(&["lines", &lines_url, "base64"]).await;
        expect_lines(&out, &["ok lines base64".to_owned()]);
        echo_counts.all_closed(1).await;
        line_counts.all_closed(1).await;
        proxy.stop().await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Chromium with noVNC.
// ---------------------------------------------------------------------------------------------

/// What the fake VNC server saw from the client.
#[derive(Debug)]
enum VncEvent {
    Version(String),
    ClientInit { shared: bool },
    PixelFormat { bpp: u8 },
    Encodings(usize),
    UpdateRequest { incremental: bool },
    CutText(String),
    Closed,
}

/// Width, height and the colour of the fake desktop (checked by proxy.mjs).
const FB: (u16, u16) = (64, 48);
const COLOUR: [u8; 3] = [0x20, 0xa0, 0x60];

/// A minimal RFB 3.8 server: security None, a solid framebuffer sent raw, ServerCutText
/// answering each ClientCutText upper-cased.
async fn fake_vnc() -> (SocketAddr, mpsc::UnboundedReceiver<VncEvent>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let r = vnc_session(s, &tx).await;
                if let Err(e) = r {
                    eprintln!("fake vnc: {e}");
                }
                let _ = tx.send(VncEvent::Closed);
            });
        }
    });
    (addr, rx)
}

async fn vnc_session(
    mut s: TcpStream,
    tx: &mpsc::UnboundedSender<VncEvent>,
) -> std::io::Result<()> {
    let ev = |e| {
        let _ = tx.send(e);
    };
    s.write_all(b"RFB 003.008\n").await?;
    let mut version = [0u8; 12];
    s.read_exact(&mut version).await?;
    ev(VncEvent::Version(
        String::from_utf8_lossy(&version).trim().to_owned(),
    ));
    s.write_all(&[1, 1]).await?; // one security type: None
    let chosen = s.read_u8().await?;
    if chosen != 1 {
        return Err(std::io::Error::other(format!(
            "client chose security {chosen}"
        )));
    }
    s.write_u32(0).await?; // SecurityResult OK
    let shared = s.read_u8().await?;
    ev(VncEvent::ClientInit {
        shared: shared != 0,
    });
    // ServerInit: size, pixel format (32 bpp, depth 24, little-endian, true colour, shifts
    // 16/8/0), name.
    let mut init = Vec::new();
    init.extend_from_slice(&FB.0.to_be_bytes());
    init.extend_from_slice(&FB.1.to_be_bytes());
    init.extend_from_slice(&[32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0]);
    let name = b"wskit fake vnc";
    init.extend_from_slice(&(name.len() as u32).to_be_bytes());
    init.extend_from_slice(name);
    s.write_all(&init).await?;
    let mut shifts = [16u8, 8, 0];
    let mut big_endian = false;
    loop {
        let kind = match s.read_u8().await {
            Ok(k) => k,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        };
        match kind {
            0 => {
                // SetPixelFormat: 3 padding, 16 bytes of format.
                let mut b = [0u8; 19];
                s.read_exact(&mut b).await?;
                let pf = &b[3..];
                big_endian = pf[2] != 0;
                shifts = [pf[10], pf[11], pf[12]];
                ev(VncEvent::PixelFormat { bpp: pf[0] });
            }
            2 => {
                let _pad = s.read_u8().await?;
                let n = s.read_u16().await? as usize;
                let mut encs = vec![0u8; n * 4];
                s.read_exact(&mut encs).await?;
                ev(VncEvent::Encodings(n));
            }
            3 => {
                let mut b = [0u8; 9];
                s.read_exact(&mut b).await?;
                let incremental = b[0] != 0;
                ev(VncEvent::UpdateRequest { incremental });
                if !incremental {
                    let px = u32::from(COLOUR[0]) << shifts[0]
                        | u32::from(COLOUR[1]) << shifts[1]
                        | u32::from(COLOUR[2]) << shifts[2];
                    let px = if big_endian {
                        px.to_be_bytes()
                    } else {
                        px.to_le_bytes()
                    };
                    let mut msg = vec![0u8, 0, 0, 1, 0, 0, 0, 0];
                    msg.extend_from_slice(&FB.0.to_be_bytes());
                    msg.extend_from_slice(&FB.1.to_be_bytes());
                    msg.extend_from_slice(&0i32.to_be_bytes()); // raw
                    for _ in 0..usize::from(FB.0) * usize::from(FB.1) {
                        msg.extend_from_slice(&px);
                    }
                    s.write_all(&msg).await?;
                }
            }
            4 => {
                let mut b = [0u8; 7];
                s.read_exact(&mut b).await?;
            }
            5 => {
                let mut b = [0u8; 5];
                s.read_exact(&mut b).await?;
            }
            6 => {
                let mut pad = [0u8; 3];
                s.read_exact(&mut pad).await?;
                let len = s.read_u32().await?;
                // Extended clipboard (negative length) is not announced, so not expected.
                if len > 1 << 20 {
                    return Err(std::io::Error::other(format!("cut text length {len}")));
                }
                let mut text = vec![0u8; len as usize];
                s.read_exact(&mut text).await?;
                ev(VncEvent::CutText(
                    String::from_utf8_lossy(&text).into_owned(),
                ));
                text.make_ascii_uppercase();
                let mut msg = vec![3u8, 0, 0, 0];
                msg.extend_from_slice(&(text.len() as u32).to_be_bytes());
                msg.extend_from_slice(&text);
                s.write_all(&msg).await?;
            }
            other => {
                return Err(std::io::Error::other(format!(
                    "unexpected client message type {other}"
                )));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_and_novnc_through_proxy() {
    if !have_browser().await {
        return;
    }
    within(async {
        let (echo, echo_counts) = echo_backend().await;
        let (vnc, mut vnc_events) = fake_vnc().await;
        // Routed by path, as a noVNC deployment with several desktops would be.
        let mut config = ProxyConfig::default();
        config.paths = vec![("/echo".into(), tcp(echo)), ("/vnc".into(), tcp(vnc))];
        let (proxy, addr) = start_proxy(config).await;
        let mut cmd = Command::new("node");
        cmd.arg("proxy.mjs")
            .arg(format!("ws://{addr}/echo"))
            .arg(format!("ws://{addr}/vnc"))
            .current_dir(browser_dir())
            .env("NOVNC_DIR", novnc_dir());
        let r = run(cmd, PEER_LIMIT).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(r.ok, "proxy.mjs failed:\n{}", r.describe());
        let line = r
            .stdout
            .lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .unwrap_or_else(|| panic!("proxy.mjs printed no result:\n{}", r.describe()));
        eprintln!("{line}");
        assert!(line.contains("\"ok\":true"), "{line}");
        // Two raw WebSockets and one Websock reached the echo backend, and closed it.
        echo_counts.all_closed(3).await;
        // The RFB server saw the whole session.
        let mut seen = Vec::new();
        while let Ok(Some(e)) =
            tokio::time::timeout(Duration::from_secs(10), vnc_events.recv()).await
        {
            let closed = matches!(e, VncEvent::Closed);
            seen.push(e);
            if closed {
                break;
            }
        }
        let text = format!("{seen:?}");
        assert!(
            matches!(seen.first(), Some(VncEvent::Version(v)) if v == "RFB 003.008"),
            "{text}"
        );
        assert!(
            seen.iter()
                .any(|e| matches!(e, VncEvent::PixelFormat { bpp: 32 })),
            "{text}"
        );
        assert!(
            seen.iter()
                .any(|e| matches!(e, VncEvent::Encodings(n) if *n > 0)),
            "{text}"
        );
        assert!(
            seen.iter()
                .any(|e| matches!(e, VncEvent::UpdateRequest { incremental: false })),
            "{text}"
        );
        assert!(
            seen.iter()
                .any(|e| matches!(e, VncEvent::CutText(t) if t == "hello from novnc")),
            "{text}"
        );
        assert!(matches!(seen.last(), Some(VncEvent::Closed)), "{text}");
        assert!(
            seen.iter()
                .any(|e| matches!(e, VncEvent::ClientInit { shared: true })),
            "{text}"
        );
        proxy.stop().await;
    })
    .await;
}
