//! Broadcast fan-out: every subscriber gets each message once and in order (framed once and
//! shared, or per connection with permessage-deflate), and a stalled subscriber neither
//! blocks the broadcast nor holds up the others.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{connect, connect_with, local_config};
use ws_frame::{CloseCode, Config, Message, deflate::DeflateConfig};
use ws_server::{EchoHandler, Filter, Server, ServerHandle, SlowReaderPolicy};

async fn subscribe_all(server: &ServerHandle, n: usize, channel: &str) {
    while server.count() < n {
        tokio::task::yield_now().await;
    }
    for info in server.connections() {
        server.subscribe(&info, channel).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subscriber_gets_each_message_once_in_order() {
    const SUBS: usize = 40;
    const MSGS: usize = 300;
    // Senders wait for room: nobody is dropped however slowly the test machine reads.
    let mut config = local_config();
    config.slow_reader = SlowReaderPolicy::Backpressure;
    let server = Server::start(config, EchoHandler).await.unwrap();
    let addr = server.local_addrs()[0];
    let mut clients = Vec::new();
    for _ in 0..SUBS {
        clients.push(connect(addr, "/").await);
    }
    // One more connection that is not subscribed gets nothing.
    subscribe_all(&server, SUBS, "room").await;
    let mut outsider = connect(addr, "/").await;
    while server.count() < SUBS + 1 {
        tokio::task::yield_now().await;
    }
    let readers: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    let m = c.message().await.expect("a message");
                    if m.as_text() == Some("end") {
                        return got;
                    }
                    got.push(m);
                }
            })
        })
        .collect();
    let big = Bytes::from(vec![9u8; 20_000]);
    for i in 0..MSGS {
        // Small text, and now and then a payload large enough for the vectored path.
        let msg = if i % 50 == 7 {
            Message::Binary(big.clone())
        } else {
            Message::text(format!("m{i}"))
        };
        assert_eq!(server.broadcast(msg, &Filter::channel("room")).await, SUBS);
    }
    assert_eq!(
        server.broadcast("end", &Filter::channel("room")).await,
        SUBS
    );
    for r in readers {
        let got = r.await.unwrap();
        assert_eq!(got.len(), MSGS, "each message exactly once");
        for (i, m) in got.iter().enumerate() {
            if i % 50 == 7 {
                assert_eq!(m, &Message::Binary(big.clone()));
            } else {
                assert_eq!(m.as_text(), Some(format!("m{i}").as_str()), "in order");
            }
        }
    }
    // The outsider: the next thing it sees is its own echo.
    outsider.send(Message::text("mine")).await;
    assert_eq!(outsider.message().await, Some(Message::text("mine")));
}

#[tokio::test]
async fn deflate_subscribers_with_and_without_context_takeover_decode_the_same() {
    let mut config = local_config();
    config.deflate = Some(DeflateConfig::default());
    let server = Server::start(config, EchoHandler).await.unwrap();
    let addr = server.local_addrs()[0];
    let mut deflate = DeflateConfig::default();
    let offer_ctx = deflate.client_offer();
    deflate.server_no_context_takeover = true;
    let offer_no_ctx = deflate.client_offer();
    let mut clients = vec![connect(addr, "/").await];
    for offer in [&offer_ctx, &offer_no_ctx, &offer_no_ctx] {
        let c = connect_with(
            addr,
            "/",
            &[("Sec-WebSocket-Extensions", offer.as_str())],
            Config::default(),
        )
        .await
        .unwrap();
        assert!(
            c.header("sec-websocket-extensions").is_some(),
            "deflate agreed"
        );
        clients.push(c);
    }
    subscribe_all(&server, clients.len(), "news").await;
    let msgs: Vec<Message> = (0..20)
        .map(|i| Message::text(format!("news item {i} ").repeat(40)))
        .collect();
    for m in &msgs {
        server.broadcast(m.clone(), &Filter::channel("news")).await;
    }
    for c in &mut clients {
        for m in &msgs {
            assert_eq!(c.message().await.as_ref(), Some(m));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_subscriber_does_not_hold_up_the_others() {
    let mut config = local_config();
    config.send_queue = 8;
    config.write_buffer_limit = 64 * 1024;
    config.slow_reader = SlowReaderPolicy::Disconnect;
    config.ws.close_timeout = Duration::from_secs(30);
    let server = Server::start(config, EchoHandler).await.unwrap();
    let addr = server.local_addrs()[0];
    let mut stalled = connect(addr, "/").await;
    let mut readers = Vec::new();
    for _ in 0..3 {
        readers.push(connect(addr, "/").await);
    }
    subscribe_all(&server, 4, "feed").await;
    let chunk = Bytes::from(vec![5u8; 128 * 1024]);
    let (ack, mut acks) = tokio::sync::mpsc::unbounded_channel();
    let readers: Vec<_> = readers
        .into_iter()
        .map(|mut c| {
            let ack = ack.clone();
            tokio::spawn(async move {
                let mut n = 0usize;
                while let Some(m) = c.message().await {
                    if m.len() == 1 {
                        return n;
                    }
                    assert_eq!(m.len(), 128 * 1024);
                    n += 1;
                    ack.send(()).unwrap();
                }
                n
            })
        })
        .collect();
    // Far more than the stalled subscriber's socket buffers, write backlog and queue hold;
    // each broadcast returns without waiting for it, and the readers keep up (the next
    // message goes out once each of them has the last one).
    let mut reached = Vec::new();
    for _ in 0..200 {
        let n = server
            .broadcast(Message::Binary(chunk.clone()), &Filter::channel("feed"))
            .await;
        reached.push(n);
        for _ in 0..3 {
            acks.recv().await.unwrap();
        }
    }
    server
        .broadcast(Message::binary(vec![0u8]), &Filter::channel("feed"))
        .await;
    for r in readers {
        assert_eq!(r.await.unwrap(), 200, "every reader got every message");
    }
    assert_eq!(reached[0], 4);
    assert_eq!(
        *reached.last().unwrap(),
        3,
        "the stalled subscriber was dropped"
    );
    // It gets what was queued for it, then a Close with 1013.
    assert_eq!(stalled.closed().await, CloseCode::TRY_AGAIN);
}
