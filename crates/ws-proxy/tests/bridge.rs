//! Relaying over real TCP: subprotocols, close mapping, TLS and WebSocket upstreams.

mod common;

use std::time::Duration;

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use ws_client::{CloseCode, Message};
use ws_proxy::{ProxyConfig, Target};

async fn next(ws: &mut ws_client::WebSocket) -> Message {
    tokio::time::timeout(T, ws.recv())
        .await
        .expect("message in time")
        .expect("a message")
        .expect("no error")
}

/// Reads messages until `want` bytes arrived.
async fn collect(ws: &mut ws_client::WebSocket, want: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while out.len() < want {
        out.extend_from_slice(next(ws).await.as_bytes());
    }
    out
}

async fn end(ws: &mut ws_client::WebSocket) -> ws_client::CloseInfo {
    loop {
        match tokio::time::timeout(T, ws.recv())
            .await
            .expect("close in time")
        {
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("error instead of close: {e}"),
            None => return ws.close_info().expect("close info"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_subprotocol_relays_binary_and_text_payloads() {
    let backend = tcp_echo().await;
    let (proxy, addr) = start(config(Some(tcp_target(backend)))).await;
    let mut ws = open(addr, "/", &["chat", "binary"]).await;
    assert_eq!(ws.protocol(), Some("binary"));
    ws.send_binary(&b"\x00\x01binary"[..]).await.unwrap();
    assert_eq!(collect(&mut ws, 8).await, b"\x00\x01binary");
    ws.send_text("text payload").await.unwrap();
    let got = next(&mut ws).await;
    assert!(!got.is_text(), "backend bytes come back as binary");
    assert_eq!(got.as_bytes(), b"text payload");
    assert_eq!(proxy.active_bridges(), 1);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_subprotocol_means_binary() {
    let backend = tcp_echo().await;
    let (proxy, addr) = start(config(Some(tcp_target(backend)))).await;
    let mut ws = open(addr, "/anything", &[]).await;
    assert_eq!(ws.protocol(), None);
    ws.send_binary(&b"abc"[..]).await.unwrap();
    let got = next(&mut ws).await;
    assert!(!got.is_text());
    assert_eq!(got.as_bytes(), b"abc");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base64_subprotocol_carries_text_both_ways() {
    let backend = tcp_echo().await;
    let (proxy, addr) = start(config(Some(tcp_target(backend)))).await;
    let mut ws = open(addr, "/", &["base64"]).await;
    assert_eq!(ws.protocol(), Some("base64"));
    let raw = [0u8, 255, 10, 13, 200, 1];
    ws.send_text(B64.encode(raw)).await.unwrap();
    let mut got = Vec::new();
    while got.len() < raw.len() {
        let m = next(&mut ws).await;
        let text = m.as_text().expect("base64 mode answers in text frames");
        got.extend(B64.decode(text).unwrap());
    }
    assert_eq!(got, raw);
    // Invalid base64 closes with 1007.
    ws.send_text("@@not base64@@").await.unwrap();
    assert_eq!(end(&mut ws).await.code, CloseCode::INVALID_PAYLOAD);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_eof_sends_pending_data_then_close_1000() {
    let (backend, mut accepted) = tcp_accepting().await;
    let (proxy, addr) = start(config(Some(tcp_target(backend)))).await;
    let mut ws = open(addr, "/", &["binary"]).await;
    let mut s = accepted.recv().await.unwrap();
    let big = vec![7u8; 300_000];
    s.write_all(b"hello ").await.unwrap();
    s.write_all(&big).await.unwrap();
    drop(s);
    let mut got = Vec::new();
    let info = loop {
        match tokio::time::timeout(T, ws.recv()).await.unwrap() {
            Some(Ok(m)) => {
                assert!(m.len() <= ProxyConfig::DEFAULT_READ_CHUNK);
                got.extend_from_slice(m.as_bytes());
            }
            Some(Err(e)) => panic!("{e}"),
            None => break ws.close_info().unwrap(),
        }
    };
    assert_eq!(got.len(), 6 + big.len(), "every byte before the close");
    assert!(got.starts_with(b"hello "));
    assert_eq!(info.code, CloseCode::NORMAL);
    eventually(|| proxy.active_bridges() == 0).await;
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_failure_closes_1011_with_a_reason() {
    let dead = closed_port().await;
    let (proxy, addr) = start(config(Some(tcp_target(dead)))).await;
    let mut ws = open(addr, "/", &["binary"]).await;
    let info = end(&mut ws).await;
    assert_eq!(info.code, CloseCode::INTERNAL);
    assert!(
        info.reason.starts_with("backend unavailable"),
        "{}",
        info.reason
    );
    assert_eq!(proxy.failed_connects(), 1);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_failure_before_upgrade_is_http_502() {
    let dead = closed_port().await;
    let mut c = config(Some(tcp_target(dead)));
    c.connect_before_upgrade = true;
    let (proxy, addr) = start(c).await;
    let err = ws_client::connect(format!("ws://{addr}/"), client(&["binary"]))
        .await
        .unwrap_err();
    match err {
        ws_client::Error::Http(r) => assert_eq!(r.status, 502),
        other => panic!("expected HTTP 502, got {other}"),
    }
    // And with a live backend the early connection is used.
    let backend = tcp_echo().await;
    let mut c = config(Some(tcp_target(backend)));
    c.connect_before_upgrade = true;
    let (proxy2, addr2) = start(c).await;
    let mut ws = open(addr2, "/", &["binary"]).await;
    ws.send_binary(&b"early"[..]).await.unwrap();
    assert_eq!(collect(&mut ws, 5).await, b"early");
    proxy.stop().await;
    proxy2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_close_shuts_down_the_backend_write_side_after_the_data() {
    let (backend, mut accepted) = tcp_accepting().await;
    let (proxy, addr) = start(config(Some(tcp_target(backend)))).await;
    let ws = open(addr, "/", &["binary"]).await;
    let mut s = accepted.recv().await.unwrap();
    for i in 0..50u8 {
        ws.send_binary(vec![i; 1000]).await.unwrap();
    }
    let info = ws.close(CloseCode::NORMAL, "bye").await.unwrap();
    assert_eq!(info.code, CloseCode::NORMAL);
    // The backend reads every byte, then EOF (our FIN) while its own side is still open.
    let got = read_to_end(&mut s).await;
    assert_eq!(got.len(), 50_000);
    assert!(
        got.chunks(1000)
            .enumerate()
            .all(|(i, c)| c.iter().all(|&b| b == i as u8))
    );
    // The backend closes its side: the bridge is torn down.
    drop(s);
    eventually(|| proxy.active_bridges() == 0).await;
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_never_closes_is_dropped_after_the_drain_timeout() {
    let (backend, mut accepted) = tcp_accepting().await;
    let mut c = config(Some(tcp_target(backend)));
    c.drain_timeout = Duration::from_millis(300);
    let (proxy, addr) = start(c).await;
    let ws = open(addr, "/", &["binary"]).await;
    let s = accepted.recv().await.unwrap();
    eventually(|| proxy.active_bridges() == 1).await;
    ws.close(CloseCode::NORMAL, "").await.unwrap();
    // The backend keeps its socket open and never reads: still torn down.
    let started = std::time::Instant::now();
    eventually(|| proxy.active_bridges() == 0).await;
    assert!(started.elapsed() < Duration::from_secs(4));
    drop(s);
    proxy.stop().await;
}

/// Sends `n` 64 KiB messages while reading the echoes concurrently; checks order and content.
/// The client keeps its default limits: it goes on reading while its own sends are backed up
/// (as a browser does), so the proxy's backpressure cannot deadlock it.
async fn bulk_echo(backend: std::net::SocketAddr, n: usize) -> Result<(), String> {
    let (proxy, addr) = start(config(Some(tcp_target(backend)))).await;
    let cc = client(&["binary"]);
    let ws = tokio::time::timeout(T, ws_client::connect(format!("ws://{addr}/"), cc))
        .await
        .expect("connect in time")
        .expect("connect");
    let (mut reader, writer) = ws.split();
    const SIZE: usize = 64 * 1024;
    let send = tokio::spawn(async move {
        for i in 0..n {
            if writer
                .send_binary(vec![(i % 251) as u8; SIZE])
                .await
                .is_err()
            {
                break;
            }
        }
        writer
    });
    let mut total = 0usize;
    let mut got = Vec::new();
    let result = tokio::time::timeout(Duration::from_secs(30), async {
        while total < n * SIZE {
            let m = reader.recv().await.expect("stream open").expect("no error");
            total += m.len();
            got.extend_from_slice(m.as_bytes());
        }
    })
    .await;
    send.abort();
    proxy.stop().await;
    if result.is_err() {
        return Err(format!("stalled after {total} of {} bytes", n * SIZE));
    }
    for (i, chunk) in got.chunks(SIZE).enumerate() {
        assert!(
            chunk.iter().all(|&b| b == (i % 251) as u8),
            "message {i} intact and in order"
        );
    }
    Ok(())
}

/// An echo backend whose reading never waits for its writing (unbounded internal buffer).
async fn concurrent_echo() -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let (mut r, mut w) = s.into_split();
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                while let Ok(n) = r.read(&mut buf).await {
                    if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            });
            tokio::spawn(async move {
                while let Some(chunk) = rx.recv().await {
                    if w.write_all(&chunk).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_echo_both_ways_in_order() {
    // 25 MiB up while reading 25 MiB down, through bounded buffers.
    bulk_echo(concurrent_echo().await, 400).await.unwrap();
}

/// A backend that stops reading while its writes are blocked (`tokio::io::copy`), with a
/// client that sends far ahead of what it reads: the proxy pauses reading the browser when
/// the upstream buffer is full, but keeps writing what the backend sends, so the cycle of
/// bounded buffers never locks up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_echo_through_a_copy_backend() {
    bulk_echo(tcp_echo().await, 400).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_backend_with_ca_and_sni() {
    let pki = ws_tls::test_certs::TestPki::generate();
    let server_tls = ws_tls::server_config(&pki.server_config()).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(server_tls);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = [0u8; 1024];
                while let Ok(n) = tls.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let mut reply = b"tls:".to_vec();
                    reply.extend_from_slice(&buf[..n]);
                    if tls.write_all(&reply).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    // The certificate names localhost and 127.0.0.1; connect by IP, verify as "localhost".
    let mut c = config(Some(
        Target::parse(&format!("tls://127.0.0.1:{port}")).unwrap(),
    ));
    c.backend_tls = pki.client_config();
    c.backend_tls_server_name = Some("localhost".into());
    let (proxy, addr) = start(c).await;
    let mut ws = open(addr, "/", &["binary"]).await;
    ws.send_binary(&b"secret"[..]).await.unwrap();
    assert_eq!(collect(&mut ws, 10).await, b"tls:secret");
    proxy.stop().await;

    // Without the CA the backend is not trusted: Close 1011.
    let mut c = config(Some(
        Target::parse(&format!("tls://localhost:{port}")).unwrap(),
    ));
    c.backend_tls.webpki_roots = true;
    let (proxy, addr) = start(c).await;
    let mut ws = open(addr, "/", &["binary"]).await;
    let info = end(&mut ws).await;
    assert_eq!(info.code, CloseCode::INTERNAL);
    assert!(info.reason.contains("TLS"), "{}", info.reason);
    proxy.stop().await;
}

/// A ws-server backend: echoes with a prefix, reports the subprotocol and forwarded header,
/// closes with 4000 on "close".
struct WsBackend;

impl ws_server::Handler for WsBackend {
    async fn on_connect(&self, ctx: &mut ws_server::Ctx<'_>) {
        let info = ctx.info().clone();
        let hello = format!(
            "protocol={} xff={}",
            info.protocol().unwrap_or("-"),
            info.header("x-forwarded-for").unwrap_or("-")
        );
        let _ = ctx.send(Message::text(hello));
    }

    async fn on_message(&self, ctx: &mut ws_server::Ctx<'_>, msg: Message) {
        if msg.as_text() == Some("close") {
            let _ = ctx.close(CloseCode::from_u16(4000), "backend says bye");
            return;
        }
        let _ = ctx.send(msg);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upstream_message_by_message() {
    let mut bc = ws_server::ServerConfig::new(vec![ws_server::Binding::plain(
        "127.0.0.1:0".parse().unwrap(),
    )]);
    bc.protocols = vec!["chat.v2".into()];
    let backend = ws_server::Server::start(bc, WsBackend).await.unwrap();
    let burl = format!("ws://{}/app", backend.local_addrs()[0]);
    let (proxy, addr) = start(config(Some(Target::parse(&burl).unwrap()))).await;
    let mut ws = open(addr, "/", &["chat.v1", "chat.v2"]).await;
    assert_eq!(
        ws.protocol(),
        Some("chat.v2"),
        "the backend's choice is passed back"
    );
    let hello = next(&mut ws).await;
    assert_eq!(hello.as_text(), Some("protocol=chat.v2 xff=127.0.0.1"));
    ws.send_text("text stays text").await.unwrap();
    let m = next(&mut ws).await;
    assert_eq!(m.as_text(), Some("text stays text"));
    ws.send_binary(vec![1u8; 100_000]).await.unwrap();
    let m = next(&mut ws).await;
    assert!(!m.is_text());
    assert_eq!(m.len(), 100_000, "one message, not chunks");
    ws.send_text("close").await.unwrap();
    let info = end(&mut ws).await;
    assert_eq!(info.code, CloseCode::from_u16(4000));
    assert_eq!(info.reason, "backend says bye");
    eventually(|| proxy.active_bridges() == 0).await;

    // The browser's close goes to the backend.
    let ws2 = open(addr, "/", &[]).await;
    eventually(|| backend.count() == 1).await;
    ws2.close(CloseCode::from_u16(4001), "from browser")
        .await
        .unwrap();
    eventually(|| backend.count() == 0).await;
    proxy.stop().await;
    backend.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upstream_unavailable_is_502() {
    let dead = closed_port().await;
    let (proxy, addr) = start(config(Some(
        Target::parse(&format!("ws://{dead}/")).unwrap(),
    )))
    .await;
    let err = ws_client::connect(format!("ws://{addr}/"), client(&[]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ws_client::Error::Http(ref r) if r.status == 502),
        "{err}"
    );
    proxy.stop().await;
}
