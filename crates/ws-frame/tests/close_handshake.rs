//! The close handshake in both directions, its timeout, and what may happen around it.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ws_frame::{CloseCode, Config, Connection, Error, Event, Initiator, Message, Role};
use ws_testkit::{Pair, RawFrame};

fn pair() -> Pair {
    Pair::new(Config::default()).unwrap()
}

fn only_event(events: Vec<Result<Event, Error>>) -> Event {
    assert_eq!(events.len(), 1, "{events:?}");
    events.into_iter().next().unwrap().unwrap()
}

#[test]
fn client_initiated_close_completes_and_the_server_closes_the_transport() {
    let mut p = pair();
    let now = p.clock.now();
    p.client.close(CloseCode::AWAY, "going", now).unwrap();
    p.drive();
    assert_eq!(
        only_event(p.take_server_events()),
        Event::Closed {
            code: CloseCode::AWAY,
            reason: "going".into(),
            by: Initiator::Remote
        }
    );
    assert_eq!(
        only_event(p.take_client_events()),
        Event::Closed {
            code: CloseCode::AWAY,
            reason: "going".into(),
            by: Initiator::User
        }
    );
    assert!(p.client.is_closed() && p.server.is_closed());
    assert!(!p.transport_open(), "the server closed the transport");
    // The server echoed the client's code.
    let echo = RawFrame::decode_all(p.server_wire());
    assert_eq!(echo.len(), 1);
    assert_eq!(echo[0].close_code(), Some(1001));
}

#[test]
fn server_initiated_close_completes_and_the_client_waits_for_the_server() {
    let mut p = pair();
    let now = p.clock.now();
    p.server.close(CloseCode::NORMAL, "", now).unwrap();
    p.drive();
    assert_eq!(
        only_event(p.take_client_events()),
        Event::Closed {
            code: CloseCode::NORMAL,
            reason: "".into(),
            by: Initiator::Remote
        }
    );
    assert_eq!(
        only_event(p.take_server_events()),
        Event::Closed {
            code: CloseCode::NORMAL,
            reason: "".into(),
            by: Initiator::User
        }
    );
    assert!(
        !p.transport_open(),
        "the server closed the transport after its close was echoed"
    );
    assert!(p.server.wants_transport_close());
}

#[test]
fn client_alone_waits_for_the_tcp_close_until_its_deadline() {
    let mut client = Connection::new(Role::Client, Config::default()).unwrap();
    let mut clock = ws_testkit::FakeClock::new();
    client.close(CloseCode::NORMAL, "", clock.now()).unwrap();
    let mut out = BytesMut::new();
    assert!(client.poll_transmit(&mut out));
    client.feed(&RawFrame::new(0x8, 1000u16.to_be_bytes().to_vec()).encode());
    assert!(matches!(
        client.poll_event(),
        Ok(Some(Event::Closed {
            by: Initiator::User,
            ..
        }))
    ));
    assert!(client.is_closed());
    assert!(
        !client.wants_transport_close(),
        "the client lets the server close TCP first"
    );
    let deadline = client
        .poll_timeout()
        .expect("a deadline for the server's TCP close");
    clock.advance(Duration::from_secs(5));
    assert!(clock.now() >= deadline);
    client.handle_timeout(clock.now());
    assert!(client.wants_transport_close());
    assert_eq!(client.poll_timeout(), None);
}

#[test]
fn close_without_a_code_is_echoed_with_1000_and_reported_as_no_status() {
    let mut server = Connection::new(Role::Server, Config::default()).unwrap();
    server.feed(&RawFrame::new(0x8, "").client().encode());
    assert_eq!(
        server.poll_event().unwrap(),
        Some(Event::Closed {
            code: CloseCode::NO_STATUS,
            reason: "".into(),
            by: Initiator::Remote
        })
    );
    let mut out = BytesMut::new();
    assert!(server.poll_transmit(&mut out));
    assert_eq!(&out[..], &[0x88, 0x02, 0x03, 0xe8]);
    assert!(server.wants_transport_close());
}

#[test]
fn every_valid_close_code_is_echoed() {
    for code in [
        1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999,
        4000, 4999,
    ] {
        let mut server = Connection::new(Role::Server, Config::default()).unwrap();
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend(b"why");
        server.feed(&RawFrame::new(0x8, payload).client().encode());
        assert_eq!(
            server.poll_event().unwrap(),
            Some(Event::Closed {
                code: CloseCode::from(code),
                reason: "why".into(),
                by: Initiator::Remote
            })
        );
        let mut out = BytesMut::new();
        assert!(server.poll_transmit(&mut out));
        assert_eq!(RawFrame::decode_all(&out)[0].close_code(), Some(code));
    }
}

#[test]
fn empty_close_from_the_application_sends_no_payload() {
    let mut p = pair();
    let now = p.clock.now();
    p.client.close(CloseCode::NO_STATUS, "", now).unwrap();
    p.drive();
    let sent = RawFrame::decode_all(p.client_wire());
    assert_eq!(sent.len(), 1);
    assert!(sent[0].payload.is_empty());
    assert!(matches!(
        only_event(p.take_server_events()),
        Event::Closed {
            code: CloseCode::NO_STATUS,
            by: Initiator::Remote,
            ..
        }
    ));
}

