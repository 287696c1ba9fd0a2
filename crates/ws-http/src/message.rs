//! Request and response heads: parsing (limits first, then httparse), framing and keep-alive.

use crate::{
    Error, Headers, Limits,
    error::{FramingError, Malformed},
    head::{BodyKind, Parsed, Request, Response, Version},
    scan::{self, Kind},
};

/// Whether `prefix` (the first bytes a client sent) can be the start of an HTTP request: an
/// upper-case method (letters, `-`, `_`, at most 16 bytes) followed by a space. An empty or
/// short prefix that could still become one is `true`; a TLS ClientHello, a binary protocol or
/// a lower-case greeting is `false`, which lets a server fall back to plain TCP.
///
/// ```
/// assert!(ws_http::looks_like_http(b"GET / HTTP/1.1\r\n"));
/// assert!(ws_http::looks_like_http(b"OPTIO"));
/// assert!(!ws_http::looks_like_http(b"\x16\x03\x01"));
/// assert!(!ws_http::looks_like_http(b"hello\n"));
/// ```
#[must_use]
pub fn looks_like_http(prefix: &[u8]) -> bool {
    const MAX_METHOD: usize = 16;
    for (i, &b) in prefix.iter().take(MAX_METHOD + 1).enumerate() {
        if b == b' ' {
            return i > 0;
        }
        if !(b.is_ascii_uppercase() || b == b'-' || b == b'_') {
            return false;
        }
    }
    prefix.len() <= MAX_METHOD
}

fn version_of(v: Option<u8>) -> Result<Version, Error> {
    match v {
        Some(0) => Ok(Version::Http10),
        Some(1) => Ok(Version::Http11),
        _ => Err(Error::UnsupportedVersion),
    }
}

fn httparse_error(e: httparse::Error, limits: &Limits) -> Error {
    match e {
        httparse::Error::TooManyHeaders => Error::TooManyHeaders {
            max: limits.max_headers,
        },
        httparse::Error::Version => Error::UnsupportedVersion,
        other => Malformed::Syntax(other).into(),
    }
}

/// Parses a request head from the start of `src`.
///
/// Limits are enforced on incomplete input too, so a peer cannot make the caller buffer more
/// than [`Limits::max_head_bytes`]. Leading empty lines are skipped (RFC 9112 section 2.2).
/// Never panics.
///
/// ```
/// use ws_http::{Limits, Parsed, parse_request};
/// let raw = b"GET /chat?room=1 HTTP/1.1\r\nHost: example.com\r\n\r\nrest";
/// let Parsed::Complete(req, len) = parse_request(raw, &Limits::default())? else { panic!() };
/// assert_eq!((req.method(), req.path(), req.query()), ("GET", "/chat", Some("room=1")));
/// assert_eq!(&raw[len..], b"rest");
/// assert_eq!(parse_request(&raw[..10], &Limits::default())?, Parsed::Partial);
/// # Ok::<(), ws_http::Error>(())
/// ```
///
/// # Errors
/// [`Error::UriTooLong`], [`Error::HeaderLineTooLong`], [`Error::TooManyHeaders`],
/// [`Error::HeadTooLarge`] for broken limits; [`Error::Malformed`] for syntax errors, non-UTF-8
/// values, a missing (HTTP/1.1) or repeated `Host`; [`Error::UnsupportedVersion`].
pub fn parse_request(src: &[u8], limits: &Limits) -> Result<Parsed<Request>, Error> {
    let Some(scanned) = scan::scan(src, limits, Kind::Request)? else {
        return Ok(Parsed::Partial);
    };
    let head = &src[..scanned.len];
    let mut fields = vec![httparse::EMPTY_HEADER; scanned.fields.min(limits.max_headers)];
    let mut req = httparse::Request::new(&mut fields);
    let len = match req.parse(head) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            return Err(Malformed::Syntax(httparse::Error::NewLine).into());
        }
        Err(e) => return Err(httparse_error(e, limits)),
    };
    let version = version_of(req.version)?;
    let headers = from_httparse(req.headers)?;
    match headers.count("host") {
        0 if version == Version::Http11 => return Err(Malformed::MissingHost.into()),
        0 | 1 => {}
        _ => return Err(Malformed::DuplicateHost.into()),
    }
    let request = Request {
        method: req.method.unwrap_or_default().to_owned(),
        target: req.path.unwrap_or_default().to_owned(),
        version,
        headers,
        head_len: len,
    };
    Ok(Parsed::Complete(request, len))
}

