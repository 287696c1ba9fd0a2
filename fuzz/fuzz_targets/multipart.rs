//! `multipart/form-data` bodies: every split and window size gives the same parts and error,
//! limits hold, memory stays within the parser's window.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ws_http::fuzzing::multipart(data));
