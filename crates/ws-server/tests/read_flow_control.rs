//! Read flow control: `Ctx::pause_reading` / `ConnHandle::{pause,resume}_reading`. A paused
//! connection does not read its socket (TCP pushes back on the peer) but keeps writing,
//! taking commands and answering its timers.

mod common;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use common::{connect, local_config};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::mpsc,
};
use ws_frame::{CloseCode, Event, Initiator, Message};
use ws_server::{ConnHandle, Ctx, Disconnect, Handler, Heartbeat, Server};

const T: Duration = Duration::from_secs(10);
/// Loopback kernel buffers (send + receive) stay far below this; a server that kept reading
/// would take it in a few seconds.
const BOUND: u64 = 48 << 20;

/// Pauses every connection in `on_connect`; records handles, received bytes, disconnects.
#[derive(Default)]
struct Paused {
    handle: Mutex<Option<ConnHandle>>,
    received: AtomicU64,
    messages: AtomicU64,
    disconnect: Mutex<Option<mpsc::UnboundedSender<Disconnect>>>,
}

#[derive(Clone, Default)]
struct PausedHandler(Arc<Paused>);

impl Handler for PausedHandler {
    async fn on_unknown_protocol(&self, _peer: std::net::SocketAddr, _first: &[u8]) -> bool {
        true
    }

    async fn on_connect(&self, ctx: &mut Ctx<'_>) {
        assert!(!ctx.is_reading_paused());
        ctx.pause_reading();
        assert!(ctx.is_reading_paused());
        *self.0.handle.lock().unwrap() = Some(ctx.handle());
    }

    async fn on_message(&self, _ctx: &mut Ctx<'_>, msg: Message) {
        self.0
            .received
            .fetch_add(msg.len() as u64, Ordering::Relaxed);
        self.0.messages.fetch_add(1, Ordering::Relaxed);
    }

    async fn on_binary(&self, _ctx: &mut Ctx<'_>, data: Bytes) {
        self.0
            .received
            .fetch_add(data.len() as u64, Ordering::Relaxed);
    }

    async fn on_disconnect(&self, _info: &Arc<ws_server::ConnInfo>, d: Disconnect) {
        if let Some(tx) = &*self.0.disconnect.lock().unwrap() {
            let _ = tx.send(d);
        }
    }
}

impl PausedHandler {
    async fn handle(&self) -> ConnHandle {
        let deadline = tokio::time::Instant::now() + T;
        loop {
            if let Some(h) = self.0.handle.lock().unwrap().clone() {
                return h;
            }
            assert!(tokio::time::Instant::now() < deadline, "no connection");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn received(&self) -> u64 {
        self.0.received.load(Ordering::Relaxed)
    }
}

/// A masked binary frame (mask 0: still masked as RFC 6455 requires).
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x82, 0x80 | 127];
    f.extend_from_slice(&(payload.len() as u64).to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 0]);
    f.extend_from_slice(payload);
    f
}

