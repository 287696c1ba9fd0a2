//! Chunked bodies: decoding in any split agrees, and re-encoding decodes to the same body.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ws_http::fuzzing::chunked(data));
