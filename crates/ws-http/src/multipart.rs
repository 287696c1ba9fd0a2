//! A sans-IO streaming `multipart/form-data` parser (RFC 7578 over RFC 2046's framing).
//!
//! ```text
//!  Content-Type value --> boundary()                       (415 NotMultipart / 400 BadBoundary)
//!  body bytes, any split --> Parser::feed (takes what fits its window; feed the rest later)
//!                        --> Parser::poll:  Event::Part(PartHeaders)   a part begins
//!                                           Event::Data(Bytes)         a piece of its content
//!                                           Event::PartEnd             it ended
//!                                           Event::End                 the closing delimiter
//!  end of input --> Parser::finish                          (400 Truncated unless End was seen)
//! ```
//!
//! Memory is bounded by the limits, whatever the input: the parser buffers at most one window
//! (the part-header limit, or enough to recognise a delimiter, or 16 KiB, whichever is larger);
//! [`Parser::feed`] takes only what fits and says how much it took. Every limit of
//! [`Limits`] that applies (`max_body`, `max_parts`, `max_part_header_bytes`,
//! `max_part_headers`, `max_file_bytes`, `max_field_bytes`) is checked before the bytes it
//! covers are buffered or handed out. Saving files is the caller's business (ws-server's
//! `multipart::save` streams them to disk).
//!
//! ```
//! use ws_http::{Limits, multipart::{Event, Parser}};
//! let mut p = Parser::new("XX", &Limits::default())?;
//! let body = b"--XX\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nhi\r\n--XX--\r\n";
//! assert_eq!(p.feed(body), body.len());
//! assert!(matches!(p.poll()?, Some(Event::Part(h)) if h.name.as_deref() == Some("a")));
//! assert_eq!(p.poll()?, Some(Event::Data("hi".into())));
//! assert_eq!(p.poll()?, Some(Event::PartEnd));
//! assert_eq!(p.poll()?, Some(Event::End));
//! assert_eq!(p.poll()?, None);
//! p.finish()?;
//! # Ok::<(), ws_http::Error>(())
//! ```

use bytes::{Buf, Bytes, BytesMut};

use crate::{
    error::{Error, MultipartError},
    headers::{Headers, from_fields},
    limits::Limits,
};

/// The boundary of a `multipart/form-data` `Content-Type` value (RFC 2046 section 5.1.1: 1 to
/// 70 characters from a restricted set, not ending in a space; quoted or not).
///
/// ```
/// use ws_http::multipart::boundary;
/// assert_eq!(boundary("multipart/form-data; boundary=\"a b\"").unwrap(), "a b");
/// assert!(boundary("text/plain").is_err());
/// ```
///
/// # Errors
/// [`MultipartError::NotMultipart`] for another media type, [`MultipartError::BadBoundary`]
/// when the parameter is missing or invalid.
pub fn boundary(content_type: &str) -> Result<String, Error> {
    let (media, params) = content_type.split_once(';').unwrap_or((content_type, ""));
    if !media.trim().eq_ignore_ascii_case("multipart/form-data") {
        return Err(MultipartError::NotMultipart.into());
    }
    let value = params_of(params)
        .into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v)
        .ok_or(MultipartError::BadBoundary)?;
    if valid_boundary(&value) {
        Ok(value)
    } else {
        Err(MultipartError::BadBoundary.into())
    }
}

fn valid_boundary(value: &str) -> bool {
    (1..=70).contains(&value.len())
        && !value.ends_with(' ')
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(&b))
}

