//! The STUN message codec: header, attribute walk, typed attribute accessors, integrity and fingerprint.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::attr::{AddressFamily, AttrType, ErrorCode, PasswordAlgorithm, RelayProtocol};
use crate::error::{DecodeError, EncodeError};
use crate::integrity::{Key, ct_eq, fingerprint};

/// The magic cookie every RFC 5389+ message carries in bytes 4..8.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
/// Length of the fixed STUN header.
pub const HEADER_LEN: usize = 20;
/// Length of a MESSAGE-INTEGRITY attribute including its 4-byte header.
const MI_LEN: usize = 24;
/// Length of a MESSAGE-INTEGRITY-SHA256 attribute including its 4-byte header.
const MI256_LEN: usize = 36;
/// Length of a FINGERPRINT attribute including its 4-byte header.
const FP_LEN: usize = 8;

/// The 96-bit transaction ID.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransactionId(pub [u8; 12]);

impl TransactionId {
    /// A transaction ID drawn from `random`.
    ///
    /// # Errors
    /// [`crate::Error::Random`] when the source fails.
    pub fn from_random(random: &mut dyn crate::RandomSource) -> Result<Self, crate::Error> {
        let mut b = [0u8; 12];
        if !random.fill(&mut b) {
            return Err(crate::Error::Random);
        }
        Ok(Self(b))
    }
}

impl fmt::Debug for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Tid(")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

/// A STUN method (12 bits).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Method(pub u16);

impl Method {
    /// Binding (RFC 8489).
    pub const BINDING: Self = Self(0x001);
    /// Allocate (RFC 8656).
    pub const ALLOCATE: Self = Self(0x003);
    /// Refresh (RFC 8656).
    pub const REFRESH: Self = Self(0x004);
    /// Send (indication, RFC 8656).
    pub const SEND: Self = Self(0x006);
    /// Data (indication, RFC 8656).
    pub const DATA: Self = Self(0x007);
    /// CreatePermission (RFC 8656).
    pub const CREATE_PERMISSION: Self = Self(0x008);
    /// ChannelBind (RFC 8656).
    pub const CHANNEL_BIND: Self = Self(0x009);
    /// Connect (RFC 6062).
    pub const CONNECT: Self = Self(0x00A);
    /// ConnectionBind (RFC 6062).
    pub const CONNECTION_BIND: Self = Self(0x00B);
    /// ConnectionAttempt (indication, RFC 6062).
    pub const CONNECTION_ATTEMPT: Self = Self(0x00C);
}

impl fmt::Debug for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = match *self {
            Self::BINDING => "Binding",
            Self::ALLOCATE => "Allocate",
            Self::REFRESH => "Refresh",
            Self::SEND => "Send",
            Self::DATA => "Data",
            Self::CREATE_PERMISSION => "CreatePermission",
            Self::CHANNEL_BIND => "ChannelBind",
            Self::CONNECT => "Connect",
            Self::CONNECTION_BIND => "ConnectionBind",
            Self::CONNECTION_ATTEMPT => "ConnectionAttempt",
            _ => return write!(f, "Method({:#05x})", self.0),
        };
        f.write_str(n)
    }
}

/// The message class.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Class {
    /// A request (expects a response).
    Request,
    /// An indication (no response).
    Indication,
    /// A success response.
    Success,
    /// An error response.
    Error,
}

/// Method and class, as encoded in the first 16 bits of the header.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct MessageType {
    /// The method.
    pub method: Method,
    /// The class.
    pub class: Class,
}

impl MessageType {
    /// A message type.
    pub const fn new(method: Method, class: Class) -> Self {
        Self { method, class }
    }

    /// The 14-bit wire value (method bits interleaved with the two class bits).
    pub fn to_u16(self) -> u16 {
        let m = self.method.0 & 0x0FFF;
        let c: u16 = match self.class {
            Class::Request => 0b00,
            Class::Indication => 0b01,
            Class::Success => 0b10,
            Class::Error => 0b11,
        };
        (m & 0x000F) | ((m & 0x0070) << 1) | ((m & 0x0F80) << 2) | ((c & 1) << 4) | ((c & 2) << 7)
    }

    /// Splits a wire value; the two top bits must be zero.
    pub fn from_u16(v: u16) -> Option<Self> {
        if v & 0xC000 != 0 {
            return None;
        }
        let method = (v & 0x000F) | ((v >> 1) & 0x0070) | ((v >> 2) & 0x0F80);
        let class = match ((v >> 4) & 1) | ((v >> 7) & 2) {
            0 => Class::Request,
            1 => Class::Indication,
            2 => Class::Success,
            _ => Class::Error,
        };
        Some(Self {
            method: Method(method),
            class,
        })
    }
}

/// Decoder limits. The codec checks them before it allocates.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DecodeLimits {
    /// Largest accepted message, header included. Default: [`DecodeLimits::DEFAULT_MAX_MESSAGE_LEN`]
    /// (65 555, the largest the 16-bit length field can describe).
    pub max_message_len: usize,
    /// Most attributes accepted in one message. Default: [`DecodeLimits::DEFAULT_MAX_ATTRIBUTES`] (64).
    pub max_attributes: usize,
}

impl DecodeLimits {
    /// Default of [`DecodeLimits::max_message_len`].
    pub const DEFAULT_MAX_MESSAGE_LEN: usize = HEADER_LEN + 0xFFFF;
    /// Default of [`DecodeLimits::max_attributes`].
    pub const DEFAULT_MAX_ATTRIBUTES: usize = 64;
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_message_len: Self::DEFAULT_MAX_MESSAGE_LEN,
            max_attributes: Self::DEFAULT_MAX_ATTRIBUTES,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct RawAttr {
    typ: u16,
    /// Offset of the value in the message buffer.
    start: u32,
    len: u16,
}

/// A decoded STUN message borrowing the datagram (or TCP frame) it came from.
///
/// Decoding checks the structure (header, lengths, padding, attribute order around
/// MESSAGE-INTEGRITY and FINGERPRINT) and records where each attribute is; typed accessors decode
/// values on demand. Only the first occurrence of an attribute type is returned by the accessors
/// (RFC 8489 §14), and attributes after MESSAGE-INTEGRITY other than MESSAGE-INTEGRITY-SHA256 and
/// FINGERPRINT are ignored as the RFC requires.
#[derive(Clone)]
pub struct Message<'a> {
    buf: &'a [u8],
    typ: MessageType,
    tid: TransactionId,
    attrs: Vec<RawAttr>,
    integrity: Option<usize>,
    integrity_sha256: Option<usize>,
    fingerprint: Option<usize>,
}

