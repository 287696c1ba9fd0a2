//! RFC 5769 test vectors (and RFC 8489 appendix B.1): decode, verify integrity and fingerprint,
//! and re-encode byte for byte where the vector's padding is zero.

use std::net::SocketAddr;

use stun_turn::integrity::userhash;
use stun_turn::{
    AttrType, Class, DecodeError, DecodeLimits, Key, Message, MessageEncoder, MessageType, Method,
    PasswordAlgorithm, TransactionId,
};

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

const SHORT_TERM_PASSWORD: &str = "VOkJxbRl1RmTxUk/WvJxBt";

fn sample_request() -> Vec<u8> {
    hex("00 01 00 58 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
         80 22 00 10 53 54 55 4e 20 74 65 73 74 20 63 6c 69 65 6e 74
         00 24 00 04 6e 00 01 ff
         80 29 00 08 93 2f f9 b1 51 26 3b 36
         00 06 00 09 65 76 74 6a 3a 68 36 76 59 20 20 20
         00 08 00 14 9a ea a7 0c bf d8 cb 56 78 1e f2 b5 b2 d3 f2 49 c1 b5 71 a2
         80 28 00 04 e5 7a 3b cf")
}

fn sample_ipv4_response() -> Vec<u8> {
    hex("01 01 00 3c 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
         80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
         00 20 00 08 00 01 a1 47 e1 12 a6 43
         00 08 00 14 2b 91 f5 99 fd 9e 90 c3 8c 74 89 f9 2a f9 ba 53 f0 6b e7 d7
         80 28 00 04 c0 7d 4c 96")
}

fn sample_ipv6_response() -> Vec<u8> {
    hex("01 01 00 48 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
         80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
         00 20 00 14 00 02 a1 47 01 13 a9 fa a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9
         00 08 00 14 a3 82 95 4e 4b e6 7b f1 17 84 c9 7c 82 92 c2 75 bf e3 ed 41
         80 28 00 04 c8 fb 0b 4c")
}

fn sample_long_term_request() -> Vec<u8> {
    hex("00 01 00 60 21 12 a4 42 78 ad 34 33 c6 ad 72 c0 29 da 41 2e
         00 06 00 12 e3 83 9e e3 83 88 e3 83 aa e3 83 83 e3 82 af e3 82 b9 00 00
         00 15 00 1c 66 2f 2f 34 39 39 6b 39 35 34 64 36 4f 4c 33 34 6f 4c 39 46 53 54 76 79 36 34 73 41
         00 14 00 0b 65 78 61 6d 70 6c 65 2e 6f 72 67 00
         00 08 00 14 f6 70 24 65 6d d6 4a 3e 02 b8 e0 71 2e 85 c9 a2 8c a8 96 66")
}

fn rfc8489_b1_request() -> Vec<u8> {
    hex("00 01 00 90 21 12 a4 42 78 ad 34 33 c6 ad 72 c0 29 da 41 2e
         00 1e 00 20 4a 3c f3 8f ef 69 92 bd a9 52 c6 78 04 17 da 0f 24 81 94 15 56 9e 60 b2 05 c4 6e 41 40 7f 17 04
         00 15 00 29 6f 62 4d 61 74 4a 6f 73 32 41 41 41 43 66 2f 2f 34 39 39 6b 39 35 34 64 36 4f 4c 33 34 6f 4c 39
                     46 53 54 76 79 36 34 73 41 00 00 00
         00 14 00 0b 65 78 61 6d 70 6c 65 2e 6f 72 67 00
         00 1d 00 04 00 02 00 00
         00 1c 00 20 b5 c7 bf 00 5b 6c 52 a2 1c 51 c5 e8 92 f8 19 24 13 62 96 cb 92 7c 43 14 93 09 27 8c c6 51 8e 65")
}

const LONG_TERM_USER: &str = "\u{30DE}\u{30C8}\u{30EA}\u{30C3}\u{30AF}\u{30B9}";

#[test]
fn rfc5769_2_1_sample_request_verifies_and_decodes() {
    let buf = sample_request();
    let m = Message::decode(&buf, &DecodeLimits::default()).unwrap();
    assert_eq!(
        m.message_type(),
        MessageType::new(Method::BINDING, Class::Request)
    );
    assert_eq!(m.software().unwrap(), Some("STUN test client"));
    assert_eq!(m.username().unwrap(), Some("evtj:h6vY"));
    assert!(m.has(AttrType::PRIORITY) && m.has(AttrType::ICE_CONTROLLED));
    m.verify_integrity(&Key::short_term(SHORT_TERM_PASSWORD))
        .unwrap();
    assert!(m.verify_fingerprint().unwrap());
    assert_eq!(
        m.verify_integrity(&Key::short_term("wrong")),
        Err(DecodeError::IntegrityMismatch)
    );
}

#[test]
fn rfc5769_2_1_any_flipped_bit_breaks_integrity_or_fingerprint() {
    let buf = sample_request();
    let key = Key::short_term(SHORT_TERM_PASSWORD);
    for i in 0..buf.len() {
        let mut b = buf.clone();
        b[i] ^= 0x01;
        let ok = match Message::decode(&b, &DecodeLimits::default()) {
            Err(_) => false,
            Ok(m) => m.verify_integrity(&key).is_ok() && m.verify_fingerprint() == Ok(true),
        };
        // Padding bytes of USERNAME (offsets 69..72) are covered by the HMAC too.
        assert!(!ok, "flipping byte {i} went unnoticed");
    }
}

fn check_response(buf: &[u8], expect: SocketAddr) {
    let m = Message::decode(buf, &DecodeLimits::default()).unwrap();
    assert_eq!(
        m.message_type(),
        MessageType::new(Method::BINDING, Class::Success)
    );
    assert_eq!(m.software().unwrap(), Some("test vector"));
    assert_eq!(m.xor_mapped_address().unwrap(), Some(expect));
    m.verify_integrity(&Key::short_term(SHORT_TERM_PASSWORD))
        .unwrap();
    assert!(m.verify_fingerprint().unwrap());
}

#[test]
fn rfc5769_2_2_ipv4_response_gives_192_0_2_1_port_32853() {
    check_response(&sample_ipv4_response(), "192.0.2.1:32853".parse().unwrap());
}

#[test]
fn rfc5769_2_3_ipv6_response_gives_the_documented_address() {
    check_response(
        &sample_ipv6_response(),
        "[2001:db8:1234:5678:11:2233:4455:6677]:32853"
            .parse()
            .unwrap(),
    );
}

/// Re-encodes the requests and responses byte for byte, HMAC and CRC included. The vectors pad
/// SOFTWARE and USERNAME with spaces, which the encoder reproduces with `attr_with_padding`.
#[test]
fn rfc5769_2_1_to_2_3_re_encode_byte_for_byte() {
    let key = Key::short_term(SHORT_TERM_PASSWORD);
    let req = sample_request();
    let m = Message::decode(&req, &DecodeLimits::default()).unwrap();
    let mut out = Vec::new();
    let mut e = MessageEncoder::new(&mut out, m.message_type(), m.transaction_id());
    e.software("STUN test client")
        .attr(AttrType::PRIORITY, &[0x6e, 0x00, 0x01, 0xff])
        .attr(
            AttrType::ICE_CONTROLLED,
            &[0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36],
        )
        .attr_with_padding(AttrType::USERNAME, b"evtj:h6vY", b' ')
        .message_integrity(&key)
        .fingerprint();
    e.finish().unwrap();
    assert_eq!(out, req);

    for (buf, addr) in [
        (sample_ipv4_response(), "192.0.2.1:32853"),
        (
            sample_ipv6_response(),
            "[2001:db8:1234:5678:11:2233:4455:6677]:32853",
        ),
    ] {
        let m = Message::decode(&buf, &DecodeLimits::default()).unwrap();
        let mut out = Vec::new();
        let mut e = MessageEncoder::new(&mut out, m.message_type(), m.transaction_id());
        e.attr_with_padding(AttrType::SOFTWARE, b"test vector", b' ')
            .xor_mapped_address(addr.parse().unwrap())
            .message_integrity(&key)
            .fingerprint();
        e.finish().unwrap();
        assert_eq!(out, buf);
    }
}

#[test]
fn rfc5769_2_4_long_term_request_verifies_with_md5_key() {
    let buf = sample_long_term_request();
    let m = Message::decode(&buf, &DecodeLimits::default()).unwrap();
    assert_eq!(m.username().unwrap(), Some(LONG_TERM_USER));
    assert_eq!(m.nonce().unwrap(), Some("f//499k954d6OL34oL9FSTvy64sA"));
    assert_eq!(m.realm().unwrap(), Some("example.org"));
    assert!(!m.has_fingerprint());
    m.verify_integrity(&Key::long_term(LONG_TERM_USER, "example.org", "TheMatrIX"))
        .unwrap();
    assert_eq!(
        m.verify_integrity(&Key::long_term(LONG_TERM_USER, "example.org", "TheMatrix")),
        Err(DecodeError::IntegrityMismatch)
    );
}

#[test]
fn rfc5769_2_4_long_term_request_re_encodes_byte_for_byte() {
    let buf = sample_long_term_request();
    let mut out = Vec::new();
    let mut tid = [0u8; 12];
    tid.copy_from_slice(&buf[8..20]);
    let mut e = MessageEncoder::new(
        &mut out,
        MessageType::new(Method::BINDING, Class::Request),
        TransactionId(tid),
    );
    e.username(LONG_TERM_USER)
        .nonce("f//499k954d6OL34oL9FSTvy64sA")
        .realm("example.org")
        .message_integrity(&Key::long_term(LONG_TERM_USER, "example.org", "TheMatrIX"));
    e.finish().unwrap();
    assert_eq!(out, buf);
}

#[test]
fn rfc8489_b1_userhash_and_password_algorithm_decode() {
    let buf = rfc8489_b1_request();
    let m = Message::decode(&buf, &DecodeLimits::default()).unwrap();
    assert_eq!(
        m.userhash().unwrap(),
        Some(userhash(LONG_TERM_USER, "example.org"))
    );
    assert_eq!(
        m.nonce().unwrap(),
        Some("obMatJos2AAACf//499k954d6OL34oL9FSTvy64sA")
    );
    assert_eq!(
        m.password_algorithm().unwrap(),
        Some(PasswordAlgorithm::Sha256.code())
    );
    assert!(m.has_integrity_sha256());
}

/// B.1's MESSAGE-INTEGRITY-SHA256 verifies with the SHA-256 long-term key, and the encoder reproduces
/// the whole vector byte for byte.
#[test]
fn rfc8489_b1_message_integrity_sha256_verifies_and_re_encodes() {
    let buf = rfc8489_b1_request();
    let key = Key::long_term_with(
        PasswordAlgorithm::Sha256,
        LONG_TERM_USER,
        "example.org",
        "TheMatrIX",
    );
    let m = Message::decode(&buf, &DecodeLimits::default()).unwrap();
    m.verify_integrity_sha256(&key).unwrap();
    m.verify_any_integrity(&key).unwrap();
    assert_eq!(
        m.verify_integrity_sha256(&Key::long_term(LONG_TERM_USER, "example.org", "TheMatrIX")),
        Err(DecodeError::IntegrityMismatch)
    );
    let mut out = Vec::new();
    let mut e = MessageEncoder::new(&mut out, m.message_type(), m.transaction_id());
    e.userhash(&userhash(LONG_TERM_USER, "example.org"))
        .nonce("obMatJos2AAACf//499k954d6OL34oL9FSTvy64sA")
        .realm("example.org")
        .password_algorithm(PasswordAlgorithm::Sha256)
        .message_integrity_sha256(&key);
    e.finish().unwrap();
    assert_eq!(out, buf);
}

/// Every truncation and every single-byte change of every vector goes through the fuzz hooks
/// (decode, accessors, integrity, re-encode round trip) without a panic.
#[test]
fn decoders_are_total_on_mutated_vectors() {
    let vectors = [
        sample_request(),
        sample_ipv4_response(),
        sample_ipv6_response(),
        sample_long_term_request(),
        rfc8489_b1_request(),
    ];
    let mut decoded = 0;
    for v in &vectors {
        for cut in 0..=v.len() {
            stun_turn::fuzzing::message(&v[..cut]);
            stun_turn::fuzzing::channel_data(&v[..cut]);
        }
        for i in 0..v.len() {
            for x in [0x01u8, 0x80, 0xFF] {
                let mut b = v.clone();
                b[i] ^= x;
                stun_turn::fuzzing::message(&b);
                stun_turn::fuzzing::channel_data(&b);
                decoded += usize::from(Message::decode(&b, &DecodeLimits::default()).is_ok());
            }
        }
    }
    assert!(decoded > 0, "some mutations still decode structurally");
}