/// `; a=b; c="d"` parameters (RFC 9110 section 5.6.6), with quoted-string values unescaped.
/// A backslash escapes only `"` and `\`: browsers send other backslashes (Windows paths in
/// file names) as they are.
fn params_of(mut s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    loop {
        s = s.trim_start_matches([' ', '\t', ';']);
        if s.is_empty() {
            return out;
        }
        let Some(eq) = s.find(['=', ';']) else {
            return out;
        };
        if s.as_bytes()[eq] == b';' {
            // A parameter without a value: skip it.
            s = &s[eq..];
            continue;
        }
        let name = s[..eq].trim().to_owned();
        s = s[eq + 1..].trim_start_matches([' ', '\t']);
        let mut value = String::new();
        if let Some(rest) = s.strip_prefix('"') {
            let mut chars = rest.char_indices().peekable();
            let mut end = rest.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    '\\' if chars.peek().is_some_and(|&(_, n)| n == '"' || n == '\\') => {
                        if let Some((_, n)) = chars.next() {
                            value.push(n);
                        }
                    }
                    c => value.push(c),
                }
            }
            s = &rest[end.min(rest.len())..];
            // Anything between the closing quote and the next `;` is ignored.
            s = s.find(';').map_or("", |p| &s[p..]);
        } else {
            let end = s.find(';').unwrap_or(s.len());
            value = s[..end].trim().to_owned();
            s = &s[end..];
        }
        out.push((name, value));
    }
}

/// `UTF-8''percent-encoded` (RFC 8187), as `filename*` carries it; other charsets are not
/// decoded.
fn ext_value(v: &str) -> Option<String> {
    let mut it = v.splitn(3, '\'');
    let charset = it.next()?;
    let _lang = it.next()?;
    let encoded = it.next()?;
    if !charset.eq_ignore_ascii_case("utf-8") {
        return None;
    }
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The headers of one part.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartHeaders {
    /// `name` from `Content-Disposition: form-data` (`None` when absent).
    pub name: Option<String>,
    /// `filename` (or `filename*`) from `Content-Disposition`, as sent; `Some("")` is a file
    /// input with no file chosen. A part with a file name is a file
    /// ([`Limits::max_file_bytes`]), one without a field ([`Limits::max_field_bytes`]).
    pub filename: Option<String>,
    /// `Content-Type` of the part.
    pub content_type: Option<String>,
    /// Whether `Content-Disposition` was `form-data`.
    pub form_data: bool,
    /// Every header field of the part, in order.
    pub headers: Headers,
}

impl PartHeaders {
    fn parse(block: &[u8], max_headers: usize) -> Result<Self, MultipartError> {
        let mut h = Self::default();
        let mut fields = Vec::new();
        for line in block.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            if line[0] == b' ' || line[0] == b'\t' {
                return Err(MultipartError::FoldedHeader);
            }
            let colon = line
                .iter()
                .position(|&b| b == b':')
                .ok_or(MultipartError::MissingColon)?;
            let name = std::str::from_utf8(&line[..colon])
                .ok()
                .filter(|n| crate::headers::is_token(n))
                .ok_or(MultipartError::BadHeaderName)?;
            let value = String::from_utf8_lossy(&line[colon + 1..])
                .trim()
                .to_owned();
            if fields.len() == max_headers {
                return Err(MultipartError::TooManyHeaders { max: max_headers });
            }
            if name.eq_ignore_ascii_case("content-disposition") {
                let (kind, params) = value.split_once(';').unwrap_or((&value, ""));
                h.form_data = kind.trim().eq_ignore_ascii_case("form-data");
                let params = params_of(params);
                let get = |key: &str| {
                    params
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(key))
                        .map(|(_, v)| v.clone())
                };
                h.name = get("name");
                h.filename = get("filename*")
                    .and_then(|v| ext_value(&v))
                    .or_else(|| get("filename"));
            } else if name.eq_ignore_ascii_case("content-type") {
                h.content_type = Some(value.clone());
            }
            fields.push((name.to_owned(), value));
        }
        h.headers = from_fields(fields);
        Ok(h)
    }
}

/// What [`Parser::poll`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A part begins.
    Part(PartHeaders),
    /// A piece of the current part's content (never empty).
    Data(Bytes),
    /// The current part ended.
    PartEnd,
    /// The closing delimiter: the body is complete (later bytes, the epilogue, are ignored).
    End,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Preamble,
    AfterDelimiter,
    Headers,
    Content,
    Epilogue,
}

/// Transport padding allowed after a delimiter (RFC 2046 `transport-padding`).
const MAX_PADDING: usize = 256;
/// The smallest window: content comes out in pieces of about this size.
const MIN_WINDOW: usize = 16 * 1024;

/// The error a failed [`Parser`] repeats.
#[derive(Clone, Copy, Debug)]
enum Failure {
    Multipart(MultipartError),
    BodyTooLarge(u64),
}

