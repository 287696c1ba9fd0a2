//! Frame header parsing and encoding (RFC 6455 section 5.2).

use crate::error::ProtocolError;

/// Largest possible frame header: 2 bytes, 8 bytes of extended length, 4 bytes of masking key.
pub const MAX_HEADER_LEN: usize = 14;

/// The six opcodes RFC 6455 defines. Reserved opcodes (3-7, 0xB-0xF) have no variant:
/// [`OpCode::try_from`] rejects them with [`ProtocolError::ReservedOpcode`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// 0x0: continues a fragmented message.
    Continuation,
    /// 0x1: first frame of a text message.
    Text,
    /// 0x2: first frame of a binary message.
    Binary,
    /// 0x8: close.
    Close,
    /// 0x9: ping.
    Ping,
    /// 0xA: pong.
    Pong,
}

impl OpCode {
    /// The 4-bit wire value.
    #[must_use]
    pub const fn as_u8(self) -> u8 {
        match self {
            Self::Continuation => 0x0,
            Self::Text => 0x1,
            Self::Binary => 0x2,
            Self::Close => 0x8,
            Self::Ping => 0x9,
            Self::Pong => 0xA,
        }
    }

    /// Whether this is a control opcode (close, ping, pong).
    #[must_use]
    pub const fn is_control(self) -> bool {
        matches!(self, Self::Close | Self::Ping | Self::Pong)
    }
}

impl TryFrom<u8> for OpCode {
    type Error = ProtocolError;

    /// # Errors
    /// [`ProtocolError::ReservedOpcode`] for 3-7 and 0xB-0xF (and anything above 0xF).
    fn try_from(value: u8) -> Result<Self, ProtocolError> {
        Ok(match value {
            0x0 => Self::Continuation,
            0x1 => Self::Text,
            0x2 => Self::Binary,
            0x8 => Self::Close,
            0x9 => Self::Ping,
            0xA => Self::Pong,
            other => return Err(ProtocolError::ReservedOpcode(other)),
        })
    }
}

/// A decoded frame header. `opcode` is the raw 4-bit value, so reserved opcodes survive parsing
/// and the connection (or an extension) decides what to do with them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// FIN bit: last frame of a message.
    pub fin: bool,
    /// RSV1 bit (permessage-deflate's "compressed" flag).
    pub rsv1: bool,
    /// RSV2 bit (no extension here uses it).
    pub rsv2: bool,
    /// RSV3 bit (no extension here uses it).
    pub rsv3: bool,
    /// Raw opcode, 0..=15.
    pub opcode: u8,
    /// Masking key, present when the MASK bit is set.
    pub mask: Option<[u8; 4]>,
    /// Payload length in bytes; always below 2^63.
    pub payload_len: u64,
}

impl Header {
    /// A header for `opcode` with the given FIN bit and length, no RSV bits and no mask.
    #[must_use]
    pub const fn new(fin: bool, opcode: OpCode, payload_len: u64) -> Self {
        Self {
            fin,
            rsv1: false,
            rsv2: false,
            rsv3: false,
            opcode: opcode.as_u8(),
            mask: None,
            payload_len,
        }
    }

    /// Number of bytes [`Header::encode_into`] writes for this header.
    #[must_use]
    pub const fn encoded_len(&self) -> usize {
        let len = if self.payload_len < 126 {
            2
        } else if self.payload_len <= 0xFFFF {
            4
        } else {
            10
        };
        if self.mask.is_some() { len + 4 } else { len }
    }

