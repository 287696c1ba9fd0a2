//! Messages, events and the small enums around them.

use bytes::Bytes;

use crate::{close::CloseCode, header::MAX_HEADER_LEN, utf8::Utf8Bytes};

/// Which end of the connection this is. Clients mask what they send; servers must not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The side that sent the opening handshake.
    Client,
    /// The side that accepted it.
    Server,
}

/// Who started a close.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Initiator {
    /// This library, because of an error or timeout.
    Local,
    /// The peer sent the first Close frame.
    Remote,
    /// The application called [`crate::Connection::close`].
    User,
}

/// How a connection ended: the one close-reason type of the workspace (ws-server's
/// `Disconnect` and ws-client's `CloseInfo` are this type).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CloseInfo {
    /// Close code of whoever closed first; [`CloseCode::ABNORMAL`] when the transport ended
    /// without a close handshake (or the connection failed without a Close frame),
    /// [`CloseCode::NO_STATUS`] for a Close frame without a code.
    pub code: CloseCode,
    /// Close reason.
    pub reason: String,
    /// Who closed: the peer (`Remote`), this library because of an error or timeout
    /// (`Local`), or the application (`User`).
    pub by: Initiator,
}

impl CloseInfo {
    /// A close reason.
    pub fn new(code: CloseCode, reason: impl Into<String>, by: Initiator) -> Self {
        Self {
            code,
            reason: reason.into(),
            by,
        }
    }
}

/// A complete data message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A text message (always valid UTF-8).
    Text(Utf8Bytes),
    /// A binary message.
    Binary(Bytes),
}

impl Message {
    /// A text message.
    pub fn text(text: impl Into<Utf8Bytes>) -> Self {
        Self::Text(text.into())
    }

    /// A binary message.
    pub fn binary(data: impl Into<Bytes>) -> Self {
        Self::Binary(data.into())
    }

    /// Whether this is a text message.
    #[must_use]
    pub const fn is_text(&self) -> bool {
        matches!(self, Self::Text(_))
    }

    /// The text, for text messages.
    #[must_use]
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Self::Text(t) => Some(t.as_str()),
            Self::Binary(_) => None,
        }
    }

    /// The payload bytes of either kind.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Text(t) => t.as_bytes(),
            Self::Binary(b) => b,
        }
    }

    /// Payload length in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether the payload is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The payload as shared bytes, without copying.
    #[must_use]
    pub fn into_payload(self) -> Bytes {
        match self {
            Self::Text(t) => t.into_bytes(),
            Self::Binary(b) => b,
        }
    }
}

impl From<String> for Message {
    fn from(s: String) -> Self {
        Self::text(s)
    }
}

impl From<&'static str> for Message {
    fn from(s: &'static str) -> Self {
        Self::text(s)
    }
}

impl From<Bytes> for Message {
    fn from(b: Bytes) -> Self {
        Self::Binary(b)
    }
}

impl From<Vec<u8>> for Message {
    fn from(b: Vec<u8>) -> Self {
        Self::binary(b)
    }
}

/// How fragmented incoming messages are delivered (the seeds' `FragmentedMessages` option).
/// Messages that arrive in a single frame are always delivered as [`Event::Message`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum FragmentMode {
    /// Reassemble and deliver one [`Event::Message`] (`frgOnlyBuffer`).
    #[default]
    Buffer,
    /// Deliver each fragment as an [`Event::Fragment`], never reassembled (`frgOnlyFragmented`).
    Deliver,
    /// Deliver each fragment as an [`Event::Fragment`], then the reassembled [`Event::Message`]
    /// (`frgAll`; each fragment event carries that fragment's data only).
    Both,
}

/// What [`crate::Connection::poll_event`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A complete message.
    Message(Message),
    /// One fragment of a fragmented message ([`FragmentMode::Deliver`] and
    /// [`FragmentMode::Both`]). The payload is already inflated; text fragments may split a
    /// code point, the message as a whole is valid UTF-8.
    Fragment {
        /// Whether the message is text.
        text: bool,
        /// This fragment's data.
        payload: Bytes,
        /// First fragment of the message.
        first: bool,
        /// Last fragment of the message.
        fin: bool,
    },
    /// A ping arrived (a pong is queued automatically when [`crate::Config::auto_pong`] is on).
    Ping(Bytes),
    /// A pong arrived.
    Pong(Bytes),
    /// The close handshake completed, or the peer started it and our answer is queued. No
    /// further events follow. `code` is [`CloseCode::NO_STATUS`] when the Close frame carried
    /// no code.
    Closed {
        /// The close code of whoever started the close.
        code: CloseCode,
        /// Its reason text (may be empty).
        reason: Utf8Bytes,
        /// Who started the close.
        by: Initiator,
    },
}

/// Per-message options for [`crate::Connection::send_with`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SendOptions {
    /// Split the message into frames of at most this many payload bytes (after compression).
    /// `None` uses [`crate::Config::fragment_size`]. Default: `None`.
    pub fragment_size: Option<usize>,
    /// Compress this message when permessage-deflate was negotiated. Default: `true`.
    pub compress: bool,
}

impl Default for SendOptions {
    fn default() -> Self {
        Self {
            fragment_size: None,
            compress: true,
        }
    }
}

impl SendOptions {
    /// Default options with the given fragment size.
    #[must_use]
    pub fn fragmented(fragment_size: usize) -> Self {
        Self {
            fragment_size: Some(fragment_size),
            ..Self::default()
        }
    }

    /// Default options without compression.
    #[must_use]
    pub fn uncompressed() -> Self {
        Self {
            compress: false,
            ..Self::default()
        }
    }
}

/// One encoded frame for vectored writes, from [`crate::Connection::poll_frame`]: write
/// `head()` then `payload`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutFrame {
    /// Header bytes; only the first `head_len` are meaningful.
    pub head: [u8; MAX_HEADER_LEN],
    /// Number of header bytes.
    pub head_len: usize,
    /// Payload, already masked for clients. For servers it shares the caller's buffer.
    pub payload: Bytes,
}

impl OutFrame {
    /// The header bytes.
    #[must_use]
    pub fn head(&self) -> &[u8] {
        &self.head[..self.head_len]
    }

    /// Total bytes on the wire.
    #[must_use]
    pub fn len(&self) -> usize {
        self.head_len + self.payload.len()
    }

    /// Always false: a frame has at least a 2-byte header.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        false
    }
}