/// Parses a response head from the start of `src`; the status line is bounded by
/// [`Limits::max_request_line`]. Never panics.
///
/// # Errors
/// As [`parse_request`] (a long status line is [`Error::HeadTooLarge`]).
pub fn parse_response(src: &[u8], limits: &Limits) -> Result<Parsed<Response>, Error> {
    let Some(scanned) = scan::scan(src, limits, Kind::Response)? else {
        return Ok(Parsed::Partial);
    };
    let head = &src[..scanned.len];
    let mut fields = vec![httparse::EMPTY_HEADER; scanned.fields.min(limits.max_headers)];
    let mut resp = httparse::Response::new(&mut fields);
    // httparse does not skip leading empty lines in responses; the scanner allows them.
    let len = match resp.parse(&head[scanned.start..]) {
        Ok(httparse::Status::Complete(len)) => len + scanned.start,
        Ok(httparse::Status::Partial) => {
            return Err(Malformed::Syntax(httparse::Error::NewLine).into());
        }
        Err(e) => return Err(httparse_error(e, limits)),
    };
    let version = version_of(resp.version)?;
    let headers = from_httparse(resp.headers)?;
    let response = Response {
        status: resp.code.unwrap_or_default(),
        reason: resp.reason.unwrap_or_default().to_owned(),
        version,
        headers,
        head_len: len,
    };
    Ok(Parsed::Complete(response, len))
}

/// RFC 9112 section 9.3: persistence from the version and the `Connection` tokens.
fn keep_alive(version: Version, headers: &Headers) -> bool {
    if headers.has_token("connection", "close") {
        return false;
    }
    match version {
        Version::Http11 => true,
        Version::Http10 => headers.has_token("connection", "keep-alive"),
    }
}

/// `Content-Length` of a message: every value (lines and list elements) must be the same
/// decimal number.
fn content_length(headers: &Headers) -> Result<Option<u64>, Error> {
    let mut found: Option<u64> = None;
    for v in headers.get_all("content-length").flat_map(|v| v.split(',')) {
        let v = v.trim();
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(FramingError::InvalidContentLength.into());
        }
        let n: u64 = v.parse().map_err(|_| FramingError::InvalidContentLength)?;
        match found {
            Some(prev) if prev != n => return Err(FramingError::DifferingContentLengths.into()),
            _ => found = Some(n),
        }
    }
    Ok(found)
}

/// Framing shared by requests and responses. `Ok(None)`: no `Transfer-Encoding`, no
/// `Content-Length`.
fn framing(version: Version, headers: &Headers, request: bool) -> Result<Option<BodyKind>, Error> {
    let has_te = headers.contains("transfer-encoding");
    let length = content_length(headers);
    if !has_te {
        return Ok(length?.map(BodyKind::Length));
    }
    if headers.contains("content-length") {
        return Err(FramingError::ContentLengthWithTransferEncoding.into());
    }
    if version == Version::Http10 {
        return Err(FramingError::TransferEncodingInHttp10.into());
    }
    let codings: Vec<&str> = headers
        .tokens("transfer-encoding")
        .map(|c| c.split(';').next().unwrap_or("").trim())
        .collect();
    let chunked = codings
        .iter()
        .filter(|c| c.eq_ignore_ascii_case("chunked"))
        .count();
    if chunked > 1 {
        return Err(FramingError::ChunkedRepeated.into());
    }
    let last_chunked = codings
        .last()
        .is_some_and(|c| c.eq_ignore_ascii_case("chunked"));
    if !last_chunked {
        if request || codings.is_empty() || chunked > 0 {
            return Err(FramingError::ChunkedNotFinal.into());
        }
        // A response whose final coding is not chunked runs until the connection closes; the
        // coding applies to that body, which this crate hands over as it is.
        if codings.iter().any(|c| !c.eq_ignore_ascii_case("identity")) {
            return Err(FramingError::UnsupportedCoding.into());
        }
        return Ok(Some(BodyKind::CloseDelimited));
    }
    if codings.len() > 1 {
        return Err(FramingError::UnsupportedCoding.into());
    }
    Ok(Some(BodyKind::Chunked))
}

