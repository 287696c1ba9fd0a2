//! Seed-parity rows of the server (issue 21): lifecycle hooks, ping with a timeout for one or
//! every peer, disconnect_all, on_error, the heartbeat's before-heartbeat hook, and the
//! `Server` header.

mod common;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use common::{connect, connect_with, local_config, request};
use tokio::{io::AsyncWriteExt, sync::mpsc, time::timeout};
use ws_frame::{CloseCode, Config, Event};
use ws_server::{
    ConnInfo, Ctx, Error, Handler, Heartbeat, NoopHandler, ProtocolMismatch, Server, ServerHandle,
};

async fn wait_for(server: &ServerHandle, what: impl Fn(&ServerHandle) -> bool) {
    timeout(Duration::from_secs(5), async {
        while !what(server) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("condition within 5 s");
}

/// Records the lifecycle hooks; panics in `on_startup` when asked to.
struct Lifecycle {
    events: mpsc::UnboundedSender<String>,
    panic_on_startup: bool,
}

impl Handler for Lifecycle {
    async fn on_startup(&self, server: &ServerHandle) {
        let _ = self
            .events
            .send(format!("startup {}", server.local_addrs().len()));
        assert!(!self.panic_on_startup, "startup hook bug");
    }

    async fn on_shutdown(&self, server: &ServerHandle) {
        let _ = self.events.send(format!("shutdown {}", server.count()));
    }
}

#[tokio::test]
async fn startup_and_shutdown_hooks_run_once_per_start_and_stop() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let handler = Lifecycle {
        events: tx,
        panic_on_startup: false,
    };
    let server = Server::start(local_config(), handler).await.unwrap();
    // Already run when start returns: listening, so local_addrs is filled.
    assert_eq!(rx.try_recv().unwrap(), "startup 1");
    let c = connect(server.local_addrs()[0], "/").await;
    let reader = tokio::spawn(async move {
        let mut c = c;
        c.closed().await
    });
    wait_for(&server, |s| s.count() == 1).await;
    server.stop().await;
    assert_eq!(reader.await.unwrap(), CloseCode::AWAY);
    // Run once the connections are gone, before stop returns.
    assert_eq!(rx.try_recv().unwrap(), "shutdown 0");
    server.stop().await;
    assert!(rx.try_recv().is_err(), "a second stop runs no hook");
    server.restart().await.unwrap();
    assert_eq!(rx.try_recv().unwrap(), "startup 1");
    server.stop().await;
    assert_eq!(rx.try_recv().unwrap(), "shutdown 0");
}

#[tokio::test]
async fn a_panicking_startup_hook_does_not_stop_the_server() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let handler = Lifecycle {
        events: tx,
        panic_on_startup: true,
    };
    let server = Server::start(local_config(), handler).await.unwrap();
    assert_eq!(rx.try_recv().unwrap(), "startup 1");
    let c = connect(server.local_addrs()[0], "/").await;
    wait_for(&server, |s| s.count() == 1).await;
    drop(c);
}

/// Reads (and so answers pings) until the stream ends; returns how many pings came.
fn answering(mut c: common::Client) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let mut pings = 0;
        while let Some(Ok(ev)) = c.event().await {
            if matches!(ev, Event::Ping(_)) {
                pings += 1;
            }
        }
        pings
    })
}

fn silent() -> Config {
    let mut config = Config::default();
    config.auto_pong = false;
    config
}

// On tokio's paused clock: the timeout takes no real time.
#[tokio::test(start_paused = true)]
async fn ping_all_with_a_timeout_drops_the_silent_peers_only() {
    // No heartbeat configured: the timeout comes from the call alone.
    let server = Server::start(local_config(), NoopHandler).await.unwrap();
    let addr = server.local_addrs()[0];
    let good = answering(connect(addr, "/good").await);
    let _bad = connect_with(addr, "/bad", &[], silent()).await.unwrap();
    wait_for(&server, |s| s.count() == 2).await;
    assert_eq!(server.ping_all_timeout(Duration::from_secs(2)), 2);
    wait_for(&server, |s| s.count() == 1).await;
    assert_eq!(server.connections()[0].path(), "/good");
    // The answering peer is still served.
    assert_eq!(server.ping_all_timeout(Duration::from_secs(2)), 1);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(server.count(), 1);
    server.stop().await;
    assert_eq!(good.await.unwrap(), 2);
}

// On tokio's paused clock: the timeout takes no real time.
#[tokio::test(start_paused = true)]
async fn ping_one_peer_with_a_timeout() {
    let server = Server::start(local_config(), NoopHandler).await.unwrap();
    let addr = server.local_addrs()[0];
    let _good = answering(connect(addr, "/good").await);
    let _bad = connect_with(addr, "/bad", &[], silent()).await.unwrap();
    wait_for(&server, |s| s.count() == 2).await;
    let handle = |path: &str| {
        let info = server
            .connections()
            .into_iter()
            .find(|i| i.path() == path)
            .unwrap();
        server.get(info.id()).unwrap()
    };
    let (good, bad) = (handle("/good"), handle("/bad"));
    let t = Duration::from_secs(1);
    good.ping_timeout(Bytes::from_static(b"k"), t)
        .await
        .unwrap();
    let e = bad.ping_timeout(Bytes::new(), t).await.unwrap_err();
    assert!(
        matches!(e, Error::PongTimeout { timeout } if timeout == t),
        "{e}"
    );
    wait_for(&server, |s| s.count() == 1).await;
    assert_eq!(server.connections()[0].path(), "/good");
}

