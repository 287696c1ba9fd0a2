//! ChannelData framing (RFC 8656 §12.4) and stream framing of STUN + ChannelData over TCP.

use crate::error::DecodeError;
use crate::message::{DecodeLimits, HEADER_LEN, MAGIC_COOKIE};

/// Smallest channel number (RFC 8656 §12).
pub const MIN_CHANNEL: u16 = 0x4000;
/// Largest channel number accepted in ChannelData and ChannelBind. RFC 8656 narrowed the range to
/// 0x4FFF; RFC 5766 clients (coturn's among them) use up to 0x7FFF, so both are accepted.
pub const MAX_CHANNEL: u16 = 0x7FFF;

/// Length of the ChannelData header.
pub const CHANNEL_HEADER_LEN: usize = 4;

/// Whether `ch` is a valid channel number.
pub fn is_valid_channel(ch: u16) -> bool {
    (MIN_CHANNEL..=MAX_CHANNEL).contains(&ch)
}

/// One ChannelData message, borrowing its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelData<'a> {
    /// Channel number.
    pub channel: u16,
    /// Application data.
    pub data: &'a [u8],
}

impl<'a> ChannelData<'a> {
    /// Decodes a ChannelData message from a datagram or a TCP frame. Up to three bytes of padding
    /// after the payload are accepted (required over TCP, optional over UDP).
    ///
    /// Never panics, for any input.
    ///
    /// # Errors
    /// [`DecodeError::Truncated`], [`DecodeError::BadChannel`] or [`DecodeError::BadLength`].
    pub fn decode(buf: &'a [u8]) -> Result<Self, DecodeError> {
        if buf.len() < CHANNEL_HEADER_LEN {
            return Err(DecodeError::Truncated);
        }
        let channel = u16::from_be_bytes([buf[0], buf[1]]);
        if !is_valid_channel(channel) {
            return Err(DecodeError::BadChannel(channel));
        }
        let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
        let rest = &buf[CHANNEL_HEADER_LEN..];
        if rest.len() < len {
            return Err(DecodeError::Truncated);
        }
        if rest.len() - len > 3 {
            return Err(DecodeError::BadLength);
        }
        Ok(Self {
            channel,
            data: &rest[..len],
        })
    }

    /// Appends the encoded message to `out`; `pad` adds zero padding to a multiple of 4 (required
    /// over TCP). Returns the number of bytes appended.
    ///
    /// # Errors
    /// [`DecodeError::BadChannel`] for an invalid channel, [`DecodeError::TooLong`] for a payload
    /// over 65 535 bytes.
    pub fn encode(
        channel: u16,
        data: &[u8],
        pad: bool,
        out: &mut Vec<u8>,
    ) -> Result<usize, DecodeError> {
        if !is_valid_channel(channel) {
            return Err(DecodeError::BadChannel(channel));
        }
        if data.len() > 0xFFFF {
            return Err(DecodeError::TooLong {
                len: data.len(),
                max: 0xFFFF,
            });
        }
        let start = out.len();
        out.extend_from_slice(&header(channel, data.len() as u16));
        out.extend_from_slice(data);
        if pad {
            let p = (4 - data.len() % 4) % 4;
            out.extend_from_slice(&[0u8; 3][..p]);
        }
        Ok(out.len() - start)
    }
}

/// The 4-byte ChannelData header, for runtimes that write header and payload separately.
pub fn header(channel: u16, len: u16) -> [u8; 4] {
    let c = channel.to_be_bytes();
    let l = len.to_be_bytes();
    [c[0], c[1], l[0], l[1]]
}

/// What a frame on the wire is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// A STUN message (first two bits 00).
    Stun,
    /// ChannelData (first two bits 01).
    ChannelData,
}

/// Classifies a datagram or frame by its first byte (RFC 7983 demultiplexing).
///
/// # Errors
/// [`DecodeError::Truncated`] when empty; [`DecodeError::UnknownFraming`] for other first bits.
pub fn frame_kind(buf: &[u8]) -> Result<FrameKind, DecodeError> {
    match buf.first().map(|b| b >> 6) {
        None => Err(DecodeError::Truncated),
        Some(0) => Ok(FrameKind::Stun),
        Some(1) => Ok(FrameKind::ChannelData),
        Some(_) => Err(DecodeError::UnknownFraming),
    }
}

