//! The whole server event surface through ws-proxy's Hooks (P-09), and the HTTP forwarding
//! hooks: before-forward rewrites and upstream choice (H-12), after-forward results (H-13).

mod common;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use ws_proxy::{
    ForwardError, ForwardErrorKind, ForwardRequest, Forwarded, Hooks, HttpUpstream, ProxyServer,
    Target,
    ws_server::{self, ConnInfo, Disconnect, Fragment, Request, Response, ws_frame::FragmentMode},
};

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn push(&self, s: impl Into<String>) {
        self.0.lock().unwrap().push(s.into());
    }
    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    fn has(&self, prefix: &str) -> bool {
        self.all().iter().any(|e| e.starts_with(prefix))
    }
}

struct Recorder {
    log: Log,
    /// The upstream the hook sends `X-Pick: b` requests to.
    b: HttpUpstream,
    dead: HttpUpstream,
}

impl Hooks for Recorder {
    fn on_startup(&self, addrs: &[SocketAddr]) {
        self.log.push(format!("startup {}", addrs.len()));
    }
    fn on_shutdown(&self) {
        self.log.push("shutdown");
    }
    fn on_tcp_connect(&self, _peer: SocketAddr, _local: SocketAddr) -> bool {
        self.log.push("tcp");
        true
    }
    fn on_handshake(&self, request: &Request, target: &Target) -> Result<(), u16> {
        self.log
            .push(format!("handshake {} {target}", request.path()));
        if request.path() == "/forbidden" {
            return Err(403);
        }
        Ok(())
    }
    fn on_connect(&self, _info: &ConnInfo, _target: &Target) -> bool {
        self.log.push("connect");
        true
    }
    fn on_fragment(&self, _info: &ConnInfo, fragment: &Fragment) {
        self.log.push(format!(
            "fragment {} {}",
            String::from_utf8_lossy(&fragment.payload),
            fragment.fin
        ));
    }
    fn on_ping(&self, _info: &ConnInfo, payload: &[u8]) {
        self.log
            .push(format!("ping {}", String::from_utf8_lossy(payload)));
    }
    fn on_error(&self, _peer: SocketAddr, info: Option<&ConnInfo>, error: &ws_server::Error) {
        self.log
            .push(format!("error conn={} {error}", info.is_some()));
    }
    fn on_disconnect(&self, _info: &ConnInfo, d: &Disconnect) {
        self.log.push(format!("disconnect {}", d.code.as_u16()));
    }
    fn on_before_forward(&self, request: &Request, f: &mut ForwardRequest) -> Option<Response> {
        self.log.push(format!("before {}", request.url()));
        match f.path.as_str() {
            "/local" => return Some(Response::text(200, "answered by the hook")),
            "/dead" => f.upstream = Some(self.dead.clone()),
            _ => {}
        }
        if let Some(rest) = f.path.strip_prefix("/old/") {
            f.path = format!("/new/{rest}");
        }
        f.query = Some(match f.query.take() {
            Some(q) => format!("{q}&added=1"),
            None => "added=1".to_owned(),
        });
        f.host = Some("rewritten.example".into());
        f.origin = Some("https://origin.example".into());
        f.set_header("X-Custom", "yes");
        f.remove_header("X-Secret");
        if f.header("x-pick") == Some("b") {
            f.upstream = Some(self.b.clone());
        }
        None
    }
    fn on_after_forward(
        &self,
        _request: &Request,
        f: &ForwardRequest,
        result: Result<&Forwarded, &ForwardError>,
    ) {
        match result {
            Ok(done) => self.log.push(format!(
                "after {} {} via {}",
                f.path, done.status, done.upstream.port
            )),
            Err(e) => self
                .log
                .push(format!("after {} error {:?} {}", f.path, e.kind, e.status)),
        }
    }
}

/// An HTTP upstream that answers every request with its name and the request head it got.
async fn echo_head(name: &'static str) -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if s.read(&mut b).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(b[0]);
                }
                let body = format!("{name}\n{}", String::from_utf8_lossy(&head));
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    addr
}

async fn get(addr: SocketAddr, path: &str, extra: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: proxy.test\r\nOrigin: https://client.example\r\nX-Secret: s3cret\r\n{extra}Connection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let out = read_to_end(&mut s).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text[9..12].parse().unwrap();
    (status, text.split_once("\r\n\r\n").unwrap().1.to_owned())
}

