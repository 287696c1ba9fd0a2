//! MQTT packets: one [`Packet`] type for 3.1.1 and 5, and the [`Codec`] that reads them from
//! any chunking of a byte stream and writes them.
//!
//! CONNECT, CONNACK, PUBLISH, SUBSCRIBE and UNSUBSCRIBE go through `mqttbytes` (its v4 and v5
//! modules; a 3.1.1 packet is carried in the v5 structure with no properties). The small
//! packets (the four publish acknowledgements, SUBACK, UNSUBACK, DISCONNECT, PINGREQ,
//! PINGRESP) and AUTH (type 15, which `mqttbytes` lacks) have a codec of their own here, so
//! that every reason code of the specification decodes.
//!
//! Limits come first: the fixed header is parsed and the packet size checked against
//! [`Codec::max_packet_size`] before a byte of the body is waited for or reserved, and a
//! PUBLISH topic length is checked against [`Codec::max_topic_len`] before the topic is read.
//!
//! ```
//! use bytes::BytesMut;
//! use proto_mqtt::packet::{Codec, Packet};
//! use proto_mqtt::Version;
//!
//! let codec = Codec::new(Version::V5, 1024);
//! let mut wire = BytesMut::new();
//! codec.encode(&Packet::PingResp, &mut wire)?;
//! let mut rx = BytesMut::new();
//! rx.extend_from_slice(&wire[..1]);
//! assert!(codec.decode(&mut rx)?.is_none()); // half a packet: wait for more
//! rx.extend_from_slice(&wire[1..]);
//! assert_eq!(codec.decode(&mut rx)?, Some(Packet::PingResp));
//! # Ok::<(), proto_mqtt::Error>(())
//! ```

use bytes::{Buf, BufMut, Bytes, BytesMut};
use mqttbytes::{v4, v5};

use crate::{
    error::Error,
    reason::{QoS, ReasonCode, Version},
};

pub use mqttbytes::v5::{
    ConnAckProperties, ConnectProperties, PublishProperties, SubscribeProperties,
    UnsubscribeProperties, WillProperties,
};

/// The largest packet MQTT can express (remaining length 268,435,455 plus a 5-byte header).
pub const MAX_PACKET_SIZE: usize = 268_435_460;

/// CONNECT, as sent by the client. (3.1.1: properties and will properties are not sent.)
pub type Connect = v5::Connect;
/// PUBLISH. `properties` is `None` in 3.1.1.
pub type Publish = v5::Publish;
/// SUBSCRIBE.
pub type Subscribe = v5::Subscribe;
/// One topic filter of a SUBSCRIBE, with its v5 options.
pub type SubscribeFilter = v5::SubscribeFilter;
/// UNSUBSCRIBE.
pub type Unsubscribe = v5::Unsubscribe;
/// The v5 Retain Handling subscription option.
pub type RetainHandling = v5::RetainForwardRule;

/// Reason string and user properties, the properties of acknowledgements (MQTT 5).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AckProperties {
    /// Reason String (0x1F).
    pub reason_string: Option<String>,
    /// User Properties (0x26), in order.
    pub user_properties: Vec<(String, String)>,
}

/// CONNACK.
#[derive(Clone, Debug, PartialEq)]
pub struct ConnAck {
    /// Session Present flag.
    pub session_present: bool,
    /// Reason code. A 3.1.1 return code is given as its MQTT 5 equivalent (1: 0x84,
    /// 2: 0x85, 3: 0x88, 4: 0x86, 5: 0x87), so that `is_success` means the same for both.
    pub code: ReasonCode,
    /// CONNACK properties (MQTT 5).
    pub properties: Option<ConnAckProperties>,
}

/// PUBACK, PUBREC, PUBREL or PUBCOMP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    /// Packet identifier.
    pub pkid: u16,
    /// Reason code (always Success in 3.1.1).
    pub reason: ReasonCode,
    /// Properties (MQTT 5).
    pub properties: Option<AckProperties>,
}

impl Ack {
    /// A successful acknowledgement without properties.
    #[must_use]
    pub const fn new(pkid: u16) -> Self {
        Self {
            pkid,
            reason: ReasonCode::SUCCESS,
            properties: None,
        }
    }
}

/// SUBACK or UNSUBACK.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubAck {
    /// Packet identifier.
    pub pkid: u16,
    /// One code per filter (UNSUBACK in 3.1.1 has none: the list is empty).
    pub codes: Vec<ReasonCode>,
    /// Properties (MQTT 5).
    pub properties: Option<AckProperties>,
}

/// DISCONNECT properties (MQTT 5).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DisconnectProperties {
    /// Session Expiry Interval (0x11), seconds.
    pub session_expiry_interval: Option<u32>,
    /// Reason String (0x1F).
    pub reason_string: Option<String>,
    /// User Properties (0x26).
    pub user_properties: Vec<(String, String)>,
    /// Server Reference (0x1C): another server to use.
    pub server_reference: Option<String>,
}

/// DISCONNECT (both directions in MQTT 5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disconnect {
    /// Reason code (Normal disconnection in 3.1.1).
    pub reason: ReasonCode,
    /// Properties (MQTT 5).
    pub properties: Option<DisconnectProperties>,
}

/// AUTH properties (MQTT 5 section 3.15.2.2).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthProperties {
    /// Authentication Method (0x15).
    pub method: Option<String>,
    /// Authentication Data (0x16).
    pub data: Option<Bytes>,
    /// Reason String (0x1F).
    pub reason_string: Option<String>,
    /// User Properties (0x26).
    pub user_properties: Vec<(String, String)>,
}

