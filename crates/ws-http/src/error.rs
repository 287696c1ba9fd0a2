//! The crate's error enum, its detail enums, and the mapping from every error to an HTTP status.

use crate::rejection::Rejection;

/// Everything that can go wrong in this crate. Each error knows the HTTP status a server answers
/// it with ([`Error::status`]) and can write that answer ([`Error::write_response`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The message does not follow the HTTP/1.1 grammar (400).
    #[error("malformed HTTP message: {0}")]
    Malformed(#[from] Malformed),
    /// The head is larger than [`crate::Limits::max_head_bytes`] (431).
    #[error("message head exceeds {max} bytes")]
    HeadTooLarge {
        /// The limit.
        max: usize,
    },
    /// More header fields than [`crate::Limits::max_headers`] (431).
    #[error("more than {max} header fields")]
    TooManyHeaders {
        /// The limit.
        max: usize,
    },
    /// A header field line longer than [`crate::Limits::max_header_line`] (431).
    #[error("header field line exceeds {max} bytes")]
    HeaderLineTooLong {
        /// The limit.
        max: usize,
    },
    /// A request line longer than [`crate::Limits::max_request_line`] (414).
    #[error("request line exceeds {max} bytes")]
    UriTooLong {
        /// The limit.
        max: usize,
    },
    /// An HTTP version other than 1.0 and 1.1 (505).
    #[error("unsupported HTTP version")]
    UnsupportedVersion,
    /// A body larger than [`crate::Limits::max_body`] (413).
    #[error("body exceeds {max} bytes")]
    BodyTooLarge {
        /// The limit.
        max: u64,
    },
    /// `Content-Length` / `Transfer-Encoding` that do not determine one body length (400), or a
    /// transfer coding this crate does not implement (501).
    #[error("message framing: {0}")]
    Framing(#[from] FramingError),
    /// A malformed chunked body (400).
    #[error("chunked body: {0}")]
    Chunked(#[from] ChunkedError),
    /// The connection ended before the body did (400).
    #[error("connection closed before the end of the body")]
    IncompleteBody,
    /// A WebSocket upgrade request or response that fails RFC 6455 section 4 (the status depends
    /// on the detail, see [`HandshakeError`]).
    #[error("WebSocket handshake: {0}")]
    Handshake(#[from] HandshakeError),
    /// The server answered the upgrade request with something other than 101; the status,
    /// headers and (bounded) body are in the [`Rejection`].
    #[error("server refused the WebSocket upgrade with {} {}", .0.status(), .0.reason())]
    Rejected(Box<Rejection>),
    /// A WebSocket URL this crate cannot connect to (400).
    #[error("invalid WebSocket URL: {0}")]
    Url(#[from] UrlError),
    /// A method, target, header name, header value or status that cannot be written into an
    /// HTTP/1.1 head (500: the local program supplied it).
    #[error("cannot write {0} into an HTTP head")]
    InvalidField(&'static str),
    /// Output after the last chunk of a chunked body was written (500).
    #[error("chunked body already finished")]
    BodyFinished,
    /// An unusable configuration (500).
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// The operating system gave no random bytes for `Sec-WebSocket-Key` (500).
    #[error("no random bytes available for the handshake key")]
    Random,
    /// A `multipart/form-data` body that is not one or exceeds a limit (415, 400 or 413; see
    /// [`MultipartError`]).
    #[error("multipart body: {0}")]
    Multipart(#[from] MultipartError),
}

/// Syntax errors (all 400).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Malformed {
    /// The head does not parse (reported by httparse).
    #[error("{0}")]
    Syntax(httparse::Error),
    /// A header field value that is not UTF-8.
    #[error("header field value is not UTF-8")]
    NotUtf8,
    /// An HTTP/1.1 request without `Host`.
    #[error("missing Host header field")]
    MissingHost,
    /// More than one `Host` field line.
    #[error("more than one Host header field")]
    DuplicateHost,
}

/// Why the body length of a message cannot be determined safely (RFC 9112 section 6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FramingError {
    /// Both `Content-Length` and `Transfer-Encoding` (a request-smuggling vector).
    #[error("both Content-Length and Transfer-Encoding")]
    ContentLengthWithTransferEncoding,
    /// A `Content-Length` that is not a decimal number (or overflows 64 bits).
    #[error("invalid Content-Length")]
    InvalidContentLength,
    /// Several `Content-Length` values that differ.
    #[error("differing Content-Length values")]
    DifferingContentLengths,
    /// `Transfer-Encoding` whose final coding is not `chunked` on a request, or an empty one.
    #[error("Transfer-Encoding does not end with chunked")]
    ChunkedNotFinal,
    /// `chunked` applied more than once.
    #[error("chunked applied more than once")]
    ChunkedRepeated,
    /// A transfer coding other than `chunked` (gzip, deflate, ...), which this crate does not
    /// decode (501).
    #[error("unsupported transfer coding")]
    UnsupportedCoding,
    /// `Transfer-Encoding` in an HTTP/1.0 message, whose framing RFC 9112 section 6.1 says to
    /// treat as faulty.
    #[error("Transfer-Encoding in an HTTP/1.0 message")]
    TransferEncodingInHttp10,
}

/// A malformed chunked body (all 400).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChunkedError {
    /// The chunk size is not hexadecimal digits.
    #[error("invalid chunk size")]
    InvalidSize,
    /// The chunk size does not fit in 64 bits.
    #[error("chunk size overflows")]
    SizeOverflow,
    /// A chunk extension that does not follow `; name [= token / quoted-string]`.
    #[error("invalid chunk extension")]
    InvalidExtension,
    /// More chunk-extension bytes than [`crate::Limits::max_chunk_extensions`].
    #[error("chunk extensions exceed {max} bytes")]
    ExtensionsTooLong {
        /// The budget.
        max: usize,
    },
    /// A chunk-size line or chunk data not followed by CRLF.
    #[error("missing CRLF")]
    MissingCrlf,
    /// A trailer section that does not parse.
    #[error("invalid trailer section")]
    InvalidTrailers,
}

/// A WebSocket opening handshake that fails RFC 6455 section 4.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// Server: the upgrade request's method is not GET (405, with `Allow: GET`).
    #[error("upgrade request method is not GET")]
    MethodNotGet,
    /// Server: an HTTP/1.0 upgrade request (400).
    #[error("upgrade request is not HTTP/1.1")]
    NotHttp11,
    /// Server: no `websocket` token in `Upgrade` (426, with `Upgrade: websocket`).
    #[error("Upgrade: websocket missing")]
    MissingUpgrade,
    /// Server: no `upgrade` token in `Connection` (400).
    #[error("Connection: upgrade missing")]
    MissingConnectionUpgrade,
    /// Server: `Sec-WebSocket-Key` missing, repeated, or not the base64 form of 16 bytes (400).
    #[error("Sec-WebSocket-Key missing or not base64 of 16 bytes")]
    InvalidKey,
    /// Server: `Sec-WebSocket-Version` is not 13 (426, with `Sec-WebSocket-Version: 13`).
    #[error("unsupported Sec-WebSocket-Version (13 required)")]
    UnsupportedVersion,
    /// Server: a request target that is neither origin-form nor an absolute URI (400).
    #[error("invalid request target for an upgrade")]
    InvalidTarget,
    /// Either side: `Sec-WebSocket-Protocol` is not a list of tokens (400).
    #[error("malformed Sec-WebSocket-Protocol")]
    InvalidProtocolHeader,
    /// Either side: `Sec-WebSocket-Extensions` does not follow RFC 6455 section 9.1 (400).
    #[error("malformed Sec-WebSocket-Extensions")]
    InvalidExtensionsHeader,
    /// Server program: it selected a subprotocol the client did not offer (500).
    #[error("selected subprotocol was not offered by the client")]
    ProtocolNotOffered,
    /// Server program: a rejection with a 1xx status, which cannot end the exchange (500).
    #[error("a rejection needs a final (2xx..5xx) status")]
    InvalidRejectStatus,
    /// Client: the 101 response lacks `Upgrade: websocket` (502).
    #[error("response lacks Upgrade: websocket")]
    ResponseMissingUpgrade,
    /// Client: the 101 response lacks `Connection: upgrade` (502).
    #[error("response lacks Connection: upgrade")]
    ResponseMissingConnection,
    /// Client: `Sec-WebSocket-Accept` is missing or does not match the key (502).
    #[error("Sec-WebSocket-Accept does not match the key")]
    AcceptMismatch,
    /// Client: the server selected a subprotocol we did not offer, or several (502).
    #[error("server selected a subprotocol that was not offered")]
    UnexpectedProtocol,
    /// Client: the server enabled an extension we did not offer, or permessage-deflate twice
    /// (502).
    #[error("server enabled an extension that was not offered")]
    UnexpectedExtension,
    /// Client: the server's permessage-deflate parameters do not fit our offer (502).
    #[error("permessage-deflate response: {0}")]
    Deflate(Box<ws_frame::deflate::NegotiationError>),
}

/// A WebSocket URL that cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// A scheme other than ws, wss, http, https.
    #[error("scheme must be ws, wss, http or https")]
    Scheme,
    /// A missing or invalid host.
    #[error("invalid host")]
    Host,
    /// A port that is not a number in 1..=65535.
    #[error("invalid port")]
    Port,
    /// A `#fragment`, which RFC 6455 section 3 forbids.
    #[error("WebSocket URLs cannot have a fragment")]
    Fragment,
    /// Characters that cannot appear in a request target (spaces, controls).
    #[error("invalid character in path or query")]
    Path,
    /// A relative reference without a base URL to resolve it against.
    #[error("relative reference")]
    Relative,
}

/// A `multipart/form-data` body ([`crate::multipart::Parser`]) that cannot be accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MultipartError {
    /// The `Content-Type` is not `multipart/form-data` (415).
    #[error("expected Content-Type multipart/form-data")]
    NotMultipart,
    /// The `boundary` parameter is missing, or not 1 to 70 characters of RFC 2046's set not
    /// ending in a space (400).
    #[error("missing or invalid boundary parameter (1 to 70 characters, RFC 2046)")]
    BadBoundary,
    /// A part header continued on the next line (obsolete line folding, 400).
    #[error("folded part header line")]
    FoldedHeader,
    /// A part header line without a colon (400).
    #[error("part header line without a colon")]
    MissingColon,
    /// A part header name that is not an HTTP token (400).
    #[error("part header name is not a token")]
    BadHeaderName,
    /// A part's header block is larger than [`crate::Limits::max_part_header_bytes`] (400).
    #[error("part header block exceeds {max} bytes")]
    HeadersTooLarge {
        /// The limit.
        max: usize,
    },
    /// A part has more header fields than [`crate::Limits::max_part_headers`] (400).
    #[error("more than {max} header fields in a part")]
    TooManyHeaders {
        /// The limit.
        max: usize,
    },
    /// More parts than [`crate::Limits::max_parts`] (413).
    #[error("more than {max} parts")]
    TooManyParts {
        /// The limit.
        max: usize,
    },
    /// A file part's content exceeds [`crate::Limits::max_file_bytes`] (413).
    #[error("file exceeds {max} bytes")]
    FileTooLarge {
        /// The limit.
        max: u64,
    },
    /// A form field's content exceeds [`crate::Limits::max_field_bytes`] (413).
    #[error("form field exceeds {max} bytes")]
    FieldTooLarge {
        /// The limit.
        max: u64,
    },
    /// The body ended before the closing delimiter (400).
    #[error("body ends before the closing boundary")]
    Truncated,
}