/// Splits a request target into path and query, removing scheme and authority from an
/// absolute-form target.
fn split_target(target: &str) -> (&str, Option<&str>) {
    let without_fragment = target.split('#').next().unwrap_or("");
    let rest = match without_fragment.find("://") {
        Some(i) if !without_fragment.starts_with('/') => {
            let after = &without_fragment[i + 3..];
            match after.find(['/', '?']) {
                Some(j) => &after[j..],
                None => "",
            }
        }
        _ => without_fragment,
    };
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    (if path.is_empty() { "/" } else { path }, query)
}

/// Decodes a query component (`application/x-www-form-urlencoded`): `%XX` escapes and `+` as
/// a space; `None` for a bad escape or a result that is not UTF-8.
///
/// ```
/// assert_eq!(ws_http::percent_decode("a%20b+c").as_deref(), Some("a b c"));
/// assert_eq!(ws_http::percent_decode("%zz"), None);
/// ```
#[must_use]
pub fn percent_decode(s: &str) -> Option<String> {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hi = hex(*bytes.get(i + 1)?)?;
                let lo = hex(*bytes.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

impl Request {
    /// The method, as sent (methods are case-sensitive: `GET`, not `get`).
    #[must_use]
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The request target as sent: `/chat?room=1`, an absolute URI, `host:port` (CONNECT) or
    /// `*`.
    #[must_use]
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The path of the target (`/` when an absolute-form target has none).
    #[must_use]
    pub fn path(&self) -> &str {
        split_target(&self.target).0
    }

    /// The query of the target, without `?`.
    #[must_use]
    pub fn query(&self) -> Option<&str> {
        split_target(&self.target).1
    }

    /// The first query parameter named `name` (compared after decoding), percent- and
    /// `+`-decoded; `None` when absent or not decodable to UTF-8.
    #[must_use]
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query()?.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k).as_deref() == Some(name))
                .then(|| percent_decode(v))
                .flatten()
        })
    }

    /// The HTTP version.
    #[must_use]
    pub fn version(&self) -> Version {
        self.version
    }

    /// The header fields.
    #[must_use]
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The first header field named `name` (ASCII case-insensitive).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// The `Host` field (always present in a parsed HTTP/1.1 request).
    #[must_use]
    pub fn host(&self) -> Option<&str> {
        self.headers.get("host")
    }

    /// Length of the head in bytes, leading empty lines and the final empty line included.
    #[must_use]
    pub fn head_len(&self) -> usize {
        self.head_len
    }

    /// Whether the connection stays open after this exchange (RFC 9112 section 9.3): HTTP/1.1
    /// unless `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`.
    #[must_use]
    pub fn keep_alive(&self) -> bool {
        keep_alive(self.version, &self.headers)
    }

    /// Whether this asks for a WebSocket upgrade (`Upgrade: websocket`); validate it with
    /// [`crate::UpgradeRequest::from_request`].
    #[must_use]
    pub fn is_websocket_upgrade(&self) -> bool {
        self.headers.has_token("upgrade", "websocket")
    }

    /// How the request body is delimited (RFC 9112 section 6.3); no framing fields means no body.
    ///
    /// # Errors
    /// [`Error::Framing`] for every ambiguity a request smuggler could use: both
    /// `Content-Length` and `Transfer-Encoding`, differing or invalid `Content-Length` values,
    /// a final coding other than `chunked`, `chunked` twice, `Transfer-Encoding` in HTTP/1.0
    /// (all 400), or an unsupported coding before `chunked` (501).
    pub fn body_kind(&self) -> Result<BodyKind, Error> {
        Ok(framing(self.version, &self.headers, true)?.unwrap_or(BodyKind::Length(0)))
    }
}

impl Response {
    /// The status code (100..=999 as sent).
    #[must_use]
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The reason phrase as sent (may be empty).
    #[must_use]
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The HTTP version.
    #[must_use]
    pub fn version(&self) -> Version {
        self.version
    }

    /// The header fields.
    #[must_use]
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The first header field named `name` (ASCII case-insensitive).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// Length of the head in bytes.
    #[must_use]
    pub fn head_len(&self) -> usize {
        self.head_len
    }

