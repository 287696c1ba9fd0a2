//! The one limits struct of this crate.

use crate::error::{ConfigError, Error};

/// Bounds on what the parsers and body decoders accept. Every limit is checked before the
/// corresponding bytes are copied or any memory is reserved for them.
///
/// The parsing functions accept any value (a zero limit simply rejects everything it covers);
/// [`Limits::validate`] catches combinations that can never work, and the constructors that
/// store a `Limits` call it.
///
/// ```
/// let mut limits = ws_http::Limits::default();
/// limits.max_body = 1 << 30; // allow 1 GiB uploads
/// limits.validate()?;
/// # Ok::<(), ws_http::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Largest message head (request or status line plus header fields plus the empty line), in
    /// bytes; more is answered with 431. Also bounds a chunked body's trailer section.
    /// Default: [`Limits::DEFAULT_MAX_HEAD_BYTES`] (16 KiB, as Node.js; a browser upgrade request
    /// is about 0.5 KiB, large cookie sets stay well below).
    pub max_head_bytes: usize,
    /// Most header fields in one head (and in one trailer section); more is answered with 431.
    /// Default: [`Limits::DEFAULT_MAX_HEADERS`] (100, as hyper; browsers send about 15).
    pub max_headers: usize,
    /// Longest request line (method, target, version) in bytes; a longer one is answered with
    /// 414 URI Too Long. Also bounds a response's status line.
    /// Default: [`Limits::DEFAULT_MAX_REQUEST_LINE`] (8 KiB, as nginx's default buffer).
    pub max_request_line: usize,
    /// Longest single header field line in bytes; longer is answered with 431.
    /// Default: [`Limits::DEFAULT_MAX_HEADER_LINE`] (8 KiB).
    pub max_header_line: usize,
    /// Largest message body (decoded size) in bytes; a larger `Content-Length`, chunk, or
    /// close-delimited body is answered with 413 before its bytes are buffered.
    /// Default: [`Limits::DEFAULT_MAX_BODY`] (16 MiB; raise it for uploads).
    pub max_body: u64,
    /// Chunk-extension bytes allowed in one chunked body, summed over all its chunks (a budget,
    /// so a trickle of one-byte chunks with large extensions cannot make the reader work without
    /// bound); more is answered with 400. Default: [`Limits::DEFAULT_MAX_CHUNK_EXTENSIONS`]
    /// (4 KiB; nothing in common use sends chunk extensions at all).
    pub max_chunk_extensions: usize,
    /// Most body bytes of a non-101 answer to a WebSocket upgrade request kept in the
    /// [`crate::Rejection`] error (an error page, a JSON reason); the rest is dropped and the
    /// rejection marked truncated. Default: [`Limits::DEFAULT_MAX_REJECTION_BODY`] (64 KiB).
    pub max_rejection_body: usize,
    /// Most parts (files and fields) in one `multipart/form-data` body
    /// ([`crate::multipart::Parser`]); more is answered with 413.
    /// Default: [`Limits::DEFAULT_MAX_PARTS`] (100).
    pub max_parts: usize,
    /// Largest header block of one multipart part in bytes; more is answered with 400 (part
    /// headers are small unless malformed). Default: [`Limits::DEFAULT_MAX_PART_HEADER_BYTES`]
    /// (8 KiB).
    pub max_part_header_bytes: usize,
    /// Most header fields of one multipart part; more is answered with 400.
    /// Default: [`Limits::DEFAULT_MAX_PART_HEADERS`] (16).
    pub max_part_headers: usize,
    /// Largest content of one multipart file part (a part with a `filename`) in bytes; more is
    /// answered with 413 before the excess is passed on. Default:
    /// [`Limits::DEFAULT_MAX_FILE_BYTES`] (64 MiB).
    pub max_file_bytes: u64,
    /// Largest content of one multipart form field (a part without `filename`) in bytes; more
    /// is answered with 413. Default: [`Limits::DEFAULT_MAX_FIELD_BYTES`] (64 KiB).
    pub max_field_bytes: u64,
}

