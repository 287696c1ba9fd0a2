//! Plain HTTP forwarding ([`ProxyConfig::http_upstream`]) over real TCP:
//!
//! - against Python's `http.server` (`python3 -m http.server`, a server nobody here wrote):
//!   GET of a file returns its bytes, a 404 passes through, HEAD gets the head;
//! - against an in-test upstream that records the raw request it received: hop-by-hop fields
//!   dropped (both ways), `X-Forwarded-For` / `-Proto` / `-Host` and `Forwarded`, the `Host`
//!   policy, content-length and chunked request bodies arriving intact, a chunked response
//!   relayed while it is still being produced, trailer sections forwarded both ways without
//!   the fields that must not be trailers (and `Trailer` only with them), connection reuse (and replacement of a reused
//!   connection the upstream had closed), also for requests with a body, and the retry rule
//!   for a reused connection that fails (a small idempotent request is sent again, a `POST`
//!   or an already streamed body gets 502 and is not replayed);
//! - `CONNECT` -> 405 with `Allow`;
//! - upstream down -> 502, no answer -> 504; a WebSocket upgrade on the same listener is still
//!   bridged to the TCP backend;
//! - `curl` as the client (a client nobody here wrote).
//!
//! A missing peer (python3, curl) makes its test print `SKIPPED: ...` and pass, unless
//! `WSKIT_REQUIRE_PEERS=1` turns that into a failure (as in `interop_peers.rs`). Peers are
//! child processes killed by pid when the test ends.

mod common;

use std::{
    net::SocketAddr,
    path::Path,
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::BytesMut;
use common::{T, closed_port, config, missing, python, start, tcp_echo, tcp_target};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    process::{Child, Command},
    sync::{mpsc, oneshot},
};
use ws_proxy::{
    HostHeader, HttpUpstream, ProxyConfig, ProxyServer,
    ws_server::ws_http::{self, BodyDecoder, BodyEvent, BodyKind, Limits, Parsed},
};
use ws_testkit::noise;

// ---------------------------------------------------------------------------------------------
// Peers: availability (skip or fail), child processes.
// ---------------------------------------------------------------------------------------------

/// Whether `program --version` runs.
async fn runs(program: &str) -> bool {
    let status = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .status();
    matches!(
        tokio::time::timeout(Duration::from_secs(20), status).await,
        Ok(Ok(s)) if s.success()
    )
}

/// A child process stopped by its pid when dropped.
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(pid) = self.0.id() {
            eprintln!("stopping peer pid {pid}");
        }
        let _ = self.0.start_kill();
    }
}

