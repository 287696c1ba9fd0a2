//! Every way a peer can break RFC 6455 fails the connection with the right close code, sends a
//! Close frame carrying it, reports the error once and processes nothing afterwards.

use bytes::BytesMut;
use ws_frame::{
    CloseCode, Config, Connection, Error, Event, FragmentMode, Message, ProtocolError, Role,
    deflate::DeflateParams,
};
use ws_testkit::RawFrame;

struct Outcome {
    events: Vec<Event>,
    error: Error,
    sent: Vec<RawFrame>,
}

/// Feeds `wire` to a connection and returns the events before the error, the error, and the
/// frames written afterwards. Checks the invariants every failure must keep.
fn fail(role: Role, config: Config, wire: &[u8]) -> Outcome {
    let mut conn = Connection::new(role, config).unwrap();
    conn.feed(wire);
    let mut events = Vec::new();
    let error = loop {
        match conn.poll_event() {
            Ok(Some(event)) => events.push(event),
            Ok(None) => panic!("no error; events so far: {events:?}"),
            Err(error) => break error,
        }
    };
    assert!(matches!(conn.poll_event(), Ok(None)), "error reported once");
    conn.feed(&RawFrame::new(0x1, "after").client().encode());
    assert!(
        matches!(conn.poll_event(), Ok(None)),
        "nothing processed after failure"
    );
    assert!(conn.is_closed());
    assert!(matches!(conn.send(Message::text("x")), Err(Error::Closed)));
    let mut out = BytesMut::new();
    while conn.poll_transmit(&mut out) {}
    assert!(conn.wants_transport_close());
    Outcome {
        events,
        error,
        sent: RawFrame::decode_all(&out),
    }
}

fn cfg(f: impl FnOnce(&mut Config)) -> Config {
    let mut config = Config::default();
    f(&mut config);
    config
}

fn server_fails(wire: &[u8]) -> Outcome {
    fail(Role::Server, Config::default(), wire)
}

fn assert_close_sent(outcome: &Outcome, code: CloseCode) {
    assert_eq!(outcome.error.close_code(), code, "{}", outcome.error);
    let close = outcome.sent.last().expect("a Close frame was sent");
    assert_eq!(close.header.opcode, 0x8);
    assert_eq!(close.close_code(), Some(code.as_u16()));
    assert!(std::str::from_utf8(&close.payload[2..]).is_ok());
    assert!(close.payload.len() <= 125);
}

#[test]
fn reserved_opcodes_fail_with_1002() {
    for opcode in [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
        let o = server_fails(&RawFrame::new(opcode, "x").client().encode());
        assert!(
            matches!(o.error, Error::Protocol(ProtocolError::ReservedOpcode(op)) if op == opcode)
        );
        assert_close_sent(&o, CloseCode::PROTOCOL);
    }
}

#[test]
fn reserved_bits_fail_with_1002() {
    for (r1, r2, r3) in [
        (true, false, false),
        (false, true, false),
        (false, false, true),
        (true, true, true),
    ] {
        let o = server_fails(&RawFrame::new(0x1, "x").rsv(r1, r2, r3).client().encode());
        assert!(matches!(
            o.error,
            Error::Protocol(ProtocolError::ReservedBits)
        ));
        assert_close_sent(&o, CloseCode::PROTOCOL);
    }
}

#[test]
fn rsv1_is_reserved_on_control_and_continuation_frames_even_with_deflate() {
    let config = cfg(|c| c.deflate = Some(DeflateParams::default()));
    let o = fail(
        Role::Server,
        config.clone(),
        &RawFrame::new(0x9, "")
            .rsv(true, false, false)
            .client()
            .encode(),
    );
    assert!(matches!(
        o.error,
        Error::Protocol(ProtocolError::Rsv1NotOnFirstFrame)
    ));
    assert_close_sent(&o, CloseCode::PROTOCOL);
    let mut wire = RawFrame::new(0x1, "a").fin(false).client().encode();
    wire.extend(
        RawFrame::new(0x0, "b")
            .rsv(true, false, false)
            .client()
            .encode(),
    );
    let o = fail(Role::Server, config, &wire);
    assert!(matches!(
        o.error,
        Error::Protocol(ProtocolError::Rsv1NotOnFirstFrame)
    ));
}

#[test]
fn server_rejects_unmasked_client_frames() {
    let o = server_fails(&RawFrame::new(0x1, "Hello").encode());
    assert!(matches!(
        o.error,
        Error::Protocol(ProtocolError::UnmaskedFrame)
    ));
    assert_close_sent(&o, CloseCode::PROTOCOL);
}

#[test]
fn server_accepts_unmasked_frames_only_when_configured_for_tests() {
    let config = cfg(|c| c.accept_unmasked_from_client = true);
    let mut s = Connection::new(Role::Server, config).unwrap();
    s.feed(&RawFrame::new(0x1, "Hello").encode());
    assert_eq!(
        s.poll_event().unwrap(),
        Some(Event::Message(Message::text("Hello")))
    );
}

