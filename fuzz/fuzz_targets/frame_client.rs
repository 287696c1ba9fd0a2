//! Arbitrary bytes as server traffic into a client connection, whole and in small chunks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ws_frame::{Role, fuzzing};

fuzz_target!(|data: &[u8]| {
    fuzzing::connection(data, Role::Client, false, 0);
    fuzzing::connection(data, Role::Client, false, 7);
});