/// AUTH (packet type 15, MQTT 5 only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Auth {
    /// 0x00 Success, 0x18 Continue authentication or 0x19 Re-authenticate.
    pub reason: ReasonCode,
    /// Properties.
    pub properties: Option<AuthProperties>,
}

/// One MQTT control packet, either version.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Packet {
    /// CONNECT (1).
    Connect(Box<Connect>),
    /// CONNACK (2).
    ConnAck(ConnAck),
    /// PUBLISH (3).
    Publish(Publish),
    /// PUBACK (4).
    PubAck(Ack),
    /// PUBREC (5).
    PubRec(Ack),
    /// PUBREL (6).
    PubRel(Ack),
    /// PUBCOMP (7).
    PubComp(Ack),
    /// SUBSCRIBE (8).
    Subscribe(Subscribe),
    /// SUBACK (9).
    SubAck(SubAck),
    /// UNSUBSCRIBE (10).
    Unsubscribe(Unsubscribe),
    /// UNSUBACK (11).
    UnsubAck(SubAck),
    /// PINGREQ (12).
    PingReq,
    /// PINGRESP (13).
    PingResp,
    /// DISCONNECT (14).
    Disconnect(Disconnect),
    /// AUTH (15).
    Auth(Auth),
}

impl Packet {
    /// The packet's name, for messages.
    #[must_use]
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Connect(_) => "CONNECT",
            Self::ConnAck(_) => "CONNACK",
            Self::Publish(_) => "PUBLISH",
            Self::PubAck(_) => "PUBACK",
            Self::PubRec(_) => "PUBREC",
            Self::PubRel(_) => "PUBREL",
            Self::PubComp(_) => "PUBCOMP",
            Self::Subscribe(_) => "SUBSCRIBE",
            Self::SubAck(_) => "SUBACK",
            Self::Unsubscribe(_) => "UNSUBSCRIBE",
            Self::UnsubAck(_) => "UNSUBACK",
            Self::PingReq => "PINGREQ",
            Self::PingResp => "PINGRESP",
            Self::Disconnect(_) => "DISCONNECT",
            Self::Auth(_) => "AUTH",
        }
    }
}

/// Reads and writes [`Packet`]s of one protocol version.
#[derive(Clone, Debug)]
pub struct Codec {
    /// The protocol version.
    pub version: Version,
    /// Largest packet read (whole packet, header included); larger ones fail with
    /// [`Error::PacketTooLarge`] as soon as their header is read.
    pub max_packet_size: usize,
    /// Longest PUBLISH topic read. Default: [`crate::topic::MAX_TOPIC_LEN`].
    pub max_topic_len: usize,
    /// Most user properties in one packet read. Default: 64.
    pub max_user_properties: usize,
}

/// Parsed fixed header: first byte, header length, remaining length.
#[derive(Clone, Copy, Debug)]
struct Fixed {
    byte1: u8,
    header_len: usize,
    remaining: usize,
}

/// Reads the fixed header; `Ok(None)` when more bytes are needed.
fn fixed_header(src: &[u8]) -> Result<Option<Fixed>, Error> {
    let Some(&byte1) = src.first() else {
        return Ok(None);
    };
    let mut remaining = 0usize;
    for i in 0..4 {
        let Some(&b) = src.get(1 + i) else {
            return Ok(None);
        };
        remaining |= usize::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            if i > 0 && b == 0 {
                return Err(Error::Malformed(
                    "remaining length is not minimally encoded".into(),
                ));
            }
            return Ok(Some(Fixed {
                byte1,
                header_len: 2 + i,
                remaining,
            }));
        }
    }
    Err(Error::Malformed("remaining length over 4 bytes".into()))
}

fn malformed(e: mqttbytes::Error) -> Error {
    Error::Malformed(format!("{e:?}"))
}

/// MQTT 3.1.1 CONNACK return codes (0 to 5) as their MQTT 5 equivalents.
const fn v311_connack_code(code: u8) -> ReasonCode {
    match code {
        0 => ReasonCode::SUCCESS,
        1 => ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
        2 => ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
        3 => ReasonCode::SERVER_UNAVAILABLE,
        4 => ReasonCode::BAD_USER_NAME_OR_PASSWORD,
        5 => ReasonCode::NOT_AUTHORIZED,
        _ => ReasonCode::UNSPECIFIED_ERROR,
    }
}

const fn connack_code_v311(code: ReasonCode) -> u8 {
    match code.0 {
        0x00 => 0,
        0x84 => 1,
        0x85 => 2,
        0x88 => 3,
        0x86 => 4,
        _ => 5,
    }
}

/// Bounds-checked reader over a packet body.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn short() -> Error {
        Error::Malformed("packet ends early".into())
    }
    fn u8(&mut self) -> Result<u8, Error> {
        let (&b, rest) = self.0.split_first().ok_or_else(Self::short)?;
        self.0 = rest;
        Ok(b)
    }
    fn u16(&mut self) -> Result<u16, Error> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, Error> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn take(&mut self, n: usize) -> Result<&[u8], Error> {
        let (a, b) = self.0.split_at_checked(n).ok_or_else(Self::short)?;
        self.0 = b;
        Ok(a)
    }
    fn varint(&mut self) -> Result<usize, Error> {
        let mut v = 0usize;
        for i in 0..4 {
            let b = self.u8()?;
            v |= usize::from(b & 0x7F) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Error::Malformed(
            "variable byte integer over 4 bytes".into(),
        ))
    }
    fn binary(&mut self) -> Result<Bytes, Error> {
        let n = self.u16()?;
        Ok(Bytes::copy_from_slice(self.take(usize::from(n))?))
    }
    fn string(&mut self) -> Result<String, Error> {
        let n = self.u16()?;
        let b = self.take(usize::from(n))?;
        let s = std::str::from_utf8(b).map_err(|_| Error::Malformed("string not UTF-8".into()))?;
        if s.contains('\0') {
            return Err(Error::Malformed("string contains NUL".into()));
        }
        Ok(s.to_owned())
    }
}