/// Length of the next frame at the start of a TCP stream buffer: a STUN message (header + length)
/// or a ChannelData message padded to a multiple of 4. `Ok(None)` means more bytes are needed.
///
/// Never panics, for any input.
///
/// # Errors
/// [`DecodeError::UnknownFraming`], [`DecodeError::NoMagicCookie`], [`DecodeError::BadLength`] or
/// [`DecodeError::TooLong`]: the stream cannot be resynchronised and should be closed.
pub fn frame_len(
    buf: &[u8],
    limits: &DecodeLimits,
) -> Result<Option<(FrameKind, usize)>, DecodeError> {
    if buf.len() < 4 {
        return match buf.first() {
            Some(b) if b >> 6 >= 2 => Err(DecodeError::UnknownFraming),
            _ => Ok(None),
        };
    }
    let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
    match frame_kind(buf)? {
        FrameKind::Stun => {
            if len % 4 != 0 {
                return Err(DecodeError::BadLength);
            }
            if buf.len() >= 8 && buf[4..8] != MAGIC_COOKIE.to_be_bytes() {
                return Err(DecodeError::NoMagicCookie);
            }
            let total = HEADER_LEN + len;
            if total > limits.max_message_len {
                return Err(DecodeError::TooLong {
                    len: total,
                    max: limits.max_message_len,
                });
            }
            Ok((buf.len() >= total).then_some((FrameKind::Stun, total)))
        }
        FrameKind::ChannelData => {
            let total = CHANNEL_HEADER_LEN + ((len + 3) & !3);
            Ok((buf.len() >= total).then_some((FrameKind::ChannelData, total)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_data_round_trips_with_and_without_padding() {
        for pad in [false, true] {
            for n in 0..9 {
                let data: Vec<u8> = (0..n as u8).collect();
                let mut out = vec![];
                let w = ChannelData::encode(0x4001, &data, pad, &mut out).unwrap();
                assert_eq!(w, out.len());
                assert_eq!(out.len(), 4 + if pad { (n + 3) & !3 } else { n });
                let cd = ChannelData::decode(&out).unwrap();
                assert_eq!(
                    cd,
                    ChannelData {
                        channel: 0x4001,
                        data: &data
                    }
                );
                assert_eq!(
                    frame_len(&out, &DecodeLimits::default()).unwrap().is_some(),
                    pad || n % 4 == 0
                );
            }
        }
    }

    #[test]
    fn channel_data_rejects_bad_input() {
        assert_eq!(ChannelData::decode(&[0x40, 0]), Err(DecodeError::Truncated));
        assert_eq!(
            ChannelData::decode(&[0x3F, 0xFF, 0, 0]),
            Err(DecodeError::BadChannel(0x3FFF))
        );
        assert_eq!(
            ChannelData::decode(&[0x40, 0, 0, 5, 1]),
            Err(DecodeError::Truncated)
        );
        assert_eq!(
            ChannelData::decode(&[0x40, 0, 0, 0, 1, 2, 3, 4]),
            Err(DecodeError::BadLength)
        );
        assert!(ChannelData::encode(0x3000, b"", false, &mut vec![]).is_err());
    }

    #[test]
    fn frame_len_splits_a_stream() {
        let l = DecodeLimits::default();
        let mut stream = vec![];
        ChannelData::encode(0x4000, b"abcde", true, &mut stream).unwrap();
        let first = stream.len();
        crate::message::MessageEncoder::new(
            &mut stream,
            crate::message::MessageType::new(
                crate::message::Method::BINDING,
                crate::message::Class::Request,
            ),
            crate::message::TransactionId([0; 12]),
        )
        .software("x")
        .finish()
        .unwrap();
        assert_eq!(
            frame_len(&stream, &l).unwrap(),
            Some((FrameKind::ChannelData, first))
        );
        assert_eq!(
            frame_len(&stream[first..], &l).unwrap(),
            Some((FrameKind::Stun, stream.len() - first))
        );
        assert_eq!(frame_len(&stream[first..first + 10], &l).unwrap(), None);
        assert_eq!(frame_len(&[0xC0], &l), Err(DecodeError::UnknownFraming));
        assert_eq!(frame_len(&[], &l), Ok(None));
    }
}
