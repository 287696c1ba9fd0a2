//! The examples of RFC 6455 section 5.7 and the framing rules of section 5, through whole
//! connections.

use bytes::{Bytes, BytesMut};
use ws_frame::{Config, Connection, Event, Message, Role};
use ws_testkit::RawFrame;

fn server() -> Connection {
    Connection::new(Role::Server, Config::default()).unwrap()
}

fn client() -> Connection {
    Connection::new(Role::Client, Config::default()).unwrap()
}

fn events(conn: &mut Connection) -> Vec<Event> {
    let mut out = Vec::new();
    while let Some(event) = conn.poll_event().unwrap() {
        out.push(event);
    }
    out
}

fn transmit(conn: &mut Connection) -> Vec<u8> {
    let mut out = BytesMut::new();
    while conn.poll_transmit(&mut out) {}
    out.to_vec()
}

#[test]
fn client_receives_the_unmasked_hello_frame() {
    let mut c = client();
    c.feed(&[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
    assert_eq!(events(&mut c), [Event::Message(Message::text("Hello"))]);
}

#[test]
fn server_receives_the_masked_hello_frame() {
    let mut s = server();
    s.feed(&[
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ]);
    assert_eq!(events(&mut s), [Event::Message(Message::text("Hello"))]);
}

#[test]
fn client_receives_the_fragmented_unmasked_hello() {
    let mut c = client();
    c.feed(&[0x01, 0x03, 0x48, 0x65, 0x6c]);
    assert_eq!(events(&mut c), []);
    c.feed(&[0x80, 0x02, 0x6c, 0x6f]);
    assert_eq!(events(&mut c), [Event::Message(Message::text("Hello"))]);
}

#[test]
fn unmasked_ping_is_answered_with_a_masked_pong_carrying_the_same_payload() {
    let mut c = client();
    c.feed(&[0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
    assert_eq!(events(&mut c), [Event::Ping(Bytes::from_static(b"Hello"))]);
    let frames = RawFrame::decode_all(&transmit(&mut c));
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].header.opcode, 0xA);
    assert!(frames[0].header.mask.is_some());
    assert_eq!(frames[0].payload, b"Hello");
}

#[test]
fn server_answers_a_masked_ping_with_an_unmasked_pong() {
    let mut s = server();
    s.feed(&RawFrame::new(0x9, "Hello").client().encode());
    assert_eq!(events(&mut s), [Event::Ping(Bytes::from_static(b"Hello"))]);
    assert_eq!(transmit(&mut s), [0x8a, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
}

#[test]
fn masked_pong_from_the_rfc_is_reported() {
    let mut s = server();
    s.feed(&[
        0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ]);
    assert_eq!(events(&mut s), [Event::Pong(Bytes::from_static(b"Hello"))]);
    assert!(transmit(&mut s).is_empty(), "a pong is not answered");
}

#[test]
fn server_sends_256_bytes_binary_with_a_16_bit_length() {
    let mut s = server();
    s.send(Message::binary(vec![7u8; 256])).unwrap();
    let wire = transmit(&mut s);
    assert_eq!(&wire[..4], &[0x82, 0x7E, 0x01, 0x00]);
    assert_eq!(wire.len(), 4 + 256);
}

#[test]
fn server_sends_64_kib_binary_with_a_64_bit_length() {
    let mut s = server();
    s.send(Message::binary(vec![7u8; 65536])).unwrap();
    let wire = transmit(&mut s);
    assert_eq!(&wire[..10], &[0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00]);
    assert_eq!(wire.len(), 10 + 65536);
}

#[test]
fn server_receives_a_64_kib_binary_message_in_random_sized_reads() {
    let payload: Vec<u8> = (0..65536u32).map(|i| (i % 251) as u8).collect();
    let wire = RawFrame::new(0x2, payload.clone()).client().encode();
    let mut s = server();
    let mut got = Vec::new();
    let mut pos = 0;
    let mut step = 1;
    while pos < wire.len() {
        let end = (pos + step).min(wire.len());
        s.feed(&wire[pos..end]);
        got.extend(events(&mut s));
        pos = end;
        step = step * 3 % 1999 + 1;
    }
    assert_eq!(got, [Event::Message(Message::binary(payload))]);
}

#[test]
fn control_frames_interleave_inside_a_fragmented_message() {
    let mut s = server();
    let mut wire = RawFrame::new(0x1, "Hel").fin(false).client().encode();
    wire.extend(RawFrame::new(0x9, "p").client().encode());
    wire.extend(RawFrame::new(0x0, "l").fin(false).client().encode());
    wire.extend(RawFrame::new(0xA, "q").client().encode());
    wire.extend(RawFrame::new(0x0, "o").client().encode());
    s.feed(&wire);
    assert_eq!(
        events(&mut s),
        [
            Event::Ping(Bytes::from_static(b"p")),
            Event::Pong(Bytes::from_static(b"q")),
            Event::Message(Message::text("Hello")),
        ]
    );
}

#[test]
fn empty_messages_and_empty_fragments_are_delivered() {
    let mut s = server();
    let mut wire = RawFrame::new(0x1, "").client().encode();
    wire.extend(RawFrame::new(0x2, "").fin(false).client().encode());
    wire.extend(RawFrame::new(0x0, "").fin(false).client().encode());
    wire.extend(RawFrame::new(0x0, "").client().encode());
    s.feed(&wire);
    assert_eq!(
        events(&mut s),
        [
            Event::Message(Message::text("")),
            Event::Message(Message::binary(Vec::new())),
        ]
    );
}

#[test]
fn non_minimal_length_encodings_are_accepted() {
    let mut s = server();
    // "Hi" with a 16-bit length, then with a 64-bit length.
    let mut wire = vec![0x81, 0xFE, 0x00, 0x02, 0, 0, 0, 0, b'H', b'i'];
    wire.extend([0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 1, 2]);
    s.feed(&wire);
    assert_eq!(
        events(&mut s),
        [
            Event::Message(Message::text("Hi")),
            Event::Message(Message::binary(vec![1, 2])),
        ]
    );
}

#[test]
fn single_frame_payload_is_not_copied() {
    let wire = RawFrame::new(0x2, vec![5u8; 1000]).client().encode();
    let mut s = server();
    let buffer_start = {
        let buf = s.read_buf();
        buf.extend_from_slice(&wire);
        buf.as_ptr() as usize
    };
    let Some(Event::Message(Message::Binary(payload))) = s.poll_event().unwrap() else {
        panic!("expected a binary message")
    };
    assert_eq!(payload.len(), 1000);
    assert_eq!(
        payload.as_ptr() as usize,
        buffer_start + 8, // 2 + 2 (16-bit length) + 4 (mask key)
        "payload points into the receive buffer"
    );
}

#[test]
fn between_frames_the_receive_buffer_has_room_for_the_next_frame_in_one_read() {
    // A peer that sends 16 KiB messages: after each one, the buffer a runtime reads into has
    // room for the whole next frame and more, so one read takes it and leaves room over
    // (a read that fills the buffer exactly costs an extra read that finds nothing).
    let wire = RawFrame::new(0x2, vec![5u8; 16 * 1024]).client().encode();
    let mut s = server();
    for i in 0..5 {
        let buf = s.read_buf();
        // The first frame's size is not known before it comes.
        assert!(
            i == 0 || buf.capacity() - buf.len() > wire.len(),
            "spare {} for a frame of {}",
            buf.capacity() - buf.len(),
            wire.len()
        );
        // The read takes the whole frame; the payload is gone when the next read comes.
        buf.extend_from_slice(&wire);
        let Some(Event::Message(Message::Binary(payload))) = s.poll_event().unwrap() else {
            panic!("expected a binary message")
        };
        assert_eq!(payload.len(), 16 * 1024);
    }
}
