//! Outgoing fragmentation, streaming relays, fragment delivery modes, masking of client frames
//! and the two output paths (`poll_transmit`, `poll_frame`).

use bytes::{Bytes, BytesMut};
use ws_frame::{Config, Connection, Error, Event, FragmentMode, Message, Role, SendOptions};
use ws_testkit::{Pair, RawFrame};

fn transmit(conn: &mut Connection) -> Vec<RawFrame> {
    let mut out = BytesMut::new();
    while conn.poll_transmit(&mut out) {}
    RawFrame::decode_all(&out)
}

fn events(conn: &mut Connection) -> Vec<Event> {
    let mut out = Vec::new();
    while let Some(event) = conn.poll_event().unwrap() {
        out.push(event);
    }
    out
}

#[test]
fn send_with_a_fragment_size_splits_the_message() {
    let mut s = Connection::new(Role::Server, Config::default()).unwrap();
    s.send_with(Message::text("abcdefghij"), SendOptions::fragmented(4))
        .unwrap();
    let frames = transmit(&mut s);
    let shape: Vec<(bool, u8, &[u8])> = frames
        .iter()
        .map(|f| (f.header.fin, f.header.opcode, &f.payload[..]))
        .collect();
    assert_eq!(
        shape,
        [
            (false, 1, &b"abcd"[..]),
            (false, 0, b"efgh"),
            (true, 0, b"ij")
        ]
    );
}

#[test]
fn config_fragment_size_applies_to_every_send_and_short_messages_stay_whole() {
    let mut config = Config::default();
    config.fragment_size = Some(3);
    let mut s = Connection::new(Role::Server, config).unwrap();
    s.send(Message::binary(vec![1, 2, 3, 4, 5, 6, 7])).unwrap();
    s.send(Message::binary(vec![9, 9])).unwrap();
    let frames = transmit(&mut s);
    let lens: Vec<usize> = frames.iter().map(|f| f.payload.len()).collect();
    assert_eq!(lens, [3, 3, 1, 2]);
    assert!(frames[3].header.fin && frames[3].header.opcode == 2);
}

#[test]
fn zero_fragment_size_is_rejected() {
    let mut s = Connection::new(Role::Server, Config::default()).unwrap();
    let error = s
        .send_with(Message::text("x"), SendOptions::fragmented(0))
        .unwrap_err();
    assert!(matches!(error, Error::Config(_)));
}

#[test]
fn fragmented_sends_are_reassembled_by_the_peer_in_any_chunking() {
    for chunk in [None, Some(1), Some(7)] {
        let mut p = Pair::new(Config::default()).unwrap();
        p.chunk = chunk;
        let text = "κόσμε ".repeat(50);
        p.client
            .send_with(Message::text(text.clone()), SendOptions::fragmented(5))
            .unwrap();
        p.client.ping(Bytes::from_static(b"mid")).unwrap();
        p.drive();
        let events = p.take_server_events();
        assert!(matches!(&events[0], Ok(Event::Ping(b)) if &b[..] == b"mid"));
        assert!(matches!(&events[1], Ok(Event::Message(m)) if m.as_text() == Some(text.as_str())));
    }
}

#[test]
fn pings_interleave_with_a_streamed_message() {
    let mut c = Connection::new(Role::Client, Config::default()).unwrap();
    c.send_fragment(false, Bytes::from_static(b"ab"), true, false)
        .unwrap();
    c.ping(Bytes::from_static(b"p")).unwrap();
    c.send_fragment(false, Bytes::from_static(b"cd"), false, true)
        .unwrap();
    let frames = transmit(&mut c);
    let opcodes: Vec<u8> = frames.iter().map(|f| f.header.opcode).collect();
    // Control frames go out first, between whole frames.
    assert_eq!(opcodes, [0x9, 0x2, 0x0]);
    let mut s = Connection::new(Role::Server, Config::default()).unwrap();
    for f in &frames {
        s.feed(&f.encode());
    }
    assert_eq!(
        events(&mut s),
        [
            Event::Ping(Bytes::from_static(b"p")),
            Event::Message(Message::binary(b"abcd".to_vec()))
        ]
    );
}

#[test]
fn send_fragment_enforces_message_boundaries() {
    let mut c = Connection::new(Role::Client, Config::default()).unwrap();
    assert!(matches!(
        c.send_fragment(true, Bytes::new(), false, true),
        Err(Error::FragmentState)
    ));
    c.send_fragment(true, Bytes::from_static(b"a"), true, false)
        .unwrap();
    assert!(matches!(
        c.send(Message::text("x")),
        Err(Error::FragmentState)
    ));
    assert!(matches!(
        c.send_fragment(true, Bytes::new(), true, true),
        Err(Error::FragmentState)
    ));
    c.send_fragment(true, Bytes::from_static(b"b"), false, true)
        .unwrap();
    c.send(Message::text("after")).unwrap();
}

