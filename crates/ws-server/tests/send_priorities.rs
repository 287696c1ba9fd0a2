//! S-21: send-queue levels (the seed's `QueueOptions`, as in ws-client): while a connection's
//! write backlog is full, queued messages go out highest level first, each level in order.

mod common;

use std::time::Duration;

use common::{connect, local_config};
use ws_server::{NoopHandler, Priority, Server};

#[tokio::test]
async fn higher_levels_overtake_what_waits_behind_a_full_backlog() {
    let mut config = local_config();
    config.write_buffer_limit = 64 * 1024;
    let server = Server::start(config, NoopHandler).await.unwrap();
    let mut c = connect(server.local_addrs()[0], "/").await;
    let info = server.connections().pop().unwrap();
    let conn = server.get(info.id()).unwrap();

    // A message larger than the socket buffers and the limit: the backlog stays full while
    // the client does not read.
    let big = vec![7u8; 12 << 20];
    let before = info.bytes_sent();
    conn.send(big.clone()).await.unwrap();
    // Wait until it is being written (so it is not in the same batch as what follows).
    for _ in 0..2000 {
        if info.bytes_sent() > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(info.bytes_sent() > before, "the big message is written");

    conn.send_with_priority("low 1", Priority::Low)
        .await
        .unwrap();
    conn.send("normal 1").await.unwrap();
    conn.send_with_priority("low 2", Priority::Low)
        .await
        .unwrap();
    conn.send_with_priority("high 1", Priority::High)
        .await
        .unwrap();
    conn.send_with_priority("normal 2", Priority::Normal)
        .await
        .unwrap();
    conn.send_with_priority("high 2", Priority::High)
        .await
        .unwrap();

    let first = c.message().await.unwrap();
    assert_eq!(first.len(), big.len());
    let mut order = Vec::new();
    for _ in 0..6 {
        order.push(c.message().await.unwrap().as_text().unwrap().to_owned());
    }
    assert_eq!(
        order,
        ["high 1", "high 2", "normal 1", "normal 2", "low 1", "low 2"]
    );
}

#[tokio::test]
async fn with_room_in_the_backlog_sends_keep_their_order() {
    let server = Server::start(local_config(), NoopHandler).await.unwrap();
    let mut c = connect(server.local_addrs()[0], "/").await;
    let info = server.connections().pop().unwrap();
    let conn = server.get(info.id()).unwrap();
    conn.send_with_priority("low", Priority::Low).await.unwrap();
    c.message().await.unwrap();
    conn.send_with_priority("high", Priority::High)
        .await
        .unwrap();
    assert_eq!(c.message().await.unwrap().as_text(), Some("high"));
}
