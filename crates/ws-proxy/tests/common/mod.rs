//! Backends and clients for the proxy tests: TCP echo/flood/sink servers, a raw WebSocket
//! client that can stop reading, proxy configurations on free ports.
#![allow(dead_code, unreachable_pub)]

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use ws_client::{ClientConfig, WebSocket};
use ws_proxy::{ProxyConfig, ProxyServer, Target, ws_server::Binding};

/// Reports a missing peer through `ws_testkit::peers` (a skip, or a failure under
/// `WSKIT_REQUIRE_PEERS=1`); returns false for the caller to pass on.
pub fn missing(why: &str) -> bool {
    ws_testkit::peers::missing(
        why,
        "the test file's header names it; bash .ci/run installs every peer",
    );
    false
}

/// The Python interpreter (`WSKIT_PYTHON`, default `python3`).
pub fn python() -> String {
    std::env::var("WSKIT_PYTHON").unwrap_or_else(|_| "python3".into())
}

pub const T: Duration = Duration::from_secs(10);

pub fn tcp_target(addr: SocketAddr) -> Target {
    Target::parse(&format!("tcp://{addr}")).unwrap()
}

/// A proxy configuration listening on a free port of 127.0.0.1.
pub fn config(target: Option<Target>) -> ProxyConfig {
    let mut c = ProxyConfig::default();
    c.target = target;
    c.server.bindings = vec![Binding::plain("127.0.0.1:0".parse().unwrap())];
    c
}

pub async fn start(config: ProxyConfig) -> (ProxyServer, SocketAddr) {
    let proxy = ProxyServer::start(config).await.unwrap();
    let addr = proxy.local_addrs()[0];
    (proxy, addr)
}

pub fn client(protocols: &[&str]) -> ClientConfig {
    let mut c = ClientConfig::default();
    c.protocols = protocols.iter().map(|p| (*p).to_owned()).collect();
    c
}

pub async fn open(addr: SocketAddr, path: &str, protocols: &[&str]) -> WebSocket {
    tokio::time::timeout(
        T,
        ws_client::connect(format!("ws://{addr}{path}"), client(protocols)),
    )
    .await
    .expect("connect in time")
    .expect("connect")
}

/// A TCP echo server (every connection), echoing with `tokio::io::copy` (which stops reading
/// while its writes are blocked).
pub async fn tcp_echo() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// A TCP server handing each accepted connection to the test.
pub async fn tcp_accepting() -> (SocketAddr, mpsc::UnboundedReceiver<TcpStream>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            if tx.send(s).is_err() {
                break;
            }
        }
    });
    (addr, rx)
}

/// A port nothing listens on.
pub async fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    addr
}

/// Reads until EOF (bounded by T).
pub async fn read_to_end(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    tokio::time::timeout(T, s.read_to_end(&mut out))
        .await
        .expect("EOF in time")
        .expect("read");
    out
}

/// A raw WebSocket client over TCP: handshake by hand, then frames by hand, so that the test
/// controls exactly when it reads.
pub struct Raw {
    pub tcp: TcpStream,
    pub head: String,
}

impl Raw {
    pub async fn connect(addr: SocketAddr, path: &str, protocol: Option<&str>) -> Self {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let proto = protocol
            .map(|p| format!("Sec-WebSocket-Protocol: {p}\r\n"))
            .unwrap_or_default();
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{proto}\r\n"
        );
        tcp.write_all(req.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            let n = tokio::time::timeout(T, tcp.read(&mut byte))
                .await
                .expect("head in time")
                .unwrap();
            if n == 0 {
                break;
            }
            head.push(byte[0]);
        }
        Self {
            tcp,
            head: String::from_utf8_lossy(&head).into_owned(),
        }
    }

    pub fn status(&self) -> u16 {
        self.head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    /// A masked binary frame (mask 0 for simplicity: still a valid masked frame).
    pub fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0x80 | opcode];
        let len = payload.len();
        if len < 126 {
            f.push(0x80 | len as u8);
        } else if len <= 0xffff {
            f.push(0x80 | 126);
            f.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            f.push(0x80 | 127);
            f.extend_from_slice(&(len as u64).to_be_bytes());
        }
        f.extend_from_slice(&[0, 0, 0, 0]);
        f.extend_from_slice(payload);
        f
    }
}

/// A counter shared with a spawned task.
pub fn counter() -> Arc<AtomicU64> {
    Arc::new(AtomicU64::new(0))
}

pub fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// Waits until `f` holds (up to T).
pub async fn eventually(mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + T;
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