#[test]
fn relay_streams_fragments_without_reassembly() {
    let mut config = Config::default();
    config.fragment_mode = FragmentMode::Deliver;
    let mut p = Pair::new(config).unwrap();
    p.client
        .send_with(
            Message::binary(vec![3u8; 1000]),
            SendOptions::fragmented(256),
        )
        .unwrap();
    p.drive();
    // Relay what the server received to a third connection, fragment by fragment.
    let mut relay_out = Connection::new(Role::Server, Config::default()).unwrap();
    let mut sizes = Vec::new();
    for event in p.take_server_events() {
        let Ok(Event::Fragment {
            text,
            payload,
            first,
            fin,
        }) = event
        else {
            panic!("{event:?}")
        };
        sizes.push(payload.len());
        relay_out.send_fragment(text, payload, first, fin).unwrap();
    }
    assert_eq!(sizes, [256, 256, 256, 232]);
    let mut sink = Connection::new(Role::Client, Config::default()).unwrap();
    let mut out = BytesMut::new();
    while relay_out.poll_transmit(&mut out) {}
    sink.feed(&out);
    assert_eq!(
        events(&mut sink),
        [Event::Message(Message::binary(vec![3u8; 1000]))]
    );
}

#[test]
fn both_mode_delivers_fragments_then_the_message_and_single_frames_as_messages() {
    let mut config = Config::default();
    config.fragment_mode = FragmentMode::Both;
    let mut s = Connection::new(Role::Server, config).unwrap();
    let mut wire = RawFrame::new(0x1, "whole").client().encode();
    wire.extend(RawFrame::new(0x1, "ab").fin(false).client().encode());
    wire.extend(RawFrame::new(0x0, "cd").client().encode());
    s.feed(&wire);
    assert_eq!(
        events(&mut s),
        [
            Event::Message(Message::text("whole")),
            Event::Fragment {
                text: true,
                payload: Bytes::from_static(b"ab"),
                first: true,
                fin: false
            },
            Event::Fragment {
                text: true,
                payload: Bytes::from_static(b"cd"),
                first: false,
                fin: true
            },
            Event::Message(Message::text("abcd")),
        ]
    );
}

#[test]
fn client_frames_are_masked_with_fresh_random_keys() {
    let mut c = Connection::new(Role::Client, Config::default()).unwrap();
    for _ in 0..100 {
        c.send(Message::binary(vec![0u8; 8])).unwrap();
    }
    let frames = transmit(&mut c);
    let keys: std::collections::HashSet<[u8; 4]> = frames
        .iter()
        .map(|f| f.header.mask.expect("masked"))
        .collect();
    assert!(
        keys.len() > 90,
        "keys repeat: {} distinct of 100",
        keys.len()
    );
    assert!(
        frames.iter().all(|f| f.payload == [0u8; 8]),
        "payload unmasks back"
    );
}

#[test]
fn a_fixed_key_can_be_injected_for_tests() {
    let mut config = Config::default();
    config.fixed_mask_key = Some([0x37, 0xfa, 0x21, 0x3d]);
    let mut c = Connection::new(Role::Client, config).unwrap();
    c.send(Message::text("Hello")).unwrap();
    let mut out = BytesMut::new();
    assert!(c.poll_transmit(&mut out));
    assert_eq!(
        &out[..],
        &[
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58
        ]
    );
}

#[test]
fn server_poll_frame_hands_out_the_application_buffer() {
    let mut s = Connection::new(Role::Server, Config::default()).unwrap();
    let payload = Bytes::from(vec![42u8; 100_000]);
    let address = payload.as_ptr();
    s.send(Message::Binary(payload)).unwrap();
    let frame = s.poll_frame().unwrap();
    assert_eq!(frame.head(), &[0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x86, 0xa0]);
    assert_eq!(frame.payload.as_ptr(), address, "no copy");
    assert_eq!(frame.len(), 10 + 100_000);
    assert!(s.poll_frame().is_none());
    assert_eq!(s.pending_transmit_bytes(), 0);
}

