//! A first pass over a message head that enforces the line, field-count and size limits on
//! complete and incomplete input alike, before httparse runs and before anything is copied.

use crate::{Error, Limits};

/// What the first line of the section is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Request,
    Response,
    /// A trailer section: field lines only.
    Trailers,
}

/// A complete head found by [`scan`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Scanned {
    /// Bytes up to and including the empty line.
    pub(crate) len: usize,
    /// Number of field lines (an upper bound on the header count).
    pub(crate) fields: usize,
    /// Offset where the start line begins (after leading empty lines).
    pub(crate) start: usize,
}

/// Finds the end of a head in `src`, enforcing `limits` on what is there so far.
/// `Ok(None)`: incomplete and within limits.
pub(crate) fn scan(src: &[u8], limits: &Limits, kind: Kind) -> Result<Option<Scanned>, Error> {
    let mut pos = 0;
    // RFC 9112 section 2.2: ignore empty lines before the request line (left by a previous
    // request's body, for example).
    if kind != Kind::Trailers {
        loop {
            match src.get(pos..pos + 2) {
                Some(b"\r\n") => pos += 2,
                _ if src.get(pos) == Some(&b'\n') => pos += 1,
                _ => break,
            }
            if pos > limits.max_head_bytes {
                return Err(Error::HeadTooLarge {
                    max: limits.max_head_bytes,
                });
            }
        }
    }
    let start = pos;
    let mut first = kind != Kind::Trailers;
    let mut fields = 0usize;
    loop {
        let (line_limit, too_long) = if first {
            match kind {
                Kind::Request => (
                    limits.max_request_line,
                    Error::UriTooLong {
                        max: limits.max_request_line,
                    },
                ),
                _ => (
                    limits.max_request_line,
                    Error::HeadTooLarge {
                        max: limits.max_request_line,
                    },
                ),
            }
        } else {
            (
                limits.max_header_line,
                Error::HeaderLineTooLong {
                    max: limits.max_header_line,
                },
            )
        };
        // Fed byte by byte, a too-long line is known once `line_limit + 2` of its bytes are
        // there, and a too-large head once `max_head_bytes + 1` bytes are: report whichever a
        // byte-by-byte feed would see first, so that the error does not depend on how the input
        // was split (found by the chunked-trailer fuzz target).
        let too_long = if pos.saturating_add(line_limit).saturating_add(1) > limits.max_head_bytes {
            Error::HeadTooLarge {
                max: limits.max_head_bytes,
            }
        } else {
            too_long
        };
        let rest = &src[pos..];
        // Look no further than the line limit allows (plus CRLF).
        let window = &rest[..rest.len().min(line_limit.saturating_add(2))];
        let Some(nl) = window.iter().position(|&b| b == b'\n') else {
            if window.len() > line_limit.saturating_add(1) || rest.len() > window.len() {
                return Err(too_long);
            }
            if src.len() > limits.max_head_bytes {
                return Err(Error::HeadTooLarge {
                    max: limits.max_head_bytes,
                });
            }
            return Ok(None);
        };
        let line = &rest[..nl];
        let content = line.strip_suffix(b"\r").unwrap_or(line);
        if content.len() > line_limit {
            return Err(too_long);
        }
        let end = pos + nl + 1;
        if end > limits.max_head_bytes {
            return Err(Error::HeadTooLarge {
                max: limits.max_head_bytes,
            });
        }
        if !first && content.is_empty() {
            return Ok(Some(Scanned {
                len: end,
                fields,
                start,
            }));
        }
        if !first {
            fields += 1;
            if fields > limits.max_headers {
                return Err(Error::TooManyHeaders {
                    max: limits.max_headers,
                });
            }
        }
        first = false;
        pos = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Limits {
        Limits {
            max_head_bytes: 64,
            max_headers: 2,
            max_request_line: 24,
            max_header_line: 16,
            ..Limits::default()
        }
    }

    #[test]
    fn finds_the_end_and_counts_fields() {
        let s = scan(
            b"\r\nGET / HTTP/1.1\r\nA: 1\nB: 2\r\n\r\nbody",
            &small(),
            Kind::Request,
        )
        .unwrap()
        .unwrap();
        assert_eq!((s.start, s.fields), (2, 2));
        assert_eq!(s.len, 2 + 16 + 6 + 5 + 2);
        assert_eq!(
            scan(b"GET / HTTP/1.1\r\nA: 1\r\n", &small(), Kind::Request).unwrap(),
            None
        );
        assert_eq!(scan(b"", &small(), Kind::Request).unwrap(), None);
        assert_eq!(scan(b"\r", &small(), Kind::Request).unwrap(), None);
    }

    #[test]
    fn limits_apply_to_incomplete_input() {
        let long_line = [b'a'; 30];
        assert!(matches!(
            scan(&long_line, &small(), Kind::Request),
            Err(Error::UriTooLong { max: 24 })
        ));
        assert!(matches!(
            scan(
                b"GET / HTTP/1.1\r\nX: aaaaaaaaaaaaaaaaaaaaaa",
                &small(),
                Kind::Request
            ),
            Err(Error::HeaderLineTooLong { max: 16 })
        ));
        assert!(matches!(
            scan(
                b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n",
                &small(),
                Kind::Request
            ),
            Err(Error::TooManyHeaders { max: 2 })
        ));
        let many = b"GET / HTTP/1.1\r\nAA: 111111111\r\nBB: 22222222\r\nC";
        assert!(matches!(
            scan(
                many,
                &Limits {
                    max_headers: 5,
                    ..small()
                },
                Kind::Request
            ),
            Err(Error::HeadTooLarge { max: 64 }) | Ok(None)
        ));
        let blank = [b'\n'; 70];
        assert!(matches!(
            scan(&blank, &small(), Kind::Request),
            Err(Error::HeadTooLarge { .. })
        ));
    }

    #[test]
    fn trailers_have_no_start_line() {
        let s = scan(b"X: 1\r\n\r\n", &small(), Kind::Trailers)
            .unwrap()
            .unwrap();
        assert_eq!((s.len, s.fields), (8, 1));
        let s = scan(b"\r\n", &small(), Kind::Trailers).unwrap().unwrap();
        assert_eq!((s.len, s.fields), (2, 0));
    }
}
