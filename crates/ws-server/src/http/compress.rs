//! Compressed response bodies (`Content-Encoding: gzip` or `deflate`), chosen per response
//! from the request's `Accept-Encoding` ([`crate::HttpCompression`]).
//!
//! ```text
//!  Accept-Encoding --negotiate (q-values, "*", identity;q=0)--> Option<Coding>
//!  response: no Content-Encoding, no Content-Range, status with a body other than 206,
//!            compressible Content-Type, known length >= min_size (or unknown: a stream)
//!     --> Content-Encoding, Vary: Accept-Encoding, ETag "x" -> "x-gzip"
//!  bytes body: compressed whole (Content-Length);  file/stream: Encoder per piece (chunked)
//! ```

use std::io::Write as _;

use flate2::{
    Compression,
    write::{GzEncoder, ZlibEncoder},
};

/// A content coding the server can produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Coding {
    Gzip,
    /// HTTP's `deflate`: the zlib format (RFC 9110 section 8.4.1.2).
    Deflate,
}

impl Coding {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Gzip => "gzip",
            Self::Deflate => "deflate",
        }
    }
}

/// The client's answer to "may this response be compressed?".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Accepted {
    /// The preferred coding the server has, if any is acceptable.
    pub(crate) coding: Option<Coding>,
    /// `identity` is refused (`identity;q=0`, or `*;q=0` without `identity`): compress even
    /// what would otherwise be sent as it is.
    pub(crate) identity_refused: bool,
}

/// Reads an `Accept-Encoding` value (RFC 9110 section 12.5.3): codings with q-values, `*`
/// for the rest, `x-gzip` as gzip; the higher q wins, gzip on a tie. An absent field means
/// no preference: nothing is compressed.
pub(crate) fn negotiate(header: Option<&str>) -> Accepted {
    let Some(header) = header else {
        return Accepted {
            coding: None,
            identity_refused: false,
        };
    };
    let (mut gzip, mut deflate, mut identity, mut star) = (None, None, None, None);
    for item in header.split(',') {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or("").trim();
        if name.is_empty() {
            continue;
        }
        let mut q = 1.0f32;
        for p in parts {
            if let Some((k, v)) = p.split_once('=')
                && k.trim().eq_ignore_ascii_case("q")
            {
                // A malformed weight makes the coding unacceptable rather than preferred.
                q = v
                    .trim()
                    .parse::<f32>()
                    .ok()
                    .filter(|q| (0.0..=1.0).contains(q))
                    .unwrap_or(0.0);
            }
        }
        let slot = if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
            &mut gzip
        } else if name.eq_ignore_ascii_case("deflate") {
            &mut deflate
        } else if name.eq_ignore_ascii_case("identity") {
            &mut identity
        } else if name == "*" {
            &mut star
        } else {
            continue;
        };
        *slot = Some(q);
    }
    let g = gzip.or(star).unwrap_or(0.0);
    let d = deflate.or(star).unwrap_or(0.0);
    let coding = if g > 0.0 && g >= d {
        Some(Coding::Gzip)
    } else if d > 0.0 {
        Some(Coding::Deflate)
    } else {
        None
    };
    Accepted {
        coding,
        identity_refused: identity.or(star).is_some_and(|q| q == 0.0),
    }
}

/// Whether a body of this media type gains from compression: text, JSON, XML, JavaScript,
/// SVG, WebAssembly and uncompressed font formats.
pub(crate) fn compressible(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let Some((top, sub)) = essence.split_once('/') else {
        return false;
    };
    top == "text"
        || sub.ends_with("+json")
        || sub.ends_with("+xml")
        || matches!(
            essence.as_str(),
            "application/json"
                | "application/javascript"
                | "application/x-javascript"
                | "application/ecmascript"
                | "application/xml"
                | "application/wasm"
                | "application/x-ndjson"
                | "application/vnd.ms-fontobject"
                | "font/ttf"
                | "font/otf"
        )
}

/// The entity tag of the encoded variant: `"abc"` becomes `"abc-gzip"` (weak tags stay
/// weak), so that caches and validators never mix the encoded and the plain bodies.
pub(crate) fn variant_etag(etag: &str, coding: Coding) -> String {
    let t = etag.trim();
    match t.strip_suffix('"') {
        Some(open) if open.contains('"') => format!("{open}-{}\"", coding.name()),
        _ => t.to_owned(),
    }
}

/// An entity tag with the suffix of [`variant_etag`] removed: the tag of the plain variant.
pub(crate) fn plain_etag(etag: &str) -> std::borrow::Cow<'_, str> {
    for coding in [Coding::Gzip, Coding::Deflate] {
        let suffix = format!("-{}\"", coding.name());
        if let Some(open) = etag.strip_suffix(suffix.as_str()) {
            return format!("{open}\"").into();
        }
    }
    etag.into()
}

/// A streaming compressor writing into an in-memory buffer that the caller drains after
/// each piece.
pub(crate) enum Encoder {
    Gzip(GzEncoder<Vec<u8>>),
    Deflate(ZlibEncoder<Vec<u8>>),
}

