//! Behaviour of the server over real sockets, with a sans-IO test client.

mod common;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use common::{connect, connect_with, local_config};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::mpsc,
};
use ws_frame::{
    CloseCode, Config, Event, FragmentMode, Initiator, Message, deflate::DeflateConfig,
};
use ws_server::{
    AuthConfig, AuthOutcome, Authenticator, Binding, BoxFuture, ConnInfo, Ctx, Decision,
    DelimiterScan, Disconnect, EchoHandler, Error, Filter, Fragment, Handler, Heartbeat, Request,
    Server, ServerConfig, SlowReaderPolicy, TcpDecision,
};

#[tokio::test]
async fn echo_text_binary_and_clean_close() {
    let server = Server::start(local_config(), EchoHandler).await.unwrap();
    let addr = server.local_addrs()[0];
    let mut c = connect(addr, "/").await;
    c.send(Message::text("hello")).await;
    assert_eq!(c.message().await, Some(Message::text("hello")));
    c.send(Message::binary(vec![1u8, 2, 3])).await;
    assert_eq!(c.message().await, Some(Message::binary(vec![1u8, 2, 3])));
    assert_eq!(server.count(), 1);
    let info = &server.connections()[0];
    assert!(info.bytes_received() > 0 && info.bytes_sent() > 0);
    assert_eq!(c.close(CloseCode::NORMAL).await, CloseCode::NORMAL);
}

#[tokio::test]
async fn large_messages_round_trip_with_and_without_deflate() {
    let mut config = local_config();
    config.deflate = Some(DeflateConfig::default());
    let server = Server::start(config, EchoHandler).await.unwrap();
    let addr = server.local_addrs()[0];
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    for deflate in [false, true] {
        let extra: &[(&str, &str)] = if deflate {
            &[(
                "Sec-WebSocket-Extensions",
                "permessage-deflate; client_max_window_bits",
            )]
        } else {
            &[]
        };
        let mut c = connect_with(addr, "/", extra, Config::default())
            .await
            .unwrap();
        assert_eq!(c.header("sec-websocket-extensions").is_some(), deflate);
        c.send(Message::binary(big.clone())).await;
        assert_eq!(c.message().await, Some(Message::binary(big.clone())));
        c.close(CloseCode::NORMAL).await;
    }
}

#[tokio::test]
async fn oversized_message_is_closed_with_1009() {
    let mut config = local_config();
    config.ws.max_message = 1000;
    config.ws.max_frame = 1000;
    let server = Server::start(config, EchoHandler).await.unwrap();
    let mut c = connect(server.local_addrs()[0], "/").await;
    c.send(Message::binary(vec![0u8; 2000])).await;
    assert_eq!(c.closed().await, CloseCode::TOO_BIG);
}

struct Protocols;
impl Handler for Protocols {
    async fn on_handshake(&self, request: &Request) -> Decision {
        match request.path() {
            "/forbidden" => Decision::reject(403),
            "/custom" => Decision::Accept {
                protocol: Some("b".into()),
                headers: vec![("X-Test".into(), "yes".into())],
            },
            _ => Decision::accept(),
        }
    }
}

#[tokio::test]
async fn subprotocols_and_handshake_decisions() {
    let mut config = local_config();
    config.protocols = vec!["b".into(), "a".into()];
    let server = Server::start(config, Protocols).await.unwrap();
    let addr = server.local_addrs()[0];
    let offer = [("Sec-WebSocket-Protocol", "a, b")];
    let c = connect_with(addr, "/", &offer, Config::default())
        .await
        .unwrap();
    // The client's first offer that the server supports.
    assert_eq!(c.header("sec-websocket-protocol").as_deref(), Some("a"));
    let c = connect_with(addr, "/custom", &offer, Config::default())
        .await
        .unwrap();
    assert_eq!(c.header("sec-websocket-protocol").as_deref(), Some("b"));
    assert_eq!(c.header("x-test").as_deref(), Some("yes"));
    // No offer: no subprotocol. Only unknown ones: refused (ProtocolMismatch::Refuse).
    let c = connect_with(addr, "/", &[], Config::default())
        .await
        .unwrap();
    assert_eq!(c.header("sec-websocket-protocol"), None);
    let none = [("Sec-WebSocket-Protocol", "zzz")];
    let err = connect_with(addr, "/", &none, Config::default())
        .await
        .unwrap_err();
    assert!(err.starts_with("HTTP/1.1 400"), "{err}");
    let err = connect_with(addr, "/forbidden", &[], Config::default())
        .await
        .unwrap_err();
    assert!(err.starts_with("HTTP/1.1 403"), "{err}");
}

