//! Incremental body decoding (content-length, chunked with trailers, close-delimited) and the
//! chunked encoder.

use bytes::{Buf, Bytes, BytesMut};

use crate::{
    BodyKind, Error, Headers, Limits,
    encode::write_fields,
    error::ChunkedError,
    headers::is_tchar,
    message::from_httparse,
    scan::{self, Kind},
};

/// What [`BodyDecoder::decode`] produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BodyEvent {
    /// The next piece of the body (never empty), split off the input buffer without copying.
    Data(Bytes),
    /// The body is complete; `trailers` holds a chunked body's trailer fields (empty otherwise).
    /// Bytes after the body stay in the input buffer (the next request, or WebSocket frames).
    End {
        /// Trailer fields of a chunked body.
        trailers: Headers,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    /// Content-Length: this many bytes left.
    Length(u64),
    /// Until the transport closes.
    Close,
    /// Expecting a chunk-size line.
    Size,
    /// Inside chunk data: this many bytes left.
    Data(u64),
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// After the last chunk: expecting the trailer section.
    Trailers,
    /// `End` was returned.
    Done,
}

/// A sans-IO decoder for one message body. Feed it the buffer the transport reads into; it
/// splits body bytes off the front and leaves whatever follows the body in place.
///
/// Call order: after [`crate::parse_request`] (or [`crate::parse_response`]) returned
/// `Complete(head, len)`, advance the buffer by `len`, create the decoder from
/// [`crate::Request::body_kind`], then call [`BodyDecoder::decode`] until it returns
/// `Ok(None)` (read more, append, call again) or [`BodyEvent::End`]. At end of input call
/// [`BodyDecoder::finish`].
///
/// ```
/// use bytes::BytesMut;
/// use ws_http::{BodyDecoder, BodyEvent, BodyKind, Limits};
///
/// let mut rx = BytesMut::from(&b"5\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\nNEXT"[..]);
/// let mut body = BodyDecoder::new(BodyKind::Chunked, &Limits::default())?;
/// assert_eq!(body.decode(&mut rx)?, Some(BodyEvent::Data("hello".into())));
/// let Some(BodyEvent::End { trailers }) = body.decode(&mut rx)? else { panic!() };
/// assert_eq!(trailers.get("x-sum"), Some("1"));
/// assert_eq!(&rx[..], b"NEXT");
/// # Ok::<(), ws_http::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct BodyDecoder {
    state: State,
    limits: Limits,
    /// Decoded body bytes so far.
    received: u64,
    /// Chunk-extension bytes so far (a budget).
    extension_bytes: usize,
}

/// Longest chunk-size: 16 hex digits are 64 bits.
const MAX_SIZE_DIGITS: usize = 16;

impl BodyDecoder {
    /// A decoder for a body of `kind`.
    ///
    /// # Errors
    /// [`Error::BodyTooLarge`] when a `Content-Length` exceeds [`Limits::max_body`] (413, before
    /// any byte of it is read).
    pub fn new(kind: BodyKind, limits: &Limits) -> Result<Self, Error> {
        let state = match kind {
            BodyKind::Length(n) if n > limits.max_body => {
                return Err(Error::BodyTooLarge {
                    max: limits.max_body,
                });
            }
            BodyKind::Length(n) => State::Length(n),
            BodyKind::Chunked => State::Size,
            BodyKind::CloseDelimited => State::Close,
        };
        Ok(Self {
            state,
            limits: limits.clone(),
            received: 0,
            extension_bytes: 0,
        })
    }

    /// A decoder that ignores [`Limits::max_body`] (the caller bounds what it keeps).
    pub(crate) fn unbounded(kind: BodyKind, limits: &Limits) -> Self {
        let mut limits = limits.clone();
        limits.max_body = u64::MAX;
        let state = match kind {
            BodyKind::Length(n) => State::Length(n),
            BodyKind::Chunked => State::Size,
            BodyKind::CloseDelimited => State::Close,
        };
        Self {
            state,
            limits,
            received: 0,
            extension_bytes: 0,
        }
    }

