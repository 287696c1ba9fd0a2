//! Attribute type codes, error codes and small value types shared by the codec, client and server.

use std::fmt;

/// A STUN attribute type (the 16-bit code on the wire).
///
/// Codes below `0x8000` are comprehension-required: an agent that does not know one must reject the
/// request with 420 (Unknown Attribute).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttrType(pub u16);

impl AttrType {
    /// MAPPED-ADDRESS (RFC 8489 §14.1).
    pub const MAPPED_ADDRESS: Self = Self(0x0001);
    /// CHANGE-REQUEST (RFC 5780 §7.2).
    pub const CHANGE_REQUEST: Self = Self(0x0003);
    /// USERNAME (RFC 8489 §14.3).
    pub const USERNAME: Self = Self(0x0006);
    /// MESSAGE-INTEGRITY, HMAC-SHA1 (RFC 8489 §14.5).
    pub const MESSAGE_INTEGRITY: Self = Self(0x0008);
    /// ERROR-CODE (RFC 8489 §14.8).
    pub const ERROR_CODE: Self = Self(0x0009);
    /// UNKNOWN-ATTRIBUTES (RFC 8489 §14.9).
    pub const UNKNOWN_ATTRIBUTES: Self = Self(0x000A);
    /// CHANNEL-NUMBER (RFC 8656 §18.1).
    pub const CHANNEL_NUMBER: Self = Self(0x000C);
    /// LIFETIME (RFC 8656 §18.2).
    pub const LIFETIME: Self = Self(0x000D);
    /// XOR-PEER-ADDRESS (RFC 8656 §18.3).
    pub const XOR_PEER_ADDRESS: Self = Self(0x0012);
    /// DATA (RFC 8656 §18.4).
    pub const DATA: Self = Self(0x0013);
    /// REALM (RFC 8489 §14.9).
    pub const REALM: Self = Self(0x0014);
    /// NONCE (RFC 8489 §14.10).
    pub const NONCE: Self = Self(0x0015);
    /// XOR-RELAYED-ADDRESS (RFC 8656 §18.5).
    pub const XOR_RELAYED_ADDRESS: Self = Self(0x0016);
    /// REQUESTED-ADDRESS-FAMILY (RFC 8656 §18.6).
    pub const REQUESTED_ADDRESS_FAMILY: Self = Self(0x0017);
    /// EVEN-PORT (RFC 8656 §18.7).
    pub const EVEN_PORT: Self = Self(0x0018);
    /// REQUESTED-TRANSPORT (RFC 8656 §18.8).
    pub const REQUESTED_TRANSPORT: Self = Self(0x0019);
    /// DONT-FRAGMENT (RFC 8656 §18.9).
    pub const DONT_FRAGMENT: Self = Self(0x001A);
    /// MESSAGE-INTEGRITY-SHA256 (RFC 8489 §14.6).
    pub const MESSAGE_INTEGRITY_SHA256: Self = Self(0x001C);
    /// PASSWORD-ALGORITHM (RFC 8489 §14.12).
    pub const PASSWORD_ALGORITHM: Self = Self(0x001D);
    /// USERHASH (RFC 8489 §14.4).
    pub const USERHASH: Self = Self(0x001E);
    /// XOR-MAPPED-ADDRESS (RFC 8489 §14.2).
    pub const XOR_MAPPED_ADDRESS: Self = Self(0x0020);
    /// RESERVATION-TOKEN (RFC 8656 §18.10).
    pub const RESERVATION_TOKEN: Self = Self(0x0022);
    /// PRIORITY (RFC 8445, ICE).
    pub const PRIORITY: Self = Self(0x0024);
    /// USE-CANDIDATE (RFC 8445, ICE).
    pub const USE_CANDIDATE: Self = Self(0x0025);
    /// PADDING (RFC 5780 §7.6).
    pub const PADDING: Self = Self(0x0026);
    /// RESPONSE-PORT (RFC 5780 §7.5).
    pub const RESPONSE_PORT: Self = Self(0x0027);
    /// CONNECTION-ID (RFC 6062 §6.2.1).
    pub const CONNECTION_ID: Self = Self(0x002A);
    /// ADDITIONAL-ADDRESS-FAMILY (RFC 8656 §18.11).
    pub const ADDITIONAL_ADDRESS_FAMILY: Self = Self(0x8000);
    /// ADDRESS-ERROR-CODE (RFC 8656 §18.12).
    pub const ADDRESS_ERROR_CODE: Self = Self(0x8001);
    /// PASSWORD-ALGORITHMS (RFC 8489 §14.11).
    pub const PASSWORD_ALGORITHMS: Self = Self(0x8002);
    /// ALTERNATE-DOMAIN (RFC 8489 §14.16).
    pub const ALTERNATE_DOMAIN: Self = Self(0x8003);
    /// ICMP (RFC 8656 §18.13).
    pub const ICMP: Self = Self(0x8004);
    /// SOFTWARE (RFC 8489 §14.14).
    pub const SOFTWARE: Self = Self(0x8022);
    /// ALTERNATE-SERVER (RFC 8489 §14.15).
    pub const ALTERNATE_SERVER: Self = Self(0x8023);
    /// CACHE-TIMEOUT (RFC 5780 §7.7).
    pub const CACHE_TIMEOUT: Self = Self(0x8027);
    /// FINGERPRINT (RFC 8489 §14.7).
    pub const FINGERPRINT: Self = Self(0x8028);
    /// ICE-CONTROLLED (RFC 8445).
    pub const ICE_CONTROLLED: Self = Self(0x8029);
    /// ICE-CONTROLLING (RFC 8445).
    pub const ICE_CONTROLLING: Self = Self(0x802A);
    /// RESPONSE-ORIGIN (RFC 5780 §7.3).
    pub const RESPONSE_ORIGIN: Self = Self(0x802B);
    /// OTHER-ADDRESS (RFC 5780 §7.4).
    pub const OTHER_ADDRESS: Self = Self(0x802C);

