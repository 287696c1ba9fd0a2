//! Routing (path, token file, callback), hooks, PROXY protocol headers.

mod common;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use ws_client::{CloseCode, Message};
use ws_proxy::{Hooks, ProxyProtocol, ProxyServer, Target, V2_SIGNATURE};
use ws_server::{ConnInfo, Disconnect};

/// A TCP backend that greets every connection with its name.
async fn named(name: &'static str) -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let _ = s.write_all(name.as_bytes()).await;
                let mut buf = [0u8; 64];
                let _ = s.read(&mut buf).await;
            });
        }
    });
    addr
}

async fn greeting(addr: SocketAddr, path: &str) -> String {
    let mut ws = open(addr, path, &["binary"]).await;
    let m = tokio::time::timeout(T, ws.recv())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    String::from_utf8(m.as_bytes().to_vec()).unwrap()
}

async fn status(addr: SocketAddr, path: &str) -> u16 {
    match ws_client::connect(format!("ws://{addr}{path}"), client(&["binary"])).await {
        Ok(_) => 101,
        Err(ws_client::Error::Http(r)) => r.status,
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_by_path_with_404_for_unknown_paths() {
    let (a, b) = (named("A").await, named("B").await);
    let mut c = config(None);
    c.paths = vec![
        ("/vnc1".into(), tcp_target(a)),
        ("/vnc2".into(), tcp_target(b)),
    ];
    let (proxy, addr) = start(c).await;
    assert_eq!(greeting(addr, "/vnc1").await, "A");
    assert_eq!(greeting(addr, "/vnc2?x=1").await, "B");
    assert_eq!(status(addr, "/vnc3").await, 404);
    proxy.stop().await;
    // With a fixed target as the fallback.
    let mut c = config(Some(tcp_target(b)));
    c.paths = vec![("/a".into(), tcp_target(a))];
    let (proxy, addr) = start(c).await;
    assert_eq!(greeting(addr, "/a").await, "A");
    assert_eq!(greeting(addr, "/other").await, "B");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_by_token_file_and_follows_its_changes() {
    let (a, b) = (named("A").await, named("B").await);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.cfg");
    std::fs::write(&file, format!("# websockify format\nalpha: {a}\n")).unwrap();
    let mut c = config(None);
    c.token_file = Some(file.clone());
    let (proxy, addr) = start(c).await;
    assert_eq!(greeting(addr, "/websockify?token=alpha").await, "A");
    assert_eq!(status(addr, "/?token=beta").await, 404, "unknown token");
    assert_eq!(status(addr, "/").await, 404, "no token");
    std::fs::write(&file, format!("alpha: {b}\nbeta: tcp://{a}\n# changed\n")).unwrap();
    assert_eq!(greeting(addr, "/?token=alpha").await, "B", "reloaded");
    assert_eq!(greeting(addr, "/?token=beta").await, "A");
    proxy.stop().await;
    // A missing file is a start error.
    let mut c = config(None);
    c.token_file = Some(dir.path().join("missing"));
    assert!(ProxyServer::start(c).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_by_callback() {
    let (a, b) = (named("A").await, named("B").await);
    let mut c = config(None);
    c.resolver = Some(Arc::new(move |req: &ws_server::Request| {
        match req.header("x-tenant") {
            Some("a") => Some(tcp_target(a)),
            _ if req.path() == "/b" => Some(tcp_target(b)),
            _ => None,
        }
    }));
    let (proxy, addr) = start(c).await;
    let mut cc = client(&["binary"]);
    cc.headers.push(("X-Tenant".into(), "a".into()));
    let mut ws = ws_client::connect(format!("ws://{addr}/b"), cc)
        .await
        .unwrap();
    let m = ws.recv().await.unwrap().unwrap();
    assert_eq!(m.as_bytes(), b"A");
    assert_eq!(greeting(addr, "/b").await, "B");
    assert_eq!(status(addr, "/c").await, 404);
    proxy.stop().await;
}

#[derive(Default)]
struct Recorder {
    connects: AtomicU64,
    disconnects: AtomicU64,
    errors: AtomicU64,
}

struct TestHooks(Arc<Recorder>);

impl Hooks for TestHooks {
    fn on_connect(&self, info: &ConnInfo, _target: &Target) -> bool {
        self.0.connects.fetch_add(1, Ordering::Relaxed);
        info.path() != "/refuse"
    }

    fn on_client_message(&self, _info: &ConnInfo, msg: Message) -> Option<Message> {
        match msg.as_bytes() {
            b"drop" => None,
            bytes => Some(Message::binary(bytes.to_ascii_uppercase())),
        }
    }

    fn on_backend_message(&self, _info: &ConnInfo, msg: Message) -> Option<Message> {
        let mut out = b"<".to_vec();
        out.extend_from_slice(msg.as_bytes());
        Some(Message::binary(out))
    }

    fn on_backend_error(&self, _info: Option<&ConnInfo>, _target: &Target, _error: &str) {
        self.0.errors.fetch_add(1, Ordering::Relaxed);
    }

    fn on_disconnect(&self, _info: &ConnInfo, _disconnect: &Disconnect) {
        self.0.disconnects.fetch_add(1, Ordering::Relaxed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_modify_drop_refuse_and_observe() {
    let (backend, mut accepted) = tcp_accepting().await;
    let rec = Arc::new(Recorder::default());
    let proxy =
        ProxyServer::start_with_hooks(config(Some(tcp_target(backend))), TestHooks(rec.clone()))
            .await
            .unwrap();
    let addr = proxy.local_addrs()[0];
    let mut ws = open(addr, "/", &["binary"]).await;
    let mut s = accepted.recv().await.unwrap();
    ws.send_binary(&b"drop"[..]).await.unwrap();
    ws.send_binary(&b"hello"[..]).await.unwrap();
    let mut buf = [0u8; 5];
    tokio::time::timeout(T, s.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        &buf, b"HELLO",
        "dropped message never arrives, the next one is changed"
    );
    s.write_all(b"x").await.unwrap();
    let m = tokio::time::timeout(T, ws.recv())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(m.as_bytes(), b"<x");
    ws.close(CloseCode::NORMAL, "").await.unwrap();
    eventually(|| rec.disconnects.load(Ordering::Relaxed) == 1).await;
    assert_eq!(rec.connects.load(Ordering::Relaxed), 1);

    // on_connect refusing: Close 1008.
    let mut ws = open(addr, "/refuse", &["binary"]).await;
    let _backend_side = accepted.recv().await.unwrap();
    let r = tokio::time::timeout(T, ws.recv()).await.unwrap();
    assert!(r.is_none());
    assert_eq!(ws.close_info().unwrap().code, CloseCode::POLICY);
    proxy.stop().await;

    // Backend errors are reported.
    let dead = closed_port().await;
    let proxy =
        ProxyServer::start_with_hooks(config(Some(tcp_target(dead))), TestHooks(rec.clone()))
            .await
            .unwrap();
    let mut ws = open(proxy.local_addrs()[0], "/", &[]).await;
    assert!(tokio::time::timeout(T, ws.recv()).await.unwrap().is_none());
    assert_eq!(rec.errors.load(Ordering::Relaxed), 1);
    proxy.stop().await;
}

/// Parses a PROXY v1 line or v2 header from the start of a backend connection; returns the
/// source address and the rest of the bytes read.
async fn read_proxy_header(s: &mut tokio::net::TcpStream) -> (SocketAddr, SocketAddr, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 256];
    loop {
        let n = tokio::time::timeout(T, s.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "EOF before the header");
        buf.extend_from_slice(&chunk[..n]);
        if buf.starts_with(b"PROXY ") {
            if let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
                let line = std::str::from_utf8(&buf[..end]).unwrap().to_owned();
                let f: Vec<&str> = line.split(' ').collect();
                assert_eq!(f[1], "TCP4");
                let src = format!("{}:{}", f[2], f[4]).parse().unwrap();
                let dst = format!("{}:{}", f[3], f[5]).parse().unwrap();
                return (src, dst, buf[end + 2..].to_vec());
            }
        } else if buf.len() >= 16 {
            assert_eq!(&buf[..12], &V2_SIGNATURE);
            assert_eq!(buf[12], 0x21, "version 2, PROXY");
            assert_eq!(buf[13], 0x11, "TCP over IPv4");
            let len = u16::from_be_bytes([buf[14], buf[15]]) as usize;
            if buf.len() >= 16 + len {
                let a = &buf[16..16 + len];
                let src_ip = std::net::Ipv4Addr::new(a[0], a[1], a[2], a[3]);
                let dst_ip = std::net::Ipv4Addr::new(a[4], a[5], a[6], a[7]);
                let src = SocketAddr::from((src_ip, u16::from_be_bytes([a[8], a[9]])));
                let dst = SocketAddr::from((dst_ip, u16::from_be_bytes([a[10], a[11]])));
                return (src, dst, buf[16 + len..].to_vec());
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_protocol_v1_and_v2_carry_the_browser_address() {
    for version in [ProxyProtocol::V1, ProxyProtocol::V2] {
        let (backend, mut accepted) = tcp_accepting().await;
        let mut c = config(Some(tcp_target(backend)));
        c.proxy_protocol = Some(version);
        let (proxy, addr) = start(c).await;
        // A raw client, so that we know its own address.
        let mut raw = Raw::connect(addr, "/", Some("binary")).await;
        assert_eq!(raw.status(), 101);
        let browser = raw.tcp.local_addr().unwrap();
        raw.tcp.write_all(&Raw::frame(0x2, b"data")).await.unwrap();
        let mut s = accepted.recv().await.unwrap();
        let (src, dst, mut rest) = read_proxy_header(&mut s).await;
        assert_eq!(src, browser, "{version:?}");
        assert_eq!(dst, addr, "{version:?}");
        while rest.len() < 4 {
            let mut b = [0u8; 16];
            let n = tokio::time::timeout(T, s.read(&mut b))
                .await
                .unwrap()
                .unwrap();
            rest.extend_from_slice(&b[..n]);
        }
        assert_eq!(rest, b"data", "payload follows the header");
        // A raw client never answers the server's Close: drop it first, or stop() waits the
        // whole stop timeout (5 s) for a close handshake that cannot complete.
        drop(raw);
        drop(s);
        proxy.stop().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
