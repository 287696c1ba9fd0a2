//! permessage-deflate on whichever engine the features chose (miniz_oxide by default, zlib-rs with
//! `--no-default-features --features deflate-zlib-rs`): round trips on text, JSON and binary
//! corpora, context takeover across messages, no context takeover, and a bomb made by our own
//! compressor refused with 1009. Run both:
//!
//! ```text
//! cargo test -p ws-frame --test deflate_backends
//! cargo test -p ws-frame --no-default-features --features deflate-zlib-rs --test deflate_backends
//! ```

use bytes::BytesMut;
use ws_frame::{
    CloseCode, Config, Connection, Error, Event, Message, Role,
    deflate::{self, DeflateConfig, DeflateParams},
};
use ws_testkit::{Pair, RawFrame};

/// Deterministic generator (PCG-style LCG step).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as u32
    }

    fn below(&mut self, n: usize) -> usize {
        self.next() as usize % n
    }
}

/// English-like prose from a fixed word list, with sentences and punctuation.
fn text(len: usize, seed: u64) -> Vec<u8> {
    const WORDS: [&str; 24] = [
        "the",
        "server",
        "sends",
        "a",
        "message",
        "to",
        "every",
        "client",
        "that",
        "listens",
        "on",
        "this",
        "channel",
        "and",
        "waits",
        "for",
        "its",
        "answer",
        "before",
        "closing",
        "connection",
        "with",
        "frames",
        "window",
    ];
    let mut rng = Lcg(seed);
    let mut out = String::with_capacity(len + 16);
    while out.len() < len {
        let words = 5 + rng.below(12);
        for w in 0..words {
            let word = WORDS[rng.below(WORDS.len())];
            if w == 0 {
                let mut c = word.chars();
                out.extend(c.next().map(|f| f.to_ascii_uppercase()));
                out.push_str(c.as_str());
            } else {
                out.push(' ');
                out.push_str(word);
            }
        }
        out.push_str(if rng.below(5) == 0 { "? " } else { ". " });
    }
    out.truncate(len);
    out.into_bytes()
}

/// API-style JSON messages: the same keys, other values.
fn json(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Lcg(seed);
    let mut out = String::from("{\"items\":[");
    let mut id = seed * 1000;
    while out.len() < len {
        id += 1;
        out.push_str(&format!(
            "{{\"id\":{id},\"user\":\"user{}\",\"price\":{}.{:02},\"tags\":[\"t{}\",\"t{}\"],\
             \"active\":{}}},",
            rng.below(500),
            rng.below(10_000),
            rng.below(100),
            rng.below(40),
            rng.below(40),
            rng.below(2) == 0
        ));
    }
    out.truncate(len);
    out.into_bytes()
}

/// Binary with some structure: fixed-size records of a header, a counter and random bytes.
fn binary(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Lcg(seed);
    let mut out = Vec::with_capacity(len + 32);
    let mut counter = 0u32;
    while out.len() < len {
        out.extend_from_slice(b"\x7fREC");
        out.extend_from_slice(&counter.to_le_bytes());
        counter += 1;
        for _ in 0..6 {
            out.extend_from_slice(&rng.next().to_le_bytes());
        }
    }
    out.truncate(len);
    out
}

fn pair(window_bits: u8, no_context: bool) -> Pair {
    let mut client = DeflateConfig::default();
    client.server_max_window_bits = window_bits;
    client.client_max_window_bits = window_bits;
    client.server_no_context_takeover = no_context;
    client.client_no_context_takeover = no_context;
    Pair::with_deflate(Config::default(), &client, &DeflateConfig::default()).unwrap()
}

#[test]
fn the_backend_is_the_one_the_features_chose() {
    let want = if cfg!(feature = "deflate-zlib-rs") {
        ("zlib-rs", 9)
    } else {
        ("miniz_oxide", 15)
    };
    assert_eq!((deflate::BACKEND, deflate::NATIVE_MIN_WINDOW_BITS), want);
}

#[test]
fn corpora_round_trip_at_1_and_64_kib_in_every_mode() {
    type Corpus = fn(usize, u64) -> Vec<u8>;
    let corpora: [(&str, Corpus, bool, usize); 3] = [
        // (name, generator, sent as text, smallest ratio expected with context takeover)
        ("text", text, true, 2),
        ("json", json, true, 2),
        ("binary", binary, false, 1),
    ];
    for (name, corpus, as_text, min_ratio) in corpora {
        for size in [1 << 10, 64 << 10] {
            let messages: Vec<Vec<u8>> = (0..6).map(|seed| corpus(size, seed)).collect();
            let total: usize = messages.iter().map(Vec::len).sum();
            for bits in [8, 9, 15] {
                for no_context in [false, true] {
                    let mut p = pair(bits, no_context);
                    let wire = p.exchange_both_ways(&messages, |_| as_text);
                    if !no_context && bits == 15 {
                        assert!(
                            wire * min_ratio < total,
                            "{name} {size} B: {wire} wire bytes for {total}"
                        );
                    }
                    // Incompressible data grows by a few block headers (more with small
                    // windows, emptied every 2^bits bytes), never by much.
                    assert!(
                        wire < total + total / 16 + messages.len() * 16,
                        "{name} {size} B, window {bits}, no_context {no_context}: {wire}"
                    );
                }
            }
        }
    }
}

