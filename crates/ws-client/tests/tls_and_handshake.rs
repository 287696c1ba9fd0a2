//! TLS (roots, CA file, client certificates, SNI, ALPN, dangerous mode) and handshake control
//! (headers, hook, Origin, subprotocols, permessage-deflate, rejections, mismatches).

mod common;

use std::{net::SocketAddr, sync::Arc};

use ws_client::{ClientConfig, Error, HandshakeError, Message, connect};
use ws_server::{Binding, Decision, Handler, Request, Response, ServerConfig, ServerHandle};
use ws_tls::test_certs::TestPki;

use common::*;

async fn tls_server(tls: ws_tls::ServerTlsConfig) -> (ServerHandle, SocketAddr) {
    let rustls = ws_tls::server_config(&tls).unwrap();
    let config = ServerConfig::new(vec![Binding::tls("127.0.0.1:0".parse().unwrap(), rustls)]);
    start(config, ws_server::EchoHandler).await
}

async fn round_trip(url: String, config: ClientConfig) -> Result<ws_client::WebSocket, Error> {
    let mut ws = connect(url, config).await?;
    ws.send_text("over tls").await?;
    assert_eq!(ws.recv().await.unwrap()?.as_text(), Some("over tls"));
    Ok(ws)
}

#[tokio::test]
async fn wss_with_ca_file_verifies_and_echoes() {
    let pki = TestPki::generate();
    let (server, addr) = tls_server(pki.server_config()).await;
    let mut config = ClientConfig::default();
    config.tls = pki.client_config();
    config.tls.alpn = vec!["http/1.1".into()];
    let ws = round_trip(format!("wss://localhost:{}/", addr.port()), config.clone())
        .await
        .unwrap();
    assert_eq!(ws.alpn(), Some(&b"http/1.1"[..]));
    // An IP literal is verified against the certificate's IP SAN (no SNI sent).
    round_trip(format!("wss://127.0.0.1:{}/", addr.port()), config)
        .await
        .unwrap();
    server.stop().await;
}

