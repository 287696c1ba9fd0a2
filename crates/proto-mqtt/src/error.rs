//! The crate's one error type.

use std::time::Duration;

use crate::reason::ReasonCode;

/// Everything that can go wrong in this crate, one variant per cause.
///
/// A clean disconnect (either side) is not an error: it is an
/// [`Event::Disconnected`](crate::Event::Disconnected).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// [`Config::validate`](crate::Config::validate) refused the configuration.
    #[error("invalid MQTT configuration: {field} must be {rule}")]
    Config {
        /// The setting (or settings) at fault.
        field: &'static str,
        /// What it must be.
        rule: &'static str,
    },
    /// SUBSCRIBE or UNSUBSCRIBE with an empty list of filters.
    #[error("{packet} needs at least one topic filter")]
    NoFilters {
        /// `SUBSCRIBE` or `UNSUBSCRIBE`.
        packet: &'static str,
    },
    /// A packet that needs a packet identifier was given 0.
    #[error("{packet} needs a packet identifier other than 0")]
    PacketIdZero {
        /// The packet kind.
        packet: &'static str,
    },
    /// A string or binary field longer than the 65535 bytes MQTT can carry.
    #[error("a string or binary field of {len} bytes exceeds the 65535 bytes MQTT allows")]
    FieldTooLong {
        /// Its length.
        len: usize,
    },
    /// The packet encoder (mqttbytes) refused a packet.
    #[error("cannot encode the packet: {0:?}")]
    Encode(mqttbytes::Error),
    /// A topic name (for PUBLISH) is empty, has a wildcard or a NUL, or is too long.
    #[error("invalid topic name {topic:?}: {why}")]
    InvalidTopic {
        /// The topic.
        topic: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A topic filter (for SUBSCRIBE/UNSUBSCRIBE) is malformed (`+` or `#` misplaced, empty).
    #[error("invalid topic filter {filter:?}: {why}")]
    InvalidFilter {
        /// The filter.
        filter: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The server sent bytes that are not a valid MQTT packet; the session was closed with
    /// reason 0x81 (MQTT 5).
    #[error("malformed packet from the server: {0}")]
    Malformed(String),
    /// A packet is larger than allowed: an incoming one over
    /// [`Config::max_incoming_packet`](crate::Config::max_incoming_packet), or an outgoing one over the
    /// server's Maximum Packet Size.
    #[error("packet of {size} bytes exceeds the limit of {max}")]
    PacketTooLarge {
        /// Size of the packet (at least this much, for a packet whose header was read).
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The server broke the protocol; the session was closed with this reason code.
    #[error("protocol violation by the server ({reason}): {detail}")]
    Protocol {
        /// The reason code sent in DISCONNECT (MQTT 5).
        reason: ReasonCode,
        /// What happened.
        detail: String,
    },
    /// The outgoing queue holds [`Config::max_queued`](crate::Config::max_queued) messages.
    #[error("the outgoing queue is full ({0} messages)")]
    QueueFull(usize),
    /// Packet identifiers are exhausted (65535 packets in flight).
    #[error("no free packet identifier")]
    NoPacketId,
    /// The server does not allow this (CONNACK limits): QoS above Maximum QoS, retain,
    /// wildcard, shared subscriptions or subscription identifiers not available.
    #[error("not supported by the server: {0}")]
    NotSupported(ReasonCode),
    /// A feature of MQTT 5 was used on an MQTT 3.1.1 session.
    #[error("{0} needs MQTT 5")]
    NeedsV5(&'static str),
    /// The server refused the connection (CONNACK with a failure code).
    #[error("connection refused by the server: {0}")]
    Refused(ReasonCode),
    /// The session is closed (after [`crate::Client::disconnect`] or a fatal error).
    #[error("the MQTT session is closed")]
    Closed,
    /// No answer within the time given.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The URL does not parse or names an unknown scheme.
    #[error("invalid MQTT URL: {0}")]
    InvalidUrl(String),
    /// Socket error.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// TLS configuration error.
    #[error("TLS: {0}")]
    Tls(Box<ws_tls::Error>),
    /// WebSocket transport error (ws:// and wss://).
    #[error("WebSocket: {0}")]
    WebSocket(Box<ws_client::Error>),
    /// The persistent store failed.
    #[error("store: {0}")]
    Store(Box<rusqlite::Error>),
    /// The store holds a session of another protocol version or client id.
    #[error("store mismatch: {0}")]
    StoreMismatch(String),
}

impl From<ws_client::Error> for Error {
    fn from(e: ws_client::Error) -> Self {
        Self::WebSocket(Box::new(e))
    }
}

impl From<ws_tls::Error> for Error {
    fn from(e: ws_tls::Error) -> Self {
        Self::Tls(Box::new(e))
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Self::Store(Box::new(e))
    }
}

impl Error {
    /// The MQTT 5 reason code this error closes a session with, when it is one that does.
    #[must_use]
    pub fn reason_code(&self) -> Option<ReasonCode> {
        match self {
            Self::Malformed(_) => Some(ReasonCode::MALFORMED_PACKET),
            Self::PacketTooLarge { .. } => Some(ReasonCode::PACKET_TOO_LARGE),
            Self::Protocol { reason, .. } | Self::Refused(reason) | Self::NotSupported(reason) => {
                Some(*reason)
            }
            Self::InvalidTopic { .. } => Some(ReasonCode::TOPIC_NAME_INVALID),
            Self::InvalidFilter { .. } => Some(ReasonCode::TOPIC_FILTER_INVALID),
            Self::Config { .. }
            | Self::NoFilters { .. }
            | Self::PacketIdZero { .. }
            | Self::FieldTooLong { .. }
            | Self::Encode(_)
            | Self::QueueFull(_)
            | Self::NoPacketId
            | Self::NeedsV5(_)
            | Self::Closed
            | Self::Timeout(_)
            | Self::InvalidUrl(_)
            | Self::Io(_)
            | Self::Tls(_)
            | Self::WebSocket(_)
            | Self::Store(_)
            | Self::StoreMismatch(_) => None,
        }
    }

    pub(crate) fn protocol(reason: ReasonCode, detail: impl Into<String>) -> Self {
        Self::Protocol {
            reason,
            detail: detail.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_small() {
        assert!(size_of::<Error>() <= 48, "box the large variant");
    }

    #[test]
    fn reason_codes() {
        assert_eq!(
            Error::Malformed("x".into()).reason_code(),
            Some(ReasonCode::MALFORMED_PACKET)
        );
        assert_eq!(
            Error::protocol(ReasonCode::TOPIC_ALIAS_INVALID, "alias 9").reason_code(),
            Some(ReasonCode::TOPIC_ALIAS_INVALID)
        );
        assert_eq!(Error::QueueFull(3).reason_code(), None);
    }

    #[test]
    fn config_errors_name_the_setting_and_the_rule() {
        let mut c = crate::Config::default();
        c.max_incoming_packet = 10;
        let e = c.validate().unwrap_err();
        assert!(matches!(
            e,
            Error::Config {
                field: "max_incoming_packet",
                ..
            }
        ));
        assert_eq!(
            e.to_string(),
            "invalid MQTT configuration: max_incoming_packet must be at least 64 bytes"
        );
        assert_eq!(
            Error::NoFilters {
                packet: "SUBSCRIBE"
            }
            .to_string(),
            "SUBSCRIBE needs at least one topic filter"
        );
    }
}
