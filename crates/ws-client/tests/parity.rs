//! The sgcWebSockets client options and calls that came late (issue 21 rows C-07..C-41,
//! one test per row, each failing without the feature.

mod common;

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};
use ws_client::{
    ClientConfig, ClientEvent, CloseCode, Error, Heartbeat, HeartbeatAction, Incoming, Initiator,
    Message, Priority, Reconnect, ReconnectingWebSocket, SgcAuth, connect,
};
use ws_server::{Body, Ctx, Decision, Handler, Request, Response};

use common::*;

#[derive(Clone, Default)]
struct PingCounter(Arc<AtomicUsize>);

impl Handler for PingCounter {
    async fn on_ping(&self, _ctx: &mut Ctx<'_>, _p: Bytes) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    async fn on_message(&self, ctx: &mut Ctx<'_>, msg: Message) {
        let _ = ctx.send(msg);
    }
}

/// A server that answers the upgrade and then only reads (never a frame back); `seen`
/// collects every byte the client sent after the handshake.
async fn silent_server() -> (SocketAddr, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let head = read_head(&mut s).await;
        s.write_all(switching(&head, "").as_bytes()).await.unwrap();
        let mut buf = [0u8; 4096];
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 {
                break;
            }
            log.lock().unwrap().extend_from_slice(&buf[..n]);
        }
        log.lock().unwrap().extend_from_slice(b"<EOF>");
    });
    (addr, seen)
}

// C-07: the before-heartbeat hook replaces the ping with a message, or suppresses it.
#[tokio::test(start_paused = true)]
async fn before_heartbeat_hook_replaces_or_suppresses_the_ping() {
    let counter = PingCounter::default();
    let (server, addr) = start(local(), counter.clone()).await;
    let mut config = ClientConfig::default();
    config.heartbeat = Some(Heartbeat::new(Duration::from_millis(100), None));
    config.before_heartbeat = Some(Arc::new(|| HeartbeatAction::Send(Message::text("hb"))));
    let mut ws = connect(ws_url(addr, "/"), config.clone()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(ws.recv().await.unwrap().unwrap().as_text(), Some("hb"));
    assert_eq!(
        counter.0.load(Ordering::SeqCst),
        0,
        "the message replaced the ping"
    );
    drop(ws);

    config.before_heartbeat = Some(Arc::new(|| HeartbeatAction::Skip));
    let ws = connect(ws_url(addr, "/"), config.clone()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(counter.0.load(Ordering::SeqCst), 0, "skipped");
    drop(ws);

    config.before_heartbeat = Some(Arc::new(|| HeartbeatAction::Ping));
    let ws = connect(ws_url(addr, "/"), config).await.unwrap();
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(counter.0.load(Ordering::SeqCst) >= 2, "pings go out");
    drop(ws);
    server.stop().await;
}

// C-08: ping(timeout) returns the round trip, and drops a peer whose pong does not come.
#[tokio::test(start_paused = true)]
async fn ping_and_wait_closes_a_silent_peer() {
    let (server, addr) = echo().await;
    let ws = connect(ws_url(addr, "/"), ClientConfig::default())
        .await
        .unwrap();
    let rtt = ws
        .ping_and_wait(&b"x"[..], Duration::from_secs(1))
        .await
        .unwrap();
    assert!(rtt < Duration::from_secs(1));
    server.stop().await;

    let (addr, _seen) = silent_server().await;
    let mut ws = connect(ws_url(addr, "/"), ClientConfig::default())
        .await
        .unwrap();
    let r = ws
        .ping_and_wait(&b"anyone?"[..], Duration::from_millis(300))
        .await;
    assert!(
        matches!(r, Err(Error::PeerDead(d)) if d == Duration::from_millis(300)),
        "{r:?}"
    );
    assert!(matches!(ws.recv().await, Some(Err(Error::PeerDead(_)))));
    assert!(ws.recv().await.is_none());
    assert_eq!(ws.close_info().unwrap().code, CloseCode::ABNORMAL);
}

// C-13: nothing arrives for read_timeout: the connection fails with ReadTimeout.
#[tokio::test(start_paused = true)]
async fn read_timeout_fails_a_silent_connection() {
    let (addr, _seen) = silent_server().await;
    let mut config = ClientConfig::default();
    config.read_timeout = Some(Duration::from_secs(2));
    let mut ws = connect(ws_url(addr, "/"), config).await.unwrap();
    let started = tokio::time::Instant::now();
    let r = ws.recv().await;
    assert!(
        matches!(r, Some(Err(Error::ReadTimeout(d))) if d == Duration::from_secs(2)),
        "{r:?}"
    );
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert!(started.elapsed() < Duration::from_secs(3));
}

// C-14: bytes that cannot be written for write_timeout fail the connection.
#[tokio::test(start_paused = true)]
async fn write_timeout_fails_when_the_server_does_not_read() {
    // Accepts the upgrade, then never reads: the socket buffers fill up.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let head = read_head(&mut s).await;
        s.write_all(switching(&head, "").as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_secs(3600)).await;
        drop(s);
    });
    let mut config = ClientConfig::default();
    config.write_timeout = Some(Duration::from_secs(5));
    let mut ws = connect(ws_url(addr, "/"), config).await.unwrap();
    let writer = ws.writer();
    tokio::spawn(async move {
        let chunk = Bytes::from(vec![7u8; 1 << 20]);
        while writer.send_binary(chunk.clone()).await.is_ok() {}
    });
    let r = tokio::time::timeout(Duration::from_secs(60), ws.recv())
        .await
        .expect("the write timeout fires");
    assert!(
        matches!(r, Some(Err(Error::WriteTimeout(d))) if d == Duration::from_secs(5)),
        "{r:?}"
    );
}

