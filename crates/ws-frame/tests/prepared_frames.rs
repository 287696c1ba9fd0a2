//! `Prepared` + `Connection::send_prepared`: the frames a broadcast queues once for many
//! connections are byte for byte what `Connection::send` would have framed on each of them,
//! and the connection's state machine still decides what may be sent.

use bytes::BytesMut;
use ws_frame::{
    CloseCode, Config, Connection, Error, Message, Prepared, Role,
    deflate::{DeflateConfig, DeflateParams},
};

fn wire(conn: &mut Connection) -> Vec<u8> {
    let mut out = BytesMut::new();
    while conn.poll_transmit(&mut out) {}
    out.to_vec()
}

fn frames(conn: &mut Connection) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some(f) = conn.poll_frame() {
        out.push((f.head().to_vec(), f.payload.to_vec()));
    }
    out
}

fn messages() -> Vec<Message> {
    let text: String = (0..70_000)
        .map(|i| char::from(b'a' + (i % 23) as u8))
        .collect();
    vec![
        Message::text(""),
        Message::text("hello"),
        Message::binary(vec![7u8; 125]),
        Message::binary(vec![1u8; 126]),
        Message::text("x".repeat(65_535)),
        Message::text(text),
        Message::binary(
            (0..5000u32)
                .map(|i| (i * 31 % 251) as u8)
                .collect::<Vec<_>>(),
        ),
    ]
}

fn params(offer: &[(&str, Option<&str>)]) -> DeflateParams {
    DeflateConfig::default()
        .accept_offer(offer)
        .unwrap()
        .expect("offer accepted")
}

/// Sends every message on two connections built alike, one with `send`, the other with
/// `send_prepared`, and compares the bytes (and the frame boundaries).
fn same_bytes(role: Role, config: Config) {
    let mut a = Connection::with_mask_source(role, config.clone(), || Some([1, 2, 3, 4])).unwrap();
    let mut b = Connection::with_mask_source(role, config, || Some([1, 2, 3, 4])).unwrap();
    for msg in messages() {
        let prepared = Prepared::new(msg.clone());
        a.send(msg.clone()).unwrap();
        b.send_prepared(&prepared).unwrap();
        assert_eq!(
            frames(&mut a),
            frames(&mut b),
            "{role:?} {} bytes",
            msg.len()
        );
    }
    for msg in messages() {
        a.send(msg.clone()).unwrap();
        b.send_prepared(&Prepared::new(msg)).unwrap();
    }
    assert_eq!(wire(&mut a), wire(&mut b));
}

#[test]
fn plain_server_frames_are_byte_identical() {
    same_bytes(Role::Server, Config::default());
}

#[test]
fn client_and_fragmenting_connections_frame_themselves_identically() {
    same_bytes(Role::Client, Config::default());
    let mut config = Config::default();
    config.fragment_size = Some(1000);
    same_bytes(Role::Server, config);
}

#[test]
fn deflate_without_context_takeover_is_compressed_once_and_identical() {
    for offer in [
        vec![("server_no_context_takeover", None)],
        vec![
            ("server_no_context_takeover", None),
            ("server_max_window_bits", Some("9")),
        ],
    ] {
        let mut config = Config::default();
        config.deflate = Some(params(&offer));
        same_bytes(Role::Server, config);
    }
}

#[test]
fn deflate_with_context_takeover_falls_back_identically() {
    let mut config = Config::default();
    config.deflate = Some(DeflateParams::default());
    same_bytes(Role::Server, config.clone());
    // Per-connection compression with context: the second copy of a message compresses
    // better than the first.
    let mut c = Connection::new(Role::Server, config).unwrap();
    let p = Prepared::new(Message::text("broadcast broadcast broadcast"));
    c.send_prepared(&p).unwrap();
    let first = wire(&mut c).len();
    c.send_prepared(&p).unwrap();
    assert!(wire(&mut c).len() < first);
}

#[test]
fn one_compressed_payload_is_shared_by_every_connection() {
    let mut config = Config::default();
    config.deflate = Some(params(&[("server_no_context_takeover", None)]));
    let p = Prepared::new(Message::text("shared ".repeat(1000)));
    let mut payloads = Vec::new();
    for _ in 0..3 {
        let mut c = Connection::new(Role::Server, config.clone()).unwrap();
        c.send_prepared(&p).unwrap();
        let f = c.poll_frame().unwrap();
        assert_eq!(f.head()[0], 0xc1, "final text frame with RSV1");
        payloads.push(f.payload);
    }
    assert!(payloads[0].len() < 7000);
    for other in &payloads[1..] {
        assert_eq!(
            other.as_ptr(),
            payloads[0].as_ptr(),
            "the same buffer, not a copy"
        );
    }
    // Plain connections share the message's own buffer.
    let mut c = Connection::new(Role::Server, Config::default()).unwrap();
    c.send_prepared(&p).unwrap();
    assert_eq!(
        c.poll_frame().unwrap().payload.as_ptr(),
        p.payload().as_ptr()
    );
}

#[test]
fn nothing_is_sent_after_close() {
    let mut c = Connection::new(Role::Server, Config::default()).unwrap();
    let p = Prepared::new(Message::text("late"));
    c.close(CloseCode::NORMAL, "", std::time::Instant::now())
        .unwrap();
    assert!(matches!(c.send_prepared(&p), Err(Error::Closed)));
    let out = wire(&mut c);
    assert_eq!(out, [0x88, 0x02, 0x03, 0xe8]);
}

#[test]
fn not_in_the_middle_of_a_fragmented_message() {
    let mut c = Connection::new(Role::Server, Config::default()).unwrap();
    c.send_fragment(true, "part".into(), true, false).unwrap();
    let p = Prepared::new(Message::text("whole"));
    assert!(matches!(c.send_prepared(&p), Err(Error::FragmentState)));
    c.send_fragment(true, "end".into(), false, true).unwrap();
    c.send_prepared(&p).unwrap();
    assert_eq!(
        wire(&mut c),
        [
            &[0x01, 4][..],
            b"part",
            &[0x80, 3],
            b"end",
            &[0x81, 5],
            b"whole"
        ]
        .concat()
    );
}

#[test]
fn control_frames_still_go_first() {
    let mut c = Connection::new(Role::Server, Config::default()).unwrap();
    c.send_prepared(&Prepared::new(Message::text("data")))
        .unwrap();
    c.ping("p".into()).unwrap();
    assert_eq!(
        wire(&mut c),
        [&[0x89, 1, b'p'][..], &[0x81, 4], b"data"].concat()
    );
}
