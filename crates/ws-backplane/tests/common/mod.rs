//! Real engines and ws-server nodes for the cluster tests.
//!
//! Engines are started on ports the test picks, bound to 127.0.0.1, and stopped by the test
//! (by their child handle). A missing engine skips the test, or fails it under
//! `WSKIT_REQUIRE_PEERS=1` (ws-testkit's policy).

#![allow(dead_code, unreachable_pub)]

use std::{
    collections::HashMap,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::Duration,
};

use tokio::sync::mpsc;
use ws_backplane::{Config, Link};
use ws_server::{
    Backplane, Binding, Ctx, Filter, Handler, ServerConfig, ServerHandle, SlowReaderPolicy,
    ws_frame::{Message, Utf8Bytes},
};

/// Which engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Redis,
    Nats,
}

/// A running engine (stopped when dropped).
pub struct Engine {
    pub kind: Kind,
    pub port: u16,
    child: Option<Child>,
}

pub fn free_port() -> u16 {
    ws_testkit::peers::free_port()
}

impl Engine {
    /// Starts `kind` on a free port; `None` (after the skip line) when it is not installed.
    pub async fn start(kind: Kind) -> Option<Self> {
        let (program, install) = match kind {
            Kind::Redis => ("redis-server", "apt-get install -y redis-server"),
            Kind::Nats => ("nats-server", "apt-get install -y nats-server"),
        };
        if !ws_testkit::peers::runs(program, &["--version"]) {
            ws_testkit::peers::missing(program, install);
            return None;
        }
        let mut engine = Self {
            kind,
            port: free_port(),
            child: None,
        };
        engine.restart().await;
        Some(engine)
    }

    /// The URL nodes use.
    pub fn url(&self) -> String {
        match self.kind {
            Kind::Redis => format!("redis://127.0.0.1:{}", self.port),
            Kind::Nats => format!("nats://127.0.0.1:{}", self.port),
        }
    }

    /// Starts the engine (again) on its port and waits until it accepts connections.
    pub async fn restart(&mut self) {
        let port = self.port.to_string();
        let mut cmd = match self.kind {
            Kind::Redis => {
                let mut c = Command::new("redis-server");
                c.args(["--port", &port, "--bind", "127.0.0.1", "--save", ""]);
                c.args(["--appendonly", "no"]);
                c
            }
            Kind::Nats => {
                let mut c = Command::new("nats-server");
                c.args(["-a", "127.0.0.1", "-p", &port]);
                c
            }
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the engine");
        self.child = Some(child);
        for _ in 0..500 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "{:?} did not listen on port {} within 5 s",
            self.kind, self.port
        );
    }

    /// Kills the engine (SIGKILL: no goodbye to its clients) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The nodes' handler: a connection opened with `?sub=PATTERN` (`%23` for `#`, `%2B` for `+`)
/// subscribes to it; a text message `CHANNEL PAYLOAD` broadcasts PAYLOAD to CHANNEL.
pub struct NodeHandler;

impl Handler for NodeHandler {
    async fn on_connect(&self, ctx: &mut Ctx<'_>) {
        let url = ctx.info().url().to_owned();
        if let Some((_, sub)) = url.split_once("sub=") {
            let sub = sub.replace("%23", "#").replace("%2B", "+");
            ctx.subscribe(&sub).expect("valid pattern");
        }
    }

    async fn on_text(&self, ctx: &mut Ctx<'_>, text: Utf8Bytes) {
        if let Some((channel, payload)) = text.as_str().split_once(' ') {
            let server = ctx.server().clone();
            server
                .broadcast(Message::text(payload.to_owned()), &Filter::channel(channel))
                .await;
        }
    }
}

/// One ws-server node on a free port, linked to `url` as `node_id`.
pub struct Node {
    pub server: ServerHandle,
    pub link: Arc<Link>,
    pub port: u16,
}

impl Node {
    pub async fn start(url: &str, node_id: &str, configure: impl FnOnce(&mut Config)) -> Self {
        // Every subscriber must get every message: senders wait rather than disconnect.
        Self::start_with(url, node_id, configure, |c| {
            c.slow_reader = SlowReaderPolicy::Backpressure;
        })
        .await
    }

    /// [`Node::start`] with the server's settings changed by `server`.
    pub async fn start_with(
        url: &str,
        node_id: &str,
        configure: impl FnOnce(&mut Config),
        server: impl FnOnce(&mut ServerConfig),
    ) -> Self {
        let mut config = ServerConfig::new(vec![Binding::plain("127.0.0.1:0".parse().unwrap())]);
        server(&mut config);
        let server = ws_server::Server::start(config, NodeHandler).await.unwrap();
        let port = server.local_addrs()[0].port();
        let mut bp = Config::new(url, node_id);
        configure(&mut bp);
        let link = ws_backplane::connect(bp).unwrap();
        assert!(server.attach_backplane(link.clone()));
        Self { server, link, port }
    }

    pub fn ws_url(&self, query: &str) -> String {
        format!("ws://127.0.0.1:{}/{query}", self.port)
    }
}

/// Waits (up to 10 s) until `cond` holds.
pub async fn until(what: &str, cond: impl FnMut() -> bool) {
    until_secs(what, 10, cond).await;
}

/// Waits (up to `secs`) until `cond` holds.
pub async fn until_secs(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    for _ in 0..secs * 100 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting until {what}");
}

/// Waits until every link is (`up`) or is not connected.
pub async fn links(nodes: &[Node], up: bool) {
    until(
        if up {
            "every link is up"
        } else {
            "every link is down"
        },
        || nodes.iter().all(|n| n.link.stats().connected == up),
    )
    .await;
}

/// What one subscriber saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// Per publisher, the sequence numbers in arrival order.
    pub by_publisher: HashMap<String, Vec<u64>>,
}