#[test]
fn close_times_out_when_the_peer_never_answers() {
    let mut p = pair();
    p.server
        .close(CloseCode::NORMAL, "", p.clock.now())
        .unwrap();
    let mut out = BytesMut::new();
    assert!(
        p.server.poll_transmit(&mut out),
        "close written, never delivered"
    );
    assert_eq!(
        p.server.poll_timeout(),
        Some(p.clock.now() + Config::DEFAULT_CLOSE_TIMEOUT)
    );
    p.clock.advance(Duration::from_millis(4999));
    p.server.handle_timeout(p.clock.now());
    assert!(matches!(p.server.poll_event(), Ok(None)));
    assert!(!p.server.wants_transport_close());
    p.clock.advance(Duration::from_millis(1));
    p.server.handle_timeout(p.clock.now());
    let error = p.server.poll_event().unwrap_err();
    assert!(matches!(error, Error::CloseTimeout));
    assert_eq!(error.close_code(), CloseCode::ABNORMAL);
    assert!(p.server.wants_transport_close());
    assert!(p.server.is_closed());
    assert!(matches!(p.server.poll_event(), Ok(None)));
    assert_eq!(p.server.poll_timeout(), None);
}

#[test]
fn pair_drives_the_timeout_through_the_fake_clock() {
    let mut config = Config::default();
    config.close_timeout = Duration::from_secs(2);
    let mut p = Pair::new(config).unwrap();
    // The client stops reading: inject the server's close frame into nowhere by closing
    // locally on the server only and never driving the client.
    p.server
        .close(CloseCode::NORMAL, "", p.clock.now())
        .unwrap();
    let mut sink = BytesMut::new();
    while p.server.poll_transmit(&mut sink) {}
    p.advance(Duration::from_secs(1));
    assert!(p.take_server_events().is_empty());
    p.advance(Duration::from_secs(1));
    let events = p.take_server_events();
    assert!(
        matches!(&events[..], [Err(Error::CloseTimeout)]),
        "{events:?}"
    );
}

#[test]
fn messages_arriving_while_waiting_for_the_close_reply_are_delivered() {
    let mut server = Connection::new(Role::Server, Config::default()).unwrap();
    let now = std::time::Instant::now();
    server.close(CloseCode::NORMAL, "", now).unwrap();
    let mut wire = RawFrame::new(0x1, "late").client().encode();
    wire.extend(RawFrame::new(0x9, "p").client().encode());
    wire.extend(
        RawFrame::new(0x8, 1000u16.to_be_bytes().to_vec())
            .client()
            .encode(),
    );
    wire.extend(RawFrame::new(0x1, "after close").client().encode());
    server.feed(&wire);
    let mut events = Vec::new();
    while let Some(e) = server.poll_event().unwrap() {
        events.push(e);
    }
    assert_eq!(
        events,
        [
            Event::Message(Message::text("late")),
            Event::Ping(Bytes::from_static(b"p")),
            Event::Closed {
                code: CloseCode::NORMAL,
                reason: "".into(),
                by: Initiator::User
            },
        ]
    );
    let mut out = BytesMut::new();
    assert!(server.poll_transmit(&mut out));
    let frames = RawFrame::decode_all(&out);
    assert_eq!(
        frames.len(),
        1,
        "only our close: no pong after sending Close"
    );
    assert_eq!(frames[0].header.opcode, 0x8);
}

#[test]
fn nothing_can_be_sent_after_close() {
    let mut p = pair();
    let now = p.clock.now();
    p.client.close(CloseCode::NORMAL, "", now).unwrap();
    assert!(matches!(
        p.client.send(Message::text("x")),
        Err(Error::Closed)
    ));
    assert!(matches!(p.client.ping(Bytes::new()), Err(Error::Closed)));
    assert!(matches!(
        p.client.close(CloseCode::NORMAL, "", now),
        Err(Error::Closed)
    ));
    p.drive();
    assert!(matches!(
        p.server.send(Message::text("x")),
        Err(Error::Closed)
    ));
}

#[test]
fn close_arguments_are_checked() {
    let mut c = Connection::new(Role::Client, Config::default()).unwrap();
    let now = std::time::Instant::now();
    assert!(matches!(
        c.close(CloseCode::ABNORMAL, "", now),
        Err(Error::UnsendableCloseCode(1006))
    ));
    assert!(matches!(
        c.close(CloseCode::from(1004), "", now),
        Err(Error::UnsendableCloseCode(1004))
    ));
    let long = "x".repeat(124);
    assert!(matches!(
        c.close(CloseCode::NORMAL, &long, now),
        Err(Error::ControlPayloadTooLong { len: 126 })
    ));
    assert!(c.close(CloseCode::NORMAL, &long[..123], now).is_ok());
}

#[test]
fn queued_data_goes_out_before_the_close_frame() {
    let mut p = pair();
    let now = p.clock.now();
    p.client.send(Message::text("first")).unwrap();
    p.client.close(CloseCode::NORMAL, "", now).unwrap();
    p.drive();
    let events = p.take_server_events();
    assert!(matches!(&events[0], Ok(Event::Message(m)) if m.as_text() == Some("first")));
    assert!(matches!(&events[1], Ok(Event::Closed { .. })));
}

#[test]
fn peer_closing_the_transport_early_is_abnormal_for_both_roles() {
    for role in [Role::Client, Role::Server] {
        let mut conn = Connection::new(role, Config::default()).unwrap();
        conn.handle_eof();
        assert!(matches!(conn.poll_event(), Err(Error::UnexpectedEof)));
        assert!(conn.is_closed());
        assert!(conn.wants_transport_close());
    }
}

#[test]
fn end_of_stream_after_a_completed_handshake_is_not_an_error() {
    let mut p = pair();
    let now = p.clock.now();
    p.server.close(CloseCode::NORMAL, "", now).unwrap();
    p.drive();
    p.client.handle_eof();
    assert!(matches!(p.client.poll_event(), Ok(None)));
    assert!(p.client.wants_transport_close());
}
