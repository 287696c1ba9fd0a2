//! The files protocol decoder and the sender/receiver cores fed hostile messages: no panic,
//! every decoded message re-encodes to the same bytes, nothing is stored past the offered size.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    proto_files::fuzzing::decode(data);
    proto_files::fuzzing::state_machines(data);
});
