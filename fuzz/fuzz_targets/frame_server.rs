//! Header parsing and re-encoding, then the same bytes as client traffic into a server connection.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ws_frame::{Role, fuzzing};

fuzz_target!(|data: &[u8]| {
    fuzzing::header(data);
    fuzzing::connection(data, Role::Server, false, 0);
});
