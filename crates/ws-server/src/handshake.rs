//! HTTP request heads and the server side of the opening handshake (RFC 6455 section 4.2).
//!
//! Parsing is bounded by [`HttpLimits`]; everything here is synchronous and allocation-light.

use std::{fmt::Write as _, net::SocketAddr};

use base64::Engine as _;
use sha1::{Digest, Sha1};
use ws_frame::deflate::{DeflateConfig, DeflateParams, EXTENSION_NAME};

use crate::{
    config::HttpLimits,
    error::Error,
    handler::{Request, Response},
};

const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Outcome of looking at the bytes received so far.
#[derive(Debug)]
pub(crate) enum Head {
    /// Need more bytes.
    Partial,
    /// A complete request head of this many bytes.
    Complete(Request, usize),
    /// The bytes are not HTTP at all (candidate for plain-TCP mode).
    NotHttp,
}

fn bad(status: u16, reason: impl Into<String>) -> Error {
    Error::Http {
        status,
        reason: reason.into(),
    }
}

/// Parses a request head.
pub(crate) fn parse(
    buf: &[u8],
    limits: &HttpLimits,
    peer: SocketAddr,
    local: SocketAddr,
    tls: bool,
) -> Result<Head, Error> {
    if !looks_like_http(buf) {
        return Ok(Head::NotHttp);
    }
    let mut headers = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut req = httparse::Request::new(&mut headers);
    let status = match req.parse(buf) {
        Ok(s) => s,
        Err(httparse::Error::TooManyHeaders) => {
            return Err(bad(431, "too many header fields"));
        }
        Err(e) => return Err(bad(400, e.to_string())),
    };
    let httparse::Status::Complete(len) = status else {
        if buf.len() > limits.max_head_bytes {
            return Err(bad(431, "request head too large"));
        }
        return Ok(Head::Partial);
    };
    if len > limits.max_head_bytes {
        return Err(bad(431, "request head too large"));
    }
    let method = req.method.unwrap_or("").to_owned();
    let target = req.path.unwrap_or("").to_owned();
    if req.version != Some(1) {
        return Err(bad(505, "HTTP/1.1 required"));
    }
    let mut out = Vec::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let value = std::str::from_utf8(h.value)
            .map_err(|_| bad(400, format!("header {} is not UTF-8", h.name)))?;
        out.push((h.name.to_owned(), value.trim().to_owned()));
    }
    Ok(Head::Complete(
        Request {
            method,
            target,
            headers: out,
            peer,
            local,
            tls,
            user: None,
        },
        len,
    ))
}

/// Whether `buf` can be the start of a request line: an upper-case method of at most 16
/// letters followed by a space (or not complete yet).
fn looks_like_http(buf: &[u8]) -> bool {
    for (i, &b) in buf.iter().take(17).enumerate() {
        if b == b' ' {
            return i > 0;
        }
        if !b.is_ascii_uppercase() {
            return false;
        }
    }
    buf.len() < 17
}

fn has_token(req: &Request, name: &str, token: &str) -> bool {
    req.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .flat_map(|(_, v)| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Whether the request asks for a WebSocket upgrade at all.
pub(crate) fn is_upgrade(req: &Request) -> bool {
    has_token(req, "upgrade", "websocket")
}

/// Checks the upgrade request and returns the `Sec-WebSocket-Accept` value.
pub(crate) fn validate(req: &Request) -> Result<String, Error> {
    if req.method != "GET" {
        return Err(bad(405, "WebSocket upgrade requires GET"));
    }
    if !has_token(req, "connection", "upgrade") {
        return Err(bad(400, "Connection: Upgrade missing"));
    }
    if req.header("sec-websocket-version") != Some("13") {
        return Err(bad(426, "unsupported Sec-WebSocket-Version (13 required)"));
    }
    let key = req
        .header("sec-websocket-key")
        .ok_or_else(|| bad(400, "Sec-WebSocket-Key missing"))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(key)
        .map_err(|_| bad(400, "Sec-WebSocket-Key is not base64"))?;
    if decoded.len() != 16 {
        return Err(bad(400, "Sec-WebSocket-Key must be 16 bytes"));
    }
    Ok(accept_key(key))
}

/// `Sec-WebSocket-Accept` for a key.
pub(crate) fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// Splits one extension offer `name; a; b=1; c="2"`.
fn split_offer(offer: &str) -> (&str, Vec<(&str, Option<&str>)>) {
    let mut parts = offer.split(';').map(str::trim);
    let name = parts.next().unwrap_or("");
    let params = parts
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim().trim_matches('"'))),
            None => (p, None),
        })
        .collect();
    (name, params)
}

/// Answers the first acceptable permessage-deflate offer.
pub(crate) fn negotiate_deflate(req: &Request, config: &DeflateConfig) -> Option<DeflateParams> {
    req.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-extensions"))
        .flat_map(|(_, v)| v.split(','))
        .find_map(|offer| {
            let (name, params) = split_offer(offer);
            if !name.eq_ignore_ascii_case(EXTENSION_NAME) {
                return None;
            }
            config.accept_offer(&params).ok().flatten()
        })
}

