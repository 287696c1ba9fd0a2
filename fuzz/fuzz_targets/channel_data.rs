//! ChannelData decoding and TCP stream framing.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| stun_turn::fuzzing::channel_data(data));