#[tokio::test]
async fn default_roots_reject_a_private_ca() {
    let pki = TestPki::generate();
    let (server, addr) = tls_server(pki.server_config()).await;
    match connect(
        format!("wss://localhost:{}/", addr.port()),
        ClientConfig::default(),
    )
    .await
    {
        Err(Error::Tls(_)) => {}
        other => panic!("expected a TLS error, got {other:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn wrong_server_name_is_rejected_and_override_fixes_it() {
    let pki = TestPki::generate();
    let other = pki.issue("other", &["other.example"]);
    let (server, addr) = tls_server(ws_tls::ServerTlsConfig::new(
        &other.cert_file,
        &other.key_file,
    ))
    .await;
    let mut config = ClientConfig::default();
    config.tls = pki.client_config();
    let url = format!("wss://localhost:{}/", addr.port());
    assert!(matches!(
        connect(url.as_str(), config.clone()).await,
        Err(Error::Tls(_))
    ));
    config.tls_server_name = Some("other.example".into());
    round_trip(url, config).await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn danger_accept_invalid_certs_skips_verification() {
    let pki = TestPki::generate();
    let (server, addr) = tls_server(pki.server_config()).await;
    let mut config = ClientConfig::default();
    config.tls.danger_accept_invalid_certs = true;
    round_trip(format!("wss://localhost:{}/", addr.port()), config)
        .await
        .unwrap();
    server.stop().await;
}

#[tokio::test]
async fn client_certificate_is_presented_when_required() {
    let pki = TestPki::generate();
    let (server, addr) = tls_server(pki.server_config_with_client_auth()).await;
    let url = format!("wss://localhost:{}/", addr.port());
    let mut without = ClientConfig::default();
    without.tls = pki.client_config();
    // TLS 1.3 reports the missing certificate after the client's handshake finished, so the
    // failure shows up during the TLS handshake or as the connection dropping at the upgrade.
    assert!(round_trip(url.clone(), without).await.is_err());
    let mut with = ClientConfig::default();
    with.tls = pki.client_config_with_cert();
    round_trip(url, with).await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn bad_tls_files_are_a_config_error() {
    let mut config = ClientConfig::default();
    config.tls.ca_file = Some("/nonexistent/ca.pem".into());
    let addr = closed_port().await;
    assert!(matches!(
        connect(format!("wss://127.0.0.1:{}/", addr.port()), config).await,
        Err(Error::TlsConfig(_))
    ));
}

#[tokio::test]
async fn extra_headers_origin_hook_and_user_agent_are_sent() {
    let seen = Seen::default();
    let (server, addr) = start(local(), Capture(seen.clone())).await;
    let mut config = ClientConfig::default();
    config.headers = vec![("X-Custom".into(), "one".into())];
    config.origin = Some("https://app.example".into());
    config.request_hook = Some(Arc::new(|req: &mut ws_client::HandshakeRequest| {
        req.set_header("X-Hook", "added");
        req.target = format!("{}&hooked=1", req.target);
    }));
    let mut ws = connect(ws_url(addr, "/path?q=1"), config).await.unwrap();
    ws.send_text("x").await.unwrap();
    ws.recv().await.unwrap().unwrap();
    assert_eq!(seen.last().0, "/path?q=1&hooked=1");
    assert_eq!(seen.header("x-custom").as_deref(), Some("one"));
    assert_eq!(seen.header("x-hook").as_deref(), Some("added"));
    assert_eq!(
        seen.header("origin").as_deref(),
        Some("https://app.example")
    );
    assert!(seen.header("user-agent").unwrap().starts_with("wskit/"));
    assert_eq!(
        seen.header("host").unwrap(),
        format!("127.0.0.1:{}", addr.port())
    );
    server.stop().await;
}

#[tokio::test]
async fn subprotocol_is_negotiated() {
    let mut sc = local();
    sc.protocols = vec!["v2".into()];
    // A server that connects without a subprotocol when none of the offered ones is its own
    // (ws-server refuses with 400 by default, as the seed does).
    sc.protocol_mismatch = ws_server::ProtocolMismatch::Proceed;
    let (server, addr) = start(sc, ws_server::EchoHandler).await;
    let mut config = ClientConfig::default();
    config.protocols = vec!["v1".into(), "v2".into()];
    let ws = connect(ws_url(addr, "/"), config.clone()).await.unwrap();
    assert_eq!(ws.protocol(), Some("v2"));
    // No common protocol: the server selects none, which is allowed unless required.
    config.protocols = vec!["v9".into()];
    let ws = connect(ws_url(addr, "/"), config.clone()).await.unwrap();
    assert_eq!(ws.protocol(), None);
    config.require_protocol = true;
    assert!(matches!(
        connect(ws_url(addr, "/"), config).await,
        Err(Error::Handshake(HandshakeError::NoProtocol))
    ));
    server.stop().await;
}

#[tokio::test]
async fn server_picking_an_unoffered_subprotocol_fails_cleanly() {
    let addr = mock_http(|head| switching(head, "Sec-WebSocket-Protocol: evil\r\n")).await;
    let mut config = ClientConfig::default();
    config.protocols = vec!["good".into()];
    match connect(ws_url(addr, "/"), config).await {
        Err(Error::Handshake(HandshakeError::UnexpectedProtocol(p))) => assert_eq!(p, "evil"),
        other => panic!("expected UnexpectedProtocol, got {other:?}"),
    }
}

#[tokio::test]
async fn bad_accept_key_is_a_handshake_mismatch() {
    let addr = mock_http(|_| {
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n"
            .to_owned()
    })
    .await;
    assert!(matches!(
        connect(ws_url(addr, "/"), ClientConfig::default()).await,
        Err(Error::Handshake(HandshakeError::AcceptMismatch))
    ));
}

#[tokio::test]
async fn unoffered_extension_is_refused() {
    let addr =
        mock_http(|head| switching(head, "Sec-WebSocket-Extensions: permessage-deflate\r\n")).await;
    assert!(matches!(
        connect(ws_url(addr, "/"), ClientConfig::default()).await,
        Err(Error::Handshake(HandshakeError::UnexpectedExtension(_)))
    ));
}

#[tokio::test]
async fn permessage_deflate_is_offered_with_parameters_and_used() {
    let seen = Seen::default();
    let mut sc = local();
    sc.deflate = Some(Default::default());
    let (server, addr) = start(sc, Capture(seen.clone())).await;
    let mut deflate = ws_frame::deflate::DeflateConfig::default();
    deflate.client_no_context_takeover = true;
    deflate.server_max_window_bits = 10;
    let mut config = ClientConfig::default();
    config.deflate = Some(deflate);
    let mut ws = connect(ws_url(addr, "/"), config).await.unwrap();
    let offer = seen.header("sec-websocket-extensions").unwrap();
    assert!(offer.contains("client_no_context_takeover"), "{offer}");
    assert!(offer.contains("server_max_window_bits=10"), "{offer}");
    let params = ws.deflate().expect("negotiated");
    assert_eq!(params.server_max_window_bits(), 10);
    assert!(params.client_no_context_takeover());
    let big = "compressible ".repeat(10_000);
    ws.send_text(big.clone()).await.unwrap();
    assert_eq!(
        ws.recv().await.unwrap().unwrap().as_text(),
        Some(big.as_str())
    );
    ws.send_binary(vec![0u8; 100_000]).await.unwrap();
    assert_eq!(
        ws.recv().await.unwrap().unwrap(),
        Message::binary(vec![0u8; 100_000])
    );
    server.stop().await;
}

#[tokio::test]
async fn deflate_declined_by_the_server_falls_back_to_plain() {
    let (server, addr) = echo().await;
    let mut config = ClientConfig::default();
    config.deflate = Some(Default::default());
    let mut ws = connect(ws_url(addr, "/"), config).await.unwrap();
    assert!(ws.deflate().is_none());
    ws.send_text("plain").await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap().as_text(), Some("plain"));
    server.stop().await;
}

struct Rejector;

impl Handler for Rejector {
    async fn on_handshake(&self, _r: &Request) -> Decision {
        Decision::Reject(Response::text(403, "go away").with_header("X-Why", "testing"))
    }
}

#[tokio::test]
async fn http_rejection_carries_status_headers_and_body() {
    let (server, addr) = start(local(), Rejector).await;
    match connect(ws_url(addr, "/"), ClientConfig::default()).await {
        Err(Error::Http(r)) => {
            assert_eq!(r.status, 403);
            assert_eq!(r.header("x-why"), Some("testing"));
            assert_eq!(&r.body[..], b"go away");
        }
        other => panic!("expected Http, got {other:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn rejection_body_is_bounded() {
    let addr = mock_http(|_| {
        format!(
            "HTTP/1.1 500 Oops\r\nContent-Length: 100000\r\n\r\n{}",
            "x".repeat(100_000)
        )
    })
    .await;
    let mut config = ClientConfig::default();
    config.max_rejection_body = 1000;
    match connect(ws_url(addr, "/"), config).await {
        Err(Error::Http(r)) => {
            assert_eq!(
                (r.status, r.reason.as_str(), r.body.len()),
                (500, "Oops", 1000)
            );
        }
        other => panic!("expected Http, got {other:?}"),
    }
}

#[tokio::test]
async fn oversized_response_head_is_refused() {
    let addr =
        mock_http(|_| format!("HTTP/1.1 101 OK\r\nX-Big: {}\r\n\r\n", "y".repeat(20_000))).await;
    assert!(matches!(
        connect(ws_url(addr, "/"), ClientConfig::default()).await,
        Err(Error::Handshake(HandshakeError::MalformedResponse(_)))
    ));
}

#[tokio::test]
async fn wss_to_a_plain_port_says_try_ws() {
    // A plain WebSocket server closes on a ClientHello without a reply.
    let (server, addr) = echo().await;
    let mut config = ClientConfig::default();
    config.tls.danger_accept_invalid_certs = true;
    let err = connect(format!("wss://127.0.0.1:{}/", addr.port()), config)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotTls(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "the server did not answer TLS (it closed the connection without a TLS reply); try ws://"
    );
    assert!(!err.is_transient());
    server.stop().await;
}

#[tokio::test]
async fn wss_to_a_plain_http_answer_says_try_ws() {
    // A server that answers anything with plain HTTP (as many do to bytes they cannot parse).
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 512];
        let _ = s.read(&mut buf).await;
        let _ = s
            .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
            .await;
    });
    let mut config = ClientConfig::default();
    config.tls.danger_accept_invalid_certs = true;
    let err = connect(format!("wss://127.0.0.1:{}/", addr.port()), config)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the server did not answer TLS (it answered in plain HTTP); try ws://"
    );
}

#[tokio::test]
async fn wss_to_another_protocol_names_its_first_bytes() {
    use tokio::io::AsyncWriteExt as _;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let _ = s.write_all(b"SSH-2.0-OpenSSH_9.6\r\n").await;
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    });
    let err = connect(
        format!("wss://127.0.0.1:{}/", addr.port()),
        ClientConfig::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the server did not answer TLS (its first bytes \"SSH-2.0-\" are not a TLS record); try ws://"
    );
}

#[tokio::test]
async fn ws_to_a_tls_port_says_try_wss() {
    let pki = TestPki::generate();
    let (server, addr) = tls_server(pki.server_config()).await;
    let err = connect(
        format!("ws://127.0.0.1:{}/", addr.port()),
        ClientConfig::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, Error::Handshake(HandshakeError::TlsAnswer)),
        "{err:?}"
    );
    assert!(
        err.to_string().ends_with("this looks like TLS; try wss://"),
        "{err}"
    );
    server.stop().await;
}

#[tokio::test]
async fn certificate_errors_are_sentences_once() {
    let pki = TestPki::generate();
    let (server, addr) = tls_server(pki.server_config()).await;
    let err = connect(
        format!("wss://localhost:{}/", addr.port()),
        ClientConfig::default(),
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("TLS handshake failed: the server's certificate is not signed by a trusted certificate authority (unknown issuer)"),
        "{text}"
    );
    // The sentence is the whole story: no source repeats it.
    assert!(std::error::Error::source(&err).is_none());
    server.stop().await;
}
