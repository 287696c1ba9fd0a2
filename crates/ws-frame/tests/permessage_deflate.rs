//! permessage-deflate (RFC 7692) through whole connections: the section 7 examples, negotiated
//! parameters, fragmentation, per-message opt-out and decompression bombs.

use bytes::BytesMut;
use miniz_oxide::deflate::core::{
    CompressorOxide, TDEFLFlush, compress, create_comp_flags_from_zip_params,
};
use ws_frame::{
    CloseCode, Config, Connection, Error, Event, FragmentMode, Message, Role, SendOptions,
    deflate::{DeflateConfig, DeflateParams},
};
use ws_testkit::{Pair, RawFrame};

fn with_deflate(role: Role) -> Connection {
    let mut config = Config::default();
    config.deflate = Some(DeflateParams::default());
    Connection::new(role, config).unwrap()
}

fn events(conn: &mut Connection) -> Result<Vec<Event>, Error> {
    let mut out = Vec::new();
    while let Some(event) = conn.poll_event()? {
        out.push(event);
    }
    Ok(out)
}

fn text(s: &'static str) -> Event {
    Event::Message(Message::text(s))
}

fn sample(len: usize, seed: u64) -> Vec<u8> {
    let words: [&[u8]; 6] = [
        b"deflate ",
        b"window ",
        b"{\"k\":1}",
        b"context ",
        b"\xce\xba\xe1\xbd\xb9 ",
        b"z",
    ];
    let mut x = seed;
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        out.extend_from_slice(words[(x >> 33) as usize % words.len()]);
    }
    out.truncate(len);
    // Keep it valid UTF-8 for text use: cut back to a char boundary.
    while std::str::from_utf8(&out).is_err() {
        out.pop();
    }
    out
}

