//! The connection's own timers on a fake clock: keep-alive pings, the pong deadline, the idle
//! timeout, read pauses and a client's wait for the server's TCP close. No real time passes.

use std::time::{Duration, Instant};

use bytes::Bytes;
use ws_frame::{CloseCode, Config, Connection, Error, Event, Heartbeat, Initiator, Message, Role};
use ws_testkit::{FakeClock, Pair, RawFrame};

const SEC: Duration = Duration::from_secs(1);

fn server_config(hb: Option<Heartbeat>, idle: Option<Duration>) -> Config {
    let mut c = Config::default();
    c.heartbeat = hb;
    c.idle_timeout = idle;
    c
}

fn quiet_client() -> Config {
    let mut c = Config::default();
    c.auto_pong = false;
    c
}

/// Opcodes of the frames a side wrote.
fn opcodes(wire: &[u8]) -> Vec<u8> {
    RawFrame::decode_all(wire)
        .iter()
        .map(|f| f.header.opcode)
        .collect()
}

#[test]
fn pings_go_out_every_interval_and_pongs_keep_the_connection() {
    let hb = Heartbeat::new(10 * SEC, 5 * SEC);
    let mut p = Pair::with_configs(Config::default(), server_config(Some(hb), None)).unwrap();
    p.drive();
    assert_eq!(p.server.poll_timeout(), Some(p.clock.now() + 10 * SEC));
    p.advance(9 * SEC);
    assert!(
        opcodes(p.server_wire()).is_empty(),
        "no ping before the interval"
    );
    for round in 1..=3 {
        p.advance(SEC);
        assert_eq!(opcodes(p.server_wire()), vec![0x9; round], "round {round}");
        p.advance(9 * SEC);
    }
    let events = p.take_server_events();
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(
        events
            .iter()
            .all(|e| matches!(e, Ok(Event::Pong(b)) if b.is_empty()))
    );
    assert!(p.transport_open() && !p.server.is_closed());
}

#[test]
fn a_silent_peer_fails_the_connection_at_the_pong_deadline_without_a_close_frame() {
    let hb = Heartbeat::new(10 * SEC, 5 * SEC);
    let mut p = Pair::with_configs(quiet_client(), server_config(Some(hb), None)).unwrap();
    p.drive();
    p.advance(10 * SEC);
    p.advance(4 * SEC);
    assert!(p.take_server_events().is_empty());
    assert!(p.transport_open());
    p.advance(SEC);
    let events = p.take_server_events();
    assert!(
        matches!(&events[..], [Err(Error::PongTimeout { after })] if *after == 5 * SEC),
        "{events:?}"
    );
    assert_eq!(
        opcodes(p.server_wire()),
        vec![0x9],
        "a ping and no Close frame"
    );
    assert!(!p.transport_open(), "the transport is dropped");
    assert_eq!(
        Error::PongTimeout { after: SEC }.close_code(),
        CloseCode::ABNORMAL
    );
}

#[test]
fn any_frame_from_the_peer_counts_as_the_answer() {
    let hb = Heartbeat::new(10 * SEC, 5 * SEC);
    let mut p = Pair::with_configs(quiet_client(), server_config(Some(hb), None)).unwrap();
    p.drive();
    p.advance(10 * SEC);
    p.advance(3 * SEC);
    p.client.send(Message::text("still here")).unwrap();
    p.drive();
    p.advance(3 * SEC);
    let events = p.take_server_events();
    assert_eq!(
        events.len(),
        1,
        "the message, no timeout at 16 s: {events:?}"
    );
    assert!(p.transport_open());
}

#[test]
fn without_a_timeout_a_silent_peer_is_pinged_forever() {
    let hb = Heartbeat::new(10 * SEC, None);
    let mut p = Pair::with_configs(quiet_client(), server_config(Some(hb), None)).unwrap();
    p.drive();
    for _ in 0..5 {
        p.advance(10 * SEC);
    }
    // A ping waits for nothing, so each interval sends one.
    assert_eq!(opcodes(p.server_wire()), vec![0x9; 5]);
    assert!(p.transport_open());
}

#[test]
fn only_if_idle_skips_the_ping_after_traffic() {
    let mut hb = Heartbeat::new(10 * SEC, 5 * SEC);
    hb.only_if_idle = true;
    let mut p = Pair::with_configs(Config::default(), server_config(Some(hb), None)).unwrap();
    p.drive();
    p.advance(5 * SEC);
    p.client.send(Message::text("traffic")).unwrap();
    p.drive();
    p.advance(5 * SEC);
    assert!(
        opcodes(p.server_wire()).is_empty(),
        "traffic in the interval"
    );
    p.advance(10 * SEC);
    assert_eq!(opcodes(p.server_wire()), vec![0x9], "a quiet interval");
}