/// The properties of the small packets, read into one structure; `allowed` lists the
/// identifiers the packet may carry.
#[derive(Default)]
struct SmallProps {
    session_expiry: Option<u32>,
    reason_string: Option<String>,
    server_reference: Option<String>,
    method: Option<String>,
    data: Option<Bytes>,
    user: Vec<(String, String)>,
}

fn read_props(r: &mut Reader<'_>, allowed: &[u8], max_user: usize) -> Result<SmallProps, Error> {
    let len = r.varint()?;
    let mut p = Reader(r.take(len)?);
    let mut out = SmallProps::default();
    let dup = |id: u8| {
        Error::protocol(
            ReasonCode::PROTOCOL_ERROR,
            format!("property {id:#x} twice"),
        )
    };
    while !p.0.is_empty() {
        let id = p.u8()?;
        if !allowed.contains(&id) {
            return Err(Error::Malformed(format!(
                "property {id:#x} not allowed here"
            )));
        }
        match id {
            0x11 => {
                let v = p.u32()?;
                if out.session_expiry.replace(v).is_some() {
                    return Err(dup(id));
                }
            }
            0x1F => {
                let v = p.string()?;
                if out.reason_string.replace(v).is_some() {
                    return Err(dup(id));
                }
            }
            0x1C => {
                let v = p.string()?;
                if out.server_reference.replace(v).is_some() {
                    return Err(dup(id));
                }
            }
            0x15 => {
                let v = p.string()?;
                if out.method.replace(v).is_some() {
                    return Err(dup(id));
                }
            }
            0x16 => {
                let v = p.binary()?;
                if out.data.replace(v).is_some() {
                    return Err(dup(id));
                }
            }
            0x26 => {
                if out.user.len() >= max_user {
                    return Err(Error::Malformed(format!(
                        "more than {max_user} user properties"
                    )));
                }
                let k = p.string()?;
                let v = p.string()?;
                out.user.push((k, v));
            }
            _ => unreachable!("filtered by allowed"),
        }
    }
    Ok(out)
}

fn varint_len(n: usize) -> usize {
    match n {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

fn put_varint(out: &mut BytesMut, mut n: usize) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.put_u8(b);
        if n == 0 {
            break;
        }
    }
}

fn put_str(out: &mut BytesMut, s: &str) -> Result<(), Error> {
    put_bin(out, s.as_bytes())
}

fn put_bin(out: &mut BytesMut, b: &[u8]) -> Result<(), Error> {
    let n = u16::try_from(b.len()).map_err(|_| Error::FieldTooLong { len: b.len() })?;
    out.put_u16(n);
    out.extend_from_slice(b);
    Ok(())
}

/// Writes a property block (length, then properties) built by `f`.
fn put_props(
    out: &mut BytesMut,
    f: impl FnOnce(&mut BytesMut) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut p = BytesMut::new();
    f(&mut p)?;
    put_varint(out, p.len());
    out.extend_from_slice(&p);
    Ok(())
}

fn put_user(p: &mut BytesMut, user: &[(String, String)]) -> Result<(), Error> {
    for (k, v) in user {
        p.put_u8(0x26);
        put_str(p, k)?;
        put_str(p, v)?;
    }
    Ok(())
}

fn put_opt_str(p: &mut BytesMut, id: u8, s: Option<&String>) -> Result<(), Error> {
    if let Some(s) = s {
        p.put_u8(id);
        put_str(p, s)?;
    }
    Ok(())
}

/// Writes a fixed header and `body`.
fn frame(out: &mut BytesMut, byte1: u8, body: &[u8]) -> Result<(), Error> {
    if body.len() > MAX_PACKET_SIZE - 5 {
        return Err(Error::PacketTooLarge {
            size: body.len(),
            max: MAX_PACKET_SIZE - 5,
        });
    }
    out.reserve(1 + varint_len(body.len()) + body.len());
    out.put_u8(byte1);
    put_varint(out, body.len());
    out.extend_from_slice(body);
    Ok(())
}

fn ack_props(p: &AckProperties) -> impl FnOnce(&mut BytesMut) -> Result<(), Error> + '_ {
    move |b| {
        put_opt_str(b, 0x1F, p.reason_string.as_ref())?;
        put_user(b, &p.user_properties)
    }
}

impl Codec {
    /// Default of [`Codec::max_user_properties`].
    pub const DEFAULT_MAX_USER_PROPERTIES: usize = 64;

    /// A codec for `version` that reads packets of at most `max_packet_size` bytes.
    #[must_use]
    pub const fn new(version: Version, max_packet_size: usize) -> Self {
        Self {
            version,
            max_packet_size,
            max_topic_len: crate::topic::MAX_TOPIC_LEN,
            max_user_properties: Self::DEFAULT_MAX_USER_PROPERTIES,
        }
    }

    const fn v5(&self) -> bool {
        matches!(self.version, Version::V5)
    }