impl Limits {
    /// Default of [`Limits::max_head_bytes`].
    pub const DEFAULT_MAX_HEAD_BYTES: usize = 16 * 1024;
    /// Default of [`Limits::max_headers`].
    pub const DEFAULT_MAX_HEADERS: usize = 100;
    /// Default of [`Limits::max_request_line`].
    pub const DEFAULT_MAX_REQUEST_LINE: usize = 8 * 1024;
    /// Default of [`Limits::max_header_line`].
    pub const DEFAULT_MAX_HEADER_LINE: usize = 8 * 1024;
    /// Default of [`Limits::max_body`].
    pub const DEFAULT_MAX_BODY: u64 = 16 * 1024 * 1024;
    /// Default of [`Limits::max_chunk_extensions`].
    pub const DEFAULT_MAX_CHUNK_EXTENSIONS: usize = 4 * 1024;
    /// Default of [`Limits::max_rejection_body`].
    pub const DEFAULT_MAX_REJECTION_BODY: usize = 64 * 1024;
    /// Default of [`Limits::max_parts`].
    pub const DEFAULT_MAX_PARTS: usize = 100;
    /// Default of [`Limits::max_part_header_bytes`].
    pub const DEFAULT_MAX_PART_HEADER_BYTES: usize = 8 * 1024;
    /// Default of [`Limits::max_part_headers`].
    pub const DEFAULT_MAX_PART_HEADERS: usize = 16;
    /// Default of [`Limits::max_file_bytes`].
    pub const DEFAULT_MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;
    /// Default of [`Limits::max_field_bytes`].
    pub const DEFAULT_MAX_FIELD_BYTES: u64 = 64 * 1024;

    /// Checks that the limits can accept a minimal message.
    ///
    /// # Errors
    /// [`Error::Config`] when `max_head_bytes` cannot hold a minimal request (`GET / HTTP/1.1`
    /// plus a `Host` field: 32 bytes), when `max_request_line` or `max_header_line` exceeds
    /// `max_head_bytes` (the larger value could never apply), or when `max_request_line` is below
    /// 16 bytes or `max_headers` is 0 (an HTTP/1.1 request needs `Host`).
    pub fn validate(&self) -> Result<(), Error> {
        const MIN_HEAD: usize = 32;
        if self.max_head_bytes < MIN_HEAD {
            return Err(ConfigError::HeadTooSmall { min: MIN_HEAD }.into());
        }
        if self.max_request_line < 16 {
            return Err(ConfigError::RequestLineTooSmall { min: 16 }.into());
        }
        if self.max_request_line > self.max_head_bytes {
            return Err(ConfigError::LineExceedsHead("max_request_line").into());
        }
        if self.max_header_line > self.max_head_bytes {
            return Err(ConfigError::LineExceedsHead("max_header_line").into());
        }
        if self.max_headers == 0 {
            return Err(ConfigError::NoHeaders.into());
        }
        Ok(())
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_head_bytes: Self::DEFAULT_MAX_HEAD_BYTES,
            max_headers: Self::DEFAULT_MAX_HEADERS,
            max_request_line: Self::DEFAULT_MAX_REQUEST_LINE,
            max_header_line: Self::DEFAULT_MAX_HEADER_LINE,
            max_body: Self::DEFAULT_MAX_BODY,
            max_chunk_extensions: Self::DEFAULT_MAX_CHUNK_EXTENSIONS,
            max_rejection_body: Self::DEFAULT_MAX_REJECTION_BODY,
            max_parts: Self::DEFAULT_MAX_PARTS,
            max_part_header_bytes: Self::DEFAULT_MAX_PART_HEADER_BYTES,
            max_part_headers: Self::DEFAULT_MAX_PART_HEADERS,
            max_file_bytes: Self::DEFAULT_MAX_FILE_BYTES,
            max_field_bytes: Self::DEFAULT_MAX_FIELD_BYTES,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_combinations_do_not() {
        Limits::default().validate().unwrap();
        let mut l = Limits::default();
        l.max_request_line = l.max_head_bytes + 1;
        assert!(matches!(l.validate(), Err(Error::Config(_))));
        let l = Limits {
            max_headers: 0,
            ..Limits::default()
        };
        assert!(l.validate().is_err());
        let l = Limits {
            max_head_bytes: 10,
            ..Limits::default()
        };
        assert!(l.validate().is_err());
    }
}