impl fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("type", &self.typ)
            .field("tid", &self.tid)
            .field(
                "attrs",
                &self
                    .attrs
                    .iter()
                    .map(|a| AttrType(a.typ))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Whether `buf` starts like a STUN message (top two bits zero and the magic cookie present).
pub fn is_stun(buf: &[u8]) -> bool {
    buf.len() >= HEADER_LEN && buf[0] & 0xC0 == 0 && buf[4..8] == MAGIC_COOKIE.to_be_bytes()
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

impl<'a> Message<'a> {
    /// Decodes one complete message; `buf` must be exactly the message (use
    /// [`crate::frame_len`] to split a TCP stream first).
    ///
    /// Never panics, for any input.
    ///
    /// # Errors
    /// A [`DecodeError`] describing the first structural problem found.
    pub fn decode(buf: &'a [u8], limits: &DecodeLimits) -> Result<Self, DecodeError> {
        if buf.len() < HEADER_LEN {
            return Err(DecodeError::Truncated);
        }
        if buf.len() > limits.max_message_len {
            return Err(DecodeError::TooLong {
                len: buf.len(),
                max: limits.max_message_len,
            });
        }
        let raw_type = be16(buf, 0).ok_or(DecodeError::Truncated)?;
        let typ = MessageType::from_u16(raw_type).ok_or(DecodeError::NotStun)?;
        if buf[4..8] != MAGIC_COOKIE.to_be_bytes() {
            return Err(DecodeError::NoMagicCookie);
        }
        let len = usize::from(be16(buf, 2).ok_or(DecodeError::Truncated)?);
        if len % 4 != 0 {
            return Err(DecodeError::BadLength);
        }
        if HEADER_LEN + len != buf.len() {
            return Err(if HEADER_LEN + len > buf.len() {
                DecodeError::Truncated
            } else {
                DecodeError::BadLength
            });
        }
        let mut tid = [0u8; 12];
        tid.copy_from_slice(&buf[8..20]);
        let mut msg = Self {
            buf,
            typ,
            tid: TransactionId(tid),
            attrs: Vec::new(),
            integrity: None,
            integrity_sha256: None,
            fingerprint: None,
        };
        let mut pos = HEADER_LEN;
        let mut count = 0usize;
        while pos < buf.len() {
            let at = be16(buf, pos).ok_or(DecodeError::Truncated)?;
            let alen = usize::from(be16(buf, pos + 2).ok_or(DecodeError::Truncated)?);
            let vstart = pos + 4;
            let padded = (alen + 3) & !3;
            if vstart + padded > buf.len() {
                return Err(DecodeError::AttributeOverflow { attr: AttrType(at) });
            }
            count += 1;
            if count > limits.max_attributes {
                return Err(DecodeError::TooManyAttributes {
                    max: limits.max_attributes,
                });
            }
            if msg.fingerprint.is_some() {
                return Err(DecodeError::AfterFingerprint);
            }
            let t = AttrType(at);
            match t {
                AttrType::MESSAGE_INTEGRITY
                    if msg.integrity.is_none() && msg.integrity_sha256.is_none() =>
                {
                    if alen != 20 {
                        return Err(DecodeError::BadAttribute { attr: t });
                    }
                    msg.integrity = Some(pos);
                }
                AttrType::MESSAGE_INTEGRITY_SHA256 if msg.integrity_sha256.is_none() => {
                    // 16..=32 bytes, a multiple of 4 (RFC 8489 §14.6).
                    if !(16..=32).contains(&alen) || alen % 4 != 0 {
                        return Err(DecodeError::BadAttribute { attr: t });
                    }
                    msg.integrity_sha256 = Some(pos);
                }
                AttrType::FINGERPRINT => {
                    if alen != 4 {
                        return Err(DecodeError::BadAttribute { attr: t });
                    }
                    msg.fingerprint = Some(pos);
                }
                _ if msg.integrity.is_some() || msg.integrity_sha256.is_some() => {
                    // Ignored: follows MESSAGE-INTEGRITY (RFC 8489 §14.5).
                }
                _ => {
                    if msg.attrs.capacity() == 0 {
                        msg.attrs.reserve_exact(limits.max_attributes.min(len / 4));
                    }
                    msg.attrs.push(RawAttr {
                        typ: at,
                        start: vstart as u32,
                        len: alen as u16,
                    });
                }
            }
            pos = vstart + padded;
        }
        Ok(msg)
    }

    /// Method and class.
    pub fn message_type(&self) -> MessageType {
        self.typ
    }

    /// The method.
    pub fn method(&self) -> Method {
        self.typ.method
    }

    /// The class.
    pub fn class(&self) -> Class {
        self.typ.class
    }

    /// The transaction ID.
    pub fn transaction_id(&self) -> TransactionId {
        self.tid
    }

    /// The raw message bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }

    /// The raw value of the first attribute of type `t`.
    pub fn get(&self, t: AttrType) -> Option<&'a [u8]> {
        let a = self.attrs.iter().find(|a| a.typ == t.0)?;
        let s = a.start as usize;
        self.buf.get(s..s + usize::from(a.len))
    }

    /// Where the value of the first attribute of type `t` lies in [`Message::as_bytes`].
    pub fn range_of(&self, t: AttrType) -> Option<std::ops::Range<usize>> {
        let a = self.attrs.iter().find(|a| a.typ == t.0)?;
        let s = a.start as usize;
        Some(s..s + usize::from(a.len))
    }

    /// Whether the message has an attribute of type `t`.
    pub fn has(&self, t: AttrType) -> bool {
        self.attrs.iter().any(|a| a.typ == t.0)
    }

    /// Types of all attributes covered by integrity, in order (integrity and fingerprint excluded).
    pub fn attribute_types(&self) -> impl Iterator<Item = AttrType> + '_ {
        self.attrs.iter().map(|a| AttrType(a.typ))
    }

    /// Comprehension-required attribute types in the message that are not in `known`.
    pub fn unknown_required(&self, known: &[AttrType]) -> Vec<AttrType> {
        let mut out: Vec<AttrType> = Vec::new();
        for t in self.attribute_types() {
            if t.is_comprehension_required() && !known.contains(&t) && !out.contains(&t) {
                out.push(t);
            }
        }
        out
    }

    /// Iterates over the typed attributes.
    pub fn attributes(&self) -> impl Iterator<Item = Result<Attribute<'a>, DecodeError>> + '_ {
        self.attrs.iter().map(move |a| {
            let s = a.start as usize;
            let v = self
                .buf
                .get(s..s + usize::from(a.len))
                .ok_or(DecodeError::Truncated)?;
            Attribute::parse(AttrType(a.typ), v, &self.tid)
        })
    }

    fn address(&self, t: AttrType, xor: bool) -> Result<Option<SocketAddr>, DecodeError> {
        match self.get(t) {
            None => Ok(None),
            Some(v) => decode_address(v, if xor { Some(&self.tid) } else { None })
                .map(Some)
                .ok_or(DecodeError::BadAttribute { attr: t }),
        }
    }

    /// XOR-MAPPED-ADDRESS.
    ///
    /// # Errors
    /// [`DecodeError::BadAttribute`] when present but malformed.
    pub fn xor_mapped_address(&self) -> Result<Option<SocketAddr>, DecodeError> {
        self.address(AttrType::XOR_MAPPED_ADDRESS, true)
    }

    /// MAPPED-ADDRESS (RFC 3489 servers send only this).
    ///
    /// # Errors
    /// [`DecodeError::BadAttribute`] when present but malformed.
    pub fn mapped_address(&self) -> Result<Option<SocketAddr>, DecodeError> {
        self.address(AttrType::MAPPED_ADDRESS, false)
    }

    /// The reflexive address: XOR-MAPPED-ADDRESS, else MAPPED-ADDRESS.
    ///
    /// # Errors
    /// [`DecodeError::BadAttribute`] when present but malformed.
    pub fn reflexive_address(&self) -> Result<Option<SocketAddr>, DecodeError> {
        match self.xor_mapped_address()? {
            Some(a) => Ok(Some(a)),
            None => self.mapped_address(),
        }
    }

    /// XOR-PEER-ADDRESS (the first one; CreatePermission may carry several, see
    /// [`Message::xor_peer_addresses`]).
    ///
    /// # Errors
    /// [`DecodeError::BadAttribute`] when present but malformed.
    pub fn xor_peer_address(&self) -> Result<Option<SocketAddr>, DecodeError> {
        self.address(AttrType::XOR_PEER_ADDRESS, true)
    }

    /// Every XOR-PEER-ADDRESS.
    ///
    /// # Errors
    /// [`DecodeError::BadAttribute`] when one is malformed.
    pub fn xor_peer_addresses(&self) -> Result<Vec<SocketAddr>, DecodeError> {
        let mut out = Vec::new();
        for a in self
            .attrs
            .iter()
            .filter(|a| a.typ == AttrType::XOR_PEER_ADDRESS.0)
        {
            let s = a.start as usize;
            let v = self
                .buf
                .get(s..s + usize::from(a.len))
                .ok_or(DecodeError::Truncated)?;
            out.push(
                decode_address(v, Some(&self.tid)).ok_or(DecodeError::BadAttribute {
                    attr: AttrType::XOR_PEER_ADDRESS,
                })?,
            );
        }
        Ok(out)
    }

    /// XOR-RELAYED-ADDRESS.
    ///
    /// # Errors
    /// [`DecodeError::BadAttribute`] when present but malformed.
    pub fn xor_relayed_address(&self) -> Result<Option<SocketAddr>, DecodeError> {
        self.address(AttrType::XOR_RELAYED_ADDRESS, true)
    }

    /// ALTERNATE-SERVER.
    ///
    /// # Errors
    /// [`DecodeError::BadAttribute`] when present but malformed.
    pub fn alternate_server(&self) -> Result<Option<SocketAddr>, DecodeError> {
        self.address(AttrType::ALTERNATE_SERVER, false)
    }

    fn text(&self, t: AttrType, max: usize) -> Result<Option<&'a str>, DecodeError> {
        match self.get(t) {
            None => Ok(None),
            Some(v) if v.len() <= max => std::str::from_utf8(v)
                .map(Some)
                .map_err(|_| DecodeError::BadAttribute { attr: t }),
            Some(_) => Err(DecodeError::BadAttribute { attr: t }),
        }
    }

    /// USERNAME (at most 513 bytes, UTF-8).
    ///
    /// # Errors
    /// [`DecodeError::BadAttribute`] when too long or not UTF-8.
    pub fn username(&self) -> Result<Option<&'a str>, DecodeError> {
        self.text(AttrType::USERNAME, 513)
    }

    /// REALM (at most 763 bytes, UTF-8).
    ///
    /// # Errors
    /// [`DecodeError::BadAttribute`] when too long or not UTF-8.
    pub fn realm(&self) -> Result<Option<&'a str>, DecodeError> {
        self.text(AttrType::REALM, 763)
    }

    /// NONCE (at most 763 bytes, UTF-8).
    ///
    /// # Errors
    /// [`DecodeError::BadAttribute`] when too long or not UTF-8.
    pub fn nonce(&self) -> Result<Option<&'a str>, DecodeError> {
        self.text(AttrType::NONCE, 763)
    }

    /// SOFTWARE (at most 763 bytes, UTF-8).
    ///
    /// # Errors
    /// [`DecodeError::BadAttribute`] when too long or not UTF-8.
    pub fn software(&self) -> Result<Option<&'a str>, DecodeError> {
        self.text(AttrType::SOFTWARE, 763)
    }

    /// USERHASH (32 bytes).
    ///
    /// # Errors
    /// [`DecodeError::BadAttribute`] when not 32 bytes.
    pub fn userhash(&self) -> Result<Option<[u8; 32]>, DecodeError> {
        match self.get(AttrType::USERHASH) {
            None => Ok(None),
            Some(v) => v
                .try_into()
                .map(Some)
                .map_err(|_| DecodeError::BadAttribute {
                    attr: AttrType::USERHASH,
                }),
        }
    }

    /// ERROR-CODE as (code, reason).
    ///
    /// # Errors
    /// [`DecodeError::BadAttribute`] when present but malformed.
    pub fn error_code(&self) -> Result<Option<(ErrorCode, &'a str)>, DecodeError> {
        match self.get(AttrType::ERROR_CODE) {
            None => Ok(None),
            Some(v) => match Attribute::parse(AttrType::ERROR_CODE, v, &self.tid)? {
                Attribute::ErrorCode { code, reason } => Ok(Some((code, reason))),
                _ => Err(DecodeError::BadAttribute {
                    attr: AttrType::ERROR_CODE,
                }),
            },
        }
    }

    fn u32_attr(&self, t: AttrType) -> Result<Option<u32>, DecodeError> {
        match self.get(t) {
            None => Ok(None),
            Some(v) => <[u8; 4]>::try_from(v)
                .map(|b| Some(u32::from_be_bytes(b)))
                .map_err(|_| DecodeError::BadAttribute { attr: t }),
        }
    }

    /// LIFETIME in seconds.
    ///
    /// # Errors
    /// [`DecodeError::BadAttribute`] when not 4 bytes.
    pub fn lifetime(&self) -> Result<Option<u32>, DecodeError> {
        self.u32_attr(AttrType::LIFETIME)
    }

    /// CONNECTION-ID (RFC 6062).
    ///
    /// # Errors
    /// [`DecodeError::BadAttribute`] when not 4 bytes.
    pub fn connection_id(&self) -> Result<Option<u32>, DecodeError> {
        self.u32_attr(AttrType::CONNECTION_ID)
    }

    /// CHANNEL-NUMBER.
    ///
    /// # Errors
    /// [`DecodeError::BadAttribute`] when not 4 bytes.
    pub fn channel_number(&self) -> Result<Option<u16>, DecodeError> {
        Ok(self
            .u32_attr(AttrType::CHANNEL_NUMBER)?
            .map(|v| (v >> 16) as u16))
    }

    /// REQUESTED-TRANSPORT as the raw IANA protocol number.
    ///
    /// # Errors
    /// [`DecodeError::BadAttribute`] when not 4 bytes.
    pub fn requested_transport(&self) -> Result<Option<u8>, DecodeError> {
        Ok(self
            .u32_attr(AttrType::REQUESTED_TRANSPORT)?
            .map(|v| (v >> 24) as u8))
    }

    /// REQUESTED-ADDRESS-FAMILY as the raw family code.
    ///
    /// # Errors
    /// [`DecodeError::BadAttribute`] when not 4 bytes.
    pub fn requested_address_family(&self) -> Result<Option<u8>, DecodeError> {
        Ok(self
            .u32_attr(AttrType::REQUESTED_ADDRESS_FAMILY)?
            .map(|v| (v >> 24) as u8))
    }

    /// EVEN-PORT: `Some(reserve_next)` when present.
    ///
    /// # Errors
    /// [`DecodeError::BadAttribute`] when empty.
    pub fn even_port(&self) -> Result<Option<bool>, DecodeError> {
        match self.get(AttrType::EVEN_PORT) {
            None => Ok(None),
            Some([b, ..]) => Ok(Some(b & 0x80 != 0)),
            Some([]) => Err(DecodeError::BadAttribute {
                attr: AttrType::EVEN_PORT,
            }),
        }
    }

    /// RESERVATION-TOKEN (8 bytes).
    ///
    /// # Errors
    /// [`DecodeError::BadAttribute`] when not 8 bytes.
    pub fn reservation_token(&self) -> Result<Option<[u8; 8]>, DecodeError> {
        match self.get(AttrType::RESERVATION_TOKEN) {
            None => Ok(None),
            Some(v) => v
                .try_into()
                .map(Some)
                .map_err(|_| DecodeError::BadAttribute {
                    attr: AttrType::RESERVATION_TOKEN,
                }),
        }
    }

    /// PASSWORD-ALGORITHM: the algorithm code (parameters ignored).
    ///
    /// # Errors
    /// [`DecodeError::BadAttribute`] when malformed.
    pub fn password_algorithm(&self) -> Result<Option<u16>, DecodeError> {
        match self.get(AttrType::PASSWORD_ALGORITHM) {
            None => Ok(None),
            Some(v) => be16(v, 0).map(Some).ok_or(DecodeError::BadAttribute {
                attr: AttrType::PASSWORD_ALGORITHM,
            }),
        }
    }

    /// PASSWORD-ALGORITHMS: the algorithm codes in order (parameters skipped).
    ///
    /// # Errors
    /// [`DecodeError::BadAttribute`] when malformed.
    pub fn password_algorithms(&self) -> Result<Option<Vec<u16>>, DecodeError> {
        match self.get(AttrType::PASSWORD_ALGORITHMS) {
            None => Ok(None),
            Some(v) => match Attribute::parse(AttrType::PASSWORD_ALGORITHMS, v, &self.tid)? {
                Attribute::PasswordAlgorithms(list) => Ok(Some(list)),
                _ => Err(DecodeError::BadAttribute {
                    attr: AttrType::PASSWORD_ALGORITHMS,
                }),
            },
        }
    }

    /// DATA.
    pub fn data(&self) -> Option<&'a [u8]> {
        self.get(AttrType::DATA)
    }

    /// Whether MESSAGE-INTEGRITY is present.
    pub fn has_integrity(&self) -> bool {
        self.integrity.is_some()
    }

    /// Whether MESSAGE-INTEGRITY-SHA256 is present.
    pub fn has_integrity_sha256(&self) -> bool {
        self.integrity_sha256.is_some()
    }

    /// Whether FINGERPRINT is present.
    pub fn has_fingerprint(&self) -> bool {
        self.fingerprint.is_some()
    }

    /// The header with its length field replaced, for integrity/fingerprint input.
    fn header_with_len(&self, len: usize) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h.copy_from_slice(&self.buf[..HEADER_LEN]);
        h[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        h
    }

    /// Checks MESSAGE-INTEGRITY (HMAC-SHA1) with `key`.
    ///
    /// # Errors
    /// [`DecodeError::NoIntegrity`] when absent; [`DecodeError::IntegrityMismatch`] when wrong.
    pub fn verify_integrity(&self, key: &Key) -> Result<(), DecodeError> {
        let at = self.integrity.ok_or(DecodeError::NoIntegrity)?;
        let h = self.header_with_len(at + MI_LEN - HEADER_LEN);
        let tag = key.hmac_sha1(&[&h, &self.buf[HEADER_LEN..at]]);
        if ct_eq(tag.as_ref(), &self.buf[at + 4..at + MI_LEN]) {
            Ok(())
        } else {
            Err(DecodeError::IntegrityMismatch)
        }
    }

    /// Checks MESSAGE-INTEGRITY-SHA256 with `key` (truncated tags of 16..32 bytes accepted).
    ///
    /// # Errors
    /// [`DecodeError::NoIntegrity`] when absent; [`DecodeError::IntegrityMismatch`] when wrong.
    pub fn verify_integrity_sha256(&self, key: &Key) -> Result<(), DecodeError> {
        let at = self.integrity_sha256.ok_or(DecodeError::NoIntegrity)?;
        let tlen = usize::from(be16(self.buf, at + 2).ok_or(DecodeError::Truncated)?);
        let h = self.header_with_len(at + 4 + tlen - HEADER_LEN);
        let tag = key.hmac_sha256(&[&h, &self.buf[HEADER_LEN..at]]);
        if ct_eq(&tag.as_ref()[..tlen], &self.buf[at + 4..at + 4 + tlen]) {
            Ok(())
        } else {
            Err(DecodeError::IntegrityMismatch)
        }
    }

    /// Checks whichever integrity attribute is present, preferring MESSAGE-INTEGRITY-SHA256.
    ///
    /// # Errors
    /// [`DecodeError::NoIntegrity`] when neither is present; [`DecodeError::IntegrityMismatch`].
    pub fn verify_any_integrity(&self, key: &Key) -> Result<(), DecodeError> {
        if self.integrity_sha256.is_some() {
            self.verify_integrity_sha256(key)
        } else {
            self.verify_integrity(key)
        }
    }

    /// Checks FINGERPRINT. Returns `Ok(false)` when the message has none.
    ///
    /// # Errors
    /// [`DecodeError::FingerprintMismatch`] when present and wrong.
    pub fn verify_fingerprint(&self) -> Result<bool, DecodeError> {
        let Some(at) = self.fingerprint else {
            return Ok(false);
        };
        let expect = u32::from_be_bytes([
            self.buf[at + 4],
            self.buf[at + 5],
            self.buf[at + 6],
            self.buf[at + 7],
        ]);
        if fingerprint(&[&self.buf[..at]]) == expect {
            Ok(true)
        } else {
            Err(DecodeError::FingerprintMismatch)
        }
    }
}