    /// Takes one packet from the front of `buf`. `Ok(None)`: incomplete, call again with more
    /// bytes (room for the rest of the packet is reserved once its size passed the limit).
    /// Never panics on any input.
    ///
    /// # Errors
    /// [`Error::PacketTooLarge`] when the header announces a packet over
    /// [`Codec::max_packet_size`]; [`Error::Malformed`] or [`Error::Protocol`] for invalid
    /// packets. After an error the stream cannot be resynchronised: close the connection.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Packet>, Error> {
        let Some(h) = fixed_header(buf)? else {
            return Ok(None);
        };
        let total = h.header_len + h.remaining;
        if total > self.max_packet_size {
            return Err(Error::PacketTooLarge {
                size: total,
                max: self.max_packet_size,
            });
        }
        if buf.len() < total {
            buf.reserve(total - buf.len());
            return Ok(None);
        }
        let kind = h.byte1 >> 4;
        let flags = h.byte1 & 0x0F;
        // Limits on the PUBLISH topic before anything is read.
        if kind == 3 {
            let body = &buf[h.header_len..total];
            if body.len() >= 2 {
                let n = usize::from(u16::from_be_bytes([body[0], body[1]]));
                if n > self.max_topic_len {
                    return Err(Error::protocol(
                        ReasonCode::TOPIC_NAME_INVALID,
                        format!("topic of {n} bytes (limit {})", self.max_topic_len),
                    ));
                }
            }
        }
        let expected_flags = match kind {
            3 => flags,
            6 | 8 | 10 => 0b0010,
            _ => 0,
        };
        if flags != expected_flags {
            return Err(Error::Malformed(format!(
                "packet type {kind} with flags {flags:#06b}"
            )));
        }
        match kind {
            1 | 2 | 3 | 8 | 10 => self.decode_mqttbytes(buf, kind),
            _ => {
                let packet = buf.split_to(total).freeze();
                let mut r = Reader(&packet[h.header_len..]);
                let p = self.decode_small(kind, &mut r)?;
                if !r.0.is_empty() {
                    return Err(Error::Malformed(format!(
                        "{} bytes after the end of a type {kind} packet",
                        r.0.len()
                    )));
                }
                Ok(Some(p))
            }
        }
    }

    fn decode_mqttbytes(&self, buf: &mut BytesMut, kind: u8) -> Result<Option<Packet>, Error> {
        let max = self.max_packet_size;
        let p = if self.v5() {
            match v5::read(buf, max).map_err(malformed)? {
                v5::Packet::Connect(c) => Packet::Connect(Box::new(c)),
                v5::Packet::ConnAck(c) => Packet::ConnAck(ConnAck {
                    session_present: c.session_present,
                    code: ReasonCode(c.code as u8),
                    properties: c.properties,
                }),
                v5::Packet::Publish(p) => Packet::Publish(p),
                v5::Packet::Subscribe(s) => Packet::Subscribe(s),
                v5::Packet::Unsubscribe(u) => Packet::Unsubscribe(u),
                other => {
                    return Err(Error::Malformed(format!(
                        "type {kind} decoded as {other:?}"
                    )));
                }
            }
        } else {
            match v4::read(buf, max).map_err(malformed)? {
                v4::Packet::Connect(c) => Packet::Connect(Box::new(v5::Connect {
                    protocol: mqttbytes::Protocol::V4,
                    keep_alive: c.keep_alive,
                    client_id: c.client_id,
                    clean_session: c.clean_session,
                    last_will: c.last_will.map(|w| v5::LastWill {
                        topic: w.topic,
                        message: w.message,
                        qos: w.qos,
                        retain: w.retain,
                        properties: None,
                    }),
                    login: c.login.map(|l| v5::Login {
                        username: l.username,
                        password: l.password,
                    }),
                    properties: None,
                })),
                v4::Packet::ConnAck(c) => Packet::ConnAck(ConnAck {
                    session_present: c.session_present,
                    code: v311_connack_code(c.code as u8),
                    properties: None,
                }),
                v4::Packet::Publish(p) => Packet::Publish(v5::Publish {
                    dup: p.dup,
                    qos: p.qos,
                    retain: p.retain,
                    topic: p.topic,
                    pkid: p.pkid,
                    properties: None,
                    payload: p.payload,
                }),
                v4::Packet::Subscribe(s) => Packet::Subscribe(v5::Subscribe {
                    pkid: s.pkid,
                    filters: s
                        .filters
                        .into_iter()
                        .map(|f| v5::SubscribeFilter::new(f.path, f.qos))
                        .collect(),
                    properties: None,
                }),
                v4::Packet::Unsubscribe(u) => Packet::Unsubscribe(v5::Unsubscribe {
                    pkid: u.pkid,
                    filters: u.topics,
                    properties: None,
                }),
                other => {
                    return Err(Error::Malformed(format!(
                        "type {kind} decoded as {other:?}"
                    )));
                }
            }
        };
        if let Packet::Publish(p) = &p {
            if let Some(props) = &p.properties {
                if props.user_properties.len() > self.max_user_properties {
                    return Err(Error::Malformed("too many user properties".into()));
                }
            }
        }
        Ok(Some(p))
    }

    fn decode_small(&self, kind: u8, r: &mut Reader<'_>) -> Result<Packet, Error> {
        let v5 = self.v5();
        let mu = self.max_user_properties;
        Ok(match kind {
            4..=7 => {
                let pkid = r.u16()?;
                if pkid == 0 {
                    return Err(Error::Malformed("packet identifier 0".into()));
                }
                let mut ack = Ack::new(pkid);
                if v5 && !r.0.is_empty() {
                    ack.reason = ReasonCode(r.u8()?);
                    if !r.0.is_empty() {
                        let p = read_props(r, &[0x1F, 0x26], mu)?;
                        ack.properties = Some(AckProperties {
                            reason_string: p.reason_string,
                            user_properties: p.user,
                        });
                    }
                }
                match kind {
                    4 => Packet::PubAck(ack),
                    5 => Packet::PubRec(ack),
                    6 => Packet::PubRel(ack),
                    _ => Packet::PubComp(ack),
                }
            }
            9 | 11 => {
                let pkid = r.u16()?;
                let properties = if v5 {
                    let p = read_props(r, &[0x1F, 0x26], mu)?;
                    Some(AckProperties {
                        reason_string: p.reason_string,
                        user_properties: p.user,
                    })
                } else {
                    None
                };
                let codes: Vec<ReasonCode> = r.0.iter().copied().map(ReasonCode).collect();
                r.0 = &[];
                if (kind == 9 || v5) && codes.is_empty() {
                    return Err(Error::protocol(
                        ReasonCode::PROTOCOL_ERROR,
                        "SUBACK/UNSUBACK without codes",
                    ));
                }
                let ack = SubAck {
                    pkid,
                    codes,
                    properties,
                };
                if kind == 9 {
                    Packet::SubAck(ack)
                } else {
                    Packet::UnsubAck(ack)
                }
            }
            12 | 13 => {
                if !r.0.is_empty() {
                    return Err(Error::Malformed("PINGREQ/PINGRESP with a body".into()));
                }
                if kind == 12 {
                    Packet::PingReq
                } else {
                    Packet::PingResp
                }
            }
            14 => {
                let mut d = Disconnect {
                    reason: ReasonCode::SUCCESS,
                    properties: None,
                };
                if v5 && !r.0.is_empty() {
                    d.reason = ReasonCode(r.u8()?);
                    if !r.0.is_empty() {
                        let p = read_props(r, &[0x11, 0x1F, 0x26, 0x1C], mu)?;
                        d.properties = Some(DisconnectProperties {
                            session_expiry_interval: p.session_expiry,
                            reason_string: p.reason_string,
                            user_properties: p.user,
                            server_reference: p.server_reference,
                        });
                    }
                }
                Packet::Disconnect(d)
            }
            15 if v5 => {
                let mut a = Auth {
                    reason: ReasonCode::SUCCESS,
                    properties: None,
                };
                if !r.0.is_empty() {
                    a.reason = ReasonCode(r.u8()?);
                    if !matches!(a.reason.0, 0x00 | 0x18 | 0x19) {
                        return Err(Error::Malformed(format!("AUTH reason {}", a.reason)));
                    }
                    if !r.0.is_empty() {
                        let p = read_props(r, &[0x15, 0x16, 0x1F, 0x26], mu)?;
                        a.properties = Some(AuthProperties {
                            method: p.method,
                            data: p.data,
                            reason_string: p.reason_string,
                            user_properties: p.user,
                        });
                    }
                }
                Packet::Auth(a)
            }
            _ => return Err(Error::Malformed(format!("packet type {kind}"))),
        })
    }

    /// Appends `packet` to `out`.
    ///
    /// # Errors
    /// [`Error::NeedsV5`] for AUTH on 3.1.1; [`Error::PacketTooLarge`] beyond what MQTT can
    /// express; [`Error::FieldTooLong`] for strings over 65535 bytes; [`Error::PacketIdZero`]
    /// for a packet identifier of 0 where one is needed; [`Error::Encode`] when mqttbytes
    /// refuses the packet. `out` is unchanged on error.
    pub fn encode(&self, packet: &Packet, out: &mut BytesMut) -> Result<(), Error> {
        let start = out.len();
        let r = self.encode_inner(packet, out);
        if r.is_err() {
            out.truncate(start);
        }
        r
    }

    fn encode_inner(&self, packet: &Packet, out: &mut BytesMut) -> Result<(), Error> {
        let v5 = self.v5();
        let mb = Error::Encode;
        match packet {
            // mqttbytes' CONNECT writer patches its flags at an absolute offset: give it an
            // empty buffer.
            Packet::Connect(c) => {
                let mut tmp = BytesMut::new();
                if v5 {
                    let mut c = (**c).clone();
                    c.protocol = mqttbytes::Protocol::V5;
                    c.write(&mut tmp).map_err(mb)?;
                } else {
                    v4::Connect {
                        protocol: mqttbytes::Protocol::V4,
                        keep_alive: c.keep_alive,
                        client_id: c.client_id.clone(),
                        clean_session: c.clean_session,
                        last_will: c.last_will.as_ref().map(|w| v4::LastWill {
                            topic: w.topic.clone(),
                            message: w.message.clone(),
                            qos: w.qos,
                            retain: w.retain,
                        }),
                        login: c.login.as_ref().map(|l| v4::Login {
                            username: l.username.clone(),
                            password: l.password.clone(),
                        }),
                    }
                    .write(&mut tmp)
                    .map_err(mb)?;
                }
                out.extend_from_slice(&tmp);
            }
            Packet::ConnAck(c) => {
                let mut body = BytesMut::new();
                body.put_u8(u8::from(c.session_present));
                body.put_u8(if v5 {
                    c.code.0
                } else {
                    connack_code_v311(c.code)
                });
                if v5 {
                    let mut tmp = BytesMut::new();
                    let mut ack = v5::ConnAck::new(v5::ConnectReturnCode::Success, false);
                    ack.properties.clone_from(&c.properties);
                    ack.write(&mut tmp).map_err(mb)?;
                    // Reuse mqttbytes' property writer: skip its fixed header and 2 bytes.
                    let h = fixed_header(&tmp)?
                        .ok_or(Error::Encode(mqttbytes::Error::MalformedPacket))?;
                    body.extend_from_slice(&tmp[h.header_len + 2..]);
                    if c.properties.is_none() {
                        body.put_u8(0); // property length
                    }
                }
                frame(out, 0x20, &body)?;
            }
            Packet::Publish(p) => {
                if p.qos != mqttbytes::QoS::AtMostOnce && p.pkid == 0 {
                    return Err(Error::PacketIdZero {
                        packet: "PUBLISH with QoS > 0",
                    });
                }
                if v5 {
                    p.write(out).map_err(mb)?;
                } else {
                    v4::Publish {
                        dup: p.dup,
                        qos: p.qos,
                        retain: p.retain,
                        topic: p.topic.clone(),
                        pkid: p.pkid,
                        payload: p.payload.clone(),
                    }
                    .write(out)
                    .map_err(mb)?;
                }
            }
            Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => {
                let byte1 = match packet {
                    Packet::PubAck(_) => 0x40,
                    Packet::PubRec(_) => 0x50,
                    Packet::PubRel(_) => 0x62,
                    _ => 0x70,
                };
                if a.pkid == 0 {
                    return Err(Error::PacketIdZero {
                        packet: "an acknowledgement",
                    });
                }
                let mut body = BytesMut::with_capacity(4);
                body.put_u16(a.pkid);
                if v5 && (a.reason != ReasonCode::SUCCESS || a.properties.is_some()) {
                    body.put_u8(a.reason.0);
                    if let Some(p) = &a.properties {
                        put_props(&mut body, ack_props(p))?;
                    }
                }
                frame(out, byte1, &body)?;
            }
            Packet::Subscribe(s) => {
                if v5 {
                    s.write(out).map_err(mb)?;
                } else {
                    v4::Subscribe {
                        pkid: s.pkid,
                        filters: s
                            .filters
                            .iter()
                            .map(|f| v4::SubscribeFilter::new(f.path.clone(), f.qos))
                            .collect(),
                    }
                    .write(out)
                    .map_err(mb)?;
                }
            }
            Packet::Unsubscribe(u) => {
                if v5 {
                    u.write(out).map_err(mb)?;
                } else {
                    v4::Unsubscribe {
                        pkid: u.pkid,
                        topics: u.filters.clone(),
                    }
                    .write(out)
                    .map_err(mb)?;
                }
            }
            Packet::SubAck(s) | Packet::UnsubAck(s) => {
                let mut body = BytesMut::new();
                body.put_u16(s.pkid);
                if v5 {
                    let empty = AckProperties::default();
                    put_props(
                        &mut body,
                        ack_props(s.properties.as_ref().unwrap_or(&empty)),
                    )?;
                }
                if v5 || matches!(packet, Packet::SubAck(_)) {
                    body.extend(s.codes.iter().map(|c| c.0));
                }
                let byte1 = if matches!(packet, Packet::SubAck(_)) {
                    0x90
                } else {
                    0xB0
                };
                frame(out, byte1, &body)?;
            }
            Packet::PingReq => frame(out, 0xC0, &[])?,
            Packet::PingResp => frame(out, 0xD0, &[])?,
            Packet::Disconnect(d) => {
                let mut body = BytesMut::new();
                if v5 && (d.reason != ReasonCode::SUCCESS || d.properties.is_some()) {
                    body.put_u8(d.reason.0);
                    if let Some(p) = &d.properties {
                        put_props(&mut body, |b| {
                            if let Some(s) = p.session_expiry_interval {
                                b.put_u8(0x11);
                                b.put_u32(s);
                            }
                            put_opt_str(b, 0x1F, p.reason_string.as_ref())?;
                            put_user(b, &p.user_properties)?;
                            put_opt_str(b, 0x1C, p.server_reference.as_ref())
                        })?;
                    }
                }
                frame(out, 0xE0, &body)?;
            }
            Packet::Auth(a) => {
                if !v5 {
                    return Err(Error::NeedsV5("AUTH"));
                }
                let mut body = BytesMut::new();
                if a.reason != ReasonCode::SUCCESS || a.properties.is_some() {
                    body.put_u8(a.reason.0);
                    if let Some(p) = &a.properties {
                        put_props(&mut body, |b| {
                            put_opt_str(b, 0x15, p.method.as_ref())?;
                            if let Some(d) = &p.data {
                                b.put_u8(0x16);
                                put_bin(b, d)?;
                            }
                            put_opt_str(b, 0x1F, p.reason_string.as_ref())?;
                            put_user(b, &p.user_properties)
                        })?;
                    }
                }
                frame(out, 0xF0, &body)?;
            }
        }
        Ok(())
    }
}