#[tokio::test]
async fn plain_http_requests_get_the_default_404_and_bad_upgrades_400() {
    let server = Server::start(local_config(), EchoHandler).await.unwrap();
    let addr = server.local_addrs()[0];
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /page HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    tcp.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 404"), "{out}");
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    tcp.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
}

struct Tokens;
impl Authenticator for Tokens {
    fn scheme<'a>(
        &'a self,
        _r: &'a Request,
        scheme: &'a str,
        data: &'a str,
    ) -> BoxFuture<'a, AuthOutcome> {
        let ok = scheme.eq_ignore_ascii_case("bearer") && data == "good";
        Box::pin(async move {
            if ok {
                AuthOutcome::allow("bearer-user")
            } else {
                AuthOutcome::Forbidden
            }
        })
    }
    fn token<'a>(&'a self, _r: &'a Request, token: &'a str) -> BoxFuture<'a, AuthOutcome> {
        let ok = token == "q s";
        Box::pin(async move {
            if ok {
                AuthOutcome::allow("query-user")
            } else {
                AuthOutcome::Unauthorized
            }
        })
    }
}

#[tokio::test]
async fn authentication_basic_bearer_and_query_token() {
    let mut config = local_config();
    let mut auth = AuthConfig::basic(vec![("alice".into(), "s3cret".into())]);
    auth.authenticator = Some(Arc::new(Tokens));
    auth.query_param = Some("token".into());
    auth.reject_headers = vec![("X-Why".into(), "auth".into())];
    config.auth = Some(auth);
    let server = Server::start(config, EchoHandler).await.unwrap();
    let addr = server.local_addrs()[0];
    let err = connect_with(addr, "/", &[], Config::default())
        .await
        .unwrap_err();
    assert!(err.starts_with("HTTP/1.1 401"), "{err}");
    assert!(
        err.contains("WWW-Authenticate: Basic realm=\"wskit\""),
        "{err}"
    );
    assert!(err.contains("X-Why: auth"), "{err}");
    // alice:s3cret
    let ok = [("Authorization", "Basic YWxpY2U6czNjcmV0")];
    let _alice = connect_with(addr, "/", &ok, Config::default())
        .await
        .unwrap();
    let wrong = [("Authorization", "Basic YWxpY2U6bm9wZQ==")];
    assert!(
        connect_with(addr, "/", &wrong, Config::default())
            .await
            .unwrap_err()
            .starts_with("HTTP/1.1 401")
    );
    let bearer = [("Authorization", "Bearer good")];
    let _bearer = connect_with(addr, "/", &bearer, Config::default())
        .await
        .unwrap();
    let bad_bearer = [("Authorization", "Bearer bad")];
    assert!(
        connect_with(addr, "/", &bad_bearer, Config::default())
            .await
            .unwrap_err()
            .starts_with("HTTP/1.1 403")
    );
    let _query = connect_with(addr, "/?token=q%20s", &[], Config::default())
        .await
        .unwrap();
    let mut users: Vec<String> = server
        .connections()
        .iter()
        .filter_map(|c| c.user().map(str::to_owned))
        .collect();
    users.sort();
    assert_eq!(users, vec!["alice", "bearer-user", "query-user"]);
}