    /// Whether [`BodyEvent::End`] was returned.
    #[must_use]
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decoded body bytes returned so far.
    #[must_use]
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Takes what it can from the front of `src`. `Ok(None)`: nothing more can be decoded from
    /// the bytes there; append more and call again. After [`BodyEvent::End`] it keeps returning
    /// `Ok(None)` and leaves `src` alone.
    ///
    /// # Errors
    /// [`Error::Chunked`] for a malformed chunked body, [`Error::BodyTooLarge`] when the decoded
    /// size would exceed [`Limits::max_body`] (checked at each chunk-size line, before its data
    /// arrives), and head errors ([`Error::HeadTooLarge`], [`Error::TooManyHeaders`], ...) for
    /// the trailer section. The decoder is unusable after an error.
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BodyEvent>, Error> {
        loop {
            match self.state {
                State::Done => return Ok(None),
                State::Length(0) => return Ok(Some(self.end(Headers::new()))),
                State::Length(left) | State::Data(left) => {
                    if src.is_empty() {
                        return Ok(None);
                    }
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(src.len());
                    let data = src.split_to(n).freeze();
                    let left = left - n as u64;
                    self.received += n as u64;
                    self.state = match self.state {
                        State::Length(_) => State::Length(left),
                        _ if left == 0 => State::DataEnd,
                        _ => State::Data(left),
                    };
                    return Ok(Some(BodyEvent::Data(data)));
                }
                State::Close => {
                    if src.is_empty() {
                        return Ok(None);
                    }
                    let room = self.limits.max_body.saturating_sub(self.received);
                    if src.len() as u64 > room {
                        return Err(self.fail(Error::BodyTooLarge {
                            max: self.limits.max_body,
                        }));
                    }
                    self.received += src.len() as u64;
                    return Ok(Some(BodyEvent::Data(src.split().freeze())));
                }
                State::Size => {
                    if !self.size_line(src)? {
                        return Ok(None);
                    }
                }
                State::DataEnd => match src.get(..2) {
                    None if src.first().is_none_or(|&b| b == b'\r') => return Ok(None),
                    Some(b"\r\n") => {
                        src.advance(2);
                        self.state = State::Size;
                    }
                    _ => return Err(self.fail(ChunkedError::MissingCrlf.into())),
                },
                State::Trailers => {
                    let scanned = match scan::scan(src, &self.limits, Kind::Trailers) {
                        Ok(Some(s)) => s,
                        Ok(None) => return Ok(None),
                        Err(e) => return Err(self.fail(e)),
                    };
                    let mut fields = vec![httparse::EMPTY_HEADER; scanned.fields];
                    let trailers = match httparse::parse_headers(&src[..scanned.len], &mut fields) {
                        Ok(httparse::Status::Complete((len, parsed))) if len == scanned.len => {
                            from_httparse(parsed)
                        }
                        _ => Err(ChunkedError::InvalidTrailers.into()),
                    };
                    let trailers = trailers.map_err(|e| self.fail(e))?;
                    src.advance(scanned.len);
                    return Ok(Some(self.end(trailers)));
                }
            }
        }
    }

    /// The transport reached end of input. `Ok(Some(End))` completes a close-delimited body;
    /// `Ok(None)` when the body had already ended.
    ///
    /// # Errors
    /// [`Error::IncompleteBody`] for any other body that has not ended.
    pub fn finish(&mut self) -> Result<Option<BodyEvent>, Error> {
        match self.state {
            State::Done => Ok(None),
            State::Close | State::Length(0) => Ok(Some(self.end(Headers::new()))),
            _ => Err(self.fail(Error::IncompleteBody)),
        }
    }

    fn end(&mut self, trailers: Headers) -> BodyEvent {
        self.state = State::Done;
        BodyEvent::End { trailers }
    }

    fn fail(&mut self, e: Error) -> Error {
        // Poison: later calls report an incomplete body rather than resuming mid-stream.
        self.state = State::Length(u64::MAX);
        e
    }