/// Size of `packet` once encoded.
///
/// # Errors
/// As [`Codec::encode`].
pub fn encoded_len(codec: &Codec, packet: &Packet) -> Result<usize, Error> {
    let mut b = BytesMut::new();
    codec.encode(packet, &mut b)?;
    Ok(b.len())
}

/// A new PUBLISH.
#[must_use]
pub fn publish(topic: impl Into<String>, qos: QoS, payload: impl Into<Bytes>) -> Publish {
    v5::Publish::from_bytes(topic, qos.to_mqttbytes(), payload.into())
}

/// A SUBSCRIBE filter at `qos` with the default v5 options (set `nolocal`,
/// `preserve_retain` and `retain_forward_rule` on the result to change them).
#[must_use]
pub fn subscribe_filter(path: impl Into<String>, qos: QoS) -> SubscribeFilter {
    v5::SubscribeFilter::new(path.into(), qos.to_mqttbytes())
}

/// User properties from the seeds' text form `"name=value,name2=value2"` (names and values
/// trimmed; a pair without `=` gets an empty value; empty items are skipped).
///
/// ```
/// let p = proto_mqtt::packet::user_properties("Temp=21, Humidity=55,flag");
/// assert_eq!(p, vec![("Temp".into(), "21".into()), ("Humidity".into(), "55".into()), ("flag".into(), String::new())]);
/// ```
#[must_use]
pub fn user_properties(text: &str) -> Vec<(String, String)> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| match item.split_once('=') {
            Some((k, v)) => (k.trim().to_owned(), v.trim().to_owned()),
            None => (item.to_owned(), String::new()),
        })
        .collect()
}

