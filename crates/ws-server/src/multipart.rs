//! `multipart/form-data` uploads (RFC 7578), streamed to disk with bounded memory (the seeds'
//! `HTTPUploadFiles` with `pstFileStream` + `RemoveBoundaries`, and its
//! `OnHTTPUploadBeforeSaveFile` / `OnHTTPUploadReadInput` events).
//!
//! ```text
//!  Content-Type: multipart/form-data; boundary=B   --> boundary()          (415 / 400)
//!  Body::chunk() pieces (any split) --> Parser::feed / Parser::poll  (sans-IO, bounded)
//!     Event::Part(headers)  file part  --> hook(FileInfo): Save | SaveAs | Skip | Reject
//!                                          --> DIR/.wskit-upload-<random>.part (create_new)
//!                           field part --> collected in memory (max_field_bytes)
//!     Event::Data(bytes)    --> written / appended       (max_file_size, max_total_size: 413)
//!     Event::PartEnd        --> temp file linked to DIR/NAME (NAME-1, NAME-2 ... when taken;
//!                               never overwrites), temp name removed
//!     Event::End            --> Upload { files, fields }
//!  any failure: the partial file and the files already saved by this request are removed
//! ```
//!
//! Use it from [`crate::Handler::on_http`]:
//!
//! ```no_run
//! use ws_server::{Body, Handler, Request, Response, multipart};
//!
//! struct App {
//!     uploads: multipart::UploadConfig,
//! }
//!
//! impl Handler for App {
//!     async fn on_http(&self, request: &Request, body: &mut Body<'_>) -> Response {
//!         if request.method() != "POST" || request.path() != "/upload" {
//!             return Response::new(404);
//!         }
//!         let hook = |file: &multipart::FileInfo| match file.field.as_str() {
//!             "avatar" => multipart::FileDecision::SaveAs(format!("avatar-{}", file.file_name)),
//!             _ => multipart::FileDecision::Reject(403),
//!         };
//!         match multipart::save(request, body, &self.uploads, hook).await {
//!             Ok(upload) => Response::text(200, format!("{} files\n", upload.files.len())),
//!             Err(e) => e.response(),
//!         }
//!     }
//! }
//! ```
//!
//! The parser itself ([`Parser`]) knows nothing of sockets or files: feed it bytes in any
//! pieces and poll [`Event`]s.

use std::{
    io,
    path::{Path, PathBuf},
};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::AsyncWriteExt;

use crate::{body::Body, request::Request, response::Response};

/// Limits and destination of [`save`]. Every limit answers 413 when exceeded (400 for part
/// headers, which are malformed rather than large).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct UploadConfig {
    /// Directory the files are saved in; created (with its parents) when missing. Default:
    /// `uploads` (relative to the working directory; the seeds' empty `SaveDirectory`, the
    /// application folder, is never used).
    pub dir: PathBuf,
    /// Largest single file in bytes. Default: [`UploadConfig::DEFAULT_MAX_FILE_SIZE`] (64 MiB).
    pub max_file_size: u64,
    /// Largest request body in bytes, multipart framing included (the server's
    /// [`crate::HttpLimits::max_body`] applies as well). Default:
    /// [`UploadConfig::DEFAULT_MAX_TOTAL_SIZE`] (64 MiB).
    pub max_total_size: u64,
    /// Most parts (files and fields) in one request. Default:
    /// [`UploadConfig::DEFAULT_MAX_PARTS`] (100).
    pub max_parts: usize,
    /// Largest value of one form field (a part without `filename`), kept in memory. Default:
    /// [`UploadConfig::DEFAULT_MAX_FIELD_BYTES`] (64 KiB).
    pub max_field_bytes: usize,
    /// Largest header block of one part in bytes. Default:
    /// [`UploadConfig::DEFAULT_MAX_PART_HEADER_BYTES`] (8 KiB).
    pub max_part_header_bytes: usize,
    /// Most header fields of one part. Default: [`UploadConfig::DEFAULT_MAX_PART_HEADERS`] (16).
    pub max_part_headers: usize,
}

impl UploadConfig {
    /// Default of [`UploadConfig::max_file_size`].
    pub const DEFAULT_MAX_FILE_SIZE: u64 = 64 << 20;
    /// Default of [`UploadConfig::max_total_size`].
    pub const DEFAULT_MAX_TOTAL_SIZE: u64 = 64 << 20;
    /// Default of [`UploadConfig::max_parts`].
    pub const DEFAULT_MAX_PARTS: usize = 100;
    /// Default of [`UploadConfig::max_field_bytes`].
    pub const DEFAULT_MAX_FIELD_BYTES: usize = 64 << 10;
    /// Default of [`UploadConfig::max_part_header_bytes`].
    pub const DEFAULT_MAX_PART_HEADER_BYTES: usize = 8 << 10;
    /// Default of [`UploadConfig::max_part_headers`].
    pub const DEFAULT_MAX_PART_HEADERS: usize = 16;

