//! Binary messages tagged with a short ID: the Rust side of the seed's `sgcWSBytesWrite` /
//! `sgcWSBytesRead` and `sgcWSStreamWrite` / `sgcWSStreamRead` helpers, which wskit.js implements
//! for the browser under the same names.
//!
//! A WebSocket message is text or binary, never both; an application that sends several kinds of
//! binary data (an image, a file chunk, a sensor frame) puts a short ID in front of each. The
//! seed fixes the ID at no more than 10 characters and does not describe the bytes, so wskit
//! defines them:
//!
//! ```text
//!   0                                   10
//!   +-----------------------------------+----------------------------
//!   | ID, UTF-8, right-padded with 0x00  | payload (any bytes, any length)
//!   +-----------------------------------+----------------------------
//! ```
//!
//! The ID holds at most [`ID_HEADER_LEN`] bytes and no NUL byte; a reader strips the padding.
//! A message shorter than the header, or whose ID is not UTF-8 or has a NUL before non-NUL
//! bytes, has no ID ([`split_id_header`] returns `None`).
//!
//! ```
//! use ws_frame::{Message, id_header};
//!
//! let msg = Message::binary(id_header::with_id_header("00001", b"\x89PNG...").unwrap());
//! let (id, image) = id_header::split_id_header(msg.as_bytes()).unwrap();
//! assert_eq!((id, image), ("00001", &b"\x89PNG..."[..]));
//! assert!(id_header::with_id_header("an-id-too-long", b"").is_none());
//! ```

use bytes::{BufMut as _, Bytes, BytesMut};

/// Length of the ID field in front of the payload, in bytes (the seed's 10 characters).
pub const ID_HEADER_LEN: usize = 10;

/// `id` padded to [`ID_HEADER_LEN`] bytes followed by `payload`; `None` when `id` is longer than
/// [`ID_HEADER_LEN`] bytes in UTF-8 or contains a NUL character.
pub fn with_id_header(id: &str, payload: &[u8]) -> Option<Bytes> {
    if id.len() > ID_HEADER_LEN || id.contains('\0') {
        return None;
    }
    let mut out = BytesMut::with_capacity(ID_HEADER_LEN + payload.len());
    out.put_slice(id.as_bytes());
    out.put_bytes(0, ID_HEADER_LEN - id.len());
    out.put_slice(payload);
    Some(out.freeze())
}

/// The ID and the payload of a message written by [`with_id_header`] (or by wskit.js's
/// `sgcWSBytesWrite` / `sgcWSStreamWrite`); `None` when `data` does not start with a valid header.
pub fn split_id_header(data: &[u8]) -> Option<(&str, &[u8])> {
    let (field, payload) = data.split_at_checked(ID_HEADER_LEN)?;
    let end = field.iter().position(|&b| b == 0).unwrap_or(ID_HEADER_LEN);
    if field[end..].iter().any(|&b| b != 0) {
        return None;
    }
    let id = std::str::from_utf8(&field[..end]).ok()?;
    Some((id, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_ids_of_every_length() {
        for id in ["", "1", "00001", "image/png", "0123456789", "é-ü"] {
            let data = with_id_header(id, b"payload").unwrap();
            assert_eq!(data.len(), ID_HEADER_LEN + 7);
            assert_eq!(
                split_id_header(&data),
                Some((id, &b"payload"[..])),
                "{id:?}"
            );
        }
    }

    #[test]
    fn the_bytes_are_the_documented_layout() {
        let data = with_id_header("ab", &[0xff, 0x00]).unwrap();
        assert_eq!(&data[..], b"ab\0\0\0\0\0\0\0\0\xff\0");
    }

    #[test]
    fn refuses_what_does_not_fit_or_is_not_a_header() {
        assert!(with_id_header("01234567890", b"").is_none(), "11 bytes");
        assert!(with_id_header("ééééé_", b"").is_none(), "11 bytes in UTF-8");
        assert!(with_id_header("a\0b", b"").is_none(), "NUL inside");
        assert_eq!(split_id_header(b"short"), None);
        assert_eq!(
            split_id_header(b"a\0b\0\0\0\0\0\0\0rest"),
            None,
            "NUL inside the ID"
        );
        assert_eq!(
            split_id_header(b"\xff\0\0\0\0\0\0\0\0\0rest"),
            None,
            "not UTF-8"
        );
        assert_eq!(
            split_id_header(b"0123456789"),
            Some(("0123456789", &b""[..]))
        );
    }
}