impl Seen {
    /// Checks: none twice, order kept per publisher; returns per publisher the numbers of
    /// 1..=last that never arrived.
    pub fn check(&self, who: &str, last: u64) -> HashMap<String, Vec<u64>> {
        let mut missing = HashMap::new();
        for (publisher, seqs) in &self.by_publisher {
            assert!(
                seqs.windows(2).all(|w| w[0] < w[1]),
                "{who}: {publisher}'s messages duplicated or out of order"
            );
            let gaps: Vec<u64> = (1..=last)
                .filter(|s| seqs.binary_search(s).is_err())
                .collect();
            missing.insert(publisher.clone(), gaps);
        }
        missing
    }
}

/// A subscriber: a ws-client connection recording `d PUBLISHER SEQ` messages in `seen` until
/// `done` says stop; probes (`p NODE`) are reported once per node on `probes`.
pub async fn subscriber(
    url: String,
    seen: Arc<std::sync::Mutex<Seen>>,
    probes: mpsc::UnboundedSender<(String, String)>,
    mut done: tokio::sync::watch::Receiver<bool>,
) {
    let mut ws = ws_client::connect(url.as_str(), ws_client::ClientConfig::default())
        .await
        .unwrap();
    let mut probed = std::collections::HashSet::new();
    loop {
        let msg = tokio::select! {
            m = ws.recv() => m,
            _ = done.changed() => return,
        };
        let Some(Ok(Message::Text(t))) = msg else {
            panic!("{url}: connection ended: {msg:?}");
        };
        let mut parts = t.as_str().split(' ');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("p"), Some(node), None) => {
                if probed.insert(node.to_owned()) {
                    let _ = probes.send((url.clone(), node.to_owned()));
                }
            }
            (Some("d"), Some(publisher), Some(seq)) => seen
                .lock()
                .unwrap()
                .by_publisher
                .entry(publisher.to_owned())
                .or_default()
                .push(seq.parse().unwrap()),
            _ => panic!("{url}: unexpected {t:?}"),
        }
    }
}

/// Three nodes with three subscribers each (`bench/t`, `bench/#`, `bench/+`: overlapping
/// patterns on one node, wildcards across nodes), once every subscriber has heard a probe
/// from every node (so every node's engine subscriptions are in place).
pub struct Cluster {
    pub nodes: Vec<Node>,
    /// (node index, subscriber url, what it saw)
    pub subs: Vec<(usize, String, Arc<std::sync::Mutex<Seen>>)>,
    done: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// The channel of the cluster tests.
pub const CHANNEL: &str = "bench/t";

impl Cluster {
    pub async fn start(url: &str, configure: impl Fn(&mut Config)) -> Self {
        let mut nodes = Vec::new();
        for i in 0..3 {
            nodes.push(Node::start(url, &format!("n{i}"), &configure).await);
        }
        links(&nodes, true).await;
        let (done, done_rx) = tokio::sync::watch::channel(false);
        let (probe_tx, mut probe_rx) = mpsc::unbounded_channel();
        let mut subs = Vec::new();
        let mut tasks = Vec::new();
        for (i, node) in nodes.iter().enumerate() {
            for q in ["?sub=bench/t", "?sub=bench/%23", "?sub=bench/%2B"] {
                let url = node.ws_url(q);
                let seen = Arc::new(std::sync::Mutex::new(Seen::default()));
                tasks.push(tokio::spawn(subscriber(
                    url.clone(),
                    seen.clone(),
                    probe_tx.clone(),
                    done_rx.clone(),
                )));
                subs.push((i, url, seen));
            }
        }
        let want = subs.len() * nodes.len();
        let mut heard = 0;
        {
            let probe = async {
                loop {
                    for (i, node) in nodes.iter().enumerate() {
                        node.server
                            .broadcast(Message::text(format!("p n{i}")), &Filter::channel(CHANNEL))
                            .await;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            };
            tokio::pin!(probe);
            let deadline = tokio::time::sleep(Duration::from_secs(20));
            tokio::pin!(deadline);
            while heard < want {
                tokio::select! {
                    Some(_) = probe_rx.recv() => heard += 1,
                    () = &mut probe => unreachable!(),
                    () = &mut deadline => panic!("only {heard} of {want} probes arrived"),
                }
            }
        }
        Self {
            nodes,
            subs,
            done,
            tasks,
        }
    }

    /// Publishes `d n{i} SEQ` for `seqs` from every node `i`, the nodes taking turns.
    pub async fn publish(&self, seqs: std::ops::RangeInclusive<u64>) {
        for seq in seqs {
            for (i, node) in self.nodes.iter().enumerate() {
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

    /// Waits (up to `secs`) until every subscriber saw `last` from every publisher.
    pub async fn wait_for(&self, last: u64, secs: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let behind: Vec<String> = self
                .subs
                .iter()
                .filter(|(_, _, seen)| {
                    let seen = seen.lock().unwrap();
                    (0..3).any(|i| {
                        seen.by_publisher
                            .get(&format!("n{i}"))
                            .and_then(|v| v.last())
                            .is_none_or(|&l| l < last)
                    })
                })
                .map(|(_, url, _)| url.clone())
                .collect();
            if behind.is_empty() {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                let stats: Vec<_> = self.nodes.iter().map(|n| n.link.stats()).collect();
                panic!("not every message {last} arrived at {behind:?}; links: {stats:#?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the subscribers.
    pub async fn finish(self) -> Vec<Node> {
        let _ = self.done.send(true);
        for t in self.tasks {
            t.await.unwrap();
        }
        self.nodes
    }
}