    /// The default limits, saving into `dir`.
    #[must_use]
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            ..Self::default()
        }
    }
}

impl Default for UploadConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("uploads"),
            max_file_size: Self::DEFAULT_MAX_FILE_SIZE,
            max_total_size: Self::DEFAULT_MAX_TOTAL_SIZE,
            max_parts: Self::DEFAULT_MAX_PARTS,
            max_field_bytes: Self::DEFAULT_MAX_FIELD_BYTES,
            max_part_header_bytes: Self::DEFAULT_MAX_PART_HEADER_BYTES,
            max_part_headers: Self::DEFAULT_MAX_PART_HEADERS,
        }
    }
}

/// Why an upload failed; [`UploadError::status`] is the HTTP status to answer with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UploadError {
    /// The request is not `multipart/form-data` (415).
    #[error("expected a multipart/form-data body")]
    NotMultipart,
    /// The `boundary` parameter is missing or invalid (400).
    #[error("missing or invalid multipart boundary")]
    BadBoundary,
    /// The body is not valid multipart (400).
    #[error("malformed multipart body: {0}")]
    Malformed(&'static str),
    /// The body ended before the closing delimiter (400).
    #[error("multipart body cut short")]
    Truncated,
    /// A part's header block exceeds [`UploadConfig::max_part_header_bytes`] or
    /// [`UploadConfig::max_part_headers`] (400).
    #[error("part headers too large")]
    HeadersTooLarge,
    /// More parts than [`UploadConfig::max_parts`] (413).
    #[error("too many parts")]
    TooManyParts,
    /// A file exceeds [`UploadConfig::max_file_size`] (413).
    #[error("file too large")]
    FileTooLarge,
    /// A form field exceeds [`UploadConfig::max_field_bytes`] (413).
    #[error("form field too large")]
    FieldTooLarge,
    /// The body exceeds [`UploadConfig::max_total_size`] (413).
    #[error("upload too large")]
    TooLarge,
    /// The hook refused a file with this status.
    #[error("file refused")]
    Refused(u16),
    /// Reading the request body failed with this status (413, 400 or 408; see
    /// [`crate::Body::chunk`]).
    #[error("request body: {reason}")]
    Body {
        /// The status the server answers with.
        status: u16,
        /// What went wrong.
        reason: String,
    },
    /// Writing the file failed (500).
    #[error("saving the upload: {0}")]
    Io(#[from] io::Error),
}

impl UploadError {
    /// The HTTP status for this failure.
    #[must_use]
    pub fn status(&self) -> u16 {
        match self {
            Self::NotMultipart => 415,
            Self::BadBoundary | Self::Malformed(_) | Self::Truncated | Self::HeadersTooLarge => 400,
            Self::TooManyParts | Self::FileTooLarge | Self::FieldTooLarge | Self::TooLarge => 413,
            Self::Refused(status) | Self::Body { status, .. } => *status,
            Self::Io(_) => 500,
        }
    }

    /// A `text/plain` response with [`UploadError::status`] and the reason (I/O details are
    /// not disclosed).
    #[must_use]
    pub fn response(&self) -> Response {
        let text = match self {
            Self::Io(_) => "the upload could not be saved".to_owned(),
            other => other.to_string(),
        };
        Response::text(self.status(), format!("{text}\n"))
    }
}

impl From<UploadError> for crate::Error {
    fn from(e: UploadError) -> Self {
        Self::Http {
            status: e.status(),
            reason: e.to_string(),
        }
    }
}

/// The boundary of a `multipart/form-data` `Content-Type` value (RFC 2046 section 5.1.1: 1 to
/// 70 characters from a restricted set, not ending in a space; quoted or not).
///
/// ```
/// use ws_server::multipart::boundary;
/// assert_eq!(boundary("multipart/form-data; boundary=\"a b\"").unwrap(), "a b");
/// assert!(boundary("text/plain").is_err());
/// ```
///
/// # Errors
/// [`UploadError::NotMultipart`] for another media type, [`UploadError::BadBoundary`] when the
/// parameter is missing or invalid.
pub fn boundary(content_type: &str) -> Result<String, UploadError> {
    let (media, params) = content_type.split_once(';').unwrap_or((content_type, ""));
    if !media.trim().eq_ignore_ascii_case("multipart/form-data") {
        return Err(UploadError::NotMultipart);
    }
    let value = params_of(params)
        .into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v)
        .ok_or(UploadError::BadBoundary)?;
    let valid = (1..=70).contains(&value.len())
        && !value.ends_with(' ')
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(&b));
    if valid {
        Ok(value)
    } else {
        Err(UploadError::BadBoundary)
    }
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
    /// input with no file chosen.
    pub filename: Option<String>,
    /// `Content-Type` of the part.
    pub content_type: Option<String>,
    /// Whether `Content-Disposition` was `form-data`.
    pub form_data: bool,
    /// Every header field of the part, in order.
    pub headers: Vec<(String, String)>,
}

