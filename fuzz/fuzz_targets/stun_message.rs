//! STUN/TURN message decoding, accessors, integrity and fingerprint checks, re-encoding.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| stun_turn::fuzzing::message(data));
