//! One node killed mid-stream under three nodes on one engine, clients reaching them through
//! the ws-proxy load balancer: the other nodes go on (their subscribers get every broadcast of
//! the live publishers once, in order), the dead node's clients reconnect through the balancer,
//! land on live nodes and get what is published afterwards, and the cluster-wide count
//! converges.

mod common;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use common::{CHANNEL, Engine, Kind, Node, Seen};
use tokio::sync::mpsc;
use ws_proxy::{BalancerConfig, HealthCheck, Policy, ProxyConfig, ProxyServer, Target};
use ws_server::{Backplane, Filter, ws_frame::Message};

/// Subscribers, spread round robin over the three nodes.
const SUBS: usize = 9;
/// Broadcasts per publisher before the kill (all three nodes publish).
const BEFORE: u64 = 500;
/// Broadcasts per live publisher while node 2 is being stopped.
const DURING: u64 = 500;
/// Broadcasts per live publisher once the dead node's clients are back.
const AFTER: u64 = 500;

/// What one client connection did.
struct Client {
    /// The node it landed on (index).
    node: usize,
    seen: Arc<Mutex<Seen>>,
    /// Ends when the connection ends (the node went away) or the test is done.
    task: tokio::task::JoinHandle<()>,
}

/// Reads `d PUBLISHER SEQ` into `seen` and reports each node's first probe (`p NODE`) on
/// `probes`, until the connection ends or `done` says stop.
async fn read(
    mut ws: ws_client::WebSocket,
    id: usize,
    seen: Arc<Mutex<Seen>>,
    probes: mpsc::UnboundedSender<(usize, String)>,
    mut done: tokio::sync::watch::Receiver<bool>,
) {
    let mut probed = std::collections::HashSet::new();
    loop {
        let msg = tokio::select! {
            m = ws.recv() => m,
            _ = done.changed() => return,
        };
        let Some(Ok(Message::Text(t))) = msg else {
            return; // closed: the node is gone
        };
        let mut parts = t.as_str().split(' ');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("p"), Some(node), None) => {
                if probed.insert(node.to_owned()) {
                    let _ = probes.send((id, node.to_owned()));
                }
            }
            (Some("d"), Some(publisher), Some(seq)) => seen
                .lock()
                .unwrap()
                .by_publisher
                .entry(publisher.to_owned())
                .or_default()
                .push(seq.parse().unwrap()),
            _ => panic!("client {id}: unexpected {t:?}"),
        }
    }
}

