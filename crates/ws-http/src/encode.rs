//! Builders that append request and response heads to a caller-owned buffer. Every piece is
//! validated before anything is written, so a header value from user input can never inject
//! a line break.

use bytes::BytesMut;

use crate::{
    Error,
    headers::{is_field_value, is_token},
};

/// The standard reason phrase for `status` (RFC 9110 section 15), or `""` for unknown codes.
#[must_use]
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// Checks names (tokens) and values (no CR, LF, NUL or other controls).
pub(crate) fn check_fields(fields: &[(&str, &str)]) -> Result<(), Error> {
    for (name, value) in fields {
        if !is_token(name) {
            return Err(Error::InvalidField("header name"));
        }
        if !is_field_value(value) {
            return Err(Error::InvalidField("header value"));
        }
    }
    Ok(())
}

/// Writes `name: value\r\n` lines (already checked).
pub(crate) fn write_fields(out: &mut BytesMut, fields: &[(&str, &str)]) {
    for (name, value) in fields {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.trim().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// Appends an HTTP/1.1 request head (`method target HTTP/1.1`, the fields, the empty line) to
/// `out`. The caller supplies every field, `Host` and body framing included. Returns the
/// number of bytes written.
///
/// # Errors
/// [`Error::InvalidField`] for a method that is not a token, a target that is empty or holds
/// spaces or controls, or an invalid field; nothing is written then.
pub fn write_request_head(
    out: &mut BytesMut,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> Result<usize, Error> {
    if !is_token(method) {
        return Err(Error::InvalidField("method"));
    }
    if target.is_empty() || !target.bytes().all(|b| (0x21..0x7f).contains(&b)) {
        return Err(Error::InvalidField("request target"));
    }
    check_fields(headers)?;
    let start = out.len();
    out.reserve(method.len() + target.len() + 13 + headers.len() * 32);
    out.extend_from_slice(method.as_bytes());
    out.extend_from_slice(b" ");
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    write_fields(out, headers);
    out.extend_from_slice(b"\r\n");
    Ok(out.len() - start)
}

/// Appends an HTTP/1.1 response head to `out`: status line (with `reason`, or the standard
/// phrase from [`reason_phrase`] when `None`), the fields exactly as given, and the empty line.
/// The caller is responsible for body framing (`Content-Length` or `Transfer-Encoding:
/// chunked` followed by a [`crate::ChunkedEncoder`]). Returns the number of bytes written.
///
/// # Errors
/// [`Error::InvalidField`] for a status outside 100..=999, a reason or a field with CR, LF or
/// controls, or a field name that is not a token; nothing is written then.
pub fn write_response_head(
    out: &mut BytesMut,
    status: u16,
    reason: Option<&str>,
    headers: &[(&str, &str)],
) -> Result<usize, Error> {
    if !(100..=999).contains(&status) {
        return Err(Error::InvalidField("status"));
    }
    let reason = reason.unwrap_or_else(|| reason_phrase(status));
    if !is_field_value(reason) {
        return Err(Error::InvalidField("reason phrase"));
    }
    check_fields(headers)?;
    let start = out.len();
    out.extend_from_slice(format!("HTTP/1.1 {status} ").as_bytes());
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    write_fields(out, headers);
    out.extend_from_slice(b"\r\n");
    Ok(out.len() - start)
}

/// Appends a complete response: the head from [`write_response_head`] with the standard reason
/// phrase, `headers`, `Content-Length: body.len()`, `Connection: close` unless `keep_alive`,
/// then `body`. Returns the number of bytes written.
///
/// ```
/// let mut out = bytes::BytesMut::new();
/// ws_http::write_response(&mut out, 404, &[("Content-Type", "text/plain")], b"nope", false)?;
/// assert_eq!(
///     &out[..],
///     &b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\
///        Connection: close\r\n\r\nnope"[..]
/// );
/// # Ok::<(), ws_http::Error>(())
/// ```
///
/// # Errors
/// As [`write_response_head`], and [`Error::InvalidField`] when `headers` carry
/// `Content-Length` or `Transfer-Encoding` (this function frames the body itself), or when the
/// status forbids a body (1xx, 204, 304) but `body` is not empty.
pub fn write_response(
    out: &mut BytesMut,
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
    keep_alive: bool,
) -> Result<usize, Error> {
    if headers.iter().any(|(n, _)| {
        n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("transfer-encoding")
    }) {
        return Err(Error::InvalidField("body framing header"));
    }
    let no_body = (100..200).contains(&status) || status == 204 || status == 304;
    if no_body && !body.is_empty() {
        return Err(Error::InvalidField("body"));
    }
    let length = body.len().to_string();
    let mut all: Vec<(&str, &str)> = Vec::with_capacity(headers.len() + 2);
    all.extend_from_slice(headers);
    if !no_body {
        all.push(("Content-Length", &length));
    }
    if !keep_alive {
        all.push(("Connection", "close"));
    }
    let n = write_response_head(out, status, None, &all)?;
    out.extend_from_slice(body);
    Ok(n + body.len())
}

impl Error {
    /// Appends the complete response a server sends for this error to `out`: the status from
    /// [`Error::status`], [`Error::response_headers`], `Connection: close`, and the error text as
    /// a `text/plain` body. Returns the number of bytes written.
    pub fn write_response(&self, out: &mut BytesMut) -> usize {
        let status = self.status();
        // 204 and 304 (possible for a relayed Rejection) carry no body.
        let body = if status == 204 || status == 304 {
            String::new()
        } else {
            self.to_string()
        };
        let mut headers: Vec<(&str, &str)> = self.response_headers().to_vec();
        headers.push(("Content-Type", "text/plain; charset=utf-8"));
        // Every piece is a constant or our own Display text: writing cannot fail.
        write_response(out, status, &headers, body.as_bytes(), false).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn injection_is_refused_and_nothing_written() {
        let mut out = BytesMut::new();
        for bad in [
            write_response(&mut out, 200, &[("X", "a\r\nEvil: 1")], b"", true),
            write_response(&mut out, 200, &[("X Y", "a")], b"", true),
            write_response(&mut out, 200, &[("X", "a\0")], b"", true),
            write_response(&mut out, 200, &[("Content-Length", "1")], b"", true),
            write_response(&mut out, 204, &[], b"x", true),
            write_response(&mut out, 99, &[], b"", true),
            write_response_head(&mut out, 200, Some("O\nK"), &[]),
            write_request_head(&mut out, "GET", "/a b", &[]),
            write_request_head(&mut out, "G(T", "/", &[]),
            write_request_head(&mut out, "GET", "", &[]),
        ] {
            assert!(matches!(bad, Err(Error::InvalidField(_))), "{bad:?}");
        }
        assert!(out.is_empty());
    }

    #[test]
    fn heads_are_written() {
        let mut out = BytesMut::new();
        let n = write_request_head(&mut out, "GET", "/x?y", &[("Host", "h")]).unwrap();
        assert_eq!(&out[..], b"GET /x?y HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(n, out.len());
        out.clear();
        write_response(&mut out, 204, &[], b"", true).unwrap();
        assert_eq!(&out[..], b"HTTP/1.1 204 No Content\r\n\r\n");
        out.clear();
        write_response_head(&mut out, 799, None, &[]).unwrap();
        assert_eq!(&out[..], b"HTTP/1.1 799 \r\n\r\n");
    }
}