#[tokio::test]
async fn origins_and_max_connections_are_enforced() {
    let mut config = local_config();
    config.allowed_origins = vec!["http://localhost:*".into()];
    config.max_connections = 1;
    let server = Server::start(config, EchoHandler).await.unwrap();
    let addr = server.local_addrs()[0];
    let evil = [("Origin", "http://evil.example")];
    assert!(
        connect_with(addr, "/", &evil, Config::default())
            .await
            .unwrap_err()
            .starts_with("HTTP/1.1 403")
    );
    let good = [("Origin", "http://localhost:3000")];
    let _first = connect_with(addr, "/", &good, Config::default())
        .await
        .unwrap();
    let err = connect_with(addr, "/", &good, Config::default())
        .await
        .unwrap_err();
    assert!(err.starts_with("HTTP/1.1 503"), "{err}");
}

#[tokio::test]
async fn slowloris_request_head_gets_408_after_the_handshake_timeout() {
    let mut config = local_config();
    config.handshake_timeout = Duration::from_millis(200);
    let server = Server::start(config, EchoHandler).await.unwrap();
    let mut tcp = TcpStream::connect(server.local_addrs()[0]).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    tcp.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 408"), "{out}");
}

/// Chat: subscribe by path, broadcast to a channel pattern.
struct Rooms;
impl Handler for Rooms {
    async fn on_connect(&self, ctx: &mut Ctx<'_>) {
        let room = ctx.info().path().trim_start_matches('/').to_owned();
        ctx.subscribe(&room).unwrap();
    }
}

#[tokio::test]
async fn broadcast_reaches_wildcard_subscribers_and_honours_filters() {
    let server = Server::start(local_config(), Rooms).await.unwrap();
    let addr = server.local_addrs()[0];
    let mut all = connect(addr, "/news/%23").await; // not a wildcard: literal path
    drop(all);
    let mut sport = connect(addr, "/news/sport").await;
    let mut plus = connect(addr, "/news/+").await;
    all = connect(addr, "/news").await;
    while server.count() < 3 {
        tokio::task::yield_now().await;
    }
    let n = server
        .broadcast("goal", &Filter::channel("news/sport"))
        .await;
    assert_eq!(n, 2);
    assert_eq!(sport.message().await, Some(Message::text("goal")));
    assert_eq!(plus.message().await, Some(Message::text("goal")));
    let sport_id = server
        .connections()
        .iter()
        .find(|c| c.path() == "/news/sport")
        .unwrap()
        .id();
    let n = server
        .broadcast("x", &Filter::channel("news/+").excluding([sport_id]))
        .await;
    assert_eq!(n, 1);
    assert_eq!(plus.message().await, Some(Message::text("x")));
    server.write_to(sport_id, "direct").await.unwrap();
    assert_eq!(sport.message().await, Some(Message::text("direct")));
    let n = server.broadcast("everyone", &Filter::all()).await;
    assert_eq!(n, 3);
    assert_eq!(all.message().await, Some(Message::text("everyone")));
    assert!(server.channels().contains(&"news/+".to_owned()));
    assert!(matches!(
        server.write_to(ws_server::ConnId(999), "x").await,
        Err(Error::UnknownConnection(999))
    ));
}

