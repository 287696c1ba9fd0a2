//! Text is checked as it arrives: the connection fails at the first invalid byte, across
//! fragments and inside a frame whose payload is still incomplete (Autobahn 6.4.x).

use ws_frame::{CloseCode, Config, Connection, Error, Event, FragmentMode, Message, Role};
use ws_testkit::RawFrame;

const VALID_PREFIX: [u8; 11] = [
    0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5,
];
const INVALID: [u8; 4] = [0xf4, 0x90, 0x80, 0x80];
const SUFFIX: [u8; 6] = *b"edited";

fn server(config: Config) -> Connection {
    Connection::new(Role::Server, config).unwrap()
}

/// Feeds `wire` in the given pieces and returns the index of the piece at which the connection
/// failed (with 1007), or None.
fn failing_piece(conn: &mut Connection, pieces: &[&[u8]]) -> Option<usize> {
    for (i, piece) in pieces.iter().enumerate() {
        conn.feed(piece);
        loop {
            match conn.poll_event() {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    assert!(matches!(e, Error::InvalidUtf8), "{e}");
                    assert_eq!(e.close_code(), CloseCode::INVALID_PAYLOAD);
                    return Some(i);
                }
            }
        }
    }
    None
}

#[test]
fn invalid_fragment_fails_before_the_next_fragment_arrives() {
    // Autobahn 6.4.1: three fragments, the second carries the invalid sequence.
    let f1 = RawFrame::new(0x1, VALID_PREFIX)
        .fin(false)
        .client()
        .encode();
    let f2 = RawFrame::new(0x0, INVALID).fin(false).client().encode();
    let f3 = RawFrame::new(0x0, SUFFIX).client().encode();
    let mut s = server(Config::default());
    assert_eq!(failing_piece(&mut s, &[&f1, &f2, &f3]), Some(1));
}

#[test]
fn invalid_bytes_fail_before_the_frame_is_complete() {
    // Autobahn 6.4.3: one frame, its payload delivered in three parts.
    let mut payload = VALID_PREFIX.to_vec();
    payload.extend(INVALID);
    payload.extend(SUFFIX);
    let wire = RawFrame::new(0x1, payload).client().encode();
    let header = 6;
    let part1 = &wire[..header + VALID_PREFIX.len()];
    let part2 = &wire[header + VALID_PREFIX.len()..header + VALID_PREFIX.len() + INVALID.len()];
    let part3 = &wire[header + VALID_PREFIX.len() + INVALID.len()..];
    let mut s = server(Config::default());
    assert_eq!(failing_piece(&mut s, &[part1, part2, part3]), Some(1));
}

#[test]
fn invalid_bytes_fail_at_the_exact_byte_when_fed_one_byte_at_a_time() {
    // Autobahn 6.4.4: F4 90 is already invalid (above U+10FFFF) at its second byte.
    let mut payload = VALID_PREFIX.to_vec();
    payload.extend(INVALID);
    payload.extend(SUFFIX);
    let wire = RawFrame::new(0x1, payload).client().encode();
    let bytes: Vec<&[u8]> = wire.chunks(1).collect();
    let mut s = server(Config::default());
    assert_eq!(
        failing_piece(&mut s, &bytes),
        Some(6 + VALID_PREFIX.len() + 1)
    );
}

#[test]
fn code_point_split_across_fragments_is_valid() {
    let text = "κόσμε";
    for cut in 1..text.len() {
        let bytes = text.as_bytes();
        let mut wire = RawFrame::new(0x1, &bytes[..cut])
            .fin(false)
            .client()
            .encode();
        wire.extend(RawFrame::new(0x0, &bytes[cut..]).client().encode());
        let mut s = server(Config::default());
        for b in wire.chunks(1) {
            s.feed(b);
            if let Some(event) = s.poll_event().unwrap() {
                assert_eq!(event, Event::Message(Message::text(text)), "cut {cut}");
            }
        }
    }
}

#[test]
fn message_ending_inside_a_code_point_fails_at_its_last_fragment() {
    let mut wire = RawFrame::new(0x1, "ok").fin(false).client().encode();
    wire.extend(RawFrame::new(0x0, [0xe2, 0x82]).client().encode());
    let mut s = server(Config::default());
    assert_eq!(failing_piece(&mut s, &[&wire]), Some(0));
}

#[test]
fn single_invalid_frame_fails_with_1007() {
    let mut s = server(Config::default());
    let wire = RawFrame::new(0x1, [b'a', 0xc0, 0xaf]).client().encode();
    assert_eq!(failing_piece(&mut s, &[&wire]), Some(0));
}

#[test]
fn binary_messages_are_not_checked() {
    let mut s = server(Config::default());
    s.feed(&RawFrame::new(0x2, [0xff, 0xfe]).client().encode());
    assert_eq!(
        s.poll_event().unwrap(),
        Some(Event::Message(Message::binary(vec![0xff, 0xfe])))
    );
}

#[test]
fn without_validation_deliver_mode_passes_fragments_unchecked() {
    let mut config = Config::default();
    config.validate_utf8 = false;
    config.fragment_mode = FragmentMode::Deliver;
    let mut s = server(config);
    let mut wire = RawFrame::new(0x1, [0xff]).fin(false).client().encode();
    wire.extend(RawFrame::new(0x0, [0xfe]).client().encode());
    assert_eq!(failing_piece(&mut s, &[&wire]), None);
}

#[test]
fn without_validation_reassembled_text_is_still_checked_once() {
    let mut config = Config::default();
    config.validate_utf8 = false;
    let mut s = server(config);
    let mut wire = RawFrame::new(0x1, [b'a']).fin(false).client().encode();
    wire.extend(RawFrame::new(0x0, [0xff]).fin(false).client().encode());
    // No fail-fast: the error comes with the last fragment.
    assert_eq!(failing_piece(&mut s, &[&wire]), None);
    let last = RawFrame::new(0x0, "b").client().encode();
    assert_eq!(failing_piece(&mut s, &[&last]), Some(0));
}