impl From<Failure> for Error {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Multipart(m) => Self::Multipart(m),
            Failure::BodyTooLarge(max) => Self::BodyTooLarge { max },
        }
    }
}

/// A sans-IO `multipart/form-data` parser. Feed it the body in any pieces ([`Parser::feed`])
/// and poll events until it returns `Ok(None)` ([`Parser::poll`]), then feed again; memory
/// stays within one window (see the [module docs](self)).
#[derive(Debug)]
pub struct Parser {
    /// `CRLF -- boundary`.
    delimiter: Vec<u8>,
    buf: BytesMut,
    /// Most bytes `buf` holds.
    window: usize,
    state: State,
    parts: usize,
    /// Content bytes of the current part so far.
    part_bytes: u64,
    /// The limit of the current part (file or field).
    part_limit: Failure,
    /// Body bytes taken so far.
    total: u64,
    max_body: u64,
    max_parts: usize,
    max_header_bytes: usize,
    max_headers: usize,
    max_file_bytes: u64,
    max_field_bytes: u64,
    failed: Option<Failure>,
}

impl Parser {
    /// A parser for `boundary` (see [`boundary`]) with the multipart limits of `limits`.
    ///
    /// # Errors
    /// [`MultipartError::BadBoundary`] for a boundary that RFC 2046 does not allow.
    pub fn new(boundary: &str, limits: &Limits) -> Result<Self, Error> {
        if !valid_boundary(boundary) {
            return Err(MultipartError::BadBoundary.into());
        }
        let mut delimiter = b"\r\n--".to_vec();
        delimiter.extend_from_slice(boundary.as_bytes());
        let mut buf = BytesMut::new();
        // The first delimiter may open the body without a CRLF before it.
        buf.extend_from_slice(b"\r\n");
        let mut parser = Self {
            delimiter,
            buf,
            window: 0,
            state: State::Preamble,
            parts: 0,
            part_bytes: 0,
            part_limit: Failure::Multipart(MultipartError::FieldTooLarge { max: 0 }),
            total: 0,
            max_body: limits.max_body,
            max_parts: limits.max_parts,
            max_header_bytes: limits.max_part_header_bytes,
            max_headers: limits.max_part_headers,
            max_file_bytes: limits.max_file_bytes,
            max_field_bytes: limits.max_field_bytes,
            failed: None,
        };
        parser.window = parser.min_window().max(MIN_WINDOW);
        Ok(parser)
    }

    /// Offers body bytes and returns how many the parser took: all of them after the closing
    /// delimiter or an error (they are dropped), otherwise as many as fit in its window. Poll
    /// until `Ok(None)`, then offer the rest.
    pub fn feed(&mut self, data: &[u8]) -> usize {
        if self.state == State::Epilogue || self.failed.is_some() {
            return data.len();
        }
        let n = data.len().min(self.window.saturating_sub(self.buf.len()));
        self.total = self.total.saturating_add(n as u64);
        if self.total > self.max_body {
            self.fail(Failure::BodyTooLarge(self.max_body));
            return data.len();
        }
        self.buf.extend_from_slice(&data[..n]);
        n
    }

    /// Whether the closing delimiter was seen.
    #[must_use]
    pub fn is_done(&self) -> bool {
        self.state == State::Epilogue
    }

    /// Parts begun so far.
    #[must_use]
    pub fn parts(&self) -> usize {
        self.parts
    }

    /// Bytes held in the parser's buffer (at most one window).
    #[must_use]
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Sets the window, at least the smallest that always lets the parser progress (fuzzing).
    #[doc(hidden)]
    pub fn set_window(&mut self, window: usize) {
        self.window = window.max(self.min_window());
    }

    /// The window (fuzzing).
    #[doc(hidden)]
    #[must_use]
    pub fn window(&self) -> usize {
        self.window
    }

    /// Room for a whole part header block, or a delimiter with its padding, plus the CRLF
    /// the parser starts with.
    fn min_window(&self) -> usize {
        self.max_header_bytes
            .saturating_add(4)
            .max(self.delimiter.len() + MAX_PADDING + 4)
            .saturating_add(2)
    }

