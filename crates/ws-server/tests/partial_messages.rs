//! Fragmented messages cannot hold the server hostage: a fragment budget, a deadline for an
//! unfinished message, and a server-wide budget for bytes in partly received messages.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{Client, connect, local_config};
use tokio::{sync::mpsc, time::timeout};
use ws_frame::{CloseCode, Event, Message};
use ws_server::{ConnInfo, Ctx, Disconnect, EchoHandler, Error, Handler, Server, ServerHandle};

/// Echoes and reports errors and disconnects.
struct Report(mpsc::UnboundedSender<String>);

impl Handler for Report {
    async fn on_message(&self, ctx: &mut Ctx<'_>, msg: Message) {
        let _ = ctx.send(msg);
    }

    async fn on_error(
        &self,
        _peer: std::net::SocketAddr,
        _conn: Option<&std::sync::Arc<ConnInfo>>,
        error: &Error,
    ) {
        let _ = self.0.send(format!("error: {error}"));
    }

    async fn on_disconnect(&self, _info: &std::sync::Arc<ConnInfo>, d: Disconnect) {
        let _ = self
            .0
            .send(format!("disconnect: {} {}", d.code.as_u16(), d.reason));
    }
}

async fn fragment(c: &mut Client, payload: &[u8], first: bool, fin: bool) {
    c.ws.send_fragment(false, Bytes::copy_from_slice(payload), first, fin)
        .unwrap();
    c.flush().await;
}

/// The close code and reason the server sent.
async fn close_of(c: &mut Client) -> (u16, String) {
    loop {
        match c.event().await {
            Some(Ok(Event::Closed { code, reason, .. })) => {
                return (code.as_u16(), reason.as_str().to_owned());
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return (e.close_code().as_u16(), e.to_string()),
            None => return (1006, String::new()),
        }
    }
}

async fn wait_for(server: &ServerHandle, what: impl Fn(&ServerHandle) -> bool) {
    timeout(Duration::from_secs(5), async {
        while !what(server) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("condition within 5 s");
}

#[tokio::test]
async fn an_unfinished_fragmented_message_is_closed_with_1008_at_its_deadline() {
    let mut config = local_config();
    config.ws.message_timeout = Some(Duration::from_millis(300));
    let (tx, mut reports) = mpsc::unbounded_channel();
    let server = Server::start(config, Report(tx)).await.unwrap();
    let mut c = connect(server.local_addrs()[0], "/").await;

    // A finished fragmented message is echoed, however long the deadline is.
    fragment(&mut c, b"ab", true, false).await;
    fragment(&mut c, b"cd", false, true).await;
    assert_eq!(c.message().await, Some(Message::binary(&b"abcd"[..])));

    let started = std::time::Instant::now();
    fragment(&mut c, b"never", true, false).await;
    fragment(&mut c, b"finished", false, false).await;
    let (code, reason) = timeout(Duration::from_secs(5), close_of(&mut c))
        .await
        .expect("the server closes an unfinished message");
    assert_eq!(code, 1008, "{reason}");
    assert!(reason.contains("not finished within 300ms"), "{reason}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(
        reports.recv().await.unwrap(),
        "error: websocket: fragmented message not finished within 300ms"
    );
    assert!(
        reports
            .recv()
            .await
            .unwrap()
            .starts_with("disconnect: 1008")
    );
    wait_for(&server, |s| s.count() == 0).await;
    assert_eq!(server.partial_bytes(), 0);
    server.stop().await;
}

#[tokio::test]
async fn a_paused_connection_does_not_lose_its_message_to_the_deadline() {
    let mut config = local_config();
    config.ws.message_timeout = Some(Duration::from_millis(300));
    let server = Server::start(config, EchoHandler).await.unwrap();
    let mut c = connect(server.local_addrs()[0], "/").await;
    wait_for(&server, |s| s.count() == 1).await;
    fragment(&mut c, b"slow ", true, false).await;
    wait_for(&server, |s| s.partial_bytes() == 5).await;
    let conn = server.get(server.connections()[0].id()).unwrap();
    conn.pause_reading();
    tokio::time::sleep(Duration::from_millis(600)).await;
    fragment(&mut c, b"but fine", false, true).await;
    conn.resume_reading();
    let echo = timeout(Duration::from_secs(5), c.message()).await.unwrap();
    assert_eq!(echo, Some(Message::binary(&b"slow but fine"[..])));
    c.close(CloseCode::NORMAL).await;
    server.stop().await;
}

#[tokio::test]
async fn a_flood_of_one_byte_fragments_is_closed_with_1009_at_the_default_budget() {
    let server = Server::start(local_config(), EchoHandler).await.unwrap();
    let mut c = connect(server.local_addrs()[0], "/").await;
    fragment(&mut c, b"x", true, false).await;
    let mut closed = None;
    // Batches of 4096 one-byte fragments; the budget (65,537) ends it long before a million.
    for _ in 0..(1_000_000 / 4096) {
        for _ in 0..4096 {
            c.ws.send_fragment(false, Bytes::from_static(b"x"), false, false)
                .unwrap();
        }
        c.flush().await;
        if let Ok(code) = timeout(Duration::from_millis(1), close_of(&mut c)).await {
            closed = Some(code);
            break;
        }
    }
    let (code, reason) = match closed {
        Some(c) => c,
        None => timeout(Duration::from_secs(5), close_of(&mut c))
            .await
            .expect("a close"),
    };
    assert_eq!(code, 1009, "{reason}");
    assert!(reason.contains("more than 65537 fragments"), "{reason}");
    wait_for(&server, |s| s.count() == 0 && s.partial_bytes() == 0).await;
    server.stop().await;
}

#[tokio::test]
async fn past_the_server_wide_budget_new_fragmented_messages_are_refused_with_1013() {
    let mut config = local_config();
    config.max_partial_bytes = 1000;
    let (tx, mut reports) = mpsc::unbounded_channel();
    let server = Server::start(config, Report(tx)).await.unwrap();
    let addr = server.local_addrs()[0];
    let mut a = connect(addr, "/").await;
    let mut b = connect(addr, "/").await;

    // A holds 800 bytes in an unfinished message.
    fragment(&mut a, &[b'a'; 800], true, false).await;
    wait_for(&server, |s| s.partial_bytes() == 800).await;

    // B's new message would take the total past 1000: refused with 1013, bytes given back.
    fragment(&mut b, &[b'b'; 300], true, false).await;
    let (code, reason) = timeout(Duration::from_secs(5), close_of(&mut b))
        .await
        .expect("B is refused");
    assert_eq!(code, 1013, "{reason}");
    assert!(reason.starts_with("server busy"), "{reason}");
    assert!(
        reports
            .recv()
            .await
            .unwrap()
            .starts_with("disconnect: 1013")
    );
    wait_for(&server, |s| s.count() == 1).await;
    assert_eq!(server.partial_bytes(), 800);

    // A, within the budget, finishes its message; afterwards there is room again.
    fragment(&mut a, &[b'a'; 100], false, true).await;
    assert_eq!(a.message().await.map(|m| m.len()), Some(900));
    assert_eq!(server.partial_bytes(), 0);
    let mut c = connect(addr, "/").await;
    fragment(&mut c, &[b'c'; 900], true, false).await;
    fragment(&mut c, &[b'c'; 50], false, true).await;
    assert_eq!(c.message().await.map(|m| m.len()), Some(950));
    // Unfragmented messages under the budget are never refused.
    a.send(Message::binary(vec![0u8; 999])).await;
    assert_eq!(a.message().await.map(|m| m.len()), Some(999));
    drop((a, c));
    server.stop().await;
}