/// The compressed payloads of the messages the server sent, one per message (unfragmented).
fn server_payloads(p: &Pair) -> Vec<Vec<u8>> {
    RawFrame::decode_all(p.server_wire())
        .into_iter()
        .map(|f| {
            assert!(f.header.rsv1, "sent uncompressed");
            f.payload
        })
        .collect()
}

fn server_only(messages: &[Vec<u8>], no_context: bool) -> Vec<Vec<u8>> {
    let mut p = pair(15, no_context);
    for m in messages {
        p.server.send(Message::binary(m.clone())).unwrap();
    }
    p.drive();
    let got = p.take_client_events();
    assert_eq!(got.len(), messages.len());
    server_payloads(&p)
}

/// A client connection that inflates frames with the given context mode.
fn receiver(no_context: bool) -> Connection {
    let mut offer = DeflateConfig::default();
    offer.server_no_context_takeover = no_context;
    let (params, _) = deflate::negotiate_in_memory(&offer, &DeflateConfig::default())
        .unwrap()
        .unwrap();
    let mut config = Config::default();
    config.deflate = Some(params);
    Connection::new(Role::Client, config).unwrap()
}

fn receive(conn: &mut Connection, payload: &[u8]) -> Result<Option<Event>, Error> {
    conn.feed(&RawFrame::new(0x2, payload).rsv(true, false, false).encode());
    conn.poll_event()
}

#[test]
fn context_takeover_lets_later_messages_refer_to_earlier_ones() {
    let messages: Vec<Vec<u8>> = (0..4).map(|seed| json(4096, seed)).collect();
    let with = server_only(&messages, false);
    let without = server_only(&messages, true);
    // Same first message; the later ones are smaller with the shared window.
    assert_eq!(with[0].len(), without[0].len());
    let later = |v: &[Vec<u8>]| v[1..].iter().map(Vec::len).sum::<usize>();
    assert!(
        later(&with) < later(&without),
        "{} vs {}",
        later(&with),
        later(&without)
    );
    // In order, one receiver takes them all.
    let mut rx = receiver(false);
    for (z, want) in with.iter().zip(&messages) {
        let Ok(Some(Event::Message(m))) = receive(&mut rx, z) else {
            panic!("not a message")
        };
        assert!(m.as_bytes() == &want[..]);
    }
    // Alone, a later message refers to a window its receiver never saw: it fails or differs.
    let mut fresh = receiver(false);
    match receive(&mut fresh, &with[2]) {
        Ok(Some(Event::Message(m))) => assert!(m.as_bytes() != &messages[2][..]),
        other => assert!(other.is_err(), "{other:?}"),
    }
}

#[test]
fn without_context_takeover_every_message_inflates_alone() {
    let messages: Vec<Vec<u8>> = (0..4).map(|seed| text(8192, seed)).collect();
    let payloads = server_only(&messages, true);
    for (z, want) in payloads.iter().zip(&messages).rev() {
        let mut fresh = receiver(true);
        let Ok(Some(Event::Message(m))) = receive(&mut fresh, z) else {
            panic!("not a message")
        };
        assert!(m.as_bytes() == &want[..]);
    }
}

#[test]
fn a_bomb_from_our_own_compressor_is_refused_with_1009() {
    let params = DeflateParams::default();
    let mut config = Config::default();
    config.deflate = Some(params.clone());
    let mut sender = Connection::new(Role::Client, config).unwrap();
    let zeros = vec![0u8; 8 << 20];
    sender.send(Message::binary(zeros)).unwrap();
    let mut wire = BytesMut::new();
    while sender.poll_transmit(&mut wire) {}
    assert!(wire.len() < 128 << 10, "{} wire bytes", wire.len());
    let mut config = Config::default();
    config.deflate = Some(params);
    config.max_message = 1 << 20;
    config.max_frame = 1 << 20;
    let mut server = Connection::new(Role::Server, config).unwrap();
    server.feed(&wire);
    let error = server.poll_event().unwrap_err();
    assert_eq!(error.close_code(), CloseCode::TOO_BIG);
    let mut out = BytesMut::new();
    assert!(server.poll_transmit(&mut out));
    assert_eq!(RawFrame::decode_all(&out)[0].close_code(), Some(1009));
}