/// Samples `c` until it has not grown for a while; returns the value.
async fn plateau(c: &AtomicU64) -> u64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut last = c.load(Ordering::Relaxed);
    let mut still = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let now = c.load(Ordering::Relaxed);
        assert!(now < BOUND, "the peer kept writing: {now} bytes");
        assert!(
            tokio::time::Instant::now() < deadline,
            "no plateau: {now} bytes"
        );
        if now == last && now > 0 {
            still += 1;
            if still == 4 {
                return now;
            }
        } else {
            still = 0;
        }
        last = now;
    }
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + T;
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not in time"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_connection_pushes_back_on_its_peer_and_still_writes() {
    let handler = PausedHandler::default();
    let server = Server::start(local_config(), handler.clone())
        .await
        .unwrap();
    let c = connect(server.local_addrs()[0], "/").await;
    let handle = handler.handle().await;
    assert!(handle.is_reading_paused());
    assert!(handle.info().is_reading_paused());
    let (mut rd, mut wr) = tokio::io::split(c.io);
    let mut ws = c.ws;

    // The peer floods; its writes block once the kernel buffers are full.
    let written = Arc::new(AtomicU64::new(0));
    let w = written.clone();
    let flood = tokio::spawn(async move {
        let f = frame(&[0xa5; 64 * 1024]);
        while wr.write_all(&f).await.is_ok() {
            w.fetch_add(f.len() as u64, Ordering::Relaxed);
        }
    });
    let stuck = plateau(&written).await;
    assert_eq!(handler.received(), 0, "nothing delivered while paused");
    assert_eq!(
        handle.info().bytes_received(),
        0,
        "nothing read while paused"
    );

    // Meanwhile messages queued from other tasks still go out, in order.
    for i in 0..50u32 {
        handle.send(Message::text(i.to_string())).await.unwrap();
    }
    let mut buf = BytesMut::new();
    for i in 0..50u32 {
        let msg = tokio::time::timeout(T, async {
            loop {
                if let Some(Event::Message(m)) = ws.poll_event().unwrap() {
                    return m;
                }
                buf.clear();
                let n = rd.read_buf(ws.read_buf()).await.unwrap();
                assert!(n > 0, "the server closed");
            }
        })
        .await
        .expect("outgoing messages arrive while paused");
        assert_eq!(msg, Message::text(i.to_string()));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(written.load(Ordering::Relaxed), stuck, "still blocked");
    assert_eq!(handler.received(), 0);

    // Resumed: the server reads, the peer's writes flow again.
    handle.resume_reading();
    assert!(!handle.is_reading_paused());
    eventually("data delivered after resume", || {
        handler.received() > 4 << 20 && written.load(Ordering::Relaxed) > stuck + (4 << 20)
    })
    .await;

    // Paused again from another task: delivery stops at once, then the peer blocks again.
    handle.pause_reading();
    let stuck = plateau(&written).await;
    let got = handler.received();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(handler.received(), got, "nothing delivered while paused");
    assert_eq!(written.load(Ordering::Relaxed), stuck);
    assert_eq!(server.count(), 1);

    flood.abort();
    drop(rd);
    server.stop().await;
}

// On tokio's paused clock: twelve heartbeats take no real time.
#[tokio::test(start_paused = true)]
async fn paused_connection_keeps_its_heartbeat_and_closes_cleanly() {
    let mut config = local_config();
    config.heartbeat = Some(Heartbeat::new(
        Duration::from_millis(50),
        Duration::from_millis(100),
    ));
    let handler = PausedHandler::default();
    let (tx, mut disconnects) = mpsc::unbounded_channel();
    *handler.0.disconnect.lock().unwrap() = Some(tx);
    let server = Server::start(config, handler.clone()).await.unwrap();
    let mut c = connect(server.local_addrs()[0], "/").await;
    let handle = handler.handle().await;
    c.send(Message::text("unread")).await;

    // Pings keep coming for many pong timeouts: the unread pongs do not count against it.
    let mut pings = 0;
    tokio::time::timeout(T, async {
        while pings < 12 {
            match c.event().await {
                Some(Ok(Event::Ping(_))) => pings += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .await
    .expect("pings while paused");
    assert_eq!(
        server.count(),
        1,
        "alive after 12 heartbeats without a pong read"
    );
    assert_eq!(handler.0.messages.load(Ordering::Relaxed), 0);

    // Closing from the server: the connection reads again to complete the handshake (the
    // unread message is still delivered before the peer's Close).
    handle.close(CloseCode::NORMAL, "bye").await.unwrap();
    let code = tokio::time::timeout(T, c.closed()).await.expect("close");
    assert_eq!(code, CloseCode::NORMAL);
    let d = tokio::time::timeout(T, disconnects.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.code, CloseCode::NORMAL);
    assert_eq!(d.by, Initiator::User);
    assert_eq!(handler.0.messages.load(Ordering::Relaxed), 1);
    eventually("unregistered", || server.count() == 0).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_plain_tcp_connection_reads_after_resume() {
    let mut config = local_config();
    config.raw_tcp.enabled = true;
    let handler = PausedHandler::default();
    let server = Server::start(config, handler.clone()).await.unwrap();
    let mut tcp = TcpStream::connect(server.local_addrs()[0]).await.unwrap();
    let hello = b"\x16not http at all\r\n\r\n";
    tcp.write_all(hello).await.unwrap();
    let handle = handler.handle().await;
    tcp.write_all(&[7u8; 4096]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(handler.received(), 0, "nothing delivered while paused");
    let read = handle.info().bytes_received();
    assert!(
        read <= hello.len() as u64,
        "nothing read while paused: {read}"
    );
    // Writes still go out.
    handle.send(Message::binary(&b"out"[..])).await.unwrap();
    let mut out = [0u8; 3];
    tokio::time::timeout(T, tcp.read_exact(&mut out))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&out, b"out");
    handle.resume_reading();
    let total = (hello.len() + 4096) as u64;
    eventually("read after resume", || handler.received() == total).await;
    drop(tcp);
    server.stop().await;
}