    /// Parses `chunk-size [ chunk-ext ] CRLF` at the front of `src`; `Ok(false)`: incomplete.
    fn size_line(&mut self, src: &mut BytesMut) -> Result<bool, Error> {
        let budget = self
            .limits
            .max_chunk_extensions
            .saturating_sub(self.extension_bytes);
        // The line cannot be longer than the digits, the remaining extension budget and CRLF.
        let window = MAX_SIZE_DIGITS.saturating_add(budget).saturating_add(2);
        let Some(lf) = src.iter().take(window).position(|&b| b == b'\n') else {
            // Refuse what is already wrong without waiting for the end of the line.
            let digits = src.iter().take_while(|b| b.is_ascii_hexdigit()).count();
            let e = if digits > MAX_SIZE_DIGITS {
                ChunkedError::SizeOverflow
            } else if digits == 0 && !src.is_empty() {
                ChunkedError::InvalidSize
            } else if src.len() >= window {
                ChunkedError::ExtensionsTooLong {
                    max: self.limits.max_chunk_extensions,
                }
            } else {
                return Ok(false);
            };
            return Err(self.fail(e.into()));
        };
        let line = &src[..lf];
        // Same order of checks as on incomplete input, so chunking never changes the error.
        let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        if digits > MAX_SIZE_DIGITS {
            return Err(self.fail(ChunkedError::SizeOverflow.into()));
        }
        if digits == 0 {
            return Err(self.fail(ChunkedError::InvalidSize.into()));
        }
        let Some(line) = line.strip_suffix(b"\r") else {
            return Err(self.fail(ChunkedError::MissingCrlf.into()));
        };
        let mut size: u64 = 0;
        for &b in &line[..digits] {
            // At most 16 digits: never overflows.
            size = size << 4 | u64::from(hex_value(b));
        }
        let ext = &line[digits..];
        if !ext.is_empty() {
            self.extension_bytes = self.extension_bytes.saturating_add(ext.len());
            if self.extension_bytes > self.limits.max_chunk_extensions {
                return Err(self.fail(
                    ChunkedError::ExtensionsTooLong {
                        max: self.limits.max_chunk_extensions,
                    }
                    .into(),
                ));
            }
            if !valid_extensions(ext) {
                return Err(self.fail(ChunkedError::InvalidExtension.into()));
            }
        }
        if size > self.limits.max_body.saturating_sub(self.received) {
            return Err(self.fail(Error::BodyTooLarge {
                max: self.limits.max_body,
            }));
        }
        src.advance(lf + 1);
        self.state = if size == 0 {
            State::Trailers
        } else {
            State::Data(size)
        };
        Ok(true)
    }
}

fn hex_value(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        b'A'..=b'F' => b - b'A' + 10,
        _ => 0,
    }
}

/// RFC 9112 section 7.1.1: `*( BWS ";" BWS ext-name [ BWS "=" BWS ( token / quoted-string ) ] )`.
fn valid_extensions(mut s: &[u8]) -> bool {
    fn skip_ws(s: &mut &[u8]) {
        while let [b' ' | b'\t', rest @ ..] = s {
            *s = rest;
        }
    }
    fn token(s: &mut &[u8]) -> bool {
        let n = s.iter().take_while(|&&b| is_tchar(b)).count();
        *s = &s[n..];
        n > 0
    }
    fn quoted(s: &mut &[u8]) -> bool {
        let mut i = 1; // after the opening quote
        while let Some(&b) = s.get(i) {
            match b {
                b'"' => {
                    *s = &s[i + 1..];
                    return true;
                }
                b'\\'
                    if s.get(i + 1)
                        .is_some_and(|&c| c == b'\t' || c >= 0x20 && c != 0x7f) =>
                {
                    i += 2;
                }
                b'\t' | 0x20..=0x7e | 0x80..=0xff if b != b'\\' => i += 1,
                _ => return false,
            }
        }
        false
    }
    loop {
        if s.is_empty() {
            return true;
        }
        // BWS only before a `;`: trailing whitespace is refused.
        skip_ws(&mut s);
        let [b';', rest @ ..] = s else { return false };
        s = rest;
        skip_ws(&mut s);
        if !token(&mut s) {
            return false;
        }
        let mut ahead = s;
        skip_ws(&mut ahead);
        if let [b'=', rest @ ..] = ahead {
            s = rest;
            skip_ws(&mut s);
            let ok = if s.first() == Some(&b'"') {
                quoted(&mut s)
            } else {
                token(&mut s)
            };
            if !ok {
                return false;
            }
        }
    }
}

/// Writes a chunked body piece by piece into caller-owned buffers. The head must carry
/// `Transfer-Encoding: chunked`.
///
/// ```
/// use bytes::BytesMut;
/// use ws_http::ChunkedEncoder;
///
/// let mut out = BytesMut::new();
/// let mut enc = ChunkedEncoder::new();
/// enc.write_chunk(b"hello", &mut out)?;
/// enc.write_chunk(b"", &mut out)?; // nothing: an empty chunk would end the body
/// enc.finish(&[("X-Sum", "1")], &mut out)?;
/// assert_eq!(&out[..], b"5\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\n");
/// # Ok::<(), ws_http::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct ChunkedEncoder {
    finished: bool,
}

impl ChunkedEncoder {
    /// A new body.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether [`ChunkedEncoder::finish`] was called.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Appends one chunk holding `data` to `out`; empty `data` writes nothing. Returns the
    /// number of bytes written.
    ///
    /// # Errors
    /// [`Error::BodyFinished`] after [`ChunkedEncoder::finish`].
    pub fn write_chunk(&mut self, data: &[u8], out: &mut BytesMut) -> Result<usize, Error> {
        if self.finished {
            return Err(Error::BodyFinished);
        }
        if data.is_empty() {
            return Ok(0);
        }
        let start = out.len();
        out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
        Ok(out.len() - start)
    }

