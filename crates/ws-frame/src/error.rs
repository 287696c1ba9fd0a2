//! The crate's error type and its mapping to close codes.

use crate::close::CloseCode;

/// A violation of RFC 6455 (or RFC 7692) by the peer. Every variant fails the connection with
/// [`CloseCode::PROTOCOL`] (1002).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A 64-bit payload length with its most significant bit set.
    #[error("64-bit payload length has its most significant bit set")]
    LengthMsbSet,
    /// An opcode RFC 6455 reserves (3-7, 0xB-0xF).
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    /// RSV2 or RSV3 set, or RSV1 set without a negotiated permessage-deflate.
    #[error("reserved bit set without an extension that defines it")]
    ReservedBits,
    /// RSV1 set on a continuation or control frame (RFC 7692 section 6).
    #[error("RSV1 set on a continuation or control frame")]
    Rsv1NotOnFirstFrame,
    /// A client sent an unmasked frame.
    #[error("client frame is not masked")]
    UnmaskedFrame,
    /// A server sent a masked frame.
    #[error("server frame is masked")]
    MaskedFrame,
    /// A control frame without FIN.
    #[error("fragmented control frame")]
    FragmentedControl,
    /// A control frame with more than 125 bytes of payload.
    #[error("control frame payload of {0} bytes exceeds 125")]
    ControlTooLong(u64),
    /// A continuation frame with no message in progress.
    #[error("continuation frame without a message in progress")]
    UnexpectedContinuation,
    /// A text or binary frame while a fragmented message is in progress.
    #[error("new message started before the fragmented message ended")]
    ExpectedContinuation,
    /// A Close frame with a 1-byte payload.
    #[error("close frame payload of 1 byte")]
    CloseTooShort,
    /// A Close frame with a status code that may not be sent.
    #[error("invalid close code {0}")]
    InvalidCloseCode(u16),
}

/// A [`crate::Config`] that [`crate::Connection::new`] refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `max_frame` must be at least 125 so that every control frame fits.
    #[error("max_frame must be at least 125")]
    MaxFrameTooSmall,
    /// `max_frame` must not exceed `max_message`.
    #[error("max_frame exceeds max_message")]
    FrameExceedsMessage,
    /// `max_fragments` must be at least 1.
    #[error("max_fragments must be at least 1")]
    NoFragments,
    /// A fragment size of 0.
    #[error("fragment size must be at least 1")]
    ZeroFragmentSize,
    /// A message timeout of 0 (use `None` for no deadline).
    #[error("message_timeout must not be zero")]
    ZeroMessageTimeout,
    /// A close timeout of 0.
    #[error("close_timeout must not be zero")]
    ZeroCloseTimeout,
    /// An idle timeout of 0 (use `None` for none).
    #[error("idle_timeout must not be zero (leave it unset for none)")]
    ZeroIdleTimeout,
    /// A heartbeat interval or pong timeout of 0.
    #[error("heartbeat interval and timeout must not be zero")]
    ZeroHeartbeat,
}

/// Everything that can go wrong in this crate.
///
/// Errors returned by [`crate::Connection::poll_event`] fail the connection: a Close frame with
/// [`Error::close_code`] is queued (when that code may be sent) and no further events follow.
/// Errors returned by commands ([`crate::Connection::send`], [`crate::Connection::close`], ...)
/// reject that command only; [`Error::close_code`] then tells which code to use should the
/// application decide to fail the connection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer broke RFC 6455 or RFC 7692.
    #[error("protocol violation: {0}")]
    Protocol(#[from] ProtocolError),
    /// A text message (or close reason) that is not valid UTF-8.
    #[error("invalid UTF-8 in a text message or close reason")]
    InvalidUtf8,
    /// A compressed message that does not inflate.
    #[error("corrupt permessage-deflate data")]
    InvalidDeflate,
    /// A frame larger than [`crate::Config::max_frame`].
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// Announced payload length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// A message larger than [`crate::Config::max_message`] (after inflation).
    #[error("message exceeds the limit of {max} bytes")]
    MessageTooLarge {
        /// The limit.
        max: u64,
    },
    /// A message with more fragments than [`crate::Config::max_fragments`].
    #[error("message has more than {max} fragments")]
    TooManyFragments {
        /// The limit.
        max: u64,
    },
    /// More consecutive frames without message data than [`crate::Config::max_empty_frames`].
    #[error("more than {max} consecutive frames without message data")]
    TooManyEmptyFrames {
        /// The limit.
        max: u64,
    },
    /// A fragmented message stayed unfinished longer than [`crate::Config::message_timeout`].
    #[error("fragmented message not finished within {after:?}")]
    MessageTimeout {
        /// The timeout.
        after: std::time::Duration,
    },
    /// Nothing arrived within [`crate::Heartbeat::timeout`] of a keep-alive ping: the peer is
    /// taken for gone (no Close frame is sent; the transport should be dropped).
    #[error("heartbeat timeout: nothing received within {after:?} of a ping")]
    PongTimeout {
        /// The timeout.
        after: std::time::Duration,
    },
    /// The peer did not answer our Close frame before the close timeout.
    #[error("close handshake timed out")]
    CloseTimeout,
    /// The transport ended before the close handshake completed.
    #[error("connection ended without a close handshake")]
    UnexpectedEof,
    /// The masking-key source ([`crate::MaskSource`]) failed.
    #[error("random source failed")]
    Random,
    /// Command rejected: a Close frame was already sent or received.
    #[error("connection is closing or closed")]
    Closed,
    /// Command rejected: a fragmented message started with
    /// [`crate::Connection::send_fragment`] is still open (or none is open for a continuation).
    #[error("fragmented message state does not allow this send")]
    FragmentState,
    /// Command rejected: a control frame payload (ping, pong, close reason + 2) over 125 bytes.
    #[error("control frame payload of {len} bytes exceeds 125")]
    ControlPayloadTooLong {
        /// Requested payload length.
        len: usize,
    },
    /// Command rejected: a close code that may not be sent (see [`CloseCode::is_sendable`]).
    #[error("close code {0} may not be sent")]
    UnsendableCloseCode(u16),
    /// [`crate::Connection::new`] refused the configuration.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
}