#[test]
fn client_rejects_masked_server_frames_and_masks_its_close() {
    let o = fail(
        Role::Client,
        Config::default(),
        &RawFrame::new(0x1, "Hello").client().encode(),
    );
    assert!(matches!(
        o.error,
        Error::Protocol(ProtocolError::MaskedFrame)
    ));
    assert_close_sent(&o, CloseCode::PROTOCOL);
    assert!(o.sent[0].header.mask.is_some(), "client frames are masked");
}

#[test]
fn fragmented_control_frames_fail() {
    for opcode in [0x8, 0x9, 0xA] {
        let o = server_fails(&RawFrame::new(opcode, "").fin(false).client().encode());
        assert!(matches!(
            o.error,
            Error::Protocol(ProtocolError::FragmentedControl)
        ));
        assert_close_sent(&o, CloseCode::PROTOCOL);
    }
}

#[test]
fn control_frames_over_125_bytes_fail_before_the_payload_arrives() {
    for opcode in [0x8, 0x9, 0xA] {
        let wire = RawFrame::new(opcode, vec![b'a'; 126]).client().encode();
        // Only the header: the error must not wait for the payload.
        let o = server_fails(&wire[..8]);
        assert!(matches!(
            o.error,
            Error::Protocol(ProtocolError::ControlTooLong(126))
        ));
        assert_close_sent(&o, CloseCode::PROTOCOL);
    }
    // 125 is fine.
    let mut s = Connection::new(Role::Server, Config::default()).unwrap();
    s.feed(&RawFrame::new(0x9, vec![b'a'; 125]).client().encode());
    assert!(matches!(s.poll_event(), Ok(Some(Event::Ping(p))) if p.len() == 125));
}

#[test]
fn continuation_without_a_message_fails() {
    let o = server_fails(&RawFrame::new(0x0, "x").client().encode());
    assert!(matches!(
        o.error,
        Error::Protocol(ProtocolError::UnexpectedContinuation)
    ));
    assert_close_sent(&o, CloseCode::PROTOCOL);
}

#[test]
fn new_message_inside_a_fragmented_message_fails() {
    let mut wire = RawFrame::new(0x1, "a").fin(false).client().encode();
    wire.extend(RawFrame::new(0x2, "b").client().encode());
    let o = server_fails(&wire);
    assert!(matches!(
        o.error,
        Error::Protocol(ProtocolError::ExpectedContinuation)
    ));
    assert_close_sent(&o, CloseCode::PROTOCOL);
}

#[test]
fn sixty_four_bit_length_with_msb_set_fails() {
    let o = server_fails(&[0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]);
    assert!(matches!(
        o.error,
        Error::Protocol(ProtocolError::LengthMsbSet)
    ));
    assert_close_sent(&o, CloseCode::PROTOCOL);
}

#[test]
fn close_frames_with_a_one_byte_payload_fail() {
    let o = server_fails(&RawFrame::new(0x8, vec![0x03]).client().encode());
    assert!(matches!(
        o.error,
        Error::Protocol(ProtocolError::CloseTooShort)
    ));
    assert_close_sent(&o, CloseCode::PROTOCOL);
}

#[test]
fn close_frames_with_unsendable_codes_fail() {
    for code in [
        0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
    ] {
        let o = server_fails(
            &RawFrame::new(0x8, code.to_be_bytes().to_vec())
                .client()
                .encode(),
        );
        assert!(
            matches!(o.error, Error::Protocol(ProtocolError::InvalidCloseCode(c)) if c == code),
            "{code}"
        );
        assert_close_sent(&o, CloseCode::PROTOCOL);
    }
}

#[test]
fn close_reason_with_invalid_utf8_fails_with_1007() {
    let mut payload = 1000u16.to_be_bytes().to_vec();
    payload.extend([
        0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80,
    ]);
    let o = server_fails(&RawFrame::new(0x8, payload).client().encode());
    assert!(matches!(o.error, Error::InvalidUtf8));
    assert_close_sent(&o, CloseCode::INVALID_PAYLOAD);
}

#[test]
fn frames_over_max_frame_fail_with_1009_at_header_time() {
    // A header announcing 1 TiB: fails before any payload byte, without reserving it.
    let mut wire = vec![0x82, 0xFF];
    wire.extend((1u64 << 40).to_be_bytes());
    wire.extend([1, 2, 3, 4]);
    let o = server_fails(&wire);
    assert!(matches!(o.error, Error::FrameTooLarge { len, .. } if len == 1 << 40));
    assert_close_sent(&o, CloseCode::TOO_BIG);
}

#[test]
fn announced_large_frame_reserves_a_bounded_amount() {
    let config = Config::default();
    let mut s = Connection::new(Role::Server, config).unwrap();
    let mut wire = vec![0x82, 0xFF];
    wire.extend((16u64 << 20).to_be_bytes());
    wire.extend([1, 2, 3, 4]);
    s.feed(&wire);
    assert!(matches!(s.poll_event(), Ok(None)));
    assert!(
        s.read_buf().capacity() <= (1 << 20) + 64 * 1024,
        "{}",
        s.read_buf().capacity()
    );
}

