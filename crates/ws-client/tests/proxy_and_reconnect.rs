//! Proxies (HTTP CONNECT, SOCKS4, SOCKS4a, SOCKS5, against in-test mock proxies) and the
//! reconnect watchdog.

mod common;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use ws_client::{
    ClientConfig, ClientEvent, CloseCode, Error, Proxy, ProxyKind, Reconnect, ReconnectDecision,
    ReconnectingWebSocket, WsUrl as Url, connect,
};
use ws_server::{Ctx, Handler};

use common::*;

async fn via(proxy: Proxy, url: String) -> Result<(), Error> {
    let mut config = ClientConfig::default();
    config.proxy = Some(proxy);
    let mut ws = connect(url, config).await?;
    ws.send_text("through the proxy").await?;
    assert_eq!(
        ws.recv().await.unwrap()?.as_text(),
        Some("through the proxy")
    );
    ws.close(CloseCode::NORMAL, "").await?;
    Ok(())
}

#[tokio::test]
async fn http_connect_proxy_with_basic_credentials() {
    let (server, addr) = echo().await;
    let (paddr, log) = http_proxy(Some(("pu", "pp"))).await;
    let proxy = Proxy::new(ProxyKind::Http, "127.0.0.1", paddr.port()).with_credentials("pu", "pp");
    via(proxy, ws_url(addr, "/")).await.unwrap();
    let head = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert!(head.starts_with(&format!("CONNECT 127.0.0.1:{} HTTP/1.1\r\n", addr.port())));
    let wrong = Proxy::new(ProxyKind::Http, "127.0.0.1", paddr.port()).with_credentials("pu", "no");
    match via(wrong, ws_url(addr, "/")).await {
        Err(Error::Proxy(m)) => assert!(m.contains("407"), "{m}"),
        other => panic!("expected a proxy error, got {other:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn http_connect_proxy_carries_tls() {
    let pki = ws_tls::test_certs::TestPki::generate();
    let rustls = ws_tls::server_config(&pki.server_config()).unwrap();
    let sc = ws_server::ServerConfig::new(vec![ws_server::Binding::tls(
        "127.0.0.1:0".parse().unwrap(),
        rustls,
    )]);
    let (server, addr) = start(sc, ws_server::EchoHandler).await;
    let (paddr, log) = http_proxy(None).await;
    let mut config = ClientConfig::default();
    config.tls = pki.client_config();
    config.proxy = Some(Proxy::new(ProxyKind::Http, "127.0.0.1", paddr.port()));
    let mut ws = connect(format!("wss://localhost:{}/", addr.port()), config)
        .await
        .unwrap();
    ws.send_text("tls in tunnel").await.unwrap();
    assert_eq!(
        ws.recv().await.unwrap().unwrap().as_text(),
        Some("tls in tunnel")
    );
    let head = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert!(
        head.starts_with(&format!("CONNECT localhost:{} ", addr.port())),
        "{head}"
    );
    server.stop().await;
}

#[tokio::test]
async fn socks4_resolves_locally() {
    let (server, addr) = echo().await;
    let (paddr, log) = socks_proxy(None).await;
    let proxy =
        Proxy::new(ProxyKind::Socks4, "127.0.0.1", paddr.port()).with_credentials("ident", "");
    via(proxy, format!("ws://localhost:{}/", addr.port()))
        .await
        .unwrap();
    let bytes = log.0.lock().unwrap().clone();
    // VN CD DSTPORT DSTIP USERID NUL
    assert_eq!(bytes[0], 4);
    assert_eq!(bytes[1], 1);
    assert_eq!(&bytes[2..4], &addr.port().to_be_bytes());
    assert_eq!(&bytes[4..8], &[127, 0, 0, 1]);
    assert_eq!(&bytes[8..], b"ident\0");
    server.stop().await;
}

#[tokio::test]
async fn socks4a_sends_the_host_name() {
    let (server, addr) = echo().await;
    let (paddr, log) = socks_proxy(None).await;
    let proxy = Proxy::new(ProxyKind::Socks4a, "127.0.0.1", paddr.port());
    via(proxy, format!("ws://localhost:{}/", addr.port()))
        .await
        .unwrap();
    let bytes = log.0.lock().unwrap().clone();
    assert_eq!(&bytes[4..8], &[0, 0, 0, 1]);
    assert_eq!(&bytes[8..], b"\0localhost\0");
    server.stop().await;
}

#[tokio::test]
async fn socks5_with_and_without_credentials() {
    let (server, addr) = echo().await;
    let (open, log) = socks_proxy(None).await;
    via(
        Proxy::new(ProxyKind::Socks5, "127.0.0.1", open.port()),
        format!("ws://localhost:{}/", addr.port()),
    )
    .await
    .unwrap();
    let bytes = log.0.lock().unwrap().clone();
    // Greeting offered "no auth" only, then CONNECT with a domain name (ATYP 3).
    assert_eq!(&bytes[..2], &[5, 0]);
    assert_eq!(&bytes[2..6], &[5, 1, 0, 3]);
    assert_eq!(&bytes[6..], b"localhost");

    let (locked, _) = socks_proxy(Some(("su", "sp"))).await;
    via(
        Proxy::new(ProxyKind::Socks5, "127.0.0.1", locked.port()).with_credentials("su", "sp"),
        ws_url(addr, "/"),
    )
    .await
    .unwrap();
    match via(
        Proxy::new(ProxyKind::Socks5, "127.0.0.1", locked.port()).with_credentials("su", "bad"),
        ws_url(addr, "/"),
    )
    .await
    {
        Err(Error::Proxy(m)) => assert!(m.contains("refused"), "{m}"),
        other => panic!("expected a proxy error, got {other:?}"),
    }
    match via(
        Proxy::new(ProxyKind::Socks5, "127.0.0.1", locked.port()),
        ws_url(addr, "/"),
    )
    .await
    {
        Err(Error::Proxy(m)) => assert!(m.contains("no acceptable"), "{m}"),
        other => panic!("expected a proxy error, got {other:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn socks_target_unreachable_is_a_proxy_error() {
    let (paddr, _) = socks_proxy(None).await;
    let dead = closed_port().await;
    for kind in [ProxyKind::Socks4, ProxyKind::Socks5] {
        assert!(matches!(
            via(
                Proxy::new(kind, "127.0.0.1", paddr.port()),
                ws_url(dead, "/")
            )
            .await,
            Err(Error::Proxy(_))
        ));
    }
}

/// Drops the connection (no close handshake) on "drop", echoes everything else.
struct Flaky;

impl Handler for Flaky {
    async fn on_text(&self, ctx: &mut Ctx<'_>, text: ws_frame::Utf8Bytes) {
        if text.as_str() == "drop" {
            ctx.handle().disconnect();
        } else {
            let _ = ctx.send(ws_frame::Message::Text(text));
        }
    }
}

fn fast(max_attempts: u32) -> Reconnect {
    let mut r = Reconnect::default();
    r.interval = Duration::from_millis(30);
    r.multiplier = 1.5;
    r.max_interval = Duration::from_millis(200);
    r.jitter = 0.2;
    r.max_attempts = max_attempts;
    r
}

async fn event(ws: &mut ReconnectingWebSocket) -> ClientEvent {
    tokio::time::timeout(Duration::from_secs(5), ws.next_event())
        .await
        .expect("an event in time")
        .expect("watchdog still running")
}

// On tokio's paused clock: the backoff takes no real time.
#[tokio::test(start_paused = true)]
async fn reconnects_after_an_unexpected_disconnect() {
    let (server, addr) = start(local(), Flaky).await;
    let mut config = ClientConfig::default();
    config.reconnect = Some(fast(0));
    let mut ws = ReconnectingWebSocket::connect(ws_url(addr, "/"), config)
        .await
        .unwrap();
    ws.send("one").await.unwrap();
    assert!(matches!(event(&mut ws).await, ClientEvent::Message(m) if m.as_text() == Some("one")));
    ws.send("drop").await.unwrap();
    assert!(matches!(
        event(&mut ws).await,
        ClientEvent::Disconnected { error: Some(_), .. }
    ));
    match event(&mut ws).await {
        ClientEvent::Reconnected { attempt, url } => {
            assert_eq!(attempt, 1);
            assert_eq!(url.port(), addr.port());
        }
        other => panic!("expected Reconnected, got {other:?}"),
    }
    assert!(ws.is_connected());
    ws.send("two").await.unwrap();
    assert_eq!(ws.recv().await.unwrap().as_text(), Some("two"));
    // A local close never reconnects.
    let info = ws.close(CloseCode::NORMAL, "bye").await.unwrap();
    assert_eq!(info.by, ws_client::Initiator::User);
    match event(&mut ws).await {
        ClientEvent::Disconnected { error: None, info } => {
            assert_eq!(info.unwrap().by, ws_client::Initiator::User);
        }
        other => panic!("expected Disconnected, got {other:?}"),
    }
    assert!(
        tokio::time::timeout(Duration::from_secs(2), ws.next_event())
            .await
            .expect("watchdog ends")
            .is_none()
    );
    assert!(matches!(ws.send("late").await, Err(Error::Closed)));
    server.stop().await;
}

// On tokio's paused clock: the backoff takes no real time.
#[tokio::test(start_paused = true)]
async fn gives_up_after_max_attempts() {
    let (server, addr) = start(local(), Flaky).await;
    let mut config = ClientConfig::default();
    config.reconnect = Some(fast(2));
    let mut ws = ReconnectingWebSocket::connect(ws_url(addr, "/"), config)
        .await
        .unwrap();
    server.stop().await;
    assert!(matches!(
        event(&mut ws).await,
        ClientEvent::Disconnected { .. }
    ));
    assert!(matches!(
        event(&mut ws).await,
        ClientEvent::AttemptFailed { attempt: 1, .. }
    ));
    assert!(matches!(
        event(&mut ws).await,
        ClientEvent::AttemptFailed { attempt: 2, .. }
    ));
    match event(&mut ws).await {
        ClientEvent::GaveUp(e) => assert!(matches!(*e, Error::Refused { .. }), "{e:?}"),
        other => panic!("expected GaveUp, got {other:?}"),
    }
    assert!(ws.next_event().await.is_none());
}

// On tokio's paused clock: the backoff takes no real time.
#[tokio::test(start_paused = true)]
async fn hook_can_fail_over_to_another_url_or_cancel() {
    let (primary, paddr) = start(local(), Flaky).await;
    let (backup, baddr) = start(local(), ws_server::EchoHandler).await;
    let backup_url = Url::parse(&ws_url(baddr, "/backup")).unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let seen_urls = Arc::new(Mutex::new(Vec::new()));
    let mut policy = fast(0);
    let (c, s, b) = (calls.clone(), seen_urls.clone(), backup_url.clone());
    policy.hook = Some(Arc::new(move |attempt, url: &Url, _e: Option<&Error>| {
        c.fetch_add(1, Ordering::SeqCst);
        s.lock().unwrap().push(url.to_string());
        if attempt >= 2 {
            ReconnectDecision::ChangeUrl(b.clone())
        } else {
            ReconnectDecision::Proceed
        }
    }));
    let mut config = ClientConfig::default();
    config.reconnect = Some(policy);
    let mut ws = ReconnectingWebSocket::connect(ws_url(paddr, "/"), config)
        .await
        .unwrap();
    primary.stop().await;
    loop {
        match event(&mut ws).await {
            ClientEvent::Reconnected { url, attempt } => {
                assert_eq!(url, backup_url);
                assert_eq!(attempt, 2);
                break;
            }
            ClientEvent::Disconnected { .. } | ClientEvent::AttemptFailed { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(seen_urls.lock().unwrap()[0].contains(&paddr.port().to_string()));
    ws.send("on backup").await.unwrap();
    assert_eq!(ws.recv().await.unwrap().as_text(), Some("on backup"));
    backup.stop().await;

    // Cancel.
    let (server, addr) = start(local(), Flaky).await;
    let mut policy = fast(0);
    policy.hook = Some(Arc::new(|_, _: &Url, _: Option<&Error>| {
        ReconnectDecision::Cancel
    }));
    let mut config = ClientConfig::default();
    config.reconnect = Some(policy);
    let mut ws = ReconnectingWebSocket::connect(ws_url(addr, "/"), config)
        .await
        .unwrap();
    ws.send("drop").await.unwrap();
    assert!(matches!(
        event(&mut ws).await,
        ClientEvent::Disconnected { .. }
    ));
    match event(&mut ws).await {
        ClientEvent::GaveUp(e) => assert!(matches!(*e, Error::Cancelled)),
        other => panic!("expected GaveUp, got {other:?}"),
    }
    server.stop().await;
}

// On tokio's paused clock: the backoff takes no real time.
#[tokio::test(start_paused = true)]
async fn initial_failure_is_returned_or_retried() {
    let dead = closed_port().await;
    let mut config = ClientConfig::default();
    config.reconnect = Some(fast(0));
    assert!(matches!(
        ReconnectingWebSocket::connect(ws_url(dead, "/"), config.clone()).await,
        Err(Error::Refused { .. })
    ));
    // With retry_initial, attempts go on in the background until the server shows up.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut policy = fast(0);
    policy.retry_initial = true;
    config.reconnect = Some(policy);
    let mut ws = ReconnectingWebSocket::connect(ws_url(addr, "/"), config)
        .await
        .unwrap();
    assert!(!ws.is_connected());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let sc = ws_server::ServerConfig::new(vec![ws_server::Binding::plain(addr)]);
    let (server, _) = start(sc, ws_server::EchoHandler).await;
    loop {
        match event(&mut ws).await {
            ClientEvent::Reconnected { .. } => break,
            ClientEvent::AttemptFailed { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    ws.send("finally").await.unwrap();
    assert_eq!(ws.recv().await.unwrap().as_text(), Some("finally"));
    server.stop().await;
}