/// The proxy with its hooks, the log, and the ports of upstreams A (configured) and B.
async fn setup() -> (ProxyServer, SocketAddr, Log, (u16, u16)) {
    let a = echo_head("A").await;
    let b = echo_head("B").await;
    let dead = closed_port().await;
    let log = Log::default();
    let mut c = config(Some(tcp_target(tcp_echo().await)));
    c.http_upstream = Some(HttpUpstream::parse(&format!("http://{a}")).unwrap());
    c.server.ws.fragment_mode = FragmentMode::Both;
    let hooks = Recorder {
        log: log.clone(),
        b: HttpUpstream::parse(&format!("http://{b}")).unwrap(),
        dead: HttpUpstream::parse(&format!("http://{dead}")).unwrap(),
    };
    let proxy = ProxyServer::start_with_hooks(c, hooks).await.unwrap();
    let addr = proxy.local_addrs()[0];
    (proxy, addr, log, (a.port(), b.port()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn before_forward_rewrites_and_picks_the_upstream_after_forward_sees_the_result() {
    let (proxy, addr, log, (a_port, b_port)) = setup().await;

    let (status, body) = get(addr, "/old/page?x=1", "").await;
    assert_eq!(status, 200);
    let (name, head) = body.split_once('\n').unwrap();
    assert_eq!(name, "A", "the configured upstream");
    let head_lc = head.to_ascii_lowercase();
    assert!(
        head.starts_with("GET /new/page?x=1&added=1 HTTP/1.1\r\n"),
        "{head}"
    );
    assert!(
        head_lc.contains("\r\nhost: rewritten.example\r\n"),
        "{head}"
    );
    assert!(
        head_lc.contains("\r\norigin: https://origin.example\r\n"),
        "{head}"
    );
    assert!(head_lc.contains("\r\nx-custom: yes\r\n"), "{head}");
    assert!(!head_lc.contains("x-secret"), "{head}");
    assert!(!head.contains("client.example"), "{head}");
    // The forwarder's own fields still go on, from the client's request.
    assert!(
        head_lc.contains("\r\nx-forwarded-host: proxy.test\r\n"),
        "{head}"
    );

    // The hook picks another upstream.
    let (status, body) = get(addr, "/p", "X-Pick: b\r\n").await;
    assert_eq!(status, 200);
    assert!(body.starts_with("B\nGET /p?added=1 "), "{body}");

    // The hook answers itself: nothing forwarded, no after-forward.
    assert_eq!(
        get(addr, "/local", "").await,
        (200, "answered by the hook".into())
    );

    // An upstream that cannot be reached: 502, and the hook sees why.
    let (status, _) = get(addr, "/dead", "").await;
    assert_eq!(status, 502);

    let after: Vec<String> = log
        .all()
        .into_iter()
        .filter(|e| e.starts_with("after"))
        .collect();
    assert_eq!(
        after,
        [
            format!("after /new/page 200 via {a_port}"),
            format!("after /p 200 via {b_port}"),
            format!("after /dead error {:?} 502", ForwardErrorKind::Connect),
        ]
    );
    assert!(log.has("before /old/page?x=1"));
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_see_the_whole_server_event_surface() {
    let (proxy, addr, log, _) = setup().await;
    assert_eq!(log.all()[0], "startup 1");

    // Handshake refused by the hook.
    assert_eq!(
        Raw::connect(addr, "/forbidden", Some("binary"))
            .await
            .status(),
        403
    );
    assert!(log.has("handshake /forbidden tcp://"));

    // A bad upgrade (no key): on_error without a connection.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n")
        .await
        .unwrap();
    let _ = read_to_end(&mut s).await;
    eventually(|| log.has("error conn=false")).await;

    // A connection: fragments, a ping, a message echoed, a close.
    let mut raw = Raw::connect(addr, "/", Some("binary")).await;
    assert_eq!(raw.status(), 101);
    let mut first = Raw::frame(0x2, b"ab");
    first[0] &= 0x7f; // not FIN
    raw.tcp.write_all(&first).await.unwrap();
    raw.tcp.write_all(&Raw::frame(0x0, b"cd")).await.unwrap();
    raw.tcp.write_all(&Raw::frame(0x9, b"hi")).await.unwrap();
    let mut echo = [0u8; 6];
    tokio::time::timeout(T, async {
        // The pong first or the echo first: read until the echo shows up.
        loop {
            raw.tcp.read_exact(&mut echo[..2]).await.unwrap();
            let len = usize::from(echo[1]);
            let mut payload = vec![0u8; len];
            raw.tcp.read_exact(&mut payload).await.unwrap();
            if echo[0] == 0x82 {
                assert_eq!(payload, b"abcd");
                break;
            }
        }
    })
    .await
    .unwrap();
    raw.tcp
        .write_all(&Raw::frame(0x8, &1000u16.to_be_bytes()))
        .await
        .unwrap();
    eventually(|| log.has("disconnect 1000")).await;
    proxy.stop().await;

    let events = log.all();
    for e in [
        "tcp",
        "connect",
        "fragment ab false",
        "fragment cd true",
        "ping hi",
        "shutdown",
    ] {
        assert!(events.iter().any(|x| x == e), "{e} missing from {events:?}");
    }
}
