//! What ProxyServer offers at run time: restart with a changed upstream (P-05), disconnect_all
//! dropping each paired upstream (P-06), write/ping/broadcast to the downstream clients (P-07).

mod common;

use std::net::SocketAddr;

use bytes::Bytes;
use common::*;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::mpsc,
};
use ws_client::{CloseCode, Message};
use ws_proxy::ws_server::{ConnId, Filter};

/// A TCP backend that greets each connection with its name, echoes, and reports each
/// connection's end (EOF from the proxy) on `ends`.
async fn named_echo(name: &'static str) -> (SocketAddr, mpsc::UnboundedReceiver<&'static str>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let _ = s.write_all(name.as_bytes()).await;
                let mut buf = [0u8; 1024];
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
                let _ = tx.send(name);
            });
        }
    });
    (addr, rx)
}

async fn text(ws: &mut ws_client::WebSocket) -> String {
    let m = tokio::time::timeout(T, ws.recv())
        .await
        .expect("in time")
        .expect("open")
        .expect("message");
    String::from_utf8(m.as_bytes().to_vec()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_moves_new_connections_to_a_changed_upstream() {
    let (a, _) = named_echo("A").await;
    let (b, _) = named_echo("B").await;
    let (proxy, addr) = start(config(Some(tcp_target(a)))).await;
    let mut ws = open(addr, "/", &["binary"]).await;
    assert_eq!(text(&mut ws).await, "A");

    proxy.set_target(Some(tcp_target(b)));
    assert_eq!(proxy.target(), Some(tcp_target(b)));
    proxy.restart().await.unwrap();
    // The restart closed the open connection (1001) ...
    let end = tokio::time::timeout(T, async { while let Some(Ok(_)) = ws.recv().await {} }).await;
    assert!(end.is_ok());
    assert_eq!(ws.close_info().map(|c| c.code), Some(CloseCode::AWAY));
    // ... and new ones go to the new upstream.
    let addr = proxy.local_addrs()[0];
    for _ in 0..2 {
        let mut ws = open(addr, "/", &["binary"]).await;
        assert_eq!(text(&mut ws).await, "B");
    }
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_all_drops_each_paired_upstream() {
    let (backend, mut ends) = named_echo("E").await;
    let (proxy, addr) = start(config(Some(tcp_target(backend)))).await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut ws = open(addr, "/", &["binary"]).await;
        assert_eq!(text(&mut ws).await, "E");
        clients.push(ws);
    }
    assert_eq!(proxy.count(), 3);
    assert_eq!(proxy.active_bridges(), 3);

    proxy.disconnect_all(CloseCode::AWAY);
    for ws in &mut clients {
        let end =
            tokio::time::timeout(T, async { while let Some(Ok(_)) = ws.recv().await {} }).await;
        assert!(end.is_ok(), "every client is closed");
        assert_eq!(ws.close_info().map(|c| c.code), Some(CloseCode::AWAY));
    }
    // Each backend connection saw EOF: three ends.
    for _ in 0..3 {
        let name = tokio::time::timeout(T, ends.recv())
            .await
            .expect("EOF in time");
        assert_eq!(name, Some("E"));
    }
    eventually(|| proxy.active_bridges() == 0).await;
    // The listener still accepts.
    let mut ws = open(addr, "/", &["binary"]).await;
    assert_eq!(text(&mut ws).await, "E");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_ping_and_broadcast_reach_downstream_clients() {
    let (backend, _) = named_echo("S").await;
    let (proxy, addr) = start(config(Some(tcp_target(backend)))).await;
    let mut one = open(addr, "/", &["binary"]).await;
    assert_eq!(text(&mut one).await, "S");
    let mut two = open(addr, "/", &["binary"]).await;
    assert_eq!(text(&mut two).await, "S");
    let mut ids: Vec<ConnId> = proxy
        .server()
        .connections()
        .iter()
        .map(|c| c.id())
        .collect();
    ids.sort_by_key(|id| id.0);

    // WriteData to one connection.
    proxy
        .write_to(ids[0], Message::binary(&b"to one"[..]))
        .await
        .unwrap();
    assert_eq!(text(&mut one).await, "to one");
    // Broadcast to every connection.
    assert_eq!(
        proxy
            .broadcast(Message::binary(&b"to all"[..]), &Filter::default())
            .await,
        2
    );
    assert_eq!(text(&mut one).await, "to all");
    assert_eq!(text(&mut two).await, "to all");
    // Nothing else arrived at `two`: its next message is its own echo.
    two.send_binary(&b"echo"[..]).await.unwrap();
    assert_eq!(text(&mut two).await, "echo");
    // Unknown connections are an error.
    assert!(
        proxy
            .write_to(ConnId(u64::MAX), Message::text("x"))
            .await
            .is_err()
    );
    assert!(proxy.ping(ConnId(u64::MAX), Bytes::new()).await.is_err());

    // Ping: a raw client sees the Ping frame with its payload.
    let mut raw = Raw::connect(addr, "/", Some("binary")).await;
    assert_eq!(raw.status(), 101);
    let mut greet = [0u8; 3];
    raw.tcp.read_exact(&mut greet).await.unwrap();
    assert_eq!(greet, [0x82, 1, b'S']);
    let raw_id = proxy
        .server()
        .connections()
        .iter()
        .map(|c| c.id())
        .find(|id| !ids.contains(id))
        .unwrap();
    proxy.ping(raw_id, Bytes::from_static(b"hb")).await.unwrap();
    let mut ping = [0u8; 4];
    tokio::time::timeout(T, raw.tcp.read_exact(&mut ping))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ping, [0x89, 2, b'h', b'b']);
    assert_eq!(proxy.ping_all(), 3);
    let mut ping = [0u8; 2];
    tokio::time::timeout(T, raw.tcp.read_exact(&mut ping))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ping, [0x89, 0]);
    drop(raw);
    proxy.stop().await;
}
