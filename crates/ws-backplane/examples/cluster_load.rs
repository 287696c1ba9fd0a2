//! The load client of `cargo xtask bench cluster`: one publisher and many subscribers spread
//! over the nodes of a cluster that runs in other processes, so that the servers' CPU time can
//! be read apart from the client's. It speaks either `wskit serve`'s `/chat` (every text
//! message sent on `/chat` is broadcast to every `/chat` client of every node) or Socket.IO 4
//! (Engine.IO 4 over WebSocket: the publisher emits `pub`, the servers `io.emit("m", data)`).
//!
//! ```text
//! cargo run --release -p ws-backplane --example cluster_load -- wskit|socketio ws://HOST:PORT[,ws://HOST:PORT...] SUBS MSGS [SIZE]
//! ```
//!
//! Subscribers connect round-robin to the nodes; the publisher connects to the first. It sends
//! probes until every subscriber has seen one (so every node's engine subscription is in
//! place), then MSGS messages `m NANOS` as fast as it can, NANOS being the send time on the
//! client's clock (padded with ` xxx...` to SIZE bytes when given), and every subscriber
//! records receipt minus NANOS. Prints `connected: N`,
//! `start:` just before the first message, and at the end:
//!
//! ```text
//! result: subscribers=N messages=M deliveries=D lost=L secs=S deliveries_per_sec=R p50_ms=A p99_ms=B
//! ```
//! A burst: p50/p99 include the time messages wait in queues while the servers catch up.
//! Subscribers that got nothing new for 30 s count the rest as lost.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use ws_client::{ClientConfig, WebSocket};
use ws_server::ws_frame::Message;

/// The wire protocol of the cluster under test.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `wskit serve`'s `/chat`: the payload is the text message itself.
    Wskit,
    /// Socket.IO 4: `42["m","PAYLOAD"]` in, `42["pub","PAYLOAD"]` out, `2` pings answered `3`.
    SocketIo,
}

impl Mode {
    fn url(self, base: &str) -> String {
        let base = base.trim_end_matches('/');
        match self {
            Self::Wskit => format!("{base}/chat"),
            Self::SocketIo => format!("{base}/socket.io/?EIO=4&transport=websocket"),
        }
    }