impl PartHeaders {
    fn parse(block: &[u8], max_headers: usize) -> Result<Self, UploadError> {
        let mut h = Self::default();
        for line in block.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            if line[0] == b' ' || line[0] == b'\t' {
                return Err(UploadError::Malformed("folded part header"));
            }
            let colon = line
                .iter()
                .position(|&b| b == b':')
                .ok_or(UploadError::Malformed("part header without a colon"))?;
            let name = std::str::from_utf8(&line[..colon])
                .ok()
                .filter(|n| {
                    !n.is_empty()
                        && n.bytes()
                            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
                })
                .ok_or(UploadError::Malformed("bad part header name"))?;
            let value = String::from_utf8_lossy(&line[colon + 1..])
                .trim()
                .to_owned();
            if h.headers.len() == max_headers {
                return Err(UploadError::HeadersTooLarge);
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
            h.headers.push((name.to_owned(), value));
        }
        Ok(h)
    }
}

/// What [`Parser::poll`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A part begins.
    Part(PartHeaders),
    /// A piece of the current part's content.
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

/// A sans-IO `multipart/form-data` parser. Feed it the body in any pieces ([`Parser::feed`])
/// and poll events until it returns `Ok(None)` ([`Parser::poll`]); memory stays bounded by
/// the largest piece fed plus the delimiter and part-header limits, as content comes out as
/// soon as it cannot be the start of a delimiter.
///
/// ```
/// use ws_server::multipart::{Event, Parser, UploadConfig};
/// let mut p = Parser::new("XX", &UploadConfig::default()).unwrap();
/// p.feed(b"--XX\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nhi\r\n--XX--\r\n");
/// assert!(matches!(p.poll().unwrap(), Some(Event::Part(h)) if h.name.as_deref() == Some("a")));
/// assert_eq!(p.poll().unwrap(), Some(Event::Data("hi".into())));
/// assert_eq!(p.poll().unwrap(), Some(Event::PartEnd));
/// assert_eq!(p.poll().unwrap(), Some(Event::End));
/// assert_eq!(p.poll().unwrap(), None);
/// p.finish().unwrap();
/// ```
#[derive(Debug)]
pub struct Parser {
    /// `CRLF -- boundary`.
    delimiter: Vec<u8>,
    buf: BytesMut,
    state: State,
    parts: usize,
    max_parts: usize,
    max_header_bytes: usize,
    max_headers: usize,
    failed: Option<Failure>,
}

/// The error a failed [`Parser`] repeats.
#[derive(Clone, Copy, Debug)]
enum Failure {
    Malformed(&'static str),
    HeadersTooLarge,
    TooManyParts,
}

impl Failure {
    fn error(self) -> UploadError {
        match self {
            Self::Malformed(m) => UploadError::Malformed(m),
            Self::HeadersTooLarge => UploadError::HeadersTooLarge,
            Self::TooManyParts => UploadError::TooManyParts,
        }
    }
}

impl Parser {
    /// A parser for `boundary` (see [`boundary`]) with the part limits of `config`.
    ///
    /// # Errors
    /// [`UploadError::BadBoundary`] for an empty or overlong boundary.
    pub fn new(boundary: &str, config: &UploadConfig) -> Result<Self, UploadError> {
        if boundary.is_empty() || boundary.len() > 70 {
            return Err(UploadError::BadBoundary);
        }
        let mut delimiter = b"\r\n--".to_vec();
        delimiter.extend_from_slice(boundary.as_bytes());
        let mut buf = BytesMut::with_capacity(1024);
        // The first delimiter may open the body without a CRLF before it.
        buf.extend_from_slice(b"\r\n");
        Ok(Self {
            delimiter,
            buf,
            state: State::Preamble,
            parts: 0,
            max_parts: config.max_parts,
            max_header_bytes: config.max_part_header_bytes,
            max_headers: config.max_part_headers,
            failed: None,
        })
    }

