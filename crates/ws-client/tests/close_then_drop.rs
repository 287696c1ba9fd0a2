//! Closing a connection and dropping its handle at once must end the connection task quietly.
//! Before, the task's wait had no branch left to poll (no event to deliver, no command to take,
//! the reader gone) and `tokio::select!` panicked inside the spawned task, which a test only sees
//! through the panic hook. This file is its own test binary because the hook is process-wide.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use ws_client::{ClientConfig, CloseCode, connect};

use common::*;

static PANICS: AtomicUsize = AtomicUsize::new(0);

#[tokio::test]
async fn close_then_drop_ends_the_task_without_a_panic() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        previous(info);
    }));
    let (server, addr) = echo().await;
    for i in 0..20 {
        let ws = connect(ws_url(addr, "/echo"), ClientConfig::default())
            .await
            .unwrap();
        ws.send_text(format!("m{i}")).await.unwrap();
        let info = ws.close(CloseCode::NORMAL, "bye").await.unwrap();
        assert_eq!(info.code, CloseCode::NORMAL);
        drop(ws);
    }
    // Give the connection tasks their last polls (they end on the server's TCP close).
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.stop().await;
    assert_eq!(
        PANICS.load(Ordering::SeqCst),
        0,
        "a connection task panicked"
    );
}

/// A server that answers the handshake and the Close by hand, then keeps the TCP connection open
/// for a while: the client's task is left waiting for the server's TCP close with its handle
/// gone, which is where the empty wait used to panic.
#[tokio::test]
async fn close_then_drop_while_the_server_keeps_tcp_open() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        previous(info);
    }));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = tcp.read(&mut buf).await.unwrap();
            assert!(n > 0, "client went away during the handshake");
            head.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&head).to_string();
        let key = text
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("sec-websocket-key")
                    .then(|| value.trim().to_owned())
            })
            .expect("no Sec-WebSocket-Key");
        let reply = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            ws_http::accept_key(&key)
        );
        tcp.write_all(reply.as_bytes()).await.unwrap();
        // The client's Close: 2 header bytes, a 4-byte mask, then the masked payload.
        let mut frame = Vec::new();
        while frame.len() < 2 || frame.len() < 6 + usize::from(frame[1] & 0x7f) {
            let n = tcp.read(&mut buf).await.unwrap();
            assert!(n > 0, "client went away before its Close");
            frame.extend_from_slice(&buf[..n]);
        }
        assert_eq!(frame[0], 0x88, "expected a Close frame");
        tcp.write_all(&[0x88, 0x02, 0x03, 0xe8]).await.unwrap();
        // Keep the connection open: the client waits for our TCP close.
        tokio::time::sleep(Duration::from_millis(500)).await;
    });
    let ws = connect(format!("ws://{addr}/"), ClientConfig::default())
        .await
        .unwrap();
    let info = ws.close(CloseCode::NORMAL, "bye").await.unwrap();
    assert_eq!(info.code, CloseCode::NORMAL);
    drop(ws);
    server.await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        PANICS.load(Ordering::SeqCst),
        0,
        "a connection task panicked"
    );
}