// C-26: abort drops the connection without a Close frame; the reader ends cleanly.
#[tokio::test]
async fn abort_drops_the_socket_without_a_close_frame() {
    let (addr, seen) = silent_server().await;
    let mut ws = connect(ws_url(addr, "/"), ClientConfig::default())
        .await
        .unwrap();
    ws.send_text("before").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    ws.abort().await;
    assert!(ws.recv().await.is_none(), "no error after an abort");
    let info = ws.close_info().unwrap();
    assert_eq!((info.code, info.by), (CloseCode::ABNORMAL, Initiator::User));
    for _ in 0..100 {
        if seen.lock().unwrap().ends_with(b"<EOF>") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let bytes = seen.lock().unwrap().clone();
    assert!(
        bytes.ends_with(b"<EOF>"),
        "the server saw the TCP connection end"
    );
    // One masked text frame (0x81), then nothing: no Close frame (0x88).
    assert_eq!(bytes[0], 0x81);
    assert_eq!(
        bytes.len(),
        2 + 4 + "before".len() + b"<EOF>".len(),
        "{bytes:?}"
    );
}

// C-11, C-15, C-16: keep-alive with interval and count, the local port range, linger 0.
#[tokio::test]
async fn socket_options_bind_linger_and_keepalive() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // A free port for the client to bind, found by binding it once.
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = probe.local_addr().unwrap().port();
    drop(probe);
    let mut config = ClientConfig::default();
    config.local_addr = Some("127.0.0.1".parse().unwrap());
    config.local_ports = Some((port, port));
    config.linger = Some(Duration::ZERO);
    config.tcp_keepalive = Some(Duration::from_secs(30));
    config.tcp_keepalive_interval = Some(Duration::from_secs(7));
    config.tcp_keepalive_retries = Some(4);
    let accept = tokio::spawn(async move { listener.accept().await.unwrap() });
    let ws = connect(format!("tcp://{addr}"), config.clone())
        .await
        .unwrap();
    let (mut server_side, peer) = accept.await.unwrap();
    assert_eq!(peer.port(), port, "bound to the configured port");
    // Linger 0: dropping the connection resets it instead of a FIN.
    ws.abort().await;
    drop(ws);
    let mut buf = [0u8; 16];
    let r = tokio::time::timeout(Duration::from_secs(5), server_side.read(&mut buf))
        .await
        .unwrap();
    assert!(
        matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "expected a reset, got {r:?}"
    );

    // The keep-alive settings land on the socket.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    ws_client::configure_tcp(&stream, &config).unwrap();
    let sock = socket2::SockRef::from(&stream);
    assert!(sock.keepalive().unwrap());
    assert_eq!(sock.tcp_keepalive_time().unwrap(), Duration::from_secs(30));
    assert_eq!(
        sock.tcp_keepalive_interval().unwrap(),
        Duration::from_secs(7)
    );
    assert_eq!(sock.tcp_keepalive_retries().unwrap(), 4);

    // A port range with every port taken is a clear error.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    config.local_ports = Some((
        taken.local_addr().unwrap().port(),
        taken.local_addr().unwrap().port(),
    ));
    config.linger = None;
    let r = connect(format!("tcp://{addr}"), config).await;
    assert!(matches!(r, Err(Error::LocalBind { .. })), "{r:?}");
}