/// Skips a complete packet of unknown content at the front of `buf` (for tests and fuzzing).
#[doc(hidden)]
pub fn skip_packet(buf: &mut BytesMut) -> bool {
    match fixed_header(buf) {
        Ok(Some(h)) if buf.len() >= h.header_len + h.remaining => {
            buf.advance(h.header_len + h.remaining);
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(version: Version, p: &Packet) -> Packet {
        let c = Codec::new(version, MAX_PACKET_SIZE);
        let mut b = BytesMut::new();
        c.encode(p, &mut b).unwrap();
        let mut rx = BytesMut::new();
        // one byte at a time: any chunking works
        let mut got = None;
        for (i, byte) in b.iter().enumerate() {
            rx.put_u8(*byte);
            if let Some(p) = c.decode(&mut rx).unwrap() {
                assert_eq!(i, b.len() - 1, "decoded before the last byte");
                got = Some(p);
            }
        }
        assert!(rx.is_empty());
        got.expect("decoded")
    }

    #[test]
    fn small_packets_roundtrip_both_versions() {
        let mut props = AckProperties::default();
        props.reason_string = Some("why".into());
        props.user_properties.push(("k".into(), "v".into()));
        let v5_only = [
            Packet::PubAck(Ack {
                pkid: 7,
                reason: ReasonCode::NO_MATCHING_SUBSCRIBERS,
                properties: Some(props.clone()),
            }),
            Packet::PubRec(Ack {
                pkid: 8,
                reason: ReasonCode(0x97),
                properties: None,
            }),
            Packet::Disconnect(Disconnect {
                reason: ReasonCode::SERVER_MOVED,
                properties: Some(DisconnectProperties {
                    session_expiry_interval: Some(5),
                    reason_string: Some("bye".into()),
                    user_properties: vec![("a".into(), "b".into())],
                    server_reference: Some("other:1883".into()),
                }),
            }),
            Packet::Auth(Auth {
                reason: ReasonCode::CONTINUE_AUTHENTICATION,
                properties: Some(AuthProperties {
                    method: Some("SCRAM-SHA-1".into()),
                    data: Some(Bytes::from_static(b"n,,n=user,r=abc")),
                    reason_string: None,
                    user_properties: vec![],
                }),
            }),
            Packet::SubAck(SubAck {
                pkid: 3,
                codes: vec![ReasonCode(1), ReasonCode::NOT_AUTHORIZED],
                properties: Some(props),
            }),
        ];
        for p in &v5_only {
            assert_eq!(&roundtrip(Version::V5, p), p);
        }
        for p in [
            Packet::PubAck(Ack::new(1)),
            Packet::PubRec(Ack::new(2)),
            Packet::PubRel(Ack::new(3)),
            Packet::PubComp(Ack::new(65535)),
            Packet::PingReq,
            Packet::PingResp,
            Packet::Disconnect(Disconnect {
                reason: ReasonCode::SUCCESS,
                properties: None,
            }),
            Packet::SubAck(SubAck {
                pkid: 3,
                codes: vec![ReasonCode(1), ReasonCode(0x80)],
                properties: None,
            }),
            Packet::UnsubAck(SubAck {
                pkid: 4,
                codes: vec![],
                properties: None,
            }),
        ] {
            assert_eq!(roundtrip(Version::V311, &p), p);
        }
    }

    #[test]
    fn auth_bytes_match_the_spec_layout() {
        // Hand-assembled per MQTT 5 section 3.15: type 15, reason 0x18, properties
        // (method "M", data 0x01 0x02).
        let wire = [
            0xF0, 0x0B, 0x18, 0x09, 0x15, 0x00, 0x01, b'M', 0x16, 0x00, 0x02, 0x01, 0x02,
        ];
        let c = Codec::new(Version::V5, 1024);
        let p = Packet::Auth(Auth {
            reason: ReasonCode::CONTINUE_AUTHENTICATION,
            properties: Some(AuthProperties {
                method: Some("M".into()),
                data: Some(Bytes::from_static(&[1, 2])),
                ..AuthProperties::default()
            }),
        });
        let mut b = BytesMut::new();
        c.encode(&p, &mut b).unwrap();
        assert_eq!(&b[..], &wire[..]);
        // AUTH with remaining length 0 is Success.
        let mut rx = BytesMut::from(&[0xF0, 0x00][..]);
        assert_eq!(
            c.decode(&mut rx).unwrap(),
            Some(Packet::Auth(Auth {
                reason: ReasonCode::SUCCESS,
                properties: None
            }))
        );
        // Not in 3.1.1.
        let c4 = Codec::new(Version::V311, 1024);
        assert!(c4.decode(&mut BytesMut::from(&wire[..])).is_err());
        assert!(matches!(c4.encode(&p, &mut b), Err(Error::NeedsV5(_))));
    }

    #[test]
    fn publish_connect_subscribe_roundtrip() {
        for v in [Version::V311, Version::V5] {
            let mut p = publish("a/b", QoS::ExactlyOnce, Bytes::from_static(b"hello"));
            p.pkid = 9;
            p.retain = true;
            if v == Version::V5 {
                let mut props = PublishProperties {
                    payload_format_indicator: Some(1),
                    message_expiry_interval: Some(60),
                    topic_alias: None,
                    response_topic: Some("r".into()),
                    correlation_data: Some(Bytes::from_static(b"c")),
                    user_properties: vec![("k".into(), "v".into())],
                    subscription_identifiers: vec![],
                    content_type: Some("text/plain".into()),
                };
                props.topic_alias = Some(3);
                p.properties = Some(props);
            }
            assert_eq!(
                roundtrip(v, &Packet::Publish(p.clone())),
                Packet::Publish(p)
            );

            let mut c = v5::Connect::new("id-1");
            c.keep_alive = 30;
            c.clean_session = true;
            c.set_login("u", "p");
            if v == Version::V311 {
                c.protocol = mqttbytes::Protocol::V4;
            }
            let got = roundtrip(v, &Packet::Connect(Box::new(c.clone())));
            let Packet::Connect(got) = got else { panic!() };
            assert_eq!(got.client_id, "id-1");
            assert_eq!(got.login, c.login);

            let mut s = v5::Subscribe::new("x/#", mqttbytes::QoS::AtLeastOnce);
            s.pkid = 5;
            assert_eq!(
                roundtrip(v, &Packet::Subscribe(s.clone())),
                Packet::Subscribe(s)
            );

            let ca = ConnAck {
                session_present: true,
                code: ReasonCode::SUCCESS,
                properties: None,
            };
            assert_eq!(
                roundtrip(v, &Packet::ConnAck(ca.clone())),
                Packet::ConnAck(ca)
            );
        }
        let mut props = ConnAckProperties::new();
        props.receive_max = Some(2);
        props.topic_alias_max = Some(4);
        let ca = ConnAck {
            session_present: false,
            code: ReasonCode::SUCCESS,
            properties: Some(props),
        };
        assert_eq!(
            roundtrip(Version::V5, &Packet::ConnAck(ca.clone())),
            Packet::ConnAck(ca)
        );
    }

    #[test]
    fn several_packets_in_one_chunk() {
        let c = Codec::new(Version::V5, 1024);
        let mut b = BytesMut::new();
        c.encode(&Packet::PingResp, &mut b).unwrap();
        c.encode(&Packet::PubAck(Ack::new(1)), &mut b).unwrap();
        c.encode(&Packet::PingResp, &mut b).unwrap();
        b.extend_from_slice(&[0x40]); // start of a fourth
        assert_eq!(c.decode(&mut b).unwrap(), Some(Packet::PingResp));
        assert_eq!(c.decode(&mut b).unwrap(), Some(Packet::PubAck(Ack::new(1))));
        assert_eq!(c.decode(&mut b).unwrap(), Some(Packet::PingResp));
        assert_eq!(c.decode(&mut b).unwrap(), None);
        assert_eq!(&b[..], &[0x40]);
    }

    #[test]
    fn limits_are_checked_from_the_header() {
        let c = Codec::new(Version::V5, 100);
        // A PUBLISH announcing 200 MB: refused from its 5 header bytes, nothing reserved.
        let mut b = BytesMut::from(&[0x30, 0xFF, 0xFF, 0xFF, 0x5F][..]);
        let cap = b.capacity();
        assert!(matches!(
            c.decode(&mut b),
            Err(Error::PacketTooLarge {
                size: 201_326_596,
                max: 100
            })
        ));
        assert_eq!(b.capacity(), cap);
        // A remaining length of 5 bytes.
        let mut b = BytesMut::from(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01][..]);
        assert!(matches!(c.decode(&mut b), Err(Error::Malformed(_))));
        // Topic longer than allowed.
        let mut c2 = Codec::new(Version::V5, 1000);
        c2.max_topic_len = 3;
        let mut b = BytesMut::new();
        c2.encode(
            &Packet::Publish(publish("abcd", QoS::AtMostOnce, Bytes::new())),
            &mut b,
        )
        .unwrap();
        assert!(matches!(
            c2.decode(&mut b),
            Err(Error::Protocol {
                reason: ReasonCode::TOPIC_NAME_INVALID,
                ..
            })
        ));
    }

    #[test]
    fn malformed_small_packets() {
        let c = Codec::new(Version::V5, 1024);
        for bad in [
            &[0x40, 0x02, 0x00, 0x00][..],             // pkid 0
            &[0x62 & 0xF0, 0x02, 0x00, 0x01][..],      // PUBREL without its flags
            &[0xD0, 0x01, 0x00][..],                   // PINGRESP with a body
            &[0x40, 0x04, 0x00, 0x01, 0x00, 0x05][..], // property length past the end
            &[0x00, 0x00][..],                         // type 0
            &[0xF0, 0x01, 0x05][..],                   // AUTH with a bad reason
            &[0xE0, 0x04, 0x00, 0x02, 0x15, 0x00][..], // DISCONNECT with an AUTH property
        ] {
            let mut b = BytesMut::from(bad);
            assert!(c.decode(&mut b).is_err(), "{bad:02x?}");
        }
        // Duplicate reason string: protocol error.
        let mut b = BytesMut::from(
            &[
                0x40, 0x0A, 0x00, 0x01, 0x00, 0x06, 0x1F, 0x00, 0x00, 0x1F, 0x00, 0x00,
            ][..],
        );
        assert!(matches!(c.decode(&mut b), Err(Error::Protocol { .. })));
    }
}
