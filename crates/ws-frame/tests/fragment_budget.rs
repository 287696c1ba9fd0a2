//! A fragmented message cannot hold a connection hostage: the default fragment budget refuses
//! floods of tiny fragments, an unfinished message has a deadline driven by the caller's clock,
//! and the bytes held in partly received messages are visible to the runtime.

use std::time::Duration;

use bytes::BytesMut;
use ws_frame::{CloseCode, Config, Connection, Error, Event, Message, Role};
use ws_testkit::{FakeClock, RawFrame};

fn server(config: Config) -> Connection {
    Connection::new(Role::Server, config).unwrap()
}

/// Drains events until `Ok(None)` or an error; returns the messages and the error.
fn drain(conn: &mut Connection) -> (Vec<Message>, Option<Error>) {
    let mut messages = Vec::new();
    loop {
        match conn.poll_event() {
            Ok(Some(Event::Message(m))) => messages.push(m),
            Ok(Some(_)) => {}
            Ok(None) => return (messages, None),
            Err(e) => return (messages, Some(e)),
        }
    }
}

fn sent_frames(conn: &mut Connection) -> Vec<RawFrame> {
    let mut out = BytesMut::new();
    while conn.poll_transmit(&mut out) {}
    RawFrame::decode_all(&out)
}

fn one_byte_fragment(first: bool) -> Vec<u8> {
    let opcode = if first { 0x2 } else { 0x0 };
    RawFrame::new(opcode, [b'x'])
        .fin(false)
        .masked([1, 2, 3, 4])
        .encode()
}

#[test]
fn a_million_one_byte_fragments_are_refused_at_the_default_budget() {
    let mut conn = server(Config::default());
    let first = one_byte_fragment(true);
    let next = one_byte_fragment(false);
    // Exactly the budget is taken...
    let budget = Config::DEFAULT_MAX_FRAGMENTS;
    let mut wire = Vec::with_capacity(first.len() * budget);
    wire.extend_from_slice(&first);
    for _ in 1..budget {
        wire.extend_from_slice(&next);
    }
    conn.feed(&wire);
    let (messages, error) = drain(&mut conn);
    assert!(messages.is_empty() && error.is_none(), "{error:?}");
    assert_eq!(conn.partial_message_bytes(), budget);
    // ...and the rest of the million is refused at its first fragment.
    let mut rest = Vec::with_capacity(next.len() * (1_000_000 - budget));
    for _ in budget..1_000_000 {
        rest.extend_from_slice(&next);
    }
    conn.feed(&rest);
    let (messages, error) = drain(&mut conn);
    assert!(messages.is_empty());
    let error = error.expect("the budget refuses the flood");
    assert!(
        matches!(error, Error::TooManyFragments { max: 65_537 }),
        "{error}"
    );
    let close = sent_frames(&mut conn).pop().expect("a Close frame");
    assert_eq!(close.close_code(), Some(CloseCode::TOO_BIG.as_u16()));
    assert!(conn.is_closed());
    assert_eq!(conn.partial_message_bytes(), 0);
}

#[test]
fn autobahn_largest_fragmented_message_fits_the_default_budget() {
    // Cases 9.3.1 / 9.4.1: 4 MiB in 64-byte fragments, then the empty final frame that
    // Autobahn's fragmenting loop sends when the length is a multiple of the fragment size.
    let mut conn = server(Config::default());
    let mut wire = Vec::new();
    let fragments = (4 << 20) / 64;
    for i in 0..fragments {
        let opcode = if i == 0 { 0x1 } else { 0x0 };
        wire.extend(
            RawFrame::new(opcode, [b'*'; 64])
                .fin(false)
                .masked([9, 8, 7, 6])
                .encode(),
        );
    }
    wire.extend(RawFrame::new(0x0, []).masked([9, 8, 7, 6]).encode());
    conn.feed(&wire);
    let (messages, error) = drain(&mut conn);
    assert!(error.is_none(), "{error:?}");
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].len(), 4 << 20);
    assert_eq!(conn.poll_timeout(), None);
}

#[test]
fn an_unfinished_message_fails_with_1008_at_its_deadline_on_a_fake_clock() {
    let mut clock = FakeClock::new();
    let mut config = Config::default();
    config.message_timeout = Some(Duration::from_secs(10));
    let mut conn = server(config);
    assert!(!conn.wants_now());
    conn.feed(&RawFrame::new(0x1, "hel").fin(false).client().encode());
    assert!(drain(&mut conn).0.is_empty());
    assert_eq!(conn.partial_message_bytes(), 3);
    // The deadline starts at the first time the core is given.
    assert!(conn.wants_now());
    assert_eq!(conn.poll_timeout(), None);
    conn.handle_timeout(clock.now());
    assert!(!conn.wants_now());
    assert_eq!(
        conn.poll_timeout(),
        Some(clock.now() + Duration::from_secs(10))
    );

    // More fragments do not move the deadline.
    clock.advance(Duration::from_secs(6));
    conn.feed(&RawFrame::new(0x0, "lo").fin(false).client().encode());
    assert!(drain(&mut conn).0.is_empty());
    conn.handle_timeout(clock.now());
    assert!(drain(&mut conn).1.is_none());
    assert_eq!(
        conn.poll_timeout(),
        Some(clock.now() + Duration::from_secs(4))
    );

    clock.advance(Duration::from_secs(4));
    conn.handle_timeout(clock.now());
    let (_, error) = drain(&mut conn);
    let error = error.expect("the message deadline fired");
    assert!(
        matches!(error, Error::MessageTimeout { after } if after == Duration::from_secs(10)),
        "{error}"
    );
    assert_eq!(error.close_code(), CloseCode::POLICY);
    assert!(matches!(conn.poll_event(), Ok(None)), "reported once");
    let close = sent_frames(&mut conn).pop().expect("a Close frame");
    assert_eq!(close.close_code(), Some(1008));
    let reason = String::from_utf8_lossy(&close.payload[2..]).into_owned();
    assert!(reason.contains("not finished within 10s"), "{reason}");
    assert!(conn.wants_transport_close());
    assert_eq!(conn.partial_message_bytes(), 0);
    assert_eq!(conn.poll_timeout(), None);
}