#[tokio::test]
async fn slow_reader_is_closed_with_1013_under_the_disconnect_policy() {
    let mut config = local_config();
    config.send_queue = 4;
    config.write_buffer_limit = 64 * 1024;
    config.ws.close_timeout = Duration::from_secs(30);
    let server = Server::start(config, EchoHandler).await.unwrap();
    let mut c = connect(server.local_addrs()[0], "/").await;
    while server.count() == 0 {
        tokio::task::yield_now().await;
    }
    let id = server.connections()[0].id();
    let chunk = Bytes::from(vec![0u8; 256 * 1024]);
    let mut full = false;
    for _ in 0..100_000 {
        match server.write_to(id, Message::Binary(chunk.clone())).await {
            Ok(()) => tokio::task::yield_now().await,
            Err(Error::QueueFull) => {
                full = true;
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(
        full,
        "the queue never filled although the client does not read"
    );
    // Now read: the data already queued arrives, then the Close with 1013.
    assert_eq!(c.closed().await, CloseCode::TRY_AGAIN);
}

#[tokio::test]
async fn backpressure_policy_makes_senders_wait_instead_of_failing() {
    let mut config = local_config();
    config.send_queue = 2;
    config.write_buffer_limit = 16 * 1024;
    config.slow_reader = SlowReaderPolicy::Backpressure;
    let server = Server::start(config, EchoHandler).await.unwrap();
    let mut c = connect(server.local_addrs()[0], "/").await;
    while server.count() == 0 {
        tokio::task::yield_now().await;
    }
    let id = server.connections()[0].id();
    let writer = {
        let server = server.clone();
        tokio::spawn(async move {
            for i in 0..200u32 {
                server
                    .write_to(id, Message::binary(vec![(i % 256) as u8; 64 * 1024]))
                    .await
                    .unwrap();
            }
        })
    };
    for i in 0..200u32 {
        let m = c.message().await.unwrap();
        assert_eq!(m.len(), 64 * 1024);
        assert_eq!(m.as_bytes()[0], (i % 256) as u8);
    }
    writer.await.unwrap();
}

#[derive(Clone, Default)]
struct Recorder(
    Arc<Mutex<Vec<Disconnect>>>,
    Option<mpsc::UnboundedSender<Disconnect>>,
);
impl Handler for Recorder {
    async fn on_disconnect(&self, _info: &Arc<ConnInfo>, d: Disconnect) {
        self.0.lock().unwrap().push(d.clone());
        if let Some(tx) = &self.1 {
            let _ = tx.send(d);
        }
    }
}

// On tokio's paused clock: the connection's timers take no real time.
#[tokio::test(start_paused = true)]
async fn heartbeat_drops_peers_that_do_not_answer_pings() {
    let mut config = local_config();
    config.heartbeat = Some(Heartbeat::new(
        Duration::from_millis(50),
        Duration::from_millis(100),
    ));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let server = Server::start(config, Recorder(Default::default(), Some(tx)))
        .await
        .unwrap();
    let addr = server.local_addrs()[0];
    // A peer that answers pings stays; one that does not is dropped.
    let mut good = connect(addr, "/").await;
    let mut silent = Config::default();
    silent.auto_pong = false;
    let mut bad = connect_with(addr, "/", &[], silent).await.unwrap();
    let pinger = tokio::spawn(async move {
        let mut pings = 0;
        while let Some(Ok(ev)) = good.event().await {
            if matches!(ev, Event::Ping(_)) {
                pings += 1;
                if pings == 5 {
                    break;
                }
            }
        }
        (good, pings)
    });
    let reader = tokio::spawn(async move { bad.closed().await });
    let d = rx.recv().await.unwrap();
    assert_eq!(d.reason, "heartbeat timeout");
    assert_eq!(d.by, Initiator::Local);
    assert_eq!(reader.await.unwrap(), CloseCode::ABNORMAL);
    let (_good, pings) = pinger.await.unwrap();
    assert_eq!(pings, 5);
    assert_eq!(server.count(), 1);
}

// On tokio's paused clock: the connection's timers take no real time.
#[tokio::test(start_paused = true)]
async fn idle_connections_are_closed() {
    let mut config = local_config();
    config.idle_timeout = Some(Duration::from_millis(100));
    let server = Server::start(config, EchoHandler).await.unwrap();
    let mut c = connect(server.local_addrs()[0], "/").await;
    let mut reason = None;
    while let Some(ev) = c.event().await {
        if let Ok(Event::Closed {
            code, reason: r, ..
        }) = ev
        {
            reason = Some((code, r.as_str().to_owned()));
            break;
        }
    }
    assert_eq!(reason, Some((CloseCode::NORMAL, "idle timeout".to_owned())));
}

#[tokio::test]
async fn stop_closes_everyone_with_1001_and_restart_listens_again() {
    let mut config = local_config();
    let server = Server::start(config.clone(), EchoHandler).await.unwrap();
    let addr = server.local_addrs()[0];
    let mut a = connect(addr, "/").await;
    let mut b = connect(addr, "/").await;
    let closers = tokio::spawn(async move { (a.closed().await, b.closed().await) });
    while server.count() < 2 {
        tokio::task::yield_now().await;
    }
    server.stop().await;
    assert_eq!(closers.await.unwrap(), (CloseCode::AWAY, CloseCode::AWAY));
    assert_eq!(server.count(), 0);
    // Restart binds the configured address (port 0: a new port) again.
    config.bindings = vec![Binding::plain(addr)];
    server.restart().await.unwrap();
    let mut c = connect(server.local_addrs()[0], "/").await;
    c.send("again").await;
    assert_eq!(c.message().await, Some(Message::text("again")));
}

struct Fragments(mpsc::UnboundedSender<Fragment>);
impl Handler for Fragments {
    async fn on_fragment(&self, _ctx: &mut Ctx<'_>, f: Fragment) {
        let _ = self.0.send(f);
    }
    async fn on_message(&self, ctx: &mut Ctx<'_>, msg: Message) {
        let _ = ctx.send(msg);
    }
}

#[tokio::test]
async fn fragment_mode_both_delivers_fragments_then_the_message() {
    let mut config = local_config();
    config.ws.fragment_mode = FragmentMode::Both;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let server = Server::start(config, Fragments(tx)).await.unwrap();
    let mut c = connect(server.local_addrs()[0], "/").await;
    c.ws.send_fragment(true, Bytes::from("hel"), true, false)
        .unwrap();
    c.ws.send_fragment(true, Bytes::from("lo"), false, true)
        .unwrap();
    c.flush().await;
    assert_eq!(c.message().await, Some(Message::text("hello")));
    let f1 = rx.recv().await.unwrap();
    let f2 = rx.recv().await.unwrap();
    assert!(f1.first && !f1.fin && f1.text && f1.payload == "hel");
    assert!(!f2.first && f2.fin && f2.payload == "lo");
    assert_eq!((f1.so_far, f2.so_far), (None, None), "off by default");
}

#[tokio::test]
async fn frg_all_fragments_carry_the_message_so_far() {
    let mut config = local_config();
    config.ws.fragment_mode = FragmentMode::Both;
    config.fragments_so_far = true;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let server = Server::start(config, Fragments(tx)).await.unwrap();
    let mut c = connect(server.local_addrs()[0], "/").await;
    // Two fragmented messages: the second one's data starts afresh.
    for (parts, whole) in [(["ab", "cd", "ef"], "abcdef"), (["x", "y", "z"], "xyz")] {
        for (i, part) in parts.iter().enumerate() {
            c.ws.send_fragment(true, Bytes::from(*part), i == 0, i == 2)
                .unwrap();
        }
        c.flush().await;
        assert_eq!(c.message().await, Some(Message::text(whole)));
        let mut seen = Vec::new();
        for _ in 0..3 {
            let f = rx.recv().await.unwrap();
            seen.push(String::from_utf8(f.so_far.unwrap().to_vec()).unwrap());
        }
        let expect: Vec<String> = (1..=3).map(|n| parts[..n].concat()).collect();
        assert_eq!(seen, expect);
    }
}

struct RawEcho;
impl Handler for RawEcho {
    async fn on_tcp_connect(
        &self,
        _p: std::net::SocketAddr,
        _l: std::net::SocketAddr,
    ) -> TcpDecision {
        TcpDecision::Accept
    }
    async fn on_unknown_protocol(&self, _peer: std::net::SocketAddr, first: &[u8]) -> bool {
        first.starts_with(b"hello")
    }
    async fn on_binary(&self, ctx: &mut Ctx<'_>, data: Bytes) {
        let mut reply = b"got ".to_vec();
        reply.extend_from_slice(&data);
        let _ = ctx.send(Message::binary(reply));
    }
}

#[tokio::test]
async fn plain_tcp_clients_with_delimiter_scanning() {
    let mut config = local_config();
    config.raw_tcp.enabled = true;
    config.raw_tcp.delimiter = b"\n".to_vec();
    config.raw_tcp.scan = DelimiterScan::All;
    let server = Server::start(config, RawEcho).await.unwrap();
    let addr = server.local_addrs()[0];
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"hello\nwor").await.unwrap();
    let mut buf = vec![0; 10];
    tcp.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"got hello\n");
    tcp.write_all(b"ld\n").await.unwrap();
    let mut buf = vec![0; 10];
    tcp.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"got world\n");
    assert_eq!(
        server.connections()[0].transport(),
        ws_server::Transport::Tcp
    );
    // Unknown protocols the handler refuses are closed.
    let mut other = TcpStream::connect(addr).await.unwrap();
    other.write_all(b"\x00\x01binary").await.unwrap();
    let mut rest = Vec::new();
    assert_eq!(other.read_to_end(&mut rest).await.unwrap(), 0);
}