    /// Appends the last chunk and the trailer section. Returns the number of bytes written.
    ///
    /// # Errors
    /// [`Error::BodyFinished`] when called twice, [`Error::InvalidField`] for a trailer name that
    /// is not a token or a value with CR, LF or other controls (nothing is written then).
    pub fn finish(
        &mut self,
        trailers: &[(&str, &str)],
        out: &mut BytesMut,
    ) -> Result<usize, Error> {
        if self.finished {
            return Err(Error::BodyFinished);
        }
        crate::encode::check_fields(trailers)?;
        self.finished = true;
        let start = out.len();
        out.extend_from_slice(b"0\r\n");
        write_fields(out, trailers);
        out.extend_from_slice(b"\r\n");
        Ok(out.len() - start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(
        kind: BodyKind,
        input: &[u8],
        step: usize,
    ) -> Result<(Vec<u8>, Headers, Vec<u8>), Error> {
        let mut d = BodyDecoder::new(kind, &Limits::default())?;
        let mut rx = BytesMut::new();
        let mut body = Vec::new();
        let mut fed = 0;
        loop {
            match d.decode(&mut rx)? {
                Some(BodyEvent::Data(b)) => {
                    assert!(!b.is_empty());
                    body.extend_from_slice(&b);
                }
                Some(BodyEvent::End { trailers }) => return Ok((body, trailers, rx.to_vec())),
                None if fed < input.len() => {
                    let n = step.min(input.len() - fed);
                    rx.extend_from_slice(&input[fed..fed + n]);
                    fed += n;
                }
                None => {
                    return match d.finish()? {
                        Some(BodyEvent::End { trailers }) => Ok((body, trailers, rx.to_vec())),
                        _ => Err(Error::IncompleteBody),
                    };
                }
            }
        }
    }

    #[test]
    fn extension_grammar() {
        for ok in [
            &b""[..],
            b";a",
            b" ; a = b",
            b";a=\"q \\\" x\";b",
            b";a;b=1",
        ] {
            assert!(valid_extensions(ok), "{:?}", String::from_utf8_lossy(ok));
        }
        for bad in [
            &b";"[..],
            b"a",
            b";a=",
            b";a=\"x",
            b";a=b c",
            b";a=\"\x01\"",
            b";a ",
            b" ",
        ] {
            assert!(!valid_extensions(bad), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn chunk_sizes() {
        let (body, _, rest) = decode_all(
            BodyKind::Chunked,
            b"A;x=1\r\n0123456789\r\n0\r\n\r\nZ",
            1000,
        )
        .unwrap();
        assert_eq!((&body[..], &rest[..]), (&b"0123456789"[..], &b"Z"[..]));
        for bad in [
            &b"g\r\n"[..],
            b"\r\n",
            b"-1\r\n",
            b"+1\r\n",
            b" 1\r\n",
            b"1 x\r\n",
            b"10000000000000000\r\n",
            b"1\nx\r\n",
            b"1\r\nxy\r\n",
            b"0\r\nbad trailer\r\n\r\n",
        ] {
            assert!(
                decode_all(BodyKind::Chunked, bad, 1000).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(matches!(
            decode_all(BodyKind::Chunked, b"10000000000000000000000000000", 1000),
            Err(Error::Chunked(ChunkedError::SizeOverflow))
        ));
        assert!(matches!(
            decode_all(BodyKind::Chunked, b"FFFFFFFFFFFFFFFF\r\n", 1000),
            Err(Error::BodyTooLarge { .. })
        ));
    }

    #[test]
    fn close_delimited_and_length() {
        let (body, _, rest) = decode_all(BodyKind::CloseDelimited, b"abc", 1).unwrap();
        assert_eq!((&body[..], rest.len()), (&b"abc"[..], 0));
        let (body, _, rest) = decode_all(BodyKind::Length(2), b"abc", 1).unwrap();
        assert_eq!((&body[..], &rest[..]), (&b"ab"[..], &b""[..]));
        assert!(matches!(
            decode_all(BodyKind::Length(5), b"abc", 1),
            Err(Error::IncompleteBody)
        ));
        assert!(matches!(
            BodyDecoder::new(
                BodyKind::Length(Limits::DEFAULT_MAX_BODY + 1),
                &Limits::default()
            ),
            Err(Error::BodyTooLarge { .. })
        ));
    }
}