    /// Whether an agent that does not understand this attribute must reject the message.
    pub fn is_comprehension_required(self) -> bool {
        self.0 < 0x8000
    }

    /// The RFC name, when this crate knows the code.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::MAPPED_ADDRESS => "MAPPED-ADDRESS",
            Self::CHANGE_REQUEST => "CHANGE-REQUEST",
            Self::USERNAME => "USERNAME",
            Self::MESSAGE_INTEGRITY => "MESSAGE-INTEGRITY",
            Self::ERROR_CODE => "ERROR-CODE",
            Self::UNKNOWN_ATTRIBUTES => "UNKNOWN-ATTRIBUTES",
            Self::CHANNEL_NUMBER => "CHANNEL-NUMBER",
            Self::LIFETIME => "LIFETIME",
            Self::XOR_PEER_ADDRESS => "XOR-PEER-ADDRESS",
            Self::DATA => "DATA",
            Self::REALM => "REALM",
            Self::NONCE => "NONCE",
            Self::XOR_RELAYED_ADDRESS => "XOR-RELAYED-ADDRESS",
            Self::REQUESTED_ADDRESS_FAMILY => "REQUESTED-ADDRESS-FAMILY",
            Self::EVEN_PORT => "EVEN-PORT",
            Self::REQUESTED_TRANSPORT => "REQUESTED-TRANSPORT",
            Self::DONT_FRAGMENT => "DONT-FRAGMENT",
            Self::MESSAGE_INTEGRITY_SHA256 => "MESSAGE-INTEGRITY-SHA256",
            Self::PASSWORD_ALGORITHM => "PASSWORD-ALGORITHM",
            Self::USERHASH => "USERHASH",
            Self::XOR_MAPPED_ADDRESS => "XOR-MAPPED-ADDRESS",
            Self::RESERVATION_TOKEN => "RESERVATION-TOKEN",
            Self::PRIORITY => "PRIORITY",
            Self::USE_CANDIDATE => "USE-CANDIDATE",
            Self::PADDING => "PADDING",
            Self::RESPONSE_PORT => "RESPONSE-PORT",
            Self::CONNECTION_ID => "CONNECTION-ID",
            Self::ADDITIONAL_ADDRESS_FAMILY => "ADDITIONAL-ADDRESS-FAMILY",
            Self::ADDRESS_ERROR_CODE => "ADDRESS-ERROR-CODE",
            Self::PASSWORD_ALGORITHMS => "PASSWORD-ALGORITHMS",
            Self::ALTERNATE_DOMAIN => "ALTERNATE-DOMAIN",
            Self::ICMP => "ICMP",
            Self::SOFTWARE => "SOFTWARE",
            Self::ALTERNATE_SERVER => "ALTERNATE-SERVER",
            Self::CACHE_TIMEOUT => "CACHE-TIMEOUT",
            Self::FINGERPRINT => "FINGERPRINT",
            Self::ICE_CONTROLLED => "ICE-CONTROLLED",
            Self::ICE_CONTROLLING => "ICE-CONTROLLING",
            Self::RESPONSE_ORIGIN => "RESPONSE-ORIGIN",
            Self::OTHER_ADDRESS => "OTHER-ADDRESS",
            _ => return None,
        })
    }
}

impl fmt::Debug for AttrType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "AttrType({:#06x})", self.0),
        }
    }
}

/// A STUN/TURN error code (300..=699), the numeric part of ERROR-CODE.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct ErrorCode(pub u16);

