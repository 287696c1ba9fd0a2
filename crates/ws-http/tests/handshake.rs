//! The RFC 6455 opening handshake through this crate's own builders and parsers, both sides.

use bytes::BytesMut;
use ws_frame::deflate::DeflateConfig;
use ws_http::{
    Accept, ClientConfig, ClientHandshake, Error, Extension, HandshakeError, Limits, Parsed,
    Request, UpgradeRequest, WsUrl, accept_key, parse_request, write_rejection,
};

const RFC_REQUEST: &str = "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

fn request(raw: &str) -> Request {
    match parse_request(raw.as_bytes(), &Limits::default()).unwrap() {
        Parsed::Complete(r, n) => {
            assert_eq!(n, raw.len());
            r
        }
        Parsed::Partial => panic!("partial"),
    }
}

fn upgrade_error(raw: &str) -> Error {
    UpgradeRequest::from_request(&request(raw)).unwrap_err()
}

#[test]
fn accept_key_vectors() {
    // RFC 6455 section 1.3.
    assert_eq!(
        accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
    assert_eq!(
        accept_key("1n598ldHs9SdRfxUK8u4Vw=="),
        "gDuzFRzwHBc18P1CfinlvKv1BJc="
    );
}

#[test]
fn rfc6455_section_1_3_exchange() {
    let up = UpgradeRequest::from_request(&request(RFC_REQUEST)).unwrap();
    assert_eq!(up.key(), "dGhlIHNhbXBsZSBub25jZQ==");
    assert_eq!(up.accept_key(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_eq!(up.origin(), Some("http://example.com"));
    assert_eq!(up.protocols(), ["chat", "superchat"]);
    assert!(up.extensions().is_empty());
    assert_eq!(
        up.choose_protocol(&["superchat", "chat"]),
        Some("superchat")
    );
    assert_eq!(up.choose_protocol(&["chat"]), Some("chat"));
    assert_eq!(up.choose_protocol(&["Chat", "mqtt"]), None);
    let mut out = BytesMut::new();
    up.write_accept(&Accept::new().protocol(Some("chat")), &mut out)
        .unwrap();
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n\r\n"
    );
    // The server may only select what was offered.
    let e = up
        .write_accept(&Accept::new().protocol(Some("mqtt")), &mut BytesMut::new())
        .unwrap_err();
    assert!(matches!(
        e,
        Error::Handshake(HandshakeError::ProtocolNotOffered)
    ));
    assert_eq!(e.status(), 500);
}

#[test]
fn invalid_upgrade_requests_get_the_right_status() {
    let base = "Host: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let cases = [
        (format!("GET / HTTP/1.1\r\n{base}\r\n"), 426),
        (
            format!("GET / HTTP/1.1\r\n{base}Sec-WebSocket-Version: 8\r\n\r\n"),
            426,
        ),
        (
            format!("GET / HTTP/1.1\r\n{base}Sec-WebSocket-Version: 13, 8\r\n\r\n"),
            426,
        ),
        (
            format!("POST / HTTP/1.1\r\n{base}Sec-WebSocket-Version: 13\r\n\r\n"),
            405,
        ),
        (
            format!("GET / HTTP/1.0\r\n{base}Sec-WebSocket-Version: 13\r\n\r\n"),
            400,
        ),
        (
            format!("GET * HTTP/1.1\r\n{base}Sec-WebSocket-Version: 13\r\n\r\n"),
            400,
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
                .to_owned(),
            426,
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
                .to_owned(),
            400,
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
                .to_owned(),
            400,
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: c2hvcnQ=\r\n\r\n"
                .to_owned(),
            400,
        ),
        (
            format!(
                "GET / HTTP/1.1\r\n{base}Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ),
            400,
        ),
        (
            format!(
                "GET / HTTP/1.1\r\n{base}Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: a b\r\n\r\n"
            ),
            400,
        ),
        (
            format!(
                "GET / HTTP/1.1\r\n{base}Sec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: ;x\r\n\r\n"
            ),
            400,
        ),
    ];
    for (raw, want) in cases {
        assert_eq!(upgrade_error(&raw).status(), want, "{raw}");
    }
}

#[test]
fn version_mismatch_answer_is_426_with_version_13() {
    let raw = "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
               Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 7\r\n\r\n";
    let e = upgrade_error(raw);
    assert!(matches!(
        e,
        Error::Handshake(HandshakeError::UnsupportedVersion)
    ));
    let mut out = BytesMut::new();
    e.write_response(&mut out);
    let text = std::str::from_utf8(&out).unwrap();
    assert!(
        text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"),
        "{text}"
    );
    assert!(text.contains("\r\nSec-WebSocket-Version: 13\r\n"), "{text}");
}

#[test]
fn case_insensitive_tokens_and_lists() {
    let raw = "GET /x HTTP/1.1\r\nhost: a\r\nUPGRADE: WebSocket\r\nconnection: keep-alive\r\n\
               Connection: UPGRADE\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
               SEC-WEBSOCKET-VERSION: 13\r\nSec-WebSocket-Protocol: a\r\nSec-WebSocket-Protocol: b, c\r\n\r\n";
    let req = request(raw);
    assert!(req.is_websocket_upgrade());
    let up = UpgradeRequest::from_request(&req).unwrap();
    assert_eq!(up.protocols(), ["a", "b", "c"]);
    // Absolute-form targets are allowed.
    let abs = raw.replace("GET /x", "GET ws://a/x");
    assert!(UpgradeRequest::from_request(&request(&abs)).is_ok());
}

fn server_answer(
    request_bytes: &[u8],
    protocols: &[&str],
    deflate: Option<&DeflateConfig>,
) -> (BytesMut, Accept) {
    let Parsed::Complete(req, len) = parse_request(request_bytes, &Limits::default()).unwrap()
    else {
        panic!("partial")
    };
    assert_eq!(len, request_bytes.len());
    let up = UpgradeRequest::from_request(&req).unwrap();
    let accept = Accept::new()
        .protocol(up.choose_protocol(protocols))
        .deflate(deflate.and_then(|d| up.negotiate_deflate(d)))
        .header("Server", "wskit-test");
    let mut out = BytesMut::new();
    up.write_accept(&accept, &mut out).unwrap();
    (out, accept)
}

#[test]
fn client_server_round_trip() {
    let mut config = ClientConfig::default();
    config.origin = Some("https://app.example".into());
    config.protocols = vec!["mqtt".into(), "chat".into()];
    config.deflate = Some(DeflateConfig::default());
    config.headers = vec![("Authorization".into(), "Bearer t0k3n".into())];
    let url = WsUrl::parse("ws://example.com:8080/chat?room=1").unwrap();
    let mut wire = BytesMut::new();
    let mut client = ClientHandshake::for_url(&config, &url, &mut wire).unwrap();

    let req = match parse_request(&wire, &Limits::default()).unwrap() {
        Parsed::Complete(r, _) => r,
        Parsed::Partial => panic!(),
    };
    assert_eq!(req.header("host"), Some("example.com:8080"));
    assert_eq!(req.target(), "/chat?room=1");
    assert_eq!(req.header("authorization"), Some("Bearer t0k3n"));
    assert_eq!(req.header("sec-websocket-key"), Some(client.key()));
    let up = UpgradeRequest::from_request(&req).unwrap();
    assert_eq!(up.origin(), Some("https://app.example"));
    assert_eq!(up.accept_key(), client.expected_accept());

    let (mut answer, accept) = server_answer(&wire, &["chat"], Some(&DeflateConfig::default()));
    answer.extend_from_slice(b"\x81\x05hello");
    // Byte by byte: Partial until the last byte of the head.
    let mut rx = BytesMut::new();
    let mut upgraded = None;
    for &b in answer.iter() {
        rx.extend_from_slice(&[b]);
        if let Some(u) = client.handle_response(&mut rx).unwrap() {
            upgraded = Some(u);
        }
    }
    let upgraded = upgraded.unwrap();
    assert_eq!(upgraded.protocol(), Some("chat"));
    assert_eq!(upgraded.deflate(), accept.deflate_params());
    assert!(upgraded.deflate().is_some());
    assert_eq!(upgraded.response().header("server"), Some("wskit-test"));
    assert_eq!(&rx[..], b"\x81\x05hello");
    // Finished: further calls do nothing.
    assert!(client.handle_response(&mut rx).unwrap().is_none());
}

#[test]
fn random_keys_differ_and_decode_to_16_bytes() {
    let config = ClientConfig::default();
    let a = ClientHandshake::new(&config, "h", "/", &mut BytesMut::new()).unwrap();
    let b = ClientHandshake::new(&config, "h", "/", &mut BytesMut::new()).unwrap();
    assert_ne!(a.key(), b.key());
    assert_eq!(a.key().len(), 24);
}

fn client_with(config: &ClientConfig) -> (ClientHandshake, BytesMut) {
    let mut wire = BytesMut::new();
    let hs = ClientHandshake::with_key(config, "h", "/", [1; 16], &mut wire).unwrap();
    (hs, wire)
}

fn response_101(hs: &ClientHandshake, extra: &str) -> BytesMut {
    BytesMut::from(
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n{extra}\r\n",
            hs.expected_accept()
        )
        .as_bytes(),
    )
}

#[test]
fn client_refuses_bad_101_responses() {
    let mut config = ClientConfig::default();
    config.protocols = vec!["chat".into()];
    config.deflate = Some(DeflateConfig::default());
    config.extensions = vec![Extension::new("x-known")];
    let check = |extra: &str| {
        let (mut hs, _) = client_with(&config);
        hs.handle_response(&mut response_101(&hs, extra))
    };
    assert!(check("").unwrap().is_some());
    assert!(check("Sec-WebSocket-Protocol: chat\r\n").unwrap().is_some());
    let known = check("Sec-WebSocket-Extensions: x-known; a=1\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(known.extensions()[0].name(), "x-known");
    for (extra, want) in [
        (
            "Sec-WebSocket-Protocol: other\r\n",
            HandshakeError::UnexpectedProtocol,
        ),
        (
            "Sec-WebSocket-Protocol: chat, chat\r\n",
            HandshakeError::UnexpectedProtocol,
        ),
        (
            "Sec-WebSocket-Extensions: x-unknown\r\n",
            HandshakeError::UnexpectedExtension,
        ),
        (
            "Sec-WebSocket-Extensions: permessage-deflate, permessage-deflate\r\n",
            HandshakeError::UnexpectedExtension,
        ),
        (
            "Sec-WebSocket-Extensions: x-known, x-known\r\n",
            HandshakeError::UnexpectedExtension,
        ),
    ] {
        assert_eq!(
            check(extra).unwrap_err().to_string(),
            Error::from(want).to_string(),
            "{extra}"
        );
    }
    let e = check("Sec-WebSocket-Extensions: permessage-deflate; bogus\r\n").unwrap_err();
    assert!(
        matches!(e, Error::Handshake(HandshakeError::Deflate(_))),
        "{e}"
    );
    // Wrong accept key, missing Upgrade or Connection.
    let (mut hs, _) = client_with(&config);
    let mut bad = BytesMut::from(
        &b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
           Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"[..],
    );
    assert!(matches!(
        hs.handle_response(&mut bad),
        Err(Error::Handshake(HandshakeError::AcceptMismatch))
    ));
    let (mut hs, _) = client_with(&config);
    let mut r = response_101(&hs, "");
    let text = String::from_utf8(r.to_vec())
        .unwrap()
        .replace("Upgrade: websocket\r\n", "");
    r = BytesMut::from(text.as_bytes());
    assert!(matches!(
        hs.handle_response(&mut r),
        Err(Error::Handshake(HandshakeError::ResponseMissingUpgrade))
    ));
    // A client without deflate refuses a deflate answer.
    let (mut hs, _) = client_with(&ClientConfig::default());
    let mut r = response_101(&hs, "Sec-WebSocket-Extensions: permessage-deflate\r\n");
    assert!(matches!(
        hs.handle_response(&mut r),
        Err(Error::Handshake(HandshakeError::UnexpectedExtension))
    ));
}

#[test]
fn rejections_carry_status_headers_and_body() {
    let config = ClientConfig::default();
    // 401 with a body, fed byte by byte.
    let (mut hs, _) = client_with(&config);
    let mut answer = BytesMut::new();
    write_rejection(
        &mut answer,
        401,
        &[("WWW-Authenticate", "Bearer realm=\"ws\"")],
        b"{\"error\":\"token expired\"}",
    )
    .unwrap();
    let mut rx = BytesMut::new();
    let mut result = None;
    for &b in answer.iter() {
        rx.extend_from_slice(&[b]);
        match hs.handle_response(&mut rx) {
            Ok(None) => {}
            other => {
                result = Some(other);
                break;
            }
        }
    }
    let Some(Err(Error::Rejected(r))) = result else {
        panic!("{result:?}")
    };
    assert_eq!((r.status(), r.reason()), (401, "Unauthorized"));
    assert_eq!(
        r.headers().get("www-authenticate"),
        Some("Bearer realm=\"ws\"")
    );
    assert_eq!(&r.body()[..], b"{\"error\":\"token expired\"}");
    assert!(!r.is_truncated());
    assert_eq!(Error::Rejected(r).status(), 401);

    // A redirect exposes Location.
    let (mut hs, _) = client_with(&config);
    let mut answer = BytesMut::new();
    write_rejection(&mut answer, 302, &[("Location", "/moved")], b"").unwrap();
    let Err(Error::Rejected(r)) = hs.handle_response(&mut answer) else {
        panic!()
    };
    assert_eq!(r.location(), Some("/moved"));
    let next = WsUrl::parse("ws://h/old")
        .unwrap()
        .join(r.location().unwrap())
        .unwrap();
    assert_eq!(next.target(), "/moved");

    // Chunked and close-delimited bodies; a body over max_rejection_body is cut.
    let (mut hs, _) = client_with(&config);
    let mut rx = BytesMut::from(
        &b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nno!\r\n0\r\n\r\n"[..],
    );
    let Err(Error::Rejected(r)) = hs.handle_response(&mut rx) else {
        panic!()
    };
    assert_eq!(&r.body()[..], b"no!");
    let (mut hs, _) = client_with(&config);
    let mut rx = BytesMut::from(&b"HTTP/1.1 500 Oops\r\n\r\nclose-delimited"[..]);
    assert!(hs.handle_response(&mut rx).unwrap().is_none());
    let Error::Rejected(r) = hs.handle_eof() else {
        panic!()
    };
    assert_eq!((r.status(), &r.body()[..]), (500, &b"close-delimited"[..]));
    let mut small = ClientConfig::default();
    small.limits.max_rejection_body = 4;
    let (mut hs, _) = client_with(&small);
    let mut rx = BytesMut::from(
        &b"HTTP/1.1 404 Not Found\r\nContent-Length: 100000000000\r\n\r\n0123456789"[..],
    );
    let Err(Error::Rejected(r)) = hs.handle_response(&mut rx) else {
        panic!()
    };
    assert_eq!((&r.body()[..], r.is_truncated()), (&b"0123"[..], true));
    // Interim 1xx answers are skipped.
    let (mut hs, _) = client_with(&config);
    let mut rx =
        BytesMut::from(&b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"[..]);
    let Err(Error::Rejected(r)) = hs.handle_response(&mut rx) else {
        panic!()
    };
    assert_eq!(r.status(), 204);
    // EOF before any answer.
    let (mut hs, _) = client_with(&config);
    assert!(matches!(hs.handle_eof(), Error::IncompleteBody));
    // Rejections need a final status.
    assert!(write_rejection(&mut BytesMut::new(), 101, &[], b"").is_err());
}

#[test]
fn client_config_is_validated() {
    let mut wire = BytesMut::new();
    let mut c = ClientConfig::default();
    c.protocols = vec!["a".into(), "a".into()];
    assert!(matches!(
        ClientHandshake::new(&c, "h", "/", &mut wire),
        Err(Error::Config(_))
    ));
    let mut c = ClientConfig::default();
    c.protocols = vec!["a b".into()];
    assert!(ClientHandshake::new(&c, "h", "/", &mut wire).is_err());
    let mut c = ClientConfig::default();
    c.headers = vec![("sec-websocket-key".into(), "x".into())];
    assert!(matches!(
        ClientHandshake::new(&c, "h", "/", &mut wire),
        Err(Error::Config(_))
    ));
    let mut c = ClientConfig::default();
    c.headers = vec![("X".into(), "a\r\nInjected: 1".into())];
    assert!(ClientHandshake::new(&c, "h", "/", &mut wire).is_err());
    let c = ClientConfig::default();
    assert!(ClientHandshake::new(&c, "h\r\nX: y", "/", &mut wire).is_err());
    assert!(ClientHandshake::new(&c, "h", "no-slash", &mut wire).is_err());
    assert!(ClientHandshake::new(&c, "h", "/a b", &mut wire).is_err());
    assert!(wire.is_empty(), "nothing written on error");
    // Server side: reserved extra headers are refused.
    let up = UpgradeRequest::from_request(&request(RFC_REQUEST)).unwrap();
    assert!(matches!(
        up.write_accept(
            &Accept::new().header("Sec-WebSocket-Accept", "x"),
            &mut wire
        ),
        Err(Error::Config(_))
    ));
    assert!(wire.is_empty());
}