impl MultipartError {
    /// The HTTP status for this failure.
    #[must_use]
    pub fn status(&self) -> u16 {
        match self {
            Self::NotMultipart => 415,
            Self::TooManyParts { .. } | Self::FileTooLarge { .. } | Self::FieldTooLarge { .. } => {
                413
            }
            Self::BadBoundary
            | Self::FoldedHeader
            | Self::MissingColon
            | Self::BadHeaderName
            | Self::HeadersTooLarge { .. }
            | Self::TooManyHeaders { .. }
            | Self::Truncated => 400,
        }
    }
}

/// A configuration that can never work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `max_head_bytes` below the smallest request.
    #[error("max_head_bytes must be at least {min}")]
    HeadTooSmall {
        /// The minimum.
        min: usize,
    },
    /// `max_request_line` below the smallest request line.
    #[error("max_request_line must be at least {min}")]
    RequestLineTooSmall {
        /// The minimum.
        min: usize,
    },
    /// A line limit above `max_head_bytes`.
    #[error("{0} exceeds max_head_bytes")]
    LineExceedsHead(&'static str),
    /// `max_headers` is 0.
    #[error("max_headers must be at least 1")]
    NoHeaders,
    /// An extra header that the handshake sets itself (`Host`, `Upgrade`, `Sec-WebSocket-*`...).
    #[error("header {0} is set by the handshake")]
    ReservedHeader(&'static str),
    /// A subprotocol that is not an HTTP token, or listed twice.
    #[error("subprotocol names must be distinct HTTP tokens")]
    InvalidProtocol,
}

impl Error {
    /// The HTTP status a server answers this error with. For client-side handshake errors it is
    /// 502 (what a gateway reports for a bad upstream answer); for [`Error::Rejected`] it is the
    /// status the server sent.
    #[must_use]
    pub fn status(&self) -> u16 {
        match self {
            Self::Malformed(_) | Self::Chunked(_) | Self::IncompleteBody | Self::Url(_) => 400,
            Self::HeadTooLarge { .. }
            | Self::TooManyHeaders { .. }
            | Self::HeaderLineTooLong { .. } => 431,
            Self::UriTooLong { .. } => 414,
            Self::UnsupportedVersion => 505,
            Self::BodyTooLarge { .. } => 413,
            Self::Framing(f) => match f {
                FramingError::UnsupportedCoding => 501,
                FramingError::ContentLengthWithTransferEncoding
                | FramingError::InvalidContentLength
                | FramingError::DifferingContentLengths
                | FramingError::ChunkedNotFinal
                | FramingError::ChunkedRepeated
                | FramingError::TransferEncodingInHttp10 => 400,
            },
            Self::Handshake(h) => h.status(),
            Self::Rejected(r) => r.status(),
            Self::Multipart(m) => m.status(),
            Self::InvalidField(_) | Self::BodyFinished | Self::Config(_) | Self::Random => 500,
        }
    }

    /// Header fields the error response must carry besides `Content-Length` and `Connection`:
    /// `Sec-WebSocket-Version: 13` with 426 for a version mismatch, `Upgrade: websocket` with
    /// 426 for a missing upgrade, `Allow: GET` with 405.
    #[must_use]
    pub fn response_headers(&self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::Handshake(HandshakeError::UnsupportedVersion) => {
                &[("Sec-WebSocket-Version", "13")]
            }
            Self::Handshake(HandshakeError::MissingUpgrade) => &[("Upgrade", "websocket")],
            Self::Handshake(HandshakeError::MethodNotGet) => &[("Allow", "GET")],
            _ => &[],
        }
    }
}

