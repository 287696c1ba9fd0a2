//! The MQTT session core and codec fed hostile broker bytes: no panic, buffers within limits.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    proto_mqtt::fuzzing::session(data);
    proto_mqtt::fuzzing::codec(data);
});
