//! Headless Chromium speaks the files protocol through wskit-files.js (served by the server at
//! /wskit-files.js) and the tus protocol through tus-js-client's browser build:
//! - the page sends a file at QoS 2 and receives one the server sends back at QoS 1; sizes and
//!   SHA-256s must match on both sides;
//! - the page's incremental SHA-256 matches the FIPS 180-4 vectors and `crypto.subtle.digest`;
//! - an 8 MB file received at QoS 2 arrives as a File with its name, whole (crypto.subtle's
//!   SHA-256 of the Blob is the sent file's), with monotonic progress up to the size;
//! - QoS 2 receive through a WebSocket relay that drops one chunk: the next one reveals the gap
//!   and the page asks again at once, once; through a relay that loses every server message
//!   from the 10th chunk on until the page asks again: only the page's re-request timer can
//!   notice, and the file completes; a relay that stalls the sender for good makes the page's timeout end the
//!   transfer with code 9 on both sides; an offer that gets no answer times the page's sender
//!   out;
//! - tus-js-client uploads 3 MB made in the page to the tus door, is aborted after 1 MB and a
//!   second Upload resumes it through findPreviousUploads, from a page of the same origin and of
//!   another one (a second port: CORS preflights, exposed headers); the stored SHA-256 matches.
//!
//! Chromium is driven by the playwright-core pinned in xtask/interop/browser, tus-js-client is the
//! one pinned in tests/peers/node (both installed with `npm ci` when missing); the page scripts
//! are in tests/peers/browser. A missing peer prints `SKIPPED: ...` and passes, unless
//! `WSKIT_REQUIRE_PEERS=1` makes it fail.

mod common;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use common::*;
use proto_files::{
    Code, Config, EventKind, FileEvent, Files, FilesHandler, Hooks, NoHooks, QoS, SendOptions,
};
use tokio::{
    io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use ws_server::{Body, ConnHandle, Request, Response, Server, ServerHandle};

fn peer_missing(what: &str) {
    ws_testkit::peers::missing(what, "apt-get install -y chromium nodejs npm");
}

fn playwright() -> Option<String> {
    let package = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../xtask/interop/browser");
    let entry = package.join("node_modules/playwright-core/index.mjs");
    if !entry.is_file() {
        let ok = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&package)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return None;
        }
    }
    entry
        .is_file()
        .then(|| entry.to_string_lossy().into_owned())
}

/// When the browser's file arrives, the server sends `reply` back to that connection.
struct SendBack {
    reply: PathBuf,
    files: Arc<OnceLock<(Files, ServerHandle)>>,
}

impl Hooks for SendBack {
    fn on_event(&self, e: &FileEvent) {
        if e.kind != EventKind::Received {
            return;
        }
        let Some((files, server)) = self.files.get().cloned() else {
            return;
        };
        let (conn, reply) = (e.conn, self.reply.clone());
        tokio::spawn(async move {
            let Some(c) = server.connections().into_iter().find(|c| c.id().0 == conn) else {
                return;
            };
            let Some(handle) = server.get(c.id()) else {
                return;
            };
            let r = files
                .send_file(&handle, &reply, &SendOptions::qos(QoS::Acknowledged))
                .await;
            eprintln!("server -> browser: {r:?}");
        });
    }
}

/// The files handler plus a page that loads /wskit-files.js (and /tus.min.js, tus-js-client's
/// browser build, when `tus_js` names it); `connected` hears of every new connection.
struct WithPage {
    files: FilesHandler,
    tus_js: Option<PathBuf>,
    connected: Option<mpsc::UnboundedSender<ConnHandle>>,
}

impl WithPage {
    fn new(files: &Files) -> Self {
        Self {
            files: FilesHandler::new(files.clone()),
            tus_js: None,
            connected: None,
        }
    }
}

