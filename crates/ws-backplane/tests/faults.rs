//! Faults against real engines: the engine (Redis, NATS) killed and restarted mid-stream (the outage policy
//! holds and the counters say what happened), and a node whose engine is down still serves its
//! own clients.

mod common;

use std::time::Duration;

use common::{Cluster, Engine, Kind, Node};
use ws_server::{Backplane, ws_frame::Message};

/// Broadcasts per publisher before, during and after the outage.
const BEFORE: u64 = 1000;
const DURING: u64 = 500;
const AFTER: u64 = 1000;
/// The outage buffer of each node: smaller than DURING, so the policy's both halves show.
const BUFFER: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_mid_stream() {
    killed_and_restarted_mid_stream(Kind::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_killed_and_restarted_mid_stream() {
    killed_and_restarted_mid_stream(Kind::Nats).await;
}

/// The engine SIGKILLed and restarted under three nodes publishing.
async fn killed_and_restarted_mid_stream(kind: Kind) {
    let Some(mut engine) = Engine::start(kind).await else {
        return;
    };
    let cluster = Cluster::start(&engine.url(), |c| {
        c.outage_buffer = BUFFER;
        c.backoff_min = Duration::from_millis(20);
        c.backoff_max = Duration::from_millis(200);
    })
    .await;
    cluster.publish(1..=BEFORE).await;
    cluster.wait_for(BEFORE, 60).await;

    engine.kill();
    common::links(&cluster.nodes, false).await;
    cluster.publish(BEFORE + 1..=BEFORE + DURING).await;
    for node in &cluster.nodes {
        // The engine tasks take the broadcasts from their queues.
        common::until("the outage's broadcasts are held or dropped", || {
            let s = node.link.stats();
            s.buffered + s.dropped == DURING
        })
        .await;
        let s = node.link.stats();
        assert_eq!(s.buffered, BUFFER as u64, "{s:?}");
        assert_eq!(s.dropped, DURING - BUFFER as u64, "{s:?}");
    }

    engine.restart().await;
    common::links(&cluster.nodes, true).await;
    let last = BEFORE + DURING + AFTER;
    cluster.publish(BEFORE + DURING + 1..=last).await;
    cluster.wait_for(last, 60).await;

    let subs: Vec<_> = cluster
        .subs
        .iter()
        .map(|(node, url, seen)| (*node, url.clone(), seen.lock().unwrap().check(url, last)))
        .collect();
    let nodes = cluster.finish().await;
    for (i, node) in nodes.iter().enumerate() {
        let s = node.link.stats();
        // One outage, logged once; what was held went out after the restart.
        assert_eq!(s.outages, 1, "node {i}: {s:?}");
        assert_eq!(s.replayed, BUFFER as u64, "node {i}: {s:?}");
        let mut node_missing = None;
        for (_, url, missing) in subs.iter().filter(|(n, _, _)| *n == i) {
            for (publisher, gaps) in missing {
                if *publisher == format!("n{i}") {
                    // Local delivery never depends on the engine.
                    assert!(gaps.is_empty(), "{url}: own node's {gaps:?} lost");
                }
                // Only broadcasts of the outage can be missing, and never one that was held
                // (the first BUFFER of it) unless this node was still reconnecting when it
                // was replayed; the dropped ones (past the buffer) always are.
                let dropped: Vec<u64> = (BEFORE + BUFFER as u64 + 1..=BEFORE + DURING).collect();
                if *publisher != format!("n{i}") {
                    assert!(
                        gaps.iter()
                            .all(|g| (BEFORE + 1..=BEFORE + DURING).contains(g)),
                        "{url}: {publisher}'s {gaps:?} lost outside the outage"
                    );
                    assert!(
                        dropped.iter().all(|d| gaps.contains(d)),
                        "{url}: dropped broadcasts of {publisher} arrived"
                    );
                }
            }
            let total: u64 = missing.values().map(|g| g.len() as u64).sum();
            // Every subscriber of a node misses the same broadcasts...
            assert_eq!(*node_missing.get_or_insert(total), total, "{url}");
        }
        // ...and the node's counter says how many.
        assert_eq!(node_missing, Some(s.missed), "node {i}: {s:?}");
    }
}

/// A node whose engine is unreachable from the start: its clients are served, the outage is
/// counted once however many reconnect attempts fail, and broadcasts are held for the engine.
async fn engine_down_node_serves_its_own_clients(kind: Kind) {
    let url = match kind {
        Kind::Redis => format!("redis://127.0.0.1:{}", common::free_port()),
        Kind::Nats => format!("nats://127.0.0.1:{}", common::free_port()),
    };
    let node = Node::start(&url, "lonely", |c| {
        c.backoff_min = Duration::from_millis(5);
        c.backoff_max = Duration::from_millis(20);
    })
    .await;
    common::until("the outage is noticed", || node.link.stats().outages == 1).await;
    let config = ws_client::ClientConfig::default;
    let mut sub = ws_client::connect(node.ws_url("?sub=room").as_str(), config())
        .await
        .unwrap();
    let publisher = ws_client::connect(node.ws_url("").as_str(), config())
        .await
        .unwrap();
    for i in 0..20 {
        publisher
            .send(Message::text(format!("room hello {i}")))
            .await
            .unwrap();
        let got = tokio::time::timeout(Duration::from_secs(10), sub.recv())
            .await
            .expect("local delivery while the engine is down");
        assert_eq!(got.unwrap().unwrap(), Message::text(format!("hello {i}")));
    }
    let s = node.link.stats();
    assert!(!s.connected, "{s:?}");
    assert_eq!(s.outages, 1, "{s:?}");
    assert_eq!((s.buffered, s.published), (20, 0), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_node_serves_its_own_clients() {
    engine_down_node_serves_its_own_clients(Kind::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_down_node_serves_its_own_clients() {
    engine_down_node_serves_its_own_clients(Kind::Nats).await;
}

/// A subscriber that stops reading, on node b, under the default slow-reader policy
/// (disconnect): it is closed once its queue is full, and the other subscribers, on both
/// nodes, get every broadcast of node a's publisher in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_subscriber_on_one_node_does_not_slow_the_others() {
    use std::sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    };
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const MSGS: u64 = 1504;
    const SIZE: usize = 8 << 10;
    let Some(engine) = Engine::start(Kind::Redis).await else {
        return;
    };
    let small_queue = |c: &mut ws_server::ServerConfig| {
        c.send_queue = 32;
        c.write_buffer_limit = 64 << 10;
    };
    let a = Node::start_with(&engine.url(), "a", |_| {}, small_queue).await;
    let b = Node::start_with(&engine.url(), "b", |_| {}, small_queue).await;

    // The slow one: a raw upgrade on b, then it never reads again.
    let mut slow = tokio::net::TcpStream::connect(("127.0.0.1", b.port))
        .await
        .unwrap();
    slow.write_all(
        b"GET /?sub=bench/t HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = [0u8; 1024];
    let n = slow.read(&mut head).await.unwrap();
    assert!(head[..n].starts_with(b"HTTP/1.1 101"));

    // Readers on both nodes, counting in-order broadcasts.
    let mut counts = Vec::new();
    for node in [&a, &b] {
        let mut ws = ws_client::connect(node.ws_url("?sub=bench/t").as_str(), Default::default())
            .await
            .unwrap();
        let count = Arc::new(AtomicU64::new(0));
        let c = count.clone();
        tokio::spawn(async move {
            while let Some(Ok(Message::Binary(data))) = ws.recv().await {
                let seq = u64::from_be_bytes(data[..8].try_into().unwrap());
                if seq == 0 {
                    continue; // a probe
                }
                assert_eq!(seq, c.load(Ordering::Acquire) + 1, "out of order or lost");
                c.store(seq, Ordering::Release);
            }
        });
        counts.push(count);
    }
    common::until("b has both subscribers", || b.server.count() == 2).await;
    // Probes (sequence 0) until b's engine subscription is in place.
    let probe = || Message::binary(vec![0u8; 8]);
    let filter = ws_server::Filter::channel("bench/t");
    for _ in 0..50 {
        a.server.broadcast(probe(), &filter).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        if b.link.stats().received > 0 {
            break;
        }
    }
    assert!(b.link.stats().received > 0, "b never heard a");
    // Paced by the readers that keep up: rounds of 16 (half a queue), each waiting for both
    // readers.
    let mut seq = 0;
    while seq < MSGS {
        for _ in 0..16 {
            seq += 1;
            let mut data = vec![0u8; SIZE];
            data[..8].copy_from_slice(&seq.to_be_bytes());
            a.server.broadcast(Message::binary(data), &filter).await;
        }
        let want = seq;
        common::until("the readers keep up", || {
            counts.iter().all(|c| c.load(Ordering::Acquire) == want)
        })
        .await;
    }
    // The slow subscriber was cut off: the connection ends (with a Close frame 1013 when the
    // server could still write one) well before the last broadcast.
    let close_1013 = [0x88, 0x02, 0x03, 0xF5];
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match slow.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
            if got.windows(4).any(|w| w == close_1013) {
                return;
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the slow subscriber is still open after {} bytes",
        got.len()
    );
    assert!(
        (got.len() as u64) < MSGS * SIZE as u64 / 2,
        "the slow subscriber got {} bytes",
        got.len()
    );
    common::until("b dropped the slow subscriber", || b.server.count() == 1).await;
    assert_eq!(a.server.count(), 1);
}