/// A typed attribute value.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Attribute<'a> {
    /// MAPPED-ADDRESS.
    MappedAddress(SocketAddr),
    /// XOR-MAPPED-ADDRESS.
    XorMappedAddress(SocketAddr),
    /// XOR-PEER-ADDRESS.
    XorPeerAddress(SocketAddr),
    /// XOR-RELAYED-ADDRESS.
    XorRelayedAddress(SocketAddr),
    /// ALTERNATE-SERVER.
    AlternateServer(SocketAddr),
    /// RESPONSE-ORIGIN.
    ResponseOrigin(SocketAddr),
    /// OTHER-ADDRESS.
    OtherAddress(SocketAddr),
    /// USERNAME.
    Username(&'a str),
    /// USERHASH.
    Userhash([u8; 32]),
    /// REALM.
    Realm(&'a str),
    /// NONCE.
    Nonce(&'a str),
    /// SOFTWARE.
    Software(&'a str),
    /// ALTERNATE-DOMAIN.
    AlternateDomain(&'a str),
    /// ERROR-CODE.
    ErrorCode {
        /// Code (300..=699).
        code: ErrorCode,
        /// Reason phrase.
        reason: &'a str,
    },
    /// UNKNOWN-ATTRIBUTES.
    UnknownAttributes(Vec<AttrType>),
    /// PASSWORD-ALGORITHM (code; parameters ignored).
    PasswordAlgorithm(u16),
    /// PASSWORD-ALGORITHMS (codes).
    PasswordAlgorithms(Vec<u16>),
    /// LIFETIME (seconds).
    Lifetime(u32),
    /// CHANNEL-NUMBER.
    ChannelNumber(u16),
    /// DATA.
    Data(&'a [u8]),
    /// REQUESTED-TRANSPORT (IANA protocol number).
    RequestedTransport(u8),
    /// REQUESTED-ADDRESS-FAMILY.
    RequestedAddressFamily(u8),
    /// ADDITIONAL-ADDRESS-FAMILY.
    AdditionalAddressFamily(u8),
    /// EVEN-PORT (the R bit: reserve the next port).
    EvenPort(bool),
    /// RESERVATION-TOKEN.
    ReservationToken([u8; 8]),
    /// DONT-FRAGMENT.
    DontFragment,
    /// CONNECTION-ID.
    ConnectionId(u32),
    /// CHANGE-REQUEST (change IP, change port).
    ChangeRequest {
        /// Change IP flag.
        ip: bool,
        /// Change port flag.
        port: bool,
    },
    /// RESPONSE-PORT.
    ResponsePort(u16),
    /// PADDING.
    Padding(&'a [u8]),
    /// CACHE-TIMEOUT (seconds).
    CacheTimeout(u32),
    /// PRIORITY (ICE).
    Priority(u32),
    /// USE-CANDIDATE (ICE).
    UseCandidate,
    /// ICE-CONTROLLED tie breaker.
    IceControlled(u64),
    /// ICE-CONTROLLING tie breaker.
    IceControlling(u64),
    /// Any other attribute, raw.
    Other {
        /// Type.
        typ: AttrType,
        /// Value.
        value: &'a [u8],
    },
}

impl<'a> Attribute<'a> {
    /// Parses one attribute value. `tid` is needed for XOR-encoded addresses.
    ///
    /// # Errors
    /// [`DecodeError::BadAttribute`] when the value does not fit the attribute's format.
    pub fn parse(typ: AttrType, v: &'a [u8], tid: &TransactionId) -> Result<Self, DecodeError> {
        let bad = DecodeError::BadAttribute { attr: typ };
        let addr =
            |xor: bool| decode_address(v, if xor { Some(tid) } else { None }).ok_or(bad.clone());
        let text = |max: usize| {
            if v.len() > max {
                return Err(bad.clone());
            }
            std::str::from_utf8(v).map_err(|_| bad.clone())
        };
        let u32v = || {
            <[u8; 4]>::try_from(v)
                .map(u32::from_be_bytes)
                .map_err(|_| bad.clone())
        };
        let u64v = || {
            <[u8; 8]>::try_from(v)
                .map(u64::from_be_bytes)
                .map_err(|_| bad.clone())
        };
        Ok(match typ {
            AttrType::MAPPED_ADDRESS => Self::MappedAddress(addr(false)?),
            AttrType::XOR_MAPPED_ADDRESS => Self::XorMappedAddress(addr(true)?),
            AttrType::XOR_PEER_ADDRESS => Self::XorPeerAddress(addr(true)?),
            AttrType::XOR_RELAYED_ADDRESS => Self::XorRelayedAddress(addr(true)?),
            AttrType::ALTERNATE_SERVER => Self::AlternateServer(addr(false)?),
            AttrType::RESPONSE_ORIGIN => Self::ResponseOrigin(addr(false)?),
            AttrType::OTHER_ADDRESS => Self::OtherAddress(addr(false)?),
            AttrType::USERNAME => Self::Username(text(513)?),
            AttrType::USERHASH => Self::Userhash(v.try_into().map_err(|_| bad.clone())?),
            AttrType::REALM => Self::Realm(text(763)?),
            AttrType::NONCE => Self::Nonce(text(763)?),
            AttrType::SOFTWARE => Self::Software(text(763)?),
            AttrType::ALTERNATE_DOMAIN => Self::AlternateDomain(text(255)?),
            AttrType::ERROR_CODE => {
                if v.len() < 4 || v.len() > 4 + 763 {
                    return Err(bad);
                }
                let class = u16::from(v[2] & 0x07);
                let number = u16::from(v[3]);
                if !(3..=6).contains(&class) || number > 99 {
                    return Err(bad);
                }
                Self::ErrorCode {
                    code: ErrorCode(class * 100 + number),
                    reason: std::str::from_utf8(&v[4..]).map_err(|_| bad.clone())?,
                }
            }
            AttrType::UNKNOWN_ATTRIBUTES => {
                if v.len() % 2 != 0 {
                    return Err(bad);
                }
                Self::UnknownAttributes(
                    v.chunks_exact(2)
                        .map(|c| AttrType(u16::from_be_bytes([c[0], c[1]])))
                        .collect(),
                )
            }
            AttrType::PASSWORD_ALGORITHM => {
                let (alg, plen) = (
                    be16(v, 0).ok_or(bad.clone())?,
                    usize::from(be16(v, 2).ok_or(bad.clone())?),
                );
                if 4 + ((plen + 3) & !3) != v.len() && 4 + plen != v.len() {
                    return Err(bad);
                }
                Self::PasswordAlgorithm(alg)
            }
            AttrType::PASSWORD_ALGORITHMS => {
                let mut list = Vec::new();
                let mut p = 0;
                while p < v.len() {
                    let alg = be16(v, p).ok_or(bad.clone())?;
                    let plen = usize::from(be16(v, p + 2).ok_or(bad.clone())?);
                    p += 4 + ((plen + 3) & !3);
                    if p > v.len() || list.len() >= 32 {
                        return Err(bad);
                    }
                    list.push(alg);
                }
                Self::PasswordAlgorithms(list)
            }
            AttrType::LIFETIME => Self::Lifetime(u32v()?),
            AttrType::CHANNEL_NUMBER => Self::ChannelNumber((u32v()? >> 16) as u16),
            AttrType::DATA => Self::Data(v),
            AttrType::REQUESTED_TRANSPORT => Self::RequestedTransport((u32v()? >> 24) as u8),
            AttrType::REQUESTED_ADDRESS_FAMILY => {
                Self::RequestedAddressFamily((u32v()? >> 24) as u8)
            }
            AttrType::ADDITIONAL_ADDRESS_FAMILY => {
                Self::AdditionalAddressFamily((u32v()? >> 24) as u8)
            }
            AttrType::EVEN_PORT => Self::EvenPort(v.first().ok_or(bad.clone())? & 0x80 != 0),
            AttrType::RESERVATION_TOKEN => {
                Self::ReservationToken(v.try_into().map_err(|_| bad.clone())?)
            }
            AttrType::DONT_FRAGMENT => Self::DontFragment,
            AttrType::CONNECTION_ID => Self::ConnectionId(u32v()?),
            AttrType::CHANGE_REQUEST => {
                let f = u32v()?;
                Self::ChangeRequest {
                    ip: f & 4 != 0,
                    port: f & 2 != 0,
                }
            }
            AttrType::RESPONSE_PORT => Self::ResponsePort((u32v()? >> 16) as u16),
            AttrType::PADDING => Self::Padding(v),
            AttrType::CACHE_TIMEOUT => Self::CacheTimeout(u32v()?),
            AttrType::PRIORITY => Self::Priority(u32v()?),
            AttrType::USE_CANDIDATE => Self::UseCandidate,
            AttrType::ICE_CONTROLLED => Self::IceControlled(u64v()?),
            AttrType::ICE_CONTROLLING => Self::IceControlling(u64v()?),
            _ => Self::Other { typ, value: v },
        })
    }
}

/// Decodes an address attribute value, XORed with the cookie and `tid` when given.
fn decode_address(v: &[u8], xor: Option<&TransactionId>) -> Option<SocketAddr> {
    let fam = AddressFamily::from_code(*v.get(1)?)?;
    let mut port = be16(v, 2)?;
    if xor.is_some() {
        port ^= (MAGIC_COOKIE >> 16) as u16;
    }
    let ip = match fam {
        AddressFamily::V4 => {
            let b: [u8; 4] = v.get(4..8)?.try_into().ok()?;
            if v.len() != 8 {
                return None;
            }
            let mut n = u32::from_be_bytes(b);
            if xor.is_some() {
                n ^= MAGIC_COOKIE;
            }
            IpAddr::V4(Ipv4Addr::from(n))
        }
        AddressFamily::V6 => {
            let mut b: [u8; 16] = v.get(4..20)?.try_into().ok()?;
            if v.len() != 20 {
                return None;
            }
            if let Some(tid) = xor {
                let mut k = [0u8; 16];
                k[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
                k[4..].copy_from_slice(&tid.0);
                for (x, y) in b.iter_mut().zip(k) {
                    *x ^= y;
                }
            }
            IpAddr::V6(Ipv6Addr::from(b))
        }
    };
    Some(SocketAddr::new(ip, port))
}

/// Appends one STUN message to a caller-owned buffer.
///
/// Write attributes in order, then optionally [`MessageEncoder::message_integrity`],
/// [`MessageEncoder::message_integrity_sha256`] and [`MessageEncoder::fingerprint`] (in that order),
/// then [`MessageEncoder::finish`]. The header length is kept up to date after every attribute.
#[derive(Debug)]
pub struct MessageEncoder<'b> {
    out: &'b mut Vec<u8>,
    start: usize,
    tid: TransactionId,
    overflow: bool,
}

impl<'b> MessageEncoder<'b> {
    /// Starts a message at the end of `out`.
    pub fn new(out: &'b mut Vec<u8>, typ: MessageType, tid: TransactionId) -> Self {
        let start = out.len();
        out.extend_from_slice(&typ.to_u16().to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        out.extend_from_slice(&tid.0);
        Self {
            out,
            start,
            tid,
            overflow: false,
        }
    }

    fn set_len(&mut self) {
        let len = self.out.len() - self.start - HEADER_LEN;
        if len > 0xFFFF {
            self.overflow = true;
        }
        let b = (len as u16).to_be_bytes();
        self.out[self.start + 2] = b[0];
        self.out[self.start + 3] = b[1];
    }

    /// Appends a raw attribute (value padded to 4 bytes with zeros).
    pub fn attr(&mut self, typ: AttrType, value: &[u8]) -> &mut Self {
        self.attr_with_padding(typ, value, 0)
    }

    /// Appends a raw attribute padded with `pad` bytes. Receivers ignore padding, but integrity
    /// covers it; RFC 5769's vectors pad with spaces, so reproducing them needs this.
    pub fn attr_with_padding(&mut self, typ: AttrType, value: &[u8], pad: u8) -> &mut Self {
        if value.len() > 0xFFFF {
            self.overflow = true;
            return self;
        }
        self.out.extend_from_slice(&typ.0.to_be_bytes());
        self.out
            .extend_from_slice(&(value.len() as u16).to_be_bytes());
        self.out.extend_from_slice(value);
        let n = (4 - value.len() % 4) % 4;
        self.out.extend_from_slice(&[pad; 3][..n]);
        self.set_len();
        self
    }

    fn address(&mut self, typ: AttrType, addr: SocketAddr, xor: bool) -> &mut Self {
        let mut v = [0u8; 20];
        let mut port = addr.port();
        if xor {
            port ^= (MAGIC_COOKIE >> 16) as u16;
        }
        v[2..4].copy_from_slice(&port.to_be_bytes());
        let n = match addr.ip() {
            IpAddr::V4(ip) => {
                v[1] = 1;
                let mut n = u32::from(ip);
                if xor {
                    n ^= MAGIC_COOKIE;
                }
                v[4..8].copy_from_slice(&n.to_be_bytes());
                8
            }
            IpAddr::V6(ip) => {
                v[1] = 2;
                let mut b = ip.octets();
                if xor {
                    let mut k = [0u8; 16];
                    k[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
                    k[4..].copy_from_slice(&self.tid.0);
                    for (x, y) in b.iter_mut().zip(k) {
                        *x ^= y;
                    }
                }
                v[4..20].copy_from_slice(&b);
                20
            }
        };
        self.attr(typ, &v[..n])
    }

    /// XOR-MAPPED-ADDRESS.
    pub fn xor_mapped_address(&mut self, a: SocketAddr) -> &mut Self {
        self.address(AttrType::XOR_MAPPED_ADDRESS, a, true)
    }

    /// MAPPED-ADDRESS.
    pub fn mapped_address(&mut self, a: SocketAddr) -> &mut Self {
        self.address(AttrType::MAPPED_ADDRESS, a, false)
    }

    /// XOR-PEER-ADDRESS.
    pub fn xor_peer_address(&mut self, a: SocketAddr) -> &mut Self {
        self.address(AttrType::XOR_PEER_ADDRESS, a, true)
    }

    /// XOR-RELAYED-ADDRESS.
    pub fn xor_relayed_address(&mut self, a: SocketAddr) -> &mut Self {
        self.address(AttrType::XOR_RELAYED_ADDRESS, a, true)
    }

    /// ALTERNATE-SERVER.
    pub fn alternate_server(&mut self, a: SocketAddr) -> &mut Self {
        self.address(AttrType::ALTERNATE_SERVER, a, false)
    }

    /// RESPONSE-ORIGIN.
    pub fn response_origin(&mut self, a: SocketAddr) -> &mut Self {
        self.address(AttrType::RESPONSE_ORIGIN, a, false)
    }

    /// OTHER-ADDRESS.
    pub fn other_address(&mut self, a: SocketAddr) -> &mut Self {
        self.address(AttrType::OTHER_ADDRESS, a, false)
    }

    /// USERNAME.
    pub fn username(&mut self, s: &str) -> &mut Self {
        self.attr(AttrType::USERNAME, s.as_bytes())
    }

    /// USERHASH.
    pub fn userhash(&mut self, h: &[u8; 32]) -> &mut Self {
        self.attr(AttrType::USERHASH, h)
    }

    /// REALM.
    pub fn realm(&mut self, s: &str) -> &mut Self {
        self.attr(AttrType::REALM, s.as_bytes())
    }

    /// NONCE.
    pub fn nonce(&mut self, s: &str) -> &mut Self {
        self.attr(AttrType::NONCE, s.as_bytes())
    }

    /// SOFTWARE.
    pub fn software(&mut self, s: &str) -> &mut Self {
        self.attr(AttrType::SOFTWARE, s.as_bytes())
    }

    /// ERROR-CODE with the RFC's reason phrase.
    pub fn error_code(&mut self, code: ErrorCode) -> &mut Self {
        self.error_code_with_reason(code, code.reason())
    }

    /// ERROR-CODE with a custom reason phrase.
    pub fn error_code_with_reason(&mut self, code: ErrorCode, reason: &str) -> &mut Self {
        let mut v = Vec::with_capacity(4 + reason.len());
        v.extend_from_slice(&[0, 0, (code.0 / 100) as u8, (code.0 % 100) as u8]);
        v.extend_from_slice(reason.as_bytes());
        self.attr(AttrType::ERROR_CODE, &v)
    }

    /// UNKNOWN-ATTRIBUTES.
    pub fn unknown_attributes(&mut self, list: &[AttrType]) -> &mut Self {
        let v: Vec<u8> = list.iter().flat_map(|t| t.0.to_be_bytes()).collect();
        self.attr(AttrType::UNKNOWN_ATTRIBUTES, &v)
    }

    /// PASSWORD-ALGORITHM (no parameters).
    pub fn password_algorithm(&mut self, alg: PasswordAlgorithm) -> &mut Self {
        let c = alg.code().to_be_bytes();
        self.attr(AttrType::PASSWORD_ALGORITHM, &[c[0], c[1], 0, 0])
    }

    /// PASSWORD-ALGORITHMS (no parameters).
    pub fn password_algorithms(&mut self, algs: &[PasswordAlgorithm]) -> &mut Self {
        let v: Vec<u8> = algs
            .iter()
            .flat_map(|a| {
                let c = a.code().to_be_bytes();
                [c[0], c[1], 0, 0]
            })
            .collect();
        self.attr(AttrType::PASSWORD_ALGORITHMS, &v)
    }

    /// LIFETIME.
    pub fn lifetime(&mut self, secs: u32) -> &mut Self {
        self.attr(AttrType::LIFETIME, &secs.to_be_bytes())
    }

    /// CHANNEL-NUMBER.
    pub fn channel_number(&mut self, ch: u16) -> &mut Self {
        let c = ch.to_be_bytes();
        self.attr(AttrType::CHANNEL_NUMBER, &[c[0], c[1], 0, 0])
    }

    /// DATA.
    pub fn data(&mut self, d: &[u8]) -> &mut Self {
        self.attr(AttrType::DATA, d)
    }

    /// REQUESTED-TRANSPORT.
    pub fn requested_transport(&mut self, p: RelayProtocol) -> &mut Self {
        self.attr(AttrType::REQUESTED_TRANSPORT, &[p.code(), 0, 0, 0])
    }

    /// REQUESTED-ADDRESS-FAMILY.
    pub fn requested_address_family(&mut self, f: AddressFamily) -> &mut Self {
        self.attr(AttrType::REQUESTED_ADDRESS_FAMILY, &[f.code(), 0, 0, 0])
    }

    /// EVEN-PORT, with the R bit set when `reserve_next`.
    pub fn even_port(&mut self, reserve_next: bool) -> &mut Self {
        self.attr(AttrType::EVEN_PORT, &[if reserve_next { 0x80 } else { 0 }])
    }

    /// RESERVATION-TOKEN.
    pub fn reservation_token(&mut self, t: &[u8; 8]) -> &mut Self {
        self.attr(AttrType::RESERVATION_TOKEN, t)
    }

    /// DONT-FRAGMENT.
    pub fn dont_fragment(&mut self) -> &mut Self {
        self.attr(AttrType::DONT_FRAGMENT, &[])
    }

    /// CONNECTION-ID.
    pub fn connection_id(&mut self, id: u32) -> &mut Self {
        self.attr(AttrType::CONNECTION_ID, &id.to_be_bytes())
    }

    /// MESSAGE-INTEGRITY (HMAC-SHA1 over everything so far, with the length covering this attribute).
    pub fn message_integrity(&mut self, key: &Key) -> &mut Self {
        let body_len = self.out.len() - self.start - HEADER_LEN + MI_LEN;
        let mut h = [0u8; HEADER_LEN];
        h.copy_from_slice(&self.out[self.start..self.start + HEADER_LEN]);
        h[2..4].copy_from_slice(&(body_len as u16).to_be_bytes());
        let tag = key.hmac_sha1(&[&h, &self.out[self.start + HEADER_LEN..]]);
        self.attr(AttrType::MESSAGE_INTEGRITY, tag.as_ref())
    }

    /// MESSAGE-INTEGRITY-SHA256 (full 32-byte tag).
    pub fn message_integrity_sha256(&mut self, key: &Key) -> &mut Self {
        let body_len = self.out.len() - self.start - HEADER_LEN + MI256_LEN;
        let mut h = [0u8; HEADER_LEN];
        h.copy_from_slice(&self.out[self.start..self.start + HEADER_LEN]);
        h[2..4].copy_from_slice(&(body_len as u16).to_be_bytes());
        let tag = key.hmac_sha256(&[&h, &self.out[self.start + HEADER_LEN..]]);
        self.attr(AttrType::MESSAGE_INTEGRITY_SHA256, tag.as_ref())
    }

    /// FINGERPRINT (must be last).
    pub fn fingerprint(&mut self) -> &mut Self {
        let body_len = self.out.len() - self.start - HEADER_LEN + FP_LEN;
        self.out[self.start + 2..self.start + 4].copy_from_slice(&(body_len as u16).to_be_bytes());
        let crc = fingerprint(&[&self.out[self.start..]]);
        self.attr(AttrType::FINGERPRINT, &crc.to_be_bytes())
    }

    /// Finishes the message and returns its length.
    ///
    /// # Errors
    /// [`EncodeError::TooLong`] when an attribute or the whole message exceeded the 16-bit length
    /// field; the buffer then holds a truncated message that must be discarded.
    pub fn finish(&mut self) -> Result<usize, EncodeError> {
        if self.overflow {
            return Err(EncodeError::TooLong);
        }
        Ok(self.out.len() - self.start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_type_round_trips_every_method_and_class() {
        for m in 0..0x1000u16 {
            for c in [
                Class::Request,
                Class::Indication,
                Class::Success,
                Class::Error,
            ] {
                let t = MessageType::new(Method(m), c);
                assert_eq!(MessageType::from_u16(t.to_u16()), Some(t));
            }
        }
        assert_eq!(
            MessageType::new(Method::BINDING, Class::Request).to_u16(),
            0x0001
        );
        assert_eq!(
            MessageType::new(Method::BINDING, Class::Success).to_u16(),
            0x0101
        );
        assert_eq!(
            MessageType::new(Method::BINDING, Class::Error).to_u16(),
            0x0111
        );
        assert_eq!(
            MessageType::new(Method::SEND, Class::Indication).to_u16(),
            0x0016
        );
        assert_eq!(
            MessageType::new(Method::DATA, Class::Indication).to_u16(),
            0x0017
        );
        assert_eq!(
            MessageType::new(Method::ALLOCATE, Class::Error).to_u16(),
            0x0113
        );
    }

    #[test]
    fn encode_then_decode_keeps_every_attribute() {
        let tid = TransactionId([7; 12]);
        let key = Key::long_term("u", "r", "p");
        let mut out = vec![0xAA]; // encoder appends after existing bytes
        let mut e = MessageEncoder::new(
            &mut out,
            MessageType::new(Method::ALLOCATE, Class::Request),
            tid,
        );
        e.xor_mapped_address("192.0.2.1:32853".parse().unwrap())
            .xor_peer_address("[2001:db8::1]:9".parse().unwrap())
            .username("u")
            .realm("r")
            .nonce("n")
            .lifetime(600)
            .channel_number(0x4001)
            .requested_transport(RelayProtocol::Udp)
            .requested_address_family(AddressFamily::V6)
            .even_port(true)
            .reservation_token(&[1, 2, 3, 4, 5, 6, 7, 8])
            .dont_fragment()
            .connection_id(0xDEAD_BEEF)
            .error_code(ErrorCode::STALE_NONCE)
            .password_algorithms(&[PasswordAlgorithm::Md5, PasswordAlgorithm::Sha256])
            .data(b"hello")
            .message_integrity(&key)
            .message_integrity_sha256(&key)
            .fingerprint();
        let n = e.finish().unwrap();
        assert_eq!(n, out.len() - 1);
        let m = Message::decode(&out[1..], &DecodeLimits::default()).unwrap();
        assert_eq!(m.method(), Method::ALLOCATE);
        assert_eq!(m.transaction_id(), tid);
        assert_eq!(
            m.xor_mapped_address().unwrap(),
            Some("192.0.2.1:32853".parse().unwrap())
        );
        assert_eq!(
            m.xor_peer_address().unwrap(),
            Some("[2001:db8::1]:9".parse().unwrap())
        );
        assert_eq!(m.username().unwrap(), Some("u"));
        assert_eq!(m.lifetime().unwrap(), Some(600));
        assert_eq!(m.channel_number().unwrap(), Some(0x4001));
        assert_eq!(m.requested_transport().unwrap(), Some(17));
        assert_eq!(m.requested_address_family().unwrap(), Some(2));
        assert_eq!(m.even_port().unwrap(), Some(true));
        assert_eq!(
            m.reservation_token().unwrap(),
            Some([1, 2, 3, 4, 5, 6, 7, 8])
        );
        assert!(m.has(AttrType::DONT_FRAGMENT));
        assert_eq!(m.connection_id().unwrap(), Some(0xDEAD_BEEF));
        assert_eq!(
            m.error_code().unwrap(),
            Some((ErrorCode::STALE_NONCE, "Stale Nonce"))
        );
        assert_eq!(m.password_algorithms().unwrap(), Some(vec![1, 2]));
        assert_eq!(m.data(), Some(&b"hello"[..]));
        m.verify_integrity(&key).unwrap();
        m.verify_integrity_sha256(&key).unwrap();
        assert!(m.verify_fingerprint().unwrap());
        assert_eq!(
            m.verify_integrity(&Key::long_term("u", "r", "x")),
            Err(DecodeError::IntegrityMismatch)
        );
        assert_eq!(
            m.attributes().filter(|a| a.is_ok()).count(),
            m.attribute_types().count()
        );
    }

    #[test]
    fn decode_rejects_structural_errors() {
        let l = DecodeLimits::default();
        assert_eq!(
            Message::decode(&[0; 19], &l).unwrap_err(),
            DecodeError::Truncated
        );
        let mut out = Vec::new();
        MessageEncoder::new(
            &mut out,
            MessageType::new(Method::BINDING, Class::Request),
            TransactionId([0; 12]),
        )
        .software("x")
        .finish()
        .unwrap();
        let mut bad = out.clone();
        bad[4] = 0;
        assert_eq!(
            Message::decode(&bad, &l).unwrap_err(),
            DecodeError::NoMagicCookie
        );
        let mut bad = out.clone();
        bad[0] = 0x80;
        assert_eq!(Message::decode(&bad, &l).unwrap_err(), DecodeError::NotStun);
        let mut bad = out.clone();
        bad[3] = 2;
        assert_eq!(
            Message::decode(&bad, &l).unwrap_err(),
            DecodeError::BadLength
        );
        let mut bad = out.clone();
        bad[23] = 200; // attribute length past the end
        assert!(matches!(
            Message::decode(&bad, &l).unwrap_err(),
            DecodeError::AttributeOverflow { .. }
        ));
        let tight = DecodeLimits {
            max_attributes: 0,
            ..DecodeLimits::default()
        };
        assert_eq!(
            Message::decode(&out, &tight).unwrap_err(),
            DecodeError::TooManyAttributes { max: 0 }
        );
        let mut longer = out.clone();
        longer.push(0);
        assert_eq!(
            Message::decode(&longer, &l).unwrap_err(),
            DecodeError::BadLength
        );
    }

    #[test]
    fn attributes_after_integrity_are_ignored_and_after_fingerprint_rejected() {
        let key = Key::short_term("pw");
        let mut out = Vec::new();
        let mut e = MessageEncoder::new(
            &mut out,
            MessageType::new(Method::BINDING, Class::Request),
            TransactionId([1; 12]),
        );
        e.message_integrity(&key).software("after");
        e.finish().unwrap();
        let m = Message::decode(&out, &DecodeLimits::default()).unwrap();
        assert_eq!(m.software().unwrap(), None);
        m.verify_integrity(&key).unwrap();

        let mut out = Vec::new();
        let mut e = MessageEncoder::new(
            &mut out,
            MessageType::new(Method::BINDING, Class::Request),
            TransactionId([1; 12]),
        );
        e.fingerprint().software("after");
        e.finish().unwrap();
        assert_eq!(
            Message::decode(&out, &DecodeLimits::default()).unwrap_err(),
            DecodeError::AfterFingerprint
        );
    }

    #[test]
    fn oversized_attribute_is_an_encode_error() {
        let mut out = Vec::new();
        let mut e = MessageEncoder::new(
            &mut out,
            MessageType::new(Method::SEND, Class::Indication),
            TransactionId([1; 12]),
        );
        e.data(&vec![0; 70_000]);
        assert_eq!(e.finish(), Err(EncodeError::TooLong));
        let mut out = Vec::new();
        let mut e = MessageEncoder::new(
            &mut out,
            MessageType::new(Method::SEND, Class::Indication),
            TransactionId([1; 12]),
        );
        e.data(&vec![0; 40_000]).data(&vec![0; 40_000]);
        assert_eq!(e.finish(), Err(EncodeError::TooLong));
    }
}
