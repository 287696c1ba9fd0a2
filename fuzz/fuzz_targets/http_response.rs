//! HTTP/1.1 response heads and bodies, and the client side of the upgrade handshake fed whole
//! and byte by byte.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ws_http::fuzzing::response(data));
