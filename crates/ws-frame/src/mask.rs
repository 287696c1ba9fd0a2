//! Payload masking (RFC 6455 section 5.3), in safe code.
//!
//! Masking XORs every payload byte `i` with `key[i % 4]`. The same operation masks and unmasks.
//! [`apply`] works on 8-byte words (the compiler vectorises the loop); [`apply_at`] continues a
//! payload that arrives in pieces, where `offset` is the position of `buf[0]` inside the frame
//! payload.

/// Where a client's masking keys come from. RFC 6455 section 10.3 wants keys the peer cannot
/// predict, so a real client draws them from a strong random source; the core never reads one
/// itself. [`crate::Connection::new`] uses [`crate::OsMaskSource`] (the operating system's
/// random source, the one entropy read of this crate, in its own module);
/// [`crate::Connection::with_mask_source`] takes any other, such as a fixed sequence that lets a
/// test replay a session byte for byte. A closure `FnMut() -> Option<[u8; 4]>` is a source.
///
/// ```
/// use ws_frame::{Config, Connection, Message, Role};
///
/// let mut n = 0u8;
/// let counter = move || {
///     n = n.wrapping_add(1);
///     Some([n, n, n, n])
/// };
/// let mut client = Connection::with_mask_source(Role::Client, Config::default(), counter)?;
/// client.send(Message::binary(vec![0u8; 2]))?;
/// let mut out = bytes::BytesMut::new();
/// while client.poll_transmit(&mut out) {}
/// assert_eq!(&out[..], &[0x82, 0x82, 1, 1, 1, 1, 1, 1]);
/// # Ok::<(), ws_frame::Error>(())
/// ```
pub trait MaskSource: Send {
    /// The next masking key; `None` when the source failed (the frame is refused with
    /// [`crate::Error::Random`]).
    fn next_key(&mut self) -> Option<[u8; 4]>;
}

impl<F: FnMut() -> Option<[u8; 4]> + Send> MaskSource for F {
    fn next_key(&mut self) -> Option<[u8; 4]> {
        self()
    }
}

/// XORs `buf` with the masking `key`, starting at payload offset 0.
///
/// ```
/// let mut data = *b"Hello";
/// ws_frame::mask::apply(&mut data, [0x37, 0xfa, 0x21, 0x3d]);
/// assert_eq!(data, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
/// ```
#[inline]
pub fn apply(buf: &mut [u8], key: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let masked = u64::from_ne_bytes(word) ^ wide;
        chunk.copy_from_slice(&masked.to_ne_bytes());
    }
    // The remainder starts at a multiple of 8, hence of 4: the key phase is 0 again.
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= key[i & 3];
    }
}

/// XORs `buf` with the masking `key`, where `buf[0]` is byte number `offset` of the frame payload.
///
/// Use this to unmask a payload that arrives across several reads.
///
/// ```
/// let key = [1, 2, 3, 4];
/// let mut whole = *b"streaming payload";
/// let mut parts = whole;
/// ws_frame::mask::apply(&mut whole, key);
/// let (a, b) = parts.split_at_mut(5);
/// ws_frame::mask::apply_at(a, key, 0);
/// ws_frame::mask::apply_at(b, key, 5);
/// assert_eq!(whole, parts);
/// ```
#[inline]
pub fn apply_at(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let shift = offset & 3;
    let rotated = [
        key[shift],
        key[(shift + 1) & 3],
        key[(shift + 2) & 3],
        key[(shift + 3) & 3],
    ];
    apply(buf, rotated);
}

/// The byte-by-byte definition from RFC 6455 section 5.3, kept as the reference for tests.
#[doc(hidden)]
pub fn apply_reference(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, byte) in buf.iter_mut().enumerate() {
        *byte ^= key[(offset + i) % 4];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 + 7) as u8).collect()
    }

    #[test]
    fn apply_at_matches_reference_for_every_len_up_to_100_and_offset_up_to_8() {
        let key = [0x12, 0x9a, 0xff, 0x03];
        for len in 0..=100 {
            for offset in 0..=8 {
                let mut fast = pattern(len);
                let mut slow = fast.clone();
                apply_at(&mut fast, key, offset);
                apply_reference(&mut slow, key, offset);
                assert_eq!(fast, slow, "len {len} offset {offset}");
            }
        }
    }

    #[test]
    fn apply_matches_reference_on_unaligned_subslices() {
        let key = [0xde, 0xad, 0xbe, 0xef];
        let base = pattern(200);
        for start in 0..8 {
            for len in [0, 1, 7, 8, 9, 63, 64, 65, 150] {
                let mut fast = base.clone();
                let mut slow = base.clone();
                apply(&mut fast[start..start + len], key);
                apply_reference(&mut slow[start..start + len], key, 0);
                assert_eq!(fast, slow, "start {start} len {len}");
            }
        }
    }

    #[test]
    fn masking_twice_restores_the_input() {
        let key = [9, 8, 7, 6];
        let original = pattern(1000);
        let mut data = original.clone();
        apply(&mut data, key);
        assert_ne!(data, original);
        apply(&mut data, key);
        assert_eq!(data, original);
    }

    #[test]
    fn split_application_equals_whole_application() {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let original = pattern(97);
        let mut whole = original.clone();
        apply(&mut whole, key);
        for cut1 in 0..original.len() {
            let cut2 = (cut1 + 13).min(original.len());
            let mut parts = original.clone();
            apply_at(&mut parts[..cut1], key, 0);
            apply_at(&mut parts[cut1..cut2], key, cut1);
            apply_at(&mut parts[cut2..], key, cut2);
            assert_eq!(parts, whole, "cuts {cut1} {cut2}");
        }
    }
}