    /// Adds body bytes. Poll until `Ok(None)` before feeding more to keep memory bounded.
    pub fn feed(&mut self, data: &[u8]) {
        if self.state == State::Epilogue || self.failed.is_some() {
            return;
        }
        self.buf.extend_from_slice(data);
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

    /// Checks the end of the input: an error unless the closing delimiter was seen.
    ///
    /// # Errors
    /// [`UploadError::Truncated`].
    pub fn finish(&self) -> Result<(), UploadError> {
        if self.state == State::Epilogue {
            Ok(())
        } else {
            Err(UploadError::Truncated)
        }
    }

    fn fail(&mut self, e: UploadError) -> UploadError {
        self.failed = Some(match &e {
            UploadError::HeadersTooLarge => Failure::HeadersTooLarge,
            UploadError::TooManyParts => Failure::TooManyParts,
            UploadError::Malformed(m) => Failure::Malformed(m),
            _ => Failure::Malformed("failed"),
        });
        self.buf.clear();
        e
    }

    /// The next event, or `Ok(None)` when more input is needed (or after [`Event::End`]).
    ///
    /// # Errors
    /// [`UploadError::Malformed`], [`UploadError::HeadersTooLarge`] or
    /// [`UploadError::TooManyParts`]; after an error every call fails.
    pub fn poll(&mut self) -> Result<Option<Event>, UploadError> {
        if let Some(f) = self.failed {
            return Err(f.error());
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
                        self.buf.clear();
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
                State::Headers => {
                    let (block_len, skip) = if self.buf.starts_with(b"\r\n") {
                        (0, 2)
                    } else {
                        let window = self.buf.len().min(self.max_header_bytes + 4);
                        match find(&self.buf[..window], b"\r\n\r\n") {
                            Some(p) => (p, p + 4),
                            None if self.buf.len() >= self.max_header_bytes + 4 => {
                                return Err(self.fail(UploadError::HeadersTooLarge));
                            }
                            None => return Ok(None),
                        }
                    };
                    let parsed = PartHeaders::parse(&self.buf[..block_len], self.max_headers);
                    let headers = match parsed {
                        Ok(h) => h,
                        Err(e) => return Err(self.fail(e)),
                    };
                    self.buf.advance(skip);
                    self.parts += 1;
                    if self.parts > self.max_parts {
                        return Err(self.fail(UploadError::TooManyParts));
                    }
                    self.state = State::Content;
                    return Ok(Some(Event::Part(headers)));
                }
                State::Content => {
                    match self.scan() {
                        Scan::Match(0) => {
                            self.buf.advance(self.delimiter.len());
                            self.state = State::AfterDelimiter;
                            return Ok(Some(Event::PartEnd));
                        }
                        Scan::Maybe(0) => return Ok(None),
                        Scan::Match(p) | Scan::Maybe(p) => {
                            return Ok(Some(Event::Data(self.buf.split_to(p).freeze())));
                        }
                        Scan::NotFound => {}
                    }
                    // Hold back a tail that may be the start of a delimiter.
                    let from = self.buf.len().saturating_sub(self.delimiter.len() - 1);
                    let keep = (from..self.buf.len())
                        .find(|&i| self.delimiter.starts_with(&self.buf[i..]))
                        .map_or(0, |i| self.buf.len() - i);
                    let ready = self.buf.len() - keep;
                    if ready == 0 {
                        return Ok(None);
                    }
                    return Ok(Some(Event::Data(self.buf.split_to(ready).freeze())));
                }
                State::Epilogue => {
                    self.buf.clear();
                    return Ok(None);
                }
            }
        }
    }
}

impl Parser {
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
/// cannot tell yet (`None`).
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

/// A file part about to be saved, for the hook of [`save`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileInfo {
    /// The form field name.
    pub field: String,
    /// The file name as the client sent it (untrusted).
    pub original_name: String,
    /// The sanitised name it will be saved under (before a collision suffix).
    pub file_name: String,
    /// The part's `Content-Type`, if any.
    pub content_type: Option<String>,
}

/// The hook's verdict on a file (the seeds' `OnHTTPUploadBeforeSaveFile`, which can rename).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileDecision {
    /// Save it under [`FileInfo::file_name`].
    Save,
    /// Save it under this name (sanitised again; an unusable name becomes `upload`).
    SaveAs(String),
    /// Skip this file (its content is read and dropped) and go on with the others.
    Skip,
    /// Fail the whole upload with this status (403, 415, ...); nothing is kept.
    Reject(u16),
}

/// A hook that saves every file.
#[must_use]
pub fn save_all(_: &FileInfo) -> FileDecision {
    FileDecision::Save
}

/// A file written by [`save`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SavedFile {
    /// The form field name.
    pub field: String,
    /// The file name as the client sent it (untrusted).
    pub original_name: String,
    /// Where it was saved ([`UploadConfig::dir`] joined with the final name).
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// The part's `Content-Type`, if any.
    pub content_type: Option<String>,
}

