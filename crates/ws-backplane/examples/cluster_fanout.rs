//! Fan-out through a backplane, measured: one publisher on node 0 of three in-process
//! ws-server nodes, subscribers spread over the three, every broadcast timestamped; prints
//! deliveries per second and publish-to-receipt p50/p99. Then the cost of an idle backplane on
//! one node: the same broadcasts to local subscribers with and without a backplane attached.
//!
//! ```text
//! cargo run --release -p ws-backplane --example cluster_fanout -- redis://127.0.0.1:6379 [SUBS] [MSGS]
//! ```
//! The engine must be running (redis-server or nats-server); a figure is one run on the machine
//! at hand, not a test.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use ws_server::{
    Backplane, Binding, Ctx, Filter, Handler, Server, ServerConfig, ServerHandle, SlowReaderPolicy,
    ws_frame::Message,
};

const CHANNEL: &str = "fanout";

struct Subscribe;

impl Handler for Subscribe {
    async fn on_connect(&self, ctx: &mut Ctx<'_>) {
        ctx.subscribe(CHANNEL).expect("valid channel");
    }
}

async fn node(url: Option<&str>, id: &str) -> ServerHandle {
    let mut config = ServerConfig::new(vec![Binding::plain("127.0.0.1:0".parse().unwrap())]);
    config.slow_reader = SlowReaderPolicy::Backpressure;
    config.send_queue = 4096;
    let server = Server::start(config, Subscribe).await.unwrap();
    if let Some(url) = url {
        let link = ws_backplane::connect(ws_backplane::Config::new(url, id)).unwrap();
        server.attach_backplane(link.clone());
        while !link.stats().connected {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    server
}

/// Connects `subs` clients round-robin over `nodes`; each records publish-to-receipt times
/// (nanoseconds since `t0`, carried in the message) until it has `msgs`.
async fn subscribers(
    nodes: &[ServerHandle],
    subs: usize,
    msgs: usize,
    t0: Instant,
) -> (Vec<tokio::task::JoinHandle<()>>, Arc<Mutex<Vec<u64>>>) {
    let lat = Arc::new(Mutex::new(Vec::with_capacity(subs * msgs)));
    let mut tasks = Vec::new();
    for i in 0..subs {
        let addr = nodes[i % nodes.len()].local_addrs()[0];
        let mut ws = ws_client::connect(
            format!("ws://{addr}/").as_str(),
            ws_client::ClientConfig::default(),
        )
        .await
        .unwrap();
        let lat = lat.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::with_capacity(msgs);
            let mut got = 0;
            while got < msgs {
                let Some(Ok(Message::Text(t))) = ws.recv().await else {
                    panic!("subscriber {i} lost its connection after {got}");
                };
                let Some(sent) = t.as_str().strip_prefix("m ") else {
                    continue; // a probe
                };
                let sent: u64 = sent.parse().unwrap();
                mine.push(elapsed_ns(t0) - sent);
                got += 1;
            }
            lat.lock().unwrap().extend(mine);
        }));
    }
    (tasks, lat)
}

fn elapsed_ns(t0: Instant) -> u64 {
    u64::try_from(t0.elapsed().as_nanos()).unwrap()
}

/// Waits until every node has `per_node` subscribers and (with several nodes) a probe from
/// node 0 reaches them all.
async fn settle(nodes: &[ServerHandle], subs: usize) {
    while nodes.iter().map(ServerHandle::count).sum::<usize>() < subs {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if nodes.len() > 1 {
        // Probes until the engine subscriptions are in place (subscribers skip them).
        for _ in 0..20 {
            nodes[0]
                .broadcast(Message::text("probe"), &Filter::channel(CHANNEL))
                .await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn run(nodes: &[ServerHandle], subs: usize, msgs: usize, label: &str) {
    let t0 = Instant::now();
    let (tasks, lat) = subscribers(nodes, subs, msgs, t0).await;
    settle(nodes, subs).await;
    let start = Instant::now();
    for _ in 0..msgs {
        let msg = Message::text(format!("m {}", elapsed_ns(t0)));
        nodes[0].broadcast(msg, &Filter::channel(CHANNEL)).await;
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let mut lat = std::mem::take(&mut *lat.lock().unwrap());
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)] as f64 / 1e6;
    println!(
        "{label}: {subs} subscribers, {msgs} broadcasts: {:.0} deliveries/s, p50 {:.2} ms, p99 {:.2} ms ({secs:.2} s)",
        (subs * msgs) as f64 / secs,
        pct(0.50),
        pct(0.99),
    );
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .expect("usage: cluster_fanout URL [SUBS] [MSGS]");
    let subs: usize = args.next().map_or(300, |s| s.parse().unwrap());
    let msgs: usize = args.next().map_or(1000, |s| s.parse().unwrap());

    let mut cluster = Vec::new();
    for i in 0..3 {
        cluster.push(node(Some(&url), &format!("n{i}")).await);
    }
    run(&cluster, subs, msgs, &format!("3 nodes on {url}")).await;
    for n in &cluster {
        n.stop().await;
    }

    let alone = [node(None, "alone").await];
    run(&alone, subs, msgs, "1 node, no backplane").await;
    alone[0].stop().await;
    let idle = [node(Some(&url), "idle").await];
    run(&idle, subs, msgs, "1 node, idle backplane").await;
    idle[0].stop().await;
}
