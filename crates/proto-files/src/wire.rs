//! The wire format (docs/files-protocol.md): one binary WebSocket message per protocol message,
//! an 18-byte header (version, method, file id) and a method body. Decoding borrows from the
//! input: nothing is allocated, so a hostile length cannot make the decoder allocate.

use std::fmt;

use crate::error::{Code, Error};

/// The subprotocol name a client offers and a server selects.
pub const SUBPROTOCOL: &str = "wskit-files.v1";
/// The version byte of every message of this version.
pub const VERSION: u8 = 1;
/// Size of the common header (version, method, file id).
pub const HEADER_LEN: usize = 18;
/// Size of a `data` message's header (common header, packet id, offset), before the chunk.
pub const DATA_HEADER_LEN: usize = HEADER_LEN + 16;

/// A file id: 16 bytes chosen by the sender, unique per file.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct FileId(pub [u8; 16]);

impl FileId {
    /// The id as 32 lowercase hex digits.
    #[must_use]
    pub fn to_hex(&self) -> String {
        use fmt::Write as _;
        let mut s = String::with_capacity(32);
        for b in self.0 {
            let _ = write!(s, "{b:02x}");
        }
        s
    }

    /// Parses 32 hex digits.
    #[must_use]
    pub fn from_hex(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() != 32 {
            return None;
        }
        let mut out = [0u8; 16];
        for (i, pair) in b.chunks(2).enumerate() {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            out[i] = (hi * 16 + lo) as u8;
        }
        Some(Self(out))
    }
}

impl fmt::Debug for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileId({})", self.to_hex())
    }
}

impl fmt::Display for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Delivery guarantee of a transfer (the seeds' `QoS.Level`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub enum QoS {
    /// Sent, nothing acknowledged.
    #[default]
    AtMostOnce = 0,
    /// Every chunk acknowledged by the receiver after it is written.
    Acknowledged = 1,
    /// The receiver pulls with a credit window and asks again for what is missing.
    Pulled = 2,
}

impl QoS {
    /// From the wire value.
    #[must_use]
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::AtMostOnce),
            1 => Some(Self::Acknowledged),
            2 => Some(Self::Pulled),
            _ => None,
        }
    }
}

/// Method codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
#[allow(missing_docs)]
pub enum Method {
    Offer = 1,
    Accept = 2,
    Refuse = 3,
    Data = 4,
    Ack = 5,
    Request = 6,
    Resume = 7,
    Complete = 8,
    Error = 9,
    Cancel = 10,
}

impl Method {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Offer,
            2 => Self::Accept,
            3 => Self::Refuse,
            4 => Self::Data,
            5 => Self::Ack,
            6 => Self::Request,
            7 => Self::Resume,
            8 => Self::Complete,
            9 => Self::Error,
            10 => Self::Cancel,
            _ => return None,
        })
    }
}

/// An `offer`: what the sender proposes to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Offer<'a> {
    /// Total size in bytes.
    pub size: u64,
    /// Largest chunk in one `data` message.
    pub chunk: u32,
    /// Delivery guarantee.
    pub qos: QoS,
    /// Bare file name (checked by the receiver, not by the decoder).
    pub name: &'a str,
    /// Channel the file was sent on (may be empty).
    pub channel: &'a str,
    /// User data (may be empty).
    pub data: &'a str,
}

/// One decoded protocol message; strings and chunks borrow from the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Msg<'a> {
    /// Sender proposes a file.
    Offer(Offer<'a>),
    /// Receiver takes it from the start.
    Accept {
        /// Flow-control window in chunks.
        window: u32,
    },
    /// Receiver refuses it.
    Refuse {
        /// Error code.
        code: u16,
        /// Why.
        reason: &'a str,
    },
    /// A chunk.
    Data {
        /// Packet id.
        packet: u64,
        /// Offset of the first byte.
        offset: u64,
        /// The bytes.
        chunk: &'a [u8],
    },
    /// A chunk is written.
    Ack {
        /// Packet id of the chunk.
        packet: u64,
        /// Bytes stored contiguously from 0.
        offset: u64,
    },
    /// Credit (and, with `retransmit`, a rewind) for QoS 2.
    Request {
        /// Bytes stored so far; the sender may send below `offset + count * chunk`.
        offset: u64,
        /// Chunks of credit.
        count: u32,
        /// Rewind to `offset`.
        retransmit: bool,
    },
    /// Receiver takes it from `offset` (it holds a partial file).
    Resume {
        /// Bytes already stored.
        offset: u64,
        /// Flow-control window in chunks.
        window: u32,
    },
    /// SHA-256 of the whole file.
    Complete {
        /// The digest.
        sha256: [u8; 32],
    },
    /// The transfer failed.
    Error {
        /// Error code.
        code: u16,
        /// Message.
        message: &'a str,
    },
    /// The transfer is cancelled.
    Cancel {
        /// Error code.
        code: u16,
        /// Reason.
        reason: &'a str,
    },
}

