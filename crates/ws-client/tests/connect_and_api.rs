//! Connecting (URLs, failure causes, timeout) and the send / receive / close / split API.

mod common;

use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::{io::AsyncReadExt, io::AsyncWriteExt, net::TcpListener};
use ws_client::{ClientConfig, CloseCode, Error, Incoming, Initiator, Message, connect};
use ws_server::{Ctx, Handler};

use common::*;

#[tokio::test]
async fn echoes_text_and_binary_through_recv_and_stream() {
    let (server, addr) = echo().await;
    let mut ws = connect(ws_url(addr, "/echo?x=1"), ClientConfig::default())
        .await
        .unwrap();
    ws.send_text("hello").await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap(), Message::text("hello"));
    ws.send_binary(vec![1u8, 2, 3]).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::binary(vec![1u8, 2, 3])
    );
    ws.send(Message::text("third")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap().as_text(), Some("third"));
    assert_eq!(ws.url().target(), "/echo?x=1");
    assert_eq!(ws.peer_addr(), addr);
    assert_eq!(ws.response().unwrap().status, 101);
    server.stop().await;
}

#[tokio::test]
async fn dns_name_localhost_connects() {
    let (server, addr) = echo().await;
    let mut ws = connect(
        format!("ws://localhost:{}/", addr.port()),
        ClientConfig::default(),
    )
    .await
    .unwrap();
    ws.send_text("dns").await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap().as_text(), Some("dns"));
    server.stop().await;
}

#[tokio::test]
async fn ipv6_literal_connects_when_available() {
    let Ok(probe) = std::net::TcpListener::bind("[::1]:0") else {
        eprintln!("no IPv6 loopback here; skipping");
        return;
    };
    drop(probe);
    let config =
        ws_server::ServerConfig::new(vec![ws_server::Binding::plain("[::1]:0".parse().unwrap())]);
    let (server, addr) = start(config, ws_server::EchoHandler).await;
    let mut ws = connect(
        format!("ws://[::1]:{}/v6", addr.port()),
        ClientConfig::default(),
    )
    .await
    .unwrap();
    ws.send_text("six").await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap().as_text(), Some("six"));
    server.stop().await;
}

#[tokio::test]
async fn refused_connection_is_named() {
    let addr = closed_port().await;
    match connect(ws_url(addr, "/"), ClientConfig::default()).await {
        Err(Error::Refused { addr: a }) => assert_eq!(a, addr),
        other => panic!("expected Refused, got {other:?}"),
    }
}