/// Python's `http.server` serving `dir` on a free port of 127.0.0.1.
async fn python_http_server(dir: &Path) -> (Peer, SocketAddr) {
    for _ in 0..5 {
        let port = closed_port().await.port();
        let child = Command::new(python())
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .arg("--directory")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn python3 -m http.server");
        let mut peer = Peer(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = tokio::time::Instant::now() + T;
        while tokio::time::Instant::now() < deadline {
            if TcpStream::connect(addr).await.is_ok() {
                return (peer, addr);
            }
            if matches!(peer.0.try_wait(), Ok(Some(_))) {
                break; // the port was taken meanwhile: try another
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    panic!("python3 -m http.server did not start");
}

// ---------------------------------------------------------------------------------------------
// A raw HTTP client and a recording upstream (framing through ws-http, not by hand).
// ---------------------------------------------------------------------------------------------

/// A response as the client received it.
#[derive(Debug)]
struct Got {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// The raw head.
    head: String,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn limits() -> Limits {
    let mut l = Limits::default();
    l.max_body = 1 << 30;
    l
}

/// Decodes a whole body of `kind` from `rx` (`finish` at the end of `rest`).
fn decode(kind: BodyKind, rx: &mut BytesMut, eof: bool) -> Option<Vec<u8>> {
    let mut d = BodyDecoder::new(kind, &limits()).unwrap();
    let mut body = Vec::new();
    loop {
        match d.decode(rx).unwrap() {
            Some(BodyEvent::Data(b)) => body.extend_from_slice(&b),
            Some(BodyEvent::End { .. }) => return Some(body),
            None if eof => {
                d.finish().expect("complete body");
                return Some(body);
            }
            None => return None,
        }
    }
}

/// Reads one response to a `method` request from `s` (more bytes are read as needed).
async fn read_response(s: &mut TcpStream, rx: &mut BytesMut, method: &str) -> Got {
    let (head, len) = loop {
        if let Parsed::Complete(h, n) = ws_http::parse_response(rx, &limits()).unwrap() {
            break (h, n);
        }
        let n = tokio::time::timeout(T, s.read_buf(rx))
            .await
            .expect("response in time")
            .unwrap();
        assert!(n > 0, "connection closed before the response head");
    };
    let raw_head = String::from_utf8_lossy(&rx[..len]).into_owned();
    let _ = rx.split_to(len);
    let kind = head.body_kind(method).unwrap();
    let mut all = BytesMut::new();
    let body = loop {
        all.extend_from_slice(&rx.split());
        let mut probe = all.clone();
        if let Some(b) = decode(kind, &mut probe, false) {
            *rx = probe;
            break b;
        }
        let n = tokio::time::timeout(T, s.read_buf(rx))
            .await
            .expect("body in time")
            .unwrap();
        if n == 0 {
            break decode(kind, &mut all, true).unwrap();
        }
    };
    Got {
        status: head.status(),
        headers: head
            .headers()
            .iter()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect(),
        body,
        head: raw_head,
    }
}

/// Sends `raw` on a new connection and reads the response.
async fn request(addr: SocketAddr, raw: &[u8]) -> Got {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(raw).await.unwrap();
    let end = raw.iter().position(|&b| b == b' ').unwrap();
    let method = String::from_utf8(raw[..end].to_vec()).unwrap();
    read_response(&mut s, &mut BytesMut::new(), &method).await
}

/// What the upstream received.
#[derive(Debug)]
struct Seen {
    /// The raw head, exactly as received.
    head: String,
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// The trailer section of a chunked body.
    trailers: Vec<(String, String)>,
    /// Requests before this one on the same upstream connection.
    nth: usize,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn has(&self, name: &str) -> bool {
        self.header(name).is_some()
    }
}

/// How the recording upstream answers; an empty answer closes the connection without one.
type Answer = Arc<dyn Fn(&Seen) -> Vec<u8> + Send + Sync>;

/// An upstream that parses each request (keep-alive: several per connection), reports it,
/// and writes `answer(request)`; `close_after` closes each connection after one answer.
/// Returns its address, the requests, and the count of accepted connections.
async fn recording(
    answer: Answer,
    close_after: bool,
) -> (SocketAddr, mpsc::UnboundedReceiver<Seen>, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let tx = tx.clone();
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut rx = BytesMut::new();
                for nth in 0.. {
                    let Some(mut seen) = read_request(&mut s, &mut rx).await else {
                        return;
                    };
                    seen.nth = nth;
                    let reply = answer(&seen);
                    let _ = tx.send(seen);
                    if reply.is_empty() || s.write_all(&reply).await.is_err() || close_after {
                        return;
                    }
                }
            });
        }
    });
    (addr, rx, accepted)
}

/// One request from `s`; `None` at EOF.
async fn read_request(s: &mut TcpStream, rx: &mut BytesMut) -> Option<Seen> {
    let (head, len) = loop {
        if !rx.is_empty() {
            if let Parsed::Complete(h, n) = ws_http::parse_request(rx, &limits()).unwrap() {
                break (h, n);
            }
        }
        if s.read_buf(rx).await.ok()? == 0 {
            return None;
        }
    };
    let raw = String::from_utf8_lossy(&rx[..len]).into_owned();
    let _ = rx.split_to(len);
    let mut d = BodyDecoder::new(head.body_kind().unwrap(), &limits()).unwrap();
    let mut body = Vec::new();
    let trailers = loop {
        match d.decode(rx).unwrap() {
            Some(BodyEvent::Data(b)) => body.extend_from_slice(&b),
            Some(BodyEvent::End { trailers }) => break trailers,
            None => {
                if s.read_buf(rx).await.ok()? == 0 {
                    return None;
                }
            }
        }
    };
    Some(Seen {
        head: raw,
        method: head.method().to_owned(),
        target: head.target().to_owned(),
        headers: head
            .headers()
            .iter()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect(),
        body,
        trailers: trailers
            .iter()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect(),
        nth: 0,
    })
}

fn ok_with(body: &[u8], extra: &str) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{extra}\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

async fn next_seen(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    tokio::time::timeout(T, rx.recv())
        .await
        .expect("upstream request in time")
        .expect("upstream running")
}

/// A proxy on a free port forwarding plain HTTP to `up` (and WebSockets to `ws`, if any).
async fn proxy_to(up: HttpUpstream, ws: Option<SocketAddr>) -> (ProxyServer, SocketAddr) {
    let mut c: ProxyConfig = config(ws.map(tcp_target));
    c.http_upstream = Some(up);
    start(c).await
}