/// A decoded message with its file id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Which transfer.
    pub id: FileId,
    /// What.
    pub msg: Msg<'a>,
}

impl Msg<'_> {
    /// The method code of this message.
    #[must_use]
    pub fn method(&self) -> Method {
        match self {
            Self::Offer(_) => Method::Offer,
            Self::Accept { .. } => Method::Accept,
            Self::Refuse { .. } => Method::Refuse,
            Self::Data { .. } => Method::Data,
            Self::Ack { .. } => Method::Ack,
            Self::Request { .. } => Method::Request,
            Self::Resume { .. } => Method::Resume,
            Self::Complete { .. } => Method::Complete,
            Self::Error { .. } => Method::Error,
            Self::Cancel { .. } => Method::Cancel,
        }
    }
}

struct Reader<'a> {
    buf: &'a [u8],
}

fn malformed(what: &str) -> Error {
    Error::Protocol {
        code: Code::Malformed,
        message: format!("malformed message: {what}"),
    }
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], Error> {
        if self.buf.len() < n {
            return Err(malformed(&format!("{what} truncated")));
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }
    fn u8(&mut self, what: &str) -> Result<u8, Error> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16, Error> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self, what: &str) -> Result<u32, Error> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self, what: &str) -> Result<u64, Error> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }
    fn string(&mut self, what: &str) -> Result<&'a str, Error> {
        let len = usize::from(self.u16(what)?);
        let b = self.take(len, what)?;
        std::str::from_utf8(b).map_err(|_| malformed(&format!("{what} is not UTF-8")))
    }
    fn end(&self) -> Result<(), Error> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(malformed("trailing bytes"))
        }
    }
}

/// Decodes one message.
///
/// # Errors
/// [`Error::Protocol`] with [`Code::Malformed`] (short, trailing bytes, bad UTF-8, unknown
/// method) or [`Code::Unsupported`] (another version, QoS above 2).
pub fn decode(buf: &[u8]) -> Result<Frame<'_>, Error> {
    let mut r = Reader { buf };
    let version = r.u8("version")?;
    if version != VERSION {
        return Err(Error::Protocol {
            code: Code::Unsupported,
            message: format!("unsupported protocol version {version}"),
        });
    }
    let method = r.u8("method")?;
    let mut id = [0u8; 16];
    id.copy_from_slice(r.take(16, "file id")?);
    let id = FileId(id);
    let method = Method::from_u8(method).ok_or_else(|| malformed("unknown method"))?;
    let msg = match method {
        Method::Offer => {
            let size = r.u64("size")?;
            let chunk = r.u32("chunk")?;
            let q = r.u8("qos")?;
            let qos = QoS::from_u8(q).ok_or_else(|| Error::Protocol {
                code: Code::Unsupported,
                message: format!("unsupported QoS {q}"),
            })?;
            let name = r.string("name")?;
            let channel = r.string("channel")?;
            let data = r.string("data")?;
            Msg::Offer(Offer {
                size,
                chunk,
                qos,
                name,
                channel,
                data,
            })
        }
        Method::Accept => {
            let offset = r.u64("offset")?;
            if offset != 0 {
                return Err(malformed("accept with a non-zero offset"));
            }
            Msg::Accept {
                window: r.u32("window")?,
            }
        }
        Method::Refuse => Msg::Refuse {
            code: r.u16("code")?,
            reason: r.string("reason")?,
        },
        Method::Data => {
            let packet = r.u64("packet id")?;
            let offset = r.u64("offset")?;
            let chunk = r.buf;
            r.buf = &[];
            Msg::Data {
                packet,
                offset,
                chunk,
            }
        }
        Method::Ack => Msg::Ack {
            packet: r.u64("packet id")?,
            offset: r.u64("offset")?,
        },
        Method::Request => {
            let offset = r.u64("offset")?;
            let count = r.u32("count")?;
            let flags = r.u8("flags")?;
            if flags & !1 != 0 {
                return Err(malformed("unknown request flags"));
            }
            Msg::Request {
                offset,
                count,
                retransmit: flags & 1 != 0,
            }
        }
        Method::Resume => Msg::Resume {
            offset: r.u64("offset")?,
            window: r.u32("window")?,
        },
        Method::Complete => {
            let mut sha256 = [0u8; 32];
            sha256.copy_from_slice(r.take(32, "sha-256")?);
            Msg::Complete { sha256 }
        }
        Method::Error => Msg::Error {
            code: r.u16("code")?,
            message: r.string("message")?,
        },
        Method::Cancel => Msg::Cancel {
            code: r.u16("code")?,
            reason: r.string("reason")?,
        },
    };
    r.end()?;
    Ok(Frame { id, msg })
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Longer strings are cut at a character boundary below 65,536 bytes.
    let mut end = s.len().min(usize::from(u16::MAX));
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out.extend_from_slice(&(end as u16).to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..end]);
}