#[test]
fn client_poll_frame_masks_and_matches_poll_transmit() {
    let mut config = Config::default();
    config.fixed_mask_key = Some([1, 2, 3, 4]);
    let mut a = Connection::new(Role::Client, config.clone()).unwrap();
    let mut b = Connection::new(Role::Client, config).unwrap();
    for conn in [&mut a, &mut b] {
        conn.send(Message::binary(vec![7u8; 300])).unwrap();
        conn.ping(Bytes::from_static(b"x")).unwrap();
    }
    let mut via_frames = Vec::new();
    while let Some(frame) = a.poll_frame() {
        via_frames.extend_from_slice(frame.head());
        via_frames.extend_from_slice(&frame.payload);
    }
    let mut via_transmit = BytesMut::new();
    assert!(b.poll_transmit(&mut via_transmit));
    assert_eq!(via_frames, &via_transmit[..]);
}

#[test]
fn poll_transmit_appends_after_existing_bytes_and_reports_pending_size() {
    let mut s = Connection::new(Role::Server, Config::default()).unwrap();
    assert_eq!(s.pending_transmit_bytes(), 0);
    s.send(Message::text("abc")).unwrap();
    s.ping(Bytes::from_static(b"p")).unwrap();
    assert_eq!(s.pending_transmit_bytes(), 5 + 3);
    let mut out = BytesMut::from(&b"prefix"[..]);
    assert!(s.poll_transmit(&mut out));
    assert!(!s.poll_transmit(&mut out));
    assert_eq!(&out[..6], b"prefix");
    assert_eq!(out.len(), 6 + 8);
    assert_eq!(s.pending_transmit_bytes(), 0);
}

#[test]
fn a_ping_flood_keeps_a_bounded_number_of_pongs_and_answers_the_latest() {
    let mut s = Connection::new(Role::Server, Config::default()).unwrap();
    for i in 0..1000u32 {
        s.feed(
            &RawFrame::new(0x9, i.to_be_bytes().to_vec())
                .client()
                .encode(),
        );
    }
    assert_eq!(events(&mut s).len(), 1000);
    let frames = transmit(&mut s);
    assert!(frames.len() <= 64, "{} pongs queued", frames.len());
    assert_eq!(frames.last().unwrap().payload, 999u32.to_be_bytes());
}

#[test]
fn auto_pong_can_be_turned_off() {
    let mut config = Config::default();
    config.auto_pong = false;
    let mut s = Connection::new(Role::Server, config).unwrap();
    s.feed(&RawFrame::new(0x9, "x").client().encode());
    assert_eq!(events(&mut s), [Event::Ping(Bytes::from_static(b"x"))]);
    assert!(transmit(&mut s).is_empty());
    s.pong(Bytes::from_static(b"x")).unwrap();
    assert_eq!(transmit(&mut s)[0].header.opcode, 0xA);
}

#[test]
fn control_payloads_over_125_bytes_are_refused() {
    let mut c = Connection::new(Role::Client, Config::default()).unwrap();
    let big = Bytes::from(vec![0u8; 126]);
    assert!(matches!(
        c.ping(big.clone()),
        Err(Error::ControlPayloadTooLong { len: 126 })
    ));
    assert!(matches!(
        c.pong(big),
        Err(Error::ControlPayloadTooLong { len: 126 })
    ));
    assert!(c.ping(Bytes::from(vec![0u8; 125])).is_ok());
}

#[test]
fn invalid_configuration_is_an_error_not_a_panic() {
    let mut config = Config::default();
    config.max_frame = 10;
    assert!(matches!(
        Connection::new(Role::Server, config),
        Err(Error::Config(_))
    ));
}

/// Large frames fed in socket-sized pieces that run past a frame's end into the next frame
/// (the receive buffer, sized for the first frame, is not regrown for the second): every
/// message arrives whole and in order, text validated across pieces, fragmented or not.
#[test]
fn large_frames_fed_past_their_end_arrive_whole() {
    let mut client = Connection::new(Role::Client, Config::default()).unwrap();
    let text: String = (0..300_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let binary: Vec<u8> = (0..250_000u32).map(|i| (i % 251) as u8).collect();
    client.send(Message::text(text.clone())).unwrap();
    client.send(Message::binary(binary.clone())).unwrap();
    client
        .send_with(Message::text(text.clone()), SendOptions::fragmented(70_000))
        .unwrap();
    client.send(Message::text("tail")).unwrap();
    let mut wire = BytesMut::new();
    while client.poll_transmit(&mut wire) {}
    for piece in [128 * 1024, 100_003, 7, wire.len()] {
        let mut server = Connection::new(Role::Server, Config::default()).unwrap();
        let mut got = Vec::new();
        for chunk in wire.chunks(piece) {
            server.feed(chunk);
            got.extend(events(&mut server));
        }
        let want = vec![
            Event::Message(Message::text(text.clone())),
            Event::Message(Message::binary(binary.clone())),
            Event::Message(Message::text(text.clone())),
            Event::Message(Message::text("tail")),
        ];
        assert!(got == want, "pieces of {piece} bytes");
    }
}