    /// Writes the header into `out` using the shortest length encoding and returns the number of
    /// bytes written (2 to 14). `payload_len` must be below 2^63 to be parseable again; the
    /// opcode's upper bits beyond the low four are ignored.
    pub fn encode_into(&self, out: &mut [u8; MAX_HEADER_LEN]) -> usize {
        out[0] = (u8::from(self.fin) << 7)
            | (u8::from(self.rsv1) << 6)
            | (u8::from(self.rsv2) << 5)
            | (u8::from(self.rsv3) << 4)
            | (self.opcode & 0x0F);
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut pos = if self.payload_len < 126 {
            // Fits in 7 bits: the cast cannot truncate.
            out[1] = mask_bit | self.payload_len as u8;
            2
        } else if let Ok(short) = u16::try_from(self.payload_len) {
            out[1] = mask_bit | 126;
            out[2..4].copy_from_slice(&short.to_be_bytes());
            4
        } else {
            out[1] = mask_bit | 127;
            out[2..10].copy_from_slice(&self.payload_len.to_be_bytes());
            10
        };
        if let Some(key) = self.mask {
            out[pos..pos + 4].copy_from_slice(&key);
            pos += 4;
        }
        pos
    }
}

/// Parses one frame header from the start of `src`.
///
/// Returns `Ok(None)` when `src` is too short (call again with more bytes) and
/// `Ok(Some((header, consumed)))` otherwise. Never panics and never allocates, on any input.
/// Non-minimal length encodings are accepted (RFC 6455 does not require rejecting them).
///
/// # Errors
/// [`ProtocolError::LengthMsbSet`] when a 64-bit length has its most significant bit set.
pub fn parse_header(src: &[u8]) -> Result<Option<(Header, usize)>, ProtocolError> {
    let [b0, b1, rest @ ..] = src else {
        return Ok(None);
    };
    let (payload_len, rest, mut consumed) = match b1 & 0x7F {
        126 => {
            let Some((len, rest)) = rest.split_first_chunk::<2>() else {
                return Ok(None);
            };
            (u64::from(u16::from_be_bytes(*len)), rest, 4)
        }
        127 => {
            let Some((len, rest)) = rest.split_first_chunk::<8>() else {
                return Ok(None);
            };
            let len = u64::from_be_bytes(*len);
            if len >> 63 != 0 {
                return Err(ProtocolError::LengthMsbSet);
            }
            (len, rest, 10)
        }
        short => (u64::from(short), rest, 2),
    };
    let mask = if b1 & 0x80 != 0 {
        let Some((key, _)) = rest.split_first_chunk::<4>() else {
            return Ok(None);
        };
        consumed += 4;
        Some(*key)
    } else {
        None
    };
    let header = Header {
        fin: b0 & 0x80 != 0,
        rsv1: b0 & 0x40 != 0,
        rsv2: b0 & 0x20 != 0,
        rsv3: b0 & 0x10 != 0,
        opcode: b0 & 0x0F,
        mask,
        payload_len,
    };
    Ok(Some((header, consumed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(bytes: &[u8]) -> (Header, usize) {
        parse_header(bytes).unwrap().unwrap()
    }

    #[test]
    fn rfc6455_5_7_single_frame_unmasked_text() {
        let (h, n) = parse_all(&[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        assert_eq!(n, 2);
        assert!(h.fin);
        assert_eq!(h.opcode, 0x1);
        assert_eq!(h.mask, None);
        assert_eq!(h.payload_len, 5);
    }

    #[test]
    fn rfc6455_5_7_single_frame_masked_text() {
        let (h, n) = parse_all(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f]);
        assert_eq!(n, 6);
        assert_eq!(h.mask, Some([0x37, 0xfa, 0x21, 0x3d]));
        assert_eq!(h.payload_len, 5);
    }

    #[test]
    fn rfc6455_5_7_fragmented_unmasked_text() {
        let (h1, _) = parse_all(&[0x01, 0x03, 0x48, 0x65, 0x6c]);
        assert!(!h1.fin);
        assert_eq!(h1.opcode, 0x1);
        let (h2, _) = parse_all(&[0x80, 0x02, 0x6c, 0x6f]);
        assert!(h2.fin);
        assert_eq!(h2.opcode, 0x0);
    }

    #[test]
    fn rfc6455_5_7_ping_and_pong() {
        let (ping, _) = parse_all(&[0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        assert_eq!(OpCode::try_from(ping.opcode), Ok(OpCode::Ping));
        let (pong, n) = parse_all(&[0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d]);
        assert_eq!(OpCode::try_from(pong.opcode), Ok(OpCode::Pong));
        assert_eq!(n, 6);
    }

    #[test]
    fn rfc6455_5_7_256_bytes_binary_uses_16_bit_length() {
        let (h, n) = parse_all(&[0x82, 0x7E, 0x01, 0x00]);
        assert_eq!((h.payload_len, n), (256, 4));
        let mut out = [0; MAX_HEADER_LEN];
        let written = Header::new(true, OpCode::Binary, 256).encode_into(&mut out);
        assert_eq!(&out[..written], &[0x82, 0x7E, 0x01, 0x00]);
    }

    #[test]
    fn rfc6455_5_7_64_kib_binary_uses_64_bit_length() {
        let wire = [0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00];
        let (h, n) = parse_all(&wire);
        assert_eq!((h.payload_len, n), (65536, 10));
        let mut out = [0; MAX_HEADER_LEN];
        let written = Header::new(true, OpCode::Binary, 65536).encode_into(&mut out);
        assert_eq!(&out[..written], &wire);
    }

    #[test]
    fn every_prefix_of_a_header_needs_more_bytes() {
        let wire = [0x82, 0xFF, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00, 1, 2, 3, 4];
        for len in 0..wire.len() {
            assert_eq!(parse_header(&wire[..len]), Ok(None), "prefix {len}");
        }
        assert_eq!(parse_all(&wire).1, 14);
    }

    #[test]
    fn sixty_four_bit_length_with_msb_set_is_rejected() {
        let wire = [0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(parse_header(&wire), Err(ProtocolError::LengthMsbSet));
    }

    #[test]
    fn non_minimal_lengths_are_accepted() {
        let (h, n) = parse_all(&[0x82, 0x7E, 0x00, 0x05]);
        assert_eq!((h.payload_len, n), (5, 4));
        let (h, n) = parse_all(&[0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0, 5]);
        assert_eq!((h.payload_len, n), (5, 10));
    }

    #[test]
    fn reserved_bits_and_opcodes_survive_parsing() {
        let (h, _) = parse_all(&[0x7B, 0x00]);
        assert!(!h.fin && h.rsv1 && h.rsv2 && h.rsv3);
        assert_eq!(h.opcode, 0xB);
        assert_eq!(
            OpCode::try_from(h.opcode),
            Err(ProtocolError::ReservedOpcode(0xB))
        );
    }

    #[test]
    fn encode_then_parse_round_trips() {
        let lengths = [0u64, 1, 125, 126, 127, 65535, 65536, 1 << 40, (1 << 63) - 1];
        for &payload_len in &lengths {
            for mask in [None, Some([1, 2, 3, 4])] {
                for bits in 0..16u8 {
                    let h = Header {
                        fin: bits & 1 != 0,
                        rsv1: bits & 2 != 0,
                        rsv2: bits & 4 != 0,
                        rsv3: bits & 8 != 0,
                        opcode: bits,
                        mask,
                        payload_len,
                    };
                    let mut out = [0; MAX_HEADER_LEN];
                    let n = h.encode_into(&mut out);
                    assert_eq!(n, h.encoded_len());
                    assert_eq!(parse_header(&out[..n]), Ok(Some((h, n))));
                }
            }
        }
    }

    #[test]
    fn opcode_round_trip_and_control_flag() {
        for op in [
            OpCode::Continuation,
            OpCode::Text,
            OpCode::Binary,
            OpCode::Close,
            OpCode::Ping,
            OpCode::Pong,
        ] {
            assert_eq!(OpCode::try_from(op.as_u8()), Ok(op));
            assert_eq!(op.is_control(), op.as_u8() >= 8);
        }
        for reserved in [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
            assert!(OpCode::try_from(reserved).is_err());
        }
    }
}