impl ErrorCode {
    /// 300 Try Alternate.
    pub const TRY_ALTERNATE: Self = Self(300);
    /// 400 Bad Request.
    pub const BAD_REQUEST: Self = Self(400);
    /// 401 Unauthenticated.
    pub const UNAUTHORIZED: Self = Self(401);
    /// 403 Forbidden.
    pub const FORBIDDEN: Self = Self(403);
    /// 420 Unknown Attribute.
    pub const UNKNOWN_ATTRIBUTE: Self = Self(420);
    /// 437 Allocation Mismatch.
    pub const ALLOCATION_MISMATCH: Self = Self(437);
    /// 438 Stale Nonce.
    pub const STALE_NONCE: Self = Self(438);
    /// 440 Address Family not Supported.
    pub const ADDRESS_FAMILY_NOT_SUPPORTED: Self = Self(440);
    /// 441 Wrong Credentials.
    pub const WRONG_CREDENTIALS: Self = Self(441);
    /// 442 Unsupported Transport Protocol.
    pub const UNSUPPORTED_TRANSPORT: Self = Self(442);
    /// 443 Peer Address Family Mismatch.
    pub const PEER_ADDRESS_FAMILY_MISMATCH: Self = Self(443);
    /// 446 Connection Already Exists (RFC 6062).
    pub const CONNECTION_ALREADY_EXISTS: Self = Self(446);
    /// 447 Connection Timeout or Failure (RFC 6062).
    pub const CONNECTION_TIMEOUT_OR_FAILURE: Self = Self(447);
    /// 486 Allocation Quota Reached.
    pub const ALLOCATION_QUOTA_REACHED: Self = Self(486);
    /// 500 Server Error.
    pub const SERVER_ERROR: Self = Self(500);
    /// 508 Insufficient Capacity.
    pub const INSUFFICIENT_CAPACITY: Self = Self(508);

    /// The reason phrase the RFCs suggest for this code.
    pub fn reason(self) -> &'static str {
        match self.0 {
            300 => "Try Alternate",
            400 => "Bad Request",
            401 => "Unauthenticated",
            403 => "Forbidden",
            420 => "Unknown Attribute",
            437 => "Allocation Mismatch",
            438 => "Stale Nonce",
            440 => "Address Family not Supported",
            441 => "Wrong Credentials",
            442 => "Unsupported Transport Protocol",
            443 => "Peer Address Family Mismatch",
            446 => "Connection Already Exists",
            447 => "Connection Timeout or Failure",
            486 => "Allocation Quota Reached",
            500 => "Server Error",
            508 => "Insufficient Capacity",
            _ => "Error",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.0, self.reason())
    }
}

/// Password algorithm of the long-term credential mechanism (RFC 8489 §18.5).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum PasswordAlgorithm {
    /// MD5(username ":" realm ":" password), the RFC 5389 key (value 0x0001).
    Md5,
    /// SHA-256(username ":" realm ":" password) (value 0x0002).
    Sha256,
}

impl PasswordAlgorithm {
    /// The 16-bit code on the wire.
    pub fn code(self) -> u16 {
        match self {
            Self::Md5 => 1,
            Self::Sha256 => 2,
        }
    }

    /// The algorithm for a wire code, if known.
    pub fn from_code(code: u16) -> Option<Self> {
        match code {
            1 => Some(Self::Md5),
            2 => Some(Self::Sha256),
            _ => None,
        }
    }
}

/// Transport protocol numbers for REQUESTED-TRANSPORT (IANA protocol numbers).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum RelayProtocol {
    /// UDP (17): RFC 8656 relays.
    Udp,
    /// TCP (6): RFC 6062 relays.
    Tcp,
}

impl RelayProtocol {
    /// The IANA protocol number.
    pub fn code(self) -> u8 {
        match self {
            Self::Udp => 17,
            Self::Tcp => 6,
        }
    }

    /// The protocol for an IANA number, if TURN supports it.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            17 => Some(Self::Udp),
            6 => Some(Self::Tcp),
            _ => None,
        }
    }
}

/// Address family codes used by address attributes and REQUESTED-ADDRESS-FAMILY.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum AddressFamily {
    /// IPv4 (0x01).
    V4,
    /// IPv6 (0x02).
    V6,
}

impl AddressFamily {
    /// The wire code.
    pub fn code(self) -> u8 {
        match self {
            Self::V4 => 1,
            Self::V6 => 2,
        }
    }

    /// The family for a wire code, if known.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::V4),
            2 => Some(Self::V6),
            _ => None,
        }
    }

    /// The family of an IP address.
    pub fn of(ip: std::net::IpAddr) -> Self {
        if ip.is_ipv4() { Self::V4 } else { Self::V6 }
    }
}