impl HandshakeError {
    /// The HTTP status for this handshake failure.
    #[must_use]
    pub fn status(&self) -> u16 {
        match self {
            Self::MethodNotGet => 405,
            Self::MissingUpgrade | Self::UnsupportedVersion => 426,
            Self::NotHttp11
            | Self::MissingConnectionUpgrade
            | Self::InvalidKey
            | Self::InvalidTarget
            | Self::InvalidProtocolHeader
            | Self::InvalidExtensionsHeader => 400,
            Self::ProtocolNotOffered | Self::InvalidRejectStatus => 500,
            Self::ResponseMissingUpgrade
            | Self::ResponseMissingConnection
            | Self::AcceptMismatch
            | Self::UnexpectedProtocol
            | Self::UnexpectedExtension
            | Self::Deflate(_) => 502,
        }
    }
}

impl From<httparse::Error> for Error {
    fn from(e: httparse::Error) -> Self {
        match e {
            httparse::Error::TooManyHeaders => Self::TooManyHeaders { max: 0 },
            other => Self::Malformed(Malformed::Syntax(other)),
        }
    }
}

impl From<Rejection> for Error {
    fn from(r: Rejection) -> Self {
        Self::Rejected(Box::new(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;

    #[test]
    fn error_is_small() {
        assert!(
            size_of::<Error>() <= 24,
            "box the large variant: {}",
            size_of::<Error>()
        );
    }

    #[test]
    fn version_mismatch_response_names_version_13() {
        let mut out = BytesMut::new();
        let n = Error::from(HandshakeError::UnsupportedVersion).write_response(&mut out);
        assert_eq!(n, out.len());
        let text = std::str::from_utf8(&out).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nSec-WebSocket-Version: 13\r\n"), "{text}");
        assert!(text.contains("\r\nConnection: close\r\n"), "{text}");
    }
}
