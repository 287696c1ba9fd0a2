//! Raw DEFLATE input through the bounded inflater, and arbitrary data through a compress/inflate
//! round trip with a window size and context mode taken from the first byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ws_frame::fuzzing;

fuzz_target!(|data: &[u8]| {
    let _ = fuzzing::inflate(data, 64 * 1024);
    if let Some((&knobs, rest)) = data.split_first() {
        let window_bits = 9 + knobs % 7;
        fuzzing::deflate_round_trip(rest, window_bits, knobs & 0x80 != 0);
        fuzzing::mask(rest, [knobs, 0x5a, 0xa5, knobs ^ 0xff], usize::from(knobs & 3));
    }
});