#[test]
fn the_application_may_keep_the_connection_alive_instead_of_the_ping() {
    let hb = Heartbeat::new(10 * SEC, 5 * SEC);
    let mut server = Connection::new(Role::Server, server_config(Some(hb), None)).unwrap();
    let t0 = Instant::now();
    assert!(server.wants_now());
    server.handle_timeout(t0);
    assert!(!server.wants_now());
    assert!(!server.heartbeat_due(t0 + 9 * SEC));
    assert!(server.heartbeat_due(t0 + 10 * SEC));
    server.skip_heartbeat(t0 + 10 * SEC);
    assert!(!server.heartbeat_due(t0 + 10 * SEC));
    assert_eq!(server.poll_timeout(), Some(t0 + 20 * SEC));
    server.handle_timeout(t0 + 10 * SEC);
    assert_eq!(server.pending_transmit_bytes(), 0, "no ping queued");
    server.handle_timeout(t0 + 20 * SEC);
    assert_eq!(server.pending_transmit_bytes(), 2, "one empty ping");
}

/// Advances the pair second by second (as a runtime that wakes at every deadline would) until
/// the server reports an event; returns the seconds that took.
fn seconds_until_server_event(p: &mut Pair, limit: u32) -> Option<u32> {
    (1..=limit).find(|_| {
        p.advance(SEC);
        !p.take_server_events().is_empty() || !p.transport_open()
    })
}

#[test]
fn idle_timeout_closes_with_1000_between_one_and_one_and_a_quarter_periods() {
    let mut p = Pair::with_configs(Config::default(), server_config(None, Some(40 * SEC))).unwrap();
    p.drive();
    // Traffic at 25 s pushes the timeout out.
    assert_eq!(seconds_until_server_event(&mut p, 25), None);
    p.client.send(Message::text("x")).unwrap();
    p.drive();
    assert_eq!(p.take_server_events().len(), 1);
    let after = seconds_until_server_event(&mut p, 100).expect("idle close");
    assert!(
        (40..=50).contains(&after),
        "closed {after} s after the traffic"
    );
    let close = RawFrame::decode_all(p.server_wire());
    assert_eq!(close.len(), 1);
    assert_eq!(close[0].close_code(), Some(1000));
    assert_eq!(&close[0].payload[2..], b"idle timeout");
    assert!(!p.transport_open());
}

#[test]
fn a_read_pause_neither_waits_for_pongs_nor_counts_as_idle() {
    let hb = Heartbeat::new(10 * SEC, 5 * SEC);
    let mut server =
        Connection::new(Role::Server, server_config(Some(hb), Some(20 * SEC))).unwrap();
    let mut clock = FakeClock::new();
    server.handle_timeout(clock.now());
    server.set_read_paused(true);
    assert!(server.is_read_paused());
    let mut out = bytes::BytesMut::new();
    for _ in 0..12 {
        clock.advance(5 * SEC);
        server.handle_timeout(clock.now());
        while server.poll_transmit(&mut out) {}
    }
    assert!(
        !server.is_closed(),
        "60 s paused: no pong deadline, no idle close"
    );
    assert_eq!(opcodes(&out), vec![0x9; 6], "pings still go out");
    // Resumed and silent: the next ping waits for its pong again.
    server.set_read_paused(false);
    clock.advance(10 * SEC);
    server.handle_timeout(clock.now());
    clock.advance(5 * SEC);
    server.handle_timeout(clock.now());
    assert!(matches!(
        server.poll_event(),
        Err(Error::PongTimeout { .. })
    ));
}

#[test]
fn a_client_drops_the_transport_when_the_server_does_not_close_it_after_its_close() {
    let mut client = Connection::new(Role::Client, Config::default()).unwrap();
    let t0 = Instant::now();
    client.feed(&RawFrame::new(0x8, vec![0x03, 0xe8]).encode());
    assert!(matches!(
        client.poll_event(),
        Ok(Some(Event::Closed {
            by: Initiator::Remote,
            ..
        }))
    ));
    let mut out = bytes::BytesMut::new();
    while client.poll_transmit(&mut out) {}
    assert!(!client.wants_transport_close(), "the server closes TCP");
    assert!(client.wants_now());
    client.handle_timeout(t0);
    assert_eq!(
        client.poll_timeout(),
        Some(t0 + Config::DEFAULT_CLOSE_TIMEOUT)
    );
    client.handle_timeout(t0 + Config::DEFAULT_CLOSE_TIMEOUT);
    assert!(client.wants_transport_close());
}

#[test]
fn no_timers_without_configuration() {
    let mut server = Connection::new(Role::Server, Config::default()).unwrap();
    assert!(!server.wants_now());
    server.handle_timeout(Instant::now());
    assert_eq!(server.poll_timeout(), None);
    server.ping(Bytes::new()).unwrap();
    assert_eq!(server.poll_timeout(), None, "a user ping has no deadline");
}