impl Error {
    /// The close code this error stands for. When the connection fails with this error, this is
    /// the code in the Close frame it sends; [`CloseCode::ABNORMAL`] (never sent) for failures
    /// of the transport or the close handshake.
    #[must_use]
    pub const fn close_code(&self) -> CloseCode {
        match self {
            Self::Protocol(_) => CloseCode::PROTOCOL,
            Self::InvalidUtf8 | Self::InvalidDeflate => CloseCode::INVALID_PAYLOAD,
            Self::FrameTooLarge { .. }
            | Self::MessageTooLarge { .. }
            | Self::TooManyFragments { .. } => CloseCode::TOO_BIG,
            Self::TooManyEmptyFrames { .. } | Self::MessageTimeout { .. } => CloseCode::POLICY,
            Self::PongTimeout { .. } | Self::CloseTimeout | Self::UnexpectedEof | Self::Closed => {
                CloseCode::ABNORMAL
            }
            Self::Random
            | Self::FragmentState
            | Self::ControlPayloadTooLong { .. }
            | Self::UnsendableCloseCode(_)
            | Self::Config(_) => CloseCode::INTERNAL,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_small() {
        assert!(
            size_of::<Error>() <= 24,
            "Error is {} bytes: box the large variant",
            size_of::<Error>()
        );
    }

    #[test]
    fn every_error_maps_to_its_close_code() {
        let table: Vec<(Error, u16)> = vec![
            (ProtocolError::LengthMsbSet.into(), 1002),
            (ProtocolError::ReservedOpcode(3).into(), 1002),
            (ProtocolError::ReservedBits.into(), 1002),
            (ProtocolError::Rsv1NotOnFirstFrame.into(), 1002),
            (ProtocolError::UnmaskedFrame.into(), 1002),
            (ProtocolError::MaskedFrame.into(), 1002),
            (ProtocolError::FragmentedControl.into(), 1002),
            (ProtocolError::ControlTooLong(126).into(), 1002),
            (ProtocolError::UnexpectedContinuation.into(), 1002),
            (ProtocolError::ExpectedContinuation.into(), 1002),
            (ProtocolError::CloseTooShort.into(), 1002),
            (ProtocolError::InvalidCloseCode(1005).into(), 1002),
            (Error::InvalidUtf8, 1007),
            (Error::InvalidDeflate, 1007),
            (Error::FrameTooLarge { len: 2, max: 1 }, 1009),
            (Error::MessageTooLarge { max: 1 }, 1009),
            (Error::TooManyFragments { max: 1 }, 1009),
            (Error::TooManyEmptyFrames { max: 1 }, 1008),
            (
                Error::MessageTimeout {
                    after: std::time::Duration::from_secs(1),
                },
                1008,
            ),
            (
                Error::PongTimeout {
                    after: std::time::Duration::from_secs(1),
                },
                1006,
            ),
            (Error::CloseTimeout, 1006),
            (Error::UnexpectedEof, 1006),
            (Error::Closed, 1006),
            (Error::Random, 1011),
            (Error::FragmentState, 1011),
            (Error::ControlPayloadTooLong { len: 126 }, 1011),
            (Error::UnsendableCloseCode(1005), 1011),
            (ConfigError::MaxFrameTooSmall.into(), 1011),
        ];
        for (error, code) in table {
            assert_eq!(error.close_code().as_u16(), code, "{error}");
        }
    }
}