// C-20: frgAll: each fragment event also carries everything since the first fragment.
#[tokio::test]
async fn frg_all_fragments_carry_the_message_so_far() {
    // Sends "abcdefgh" in three frames after the handshake.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let head = read_head(&mut s).await;
        s.write_all(switching(&head, "").as_bytes()).await.unwrap();
        s.write_all(b"\x01\x03abc\x00\x03def\x80\x02gh")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let mut config = ClientConfig::default();
    config.ws.fragment_mode = ws_frame::FragmentMode::Both;
    config.fragments_so_far = true;
    let mut ws = connect(ws_url(addr, "/"), config).await.unwrap();
    let mut so_far_seen = Vec::new();
    loop {
        match ws.recv_incoming().await.unwrap().unwrap() {
            Incoming::Fragment { so_far, .. } => so_far_seen.push(so_far.unwrap()),
            Incoming::Message(m) => {
                assert_eq!(m.as_text(), Some("abcdefgh"));
                break;
            }
            _ => {}
        }
    }
    assert_eq!(
        so_far_seen,
        [&b"abc"[..], b"abcdef", b"abcdefgh"].map(Bytes::from_static)
    );
    assert_eq!(so_far_seen.len(), 3, "fragments delivered: {so_far_seen:?}");
}

// C-27 and C-31: with a slow throttle the sends queue up, and a high-priority send overtakes
// the binary messages queued before it.
#[tokio::test(start_paused = true)]
async fn throttle_limits_the_rate_and_priorities_reorder_the_queue() {
    let (server, addr) = echo().await;
    let mut config = ClientConfig::default();
    config.throttle_bps = Some(8 * 1000); // 1000 bytes per second
    config.write_buffer_limit = 1;
    config.priorities.binary = Priority::Low;
    let mut ws = connect(ws_url(addr, "/"), config).await.unwrap();
    let started = tokio::time::Instant::now();
    for i in 0..4u8 {
        ws.send_binary(vec![i; 1000]).await.unwrap();
    }
    ws.send_text("urgent").await.unwrap();
    let mut order = Vec::new();
    for _ in 0..5 {
        match ws.recv().await.unwrap().unwrap() {
            Message::Text(t) => order.push(t.to_string()),
            m => order.push(format!("bin{}", m.as_bytes()[0])),
        }
    }
    let text_at = order.iter().position(|m| m == "urgent").unwrap();
    assert!(
        text_at < 4,
        "the text (normal) overtook queued binaries (low): {order:?}"
    );
    // 4 KB at 1000 B/s, the first second's worth at once and the last message's debt not
    // waited for: about 2 s (unthrottled, no time passes on the paused clock).
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        started.elapsed()
    );
    server.stop().await;
}

