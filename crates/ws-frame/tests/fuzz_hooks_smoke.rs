//! Runs the `fuzzing` hooks over deterministic pseudo-random and mutated inputs, so the
//! properties they check hold in every `cargo test`, not only under a fuzzer.

use ws_frame::{Role, fuzzing};
use ws_testkit::RawFrame;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// Valid traffic from a client, to mutate.
fn seed_stream() -> Vec<u8> {
    let mut wire = RawFrame::new(0x1, "Hello").client().encode();
    wire.extend(
        RawFrame::new(0x2, vec![1u8; 300])
            .fin(false)
            .client()
            .encode(),
    );
    wire.extend(RawFrame::new(0x9, "ping").client().encode());
    wire.extend(RawFrame::new(0x0, vec![2u8; 70_000]).client().encode());
    wire.extend(
        RawFrame::new(0x1, [0xc1, 0x07, 0xf2, 0x48])
            .rsv(true, false, false)
            .client()
            .encode(),
    );
    wire.extend(
        RawFrame::new(0x8, [0x03, 0xe8, b'o', b'k'])
            .client()
            .encode(),
    );
    wire
}

#[test]
fn random_bytes_never_break_the_connection_invariants() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for round in 0..300 {
        let len = (rng.next() % 400) as usize;
        let data = rng.bytes(len);
        let role = if round % 2 == 0 {
            Role::Server
        } else {
            Role::Client
        };
        fuzzing::connection(&data, role, round % 3 == 0, round % 5);
        fuzzing::header(&data);
    }
}

#[test]
fn mutated_valid_traffic_never_breaks_the_connection_invariants() {
    let seed = seed_stream();
    let mut rng = Rng(12345);
    for round in 0..200 {
        let mut data = seed.clone();
        for _ in 0..(1 + rng.next() % 4) {
            let pos = (rng.next() as usize) % data.len();
            data[pos] = rng.next() as u8;
        }
        let role = if round % 2 == 0 {
            Role::Server
        } else {
            Role::Client
        };
        fuzzing::connection(&data, role, round % 2 == 1, [0, 1, 3, 1000][round % 4]);
    }
}

#[test]
fn inflating_random_data_respects_the_limit() {
    let mut rng = Rng(777);
    for _ in 0..500 {
        let len = (rng.next() % 200) as usize;
        let data = rng.bytes(len);
        if let Some(out) = fuzzing::inflate(&data, 1000) {
            assert!(out.len() <= 1000);
        }
    }
    // A valid stream inflates.
    assert_eq!(
        fuzzing::inflate(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], 100).as_deref(),
        Some(&b"Hello"[..])
    );
}

#[test]
fn deflate_round_trips_for_every_window() {
    let mut rng = Rng(4242);
    for bits in 8..=15 {
        for no_context in [false, true] {
            let mut data = rng.bytes(3000);
            data.extend(std::iter::repeat_n(b'a', 2000));
            data.extend(b"abcabcabcabc".repeat(100));
            fuzzing::deflate_round_trip(&data, bits, no_context);
            fuzzing::deflate_round_trip(&[], bits, no_context);
        }
    }
}

#[test]
fn mask_hook_agrees_with_the_reference() {
    let mut rng = Rng(99);
    for len in 0..64 {
        let data = rng.bytes(len);
        fuzzing::mask(&data, [1, 2, 3, 4], len % 9);
    }
}