    /// Checks the end of the input: an error unless the closing delimiter was seen.
    ///
    /// # Errors
    /// The parser's error if it failed, else [`MultipartError::Truncated`] before
    /// [`Event::End`].
    pub fn finish(&self) -> Result<(), Error> {
        if let Some(f) = self.failed {
            return Err(f.into());
        }
        if self.state == State::Epilogue {
            Ok(())
        } else {
            Err(MultipartError::Truncated.into())
        }
    }

    fn fail(&mut self, f: Failure) -> Error {
        self.failed = Some(f);
        self.buf = BytesMut::new();
        f.into()
    }

    /// The next event, or `Ok(None)` when more input is needed (or after [`Event::End`]).
    ///
    /// # Errors
    /// [`Error::Multipart`] for malformed part headers and the part limits,
    /// [`Error::BodyTooLarge`] past [`Limits::max_body`]; after an error every call fails.
    pub fn poll(&mut self) -> Result<Option<Event>, Error> {
        if let Some(f) = self.failed {
            return Err(f.into());
        }
        loop {
            match self.state {
                State::Preamble => match self.scan() {
                    Scan::Match(p) => {
                        self.buf.advance(p + self.delimiter.len());
                        self.state = State::AfterDelimiter;
                    }
                    Scan::Maybe(p) => {
                        self.buf.advance(p);
                        return Ok(None);
                    }
                    Scan::NotFound => {
                        let keep = self.delimiter.len() - 1;
                        if self.buf.len() > keep {
                            let drop = self.buf.len() - keep;
                            self.buf.advance(drop);
                        }
                        return Ok(None);
                    }
                },
                State::AfterDelimiter => {
                    // scan() saw `--`, or padding and CRLF, after the delimiter.
                    if self.buf.starts_with(b"--") {
                        self.state = State::Epilogue;
                        self.buf = BytesMut::new();
                        return Ok(Some(Event::End));
                    }
                    let pad = self
                        .buf
                        .iter()
                        .position(|&b| b != b' ' && b != b'\t')
                        .unwrap_or(self.buf.len());
                    self.buf.advance((pad + 2).min(self.buf.len()));
                    self.state = State::Headers;
                }
                State::Headers => return self.headers(),
                State::Content => return self.content(),
                State::Epilogue => {
                    self.buf.clear();
                    return Ok(None);
                }
            }
        }
    }

    fn headers(&mut self) -> Result<Option<Event>, Error> {
        let (block_len, skip) = if self.buf.starts_with(b"\r\n") {
            (0, 2)
        } else {
            let limit = self.max_header_bytes.saturating_add(4);
            let window = self.buf.len().min(limit);
            match find(&self.buf[..window], b"\r\n\r\n") {
                Some(p) => (p, p + 4),
                None if self.buf.len() >= limit => {
                    let max = self.max_header_bytes;
                    return Err(
                        self.fail(Failure::Multipart(MultipartError::HeadersTooLarge { max }))
                    );
                }
                None => return Ok(None),
            }
        };
        if self.parts == self.max_parts {
            let max = self.max_parts;
            return Err(self.fail(Failure::Multipart(MultipartError::TooManyParts { max })));
        }
        let headers = match PartHeaders::parse(&self.buf[..block_len], self.max_headers) {
            Ok(h) => h,
            Err(e) => return Err(self.fail(Failure::Multipart(e))),
        };
        self.buf.advance(skip);
        self.parts += 1;
        self.part_bytes = 0;
        self.part_limit = if headers.filename.is_some() {
            Failure::Multipart(MultipartError::FileTooLarge {
                max: self.max_file_bytes,
            })
        } else {
            Failure::Multipart(MultipartError::FieldTooLarge {
                max: self.max_field_bytes,
            })
        };
        self.state = State::Content;
        Ok(Some(Event::Part(headers)))
    }