impl SavedFile {
    /// The final file name (sanitised, with a collision suffix when one was needed).
    #[must_use]
    pub fn name(&self) -> &str {
        self.path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
    }
}

/// What [`save`] stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Upload {
    /// Saved files in the order of the body.
    pub files: Vec<SavedFile>,
    /// Form fields without a file name (`OnHTTPUploadReadInput`), in order; values are UTF-8
    /// (invalid sequences replaced).
    pub fields: Vec<(String, String)>,
}

impl Upload {
    /// The first field named `name`.
    #[must_use]
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Longest sanitised file name in bytes (collision suffixes come on top, below 255).
pub const MAX_FILE_NAME: usize = 200;
/// The name used when nothing usable is left of a file name.
pub const FALLBACK_NAME: &str = "upload";

/// A file name safe to create in a directory, or `None` when nothing usable is left: only
/// the last path component (`/` or `\`), without control characters, bidirectional
/// overrides or `<>:"|?*`, without leading dots or spaces (no hidden files, no `..`) and
/// trailing dots or spaces, not a Windows device name, at most [`MAX_FILE_NAME`] bytes
/// (keeping a short extension).
///
/// ```
/// use ws_server::multipart::sanitize_file_name as s;
/// assert_eq!(s("../../etc/passwd").as_deref(), Some("passwd"));
/// assert_eq!(s("C:\\Users\\x\\report.pdf").as_deref(), Some("report.pdf"));
/// assert_eq!(s(".htaccess").as_deref(), Some("htaccess"));
/// assert_eq!(s(".."), None);
/// ```
#[must_use]
pub fn sanitize_file_name(raw: &str) -> Option<String> {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .filter(|&c| {
            !c.is_control()
                && !matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
        })
        .map(|c| if "<>:\"|?*".contains(c) { '_' } else { c })
        .collect();
    let trimmed = cleaned
        .trim_start_matches(['.', ' '])
        .trim_end_matches(['.', ' ']);
    if trimmed.is_empty() {
        return None;
    }
    let mut name = trimmed.to_owned();
    let stem = name.split('.').next().unwrap_or_default().trim_end();
    const DEVICES: [&str; 4] = ["CON", "PRN", "AUX", "NUL"];
    let device = DEVICES.iter().any(|d| stem.eq_ignore_ascii_case(d))
        || (stem.len() == 4
            && (stem[..3].eq_ignore_ascii_case("COM") || stem[..3].eq_ignore_ascii_case("LPT"))
            && stem.as_bytes()[3].is_ascii_digit());
    if device {
        name.insert(0, '_');
    }
    if name.len() > MAX_FILE_NAME {
        let ext = name
            .rfind('.')
            .map(|i| &name[i..])
            .filter(|e| e.len() <= 16)
            .unwrap_or("")
            .to_owned();
        let mut cut = MAX_FILE_NAME - ext.len();
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        name.truncate(cut);
        let stem_end = name.trim_end_matches(['.', ' ']).len();
        name.truncate(stem_end);
        name.push_str(&ext);
    }
    Some(name)
}

/// `name` with `-n` before its extension (`a.tar.gz` becomes `a-1.tar.gz`).
fn with_suffix(name: &str, n: u32) -> String {
    match name.find('.') {
        Some(i) if i > 0 => format!("{}-{n}{}", &name[..i], &name[i..]),
        _ => format!("{name}-{n}"),
    }
}

/// Links the finished temporary file to a free name in `dir` (never replacing a file) and
/// removes the temporary name.
async fn commit(temp: &Path, dir: &Path, name: &str) -> io::Result<PathBuf> {
    for n in 0..10_000 {
        let candidate = if n == 0 {
            name.to_owned()
        } else {
            with_suffix(name, n)
        };
        let path = dir.join(&candidate);
        match tokio::fs::hard_link(temp, &path).await {
            Ok(()) => {
                tokio::fs::remove_file(temp).await?;
                return Ok(path);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(_) => {
                // No hard links here: reserve the name, then move the file onto it.
                match tokio::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .await
                {
                    Ok(_) => {
                        tokio::fs::rename(temp, &path).await?;
                        return Ok(path);
                    }
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Err(io::Error::other(format!("no free name for {name}")))
}

/// Removes what a failed or abandoned upload left: the partial file always, the files already
/// saved unless the upload succeeded.
#[derive(Debug, Default)]
struct Cleanup {
    temp: Option<PathBuf>,
    saved: Vec<PathBuf>,
    committed: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(t) = self.temp.take() {
            let _ = std::fs::remove_file(t);
        }
        if !self.committed {
            for p in self.saved.drain(..) {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

fn temp_name() -> Result<String, UploadError> {
    let mut r = [0u8; 12];
    getrandom::fill(&mut r).map_err(|e| io::Error::other(e.to_string()))?;
    let hex: String = r.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!(".wskit-upload-{hex}.part"))
}

enum Current {
    None,
    Skip,
    Field {
        name: String,
        value: Vec<u8>,
    },
    File {
        out: Box<tokio::io::BufWriter<tokio::fs::File>>,
        temp: PathBuf,
        name: String,
        field: String,
        original_name: String,
        content_type: Option<String>,
        size: u64,
    },
}

/// Reads a `multipart/form-data` body and saves its files in [`UploadConfig::dir`]: each
/// one streamed to a temporary `.wskit-upload-*.part` file (created exclusively), then given
/// its sanitised name ([`sanitize_file_name`]; `NAME-1`, `NAME-2`, ... when taken, never
/// overwriting). `hook` sees every file before anything is written and may rename, skip or
/// refuse it ([`FileDecision`]). A file input with no file chosen (`filename=""`) is skipped.
/// On any error nothing is kept: the partial file and the files already saved by this
/// request are removed (answer with [`UploadError::response`]).
///
/// # Errors
/// See [`UploadError`]: 415 when the body is not multipart, 400 when it is malformed or cut
/// short, 413 when a limit of `config` (or of the server) is exceeded, the hook's status when
/// it refuses a file, 500 when the file cannot be written.
pub async fn save<F>(
    request: &Request,
    body: &mut Body<'_>,
    config: &UploadConfig,
    mut hook: F,
) -> Result<Upload, UploadError>
where
    F: FnMut(&FileInfo) -> FileDecision,
{
    let content_type = request
        .header("content-type")
        .ok_or(UploadError::NotMultipart)?;
    let boundary = boundary(content_type)?;
    if body
        .content_length()
        .is_some_and(|n| n > config.max_total_size)
    {
        return Err(UploadError::TooLarge);
    }
    let mut parser = Parser::new(&boundary, config)?;
    tokio::fs::create_dir_all(&config.dir).await?;
    let mut upload = Upload::default();
    let mut cleanup = Cleanup::default();
    let mut current = Current::None;
    let mut total = 0u64;
    loop {
        let chunk = match body.chunk().await {
            Ok(Some(c)) => c,
            Ok(None) => {
                parser.finish()?;
                break;
            }
            Err(crate::Error::Http { status, reason }) => {
                return Err(UploadError::Body { status, reason });
            }
            Err(e) => {
                return Err(UploadError::Body {
                    status: 400,
                    reason: e.to_string(),
                });
            }
        };
        total += chunk.len() as u64;
        if total > config.max_total_size {
            return Err(UploadError::TooLarge);
        }
        parser.feed(&chunk);
        while let Some(event) = parser.poll()? {
            match event {
                Event::Part(h) => {
                    current = start_part(h, config, &mut hook, &mut cleanup).await?;
                }
                Event::Data(data) => match &mut current {
                    Current::File { out, size, .. } => {
                        *size += data.len() as u64;
                        if *size > config.max_file_size {
                            return Err(UploadError::FileTooLarge);
                        }
                        out.write_all(&data).await?;
                    }
                    Current::Field { value, .. } => {
                        if value.len() + data.len() > config.max_field_bytes {
                            return Err(UploadError::FieldTooLarge);
                        }
                        value.extend_from_slice(&data);
                    }
                    Current::Skip | Current::None => {}
                },
                Event::PartEnd => match std::mem::replace(&mut current, Current::None) {
                    Current::File {
                        mut out,
                        temp,
                        name,
                        field,
                        original_name,
                        content_type,
                        size,
                    } => {
                        out.flush().await?;
                        out.get_ref().sync_all().await?;
                        let path = commit(&temp, &config.dir, &name).await?;
                        cleanup.temp = None;
                        cleanup.saved.push(path.clone());
                        upload.files.push(SavedFile {
                            field,
                            original_name,
                            path,
                            size,
                            content_type,
                        });
                    }
                    Current::Field { name, value } => {
                        let value = match String::from_utf8(value) {
                            Ok(s) => s,
                            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
                        };
                        upload.fields.push((name, value));
                    }
                    Current::Skip | Current::None => {}
                },
                Event::End => {}
            }
        }
        if parser.is_done() {
            // The epilogue is left to the server, which discards it.
            break;
        }
    }
    cleanup.committed = true;
    Ok(upload)
}

async fn start_part<F>(
    h: PartHeaders,
    config: &UploadConfig,
    hook: &mut F,
    cleanup: &mut Cleanup,
) -> Result<Current, UploadError>
where
    F: FnMut(&FileInfo) -> FileDecision,
{
    if !h.form_data {
        return Err(UploadError::Malformed(
            "part without Content-Disposition: form-data",
        ));
    }
    let field = h
        .name
        .ok_or(UploadError::Malformed("part without a name"))?;
    let Some(original_name) = h.filename else {
        return Ok(Current::Field {
            name: field,
            value: Vec::new(),
        });
    };
    if original_name.is_empty() {
        return Ok(Current::Skip);
    }
    let info = FileInfo {
        file_name: sanitize_file_name(&original_name).unwrap_or_else(|| FALLBACK_NAME.into()),
        field,
        original_name,
        content_type: h.content_type,
    };
    let name = match hook(&info) {
        FileDecision::Save => info.file_name,
        FileDecision::SaveAs(n) => sanitize_file_name(&n).unwrap_or_else(|| FALLBACK_NAME.into()),
        FileDecision::Skip => return Ok(Current::Skip),
        FileDecision::Reject(status) => return Err(UploadError::Refused(status)),
    };
    let (file, temp) = loop {
        let temp = config.dir.join(temp_name()?);
        match tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .await
        {
            Ok(f) => break (f, temp),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e.into()),
        }
    };
    cleanup.temp = Some(temp.clone());
    Ok(Current::File {
        out: Box::new(tokio::io::BufWriter::with_capacity(64 << 10, file)),
        temp,
        name,
        field: info.field,
        original_name: info.original_name,
        content_type: info.content_type,
        size: 0,
    })
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

    fn parse(pieces: &[&[u8]], config: &UploadConfig) -> Result<Parts, UploadError> {
        let mut p = Parser::new(B, config)?;
        let mut parts: Parts = Vec::new();
        let mut ended = false;
        for piece in pieces {
            p.feed(piece);
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
    fn boundary_is_split_at_every_offset() {
        let content = tricky();
        let raw = body(&[
            ("note", None, b"hello"),
            ("file", Some("a.bin"), &content),
            ("empty", Some("e.txt"), b""),
        ]);
        let config = UploadConfig::default();
        let whole = parse(&[&raw], &config).unwrap();
        assert_eq!(whole.len(), 3);
        assert_eq!(whole[0].2, b"hello");
        assert_eq!(whole[1].2, content);
        assert_eq!(whole[1].1.as_deref(), Some("a.bin"));
        assert!(whole[2].2.is_empty());
        for cut in 0..=raw.len() {
            let got = parse(&[&raw[..cut], &raw[cut..]], &config).unwrap();
            assert_eq!(got, whole, "split at {cut}");
        }
        for cut in 0..raw.len() {
            let (a, rest) = raw.split_at(cut);
            let (b, c) = rest.split_at(rest.len().min(7));
            assert_eq!(
                parse(&[a, b, c], &config).unwrap(),
                whole,
                "split at {cut}+7"
            );
        }
        // One byte at a time.
        let bytes: Vec<&[u8]> = raw.chunks(1).collect();
        assert_eq!(parse(&bytes, &config).unwrap(), whole);
    }

    #[test]
    fn body_starting_with_the_delimiter_and_padding() {
        let raw =
            format!("--{B}  \t\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n--{B}--");
        let got = parse(&[raw.as_bytes()], &UploadConfig::default()).unwrap();
        assert_eq!(got, vec![(Some("a".into()), None, b"x".to_vec())]);
    }

    #[test]
    fn malformed_bodies_fail() {
        let config = UploadConfig::default();
        // Cut short.
        let raw = format!("--{B}\r\nContent-Disposition: form-data; name=a\r\n\r\nxx");
        assert!(matches!(
            parse(&[raw.as_bytes()], &config),
            Err(UploadError::Truncated)
        ));
        // Boundary followed by garbage: not a delimiter.
        let raw = format!("--{B}X\r\n\r\n");
        assert!(matches!(
            parse(&[raw.as_bytes()], &config),
            Err(UploadError::Truncated)
        ));
        // Header without a colon.
        let raw = format!("--{B}\r\nnonsense\r\n\r\nx\r\n--{B}--");
        assert!(matches!(
            parse(&[raw.as_bytes()], &config),
            Err(UploadError::Malformed(_))
        ));
        // No delimiter at all.
        assert!(matches!(
            parse(&[b"just text"], &config),
            Err(UploadError::Truncated)
        ));
    }

    #[test]
    fn part_header_limits() {
        let config = UploadConfig {
            max_part_header_bytes: 100,
            max_part_headers: 3,
            max_parts: 2,
            ..UploadConfig::default()
        };
        let big = format!(
            "--{B}\r\nContent-Disposition: form-data; name=\"{}\"\r\n\r\nx\r\n--{B}--",
            "n".repeat(200)
        );
        assert!(matches!(
            parse(&[big.as_bytes()], &config),
            Err(UploadError::HeadersTooLarge)
        ));
        // Never terminated: fails once the limit is passed, not at the end.
        let mut p = Parser::new(B, &config).unwrap();
        p.feed(format!("--{B}\r\nX-A: b").as_bytes());
        assert_eq!(p.poll().unwrap(), None);
        p.feed(&[b'a'; 200]);
        assert!(matches!(p.poll(), Err(UploadError::HeadersTooLarge)));
        assert!(p.poll().is_err());
        let many = format!("--{B}\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\nx\r\n--{B}--");
        assert!(matches!(
            parse(&[many.as_bytes()], &config),
            Err(UploadError::HeadersTooLarge)
        ));
        let raw = body(&[("a", None, b"1"), ("b", None, b"2"), ("c", None, b"3")]);
        assert!(matches!(
            parse(&[&raw], &config),
            Err(UploadError::TooManyParts)
        ));
    }

    #[test]
    fn memory_stays_bounded() {
        let mut p = Parser::new(B, &UploadConfig::default()).unwrap();
        p.feed(format!("--{B}\r\nContent-Disposition: form-data; name=f\r\n\r\n").as_bytes());
        assert!(matches!(p.poll().unwrap(), Some(Event::Part(_))));
        let chunk = vec![b'-'; 4096];
        for _ in 0..1000 {
            p.feed(&chunk);
            while let Some(ev) = p.poll().unwrap() {
                assert!(matches!(ev, Event::Data(_)));
            }
            assert!(p.buf.len() < B.len() + 4, "{}", p.buf.len());
        }
        // Preamble is not kept either.
        let mut p = Parser::new(B, &UploadConfig::default()).unwrap();
        for _ in 0..100 {
            p.feed(&chunk);
            assert_eq!(p.poll().unwrap(), None);
            assert!(p.buf.len() < B.len() + 4);
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
            Err(UploadError::NotMultipart)
        ));
        assert!(matches!(
            boundary("multipart/form-data"),
            Err(UploadError::BadBoundary)
        ));
        assert!(boundary(&format!("multipart/form-data; boundary={}", "x".repeat(71))).is_err());
        assert!(boundary("multipart/form-data; boundary=\"bad\r\n\"").is_err());
        assert!(boundary("multipart/form-data; boundary=\"trailing \"").is_err());
    }

    #[test]
    fn hostile_file_names() {
        let s = sanitize_file_name;
        assert_eq!(s("../../etc/passwd").as_deref(), Some("passwd"));
        assert_eq!(s("..\\..\\boot.ini").as_deref(), Some("boot.ini"));
        assert_eq!(s("C:\\x").as_deref(), Some("x"));
        assert_eq!(s("C:x").as_deref(), Some("C_x"));
        assert_eq!(s(".htaccess").as_deref(), Some("htaccess"));
        assert_eq!(s("...").as_deref(), None);
        assert_eq!(s("..").as_deref(), None);
        assert_eq!(s("/").as_deref(), None);
        assert_eq!(s("a\0b.txt").as_deref(), Some("ab.txt"));
        assert_eq!(s("a\r\nb\x7f.txt").as_deref(), Some("ab.txt"));
        assert_eq!(s("evil\u{202e}txt.exe").as_deref(), Some("eviltxt.exe"));
        assert_eq!(s("name. . ").as_deref(), Some("name"));
        assert_eq!(s("CON.txt").as_deref(), Some("_CON.txt"));
        assert_eq!(s("lpt1").as_deref(), Some("_lpt1"));
        assert_eq!(s("console.txt").as_deref(), Some("console.txt"));
        assert_eq!(s("a<b>|?*\".txt").as_deref(), Some("a_b_____.txt"));
        let long = format!("{}.tar.gz", "é".repeat(300));
        let cut = s(&long).unwrap();
        assert!(cut.len() <= MAX_FILE_NAME, "{}", cut.len());
        assert!(cut.ends_with(".gz"));
        assert!(cut.starts_with('é'));
        assert_eq!(with_suffix("a.tar.gz", 2), "a-2.tar.gz");
        assert_eq!(with_suffix("noext", 1), "noext-1");
    }

    #[test]
    fn errors_map_to_statuses() {
        assert_eq!(UploadError::NotMultipart.status(), 415);
        assert_eq!(UploadError::Truncated.status(), 400);
        assert_eq!(UploadError::FileTooLarge.status(), 413);
        assert_eq!(UploadError::Refused(403).status(), 403);
        let r = UploadError::Io(io::Error::other("/secret/path")).response();
        assert_eq!(r.status, 500);
        assert!(!String::from_utf8_lossy(&r.body).contains("secret"));
    }
}