impl ws_server::Handler for WithPage {
    async fn on_handshake(&self, request: &Request) -> ws_server::Decision {
        self.files.on_handshake(request).await
    }
    async fn on_http(&self, request: &Request, body: &mut Body<'_>) -> Response {
        if request.path() == "/" {
            return Response::new(200)
                .with_header("Content-Type", "text/html; charset=utf-8")
                .with_body(
                    "<!doctype html><script src=\"/wskit-files.js\"></script>\
                     <script src=\"/tus.min.js\"></script>",
                );
        }
        if request.path() == "/tus.min.js" {
            return match self.tus_js.as_ref().and_then(|p| std::fs::read(p).ok()) {
                Some(js) => Response::new(200)
                    .with_header("Content-Type", "text/javascript; charset=utf-8")
                    .with_body(js),
                None => Response::new(404),
            };
        }
        self.files.on_http(request, body).await
    }
    async fn on_connect(&self, ctx: &mut ws_server::Ctx<'_>) {
        self.files.on_connect(ctx).await;
        if let Some(tx) = &self.connected {
            let _ = tx.send(ctx.handle());
        }
    }
    async fn on_binary(&self, ctx: &mut ws_server::Ctx<'_>, data: bytes::Bytes) {
        self.files.on_binary(ctx, data).await;
    }
    async fn on_disconnect(&self, info: &Arc<ws_server::ConnInfo>, d: ws_server::Disconnect) {
        self.files.on_disconnect(info, d).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_sends_and_receives_files_through_wskit_files_js() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !Path::new(&chromium).is_file() || !node {
        peer_missing("Chromium or node is not installed");
        return;
    }
    let Some(playwright) = tokio::task::spawn_blocking(playwright).await.unwrap() else {
        peer_missing("playwright-core could not be installed (npm ci in xtask/interop/browser)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("srv");
    let reply = make_file(tmp.path(), "to-browser.bin", 777_777, 3);
    let slot = Arc::new(OnceLock::new());
    let files = Files::new(
        Config::default(),
        Some(dir.clone()),
        SendBack {
            reply: reply.clone(),
            files: slot.clone(),
        },
    )
    .unwrap();
    let server = Server::start(
        server_config("127.0.0.1:0".parse().unwrap()),
        WithPage::new(&files),
    )
    .await
    .unwrap();
    let _ = slot.set((files, server.clone()));
    let addr = server.local_addrs()[0];
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/browser_files.mjs");
    let url = format!("http://{addr}/");
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .args([script, playwright.as_str(), url.as_str()])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "browser failed:\n{stdout}\n{stderr}");
    eprintln!("browser: {stdout}");
    let stored = sha256_file(&dir.join("from-browser.bin"));
    assert!(
        stdout.contains(&format!("\"sha256\":\"{}\"", hex(&stored))),
        "the page's SHA-256 of what it sent: {stdout}"
    );
    assert_eq!(
        std::fs::metadata(dir.join("from-browser.bin"))
            .unwrap()
            .len(),
        1_000_003
    );
    let back = hex(&sha256_file(&reply));
    assert!(
        stdout.contains(&format!("\"blobSha\":\"{back}\"")),
        "the page's SHA-256 of what it received: {stdout}"
    );
    assert!(stdout.contains("\"size\":777777"), "{stdout}");
    server.stop().await;
}

/// Chromium and playwright-core, or `None` after the skip message.
async fn browser() -> Option<String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !Path::new(&chromium).is_file() || !node {
        peer_missing("Chromium or node is not installed");
        return None;
    }
    let playwright = tokio::task::spawn_blocking(playwright).await.unwrap();
    if playwright.is_none() {
        peer_missing("playwright-core could not be installed (npm ci in xtask/interop/browser)");
    }
    playwright
}

/// Runs tests/peers/browser/`scenario` in a page at `url` with the JSON `arg`; its JSON result.
fn scenario(playwright: &str, url: &str, scenario: &str, arg: &str) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/browser");
    let out = Command::new("node")
        .arg(dir.join("run.mjs"))
        .args([playwright, url])
        .arg(dir.join(scenario))
        .arg(arg)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "{scenario} failed:\n{stdout}\n{stderr}"
    );
    eprintln!("{scenario}: {stdout}");
    stdout
}

/// The value of the first `"key":` in a JSON text: a string without its quotes, or the literal.
fn field(json: &str, key: &str) -> String {
    let pat = format!("\"{key}\":");
    let at = json
        .find(&pat)
        .unwrap_or_else(|| panic!("no {key} in {json}"))
        + pat.len();
    let rest = &json[at..];
    if let Some(s) = rest.strip_prefix('"') {
        return s[..s.find('"').unwrap()].to_string();
    }
    let end = rest.find([',', '}', ']']).unwrap_or(rest.len());
    rest[..end].to_string()
}