    fn content(&mut self) -> Result<Option<Event>, Error> {
        let ready = match self.scan() {
            Scan::Match(0) => {
                self.buf.advance(self.delimiter.len());
                self.state = State::AfterDelimiter;
                return Ok(Some(Event::PartEnd));
            }
            Scan::Maybe(0) => return Ok(None),
            Scan::Match(p) | Scan::Maybe(p) => p,
            Scan::NotFound => {
                // Hold back a tail that may be the start of a delimiter.
                let from = self.buf.len().saturating_sub(self.delimiter.len() - 1);
                let keep = (from..self.buf.len())
                    .find(|&i| self.delimiter.starts_with(&self.buf[i..]))
                    .map_or(0, |i| self.buf.len() - i);
                let ready = self.buf.len() - keep;
                if ready == 0 {
                    return Ok(None);
                }
                ready
            }
        };
        self.part_bytes = self.part_bytes.saturating_add(ready as u64);
        let max = match self.part_limit {
            Failure::Multipart(
                MultipartError::FileTooLarge { max } | MultipartError::FieldTooLarge { max },
            ) => max,
            _ => u64::MAX,
        };
        if self.part_bytes > max {
            return Err(self.fail(self.part_limit));
        }
        Ok(Some(Event::Data(self.buf.split_to(ready).freeze())))
    }

    /// The first real delimiter in the buffer: one followed by `--`, or by optional padding
    /// and CRLF. Anything else after it (`--boundaryX`) makes it content, as in Go's
    /// `mime/multipart`: a boundary that merely starts the same way never ends a part.
    fn scan(&self) -> Scan {
        let mut from = 0;
        while let Some(rel) = find(&self.buf[from..], &self.delimiter) {
            let p = from + rel;
            match delimiter_end(&self.buf[p + self.delimiter.len()..]) {
                Some(true) => return Scan::Match(p),
                None => return Scan::Maybe(p),
                Some(false) => from = p + 1,
            }
        }
        Scan::NotFound
    }
}

/// Where the buffer's first delimiter is.
enum Scan {
    /// A delimiter starts here, with its line end in the buffer.
    Match(usize),
    /// A delimiter may start here: more input decides.
    Maybe(usize),
    /// None, not even possibly.
    NotFound,
}

/// Whether what follows a delimiter makes it one (`Some(true)`), content (`Some(false)`), or
/// cannot tell yet (`None`). Decided within `MAX_PADDING + 2` bytes.
fn delimiter_end(rest: &[u8]) -> Option<bool> {
    match rest {
        [] | [b'-'] => None,
        [b'-', b'-', ..] => Some(true),
        [b'-', ..] => Some(false),
        _ => match rest.iter().position(|&b| b != b' ' && b != b'\t') {
            None if rest.len() > MAX_PADDING => Some(false),
            None => None,
            Some(n) if n > MAX_PADDING => Some(false),
            Some(n) => match &rest[n..] {
                [b'\r'] => None,
                [b'\r', b'\n', ..] => Some(true),
                _ => Some(false),
            },
        },
    }
}

