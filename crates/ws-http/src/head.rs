//! Request and response heads as data: versions, parse results, body framing, and the parsed
//! request and response (their parsers and accessors are in `message`).

use crate::Headers;

/// The HTTP version of a message. Other versions fail to parse with
/// [`crate::Error::UnsupportedVersion`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    /// HTTP/1.0: connections close after each exchange unless `Connection: keep-alive`.
    Http10,
    /// HTTP/1.1: persistent connections unless `Connection: close`.
    Http11,
}

impl Version {
    /// `"HTTP/1.0"` or `"HTTP/1.1"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Http10 => "HTTP/1.0",
            Self::Http11 => "HTTP/1.1",
        }
    }
}

/// Result of an incremental parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed<T> {
    /// The head is not complete yet and nothing seen so far breaks a limit: call again with
    /// more bytes (the whole buffer, from its start).
    Partial,
    /// A complete head, and its length in bytes (the body, if any, starts there).
    Complete(T, usize),
}

/// How the body of a message is delimited (RFC 9112 section 6.3). A message without a body is
/// `Length(0)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Everything until the connection closes (responses only).
    CloseDelimited,
}

/// A parsed request head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub(crate) method: String,
    pub(crate) target: String,
    pub(crate) version: Version,
    pub(crate) headers: Headers,
    pub(crate) head_len: usize,
}

/// A parsed response head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub(crate) status: u16,
    pub(crate) reason: String,
    pub(crate) version: Version,
    pub(crate) headers: Headers,
    pub(crate) head_len: usize,
}