fn num(json: &str, key: &str) -> u64 {
    field(json, key)
        .parse()
        .unwrap_or_else(|_| panic!("{key} is not a count in {json}"))
}

/// What the WebSocket relay does to the server's frames (towards the browser).
#[derive(Clone, Copy)]
enum Plan {
    /// From the `n`th `data` message on, drop everything the server sends until the browser
    /// sends a retransmit `request` (a lost stretch only the re-request timer can notice).
    DropUntilRerequest(u64),
    /// From the `n`th `data` message on, drop everything the server sends (a stalled sender).
    StallAfter(u64),
    /// Drop the `n`th `data` message only (the next one reveals the gap).
    DropOne(u64),
}

/// A TCP relay for one WebSocket connection that reads the frames both ways: it counts the
/// browser's retransmit requests and drops the server's binary frames as `plan` says.
struct WsRelay {
    addr: SocketAddr,
    dropped: Arc<AtomicU64>,
    rerequests: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WsRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn ws_relay(upstream: SocketAddr, plan: Plan) -> WsRelay {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let dropped = Arc::new(AtomicU64::new(0));
    let rerequests = Arc::new(AtomicU64::new(0));
    let (d, r) = (dropped.clone(), rerequests.clone());
    let task = tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(upstream).await else {
                return;
            };
            let (cr, mut cw) = client.into_split();
            let (sr, mut sw) = server.into_split();
            let rerequests = r.clone();
            tokio::spawn(async move {
                let mut cr = BufReader::new(cr);
                let Ok(head) = read_head(&mut cr).await else {
                    return;
                };
                let _ = sw.write_all(&head).await;
                while let Ok((raw, opcode, payload)) = read_frame(&mut cr).await {
                    // request: 18-byte header, offset u64, count u32, flags u8 (bit 0: retransmit)
                    if opcode == 2 && payload.len() == 31 && payload[1] == 6 && payload[30] & 1 == 1
                    {
                        rerequests.fetch_add(1, Ordering::SeqCst);
                    }
                    if sw.write_all(&raw).await.is_err() {
                        return;
                    }
                }
                let _ = sw.shutdown().await;
            });
            let (dropped, rerequests) = (d.clone(), r.clone());
            tokio::spawn(async move {
                let mut sr = BufReader::new(sr);
                let Ok(head) = read_head(&mut sr).await else {
                    return;
                };
                let _ = cw.write_all(&head).await;
                let (mut data, mut dropping_since) = (0u64, None);
                let mut done = false;
                while let Ok((raw, opcode, payload)) = read_frame(&mut sr).await {
                    let binary = opcode == 2 || opcode == 0;
                    if opcode == 2 && payload.len() >= 18 && payload[1] == 4 {
                        data += 1;
                    }
                    let drop = match plan {
                        Plan::DropUntilRerequest(n) => {
                            if !done && dropping_since.is_none() && data == n {
                                dropping_since = Some(rerequests.load(Ordering::SeqCst));
                            }
                            if dropping_since
                                .is_some_and(|at| rerequests.load(Ordering::SeqCst) > at)
                            {
                                dropping_since = None;
                                done = true;
                            }
                            dropping_since.is_some() && binary
                        }
                        Plan::StallAfter(n) => data >= n && binary,
                        Plan::DropOne(n) => {
                            opcode == 2 && data == n && payload.len() >= 18 && payload[1] == 4
                        }
                    };
                    if drop {
                        dropped.fetch_add(1, Ordering::SeqCst);
                    } else if cw.write_all(&raw).await.is_err() {
                        return;
                    }
                }
                let _ = cw.shutdown().await;
            });
        }
    });
    WsRelay {
        addr,
        dropped,
        rerequests,
        task,
    }
}

/// The HTTP head up to and including the blank line.
async fn read_head(r: &mut (impl AsyncBufReadExt + Unpin)) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::new();
    loop {
        let n = r.read_until(b'\n', &mut head).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if head.ends_with(b"\r\n\r\n") {
            return Ok(head);
        }
    }
}