/// First position of `needle` (not empty) in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let first = needle[0];
    let last_start = hay.len().checked_sub(needle.len())?;
    let mut i = 0;
    while i <= last_start {
        let p = hay[i..=last_start].iter().position(|&b| b == first)?;
        i += p;
        if hay[i..].starts_with(needle) {
            return Some(i);
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: &str = "----WebKitFormBoundaryABC123";

    fn body(parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(b"preamble to ignore\r\n");
        for (name, filename, content) in parts {
            out.extend_from_slice(format!("--{B}\r\n").as_bytes());
            match filename {
                Some(f) => out.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n\
                         Content-Type: application/octet-stream\r\n\r\n"
                    )
                    .as_bytes(),
                ),
                None => out.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
                ),
            }
            out.extend_from_slice(content);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("--{B}--\r\nepilogue").as_bytes());
        out
    }

    /// (name, filename, content) of every part, feeding `pieces`.
    type Parts = Vec<(Option<String>, Option<String>, Vec<u8>)>;

    fn parse(pieces: &[&[u8]], limits: &Limits) -> Result<Parts, Error> {
        let mut p = Parser::new(B, limits)?;
        let mut parts: Parts = Vec::new();
        let mut ended = false;
        for piece in pieces {
            let mut rest = *piece;
            loop {
                let n = p.feed(rest);
                rest = &rest[n..];
                assert!(p.buffered() <= p.window, "{} > {}", p.buffered(), p.window);
                while let Some(ev) = p.poll()? {
                    match ev {
                        Event::Part(h) => parts.push((h.name, h.filename, Vec::new())),
                        Event::Data(d) => {
                            assert!(!d.is_empty());
                            parts.last_mut().unwrap().2.extend_from_slice(&d);
                        }
                        Event::PartEnd => {}
                        Event::End => ended = true,
                    }
                }
                if rest.is_empty() {
                    break;
                }
                assert!(n > 0 || p.buffered() < p.window, "no progress");
            }
        }
        p.finish()?;
        assert!(ended);
        Ok(parts)
    }

    /// File content with CRLFs, dashes, a delimiter minus its last byte, the boundary without
    /// the CRLF before it, NUL, every byte value, and `CRLF --` at its very end.
    fn tricky() -> Vec<u8> {
        let mut c = b"\r\n\r\n--\r\n".to_vec();
        c.extend_from_slice(format!("\r\n--{}X", &B[..B.len() - 1]).as_bytes());
        c.extend_from_slice(format!("\r\n--{}\r", &B[..10]).as_bytes());
        c.extend_from_slice(format!("z--{B}\0\r").as_bytes());
        // The whole delimiter, but followed by neither `--` nor CRLF: content.
        c.extend_from_slice(format!("\r\n--{B}FAKE\r\n--{B} \tx\r\n--{B}-x").as_bytes());
        c.extend(0..=255u8);
        c.extend_from_slice(format!("\r\n-{B}").as_bytes());
        c.extend_from_slice(b"\r\n--");
        c
    }

    #[test]
    fn chunk_boundaries_at_every_byte() {
        let content = tricky();
        let raw = body(&[
            ("note", None, b"hello"),
            ("file", Some("a.bin"), &content),
            ("empty", Some("e.txt"), b""),
        ]);
        let limits = Limits::default();
        let whole = parse(&[&raw], &limits).unwrap();
        assert_eq!(whole.len(), 3);
        assert_eq!(whole[0].2, b"hello");
        assert_eq!(whole[1].2, content);
        assert_eq!(whole[1].1.as_deref(), Some("a.bin"));
        assert!(whole[2].2.is_empty());
        for cut in 0..=raw.len() {
            let got = parse(&[&raw[..cut], &raw[cut..]], &limits).unwrap();
            assert_eq!(got, whole, "split at {cut}");
        }
        for cut in 0..raw.len() {
            let (a, rest) = raw.split_at(cut);
            let (b, c) = rest.split_at(rest.len().min(7));
            assert_eq!(
                parse(&[a, b, c], &limits).unwrap(),
                whole,
                "split at {cut}+7"
            );
        }
        // One byte at a time.
        let bytes: Vec<&[u8]> = raw.chunks(1).collect();
        assert_eq!(parse(&bytes, &limits).unwrap(), whole);
    }

    #[test]
    fn errors_are_the_same_at_every_split() {
        let limits = Limits {
            max_field_bytes: 4,
            ..Limits::default()
        };
        let raw = body(&[("a", None, b"1234"), ("b", None, b"12345")]);
        for cut in 0..=raw.len() {
            let got = parse(&[&raw[..cut], &raw[cut..]], &limits);
            assert!(
                matches!(
                    got,
                    Err(Error::Multipart(MultipartError::FieldTooLarge { max: 4 }))
                ),
                "split at {cut}: {got:?}"
            );
        }
    }

    #[test]
    fn a_window_is_never_exceeded() {
        // Content much larger than the window, fed in one piece.
        let content = vec![b'x'; 5 * MIN_WINDOW + 17];
        let raw = body(&[("f", Some("big"), &content)]);
        let mut p = Parser::new(B, &Limits::default()).unwrap();
        let mut rest = &raw[..];
        let mut got = Vec::new();
        while !rest.is_empty() {
            let n = p.feed(rest);
            rest = &rest[n..];
            assert!(p.buffered() <= p.window);
            while let Some(ev) = p.poll().unwrap() {
                if let Event::Data(d) = ev {
                    got.extend_from_slice(&d);
                }
            }
        }
        p.finish().unwrap();
        assert_eq!(got, content);
    }

    #[test]
    fn body_starting_with_the_delimiter_and_padding() {
        let raw =
            format!("--{B}  \t\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n--{B}--");
        let got = parse(&[raw.as_bytes()], &Limits::default()).unwrap();
        assert_eq!(got, vec![(Some("a".into()), None, b"x".to_vec())]);
    }

    fn multipart_err(r: Result<Parts, Error>) -> MultipartError {
        match r {
            Err(Error::Multipart(m)) => m,
            other => panic!("expected a multipart error, got {other:?}"),
        }
    }

    #[test]
    fn malformed_bodies_fail() {
        let limits = Limits::default();
        // Cut short.
        let raw = format!("--{B}\r\nContent-Disposition: form-data; name=a\r\n\r\nxx");
        assert_eq!(
            multipart_err(parse(&[raw.as_bytes()], &limits)),
            MultipartError::Truncated
        );
        // Boundary followed by garbage: not a delimiter.
        let raw = format!("--{B}X\r\n\r\n");
        assert_eq!(
            multipart_err(parse(&[raw.as_bytes()], &limits)),
            MultipartError::Truncated
        );
        let raw = format!("--{B}\r\nnonsense\r\n\r\nx\r\n--{B}--");
        assert_eq!(
            multipart_err(parse(&[raw.as_bytes()], &limits)),
            MultipartError::MissingColon
        );
        let raw = format!("--{B}\r\nA: b\r\n folded\r\n\r\nx\r\n--{B}--");
        assert_eq!(
            multipart_err(parse(&[raw.as_bytes()], &limits)),
            MultipartError::FoldedHeader
        );
        let raw = format!("--{B}\r\nA b: c\r\n\r\nx\r\n--{B}--");
        assert_eq!(
            multipart_err(parse(&[raw.as_bytes()], &limits)),
            MultipartError::BadHeaderName
        );
        assert_eq!(
            multipart_err(parse(&[b"just text"], &limits)),
            MultipartError::Truncated
        );
        assert!(matches!(
            Parser::new("", &limits),
            Err(Error::Multipart(MultipartError::BadBoundary))
        ));
        assert!(Parser::new(&"x".repeat(71), &limits).is_err());
    }

    #[test]
    fn part_limits() {
        let limits = Limits {
            max_part_header_bytes: 100,
            max_part_headers: 3,
            max_parts: 2,
            max_file_bytes: 10,
            ..Limits::default()
        };
        let big = format!(
            "--{B}\r\nContent-Disposition: form-data; name=\"{}\"\r\n\r\nx\r\n--{B}--",
            "n".repeat(200)
        );
        assert_eq!(
            multipart_err(parse(&[big.as_bytes()], &limits)),
            MultipartError::HeadersTooLarge { max: 100 }
        );
        // Never terminated: fails once the limit is passed, not at the end.
        let mut p = Parser::new(B, &limits).unwrap();
        p.feed(format!("--{B}\r\nX-A: b").as_bytes());
        assert_eq!(p.poll().unwrap(), None);
        p.feed(&[b'a'; 200]);
        assert!(matches!(
            p.poll(),
            Err(Error::Multipart(MultipartError::HeadersTooLarge { .. }))
        ));
        assert!(p.poll().is_err());
        assert!(p.finish().is_err());
        let many = format!("--{B}\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\nx\r\n--{B}--");
        assert_eq!(
            multipart_err(parse(&[many.as_bytes()], &limits)),
            MultipartError::TooManyHeaders { max: 3 }
        );
        let raw = body(&[("a", None, b"1"), ("b", None, b"2"), ("c", None, b"3")]);
        assert_eq!(
            multipart_err(parse(&[&raw], &limits)),
            MultipartError::TooManyParts { max: 2 }
        );
        let raw = body(&[("a", Some("f"), b"0123456789")]);
        parse(&[&raw], &limits).unwrap();
        let raw = body(&[("a", Some("f"), b"0123456789A")]);
        assert_eq!(
            multipart_err(parse(&[&raw], &limits)),
            MultipartError::FileTooLarge { max: 10 }
        );
        assert_eq!(MultipartError::FileTooLarge { max: 10 }.status(), 413);
        assert_eq!(Error::from(MultipartError::NotMultipart).status(), 415);
        assert_eq!(Error::from(MultipartError::Truncated).status(), 400);
    }

    #[test]
    fn total_size_is_checked_as_bytes_arrive() {
        let limits = Limits {
            max_body: 50,
            ..Limits::default()
        };
        let raw = body(&[("a", None, &[b'x'; 100])]);
        let mut p = Parser::new(B, &limits).unwrap();
        assert_eq!(p.feed(&raw[..40]), 40);
        while p.poll().unwrap().is_some() {}
        // The rest is taken and dropped: the error is the answer.
        assert_eq!(p.feed(&raw[40..]), raw.len() - 40);
        assert_eq!(p.buffered(), 0);
        assert!(matches!(p.poll(), Err(Error::BodyTooLarge { max: 50 })));
        assert_eq!(Error::BodyTooLarge { max: 50 }.status(), 413);
    }

    #[test]
    fn memory_stays_bounded() {
        let mut p = Parser::new(B, &Limits::default()).unwrap();
        p.feed(
            format!("--{B}\r\nContent-Disposition: form-data; name=f; filename=x\r\n\r\n")
                .as_bytes(),
        );
        assert!(matches!(p.poll().unwrap(), Some(Event::Part(_))));
        let chunk = vec![b'-'; 4096];
        for _ in 0..1000 {
            assert_eq!(p.feed(&chunk), chunk.len());
            while let Some(ev) = p.poll().unwrap() {
                assert!(matches!(ev, Event::Data(_)));
            }
            assert!(p.buffered() < B.len() + 4, "{}", p.buffered());
        }
        // Preamble is not kept either.
        let mut p = Parser::new(B, &Limits::default()).unwrap();
        for _ in 0..100 {
            p.feed(&chunk);
            assert_eq!(p.poll().unwrap(), None);
            assert!(p.buffered() < B.len() + 4);
        }
    }

    #[test]
    fn content_disposition_parameters() {
        let h = PartHeaders::parse(
            b"content-disposition: form-data; name=\"a \\\"b\\\"\"; filename=\"C:\\dir\\x.txt\"\r\n\
              Content-Type: text/plain",
            16,
        )
        .unwrap();
        assert!(h.form_data);
        assert_eq!(h.name.as_deref(), Some("a \"b\""));
        assert_eq!(h.filename.as_deref(), Some("C:\\dir\\x.txt"));
        assert_eq!(h.content_type.as_deref(), Some("text/plain"));
        assert_eq!(h.headers.get("CONTENT-TYPE"), Some("text/plain"));
        assert_eq!(h.headers.len(), 2);
        let h = PartHeaders::parse(
            b"Content-Disposition: form-data; name=f; filename=\"plain.txt\"; \
              filename*=UTF-8''%E2%82%AC%20rates.txt",
            16,
        )
        .unwrap();
        assert_eq!(h.name.as_deref(), Some("f"));
        assert_eq!(h.filename.as_deref(), Some("€ rates.txt"));
        let h = PartHeaders::parse(b"Content-Disposition: form-data; name=\"a;b\"", 16).unwrap();
        assert_eq!(h.name.as_deref(), Some("a;b"));
        let h = PartHeaders::parse(b"Content-Disposition: attachment; name=x", 16).unwrap();
        assert!(!h.form_data);
    }

    #[test]
    fn boundaries_from_content_type() {
        assert_eq!(
            boundary("multipart/form-data; boundary=----WebKitFormBoundaryx7").unwrap(),
            "----WebKitFormBoundaryx7"
        );
        assert_eq!(
            boundary("Multipart/Form-Data; charset=utf-8; BOUNDARY=\"quoted=ok\"").unwrap(),
            "quoted=ok"
        );
        assert!(matches!(
            boundary("application/json"),
            Err(Error::Multipart(MultipartError::NotMultipart))
        ));
        assert!(matches!(
            boundary("multipart/form-data"),
            Err(Error::Multipart(MultipartError::BadBoundary))
        ));
        assert!(boundary(&format!("multipart/form-data; boundary={}", "x".repeat(71))).is_err());
        assert!(boundary("multipart/form-data; boundary=\"bad\r\n\"").is_err());
        assert!(boundary("multipart/form-data; boundary=\"trailing \"").is_err());
    }
}