#[test]
fn messages_over_max_message_fail_with_1009_at_the_fragment_that_crosses_it() {
    let config = cfg(|c| {
        c.max_frame = 1000;
        c.max_message = 2500;
    });
    let mut wire = Vec::new();
    wire.extend(
        RawFrame::new(0x2, vec![0; 1000])
            .fin(false)
            .client()
            .encode(),
    );
    wire.extend(
        RawFrame::new(0x0, vec![0; 1000])
            .fin(false)
            .client()
            .encode(),
    );
    // Only the header of the third: 3000 > 2500 fails before its payload.
    wire.extend(&RawFrame::new(0x0, vec![0; 1000]).client().encode()[..8]);
    let o = fail(Role::Server, config, &wire);
    assert!(matches!(o.error, Error::MessageTooLarge { max: 2500 }));
    assert_close_sent(&o, CloseCode::TOO_BIG);
}

#[test]
fn too_many_fragments_fail_with_1009() {
    let config = cfg(|c| c.max_fragments = 3);
    let mut wire = RawFrame::new(0x2, "a").fin(false).client().encode();
    for _ in 0..3 {
        wire.extend(RawFrame::new(0x0, "a").fin(false).client().encode());
    }
    let o = fail(Role::Server, config, &wire);
    assert!(matches!(o.error, Error::TooManyFragments { max: 3 }));
    assert_close_sent(&o, CloseCode::TOO_BIG);
}

#[test]
fn floods_of_empty_fragments_exhaust_the_budget_with_1008() {
    let config = cfg(|c| c.max_empty_frames = 10);
    let mut wire = RawFrame::new(0x2, "").fin(false).client().encode();
    for _ in 0..5 {
        wire.extend(RawFrame::new(0x0, "").fin(false).client().encode());
        wire.extend(RawFrame::new(0x9, "").client().encode());
    }
    let o = fail(Role::Server, config, &wire);
    assert!(matches!(o.error, Error::TooManyEmptyFrames { max: 10 }));
    assert_close_sent(&o, CloseCode::POLICY);
    assert_eq!(
        o.events.len(),
        4,
        "pings before the budget ran out are delivered"
    );
}

#[test]
fn data_resets_the_empty_frame_budget() {
    let config = cfg(|c| c.max_empty_frames = 2);
    let mut s = Connection::new(Role::Server, config).unwrap();
    let mut wire = RawFrame::new(0x2, "").fin(false).client().encode();
    for _ in 0..20 {
        wire.extend(RawFrame::new(0x9, "").client().encode());
        wire.extend(RawFrame::new(0x0, "x").fin(false).client().encode());
    }
    wire.extend(RawFrame::new(0x0, "").client().encode());
    s.feed(&wire);
    let mut count = 0;
    while let Some(event) = s.poll_event().unwrap() {
        count += 1;
        if let Event::Message(m) = event {
            assert_eq!(m.len(), 20);
        }
    }
    assert_eq!(count, 21);
}

#[test]
fn events_before_the_violation_are_delivered_and_queued_replies_precede_the_close() {
    // Text, ping, then a reserved opcode, then a ping that must not be answered.
    let mut wire = RawFrame::new(0x1, "Hello").client().encode();
    wire.extend(RawFrame::new(0x9, "1").client().encode());
    wire.extend(RawFrame::new(0x5, "").client().encode());
    wire.extend(RawFrame::new(0x9, "2").client().encode());
    let o = server_fails(&wire);
    assert_eq!(o.events.len(), 2);
    let opcodes: Vec<u8> = o.sent.iter().map(|f| f.header.opcode).collect();
    assert_eq!(opcodes, [0xA, 0x8], "one pong, then the close");
    assert_eq!(o.sent[0].payload, b"1");
}

#[test]
fn invalid_utf8_in_deliver_mode_fails_too() {
    let config = cfg(|c| c.fragment_mode = FragmentMode::Deliver);
    let mut wire = RawFrame::new(0x1, "ok").fin(false).client().encode();
    wire.extend(RawFrame::new(0x0, vec![0xff]).client().encode());
    let o = fail(Role::Server, config, &wire);
    assert!(matches!(o.error, Error::InvalidUtf8));
    assert_eq!(o.events.len(), 1, "the valid first fragment was delivered");
    assert_close_sent(&o, CloseCode::INVALID_PAYLOAD);
}

#[test]
fn end_of_stream_before_a_close_is_abnormal() {
    let mut s = Connection::new(Role::Server, Config::default()).unwrap();
    s.feed(&RawFrame::new(0x1, "Hel").client().encode()[..5]);
    assert!(matches!(s.poll_event(), Ok(None)));
    s.handle_eof();
    let error = s.poll_event().unwrap_err();
    assert!(matches!(error, Error::UnexpectedEof));
    assert_eq!(error.close_code(), CloseCode::ABNORMAL);
    assert!(s.wants_transport_close());
    assert!(matches!(s.poll_event(), Ok(None)));
}