#[test]
fn rfc7692_hello_in_one_compressed_frame() {
    let mut c = with_deflate(Role::Client);
    c.feed(&[0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
    assert_eq!(events(&mut c).unwrap(), [text("Hello")]);
}

#[test]
fn rfc7692_hello_in_two_fragments() {
    let mut c = with_deflate(Role::Client);
    c.feed(&[0x41, 0x03, 0xf2, 0x48, 0xcd]);
    assert_eq!(events(&mut c).unwrap(), []);
    c.feed(&[0x80, 0x04, 0xc9, 0xc9, 0x07, 0x00]);
    assert_eq!(events(&mut c).unwrap(), [text("Hello")]);
}

#[test]
fn rfc7692_second_hello_uses_the_shared_window() {
    let mut c = with_deflate(Role::Client);
    c.feed(&[0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
    c.feed(&[0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00]);
    assert_eq!(events(&mut c).unwrap(), [text("Hello"), text("Hello")]);
}

#[test]
fn rfc7692_no_compression_block() {
    let mut c = with_deflate(Role::Client);
    c.feed(&[
        0xc1, 0x0b, 0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
    ]);
    assert_eq!(events(&mut c).unwrap(), [text("Hello")]);
}

#[test]
fn rfc7692_bfinal_block_and_two_blocks() {
    let mut c = with_deflate(Role::Client);
    c.feed(&[0xc1, 0x08, 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00]);
    c.feed(&[
        0xc1, 0x0d, 0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
    ]);
    assert_eq!(events(&mut c).unwrap(), [text("Hello"), text("Hello")]);
}

#[test]
fn server_compresses_hello_to_the_rfc_bytes() {
    let mut s = with_deflate(Role::Server);
    s.send(Message::text("Hello")).unwrap();
    s.send(Message::text("Hello")).unwrap();
    let mut out = BytesMut::new();
    while s.poll_transmit(&mut out) {}
    let frames = RawFrame::decode_all(&out);
    assert!(frames[0].header.rsv1);
    assert_eq!(
        frames[0].payload,
        [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]
    );
    // The second shares the window: smaller than the first.
    assert!(frames[1].payload.len() < frames[0].payload.len());
    let mut c = with_deflate(Role::Client);
    c.feed(&out);
    assert_eq!(events(&mut c).unwrap(), [text("Hello"), text("Hello")]);
}

fn deflate_pair(client: DeflateConfig, server: DeflateConfig) -> Pair {
    Pair::with_deflate(Config::default(), &client, &server).unwrap()
}

#[test]
fn every_window_size_and_context_mode_round_trips_both_ways() {
    let messages: Vec<Vec<u8>> = (0..8).map(|i| sample(10 + i * 2500, i as u64)).collect();
    for bits in 8..=15 {
        for no_context in [false, true] {
            let mut client = DeflateConfig::default();
            client.server_max_window_bits = bits;
            client.client_max_window_bits = bits;
            client.server_no_context_takeover = no_context;
            client.client_no_context_takeover = no_context;
            let mut p = deflate_pair(client, DeflateConfig::default());
            let params = p.server.config().deflate.clone().unwrap();
            assert_eq!(params.server_max_window_bits(), bits);
            assert_eq!(params.server_no_context_takeover(), no_context);
            p.exchange_both_ways(&messages, |i| i % 2 == 0);
        }
    }
}

#[test]
fn compressed_messages_are_smaller_on_the_wire() {
    let mut p = deflate_pair(DeflateConfig::default(), DeflateConfig::default());
    let msg = sample(50_000, 7);
    p.server.send(Message::binary(msg.clone())).unwrap();
    p.drive();
    assert!(
        p.server_wire().len() < msg.len() / 2,
        "{}",
        p.server_wire().len()
    );
    let frames = RawFrame::decode_all(p.server_wire());
    assert!(frames[0].header.rsv1);
}

#[test]
fn fragmented_compressed_message_sets_rsv1_only_on_the_first_frame() {
    let mut p = deflate_pair(DeflateConfig::default(), DeflateConfig::default());
    let msg = sample(20_000, 3);
    p.client
        .send_with(Message::binary(msg.clone()), SendOptions::fragmented(100))
        .unwrap();
    p.drive();
    let frames = RawFrame::decode_all(p.client_wire());
    assert!(frames.len() > 2);
    assert!(frames[0].header.rsv1);
    assert_eq!(frames[0].header.opcode, 0x2);
    assert!(
        frames[1..]
            .iter()
            .all(|f| !f.header.rsv1 && f.header.opcode == 0)
    );
    assert!(frames.iter().all(|f| f.payload.len() <= 100));
    assert!(frames.last().unwrap().header.fin);
    let events = p.take_server_events();
    assert!(matches!(&events[..], [Ok(Event::Message(m))] if m.as_bytes() == &msg[..]));
}

#[test]
fn per_message_opt_out_sends_plain_frames() {
    let mut p = deflate_pair(DeflateConfig::default(), DeflateConfig::default());
    p.server
        .send_with(Message::text("plain"), SendOptions::uncompressed())
        .unwrap();
    p.server.send(Message::text("squeezed")).unwrap();
    p.drive();
    let frames = RawFrame::decode_all(p.server_wire());
    assert!(!frames[0].header.rsv1);
    assert_eq!(frames[0].payload, b"plain");
    assert!(frames[1].header.rsv1);
    let events = p.take_client_events();
    assert!(matches!(&events[0], Ok(Event::Message(m)) if m.as_text() == Some("plain")));
    assert!(matches!(&events[1], Ok(Event::Message(m)) if m.as_text() == Some("squeezed")));
}

#[test]
fn messages_below_min_size_are_not_compressed() {
    let mut server = DeflateConfig::default();
    server.min_size = 10;
    let mut p = deflate_pair(DeflateConfig::default(), server);
    p.server.send(Message::text("tiny")).unwrap();
    p.server.send(Message::text("large enough")).unwrap();
    p.drive();
    let frames = RawFrame::decode_all(p.server_wire());
    assert!(!frames[0].header.rsv1);
    assert!(frames[1].header.rsv1);
    assert_eq!(p.take_client_events().len(), 2);
}

#[test]
fn deliver_mode_hands_out_inflated_fragments() {
    let mut config = Config::default();
    config.fragment_mode = FragmentMode::Both;
    let client_deflate = DeflateConfig::default();
    let mut p = Pair::with_deflate(config, &client_deflate, &DeflateConfig::default()).unwrap();
    let msg = sample(5000, 11);
    p.client
        .send_with(
            Message::text(String::from_utf8(msg.clone()).unwrap()),
            SendOptions::fragmented(300),
        )
        .unwrap();
    p.drive();
    let events = p.take_server_events();
    let mut joined = Vec::new();
    let mut saw_message = false;
    for (i, e) in events.iter().enumerate() {
        match e {
            Ok(Event::Fragment {
                text,
                payload,
                first,
                fin,
            }) => {
                assert!(*text);
                assert_eq!(*first, i == 0);
                assert_eq!(*fin, i == events.len() - 2);
                joined.extend_from_slice(payload);
            }
            Ok(Event::Message(m)) => {
                assert_eq!(i, events.len() - 1);
                assert_eq!(m.as_bytes(), &msg[..]);
                saw_message = true;
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(saw_message);
    assert_eq!(joined, msg, "fragments carry inflated data");
}

#[test]
fn one_chunk_at_a_time_delivery_works_with_compression() {
    let mut p = deflate_pair(DeflateConfig::default(), DeflateConfig::default());
    p.chunk = Some(1);
    let messages: Vec<Vec<u8>> = (0..4)
        .map(|i| sample(300 + i * 100, i as u64 + 20))
        .collect();
    p.exchange_both_ways(&messages, |i| i % 2 == 0);
}

/// A raw deflate stream (sync-flushed, tail stripped) inflating to `gib_mib` MiB of zeros:
/// one compressed MiB block repeated, so building it does not compress the whole output.
fn zeros_bomb(mib: usize) -> Vec<u8> {
    let mut c = CompressorOxide::new(create_comp_flags_from_zip_params(9, -15, 0));
    let zeros = vec![0u8; 1 << 20];
    let mut block = vec![0u8; 1 << 16];
    let (_, consumed, written) = compress(&mut c, &zeros, &mut block, TDEFLFlush::Sync);
    assert_eq!(consumed, zeros.len());
    block.truncate(written);
    let mut stream = Vec::with_capacity(block.len() * mib);
    for _ in 0..mib {
        stream.extend_from_slice(&block);
    }
    stream.truncate(stream.len() - 4);
    stream
}

#[test]
fn one_kib_of_input_inflating_far_beyond_the_limit_fails_with_1009() {
    let mut config = Config::default();
    config.max_message = 512 * 1024;
    config.max_frame = 64 * 1024;
    config.deflate = Some(DeflateParams::default());
    let mut s = Connection::new(Role::Server, config).unwrap();
    let bomb = zeros_bomb(1);
    assert!(bomb.len() <= 1100, "{} bytes", bomb.len());
    s.feed(
        &RawFrame::new(0x2, bomb)
            .rsv(true, false, false)
            .client()
            .encode(),
    );
    let error = s.poll_event().unwrap_err();
    assert!(
        matches!(error, Error::MessageTooLarge { max } if max == 512 * 1024),
        "{error}"
    );
    let mut out = BytesMut::new();
    assert!(s.poll_transmit(&mut out));
    assert_eq!(RawFrame::decode_all(&out)[0].close_code(), Some(1009));
}

#[test]
fn a_gibibyte_bomb_fails_with_1009_after_at_most_the_limit() {
    let mut s = with_deflate(Role::Server);
    let bomb = zeros_bomb(1024);
    assert!(bomb.len() < 2 << 20);
    s.feed(
        &RawFrame::new(0x2, bomb)
            .rsv(true, false, false)
            .client()
            .encode(),
    );
    let error = s.poll_event().unwrap_err();
    assert_eq!(error.close_code(), CloseCode::TOO_BIG);
    assert!(
        matches!(error, Error::MessageTooLarge { max } if max == Config::DEFAULT_MAX_MESSAGE as u64)
    );
}

#[test]
fn bomb_split_over_fragments_is_bounded_across_the_message() {
    let mut config = Config::default();
    config.max_message = 3 << 20;
    config.max_frame = 1 << 20;
    config.deflate = Some(DeflateParams::default());
    let mut s = Connection::new(Role::Server, config).unwrap();
    let bomb = zeros_bomb(8);
    let (a, b) = bomb.split_at(bomb.len() / 2);
    let mut wire = RawFrame::new(0x2, a)
        .rsv(true, false, false)
        .fin(false)
        .client()
        .encode();
    wire.extend(RawFrame::new(0x0, b).client().encode());
    s.feed(&wire);
    assert!(matches!(s.poll_event(), Err(Error::MessageTooLarge { .. })));
}

#[test]
fn exactly_max_message_inflates() {
    let mut config = Config::default();
    config.max_message = 1 << 20;
    config.max_frame = 1 << 20;
    config.deflate = Some(DeflateParams::default());
    let mut s = Connection::new(Role::Server, config).unwrap();
    s.feed(
        &RawFrame::new(0x2, zeros_bomb(1))
            .rsv(true, false, false)
            .client()
            .encode(),
    );
    let Some(Event::Message(m)) = s.poll_event().unwrap() else {
        panic!()
    };
    assert_eq!(m.len(), 1 << 20);
    assert!(m.as_bytes().iter().all(|&b| b == 0));
}

#[test]
fn corrupt_compressed_data_fails_with_1007() {
    let mut s = with_deflate(Role::Server);
    s.feed(
        &RawFrame::new(0x2, [0xff, 0xff, 0xff, 0xff])
            .rsv(true, false, false)
            .client()
            .encode(),
    );
    let error = s.poll_event().unwrap_err();
    assert!(matches!(error, Error::InvalidDeflate));
    assert_eq!(error.close_code(), CloseCode::INVALID_PAYLOAD);
}

#[test]
fn compressed_text_with_invalid_utf8_fails_with_1007() {
    // A stored block holding 0xFF.
    let mut s = with_deflate(Role::Server);
    s.feed(
        &RawFrame::new(0x1, [0x00, 0x01, 0x00, 0xfe, 0xff, 0xff])
            .rsv(true, false, false)
            .client()
            .encode(),
    );
    assert!(matches!(s.poll_event(), Err(Error::InvalidUtf8)));
}

#[test]
fn rsv1_without_negotiated_deflate_fails() {
    let mut s = Connection::new(Role::Server, Config::default()).unwrap();
    s.feed(
        &RawFrame::new(0x1, [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00])
            .rsv(true, false, false)
            .client()
            .encode(),
    );
    let error = s.poll_event().unwrap_err();
    assert_eq!(error.close_code(), CloseCode::PROTOCOL);
}