#[tokio::test]
async fn disconnect_all_closes_everyone_and_keeps_listening() {
    let server = Server::start(local_config(), NoopHandler).await.unwrap();
    let addr = server.local_addrs()[0];
    let mut a = connect(addr, "/").await;
    let mut b = connect(addr, "/").await;
    wait_for(&server, |s| s.count() == 2).await;
    server.disconnect_all(CloseCode::AWAY);
    assert_eq!(a.closed().await, CloseCode::AWAY);
    assert_eq!(b.closed().await, CloseCode::AWAY);
    wait_for(&server, |s| s.count() == 0).await;
    let _c = connect(addr, "/").await;
    wait_for(&server, |s| s.count() == 1).await;
}

/// Reports every `on_error` as (has a connection, the error's text).
struct Errors(mpsc::UnboundedSender<(bool, String)>);

impl Handler for Errors {
    async fn on_error(&self, _peer: SocketAddr, conn: Option<&Arc<ConnInfo>>, error: &Error) {
        let _ = self.0.send((conn.is_some(), error.to_string()));
    }
}

#[tokio::test]
async fn on_error_reports_bad_handshakes_and_protocol_errors() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let server = Server::start(local_config(), Errors(tx)).await.unwrap();
    let addr = server.local_addrs()[0];
    // An upgrade with an unsupported version: 426 to the client, on_error without a connection.
    let resp = request(
        addr,
        "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
    )
    .await;
    assert!(resp.status >= 400, "{}", resp.status);
    let (with_conn, text) = timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(!with_conn, "{text}");
    assert!(text.contains(&resp.status.to_string()), "{text}");
    // An unmasked frame from a client: 1002, on_error with the connection.
    let mut c = connect(addr, "/").await;
    c.io.write_all(&[0x81, 0x02, b'h', b'i']).await.unwrap();
    assert_eq!(c.closed().await, CloseCode::PROTOCOL);
    let (with_conn, text) = timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(with_conn, "{text}");
    assert!(text.contains("mask"), "{text}");
}

/// Counts `on_before_heartbeat` calls and keeps connections alive itself.
struct KeepsAlive(Arc<AtomicUsize>);

impl Handler for KeepsAlive {
    async fn on_before_heartbeat(&self, _ctx: &mut Ctx<'_>) -> bool {
        self.0.fetch_add(1, Ordering::Relaxed);
        true
    }
}

/// Pings seen by `c` within `window`.
async fn pings_within(c: &mut common::Client, window: Duration) -> usize {
    let mut pings = 0;
    let _ = timeout(window, async {
        while let Some(Ok(ev)) = c.event().await {
            if matches!(ev, Event::Ping(_)) {
                pings += 1;
            }
        }
    })
    .await;
    pings
}

// On tokio's paused clock: the heartbeat takes no real time.
#[tokio::test(start_paused = true)]
async fn before_heartbeat_hook_that_handles_it_sends_no_ping() {
    let mut config = local_config();
    config.heartbeat = Some(Heartbeat::new(
        Duration::from_millis(50),
        Duration::from_millis(100),
    ));
    let calls = Arc::new(AtomicUsize::new(0));
    let server = Server::start(config, KeepsAlive(calls.clone()))
        .await
        .unwrap();
    let mut c = connect(server.local_addrs()[0], "/").await;
    assert_eq!(pings_within(&mut c, Duration::from_millis(520)).await, 0);
    assert!(calls.load(Ordering::Relaxed) >= 5, "{calls:?}");
    // Not a single pong was sent, yet the connection is alive: no pong was awaited.
    assert_eq!(server.count(), 1);
}