#[tokio::test]
async fn stream_api_echo() {
    let (server, mut incoming) = Server::start_stream(local_config()).await.unwrap();
    let addr = server.local_addrs()[0];
    tokio::spawn(async move {
        while let Some(mut ws) = incoming.next().await {
            tokio::spawn(async move {
                while let Some(msg) = ws.next().await {
                    if ws.send(msg).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let mut c = connect(addr, "/").await;
    for i in 0..10 {
        c.send(Message::text(format!("m{i}"))).await;
        assert_eq!(c.message().await, Some(Message::text(format!("m{i}"))));
    }
    assert_eq!(c.close(CloseCode::NORMAL).await, CloseCode::NORMAL);
}

#[tokio::test]
async fn tls_binding_serves_wss() {
    let pki = ws_tls::test_certs::TestPki::generate();
    let tls = ws_tls::server_config(&pki.server_config()).unwrap();
    let config = ServerConfig::new(vec![
        Binding::tls("127.0.0.1:0".parse().unwrap(), tls),
        Binding::plain("[::1]:0".parse().unwrap()),
    ]);
    let server = Server::start(config, EchoHandler).await.unwrap();
    let addrs = server.local_addrs();
    let tcp = TcpStream::connect(addrs[0]).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = common::tls_connector(&pki)
        .connect(name, tcp)
        .await
        .unwrap();
    let mut c = common::handshake(Box::new(tls), "/", &[], Config::default())
        .await
        .unwrap();
    c.send("secure").await;
    assert_eq!(c.message().await, Some(Message::text("secure")));
    assert!(server.connections()[0].is_tls());
    // The IPv6 plain binding works at the same time.
    let mut v6 = connect(addrs[1], "/").await;
    v6.send("six").await;
    assert_eq!(v6.message().await, Some(Message::text("six")));
    assert_eq!(c.close(CloseCode::NORMAL).await, CloseCode::NORMAL);
}

#[tokio::test]
async fn throttled_connections_still_deliver_everything() {
    let mut config = local_config();
    config.throttle = Some(200_000);
    let server = Server::start(config, EchoHandler).await.unwrap();
    let mut c = connect(server.local_addrs()[0], "/").await;
    let data = vec![5u8; 300_000];
    c.send(Message::binary(data.clone())).await;
    assert_eq!(c.message().await, Some(Message::binary(data)));
}
