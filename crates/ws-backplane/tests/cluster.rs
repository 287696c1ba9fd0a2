//! Three ws-server nodes on one real engine (Redis, then NATS): every broadcast reaches every
//! subscriber on every node once, in each publisher's order.

mod common;

use common::{CHANNEL, Cluster, Engine, Kind};
use ws_server::Backplane;

/// Broadcasts per publisher (three publishers: 10,002 in all).
const PER_PUBLISHER: u64 = 3334;

async fn every_broadcast_once_in_order(kind: Kind) {
    let Some(engine) = Engine::start(kind).await else {
        return;
    };
    let cluster = Cluster::start(&engine.url(), |_| {}).await;
    cluster.publish(1..=PER_PUBLISHER).await;
    cluster.wait_for(PER_PUBLISHER, 120).await;
    for (node, url, seen) in &cluster.subs {
        let missing = seen.lock().unwrap().check(url, PER_PUBLISHER);
        assert_eq!(
            missing.len(),
            3,
            "{url} (node {node}) heard {:?}",
            missing.keys()
        );
        for (publisher, gaps) in missing {
            assert!(
                gaps.is_empty(),
                "{url}: {} of {publisher}'s lost",
                gaps.len()
            );
        }
    }
    let nodes = cluster.finish().await;
    for node in &nodes {
        let s = node.link.stats();
        // Each node publishes its own and receives the other two's (the probes too).
        assert!(s.published >= PER_PUBLISHER, "{s:?}");
        assert!(s.received >= 2 * PER_PUBLISHER, "{s:?}");
        assert_eq!((s.missed, s.dropped, s.outages), (0, 0, 0), "{s:?}");
    }
    // bench/# and bench/t and bench/+ overlap: copies came and were dropped.
    assert!(nodes.iter().any(|n| n.link.stats().duplicates > 0));
    let _ = CHANNEL;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_three_nodes_every_broadcast_once_in_order() {
    every_broadcast_once_in_order(Kind::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_three_nodes_every_broadcast_once_in_order() {
    every_broadcast_once_in_order(Kind::Nats).await;
}

/// Every node counts the connections of the whole cluster; when a node dies, the others' count
/// converges within the time-to-live.
async fn count_converges_after_a_node_dies(kind: Kind) {
    use std::time::Duration;
    let Some(engine) = Engine::start(kind).await else {
        return;
    };
    let configure = |c: &mut ws_backplane::Config| {
        c.heartbeat = Duration::from_millis(50);
        c.node_ttl = Duration::from_millis(300);
    };
    let mut nodes = Vec::new();
    for i in 0..3 {
        nodes.push(common::Node::start(&engine.url(), &format!("n{i}"), configure).await);
    }
    let mut clients = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        for _ in 0..=i {
            let ws = ws_client::connect(node.ws_url("").as_str(), Default::default())
                .await
                .unwrap();
            clients.push((i, ws));
        }
    }
    // 1 + 2 + 3 connections.
    common::until("every node counts 6", || {
        nodes.iter().all(|n| n.server.cluster_count() == 6)
    })
    .await;
    assert_eq!(nodes[2].server.count(), 3);
    // Node 2 dies: its server stops and its link goes away with it.
    clients.retain(|(i, _)| *i != 2);
    let dead = nodes.pop().unwrap();
    dead.server.stop().await;
    drop(dead);
    common::until("the survivors count 3", || {
        nodes.iter().all(|n| n.server.cluster_count() == 3)
    })
    .await;
    let live: Vec<String> = {
        let mut v: Vec<String> = nodes[0].link.nodes().into_iter().map(|n| n.node).collect();
        v.sort();
        v
    };
    assert_eq!(live, ["n0", "n1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_count_converges_after_a_node_dies() {
    count_converges_after_a_node_dies(Kind::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_count_converges_after_a_node_dies() {
    count_converges_after_a_node_dies(Kind::Nats).await;
}

/// Per-channel subscriber counts: every node sums the others' heartbeats; when a node dies,
/// its subscribers drop out of the others' counts within the time-to-live.
async fn channel_counts_converge_after_a_node_dies(kind: Kind) {
    use std::time::Duration;
    let Some(engine) = Engine::start(kind).await else {
        return;
    };
    let configure = |c: &mut ws_backplane::Config| {
        c.heartbeat = Duration::from_millis(50);
        c.node_ttl = Duration::from_millis(300);
    };
    let mut nodes = Vec::new();
    for i in 0..3 {
        nodes.push(common::Node::start(&engine.url(), &format!("c{i}"), configure).await);
    }
    let mut clients = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        // 1 + 2 + 3 subscribers of room/a, one of room/# per node.
        for _ in 0..=i {
            let ws = ws_client::connect(node.ws_url("?sub=room/a").as_str(), Default::default())
                .await
                .unwrap();
            clients.push((i, ws));
        }
        let ws = ws_client::connect(node.ws_url("?sub=room/%23").as_str(), Default::default())
            .await
            .unwrap();
        clients.push((i, ws));
    }
    let counts = |nodes: &[common::Node], pattern: &str| -> Vec<usize> {
        nodes
            .iter()
            .map(|n| n.server.cluster_channel_count(pattern))
            .collect()
    };
    common::until("every node counts 6 on room/a and 3 on room/#", || {
        counts(&nodes, "room/a") == [6; 3] && counts(&nodes, "room/#") == [3; 3]
    })
    .await;
    // Exact patterns: nobody subscribed with room/+ or room/b.
    assert_eq!(counts(&nodes, "room/b"), [0; 3]);
    assert_eq!(counts(&nodes, "room/+"), [0; 3]);
    let local: Vec<usize> = nodes
        .iter()
        .map(|n| n.server.channel_count("room/a"))
        .collect();
    assert_eq!(local, [1, 2, 3]);
    assert!(nodes.iter().all(|n| n.server.channel_count("room/#") == 1));
    // A subscriber of node 0 leaves: the others hear of it at the next heartbeat.
    let (_, ws) = clients.remove(0);
    drop(ws);
    common::until("every node counts 5 on room/a", || {
        counts(&nodes, "room/a") == [5; 3]
    })
    .await;
    // Node 2 dies: its server stops and its link goes away with it.
    clients.retain(|(i, _)| *i != 2);
    let dead = nodes.pop().unwrap();
    dead.server.stop().await;
    drop(dead);
    common::until("the survivors count 2 on room/a and 2 on room/#", || {
        counts(&nodes, "room/a") == [2; 2] && counts(&nodes, "room/#") == [2; 2]
    })
    .await;
    assert_eq!(nodes[1].server.channel_count("room/a"), 2);
    assert!(nodes.iter().all(|n| n.link.stats().bad_heartbeats == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_channel_counts_converge_after_a_node_dies() {
    channel_counts_converge_after_a_node_dies(Kind::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_channel_counts_converge_after_a_node_dies() {
    channel_counts_converge_after_a_node_dies(Kind::Nats).await;
}

/// Node-qualified connection ids: node 0 writes to, then drops, a connection of node 1.
async fn write_to_and_disconnect_reach_another_node(kind: Kind) {
    use std::time::Duration;
    use ws_server::ws_frame::Message;
    let Some(engine) = Engine::start(kind).await else {
        return;
    };
    let a = common::Node::start(&engine.url(), "a", |_| {}).await;
    let b = common::Node::start(&engine.url(), "b", |_| {}).await;
    common::until("both links are up", || {
        a.link.stats().connected && b.link.stats().connected
    })
    .await;
    let mut ws = ws_client::connect(b.ws_url("").as_str(), Default::default())
        .await
        .unwrap();
    common::until("b has the connection", || b.server.count() == 1).await;
    let id = b.server.connections()[0].id();
    // Until b's engine subscription is in place a direct envelope may go nowhere: retry.
    let mut got = None;
    for i in 0..100 {
        a.server
            .write_to_node("b", id, Message::text(format!("direct {i}")))
            .await
            .unwrap();
        if let Ok(m) = tokio::time::timeout(Duration::from_millis(100), ws.recv()).await {
            got = m;
            break;
        }
    }
    let Some(Ok(Message::Text(t))) = got else {
        panic!("the direct message never arrived: {got:?}");
    };
    assert!(t.as_str().starts_with("direct "), "{t:?}");
    // A local id through the same call.
    assert!(
        b.server
            .write_to_node("b", id, Message::text("local"))
            .await
            .is_ok()
    );
    a.server.disconnect_on_node("b", id).unwrap();
    common::until("b dropped the connection", || b.server.count() == 0).await;
    // Without a backplane another node cannot be reached.
    let alone = ws_server::Server::start(
        ws_server::ServerConfig::new(vec![ws_server::Binding::plain(
            "127.0.0.1:0".parse().unwrap(),
        )]),
        ws_server::NoopHandler,
    )
    .await
    .unwrap();
    assert!(matches!(
        alone.write_to_node("b", id, Message::text("x")).await,
        Err(ws_server::Error::UnknownConnection(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_write_to_and_disconnect_reach_another_node() {
    write_to_and_disconnect_reach_another_node(Kind::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_write_to_and_disconnect_reach_another_node() {
    write_to_and_disconnect_reach_another_node(Kind::Nats).await;
}