fn http_upstream(addr: SocketAddr) -> HttpUpstream {
    HttpUpstream::parse(&format!("http://{addr}")).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Tests.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn python_http_server_get_404_and_head_pass_through() {
    if !runs(&python()).await {
        missing(&format!("{} is not installed", python()));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = noise(300 * 1024 + 7, 1);
    std::fs::write(dir.path().join("file.bin"), &data).unwrap();
    std::fs::write(dir.path().join("hello.txt"), b"hello from python\n").unwrap();
    let (peer, up) = python_http_server(dir.path()).await;
    let (proxy, addr) = proxy_to(http_upstream(up), None).await;

    let got = request(
        addr,
        b"GET /file.bin HTTP/1.1\r\nHost: proxy.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.head);
    assert_eq!(got.body.len(), data.len());
    assert!(got.body == data, "the file's bytes, unchanged");
    assert_eq!(got.header("content-length"), Some(&*data.len().to_string()));

    let got = request(
        addr,
        b"GET /hello.txt?x=1 HTTP/1.1\r\nHost: proxy.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(
        (got.status, &got.body[..]),
        (200, &b"hello from python\n"[..])
    );

    let got = request(
        addr,
        b"GET /no-such-file HTTP/1.1\r\nHost: proxy.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(got.status, 404, "{}", got.head);
    assert!(
        String::from_utf8_lossy(&got.body).contains("404"),
        "Python's error page: {:?}",
        String::from_utf8_lossy(&got.body)
    );

    let got = request(
        addr,
        b"HEAD /file.bin HTTP/1.1\r\nHost: proxy.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.head);
    assert_eq!(got.header("content-length"), Some(&*data.len().to_string()));
    assert!(got.body.is_empty());
    proxy.stop().await;
    drop(peer);
}

#[tokio::test]
async fn hop_by_hop_fields_dropped_forwarded_fields_added() {
    let answer: Answer = Arc::new(|_| {
        ok_with(
            b"ok",
            "Connection: X-Secret-Hop\r\nX-Secret-Hop: 1\r\nKeep-Alive: timeout=5\r\n\
             Trailer: X-T\r\nUpgrade: h2c\r\nX-Up: yes\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n",
        )
    });
    let (up, mut seen, _) = recording(answer, false).await;
    let mut upstream = http_upstream(up);
    upstream.base = "/base".into();
    let (proxy, addr) = proxy_to(upstream, None).await;
    let got = request(
        addr,
        b"GET /path/x?q=1&r=%20 HTTP/1.1\r\nHost: public.example:8443\r\n\
          Connection: close, X-Custom-Hop\r\nX-Custom-Hop: secret\r\nKeep-Alive: 5\r\n\
          Proxy-Connection: keep-alive\r\nTE: trailers\r\nTrailer: X-Sum\r\n\
          Upgrade: h2c\r\nX-Forwarded-For: 10.0.0.1\r\nForwarded: for=10.0.0.1\r\n\
          X-Forwarded-Proto: https\r\nX-Keep: yes\r\nAccept: */*\r\n\r\n",
    )
    .await;
    let s = next_seen(&mut seen).await;
    assert_eq!(
        (s.method.as_str(), s.target.as_str()),
        ("GET", "/base/path/x?q=1&r=%20")
    );
    for hop in [
        "connection",
        "x-custom-hop",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ] {
        assert!(!s.has(hop), "{hop} forwarded:\n{}", s.head);
    }
    assert_eq!(s.header("host"), Some("public.example:8443"));
    assert_eq!(s.header("x-forwarded-for"), Some("10.0.0.1, 127.0.0.1"));
    assert_eq!(s.header("x-forwarded-proto"), Some("http"));
    assert_eq!(s.header("x-forwarded-host"), Some("public.example:8443"));
    assert_eq!(
        s.header("forwarded"),
        Some("for=10.0.0.1, for=127.0.0.1;host=\"public.example:8443\";proto=http")
    );
    assert_eq!(s.header("x-keep"), Some("yes"));
    assert_eq!(s.header("accept"), Some("*/*"));
    assert!(!s.has("content-length"), "no body, no framing:\n{}", s.head);

    assert_eq!((got.status, &got.body[..]), (200, &b"ok"[..]));
    assert_eq!(got.header("x-up"), Some("yes"));
    for hop in ["x-secret-hop", "keep-alive", "trailer", "upgrade"] {
        assert!(got.header(hop).is_none(), "{hop} relayed:\n{}", got.head);
    }
    let cookies: Vec<_> = got
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(cookies, ["a=1", "b=2"]);
    proxy.stop().await;
}

#[tokio::test]
async fn host_can_be_the_upstreams() {
    let (up, mut seen, _) = recording(Arc::new(|_| ok_with(b"", "")), false).await;
    let mut upstream = http_upstream(up);
    upstream.host_header = HostHeader::Upstream;
    let (proxy, addr) = proxy_to(upstream, None).await;
    let got = request(
        addr,
        b"GET / HTTP/1.1\r\nHost: public.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(got.status, 200);
    let s = next_seen(&mut seen).await;
    assert_eq!(s.header("host"), Some(&*up.to_string()));
    assert_eq!(s.header("x-forwarded-host"), Some("public.example"));
    proxy.stop().await;
}

#[tokio::test]
async fn request_bodies_arrive_intact() {
    // The upstream answers with the length and a checksum of what it decoded.
    let answer: Answer = Arc::new(|s: &Seen| {
        let sum: u64 = s.body.iter().map(|&b| u64::from(b)).sum();
        ok_with(format!("{} {sum}", s.body.len()).as_bytes(), "")
    });
    let (up, mut seen, _) = recording(answer, false).await;
    let (proxy, addr) = proxy_to(http_upstream(up), None).await;

    // Content-Length, large enough to be read in many pieces.
    let body = noise(1 << 20, 7);
    let mut raw = format!(
        "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(&body);
    let got = request(addr, &raw).await;
    assert_eq!(got.status, 200, "{}", got.head);
    let s = next_seen(&mut seen).await;
    assert_eq!(s.method, "POST");
    assert_eq!(s.header("content-length"), Some(&*body.len().to_string()));
    assert!(!s.has("transfer-encoding"));
    assert!(s.body == body, "content-length body intact");

    // Chunked, written in several pieces with pauses, and an Expect: 100-continue.
    let pieces = [noise(10, 1), noise(70_000, 2), noise(1, 3), noise(5000, 4)];
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        b"PUT /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\
          Expect: 100-continue\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    for p in &pieces {
        let mut chunk = format!("{:x}\r\n", p.len()).into_bytes();
        chunk.extend_from_slice(p);
        chunk.extend_from_slice(b"\r\n");
        tcp.write_all(&chunk).await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    tcp.write_all(b"0\r\n\r\n").await.unwrap();
    let mut rx = BytesMut::new();
    let mut got = read_response(&mut tcp, &mut rx, "PUT").await;
    if got.status == 100 {
        got = read_response(&mut tcp, &mut rx, "PUT").await;
    }
    let s = next_seen(&mut seen).await;
    let want: Vec<u8> = pieces.concat();
    assert_eq!(s.method, "PUT");
    assert_eq!(s.header("transfer-encoding"), Some("chunked"));
    assert!(!s.has("content-length") && !s.has("expect"), "{}", s.head);
    assert!(s.body == want, "chunked body intact");
    let sum: u64 = want.iter().map(|&b| u64::from(b)).sum();
    assert_eq!(got.status, 200, "{}", got.head);
    assert_eq!(got.body, format!("{} {sum}", want.len()).into_bytes());
    proxy.stop().await;
}

#[tokio::test]
async fn chunked_response_is_relayed_as_it_is_produced() {
    // An upstream that sends a first chunk, waits until the test saw it arrive at the client
    // (so a proxy that buffered the whole response would never deliver it), then the rest.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = l.local_addr().unwrap();
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let tail = noise(200_000, 9);
    let tail2 = tail.clone();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut rx = BytesMut::new();
        let _seen = read_request(&mut s, &mut rx).await.unwrap();
        s.write_all(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n\
              6\r\nfirst \r\n",
        )
        .await
        .unwrap();
        go_rx.await.unwrap();
        let mut rest = format!("{:x}\r\n", tail2.len()).into_bytes();
        rest.extend_from_slice(&tail2);
        rest.extend_from_slice(b"\r\n3\r\nend\r\n0\r\nX-Trailer: t\r\n\r\n");
        for piece in rest.chunks(7000) {
            s.write_all(piece).await.unwrap();
        }
    });
    let (proxy, addr) = proxy_to(http_upstream(up), None).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    while !raw.windows(6).any(|w| w == b"first ") {
        let n = tokio::time::timeout(T, tcp.read(&mut buf))
            .await
            .expect("the first chunk arrives before the upstream finished")
            .unwrap();
        assert!(n > 0, "closed early");
        raw.extend_from_slice(&buf[..n]);
    }
    go_tx.send(()).unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(T, tcp.read_to_end(&mut rest))
        .await
        .expect("the rest in time")
        .unwrap();
    raw.extend_from_slice(&rest);
    let mut rx = BytesMut::from(&raw[..]);
    let Parsed::Complete(head, len) = ws_http::parse_response(&rx, &limits()).unwrap() else {
        panic!("no head in {:?}", String::from_utf8_lossy(&raw));
    };
    assert_eq!(head.status(), 200);
    assert_eq!(head.header("content-type"), Some("text/plain"));
    assert_eq!(head.body_kind("GET").unwrap(), BodyKind::Chunked);
    let _ = rx.split_to(len);
    let body = decode(BodyKind::Chunked, &mut rx, false).expect("a complete chunked body");
    let mut want = b"first ".to_vec();
    want.extend_from_slice(&tail);
    want.extend_from_slice(b"end");
    assert!(
        body == want,
        "chunked body relayed intact ({} bytes)",
        body.len()
    );
    proxy.stop().await;
}

/// `(name, value)` pairs as owned strings.
fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test]
async fn request_trailers_reach_the_upstream_without_forbidden_fields() {
    let (up, mut seen, _) = recording(Arc::new(|_| ok_with(b"ok", "")), false).await;
    let (proxy, addr) = proxy_to(http_upstream(up), None).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\
          Trailer: X-Checksum, Content-Length, Authorization, X-Hop\r\n\
          Connection: keep-alive, X-Hop\r\n\r\n\
          5\r\nhello\r\n6\r\n world\r\n0\r\n",
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    tcp.write_all(
        b"X-Checksum: sha-256=abc\r\nContent-Length: 11\r\nAuthorization: Basic eDp5\r\n\
          X-Hop: 1\r\nTransfer-Encoding: gzip\r\nSet-Cookie: a=1\r\nHost: evil\r\n\
          X-Other: two\r\n\r\n",
    )
    .await
    .unwrap();
    let mut rx = BytesMut::new();
    let got = read_response(&mut tcp, &mut rx, "POST").await;
    assert_eq!((got.status, &got.body[..]), (200, &b"ok"[..]));
    let s = next_seen(&mut seen).await;
    assert_eq!(s.body, b"hello world");
    assert_eq!(s.header("transfer-encoding"), Some("chunked"));
    assert_eq!(
        s.header("trailer"),
        Some("X-Checksum"),
        "announced, reduced to what is forwarded:\n{}",
        s.head
    );
    assert_eq!(
        s.trailers,
        pairs(&[("X-Checksum", "sha-256=abc"), ("X-Other", "two")])
    );

    // A Content-Length body carries no trailers: no `Trailer` goes on.
    let got = exchange_on(
        &mut tcp,
        &mut rx,
        b"PUT /x HTTP/1.1\r\nHost: x\r\nTrailer: X-Checksum\r\nContent-Length: 2\r\n\r\nhi",
    )
    .await;
    assert_eq!(got.status, 200);
    let s = next_seen(&mut seen).await;
    assert_eq!(s.body, b"hi");
    assert!(!s.has("trailer"), "{}", s.head);
    assert!(s.trailers.is_empty());
    proxy.stop().await;
}

#[tokio::test]
async fn response_trailers_reach_the_client_without_forbidden_fields() {
    let answer: Answer = Arc::new(|_| {
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\
          Trailer: X-Checksum, Set-Cookie, Content-Length, X-Hop\r\nConnection: X-Hop\r\n\r\n\
          5\r\nhello\r\n0\r\nX-Checksum: sha-256=def\r\nSet-Cookie: s=1\r\n\
          Content-Length: 5\r\nX-Hop: 1\r\nWWW-Authenticate: Basic\r\nDate: today\r\n\
          Content-Type: text/html\r\nX-Other: 3\r\n\r\n"
            .to_vec()
    });
    let (up, _seen, _) = recording(answer, false).await;
    let (proxy, addr) = proxy_to(http_upstream(up), None).await;
    let read_all = |raw: &'static [u8]| async move {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(raw).await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(T, tcp.read_to_end(&mut out))
            .await
            .expect("the response in time")
            .unwrap();
        String::from_utf8(out).unwrap()
    };

    let raw = read_all(b"GET /t HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert!(
        head.contains("\r\nTransfer-Encoding: chunked\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nTrailer: X-Checksum\r\n"), "{head}");
    // Exactly the allowed fields after the last chunk.
    assert!(
        body.ends_with("\r\n0\r\nX-Checksum: sha-256=def\r\nX-Other: 3\r\n\r\n"),
        "{body:?}"
    );
    let mut rx = BytesMut::from(body.as_bytes());
    let mut d = BodyDecoder::new(BodyKind::Chunked, &limits()).unwrap();
    assert_eq!(
        d.decode(&mut rx).unwrap(),
        Some(BodyEvent::Data("hello".into()))
    );
    let Some(BodyEvent::End { trailers }) = d.decode(&mut rx).unwrap() else {
        panic!("no end in {body:?}");
    };
    let trailers: Vec<_> = trailers.iter().collect();
    assert_eq!(trailers, [("X-Checksum", "sha-256=def"), ("X-Other", "3")]);

    // HTTP/1.0: the body ends with the connection; no trailers, no `Trailer`.
    let raw = read_all(b"GET /t HTTP/1.0\r\nHost: x\r\n\r\n").await;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    assert!(
        !head.contains("Transfer-Encoding") && !head.contains("Trailer"),
        "{head}"
    );
    assert_eq!(body, "hello");
    proxy.stop().await;
}

#[tokio::test]
async fn upstream_down_is_502_and_silent_upstream_is_504() {
    let (proxy, addr) = proxy_to(http_upstream(closed_port().await), None).await;
    let got = request(
        addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(got.status, 502, "{}", got.head);
    let text = String::from_utf8_lossy(&got.body);
    assert!(text.contains("upstream unavailable"), "{text}");
    proxy.stop().await;

    // Accepts and reads, never answers.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = l.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    let mut upstream = http_upstream(up);
    upstream.response_timeout = Duration::from_millis(300);
    let (proxy, addr) = proxy_to(upstream, None).await;
    let started = std::time::Instant::now();
    let got = request(
        addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(got.status, 504, "{}", got.head);
    assert!(started.elapsed() >= Duration::from_millis(300));
    proxy.stop().await;
}

#[tokio::test]
async fn websocket_upgrade_on_the_same_listener_still_bridges() {
    let echo = tcp_echo().await;
    let (up, mut seen, _) = recording(Arc::new(|_| ok_with(b"page", "")), false).await;
    let (proxy, addr) = proxy_to(http_upstream(up), Some(echo)).await;

    let mut ws = common::open(addr, "/websockify", &["binary"]).await;
    assert_eq!(ws.protocol(), Some("binary"));
    ws.send_binary(&b"through the bridge"[..]).await.unwrap();
    let echoed = tokio::time::timeout(T, ws.recv())
        .await
        .expect("echo in time")
        .unwrap()
        .unwrap();
    assert_eq!(echoed.as_bytes(), b"through the bridge");

    let got = request(
        addr,
        b"GET /websockify HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!((got.status, &got.body[..]), (200, &b"page"[..]));
    let s = next_seen(&mut seen).await;
    assert_eq!(s.target, "/websockify");
    assert!(
        seen.try_recv().is_err(),
        "the upgrade did not reach the HTTP upstream"
    );
    assert_eq!(proxy.total_bridges(), 1);
    ws.close(ws_client::CloseCode::NORMAL, "").await.unwrap();
    proxy.stop().await;
}

#[tokio::test]
async fn upstream_connections_are_reused_and_closed_ones_replaced() {
    let answer: Answer = Arc::new(|s: &Seen| ok_with(s.target.as_bytes(), ""));
    let (up, mut seen, accepted) = recording(answer.clone(), false).await;
    let (proxy, addr) = proxy_to(http_upstream(up), None).await;
    for i in 0..3 {
        let raw = format!("GET /r{i} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let got = request(addr, raw.as_bytes()).await;
        assert_eq!(got.body, format!("/r{i}").into_bytes());
        let _ = next_seen(&mut seen).await;
        // The connection goes back to the pool once its body has been relayed.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one upstream connection"
    );
    proxy.stop().await;

    // An upstream that closes every connection after one answer (without saying so).
    let (up, mut seen, accepted) = recording(answer, true).await;
    let (proxy, addr) = proxy_to(http_upstream(up), None).await;
    for i in 0..3 {
        let raw = format!("GET /c{i} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let got = request(addr, raw.as_bytes()).await;
        assert_eq!(got.status, 200, "{}", got.head);
        assert_eq!(got.body, format!("/c{i}").into_bytes());
        let _ = next_seen(&mut seen).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
    proxy.stop().await;
}

#[tokio::test]
async fn curl_through_the_proxy() {
    if !runs("curl").await {
        missing("curl is not installed (apt-get install -y curl)");
        return;
    }
    // Echoes the request body, chunked, in two pieces, with trailers.
    let answer: Answer = Arc::new(|s: &Seen| {
        let (a, b) = s.body.split_at(s.body.len() / 2);
        let mut r = format!(
            "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nX-Method: {}\r\n\
             Trailer: X-Echo-Length, Set-Cookie\r\n\r\n",
            s.method
        )
        .into_bytes();
        for piece in [a, b] {
            if !piece.is_empty() {
                r.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                r.extend_from_slice(piece);
                r.extend_from_slice(b"\r\n");
            }
        }
        r.extend_from_slice(
            format!(
                "0\r\nX-Echo-Length: {}\r\nSet-Cookie: t=1\r\n\r\n",
                s.body.len()
            )
            .as_bytes(),
        );
        r
    });
    let (up, mut seen, _) = recording(answer, false).await;
    let (proxy, addr) = proxy_to(http_upstream(up), None).await;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.bin");
    let output = dir.path().join("out.bin");
    let data = noise(777_777, 3);
    std::fs::write(&input, &data).unwrap();
    let url = format!("http://{addr}/echo?via=curl");
    let mut data_arg = std::ffi::OsString::from("@");
    data_arg.push(&input);
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "30",
                "-H",
                "Transfer-Encoding: chunked",
            ])
            .args([
                "-H",
                "X-Forwarded-For: 192.0.2.1",
                "-w",
                "%{http_code}",
                "-o",
            ])
            .arg(&output)
            .arg("--data-binary")
            .arg(&data_arg)
            .arg(&url)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("curl in time")
    .expect("curl runs");
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "201");
    let back = std::fs::read(&output).unwrap();
    assert!(
        back == data,
        "curl got the body back ({} bytes)",
        back.len()
    );
    let s = next_seen(&mut seen).await;
    assert_eq!(s.method, "POST");
    assert_eq!(s.target, "/echo?via=curl");
    assert_eq!(s.header("x-forwarded-for"), Some("192.0.2.1, 127.0.0.1"));
    assert!(
        s.header("user-agent")
            .is_some_and(|u| u.starts_with("curl/"))
    );

    // And a plain GET with the status, a header and the trailers shown by curl (after the
    // head's empty line).
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "30", "-D", "-", "-o", "/dev/null"])
        .arg(format!("http://{addr}/empty"))
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    let (head, trailers) = shown.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("http/1.1 201"), "{head}");
    assert!(head.contains("x-method: get"), "{head}");
    assert!(head.contains("\r\ntrailer: x-echo-length\r\n"), "{head}");
    assert_eq!(trailers.trim_end(), "x-echo-length: 0", "{shown}");
    proxy.stop().await;
}

/// `raw` on the client connection `s` (kept alive), and the response.
async fn exchange_on(s: &mut TcpStream, rx: &mut BytesMut, raw: &[u8]) -> Got {
    s.write_all(raw).await.unwrap();
    let end = raw.iter().position(|&b| b == b' ').unwrap();
    let method = String::from_utf8(raw[..end].to_vec()).unwrap();
    read_response(s, rx, &method).await
}

/// A `method` request for `target` with a Content-Length `body`, kept alive.
fn with_body(method: &str, target: &str, body: &[u8]) -> Vec<u8> {
    let mut raw = format!(
        "{method} {target} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(body);
    raw
}

/// Answers with the request's method, target and body length.
fn describe(s: &Seen) -> Vec<u8> {
    ok_with(
        format!("{} {} {}", s.method, s.target, s.body.len()).as_bytes(),
        "",
    )
}

#[tokio::test]
async fn requests_with_bodies_reuse_one_upstream_connection() {
    let (up, mut seen, accepted) = recording(Arc::new(describe), false).await;
    let (proxy, addr) = proxy_to(http_upstream(up), None).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut rx = BytesMut::new();
    let small = noise(1000, 1);
    let large = noise(300_000, 2);
    let requests: Vec<(Vec<u8>, &[u8])> = vec![
        (with_body("POST", "/a", &small), &small),
        (with_body("POST", "/b", &large), &large),
        (with_body("PUT", "/c", &small), &small),
        (with_body("PUT", "/d", &large), &large),
        (
            b"POST /e HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
              5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
                .to_vec(),
            b"hello world",
        ),
        (b"GET /f HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), b""),
    ];
    for (raw, body) in &requests {
        let got = exchange_on(&mut s, &mut rx, raw).await;
        assert_eq!(got.status, 200, "{}", got.head);
        let u = next_seen(&mut seen).await;
        assert!(u.body == *body, "{} {}: body intact", u.method, u.target);
        assert_eq!(
            got.body,
            format!("{} {} {}", u.method, u.target, body.len()).into_bytes()
        );
        // The connection goes back to the pool once its response has been relayed.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "every request, with or without a body, went over one upstream connection"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn a_post_after_the_upstream_closed_the_idle_connection_goes_to_a_new_one() {
    // The upstream closes each connection after one answer, without saying so; the proxy
    // notices before it sends (a POST would not be sent again).
    let (up, mut seen, accepted) = recording(Arc::new(describe), true).await;
    let (proxy, addr) = proxy_to(http_upstream(up), None).await;
    for i in 0..3 {
        let got = request(addr, &with_body("POST", &format!("/p{i}"), b"data")).await;
        assert_eq!(got.status, 200, "{}", got.head);
        assert_eq!(got.body, format!("POST /p{i} 4").into_bytes());
        let _ = next_seen(&mut seen).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
    proxy.stop().await;
}

/// An upstream that answers the first request on each connection and drops the connection,
/// unanswered, on the second: a reused connection that fails once the request is out.
async fn drops_second_request() -> (SocketAddr, mpsc::UnboundedReceiver<Seen>, Arc<AtomicUsize>) {
    recording(
        Arc::new(|s: &Seen| if s.nth == 1 { Vec::new() } else { describe(s) }),
        false,
    )
    .await
}

#[tokio::test]
async fn a_small_idempotent_request_is_sent_again_when_a_reused_connection_fails() {
    let (up, mut seen, accepted) = drops_second_request().await;
    let (proxy, addr) = proxy_to(http_upstream(up), None).await;
    let body = noise(64 * 1024, 5); // the largest body kept for a second attempt
    let got = request(addr, &with_body("PUT", "/one", &body)).await;
    assert_eq!(got.status, 200, "{}", got.head);
    let _ = next_seen(&mut seen).await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    let got = request(addr, &with_body("PUT", "/two", &body)).await;
    assert_eq!(got.status, 200, "{}", got.head);
    assert_eq!(got.body, format!("PUT /two {}", body.len()).into_bytes());
    let dropped = next_seen(&mut seen).await;
    let again = next_seen(&mut seen).await;
    assert_eq!((dropped.target.as_str(), dropped.nth), ("/two", 1));
    assert_eq!((again.target.as_str(), again.nth), ("/two", 0));
    assert!(
        dropped.body == body && again.body == body,
        "the whole body both times"
    );
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        2,
        "reused, then one new connection"
    );

    // Without a body too.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let got = request(addr, b"DELETE /three HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(got.status, 200, "{}", got.head);
    assert_eq!(next_seen(&mut seen).await.nth, 1);
    assert_eq!(next_seen(&mut seen).await.nth, 0);
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
    proxy.stop().await;
}

#[tokio::test]
async fn a_post_or_a_streamed_body_is_not_replayed_when_a_reused_connection_fails() {
    let (up, mut seen, accepted) = drops_second_request().await;
    let (proxy, addr) = proxy_to(http_upstream(up), None).await;
    let small = noise(100, 6);
    let large = noise(64 * 1024 + 1, 7); // one byte over what is kept: streamed
    for (method, body) in [("POST", &small), ("PUT", &large)] {
        let got = request(addr, &with_body(method, "/first", body)).await;
        assert_eq!(got.status, 200, "{}", got.head);
        let _ = next_seen(&mut seen).await;
        tokio::time::sleep(Duration::from_millis(100)).await;

        let got = request(addr, &with_body(method, "/second", body)).await;
        assert_eq!(got.status, 502, "{method}: {}", got.head);
        let s = next_seen(&mut seen).await;
        assert_eq!((s.target.as_str(), s.nth), ("/second", 1));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(seen.try_recv().is_err(), "{method} sent once, not replayed");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    proxy.stop().await;
}

#[tokio::test]
async fn connect_is_405_with_allow() {
    let (up, mut seen, accepted) = recording(Arc::new(describe), false).await;
    let (proxy, addr) = proxy_to(http_upstream(up), None).await;
    let got = request(
        addr,
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(got.status, 405, "{}", got.head);
    let allow: Vec<&str> = got
        .header("allow")
        .unwrap_or_else(|| panic!("no Allow on 405:\n{}", got.head))
        .split(',')
        .map(str::trim)
        .collect();
    for m in ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"] {
        assert!(allow.contains(&m), "{m} missing from Allow: {allow:?}");
    }
    assert!(!allow.contains(&"CONNECT"), "{allow:?}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(seen.try_recv().is_err(), "CONNECT not forwarded");
    assert_eq!(accepted.load(Ordering::SeqCst), 0);
    proxy.stop().await;
}