/// One WebSocket frame: its bytes as they came, its opcode and its payload unmasked.
async fn read_frame(r: &mut (impl AsyncRead + Unpin)) -> std::io::Result<(Vec<u8>, u8, Vec<u8>)> {
    let mut raw = vec![0u8; 2];
    r.read_exact(&mut raw).await?;
    let (opcode, masked) = (raw[0] & 0x0f, raw[1] & 0x80 != 0);
    let mut len = u64::from(raw[1] & 0x7f);
    let ext = match len {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    if ext > 0 {
        let mut b = vec![0u8; ext];
        r.read_exact(&mut b).await?;
        len = b.iter().fold(0, |acc, &x| acc << 8 | u64::from(x));
        raw.extend_from_slice(&b);
    }
    let mut key = [0u8; 4];
    if masked {
        r.read_exact(&mut key).await?;
        raw.extend_from_slice(&key);
    }
    let mut payload = vec![0u8; usize::try_from(len).unwrap()];
    r.read_exact(&mut payload).await?;
    raw.extend_from_slice(&payload);
    if masked {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= key[i % 4];
        }
    }
    Ok((raw, opcode, payload))
}

/// A files server with the page, and the receiver of its new connections.
struct PageServer {
    server: ServerHandle,
    files: Files,
    addr: SocketAddr,
    connected: mpsc::UnboundedReceiver<ConnHandle>,
}

async fn page_server(dir: &Path, tus_js: Option<PathBuf>) -> PageServer {
    let files = Files::new(Config::default(), Some(dir.to_path_buf()), NoHooks).unwrap();
    let (tx, connected) = mpsc::unbounded_channel();
    let handler = WithPage {
        tus_js,
        connected: Some(tx),
        ..WithPage::new(&files)
    };
    let server = Server::start(server_config("127.0.0.1:0".parse().unwrap()), handler)
        .await
        .unwrap();
    let addr = server.local_addrs()[0];
    PageServer {
        server,
        files,
        addr,
        connected,
    }
}