// C-32: reconnect attempts go round robin over the configured URLs.
#[tokio::test(start_paused = true)]
async fn reconnect_round_robins_over_the_url_list() {
    let (server_a, addr_a) = echo().await;
    let (server_b, addr_b) = echo().await;
    let mut config = ClientConfig::default();
    let mut r = Reconnect::default();
    r.interval = Duration::from_millis(10);
    r.jitter = 0.0;
    r.urls = vec![ws_client::WsUrl::parse(&ws_url(addr_b, "/")).unwrap()];
    config.reconnect = Some(r);
    let mut ws = ReconnectingWebSocket::connect(ws_url(addr_a, "/"), config)
        .await
        .unwrap();
    server_a.stop().await;
    loop {
        match ws.next_event().await.unwrap() {
            ClientEvent::Reconnected { url, attempt } => {
                assert_eq!(url.port(), addr_b.port());
                assert_eq!(attempt, 1, "the first retry already goes to the next URL");
                break;
            }
            ClientEvent::GaveUp(e) => panic!("gave up: {e}"),
            _ => {}
        }
    }
    ws.send(Message::text("on b")).await.unwrap();
    assert_eq!(ws.recv().await.unwrap().as_text(), Some("on b"));
    server_b.stop().await;
}

// C-41: the certificate callback sees the chain and can refuse it.
#[tokio::test]
async fn verify_peer_callback_sees_the_chain_and_can_refuse() {
    let pki = ws_tls::test_certs::TestPki::generate();
    let rustls = ws_tls::server_config(&pki.server_config()).unwrap();
    let cfg = ws_server::ServerConfig::new(vec![ws_server::Binding::tls(
        "127.0.0.1:0".parse().unwrap(),
        rustls,
    )]);
    let (server, addr) = start(cfg, ws_server::EchoHandler).await;
    let url = format!("wss://localhost:{}/", addr.port());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let mut config = ClientConfig::default();
    config.tls = pki.client_config();
    config.verify_peer = Some(Arc::new(move |name, chain| {
        log.lock().unwrap().push((name.to_owned(), chain.len()));
        true
    }));
    let ws = connect(url.as_str(), config.clone()).await.unwrap();
    drop(ws);
    let (name, depth) = seen.lock().unwrap()[0].clone();
    assert_eq!(name, "localhost");
    assert!(depth >= 1);
    config.verify_peer = Some(Arc::new(|_, _| false));
    match connect(url.as_str(), config).await {
        Err(e @ Error::PeerRejected { .. }) => assert!(e.to_string().contains("localhost")),
        other => panic!("expected a refusal, got {other:?}"),
    }
    server.stop().await;
}

/// The seeds' session and URL authentication on a ws-server handler (the server side of it
/// is another piece of work; this stands in for it).
struct SgcServer;

impl Handler for SgcServer {
    async fn on_http(&self, request: &Request, _body: &mut Body<'_>) -> Response {
        if request.path() == "/sgc/req/auth/session/alice/p%40ss" {
            Response::text(200, "tok-123\r\n")
        } else {
            Response::new(401)
        }
    }
    async fn on_handshake(&self, request: &Request) -> Decision {
        match request.url() {
            "/sgc/auth/session/tok-123?room=1" | "/sgc/auth/url/alice/p%40ss?room=1" => {
                Decision::accept()
            }
            _ => Decision::Reject(Response::new(401)),
        }
    }
    async fn on_message(&self, ctx: &mut Ctx<'_>, msg: Message) {
        let _ = ctx.send(msg);
    }
}