/// Connects through the balancer (retrying a refused attempt, as a reconnecting client does)
/// and returns the socket, the node it landed on (the one whose count went up) and the
/// attempts it took.
async fn connect(proxy: &str, nodes: &[Option<Node>]) -> (ws_client::WebSocket, usize, u32) {
    let counts = |nodes: &[Option<Node>]| -> Vec<usize> {
        nodes
            .iter()
            .map(|n| n.as_ref().map_or(0, |n| n.server.count()))
            .collect()
    };
    let before = counts(nodes);
    let mut attempts = 0;
    let ws = loop {
        attempts += 1;
        match ws_client::connect(proxy, ws_client::ClientConfig::default()).await {
            Ok(ws) => break ws,
            Err(e) if attempts < 5 => {
                eprintln!("attempt {attempts} through the balancer failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("no connection through the balancer in 5 attempts: {e}"),
        }
    };
    let mut landed = None;
    common::until("the new connection is counted on a node", || {
        let now = counts(nodes);
        landed = (0..now.len()).find(|&i| now[i] > before[i]);
        landed.is_some()
    })
    .await;
    (ws, landed.unwrap(), attempts)
}

/// Broadcasts probes from every live node until each client in `ids` heard one from each.
async fn probe(
    nodes: &[Option<Node>],
    ids: &[usize],
    rx: &mut mpsc::UnboundedReceiver<(usize, String)>,
) {
    let live = nodes.iter().filter(|n| n.is_some()).count();
    let want = ids.len() * live;
    let mut heard = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while heard < want {
        for (i, node) in nodes.iter().enumerate() {
            if let Some(node) = node {
                node.server
                    .broadcast(Message::text(format!("p n{i}")), &Filter::channel(CHANNEL))
                    .await;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        while let Ok((id, _)) = rx.try_recv() {
            if ids.contains(&id) {
                heard += 1;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {heard} of {want} probes arrived"
        );
    }
}

/// Publishes `d n{i} SEQ` for `seqs` from the live nodes in `from`, taking turns.
async fn publish(nodes: &[Option<Node>], from: &[usize], seqs: std::ops::RangeInclusive<u64>) {
    for seq in seqs {
        for &i in from {
            let node = nodes[i].as_ref().expect("a live publisher");
            node.server
                .broadcast(
                    Message::text(format!("d n{i} {seq}")),
                    &Filter::channel(CHANNEL),
                )
                .await;
        }
        if seq % 64 == 0 {
            tokio::task::yield_now().await;
        }
    }
}

/// Waits (up to 60 s) until every client of `clients` saw `last` from each publisher in `from`.
async fn wait_for(clients: &[&Client], from: &[usize], last: u64) {
    common::until_secs("every live client saw the last broadcast", 60, || {
        clients.iter().all(|c| {
            let seen = c.seen.lock().unwrap();
            from.iter().all(|i| {
                seen.by_publisher
                    .get(&format!("n{i}"))
                    .and_then(|v| v.last())
                    .is_some_and(|&l| l >= last)
            })
        })
    })
    .await;
}

async fn one_node_killed_behind_the_balancer(kind: Kind) {
    let Some(engine) = Engine::start(kind).await else {
        return;
    };
    let configure = |c: &mut ws_backplane::Config| {
        c.heartbeat = Duration::from_millis(50);
        c.node_ttl = Duration::from_millis(300);
    };
    let mut nodes = Vec::new();
    for i in 0..3 {
        nodes.push(Some(
            Node::start(&engine.url(), &format!("n{i}"), configure).await,
        ));
    }
    common::until("every link is up", || {
        nodes.iter().flatten().all(|n| n.link.stats().connected)
    })
    .await;

    let mut balance = BalancerConfig::new(Policy::RoundRobin);
    for node in nodes.iter().flatten() {
        balance
            .backends
            .push(Target::parse(&format!("ws://127.0.0.1:{}", node.port)).unwrap());
    }
    let mut health = HealthCheck::default();
    health.interval = Duration::from_millis(100);
    health.unhealthy_threshold = 1;
    balance.health = Some(health);
    let mut config = ProxyConfig::default();
    config.server.bindings = vec![ws_server::Binding::plain("127.0.0.1:0".parse().unwrap())];
    config.balance = Some(balance);
    let proxy = ProxyServer::start(config).await.unwrap();
    let url = format!("ws://{}/?sub={CHANNEL}", proxy.local_addrs()[0]);

    let (done, done_rx) = tokio::sync::watch::channel(false);
    let (probe_tx, mut probe_rx) = mpsc::unbounded_channel();
    let mut clients = Vec::new();
    for id in 0..SUBS {
        let (ws, node, _) = connect(&url, &nodes).await;
        let seen = Arc::new(Mutex::new(Seen::default()));
        let task = tokio::spawn(read(
            ws,
            id,
            seen.clone(),
            probe_tx.clone(),
            done_rx.clone(),
        ));
        clients.push(Client { node, seen, task });
    }
    let per_node: Vec<usize> = (0..3)
        .map(|i| clients.iter().filter(|c| c.node == i).count())
        .collect();
    assert_eq!(per_node, [3, 3, 3], "round robin over three nodes");
    let all: Vec<usize> = (0..SUBS).collect();
    probe(&nodes, &all, &mut probe_rx).await;
    common::until("every node counts 9", || {
        nodes
            .iter()
            .flatten()
            .all(|n| n.server.cluster_count() == SUBS)
    })
    .await;

    // Everyone publishes; everyone hears everyone.
    publish(&nodes, &[0, 1, 2], 1..=BEFORE).await;
    wait_for(&clients.iter().collect::<Vec<_>>(), &[0, 1, 2], BEFORE).await;

    // Node 2 stops while nodes 0 and 1 publish.
    let dead = nodes[2].take().unwrap();
    let started = std::time::Instant::now();
    let stop = async move {
        dead.server.stop().await;
        drop(dead);
    };
    tokio::join!(stop, publish(&nodes, &[0, 1], BEFORE + 1..=BEFORE + DURING));
    eprintln!("node 2 stopped in {:?}", started.elapsed());
    let (gone, kept): (Vec<Client>, Vec<Client>) = clients.into_iter().partition(|c| c.node == 2);
    common::until("the dead node's clients are closed", || {
        gone.iter().all(|c| c.task.is_finished())
    })
    .await;

    // They reconnect through the balancer and land on the live nodes.
    let mut back = Vec::new();
    let mut attempts = 0;
    for (k, _) in gone.iter().enumerate() {
        let id = SUBS + k;
        let (ws, node, tries) = connect(&url, &nodes).await;
        attempts += tries;
        assert!(node < 2, "a reconnected client landed on the dead node");
        let seen = Arc::new(Mutex::new(Seen::default()));
        let task = tokio::spawn(read(
            ws,
            id,
            seen.clone(),
            probe_tx.clone(),
            done_rx.clone(),
        ));
        back.push(Client { node, seen, task });
    }
    eprintln!("{} clients reconnected in {attempts} attempts", gone.len());
    let ids: Vec<usize> = (SUBS..SUBS + back.len()).collect();
    probe(&nodes, &ids, &mut probe_rx).await;
    common::until("the survivors count 9 on two nodes", || {
        let live = nodes.iter().flatten();
        live.clone().all(|n| n.server.cluster_count() == SUBS)
            && live.map(|n| n.server.count()).sum::<usize>() == SUBS
    })
    .await;
    // ...and forget the dead node within its time-to-live.
    let t = std::time::Instant::now();
    common::until("the survivors list n0 and n1 only", || {
        nodes.iter().flatten().all(|node| {
            let mut ids: Vec<String> = node.link.nodes().into_iter().map(|n| n.node).collect();
            ids.sort();
            ids == ["n0", "n1"]
        })
    })
    .await;
    eprintln!("n2 forgotten {:?} after the reconnects", t.elapsed());

    let last = BEFORE + DURING + AFTER;
    publish(&nodes, &[0, 1], BEFORE + DURING + 1..=last).await;
    let everyone: Vec<&Client> = kept.iter().chain(&back).collect();
    wait_for(&everyone, &[0, 1], last).await;
    let _ = done.send(true);

    // The survivors' own clients: every broadcast of the live publishers once, in order,
    // across the kill; node 2's up to the kill.
    for (k, c) in kept.iter().enumerate() {
        let who = format!("client {k} on n{}", c.node);
        let missing = c.seen.lock().unwrap().check(&who, last);
        for p in ["n0", "n1"] {
            assert_eq!(missing[p], Vec::<u64>::new(), "{who}: {p}'s lost");
        }
        let n2 = &c.seen.lock().unwrap().by_publisher["n2"];
        assert_eq!(n2.len() as u64, BEFORE, "{who}: n2's");
    }
    // The reconnected ones: from where they joined (broadcasts of the kill still in flight
    // may reach them) to the last, every broadcast once, in order; all of those published
    // after they were back (probes told them the node's engine subscriptions were in place).
    for (k, c) in back.iter().enumerate() {
        let who = format!("reconnected client {k} on n{}", c.node);
        let missing = c.seen.lock().unwrap().check(&who, last);
        let seen = c.seen.lock().unwrap();
        for p in ["n0", "n1"] {
            let first = seen.by_publisher[p][0];
            assert!(
                missing[p].iter().all(|&g| g < first),
                "{who}: {p}'s {:?} lost after it joined at {first}",
                missing[p]
                    .iter()
                    .filter(|&&g| g >= first)
                    .collect::<Vec<_>>()
            );
            assert!(
                first <= BEFORE + DURING + 1,
                "{who}: {p}'s first is {first}"
            );
        }
        assert!(!seen.by_publisher.contains_key("n2"), "{who}: heard n2");
    }
    for node in nodes.iter().flatten() {
        let s = node.link.stats();
        assert_eq!((s.missed, s.dropped, s.outages), (0, 0, 0), "{s:?}");
    }
    for c in kept.into_iter().chain(back) {
        c.task.await.unwrap();
    }
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_one_node_killed_behind_the_balancer() {
    one_node_killed_behind_the_balancer(Kind::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_one_node_killed_behind_the_balancer() {
    one_node_killed_behind_the_balancer(Kind::Nats).await;
}
