//! Python `websockets` clients among the subscribers of three nodes on one engine (Redis, then
//! NATS): each gets every sequence-numbered broadcast of the three publishers once, in each
//! publisher's order, like the ws-client subscribers beside them.

mod common;

use std::{
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use common::{CHANNEL, Cluster, Engine, Kind, Seen};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
    sync::mpsc,
};
use ws_server::{Filter, ws_frame::Message};

/// Broadcasts per publisher (three publishers: 10,002 in all, as in the cluster test).
const PER_PUBLISHER: u64 = 3334;

/// Prints every text message on a line until `end`, then closes the connection normally.
const SCRIPT: &str = r#"
import asyncio, sys, websockets
async def main():
    async with websockets.connect(sys.argv[1], max_size=None, max_queue=None) as ws:
        async for m in ws:
            if m == "end":
                break
            sys.stdout.write(m + "\n")
            if m.startswith("p "):
                sys.stdout.flush()
    sys.stdout.flush()
asyncio.run(main())
"#;

/// A Python subscriber: its process and what it printed.
struct PySub {
    node: usize,
    url: String,
    child: Child,
    seen: Arc<Mutex<Seen>>,
    reader: tokio::task::JoinHandle<()>,
}

/// Starts `python3 -c SCRIPT url`; its lines go into `seen`, its first probe from each node
/// to `probes`.
fn python_subscriber(
    id: usize,
    node: usize,
    url: String,
    probes: mpsc::UnboundedSender<(usize, String)>,
) -> PySub {
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT, &url])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start python3");
    let stdout = child.stdout.take().unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s = seen.clone();
    let who = url.clone();
    let reader = tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        let mut probed = std::collections::HashSet::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            let mut parts = line.split(' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("p"), Some(node), None) => {
                    if probed.insert(node.to_owned()) {
                        let _ = probes.send((id, node.to_owned()));
                    }
                }
                (Some("d"), Some(publisher), Some(seq)) => s
                    .lock()
                    .unwrap()
                    .by_publisher
                    .entry(publisher.to_owned())
                    .or_default()
                    .push(seq.parse().unwrap()),
                _ => panic!("{who}: unexpected {line:?}"),
            }
        }
    });
    PySub {
        node,
        url,
        child,
        seen,
        reader,
    }
}

async fn python_subscribers_every_broadcast_once_in_order(kind: Kind) {
    if !ws_testkit::peers::runs("python3", &["-c", "import websockets"]) {
        ws_testkit::peers::missing(
            "python3 with the websockets package",
            "apt-get install -y python3-websockets",
        );
        return;
    }
    let Some(engine) = Engine::start(kind).await else {
        return;
    };
    // Nine ws-client subscribers, three per node, each heard a probe from every node.
    let cluster = Cluster::start(&engine.url(), |_| {}).await;
    // Two Python subscribers per node: the channel itself and a wildcard.
    let (probe_tx, mut probe_rx) = mpsc::unbounded_channel();
    let mut py = Vec::new();
    for (i, node) in cluster.nodes.iter().enumerate() {
        for q in ["?sub=bench/t", "?sub=bench/%23"] {
            let id = py.len();
            py.push(python_subscriber(id, i, node.ws_url(q), probe_tx.clone()));
        }
    }
    let want = py.len() * cluster.nodes.len();
    let mut heard = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while heard < want {
        for (i, node) in cluster.nodes.iter().enumerate() {
            node.server
                .broadcast(Message::text(format!("p n{i}")), &Filter::channel(CHANNEL))
                .await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        while probe_rx.try_recv().is_ok() {
            heard += 1;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {heard} of {want} probes reached the Python subscribers"
        );
    }

    let started = std::time::Instant::now();
    cluster.publish(1..=PER_PUBLISHER).await;
    cluster.wait_for(PER_PUBLISHER, 120).await;
    let nodes = cluster.finish().await;
    // The Python ones print as they go: their last lines come when they end.
    for node in &nodes {
        node.server
            .broadcast(Message::text("end"), &Filter::channel(CHANNEL))
            .await;
    }
    for sub in &mut py {
        let status = tokio::time::timeout(Duration::from_secs(60), sub.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} did not end", sub.url))
            .unwrap();
        assert!(status.success(), "{}: python3 {status}", sub.url);
    }
    eprintln!(
        "{} Python subscribers got {PER_PUBLISHER} x 3 broadcasts in {:?}",
        py.len(),
        started.elapsed()
    );
    for sub in py {
        sub.reader.await.unwrap();
        let who = format!("python {} (node {})", sub.url, sub.node);
        let missing = sub.seen.lock().unwrap().check(&who, PER_PUBLISHER);
        assert_eq!(missing.len(), 3, "{who} heard {:?}", missing.keys());
        for (publisher, gaps) in missing {
            assert!(
                gaps.is_empty(),
                "{who}: {} of {publisher}'s lost, first {:?}",
                gaps.len(),
                gaps.first()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_python_subscribers_every_broadcast_once_in_order() {
    python_subscribers_every_broadcast_once_in_order(Kind::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_python_subscribers_every_broadcast_once_in_order() {
    python_subscribers_every_broadcast_once_in_order(Kind::Nats).await;
}