impl Encoder {
    pub(crate) fn new(coding: Coding, level: u32) -> Self {
        let level = Compression::new(level.min(9));
        match coding {
            Coding::Gzip => Self::Gzip(GzEncoder::new(Vec::new(), level)),
            Coding::Deflate => Self::Deflate(ZlibEncoder::new(Vec::new(), level)),
        }
    }

    fn out(&mut self) -> &mut Vec<u8> {
        match self {
            Self::Gzip(e) => e.get_mut(),
            Self::Deflate(e) => e.get_mut(),
        }
    }

    /// Compresses `piece`; with `flush`, everything given so far is made decodable (a sync
    /// flush, for streams whose pieces must not wait for the next one). Returns the output
    /// produced so far.
    pub(crate) fn push(&mut self, piece: &[u8], flush: bool) -> std::io::Result<Vec<u8>> {
        match self {
            Self::Gzip(e) => {
                e.write_all(piece)?;
                if flush {
                    e.flush()?;
                }
            }
            Self::Deflate(e) => {
                e.write_all(piece)?;
                if flush {
                    e.flush()?;
                }
            }
        }
        Ok(std::mem::take(self.out()))
    }

    /// Ends the stream: the rest of the output and the trailer.
    pub(crate) fn finish(&mut self) -> std::io::Result<Vec<u8>> {
        match self {
            Self::Gzip(e) => e.try_finish()?,
            Self::Deflate(e) => e.try_finish()?,
        }
        Ok(std::mem::take(self.out()))
    }
}

/// `body` compressed whole.
pub(crate) fn compress_all(coding: Coding, level: u32, body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut e = Encoder::new(coding, level);
    let mut out = e.push(body, false)?;
    out.extend(e.finish()?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coding(h: &str) -> Option<Coding> {
        negotiate(Some(h)).coding
    }

    #[test]
    fn accept_encoding_weights_decide() {
        assert_eq!(negotiate(None).coding, None);
        assert_eq!(coding("gzip"), Some(Coding::Gzip));
        assert_eq!(coding("gzip, deflate, br"), Some(Coding::Gzip));
        assert_eq!(coding("deflate"), Some(Coding::Deflate));
        assert_eq!(coding("gzip;q=0.5, deflate"), Some(Coding::Deflate));
        assert_eq!(coding("gzip;q=0, deflate;q=0"), None);
        assert_eq!(coding("GZIP ; Q=1"), Some(Coding::Gzip));
        assert_eq!(coding("x-gzip"), Some(Coding::Gzip));
        assert_eq!(coding("*"), Some(Coding::Gzip));
        assert_eq!(coding("*;q=0.1, gzip;q=0"), Some(Coding::Deflate));
        assert_eq!(coding("br, identity"), None);
        assert_eq!(coding("gzip;q=bad"), None);
        assert_eq!(coding("gzip;q=2"), None);
        assert_eq!(coding(""), None);
        assert!(negotiate(Some("gzip, identity;q=0")).identity_refused);
        assert!(negotiate(Some("*;q=0")).identity_refused);
        assert!(!negotiate(Some("*;q=0, identity")).identity_refused);
        assert!(!negotiate(Some("gzip")).identity_refused);
    }

    #[test]
    fn compressible_types() {
        for t in [
            "text/html; charset=utf-8",
            "text/css",
            "application/json",
            "application/ld+json",
            "application/javascript",
            "image/svg+xml",
            "application/wasm",
            "TEXT/PLAIN",
        ] {
            assert!(compressible(t), "{t}");
        }
        for t in [
            "image/png",
            "application/zip",
            "video/mp4",
            "application/octet-stream",
            "",
        ] {
            assert!(!compressible(t), "{t}");
        }
    }

    #[test]
    fn etag_variants_round_trip() {
        assert_eq!(variant_etag("\"1a-2b\"", Coding::Gzip), "\"1a-2b-gzip\"");
        assert_eq!(variant_etag("W/\"x\"", Coding::Deflate), "W/\"x-deflate\"");
        assert_eq!(plain_etag("\"1a-2b-gzip\""), "\"1a-2b\"");
        assert_eq!(plain_etag("\"1a-2b\""), "\"1a-2b\"");
    }

    #[test]
    fn streamed_output_decodes_to_the_input() {
        use std::io::Read as _;
        let text = b"the same words again and again and again ".repeat(200);
        let mut e = Encoder::new(Coding::Gzip, 6);
        let mut out = Vec::new();
        for piece in text.chunks(1000) {
            out.extend(e.push(piece, true).unwrap());
        }
        out.extend(e.finish().unwrap());
        assert!(out.len() < text.len() / 4);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&out[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, text);
        let z = compress_all(Coding::Deflate, 1, &text).unwrap();
        let mut back = Vec::new();
        flate2::read::ZlibDecoder::new(&z[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, text);
    }
}