/// Appends the encoding of `msg` for file `id` to `out`.
pub fn encode(id: FileId, msg: &Msg<'_>, out: &mut Vec<u8>) {
    out.push(VERSION);
    out.push(msg.method() as u8);
    out.extend_from_slice(&id.0);
    match msg {
        Msg::Offer(o) => {
            out.extend_from_slice(&o.size.to_be_bytes());
            out.extend_from_slice(&o.chunk.to_be_bytes());
            out.push(o.qos as u8);
            put_str(out, o.name);
            put_str(out, o.channel);
            put_str(out, o.data);
        }
        Msg::Accept { window } => {
            out.extend_from_slice(&0u64.to_be_bytes());
            out.extend_from_slice(&window.to_be_bytes());
        }
        Msg::Refuse { code, reason: s }
        | Msg::Error { code, message: s }
        | Msg::Cancel { code, reason: s } => {
            out.extend_from_slice(&code.to_be_bytes());
            put_str(out, s);
        }
        Msg::Data {
            packet,
            offset,
            chunk,
        } => {
            out.extend_from_slice(&packet.to_be_bytes());
            out.extend_from_slice(&offset.to_be_bytes());
            out.extend_from_slice(chunk);
        }
        Msg::Ack { packet, offset } => {
            out.extend_from_slice(&packet.to_be_bytes());
            out.extend_from_slice(&offset.to_be_bytes());
        }
        Msg::Request {
            offset,
            count,
            retransmit,
        } => {
            out.extend_from_slice(&offset.to_be_bytes());
            out.extend_from_slice(&count.to_be_bytes());
            out.push(u8::from(*retransmit));
        }
        Msg::Resume { offset, window } => {
            out.extend_from_slice(&offset.to_be_bytes());
            out.extend_from_slice(&window.to_be_bytes());
        }
        Msg::Complete { sha256 } => out.extend_from_slice(sha256),
    }
}

/// Writes the header of a `data` message (common header, packet id, offset) into `out`, the
/// first [`DATA_HEADER_LEN`] bytes of a buffer whose chunk follows: a sender that reads the
/// file straight into the buffer after the header sends it without a copy.
pub fn encode_data_header(id: FileId, packet: u64, offset: u64, out: &mut [u8]) {
    out[0] = VERSION;
    out[1] = Method::Data as u8;
    out[2..HEADER_LEN].copy_from_slice(&id.0);
    out[HEADER_LEN..HEADER_LEN + 8].copy_from_slice(&packet.to_be_bytes());
    out[HEADER_LEN + 8..DATA_HEADER_LEN].copy_from_slice(&offset.to_be_bytes());
}