impl PageServer {
    /// The server sends `path` at `qos` to the first page that connects while the page (from
    /// this server) runs receive.js with `options` through `ws_url`: the page's result and the
    /// sender's outcome.
    async fn receive_in_page(
        &mut self,
        playwright: String,
        ws_url: &str,
        options: &str,
        path: &Path,
        qos: QoS,
    ) -> (String, Result<proto_files::SendReport, proto_files::Error>) {
        let url = format!("http://{}/", self.addr);
        let arg = format!("{{\"url\":\"{ws_url}\",\"options\":{options}}}");
        let browser =
            tokio::task::spawn_blocking(move || scenario(&playwright, &url, "receive.js", &arg));
        let conn = tokio::time::timeout(Duration::from_secs(90), self.connected.recv())
            .await
            .expect("the page never connected")
            .unwrap();
        let sent = self
            .files
            .send_file(&conn, path, &SendOptions::qos(qos))
            .await;
        (browser.await.unwrap(), sent)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sha256_of_wskit_files_js_matches_the_vectors_and_subtle_crypto() {
    let Some(playwright) = browser().await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let page = page_server(&tmp.path().join("srv"), None).await;
    let addr = page.addr;
    let url = format!("http://{addr}/");
    let out = tokio::task::spawn_blocking(move || scenario(&playwright, &url, "sha256.js", "{}"))
        .await
        .unwrap();
    assert!(out.contains("\"mismatches\":[]"), "{out}");
    assert_eq!(num(&out, "vectors"), 5, "{out}");
    assert_eq!(num(&out, "checked"), 307, "{out}");
    page.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_receives_several_megabytes_at_qos_2_as_a_named_file_with_the_right_sha256() {
    let Some(playwright) = browser().await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut page = page_server(&tmp.path().join("srv"), None).await;
    let size = 8_000_017;
    let path = make_file(tmp.path(), "eight-megabytes.bin", size, 5);
    let ws = format!("ws://{}/files", page.addr);
    let (out, sent) = page
        .receive_in_page(playwright, &ws, "{}", &path, QoS::Pulled)
        .await;
    let sent = sent.expect("the server's send");
    let want = hex(&sha256_file(&path));
    assert_eq!(hex(&sent.sha256), want);
    assert_eq!(field(&out, "sha256"), want, "the client's SHA-256: {out}");
    assert_eq!(field(&out, "subtleSha"), want, "the Blob's bytes: {out}");
    assert_eq!(num(&out, "blobSize"), size as u64, "{out}");
    assert_eq!(field(&out, "isFile"), "true", "{out}");
    assert_eq!(field(&out, "blobName"), "eight-megabytes.bin", "{out}");
    assert_eq!(field(&out, "monotonic"), "true", "{out}");
    assert_eq!(
        num(&out, "last"),
        size as u64,
        "progress ends at the size: {out}"
    );
    assert!(num(&out, "count") >= (size as u64).div_ceil(65536), "{out}");
    page.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_qos_2_re_request_timer_recovers_a_lost_stretch_of_chunks() {
    let Some(playwright) = browser().await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut page = page_server(&tmp.path().join("srv"), None).await;
    let size = 2_000_003;
    let path = make_file(tmp.path(), "lossy.bin", size, 9);
    // Everything from the 10th data message on is lost until the page asks again: no later
    // chunk reveals a gap, so only the timer can notice.
    let relay = ws_relay(page.addr, Plan::DropUntilRerequest(10)).await;
    let ws = format!("ws://{}/files", relay.addr);
    let options = "{\"interval\":300,\"timeout\":20000,\"window\":8}";
    let (out, sent) = page
        .receive_in_page(playwright, &ws, options, &path, QoS::Pulled)
        .await;
    let sent = sent.expect("the server's send");
    let want = hex(&sha256_file(&path));
    assert_eq!(hex(&sent.sha256), want);
    assert_eq!(field(&out, "sha256"), want, "{out}");
    assert_eq!(field(&out, "subtleSha"), want, "{out}");
    assert!(
        relay.dropped.load(Ordering::SeqCst) >= 1,
        "nothing was lost"
    );
    assert!(
        relay.rerequests.load(Ordering::SeqCst) >= 1,
        "the page never asked again"
    );
    assert!(!out.contains("receivedError"), "{out}");
    page.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_qos_2_re_requests_a_gap_at_once_and_once() {
    let Some(playwright) = browser().await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut page = page_server(&tmp.path().join("srv"), None).await;
    let size = 1_500_001;
    let path = make_file(tmp.path(), "gap.bin", size, 13);
    let relay = ws_relay(page.addr, Plan::DropOne(7)).await;
    let ws = format!("ws://{}/files", relay.addr);
    // interval = timeout: the timer never asks again before it gives up, so only the chunk
    // after the lost one can trigger the re-request.
    let options = "{\"interval\":30000,\"timeout\":30000}";
    let (out, sent) = page
        .receive_in_page(playwright, &ws, options, &path, QoS::Pulled)
        .await;
    let sent = sent.expect("the server's send");
    let want = hex(&sha256_file(&path));
    assert_eq!(hex(&sent.sha256), want);
    assert_eq!(field(&out, "subtleSha"), want, "{out}");
    assert_eq!(relay.dropped.load(Ordering::SeqCst), 1);
    // The chunks after the gap that were already on their way do not ask again.
    assert_eq!(relay.rerequests.load(Ordering::SeqCst), 1);
    page.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_timeout_ends_a_stalled_qos_2_transfer_with_an_error_on_both_sides() {
    let Some(playwright) = browser().await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut page = page_server(&tmp.path().join("srv"), None).await;
    let path = make_file(tmp.path(), "stalled.bin", 1_000_000, 11);
    let relay = ws_relay(page.addr, Plan::StallAfter(5)).await;
    let ws = format!("ws://{}/files", relay.addr);
    let options = "{\"interval\":200,\"timeout\":3000}";
    let (out, sent) = page
        .receive_in_page(playwright, &ws, options, &path, QoS::Pulled)
        .await;
    let err = sent.expect_err("the send of a stalled transfer");
    assert_eq!(err.code(), Code::Timeout, "the server's error: {err}");
    assert!(!out.contains("\"file\":"), "{out}");
    assert_eq!(num(&out, "code"), 9, "{out}");
    assert_eq!(field(&out, "direction"), "receive", "{out}");
    assert_eq!(field(&out, "fileName"), "stalled.bin", "{out}");
    assert_eq!(num(&out, "receivedError"), 1, "{out}");
    // The timer kept asking before the timeout gave up.
    assert!(relay.rerequests.load(Ordering::SeqCst) >= 1);
    page.server.stop().await;
}

/// tus-js-client's browser build from tests/peers/node (installed with `npm ci` when missing).
async fn tus_js() -> Option<PathBuf> {
    let package = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/node");
    let js = package.join("node_modules/tus-js-client/dist/tus.min.js");
    let path = js.clone();
    let ok = tokio::task::spawn_blocking(move || {
        path.is_file()
            || Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&package)
                .status()
                .is_ok_and(|s| s.success())
    })
    .await
    .unwrap();
    if !ok || !js.is_file() {
        peer_missing("tus-js-client could not be installed (npm ci in tests/peers/node)");
        return None;
    }
    Some(js)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_js_client_in_chromium_uploads_aborts_resumes_same_and_cross_origin() {
    let Some(playwright) = browser().await else {
        return;
    };
    let Some(tus_js) = tus_js().await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("srv");
    let page = page_server(&dir, Some(tus_js.clone())).await;
    let addr = page.addr;
    // A second origin (another port) that only serves the page.
    let other = page_server(&tmp.path().join("other"), Some(tus_js)).await;
    let other_addr = other.addr;
    let size: u64 = 3_000_000;
    for (page, name) in [
        (addr, "tus-same-origin.bin"),
        (other_addr, "tus-cross-origin.bin"),
    ] {
        let url = format!("http://{page}/");
        let arg = format!(
            "{{\"endpoint\":\"http://{addr}/files/\",\"name\":\"{name}\",\"size\":{size},\
             \"chunk\":262144,\"abortAt\":1000000}}"
        );
        let pw = playwright.clone();
        let out = tokio::task::spawn_blocking(move || scenario(&pw, &url, "tus.js", &arg))
            .await
            .unwrap();
        assert_eq!(field(&out, "origin"), format!("http://{page}"), "{out}");
        assert_eq!(num(&out, "status"), 204, "OPTIONS: {out}");
        assert_eq!(field(&out, "version"), "1.0.0", "{out}");
        assert!(field(&out, "extensions").contains("creation"), "{out}");
        let offset = num(&out, "offsetAfterAbort");
        assert!(offset > 0 && offset < size, "offset after the abort: {out}");
        let first = out.split("\"first\":").nth(1).unwrap();
        let second = out.split("\"second\":").nth(1).unwrap();
        assert_eq!(field(first, "url"), field(second, "url"), "resumed: {out}");
        assert!(num(second, "firstProgress") >= offset, "{out}");
        let stored = dir.join(name);
        assert_eq!(std::fs::metadata(&stored).unwrap().len(), size);
        assert_eq!(hex(&sha256_file(&stored)), field(&out, "sha256"), "{out}");
    }
    other.server.stop().await;
    page.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_sender_times_out_when_its_offer_gets_no_answer() {
    let Some(playwright) = browser().await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let page = page_server(&tmp.path().join("srv"), None).await;
    // Every binary message of the server is lost: the offer's accept never arrives.
    let relay = ws_relay(page.addr, Plan::StallAfter(0)).await;
    let url = format!("http://{}/", page.addr);
    let arg = format!(
        "{{\"url\":\"ws://{}/files\",\"options\":{{\"timeout\":1000}},\"size\":100000,\
         \"name\":\"unanswered.bin\",\"qos\":1}}",
        relay.addr
    );
    let out = tokio::task::spawn_blocking(move || scenario(&playwright, &url, "send.js", &arg))
        .await
        .unwrap();
    assert!(!out.contains("\"sent\":"), "{out}");
    assert!(relay.dropped.load(Ordering::SeqCst) >= 1);
    let error = out.split("\"error\":").nth(1).expect("sendFile rejected");
    assert_eq!(num(error, "code"), 9, "{out}");
    let event = out.split("\"errorEvents\":").nth(1).unwrap();
    assert_eq!(num(event, "code"), 9, "{out}");
    assert_eq!(field(event, "direction"), "send", "{out}");
    assert_eq!(field(event, "fileName"), "unanswered.bin", "{out}");
    assert_eq!(num(&out, "sentError"), 1, "{out}");
    page.server.stop().await;
}