#[test]
fn a_finished_message_stops_its_deadline_and_the_next_one_gets_its_own() {
    let mut clock = FakeClock::new();
    let mut conn = server(Config::default());
    conn.feed(&RawFrame::new(0x2, "a").fin(false).client().encode());
    drain(&mut conn);
    conn.handle_timeout(clock.now());
    assert!(conn.poll_timeout().is_some());
    clock.advance(Duration::from_secs(59));
    conn.feed(&RawFrame::new(0x0, "b").client().encode());
    assert_eq!(drain(&mut conn).0, vec![Message::binary(&b"ab"[..])]);
    assert_eq!(conn.poll_timeout(), None);
    assert!(!conn.wants_now());
    assert_eq!(conn.partial_message_bytes(), 0);

    // Unfragmented messages never start a deadline.
    conn.feed(&RawFrame::new(0x2, "whole").client().encode());
    assert_eq!(drain(&mut conn).0.len(), 1);
    assert!(!conn.wants_now());

    // The next fragmented message counts from its own start.
    conn.feed(&RawFrame::new(0x2, "c").fin(false).client().encode());
    drain(&mut conn);
    assert!(conn.wants_now());
    conn.handle_timeout(clock.now());
    assert_eq!(
        conn.poll_timeout(),
        Some(clock.now() + Config::DEFAULT_MESSAGE_TIMEOUT)
    );
    // A runtime that stopped reading lets it count afresh.
    clock.advance(Duration::from_secs(30));
    conn.restart_message_timer();
    assert!(conn.wants_now());
    conn.handle_timeout(clock.now());
    assert_eq!(
        conn.poll_timeout(),
        Some(clock.now() + Config::DEFAULT_MESSAGE_TIMEOUT)
    );
}

#[test]
fn no_message_timeout_means_no_deadline() {
    let mut config = Config::default();
    config.message_timeout = None;
    let mut conn = server(config);
    conn.feed(&RawFrame::new(0x2, "a").fin(false).client().encode());
    drain(&mut conn);
    assert!(!conn.wants_now());
    conn.handle_timeout(FakeClock::new().now());
    assert_eq!(conn.poll_timeout(), None);
}

#[test]
fn partial_bytes_count_a_frame_still_arriving_and_the_reassembly_buffer() {
    let mut conn = server(Config::default());
    let first = RawFrame::new(0x2, vec![1u8; 100])
        .fin(false)
        .client()
        .encode();
    conn.feed(&first);
    drain(&mut conn);
    assert_eq!(conn.partial_message_bytes(), 100);
    let second = RawFrame::new(0x0, vec![2u8; 50]).client().encode();
    // Header (6 bytes) plus 20 payload bytes of the last fragment.
    conn.feed(&second[..26]);
    drain(&mut conn);
    assert_eq!(conn.partial_message_bytes(), 120);
    conn.feed(&second[26..]);
    assert_eq!(drain(&mut conn).0.len(), 1);
    assert_eq!(conn.partial_message_bytes(), 0);
    // A single frame on its way counts too; a control frame does not.
    let big = RawFrame::new(0x2, vec![3u8; 1000]).client().encode();
    conn.feed(&big[..508]);
    drain(&mut conn);
    assert_eq!(conn.partial_message_bytes(), 500);
}

#[test]
fn abort_fails_the_connection_with_the_given_code_and_drops_the_partial_message() {
    let mut conn = server(Config::default());
    conn.feed(
        &RawFrame::new(0x2, vec![0u8; 1000])
            .fin(false)
            .client()
            .encode(),
    );
    drain(&mut conn);
    assert_eq!(conn.partial_message_bytes(), 1000);
    assert!(matches!(
        conn.abort(CloseCode::from_u16(1005), "x"),
        Err(Error::UnsendableCloseCode(1005))
    ));
    conn.abort(CloseCode::TRY_AGAIN, "server busy").unwrap();
    assert_eq!(conn.partial_message_bytes(), 0);
    assert!(conn.is_closed());
    assert!(!conn.wants_now());
    conn.feed(&RawFrame::new(0x0, "more").client().encode());
    assert!(matches!(conn.poll_event(), Ok(None)));
    let close = sent_frames(&mut conn).pop().expect("a Close frame");
    assert_eq!(close.close_code(), Some(1013));
    assert_eq!(&close.payload[2..], b"server busy");
    assert!(conn.wants_transport_close());
    assert!(matches!(
        conn.abort(CloseCode::TRY_AGAIN, ""),
        Err(Error::Closed)
    ));
}
