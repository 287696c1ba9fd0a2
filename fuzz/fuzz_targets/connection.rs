//! Whole-connection feeding: the first byte picks role, permessage-deflate and the chunk size;
//! the rest is fed as wire bytes. Limits must hold and errors must be reported once.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ws_frame::{Role, fuzzing};

fuzz_target!(|data: &[u8]| {
    let Some((&knobs, wire)) = data.split_first() else {
        return;
    };
    let role = if knobs & 1 == 0 { Role::Server } else { Role::Client };
    let deflate = knobs & 2 != 0;
    let chunk = usize::from(knobs >> 2);
    fuzzing::connection(wire, role, deflate, chunk);
});
