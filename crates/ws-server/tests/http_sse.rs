//! Server-sent events over real TCP: the stream head, `retry:`, `data:` framing, event names and
//! ids, heartbeats, write_to / broadcast reaching SSE clients next to WebSocket ones, and
//! disconnect detection.

mod common;

use std::{sync::Arc, time::Duration};

use common::{connect, local_config};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::mpsc,
};
use ws_frame::Message;
use ws_server::{
    ConnInfo, Ctx, Disconnect, Filter, Handler, Server, ServerHandle, SseEvent, Transport,
};

struct Events {
    gone: mpsc::UnboundedSender<Transport>,
}

impl Handler for Events {
    async fn on_connect(&self, ctx: &mut Ctx<'_>) {
        if ctx.info().transport() == Transport::Sse {
            let _ = ctx.send_event(&SseEvent::new("welcome").with_event("hello").with_id("0"));
        }
    }

    async fn on_disconnect(&self, info: &Arc<ConnInfo>, _d: Disconnect) {
        let _ = self.gone.send(info.transport());
    }
}

async fn start(heartbeat: Option<Duration>) -> (ServerHandle, mpsc::UnboundedReceiver<Transport>) {
    let mut config = local_config();
    config.sse.enabled = true;
    config.sse.paths = vec!["/events".into(), "/feeds/*".into()];
    config.sse.heartbeat = heartbeat;
    let (gone, rx) = mpsc::unbounded_channel();
    (Server::start(config, Events { gone }).await.unwrap(), rx)
}

async fn open(server: &ServerHandle, path: &str) -> (TcpStream, String) {
    let mut tcp = TcpStream::connect(server.local_addrs()[0]).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let head = read_until(&mut tcp, b"\r\n\r\n").await;
    (tcp, head)
}

/// Reads byte by byte until `end` appears (nothing after it is consumed).
async fn read_until(tcp: &mut TcpStream, end: &[u8]) -> String {
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    let fut = async {
        while !out.ends_with(end) {
            assert_eq!(tcp.read(&mut byte).await.unwrap(), 1, "closed early");
            out.push(byte[0]);
        }
    };
    tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .expect("timed out");
    String::from_utf8(out).unwrap()
}

/// Reads one event (up to the blank line).
async fn event(tcp: &mut TcpStream) -> String {
    read_until(tcp, b"\n\n").await
}

async fn wait_count(server: &ServerHandle, n: usize) {
    for _ in 0..200 {
        if server.count() == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("count stayed {} (wanted {n})", server.count());
}

#[tokio::test]
async fn stream_head_retry_and_event_framing() {
    let (server, _gone) = start(None).await;
    let (mut tcp, head) = open(&server, "/events").await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("Content-Type: text/event-stream\r\n"),
        "{head}"
    );
    assert!(head.contains("Cache-Control: no-cache\r\n"), "{head}");
    assert_eq!(event(&mut tcp).await, "retry: 3000\n\n");
    assert_eq!(
        event(&mut tcp).await,
        "event: hello\nid: 0\ndata: welcome\n\n"
    );
    wait_count(&server, 1).await;
    let sse = server.connections().pop().unwrap();
    assert_eq!((sse.transport(), sse.path()), (Transport::Sse, "/events"));
    server
        .write_to(sse.id(), "line 1\nline 2\r\nline 3")
        .await
        .unwrap();
    assert_eq!(
        event(&mut tcp).await,
        "data: line 1\ndata: line 2\ndata: line 3\n\n"
    );
    let ev = SseEvent::new("{\"x\":1}")
        .with_event("update")
        .with_id("42")
        .with_retry(Duration::from_millis(500));
    server.send_event(sse.id(), ev).await.unwrap();
    assert_eq!(
        event(&mut tcp).await,
        "event: update\nid: 42\nretry: 500\ndata: {\"x\":1}\n\n"
    );
    // Field injection through the name is neutralised.
    let ev = SseEvent::new("d").with_event("a\ndata: forged");
    server.send_event(sse.id(), ev).await.unwrap();
    assert_eq!(event(&mut tcp).await, "event: adata: forged\ndata: d\n\n");
}

#[tokio::test]
async fn broadcast_reaches_sse_and_websocket_clients_with_path_and_channel_filters() {
    let (server, _gone) = start(None).await;
    let (mut a, _) = open(&server, "/events").await;
    let (mut b, _) = open(&server, "/feeds/news").await;
    for tcp in [&mut a, &mut b] {
        event(tcp).await; // retry
        event(tcp).await; // welcome
    }
    let mut ws = connect(server.local_addrs()[0], "/events").await;
    wait_count(&server, 3).await;
    assert_eq!(server.broadcast("to all", &Filter::all()).await, 3);
    assert_eq!(event(&mut a).await, "data: to all\n\n");
    assert_eq!(event(&mut b).await, "data: to all\n\n");
    assert_eq!(ws.message().await, Some(Message::text("to all")));
    // The path as a filter (sgc's Broadcast(text, "/sse.html")): the WebSocket on /events too.
    assert_eq!(
        server
            .broadcast("events only", &Filter::path("/events"))
            .await,
        2
    );
    assert_eq!(event(&mut a).await, "data: events only\n\n");
    assert_eq!(ws.message().await, Some(Message::text("events only")));
    // SSE connections are subscribed to their path as a channel; wildcards work.
    let n = server
        .broadcast_event(
            SseEvent::new("news").with_event("n"),
            &Filter::channel("/feeds/+"),
        )
        .await;
    assert_eq!(n, 1);
    assert_eq!(event(&mut b).await, "event: n\ndata: news\n\n");
    // Nothing stray arrived on `a`.
    server
        .broadcast("last", &Filter::path("/events").with_protocol("none"))
        .await;
    server
        .write_to(
            server
                .connections()
                .iter()
                .find(|c| c.path() == "/events" && c.transport() == Transport::Sse)
                .unwrap()
                .id(),
            "direct",
        )
        .await
        .unwrap();
    assert_eq!(event(&mut a).await, "data: direct\n\n");
}

#[tokio::test]
async fn heartbeats_and_disconnect_detection() {
    let (server, mut gone) = start(Some(Duration::from_millis(100))).await;
    let (mut tcp, _) = open(&server, "/events").await;
    event(&mut tcp).await;
    event(&mut tcp).await;
    assert_eq!(event(&mut tcp).await, ":\n\n");
    assert_eq!(event(&mut tcp).await, ":\n\n");
    wait_count(&server, 1).await;
    drop(tcp);
    let t = tokio::time::timeout(Duration::from_secs(2), gone.recv()).await;
    assert_eq!(t.unwrap(), Some(Transport::Sse));
    wait_count(&server, 0).await;
}

#[tokio::test]
async fn sse_only_on_enabled_paths_and_to_clients_that_accept_it() {
    let (server, _gone) = start(None).await;
    let addr = server.local_addrs()[0];
    let r = common::request(
        addr,
        "GET /other HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 404);
    // An Accept field that leaves out text/event-stream (and */*): a plain request. (No Accept
    // field at all takes any type, the stream included: see http_guards.rs.)
    let r = common::request(
        addr,
        "GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/html\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 404, "Accept: text/html, a plain request");
    let (_tcp, head) = open(&server, "/feeds/a/b").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    wait_count(&server, 1).await;
    // stop() ends SSE connections too.
    server.stop().await;
    assert_eq!(server.count(), 0);
}