#[tokio::test]
async fn silent_server_hits_the_connect_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let mut config = ClientConfig::default();
    config.connect_timeout = Duration::from_millis(300);
    let started = std::time::Instant::now();
    match connect(ws_url(addr, "/"), config).await {
        Err(Error::Timeout(d)) => assert_eq!(d, Duration::from_millis(300)),
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn invalid_url_and_config_are_refused_before_connecting() {
    assert!(matches!(
        connect("ftp://x/", ClientConfig::default()).await,
        Err(Error::InvalidUrl { .. })
    ));
    let mut config = ClientConfig::default();
    config.protocols = vec!["bad protocol".into()];
    assert!(matches!(
        connect("ws://127.0.0.1:1/", config).await,
        Err(Error::InvalidProtocol { protocol }) if protocol == "bad protocol"
    ));
}

/// Reports each fragment it receives as a text message.
struct FragmentReporter;

impl Handler for FragmentReporter {
    async fn on_fragment(&self, ctx: &mut Ctx<'_>, f: ws_server::Fragment) {
        let _ = ctx.send(format!(
            "{} first={} fin={}",
            f.payload.len(),
            f.first,
            f.fin
        ));
    }
    async fn on_message(&self, ctx: &mut Ctx<'_>, msg: Message) {
        let _ = ctx.send(format!("whole {}", msg.len()));
    }
}

#[tokio::test]
async fn send_with_fragment_size_splits_frames() {
    let mut config = local();
    config.ws.fragment_mode = ws_frame::FragmentMode::Deliver;
    let (server, addr) = start(config, FragmentReporter).await;
    let mut ws = connect(ws_url(addr, "/"), ClientConfig::default())
        .await
        .unwrap();
    ws.send_fragmented(Message::binary(vec![7u8; 10]), 4)
        .await
        .unwrap();
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(
            ws.recv()
                .await
                .unwrap()
                .unwrap()
                .as_text()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(
        got,
        [
            "4 first=true fin=false",
            "4 first=false fin=false",
            "2 first=false fin=true"
        ]
    );
    // Unfragmented sends arrive whole.
    ws.send_binary(vec![0u8; 10]).await.unwrap();
    assert_eq!(
        ws.recv().await.unwrap().unwrap().as_text(),
        Some("whole 10")
    );
    assert!(matches!(
        ws.send_fragmented(Message::text("x"), 0).await,
        Err(Error::ZeroFragmentSize)
    ));
    server.stop().await;
}

#[tokio::test]
async fn ping_gets_a_pong() {
    let (server, addr) = echo().await;
    let mut ws = connect(ws_url(addr, "/"), ClientConfig::default())
        .await
        .unwrap();
    ws.ping(&b"are you there"[..]).await.unwrap();
    match ws.recv_incoming().await.unwrap().unwrap() {
        Incoming::Pong(p) => assert_eq!(&p[..], b"are you there"),
        other => panic!("expected a pong, got {other:?}"),
    }
    assert!(matches!(
        ws.ping(vec![0u8; 126]).await,
        Err(Error::PingTooLong { len: 126, max: 125 })
    ));
    server.stop().await;
}

#[tokio::test]
async fn close_waits_for_the_handshake_and_ends_the_stream() {
    let (server, addr) = echo().await;
    let mut ws = connect(ws_url(addr, "/"), ClientConfig::default())
        .await
        .unwrap();
    ws.send_text("before").await.unwrap();
    let info = ws.close(CloseCode::from_u16(4001), "done").await.unwrap();
    assert_eq!(info.code.as_u16(), 4001);
    assert_eq!(info.reason, "done");
    assert_eq!(info.by, Initiator::User);
    assert!(ws.is_closed());
    assert!(matches!(ws.send_text("after").await, Err(Error::Closed)));
    // The echo sent before the close is still delivered, then the stream ends cleanly.
    assert_eq!(ws.recv().await.unwrap().unwrap().as_text(), Some("before"));
    assert!(ws.recv().await.is_none());
    assert_eq!(ws.close_info().unwrap().by, Initiator::User);
    // Closing again reports the same end.
    assert_eq!(
        ws.close(CloseCode::NORMAL, "").await.unwrap().code.as_u16(),
        4001
    );
    server.stop().await;
}

#[tokio::test]
async fn close_rejects_unsendable_codes_and_long_reasons() {
    let (server, addr) = echo().await;
    let ws = connect(ws_url(addr, "/"), ClientConfig::default())
        .await
        .unwrap();
    assert!(matches!(
        ws.close(CloseCode::ABNORMAL, "").await,
        Err(Error::Protocol(_))
    ));
    assert!(matches!(
        ws.close(CloseCode::NORMAL, &"x".repeat(124)).await,
        Err(Error::Protocol(_))
    ));
    assert!(!ws.is_closed());
    ws.close(CloseCode::NORMAL, "").await.unwrap();
    server.stop().await;
}

// On tokio's paused clock: the close timeout takes no real time.
#[tokio::test(start_paused = true)]
async fn close_times_out_when_the_server_never_answers() {
    let addr = mock_http(|head| switching(head, "")).await;
    let mut config = ClientConfig::default();
    config.ws.close_timeout = Duration::from_millis(300);
    let ws = connect(ws_url(addr, "/"), config).await.unwrap();
    let started = tokio::time::Instant::now();
    match ws.close(CloseCode::NORMAL, "").await {
        Err(Error::ReplyTimeout(d)) => assert_eq!(d, Duration::from_millis(300)),
        other => panic!("expected ReplyTimeout, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// Closes with 4000 when told to.
struct Closer;

impl Handler for Closer {
    async fn on_text(&self, ctx: &mut Ctx<'_>, _text: ws_frame::Utf8Bytes) {
        let _ = ctx.close(CloseCode::from_u16(4000), "server says bye");
    }
}

#[tokio::test]
async fn server_close_ends_the_stream_with_its_code() {
    let (server, addr) = start(local(), Closer).await;
    let mut ws = connect(ws_url(addr, "/"), ClientConfig::default())
        .await
        .unwrap();
    ws.send_text("close me").await.unwrap();
    assert!(ws.recv().await.is_none());
    let info = ws.close_info().unwrap();
    assert_eq!(
        (info.code.as_u16(), info.reason.as_str(), info.by),
        (4000, "server says bye", Initiator::Remote)
    );
    assert!(matches!(ws.send_text("late").await, Err(Error::Closed)));
    server.stop().await;
}

#[tokio::test]
async fn abrupt_server_disconnect_is_an_error_then_end() {
    struct Dropper;
    impl Handler for Dropper {
        async fn on_text(&self, ctx: &mut Ctx<'_>, _t: ws_frame::Utf8Bytes) {
            ctx.handle().disconnect();
        }
    }
    let (server, addr) = start(local(), Dropper).await;
    let mut ws = connect(ws_url(addr, "/"), ClientConfig::default())
        .await
        .unwrap();
    ws.send_text("drop").await.unwrap();
    assert!(ws.recv().await.unwrap().is_err());
    assert!(ws.recv().await.is_none());
    assert_eq!(ws.close_info().unwrap().code, CloseCode::ABNORMAL);
    server.stop().await;
}

#[tokio::test]
async fn split_halves_work_from_two_tasks() {
    let (server, addr) = echo().await;
    let ws = connect(ws_url(addr, "/"), ClientConfig::default())
        .await
        .unwrap();
    let (mut reader, writer) = ws.split();
    let w2 = writer.clone();
    let sender = tokio::spawn(async move {
        for i in 0..200 {
            w2.send_text(format!("m{i}")).await.unwrap();
        }
    });
    let receiver = tokio::spawn(async move {
        let mut n = 0;
        while let Some(Ok(m)) = reader.next().await {
            assert_eq!(m.as_text().unwrap(), format!("m{n}"));
            n += 1;
            if n == 200 {
                break;
            }
        }
        (n, reader)
    });
    sender.await.unwrap();
    let (n, mut reader) = receiver.await.unwrap();
    assert_eq!(n, 200);
    // Cancel-safety: a recv cancelled by a timeout loses nothing.
    assert!(
        tokio::time::timeout(Duration::from_millis(50), reader.recv())
            .await
            .is_err()
    );
    writer.send_text("after cancel").await.unwrap();
    assert_eq!(
        reader.recv().await.unwrap().unwrap().as_text(),
        Some("after cancel")
    );
    writer.close(CloseCode::NORMAL, "").await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn request_returns_the_next_message_or_times_out() {
    let (server, addr) = echo().await;
    let mut ws = connect(ws_url(addr, "/"), ClientConfig::default())
        .await
        .unwrap();
    let reply = ws
        .request("question", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(reply.as_text(), Some("question"));
    server.stop().await;

    let (server, addr) = start(local(), ws_server::NoopHandler).await;
    let mut ws = connect(ws_url(addr, "/"), ClientConfig::default())
        .await
        .unwrap();
    assert!(matches!(
        ws.request("anyone?", Duration::from_millis(200)).await,
        Err(Error::ReplyTimeout(_))
    ));
    server.stop().await;
}

#[tokio::test]
async fn dropping_the_socket_closes_with_1000() {
    #[derive(Clone, Default)]
    struct Watch(std::sync::Arc<std::sync::Mutex<Option<u16>>>);
    impl Handler for Watch {
        async fn on_disconnect(
            &self,
            _info: &std::sync::Arc<ws_server::ConnInfo>,
            d: ws_server::Disconnect,
        ) {
            *self.0.lock().unwrap() = Some(d.code.as_u16());
        }
    }
    let watch = Watch::default();
    let (server, addr) = start(local(), watch.clone()).await;
    let ws = connect(ws_url(addr, "/"), ClientConfig::default())
        .await
        .unwrap();
    drop(ws);
    for _ in 0..100 {
        if watch.0.lock().unwrap().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(*watch.0.lock().unwrap(), Some(1000));
    server.stop().await;
}

#[tokio::test]
async fn tcp_scheme_is_plain_bytes() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).await.unwrap();
        // No HTTP handshake: the first bytes are the payload itself.
        let mut reply = b"echo:".to_vec();
        reply.extend_from_slice(&buf[..n]);
        s.write_all(&reply).await.unwrap();
        let _ = s.read(&mut buf).await;
    });
    let mut ws = connect(
        format!("tcp://127.0.0.1:{}", addr.port()),
        ClientConfig::default(),
    )
    .await
    .unwrap();
    assert!(ws.response().is_none());
    ws.send_binary(&b"raw"[..]).await.unwrap();
    let mut got = Vec::new();
    while got.len() < 8 {
        got.extend_from_slice(ws.recv().await.unwrap().unwrap().as_bytes());
    }
    assert_eq!(&got, b"echo:raw");
    let info = ws.close(CloseCode::NORMAL, "").await.unwrap();
    assert_eq!(info.by, Initiator::User);
}

#[tokio::test]
async fn an_unfinished_fragmented_message_from_the_server_fails_at_its_deadline() {
    // The server starts a fragmented text message and never finishes it.
    let addr = mock_http(|head| format!("{}\x01\x03par", switching(head, ""))).await;
    let mut config = ClientConfig::default();
    config.ws.message_timeout = Some(Duration::from_millis(300));
    let mut ws = connect(ws_url(addr, "/"), config).await.unwrap();
    let started = std::time::Instant::now();
    let got = tokio::time::timeout(Duration::from_secs(5), ws.recv())
        .await
        .expect("the deadline ends the wait");
    assert!(
        matches!(
            got,
            Some(Err(Error::Protocol(ws_frame::Error::MessageTimeout { .. })))
        ),
        "{got:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(250));
}