    /// How the body of this response to a `request_method` request is delimited (RFC 9112
    /// section 6.3): none for HEAD, 1xx, 204, 304 and a 2xx answer to CONNECT; then
    /// `Transfer-Encoding`, `Content-Length`, or until the connection closes.
    ///
    /// # Errors
    /// [`Error::Framing`] as for [`Request::body_kind`], except that a final coding other than
    /// `chunked` means a close-delimited body (only `identity` is accepted there).
    pub fn body_kind(&self, request_method: &str) -> Result<BodyKind, Error> {
        if request_method == "HEAD"
            || (100..200).contains(&self.status)
            || self.status == 204
            || self.status == 304
            || (request_method == "CONNECT" && (200..300).contains(&self.status))
        {
            return Ok(BodyKind::Length(0));
        }
        Ok(framing(self.version, &self.headers, false)?.unwrap_or(BodyKind::CloseDelimited))
    }

    /// Whether the connection stays open after this response: as [`Request::keep_alive`], and
    /// never when the body is close-delimited or the framing is invalid.
    #[must_use]
    pub fn keep_alive(&self, request_method: &str) -> bool {
        keep_alive(self.version, &self.headers)
            && matches!(
                self.body_kind(request_method),
                Ok(BodyKind::Length(_) | BodyKind::Chunked)
            )
    }
}

/// Converts httparse's borrowed fields.
pub(crate) fn from_httparse(fields: &[httparse::Header<'_>]) -> Result<Headers, Error> {
    let mut out = Vec::with_capacity(fields.len());
    for f in fields {
        let value = std::str::from_utf8(f.value).map_err(|_| Malformed::NotUtf8)?;
        out.push((f.name.to_owned(), value.trim().to_owned()));
    }
    Ok(crate::headers::from_fields(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(raw: &str) -> Result<Request, Error> {
        match parse_request(raw.as_bytes(), &Limits::default())? {
            Parsed::Complete(r, n) => {
                assert_eq!(n, raw.len());
                assert_eq!(r.head_len(), n);
                Ok(r)
            }
            Parsed::Partial => panic!("partial: {raw:?}"),
        }
    }

    #[test]
    fn targets_split_into_path_and_query() {
        for (target, path, query) in [
            ("/a/b?x=1&y", "/a/b", Some("x=1&y")),
            ("/", "/", None),
            ("http://h:1/p?q", "/p", Some("q")),
            ("http://h:1", "/", None),
            ("http://h?q", "/", Some("q")),
            ("*", "*", None),
        ] {
            assert_eq!(split_target(target), (path, query), "{target}");
        }
    }

    #[test]
    fn query_params_are_decoded() {
        let r = req("GET /?a=1&b=x%20y+z&%63=3&bad=%zz HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        assert_eq!(r.query_param("a").as_deref(), Some("1"));
        assert_eq!(r.query_param("b").as_deref(), Some("x y z"));
        assert_eq!(r.query_param("c").as_deref(), Some("3"));
        assert_eq!(r.query_param("bad"), None);
        assert_eq!(r.query_param("none"), None);
    }

    #[test]
    fn host_rules() {
        assert!(matches!(
            req("GET / HTTP/1.1\r\n\r\n"),
            Err(Error::Malformed(Malformed::MissingHost))
        ));
        assert!(req("GET / HTTP/1.0\r\n\r\n").is_ok());
        assert!(matches!(
            req("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n"),
            Err(Error::Malformed(Malformed::DuplicateHost))
        ));
    }

    #[test]
    fn versions() {
        assert!(matches!(
            req("GET / HTTP/2.0\r\nHost: a\r\n\r\n"),
            Err(Error::UnsupportedVersion)
        ));
        assert_eq!(
            req("GET / HTTP/1.0\r\n\r\n").unwrap().version(),
            Version::Http10
        );
    }

    #[test]
    fn response_with_leading_empty_line() {
        let raw = b"\r\nHTTP/1.1 204 No Content\r\nA: b\r\n\r\n";
        let Parsed::Complete(r, n) = parse_response(raw, &Limits::default()).unwrap() else {
            panic!()
        };
        assert_eq!((r.status(), r.reason(), n), (204, "No Content", raw.len()));
        assert_eq!(r.body_kind("GET").unwrap(), BodyKind::Length(0));
    }
}
