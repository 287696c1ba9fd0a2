//! UTF-8: a streaming validator that fails at the first invalid byte, and [`Utf8Bytes`].

use std::{fmt, ops::Deref, str};

use bytes::Bytes;
use bytestring::ByteString;

/// Validates UTF-8 that arrives in arbitrary pieces.
///
/// [`Utf8Validator::feed`] fails as soon as the bytes seen so far cannot be the prefix of valid
/// UTF-8, even when a code point is cut between two pieces. [`Utf8Validator::finish`] then
/// checks that the input did not stop inside a code point.
#[derive(Clone, Debug, Default)]
pub(crate) struct Utf8Validator {
    /// An incomplete code point carried over from the previous piece.
    pending: [u8; 4],
    pending_len: u8,
}

/// Width of the code point a valid lead byte starts (callers only pass lead bytes that
/// `str::from_utf8` left as an incomplete sequence, so 2 to 4).
fn sequence_width(lead: u8) -> usize {
    match lead {
        0xF0..=0xF7 => 4,
        0xE0..=0xEF => 3,
        _ => 2,
    }
}

impl Utf8Validator {
    /// Forgets any incomplete code point (start of a new message).
    pub(crate) fn reset(&mut self) {
        self.pending_len = 0;
    }

    /// Checks the next piece.
    ///
    /// # Errors
    /// `Err(())` at the first byte that makes the input invalid.
    pub(crate) fn feed(&mut self, mut data: &[u8]) -> Result<(), ()> {
        if self.pending_len > 0 {
            let have = usize::from(self.pending_len);
            let width = sequence_width(self.pending[0]);
            let take = (width - have).min(data.len());
            self.pending[have..have + take].copy_from_slice(&data[..take]);
            let now = have + take;
            data = &data[take..];
            match str::from_utf8(&self.pending[..now]) {
                Ok(_) => self.pending_len = 0,
                Err(e) if e.error_len().is_some() => return Err(()),
                Err(_) => {
                    // Still incomplete: `data` is empty because `take` stopped short.
                    self.pending_len = now as u8;
                    return Ok(());
                }
            }
        }
        match str::from_utf8(data) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_some() => Err(()),
            Err(e) => {
                let tail = &data[e.valid_up_to()..];
                self.pending[..tail.len()].copy_from_slice(tail);
                self.pending_len = tail.len() as u8;
                Ok(())
            }
        }
    }

    /// Checks that the input ended on a code point boundary.
    ///
    /// # Errors
    /// `Err(())` when the last piece stopped inside a code point.
    pub(crate) fn finish(&self) -> Result<(), ()> {
        if self.pending_len == 0 {
            Ok(())
        } else {
            Err(())
        }
    }
}

/// A [`Bytes`] known to hold valid UTF-8: the payload of a text message, shared without copying.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Utf8Bytes(ByteString);

impl Utf8Bytes {
    /// An empty string.
    #[must_use]
    pub const fn new() -> Self {
        Self(ByteString::new())
    }

    /// A `&'static str` without copying.
    #[must_use]
    pub const fn from_static(s: &'static str) -> Self {
        Self(ByteString::from_static(s))
    }

    /// The text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The UTF-8 bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The underlying shared buffer.
    #[must_use]
    pub fn into_bytes(self) -> Bytes {
        self.0.into_bytes()
    }
}

impl Deref for Utf8Bytes {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Utf8Bytes {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl AsRef<[u8]> for Utf8Bytes {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl TryFrom<Bytes> for Utf8Bytes {
    type Error = str::Utf8Error;

    /// Checks `bytes` once and keeps it without copying.
    ///
    /// # Errors
    /// The [`str::Utf8Error`] when `bytes` is not valid UTF-8.
    fn try_from(bytes: Bytes) -> Result<Self, str::Utf8Error> {
        ByteString::try_from(bytes).map(Self)
    }
}

impl From<String> for Utf8Bytes {
    fn from(s: String) -> Self {
        Self(ByteString::from(s))
    }
}

impl From<&'static str> for Utf8Bytes {
    fn from(s: &'static str) -> Self {
        Self::from_static(s)
    }
}

impl From<Utf8Bytes> for Bytes {
    fn from(s: Utf8Bytes) -> Self {
        s.into_bytes()
    }
}

impl PartialEq<str> for Utf8Bytes {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Utf8Bytes {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Debug for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_in_pieces(data: &[u8], piece: usize) -> Result<(), usize> {
        let mut v = Utf8Validator::default();
        let mut seen = 0;
        for chunk in data.chunks(piece.max(1)) {
            seen += chunk.len();
            v.feed(chunk).map_err(|()| seen)?;
        }
        v.finish().map_err(|()| seen)
    }

    #[test]
    fn valid_text_passes_in_any_chunking() {
        let text = "κόσμε 𝄞 hello ✓ \u{10FFFF}".as_bytes();
        for piece in 1..=text.len() {
            assert_eq!(feed_in_pieces(text, piece), Ok(()), "piece {piece}");
        }
    }

    #[test]
    fn fails_at_the_first_invalid_byte_when_fed_byte_by_byte() {
        // "κόσμε" then F4 90 (beyond U+10FFFF): invalid as soon as 0x90 arrives.
        let mut data = "κόσμε".as_bytes().to_vec();
        let bad_at = data.len() + 2;
        data.extend_from_slice(&[0xF4, 0x90, 0x80, 0x80, b'e', b'd']);
        assert_eq!(feed_in_pieces(&data, 1), Err(bad_at));
    }

    #[test]
    fn lone_continuation_byte_fails_immediately() {
        assert_eq!(feed_in_pieces(&[b'a', 0x80, b'b'], 1), Err(2));
    }

    #[test]
    fn truncated_code_point_fails_only_at_finish() {
        let mut v = Utf8Validator::default();
        assert_eq!(v.feed(&[0xE2, 0x82]), Ok(()));
        assert_eq!(v.finish(), Err(()));
        assert_eq!(v.feed(&[0xAC]), Ok(()));
        assert_eq!(v.finish(), Ok(()));
    }

    #[test]
    fn surrogates_and_overlongs_fail() {
        for bad in [
            &[0xED, 0xA0, 0x80][..],
            &[0xC0, 0xAF],
            &[0xE0, 0x80, 0xAF],
            &[0xF8, 0x88, 0x80, 0x80, 0x80],
            &[0xFF],
        ] {
            for piece in 1..=bad.len() {
                assert!(
                    feed_in_pieces(bad, piece).is_err(),
                    "{bad:x?} piece {piece}"
                );
            }
        }
    }

    #[test]
    fn reset_forgets_a_pending_code_point() {
        let mut v = Utf8Validator::default();
        assert_eq!(v.feed(&[0xF0, 0x9F]), Ok(()));
        v.reset();
        assert_eq!(v.finish(), Ok(()));
        assert_eq!(v.feed(b"plain"), Ok(()));
    }

    #[test]
    fn utf8_bytes_round_trips_without_copy() {
        let bytes = Bytes::from_static("héllo".as_bytes());
        let s = Utf8Bytes::try_from(bytes.clone()).unwrap();
        assert_eq!(s, "héllo");
        assert_eq!(s.into_bytes().as_ptr(), bytes.as_ptr());
        assert!(Utf8Bytes::try_from(Bytes::from_static(&[0xFF])).is_err());
    }
}