// session mode asks for a token, then connects with it; URL mode puts the
// credentials in the path. Off by default: without it the same server refuses.
#[tokio::test]
async fn sgc_session_and_url_authentication() {
    let (server, addr) = start(local(), SgcServer).await;
    let url = ws_url(addr, "/chat?room=1");
    for auth in [
        SgcAuth::Session {
            user: "alice".into(),
            password: "p@ss".into(),
        },
        SgcAuth::Url {
            user: "alice".into(),
            password: "p@ss".into(),
        },
    ] {
        let mut config = ClientConfig::default();
        config.sgc_auth = Some(auth.clone());
        let mut ws = connect(url.as_str(), config)
            .await
            .unwrap_or_else(|e| panic!("{auth:?}: {e}"));
        ws.send_text("in").await.unwrap();
        assert_eq!(ws.recv().await.unwrap().unwrap().as_text(), Some("in"));
        // The connection reports the URL asked for, not the one with the secret in it.
        assert_eq!(ws.url().target(), "/chat?room=1");
    }
    let r = connect(url.as_str(), ClientConfig::default()).await;
    assert_eq!(r.unwrap_err().status(), Some(401));
    let mut config = ClientConfig::default();
    config.sgc_auth = Some(SgcAuth::Session {
        user: "alice".into(),
        password: "wrong".into(),
    });
    let r = connect(url.as_str(), config).await;
    assert_eq!(
        r.unwrap_err().status(),
        Some(401),
        "a refused session request"
    );
    server.stop().await;
}

// C-10: a hook before every attempt changes the URL and the settings of that attempt.
#[tokio::test(start_paused = true)]
async fn before_connect_hook_edits_each_attempt() {
    let seen = Seen::default();
    let (server, addr) = start(local(), Capture(seen.clone())).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let mut config = ClientConfig::default();
    config.before_connect = Some(Arc::new(move |url, cfg| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        *url = url.with_target(&format!("/attempt/{n}")).unwrap();
        cfg.headers.push(("X-Attempt".into(), n.to_string()));
    }));
    let ws = connect(ws_url(addr, "/"), config.clone()).await.unwrap();
    assert_eq!(seen.last().0, "/attempt/1");
    assert_eq!(seen.header("x-attempt").as_deref(), Some("1"));
    assert_eq!(ws.url().target(), "/attempt/1");
    drop(ws);
    let ws = connect(ws_url(addr, "/"), config).await.unwrap();
    assert_eq!(seen.last().0, "/attempt/2");
    drop(ws);
    server.stop().await;
}

// The read timeout measures the server, not the application: while the application does not
// take messages (reading stops at recv_queue), it does not fire.
#[tokio::test(start_paused = true)]
async fn read_timeout_does_not_fire_while_the_application_is_behind() {
    let (server, addr) = echo().await;
    let mut config = ClientConfig::default();
    config.read_timeout = Some(Duration::from_secs(2));
    config.recv_queue = 1;
    let mut ws = connect(ws_url(addr, "/"), config).await.unwrap();
    for i in 0..8 {
        ws.send_text(format!("m{i}")).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(!ws.is_closed(), "{:?}", ws.close_info());
    for i in 0..8 {
        let m = ws.recv().await.unwrap().unwrap();
        assert_eq!(m.as_text(), Some(format!("m{i}").as_str()));
    }
    ws.send_text("after").await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap().as_text(), Some("after"));
    server.stop().await;
}

// Nor does the write timeout fire while the client's own throttle holds the writes back.
#[tokio::test(start_paused = true)]
async fn write_timeout_does_not_count_the_throttle() {
    let (server, addr) = echo().await;
    let mut config = ClientConfig::default();
    config.write_timeout = Some(Duration::from_secs(1));
    config.throttle_bps = Some(8 * 1000);
    let mut ws = connect(ws_url(addr, "/"), config).await.unwrap();
    for i in 0..5u8 {
        ws.send_binary(vec![i; 1000]).await.unwrap();
    }
    for i in 0..5u8 {
        let m = ws.recv().await.unwrap().unwrap();
        assert_eq!(m.as_bytes()[0], i);
    }
    // Those went out at once (the bucket's debt is paid afterwards): this one waits about 4 s
    // for the throttle, longer than the write timeout.
    let started = tokio::time::Instant::now();
    ws.send_text("late").await.unwrap();
    let m = ws.recv().await.unwrap();
    assert_eq!(m.unwrap().as_text(), Some("late"));
    assert!(
        started.elapsed() > Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(!ws.is_closed(), "{:?}", ws.close_info());
    server.stop().await;
}
