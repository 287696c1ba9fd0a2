//! `Sec-WebSocket-Extensions` (RFC 6455 section 9.1) and `Sec-WebSocket-Protocol` values.

use std::fmt;

use crate::{
    Error, Headers,
    error::HandshakeError,
    headers::{is_tchar, is_token},
};

/// One element of a `Sec-WebSocket-Extensions` list: `name; param; param=value`. Names and
/// parameter names are tokens; values are tokens (a quoted value is unquoted on parsing and
/// quoted again on writing when needed).
///
/// ```
/// let exts = ws_http::parse_extensions("permessage-deflate; client_max_window_bits=\"10\", x-foo")?;
/// assert_eq!(exts[0].name(), "permessage-deflate");
/// assert_eq!(exts[0].params().collect::<Vec<_>>(), [("client_max_window_bits", Some("10"))]);
/// assert_eq!(exts[0].to_string(), "permessage-deflate; client_max_window_bits=10");
/// assert_eq!(exts[1].name(), "x-foo");
/// # Ok::<(), ws_http::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extension {
    name: String,
    params: Vec<(String, Option<String>)>,
}

impl Extension {
    /// An extension without parameters.
    #[must_use]
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            params: Vec::new(),
        }
    }

    /// The same extension with one more parameter.
    #[must_use]
    pub fn with_param(mut self, name: impl Into<String>, value: Option<&str>) -> Self {
        self.params.push((name.into(), value.map(str::to_owned)));
        self
    }

    /// The extension token.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The parameters in order, values unquoted.
    pub fn params(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.params.iter().map(|(n, v)| (n.as_str(), v.as_deref()))
    }

    /// The parameters as the slice ws-frame's negotiation functions take
    /// ([`ws_frame::deflate::DeflateConfig::accept_offer`] and `accept_response`).
    #[must_use]
    pub fn param_list(&self) -> Vec<(&str, Option<&str>)> {
        self.params().collect()
    }

    /// Whether the name and every parameter can be written.
    pub(crate) fn is_valid(&self) -> bool {
        is_token(&self.name)
            && self
                .params
                .iter()
                .all(|(n, v)| is_token(n) && v.as_deref().is_none_or(quotable))
    }
}

/// A value writable as a token or a quoted-string.
fn quotable(v: &str) -> bool {
    v.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
}

impl fmt::Display for Extension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        for (n, v) in &self.params {
            write!(f, "; {n}")?;
            match v {
                Some(v) if is_token(v) => write!(f, "={v}")?,
                Some(v) => {
                    f.write_str("=\"")?;
                    for c in v.chars() {
                        if c == '"' || c == '\\' {
                            f.write_str("\\")?;
                        }
                        write!(f, "{c}")?;
                    }
                    f.write_str("\"")?;
                }
                None => {}
            }
        }
        Ok(())
    }
}

struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn skip_ows(&mut self) {
        while matches!(self.s.get(self.pos), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn token(&mut self) -> Option<String> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        (self.pos > start).then(|| String::from_utf8_lossy(&self.s[start..self.pos]).into_owned())
    }

    fn quoted(&mut self) -> Option<String> {
        // At the opening quote.
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let b = self.peek()?;
            self.pos += 1;
            match b {
                b'"' => return String::from_utf8(out).ok(),
                b'\\' => {
                    let c = self.peek()?;
                    if c != b'\t' && !(0x20..0x7f).contains(&c) {
                        return None;
                    }
                    out.push(c);
                    self.pos += 1;
                }
                b'\t' | 0x20..=0x7e => out.push(b),
                _ => return None,
            }
        }
    }
}

/// Parses one `Sec-WebSocket-Extensions` value. Empty list elements are skipped (RFC 9110
/// section 5.6.1); a quoted parameter value must be a token once unquoted (RFC 6455 section
/// 9.1).
///
/// # Errors
/// [`HandshakeError::InvalidExtensionsHeader`] for anything else.
pub fn parse_extensions(value: &str) -> Result<Vec<Extension>, Error> {
    let bad = || Error::from(HandshakeError::InvalidExtensionsHeader);
    let mut c = Cursor {
        s: value.as_bytes(),
        pos: 0,
    };
    let mut out = Vec::new();
    loop {
        c.skip_ows();
        match c.peek() {
            None => return Ok(out),
            Some(b',') => {
                c.pos += 1;
                continue;
            }
            Some(_) => {}
        }
        let mut ext = Extension::new(c.token().ok_or_else(bad)?);
        loop {
            c.skip_ows();
            if c.peek() != Some(b';') {
                break;
            }
            c.pos += 1;
            c.skip_ows();
            let name = c.token().ok_or_else(bad)?;
            c.skip_ows();
            let value = if c.peek() == Some(b'=') {
                c.pos += 1;
                c.skip_ows();
                let v = if c.peek() == Some(b'"') {
                    c.quoted().filter(|v| is_token(v))
                } else {
                    c.token()
                };
                Some(v.ok_or_else(bad)?)
            } else {
                None
            };
            ext.params.push((name, value));
        }
        out.push(ext);
        c.skip_ows();
        match c.peek() {
            None => return Ok(out),
            Some(b',') => c.pos += 1,
            Some(_) => return Err(bad()),
        }
    }
}

/// Every extension in every `Sec-WebSocket-Extensions` field of `headers`, in order.
pub(crate) fn extensions_of(headers: &Headers) -> Result<Vec<Extension>, Error> {
    let mut out = Vec::new();
    for v in headers.get_all("sec-websocket-extensions") {
        out.extend(parse_extensions(v)?);
    }
    Ok(out)
}

/// Every subprotocol in every `Sec-WebSocket-Protocol` field of `headers`, in order.
pub(crate) fn protocols_of(headers: &Headers) -> Result<Vec<String>, Error> {
    headers
        .tokens("sec-websocket-protocol")
        .map(|p| {
            if is_token(p) {
                Ok(p.to_owned())
            } else {
                Err(HandshakeError::InvalidProtocolHeader.into())
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammar() {
        let e = parse_extensions(
            " , a ; b ; c = 1 ;d=\"x\\y\" ,, permessage-deflate;client_max_window_bits ,",
        )
        .unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(
            e[0].param_list(),
            [("b", None), ("c", Some("1")), ("d", Some("xy"))]
        );
        assert_eq!(
            e[1].to_string(),
            "permessage-deflate; client_max_window_bits"
        );
        assert!(parse_extensions("").unwrap().is_empty());
        for bad in [
            "a;",
            "a b",
            ";a",
            "a;b=",
            "a;b=\"1",
            "a;b=\"1 2\"",
            "a;b=c d",
            "a=1",
            "a;b=\"\x01\"",
            "é",
        ] {
            assert!(parse_extensions(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn display_quotes_non_tokens() {
        let e = Extension::new("x").with_param("p", Some("a b\"c"));
        assert_eq!(e.to_string(), "x; p=\"a b\\\"c\"");
        assert!(e.is_valid());
        assert!(!Extension::new("x y").is_valid());
    }
}