    /// The frame that carries `payload` from the publisher.
    fn publish(self, payload: &str) -> String {
        match self {
            Self::Wskit => payload.to_owned(),
            Self::SocketIo => format!(r#"42["pub","{payload}"]"#),
        }
    }

    /// The payload of a received frame, `None` for anything else.
    fn payload(self, frame: &str) -> Option<&str> {
        match self {
            Self::Wskit => Some(frame),
            Self::SocketIo => frame.strip_prefix(r#"42["m",""#)?.strip_suffix(r#""]"#),
        }
    }
}

/// Opens one connection and, for Socket.IO, joins the default namespace.
async fn open(mode: Mode, base: &str) -> WebSocket {
    let url = mode.url(base);
    let mut ws = ws_client::connect(url.as_str(), ClientConfig::default())
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
    if mode == Mode::SocketIo {
        // Engine.IO open packet `0{...}`, then the namespace connect `40` / `40{"sid":...}`.
        expect_prefix(&mut ws, "0").await;
        ws.send_text("40").await.expect("namespace connect");
        expect_prefix(&mut ws, "40").await;
    }
    ws
}

async fn expect_prefix(ws: &mut WebSocket, prefix: &str) {
    match ws.recv().await {
        Some(Ok(Message::Text(t))) if t.as_str().starts_with(prefix) => {}
        other => panic!("Socket.IO handshake: expected `{prefix}...`, got {other:?}"),
    }
}

fn elapsed_ns(t0: Instant) -> u64 {
    u64::try_from(t0.elapsed().as_nanos()).expect("run shorter than 584 years")
}

struct Shared {
    /// Subscribers that have seen a probe.
    probed: AtomicUsize,
    /// Publish-to-receipt latencies in nanoseconds, every subscriber's.
    lat: Mutex<Vec<u64>>,
}

async fn subscriber(mode: Mode, mut ws: WebSocket, msgs: usize, t0: Instant, shared: Arc<Shared>) {
    let mut mine = Vec::with_capacity(msgs);
    let mut probed = false;
    while mine.len() < msgs {
        let next = tokio::time::timeout(Duration::from_secs(30), ws.recv()).await;
        let Ok(Some(Ok(Message::Text(t)))) = next else {
            break; // silent for 30 s or closed: the rest counts as lost
        };
        let frame = t.as_str();
        if mode == Mode::SocketIo && frame == "2" {
            let _ = ws.send_text("3").await;
            continue;
        }
        let Some(payload) = mode.payload(frame) else {
            continue;
        };
        if payload == "probe" {
            if !probed {
                probed = true;
                shared.probed.fetch_add(1, Ordering::Relaxed);
            }
        } else if let Some(sent) = payload
            .strip_prefix("m ")
            .and_then(|s| s.split(' ').next()?.parse::<u64>().ok())
        {
            mine.push(elapsed_ns(t0).saturating_sub(sent));
        }
    }
    shared
        .lat
        .lock()
        .expect("no panics while held")
        .extend(mine);
}

#[tokio::main]
async fn main() {
    let usage = "usage: cluster_load wskit|socketio URL[,URL...] SUBS MSGS [SIZE]";
    let mut args = std::env::args().skip(1);
    let mode = match args.next().as_deref() {
        Some("wskit") => Mode::Wskit,
        Some("socketio") => Mode::SocketIo,
        _ => panic!("{usage}"),
    };
    let bases: Vec<String> = args
        .next()
        .expect(usage)
        .split(',')
        .map(str::to_owned)
        .collect();
    let subs: usize = args.next().expect(usage).parse().expect(usage);
    let msgs: usize = args.next().expect(usage).parse().expect(usage);
    let size: usize = args.next().map_or(0, |s| s.parse().expect(usage));

    let t0 = Instant::now();
    let shared = Arc::new(Shared {
        probed: AtomicUsize::new(0),
        lat: Mutex::new(Vec::with_capacity(subs * msgs)),
    });
    // Connect in batches of 100 concurrent handshakes.
    let mut tasks = Vec::with_capacity(subs);
    for batch in (0..subs).collect::<Vec<_>>().chunks(100) {
        let opening: Vec<_> = batch
            .iter()
            .map(|&i| {
                let base = bases[i % bases.len()].clone();
                tokio::spawn(async move { open(mode, &base).await })
            })
            .collect();
        for o in opening {
            let ws = o.await.expect("connect task");
            tasks.push(tokio::spawn(subscriber(mode, ws, msgs, t0, shared.clone())));
        }
    }
    println!("connected: {subs}");

    let mut publisher = open(mode, &bases[0]).await;
    let writer = publisher.writer();
    // Drain (and, for Socket.IO, answer pings on) what the publisher receives.
    let pong = publisher.writer();
    tokio::spawn(async move {
        while let Some(Ok(m)) = publisher.recv().await {
            if let Message::Text(t) = m
                && mode == Mode::SocketIo
                && t.as_str() == "2"
            {
                let _ = pong.send_text("3").await;
            }
        }
    });

    // Probes until every subscriber has seen one: every node has its engine subscription.
    let settle = Instant::now();
    while shared.probed.load(Ordering::Relaxed) < subs {
        assert!(
            settle.elapsed() < Duration::from_secs(120),
            "only {} of {subs} subscribers received a probe within 120 s",
            shared.probed.load(Ordering::Relaxed)
        );
        writer
            .send_text(mode.publish("probe"))
            .await
            .expect("publishing a probe");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    println!("start:");
    let start = Instant::now();
    for _ in 0..msgs {
        let mut payload = format!("m {}", elapsed_ns(t0));
        if payload.len() + 1 < size {
            payload.push(' ');
            payload.extend(std::iter::repeat_n('x', size - payload.len()));
        }
        writer
            .send_text(mode.publish(&payload))
            .await
            .expect("publishing");
    }
    for t in tasks {
        t.await.expect("subscriber task");
    }
    let secs = start.elapsed().as_secs_f64();
    let mut lat = std::mem::take(&mut *shared.lat.lock().expect("no panics while held"));
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map_or(f64::NAN, |&ns| ns as f64 / 1e6)
    };
    let lost = subs * msgs - lat.len();
    // Without losses the run ends with the last delivery; with losses, 30 s of silence
    // are part of `secs`, so the rate counts only up to the 30 s wait.
    let active = if lost > 0 {
        (secs - 30.0).max(1e-3)
    } else {
        secs
    };
    println!(
        "result: subscribers={subs} messages={msgs} deliveries={} lost={lost} secs={secs:.3} deliveries_per_sec={:.0} p50_ms={:.2} p99_ms={:.2}",
        lat.len(),
        lat.len() as f64 / active,
        pct(0.50),
        pct(0.99),
    );
}