/// Encodes `msg` into a new buffer.
#[must_use]
pub fn to_vec(id: FileId, msg: &Msg<'_>) -> Vec<u8> {
    let mut v = Vec::new();
    encode(id, msg, &mut v);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_header_written_in_place_encodes_like_encode() {
        let id = FileId([9; 16]);
        let chunk = [1u8, 2, 3, 4, 5];
        let mut inplace = vec![0u8; DATA_HEADER_LEN];
        inplace.extend_from_slice(&chunk);
        encode_data_header(id, 7, 1 << 33, &mut inplace[..DATA_HEADER_LEN]);
        let msg = Msg::Data {
            packet: 7,
            offset: 1 << 33,
            chunk: &chunk,
        };
        assert_eq!(inplace, to_vec(id, &msg));
    }

    fn all() -> Vec<Msg<'static>> {
        vec![
            Msg::Offer(Offer {
                size: 5 << 32,
                chunk: 65536,
                qos: QoS::Pulled,
                name: "report.pdf",
                channel: "a/b",
                data: "hé",
            }),
            Msg::Accept { window: 8 },
            Msg::Refuse {
                code: 12,
                reason: "no",
            },
            Msg::Data {
                packet: 7,
                offset: 1 << 33,
                chunk: b"abc",
            },
            Msg::Data {
                packet: 1,
                offset: 0,
                chunk: b"",
            },
            Msg::Ack {
                packet: 7,
                offset: 9,
            },
            Msg::Request {
                offset: 3,
                count: 4,
                retransmit: true,
            },
            Msg::Resume {
                offset: 10,
                window: 2,
            },
            Msg::Complete { sha256: [7; 32] },
            Msg::Error {
                code: 9,
                message: "timeout",
            },
            Msg::Cancel {
                code: 15,
                reason: "",
            },
        ]
    }

    #[test]
    fn every_method_round_trips() {
        let id = FileId([0xab; 16]);
        for m in all() {
            let v = to_vec(id, &m);
            let f = decode(&v).unwrap();
            assert_eq!(f.id, id);
            assert_eq!(f.msg, m);
        }
    }

    #[test]
    fn header_layout_is_the_documented_one() {
        let v = to_vec(
            FileId([1; 16]),
            &Msg::Ack {
                packet: 2,
                offset: 3,
            },
        );
        assert_eq!(v[0], 1);
        assert_eq!(v[1], 5);
        assert_eq!(&v[2..18], &[1; 16]);
        assert_eq!(&v[18..26], &2u64.to_be_bytes());
        assert_eq!(&v[26..34], &3u64.to_be_bytes());
        assert_eq!(v.len(), 34);
    }

    #[test]
    fn every_truncation_and_extension_is_refused() {
        let id = FileId([3; 16]);
        for m in all() {
            let v = to_vec(id, &m);
            for cut in 0..v.len() {
                if matches!(m, Msg::Data { .. }) && cut >= DATA_HEADER_LEN {
                    continue; // a shorter chunk is still a chunk
                }
                assert!(decode(&v[..cut]).is_err(), "{m:?} cut at {cut}");
            }
            if !matches!(m, Msg::Data { .. }) {
                let mut longer = v.clone();
                longer.push(0);
                assert!(decode(&longer).is_err(), "{m:?} with a trailing byte");
            }
        }
    }

    #[test]
    fn bad_version_method_qos_utf8_are_refused_with_codes() {
        let id = FileId([0; 16]);
        let mut v = to_vec(id, &Msg::Accept { window: 1 });
        v[0] = 2;
        assert_eq!(decode(&v).unwrap_err().code(), Code::Unsupported);
        v[0] = 1;
        v[1] = 99;
        assert_eq!(decode(&v).unwrap_err().code(), Code::Malformed);
        let mut o = to_vec(
            id,
            &Msg::Offer(Offer {
                size: 1,
                chunk: 1,
                qos: QoS::AtMostOnce,
                name: "ab",
                channel: "",
                data: "",
            }),
        );
        o[18 + 12] = 3;
        assert_eq!(decode(&o).unwrap_err().code(), Code::Unsupported);
        o[18 + 12] = 0;
        o[18 + 15] = 0xff; // first byte of the name
        assert_eq!(decode(&o).unwrap_err().code(), Code::Malformed);
        let mut a = to_vec(id, &Msg::Accept { window: 1 });
        a[25] = 1; // accept's offset must be 0
        assert!(decode(&a).is_err());
    }

    #[test]
    fn file_id_hex_round_trips() {
        let id = FileId([0x0f, 0xa0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 0xff]);
        assert_eq!(FileId::from_hex(&id.to_hex()), Some(id));
        assert_eq!(FileId::from_hex("zz"), None);
    }
}
