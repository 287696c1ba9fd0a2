//! The crate's error type and the wire's error codes.

/// Error codes carried by `refuse`, `error` and `cancel` (docs/files-protocol.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Code {
    /// 1: malformed message.
    Malformed,
    /// 2: invalid file name.
    InvalidName,
    /// 3: file size or chunk over the limit.
    TooLarge,
    /// 4: offset or chunk past the file size, or a chunk over the offered chunk size.
    OutOfRange,
    /// 5: out-of-order chunk.
    OutOfOrder,
    /// 6: duplicate chunk.
    Duplicate,
    /// 7: size or name changed for a known file id.
    Changed,
    /// 8: SHA-256 mismatch.
    Checksum,
    /// 9: timeout.
    Timeout,
    /// 10: storage error on the receiver.
    Storage,
    /// 11: unknown file id.
    UnknownFile,
    /// 12: refused by the receiver's authorization hook.
    Refused,
    /// 13: too many transfers.
    Busy,
    /// 14: unsupported version or QoS.
    Unsupported,
    /// 15: cancelled.
    Cancelled,
    /// 16: a message not valid in the current state.
    Violation,
    /// Any other value received from a peer.
    Other(u16),
}

impl Code {
    /// The wire value.
    #[must_use]
    pub fn as_u16(self) -> u16 {
        match self {
            Self::Malformed => 1,
            Self::InvalidName => 2,
            Self::TooLarge => 3,
            Self::OutOfRange => 4,
            Self::OutOfOrder => 5,
            Self::Duplicate => 6,
            Self::Changed => 7,
            Self::Checksum => 8,
            Self::Timeout => 9,
            Self::Storage => 10,
            Self::UnknownFile => 11,
            Self::Refused => 12,
            Self::Busy => 13,
            Self::Unsupported => 14,
            Self::Cancelled => 15,
            Self::Violation => 16,
            Self::Other(v) => v,
        }
    }

    /// From the wire value.
    #[must_use]
    pub fn from_u16(v: u16) -> Self {
        match v {
            1 => Self::Malformed,
            2 => Self::InvalidName,
            3 => Self::TooLarge,
            4 => Self::OutOfRange,
            5 => Self::OutOfOrder,
            6 => Self::Duplicate,
            7 => Self::Changed,
            8 => Self::Checksum,
            9 => Self::Timeout,
            10 => Self::Storage,
            11 => Self::UnknownFile,
            12 => Self::Refused,
            13 => Self::Busy,
            14 => Self::Unsupported,
            15 => Self::Cancelled,
            16 => Self::Violation,
            v => Self::Other(v),
        }
    }
}

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// This side detected a problem (a hostile or broken peer, a limit, a timeout); the peer
    /// is told with `error` (or `refuse`) carrying `code`.
    #[error("{message} (code {})", code.as_u16())]
    Protocol {
        /// Wire code.
        code: Code,
        /// Human-readable detail.
        message: String,
    },
    /// The peer ended the transfer with `refuse`, `error` or `cancel`.
    #[error("the peer ended the transfer: {message} (code {})", code.as_u16())]
    Remote {
        /// Wire code it sent.
        code: Code,
        /// Its text.
        message: String,
    },
    /// An invalid configuration or argument.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Reading or writing a file failed.
    #[error("file I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The metadata store failed or holds an unreadable row (the text names the database and
    /// the file id, and what to delete to start over).
    #[error("metadata store: {0}")]
    Store(String),
    /// The connection ended before the transfer did.
    #[error("the connection closed during the transfer")]
    Closed,
    /// The WebSocket server failed to send.
    #[cfg(feature = "runtime")]
    #[error("websocket server: {0}")]
    Server(#[from] ws_server::Error),
    /// The WebSocket client failed.
    #[cfg(feature = "runtime")]
    #[error("websocket client: {0}")]
    Client(#[from] ws_client::Error),
    /// A tus request failed (the HTTP status and the server's text).
    #[error("tus: HTTP {status}: {message}")]
    Tus {
        /// HTTP status.
        status: u16,
        /// Detail.
        message: String,
    },
}

impl Error {
    /// A local protocol error.
    pub(crate) fn proto(code: Code, message: impl Into<String>) -> Self {
        Self::Protocol {
            code,
            message: message.into(),
        }
    }

    /// The text the peer is told: the message without the code suffix of `Display`.
    #[must_use]
    pub fn detail(&self) -> String {
        match self {
            Self::Protocol { message, .. } | Self::Remote { message, .. } => message.clone(),
            e => e.to_string(),
        }
    }

    /// The wire code this error maps to (what the peer is told).
    #[must_use]
    pub fn code(&self) -> Code {
        match self {
            Self::Protocol { code, .. } | Self::Remote { code, .. } => *code,
            Self::Io(_) | Self::Store(_) => Code::Storage,
            Self::Closed => Code::Cancelled,
            #[cfg(feature = "runtime")]
            Self::Server(_) | Self::Client(_) => Code::Cancelled,
            Self::Config(_) | Self::Tus { .. } => Code::Violation,
        }
    }
}
