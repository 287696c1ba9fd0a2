//! HTTP/1.1 request heads and bodies, whole and in pieces, and the server side of the upgrade
//! handshake; built answers must parse back.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ws_http::fuzzing::request(data));
