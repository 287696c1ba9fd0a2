//! The crate's error type.

use crate::attr::{AttrType, ErrorCode};

/// Why bytes could not be decoded as a STUN message or ChannelData frame.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Fewer bytes than the header or the declared length.
    #[error("truncated message")]
    Truncated,
    /// The two top bits are not zero: not a STUN message.
    #[error("not a STUN message")]
    NotStun,
    /// Bytes 4..8 are not the magic cookie (an RFC 3489 message).
    #[error("no magic cookie")]
    NoMagicCookie,
    /// The length field is not a multiple of 4 or does not match the buffer.
    #[error("bad length field")]
    BadLength,
    /// Longer than the configured maximum.
    #[error("message of {len} bytes exceeds the limit of {max}")]
    TooLong {
        /// Length seen.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// More attributes than the configured maximum.
    #[error("more than {max} attributes")]
    TooManyAttributes {
        /// Limit.
        max: usize,
    },
    /// An attribute's length runs past the end of the message.
    #[error("attribute {attr:?} overflows the message")]
    AttributeOverflow {
        /// Attribute type.
        attr: AttrType,
    },
    /// An attribute's value has the wrong size or format.
    #[error("malformed attribute {attr:?}")]
    BadAttribute {
        /// Attribute type.
        attr: AttrType,
    },
    /// An attribute follows FINGERPRINT.
    #[error("attribute after FINGERPRINT")]
    AfterFingerprint,
    /// No MESSAGE-INTEGRITY(-SHA256) to check.
    #[error("no MESSAGE-INTEGRITY")]
    NoIntegrity,
    /// MESSAGE-INTEGRITY(-SHA256) does not match the key.
    #[error("MESSAGE-INTEGRITY mismatch")]
    IntegrityMismatch,
    /// FINGERPRINT does not match.
    #[error("FINGERPRINT mismatch")]
    FingerprintMismatch,
    /// ChannelData with a channel number outside 0x4000..=0x7FFF.
    #[error("bad channel number {0:#06x}")]
    BadChannel(u16),
    /// Neither STUN nor ChannelData (first two bits 10 or 11).
    #[error("unknown framing")]
    UnknownFraming,
}

/// Why a message could not be encoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// An attribute or the message exceeds the 16-bit length field.
    #[error("message too long")]
    TooLong,
}

/// Invalid configuration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A setting outside its allowed range.
    #[error("invalid configuration: {field} must be {rule}")]
    OutOfRange {
        /// The setting (or settings) at fault.
        field: &'static str,
        /// What it must be.
        rule: &'static str,
    },
    /// A setting that only works together with another.
    #[error("invalid configuration: {field} needs {needs}")]
    Requires {
        /// The setting (or operation) at fault.
        field: &'static str,
        /// What it needs besides.
        needs: &'static str,
    },
    /// A CIDR prefix longer than its address.
    #[error("CIDR prefix /{prefix} is longer than the {max}-bit address")]
    PrefixTooLong {
        /// The prefix length given.
        prefix: u8,
        /// The address width.
        max: u8,
    },
    /// Not `ADDRESS` or `ADDRESS/PREFIX`.
    #[error("not a CIDR (ADDRESS or ADDRESS/PREFIX): {input:?}")]
    NotCidr {
        /// The text given.
        input: String,
    },
}

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bytes could not be decoded.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A message could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// Invalid configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The server answered with an error response.
    #[error("server answered {code}: {reason}")]
    Response {
        /// Error code.
        code: ErrorCode,
        /// Reason phrase as sent.
        reason: String,
    },
    /// A transaction got no response before its timeout.
    #[error("transaction timed out")]
    Timeout,
    /// The operation needs an allocation and there is none.
    #[error("no allocation")]
    NoAllocation,
    /// A response lacked an attribute it must carry.
    #[error("response lacks {0:?}")]
    MissingAttribute(AttrType),
    /// The system random source failed.
    #[error("system random source failed")]
    Random,
    /// As many transactions in flight as [`crate::ClientConfig::max_transactions`] allows.
    #[error(
        "{max} transactions already in flight (ClientConfig::max_transactions): wait for answers or raise it"
    )]
    TooManyTransactions {
        /// The limit.
        max: usize,
    },
    /// Every channel number (0x4000..=0x7FFF) is bound or being bound on this allocation.
    #[error(
        "no free channel number: every one of 0x4000..=0x7FFF is bound; send with indications instead"
    )]
    NoFreeChannel,
    /// The server redirected the request (300 Try Alternate) more often than
    /// [`crate::ClientConfig::max_redirects`] allows, or the client does not follow redirects.
    #[error("redirected to {alternate} (300 Try Alternate) past ClientConfig::max_redirects")]
    Redirected {
        /// The last ALTERNATE-SERVER named.
        alternate: std::net::SocketAddr,
    },
    /// An IO error in the runtime.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The runtime task is gone.
    #[error("client closed")]
    Closed,
}

#[cfg(test)]
mod tests {
    #[test]
    fn errors_stay_small() {
        assert!(size_of::<super::DecodeError>() <= 24);
        assert!(size_of::<super::Error>() <= 48);
    }

    #[test]
    fn config_errors_name_what_to_fix() {
        use super::ConfigError;
        let server = crate::ServerConfig {
            realm: String::new(),
            ..Default::default()
        };
        let e = server.validate().unwrap_err();
        assert_eq!(
            e,
            ConfigError::OutOfRange {
                field: "realm",
                rule: "1..=763 bytes"
            }
        );
        assert_eq!(
            e.to_string(),
            "invalid configuration: realm must be 1..=763 bytes"
        );
        let client = crate::ClientConfig {
            username: Some("u".into()),
            ..Default::default()
        };
        assert!(matches!(
            client.validate(),
            Err(ConfigError::Requires {
                field: "username",
                ..
            })
        ));
        assert_eq!(
            "10.0.0.0/33".parse::<crate::policy::Cidr>().unwrap_err(),
            ConfigError::PrefixTooLong {
                prefix: 33,
                max: 32
            }
        );
        assert_eq!(
            "nonsense".parse::<crate::policy::Cidr>().unwrap_err(),
            ConfigError::NotCidr {
                input: "nonsense".into()
            }
        );
    }
}