/// The server's default subprotocol choice: the client's first offer we support.
pub(crate) fn choose_protocol(req: &Request, supported: &[String]) -> Option<String> {
    req.protocols()
        .into_iter()
        .find(|p| supported.iter().any(|s| s == p))
        .map(str::to_owned)
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

fn safe(s: &str) -> bool {
    !s.contains(['\r', '\n'])
}

/// The 101 response.
pub(crate) fn switching(
    accept: &str,
    protocol: Option<&str>,
    extensions: Option<&str>,
    headers: &[(String, String)],
    server: &str,
) -> Vec<u8> {
    let mut s = String::with_capacity(160);
    s.push_str("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n");
    let _ = write!(s, "Sec-WebSocket-Accept: {accept}\r\n");
    if let Some(p) = protocol {
        let _ = write!(s, "Sec-WebSocket-Protocol: {p}\r\n");
    }
    if let Some(e) = extensions {
        let _ = write!(s, "Sec-WebSocket-Extensions: {e}\r\n");
    }
    if !server.is_empty() && safe(server) {
        let _ = write!(s, "Server: {server}\r\n");
    }
    for (n, v) in headers.iter().filter(|(n, v)| safe(n) && safe(v)) {
        let _ = write!(s, "{n}: {v}\r\n");
    }
    s.push_str("\r\n");
    s.into_bytes()
}

/// A complete non-101 response; the connection closes after it.
pub(crate) fn response(resp: &Response, server: &str, head_only: bool) -> Vec<u8> {
    let mut s = String::with_capacity(128 + resp.body.len());
    let _ = write!(
        s,
        "HTTP/1.1 {} {}\r\n",
        resp.status,
        reason_phrase(resp.status)
    );
    if !server.is_empty() && safe(server) {
        let _ = write!(s, "Server: {server}\r\n");
    }
    for (n, v) in resp.headers.iter().filter(|(n, v)| safe(n) && safe(v)) {
        let _ = write!(s, "{n}: {v}\r\n");
    }
    let _ = write!(
        s,
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        resp.body.len()
    );
    let mut out = s.into_bytes();
    if !head_only {
        out.extend_from_slice(&resp.body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 1))
    }

    fn parse_ok(raw: &str) -> Request {
        match parse(
            raw.as_bytes(),
            &HttpLimits::default(),
            addr(),
            addr(),
            false,
        )
        .unwrap()
        {
            Head::Complete(r, n) => {
                assert_eq!(n, raw.len());
                r
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rfc6455_accept_key() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        // The seeds' vector.
        assert_eq!(
            accept_key("1n598ldHs9SdRfxUK8u4Vw=="),
            "gDuzFRzwHBc18P1CfinlvKv1BJc="
        );
    }

    #[test]
    fn upgrade_request_is_validated_and_negotiated() {
        let req = parse_ok(
            "GET /chat?x=1 HTTP/1.1\r\nHost: a\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Protocol: mqtt, chat\r\n\
             Sec-WebSocket-Extensions: x-webkit-deflate-frame, permessage-deflate; client_max_window_bits\r\n\r\n",
        );
        assert!(is_upgrade(&req));
        assert_eq!(validate(&req).unwrap(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(
            choose_protocol(&req, &["chat".into(), "mqtt".into()]).as_deref(),
            Some("mqtt")
        );
        assert_eq!(choose_protocol(&req, &["x".into()]), None);
        let params = negotiate_deflate(&req, &DeflateConfig::default()).unwrap();
        assert!(params.response_value().starts_with("permessage-deflate"));
        assert_eq!(req.path(), "/chat");
        assert_eq!(req.query_param("x").as_deref(), Some("1"));
    }

    #[test]
    fn bad_upgrades_get_the_right_status() {
        let base = "Host: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
        let status = |raw: String| match validate(&parse_ok(&raw)) {
            Err(Error::Http { status, .. }) => status,
            other => panic!("{other:?}"),
        };
        assert_eq!(status(format!("GET / HTTP/1.1\r\n{base}\r\n")), 426);
        assert_eq!(
            status(format!(
                "POST / HTTP/1.1\r\n{base}Sec-WebSocket-Version: 13\r\n\r\n"
            )),
            405
        );
        assert_eq!(
            status(
                "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: abc\r\n\r\n"
                    .into()
            ),
            400
        );
    }

    #[test]
    fn non_http_and_limits() {
        let l = HttpLimits::default();
        for raw in [&b"\x16\x03\x01\x02"[..], b"hello world\n", b"\x00\x01"] {
            assert!(matches!(
                parse(raw, &l, addr(), addr(), false).unwrap(),
                Head::NotHttp
            ));
        }
        assert!(matches!(
            parse(b"GET / HT", &l, addr(), addr(), false).unwrap(),
            Head::Partial
        ));
        let small = HttpLimits {
            max_head_bytes: 64,
            max_headers: 2,
        };
        let many = "GET / HTTP/1.1\r\na: 1\r\nb: 2\r\nc: 3\r\n\r\n";
        assert!(matches!(
            parse(many.as_bytes(), &small, addr(), addr(), false),
            Err(Error::Http { status: 431, .. })
        ));
        let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(100));
        assert!(matches!(
            parse(long.as_bytes(), &small, addr(), addr(), false),
            Err(Error::Http { status: 431, .. })
        ));
    }

    #[test]
    fn responses_are_well_formed() {
        let r = String::from_utf8(switching("abc", Some("chat"), None, &[], "wskit")).unwrap();
        assert!(r.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
        assert!(r.contains("Sec-WebSocket-Protocol: chat\r\n"));
        assert!(r.ends_with("\r\n\r\n"));
        let r = response(
            &Response::text(404, "nope").with_header("X-Evil", "a\r\nb"),
            "",
            false,
        );
        let r = String::from_utf8(r).unwrap();
        assert!(r.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(!r.contains("X-Evil"));
        assert!(r.ends_with("\r\n\r\nnope"));
    }
}
