//! A client session replayed byte for byte: with the handshake key, the masking keys and the
//! clock given by the test, the cores (ws-http's handshake, ws-frame's connection) write the
//! same bytes every time, and those bytes are the ones RFC 6455 defines for them.

use std::time::{Duration, Instant};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use bytes::{Bytes, BytesMut};
use ws_frame::{CloseCode, Config, Connection, Event, Heartbeat, Message, Role};
use ws_http::{ClientConfig, ClientHandshake, accept_key};

const KEY: [u8; 16] = [
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10,
];

/// Mask keys 1,1,1,1 then 2,2,2,2, ...
fn counter() -> impl FnMut() -> Option<[u8; 4]> + Send {
    let mut n = 0u8;
    move || {
        n += 1;
        Some([n, n + 0x10, n + 0x20, n + 0x30])
    }
}

/// A masked frame as RFC 6455 section 5.2/5.3 define it, written independently of ws-frame.
fn masked(opcode: u8, key: [u8; 4], payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mut f = vec![0x80 | opcode, 0x80 | payload.len() as u8];
    f.extend_from_slice(&key);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    f
}

/// Runs one client session at the given start time; returns everything the client wrote.
fn session(t0: Instant) -> Vec<u8> {
    let mut wire = BytesMut::new();
    let mut hs = ClientHandshake::with_key(
        &ClientConfig::default(),
        "example.com",
        "/chat",
        KEY,
        &mut wire,
    )
    .unwrap();
    let accept = accept_key(&STANDARD.encode(KEY));
    let mut rx = BytesMut::from(
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {accept}\r\n\r\n"
        )
        .as_bytes(),
    );
    rx.extend_from_slice(&[0x81, 0x02, b'h', b'i']);
    hs.handle_response(&mut rx).unwrap().expect("upgraded");

    let mut config = Config::default();
    config.heartbeat = Some(Heartbeat::new(
        Duration::from_secs(10),
        Duration::from_secs(5),
    ));
    let mut ws = Connection::with_mask_source(Role::Client, config, counter()).unwrap();
    ws.feed(&rx);
    assert_eq!(
        ws.poll_event().unwrap(),
        Some(Event::Message(Message::text("hi")))
    );
    assert!(ws.wants_now());
    ws.handle_timeout(t0);
    ws.send(Message::text("hello")).unwrap();
    while ws.poll_transmit(&mut wire) {}
    // The heartbeat's ping at t0 + 10 s, answered in time.
    assert_eq!(ws.poll_timeout(), Some(t0 + Duration::from_secs(10)));
    ws.handle_timeout(t0 + Duration::from_secs(10));
    while ws.poll_transmit(&mut wire) {}
    ws.feed(&[0x8a, 0x00]);
    assert_eq!(ws.poll_event().unwrap(), Some(Event::Pong(Bytes::new())));
    ws.close(CloseCode::NORMAL, "bye", t0 + Duration::from_secs(12))
        .unwrap();
    while ws.poll_transmit(&mut wire) {}
    wire.to_vec()
}

#[test]
fn a_client_session_replays_byte_for_byte() {
    let t0 = Instant::now();
    let first = session(t0);
    let again = session(t0 + Duration::from_secs(3600));
    assert_eq!(first, again, "same sources, same bytes");

    let mut expected = format!(
        "GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\n",
        STANDARD.encode(KEY)
    )
    .into_bytes();
    let head_end = first
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("request head")
        + 4;
    assert!(
        first.starts_with(&expected),
        "{}",
        String::from_utf8_lossy(&first[..head_end])
    );
    expected = Vec::new();
    expected.extend(masked(0x1, [1, 0x11, 0x21, 0x31], b"hello"));
    expected.extend(masked(0x9, [2, 0x12, 0x22, 0x32], b""));
    expected.extend(masked(0x8, [3, 0x13, 0x23, 0x33], b"\x03\xe8bye"));
    assert_eq!(&first[head_end..], &expected[..]);
}