#[tokio::test]
async fn the_server_header_names_the_software() {
    let mut config = local_config();
    config.server_name = "parity-test/1.0".into();
    let server = Server::start(config, NoopHandler).await.unwrap();
    let addr = server.local_addrs()[0];
    let c = connect(addr, "/").await;
    assert_eq!(c.header("server").as_deref(), Some("parity-test/1.0"));
    let resp = request(addr, "GET /nothing HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_eq!(resp.status, 404);
    assert_eq!(resp.header("server"), Some("parity-test/1.0"));
}

#[tokio::test]
async fn a_subprotocol_mismatch_is_refused_unless_configured_otherwise() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut config = local_config();
    config.protocols = vec!["chat".into(), "v2.chat".into()];
    let server = Server::start(config.clone(), Errors(tx)).await.unwrap();
    let addr = server.local_addrs()[0];
    let unknown = [("Sec-WebSocket-Protocol", "mqtt, wamp")];
    let err = connect_with(addr, "/", &unknown, Config::default())
        .await
        .unwrap_err();
    assert!(err.starts_with("HTTP/1.1 400"), "{err}");
    let (with_conn, text) = rx.recv().await.unwrap();
    assert!(!with_conn);
    assert!(
        text.contains("mqtt, wamp") && text.contains("chat, v2.chat"),
        "{text}"
    );
    // A supported offer, or none at all, still connects.
    let both = [("Sec-WebSocket-Protocol", "mqtt, v2.chat")];
    let c = connect_with(addr, "/", &both, Config::default())
        .await
        .unwrap();
    assert_eq!(
        c.header("sec-websocket-protocol").as_deref(),
        Some("v2.chat")
    );
    connect_with(addr, "/", &[], Config::default())
        .await
        .unwrap();
    server.stop().await;

    config.protocol_mismatch = ProtocolMismatch::Proceed;
    let server = Server::start(config, NoopHandler).await.unwrap();
    let c = connect_with(server.local_addrs()[0], "/", &unknown, Config::default())
        .await
        .unwrap();
    assert_eq!(c.header("sec-websocket-protocol"), None);
}

/// Aborts the connection on "abort", after queueing a reply.
struct Aborts;

impl Handler for Aborts {
    async fn on_message(&self, ctx: &mut Ctx<'_>, msg: ws_frame::Message) {
        if msg.as_text() == Some("abort") {
            let _ = ctx.send(ws_frame::Message::text("never mind"));
            ctx.abort();
        }
    }
}

#[tokio::test]
async fn abort_drops_the_socket_without_a_close_frame() {
    let server = Server::start(local_config(), Aborts).await.unwrap();
    let addr = server.local_addrs()[0];
    let mut other = connect(addr, "/").await;
    let mut c = connect(addr, "/").await;
    c.send(ws_frame::Message::text("abort")).await;
    // The stream ends with no Close frame: 1006 on the client side.
    assert_eq!(c.closed().await, CloseCode::ABNORMAL);
    wait_for(&server, |s| s.count() == 1).await;
    // Only that connection.
    other.send(ws_frame::Message::text("hello")).await;
    assert_eq!(other.close(CloseCode::NORMAL).await, CloseCode::NORMAL);
}

#[tokio::test]
async fn an_alpn_callback_chooses_the_protocol_of_each_tls_connection() {
    let pki = ws_tls::test_certs::TestPki::generate();
    // The TLS configuration alone only speaks http/1.1: the callback decides instead.
    let tls = ws_tls::server_config(&pki.server_config()).unwrap();
    let binding = ws_server::Binding::tls("127.0.0.1:0".parse().unwrap(), tls)
        .with_alpn_select(|offered| offered.last().map(|p| p.to_vec()));
    let config = ws_server::ServerConfig::new(vec![binding]);
    let server = Server::start(config, ws_server::EchoHandler).await.unwrap();
    let mut ccfg = pki.client_config();
    ccfg.alpn = vec!["x-first".into(), "x-last".into()];
    let connector = tokio_rustls::TlsConnector::from(ws_tls::client_config(&ccfg).unwrap());
    let tcp = tokio::net::TcpStream::connect(server.local_addrs()[0])
        .await
        .unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"x-last"[..]));
    // The connection goes on as usual.
    let mut c = common::handshake(Box::new(tls), "/", &[], Config::default())
        .await
        .unwrap();
    c.send("over tls").await;
    assert_eq!(c.message().await, Some(ws_frame::Message::text("over tls")));
}

/// Sends 32 MiB at connect (more than the socket buffers hold) and reports the disconnect.
struct Floods(mpsc::UnboundedSender<(u16, String)>);

impl Handler for Floods {
    async fn on_connect(&self, ctx: &mut Ctx<'_>) {
        let chunk = Bytes::from(vec![7u8; 1 << 20]);
        for _ in 0..32 {
            let _ = ctx.send(ws_frame::Message::Binary(chunk.clone()));
        }
    }

    async fn on_disconnect(&self, _info: &Arc<ConnInfo>, d: ws_server::Disconnect) {
        let _ = self.0.send((d.code.as_u16(), d.reason.to_string()));
    }
}

// On tokio's paused clock: the write timeout takes no real time.
#[tokio::test(start_paused = true)]
async fn a_peer_that_takes_nothing_is_dropped_after_the_write_timeout() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut config = local_config();
    config.write_timeout = Some(Duration::from_secs(3));
    let server = Server::start(config, Floods(tx)).await.unwrap();
    // Connects and never reads again.
    let _stuck = connect(server.local_addrs()[0], "/").await;
    let (code, reason) = timeout(Duration::from_secs(60), rx.recv())
        .await
        .expect("dropped within the write timeout")
        .unwrap();
    assert_eq!(code, 1006);
    assert!(reason.contains("write timeout"), "{reason}");
    assert_eq!(server.count(), 0);
}
