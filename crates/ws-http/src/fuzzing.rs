//! Fuzz hooks: run arbitrary bytes through the parsers and check invariants. Each hook panics
//! only when an invariant breaks (a bug), never because of the input.

use bytes::BytesMut;

use crate::{
    BodyDecoder, BodyEvent, BodyKind, ChunkedEncoder, ClientConfig, ClientHandshake, Error, Limits,
    Parsed, UpgradeRequest, parse_request, parse_response, write_request_head, write_response_head,
};

/// Small limits, so the fuzzer reaches them.
fn limits() -> Limits {
    Limits {
        max_head_bytes: 512,
        max_headers: 8,
        max_request_line: 128,
        max_header_line: 128,
        max_body: 256,
        max_chunk_extensions: 32,
        max_rejection_body: 64,
        max_parts: 4,
        max_part_header_bytes: 96,
        max_part_headers: 4,
        max_file_bytes: 200,
        max_field_bytes: 40,
    }
}

/// Split points derived from the input itself.
fn splits(len: usize, data: &[u8]) -> Vec<usize> {
    let seed = data
        .iter()
        .fold(7usize, |a, &b| a.wrapping_mul(31).wrapping_add(b as usize));
    let mut points = vec![0, 1, len / 2, len.saturating_sub(1)];
    points.push(seed % (len + 1));
    points.retain(|&p| p <= len);
    points
}

/// Whole and prefix parses agree: every prefix of a complete head is Partial or the same
/// Complete, and an error never turns into success with more bytes.
fn check_prefixes<T: PartialEq + std::fmt::Debug>(
    data: &[u8],
    parse: impl Fn(&[u8]) -> Result<Parsed<T>, Error>,
) -> Result<Parsed<T>, Error> {
    let whole = parse(data);
    for cut in splits(data.len(), data) {
        let part = parse(&data[..cut]);
        match (&whole, &part) {
            (Ok(Parsed::Complete(_, n)), Ok(Parsed::Complete(_, m))) => {
                assert!(m == n || cut >= *n, "prefix gave another head length");
            }
            (Ok(Parsed::Complete(_, n)), Err(e)) => {
                panic!("prefix of {cut} bytes failed ({e}) but the whole head of {n} parses")
            }
            (Ok(Parsed::Partial), Ok(Parsed::Complete(..))) => {
                panic!("a prefix is complete but the whole input is partial")
            }
            _ => {}
        }
    }
    whole
}

/// Request parsing, framing, body decoding, re-encoding, and upgrade validation.
pub fn request(data: &[u8]) {
    let limits = limits();
    let _ = crate::looks_like_http(data);
    let Ok(Parsed::Complete(req, len)) = check_prefixes(data, |d| parse_request(d, &limits)) else {
        return;
    };
    assert!(len <= limits.max_head_bytes && len <= data.len());
    assert!(req.headers().len() <= limits.max_headers);
    let _ = (
        req.path(),
        req.query(),
        req.keep_alive(),
        req.query_param("a"),
    );
    // Re-encode and re-parse: same method, target and fields.
    let fields: Vec<(&str, &str)> = req.headers().iter().collect();
    let mut out = BytesMut::new();
    // The builder writes HTTP/1.1, which needs Host: compare only HTTP/1.1 requests.
    if req.version() == crate::Version::Http11
        && write_request_head(&mut out, req.method(), req.target(), &fields).is_ok()
    {
        let big = Limits::default();
        match parse_request(&out, &big) {
            Ok(Parsed::Complete(again, n)) => {
                assert_eq!(n, out.len());
                assert_eq!(
                    (again.method(), again.target()),
                    (req.method(), req.target())
                );
                assert_eq!(again.headers(), req.headers());
            }
            other => panic!("re-parse of a written head failed: {other:?}"),
        }
    }
    if let Ok(up) = UpgradeRequest::from_request(&req) {
        let _ = up.negotiate_deflate(&ws_frame::deflate::DeflateConfig::default());
        let _ = up.choose_protocol(&["chat"]);
        let mut out = BytesMut::new();
        let _ = up.write_accept(&crate::Accept::new(), &mut out);
    }
    if let Ok(kind) = req.body_kind() {
        decode_body(kind, &data[len..], &limits);
    }
}

/// Response parsing, framing, re-encoding, and the client handshake over the same bytes.
pub fn response(data: &[u8]) {
    let limits = limits();
    if let Ok(Parsed::Complete(resp, len)) = check_prefixes(data, |d| parse_response(d, &limits)) {
        assert!(len <= limits.max_head_bytes && len <= data.len());
        let fields: Vec<(&str, &str)> = resp.headers().iter().collect();
        let mut out = BytesMut::new();
        if write_response_head(&mut out, resp.status(), Some(resp.reason()), &fields).is_ok() {
            match parse_response(&out, &Limits::default()) {
                Ok(Parsed::Complete(again, n)) => {
                    assert_eq!(n, out.len());
                    assert_eq!(again.status(), resp.status());
                    assert_eq!(again.headers(), resp.headers());
                }
                other => panic!("re-parse of a written head failed: {other:?}"),
            }
        }
        let _ = resp.keep_alive("GET");
        if let Ok(kind) = resp.body_kind("GET") {
            decode_body(kind, &data[len..], &limits);
        }
    }
    // The client handshake, fed whole and byte by byte, must reach the same outcome.
    let config = ClientConfig {
        limits,
        protocols: vec!["chat".into()],
        deflate: Some(ws_frame::deflate::DeflateConfig::default()),
        ..ClientConfig::default()
    };
    let outcome = |step: usize| {
        let mut req = BytesMut::new();
        let Ok(mut hs) = ClientHandshake::with_key(&config, "h", "/", [7; 16], &mut req) else {
            panic!("a valid config was refused");
        };
        let mut rx = BytesMut::new();
        for piece in data.chunks(step.max(1)) {
            rx.extend_from_slice(piece);
            match hs.handle_response(&mut rx) {
                Ok(None) => {}
                Ok(Some(up)) => return format!("up {up:?}"),
                Err(Error::Rejected(r)) => {
                    assert!(r.body().len() <= config.limits.max_rejection_body);
                    return format!("rejected {}", r.status());
                }
                Err(e) => return format!("err {e}"),
            }
        }
        match hs.handle_eof() {
            Error::Rejected(r) => {
                assert!(r.body().len() <= config.limits.max_rejection_body);
                format!("rejected {}", r.status())
            }
            e => format!("eof {e}"),
        }
    };
    let whole = outcome(data.len());
    let bytewise = outcome(1);
    if !whole.starts_with("up") {
        assert_eq!(whole, bytewise);
    }
}

/// A chunked body decoded whole and byte by byte gives the same bytes; a decoded body
/// re-encoded with [`ChunkedEncoder`] decodes to the same bytes again.
pub fn chunked(data: &[u8]) {
    let limits = limits();
    let whole = decode_body(BodyKind::Chunked, data, &limits);
    if let Some(body) = whole {
        let mut enc = ChunkedEncoder::new();
        let mut out = BytesMut::new();
        for piece in body.chunks(7) {
            assert!(enc.write_chunk(piece, &mut out).is_ok());
        }
        assert!(enc.finish(&[], &mut out).is_ok());
        assert_eq!(
            decode_body(BodyKind::Chunked, &out, &limits).as_deref(),
            Some(&body[..])
        );
    }
}

/// Decodes `data` whole, then in one-byte and mid-sized steps; all three must agree. Returns
/// the body when it completed.
fn decode_body(kind: BodyKind, data: &[u8], limits: &Limits) -> Option<Vec<u8>> {
    let run = |step: usize| -> Result<Option<(Vec<u8>, usize)>, String> {
        let mut d = BodyDecoder::new(kind, limits).map_err(|e| e.to_string())?;
        let mut rx = BytesMut::new();
        let mut body = Vec::new();
        let mut fed = 0;
        loop {
            match d.decode(&mut rx).map_err(|e| e.to_string())? {
                Some(BodyEvent::Data(b)) => {
                    assert!(!b.is_empty(), "empty Data event");
                    body.extend_from_slice(&b);
                    assert!(body.len() as u64 <= limits.max_body, "body over max_body");
                }
                Some(BodyEvent::End { trailers }) => {
                    assert!(trailers.len() <= limits.max_headers);
                    return Ok(Some((body, fed - rx.len())));
                }
                None if fed < data.len() => {
                    let n = step.min(data.len() - fed);
                    rx.extend_from_slice(&data[fed..fed + n]);
                    fed += n;
                }
                None => {
                    return match d.finish().map_err(|e| e.to_string())? {
                        Some(BodyEvent::End { .. }) => Ok(Some((body, fed - rx.len()))),
                        _ => Ok(None),
                    };
                }
            }
        }
    };
    let whole = run(data.len().max(1));
    assert_eq!(whole, run(1), "byte-by-byte decoding differs");
    assert_eq!(whole, run(5), "5-byte-step decoding differs");
    whole.ok().flatten().map(|(body, _)| body)
}

/// What a multipart parse produced: the parts (headers, content), whether the closing
/// delimiter came, and the error if any.
type MultipartRun = (
    Vec<(crate::multipart::PartHeaders, Vec<u8>)>,
    bool,
    Option<String>,
);

/// Parses `data` as a `multipart/form-data` body (boundary `B1`) with small limits, feeding it
/// in pieces of `step` bytes through a parser whose window is `window` (at least its minimum).
fn multipart_run(data: &[u8], step: usize, window: usize, limits: &Limits) -> MultipartRun {
    use crate::multipart::{Event, Parser};
    let mut p = match Parser::new("B1", limits) {
        Ok(p) => p,
        Err(e) => panic!("a valid boundary was refused: {e}"),
    };
    p.set_window(window);
    let mut parts: Vec<(crate::multipart::PartHeaders, Vec<u8>)> = Vec::new();
    let mut in_part = false;
    let mut ended = false;
    for piece in data.chunks(step.max(1)) {
        let mut rest = piece;
        loop {
            let n = p.feed(rest);
            rest = &rest[n..];
            assert!(p.buffered() <= p.window(), "buffer over its window");
            loop {
                match p.poll() {
                    Ok(Some(Event::Part(h))) => {
                        assert!(!in_part && !ended, "Part inside a part or after End");
                        in_part = true;
                        parts.push((h, Vec::new()));
                        assert!(parts.len() <= limits.max_parts, "more parts than max_parts");
                    }
                    Ok(Some(Event::Data(d))) => {
                        assert!(in_part && !d.is_empty(), "Data outside a part or empty");
                        if let Some((h, body)) = parts.last_mut() {
                            body.extend_from_slice(&d);
                            let max = if h.filename.is_some() {
                                limits.max_file_bytes
                            } else {
                                limits.max_field_bytes
                            };
                            assert!(body.len() as u64 <= max, "part over its limit");
                        }
                    }
                    Ok(Some(Event::PartEnd)) => {
                        assert!(in_part, "PartEnd outside a part");
                        in_part = false;
                    }
                    Ok(Some(Event::End)) => {
                        assert!(!in_part && !ended, "End inside a part or twice");
                        ended = true;
                    }
                    Ok(None) => break,
                    Err(e) => {
                        assert!(p.poll().is_err(), "a failed parser recovered");
                        // How much content came out before the error depends on the split.
                        for (_, body) in &mut parts {
                            body.clear();
                        }
                        return (parts, ended, Some(e.to_string()));
                    }
                }
            }
            if rest.is_empty() {
                break;
            }
            assert!(
                n > 0 || p.buffered() < p.window(),
                "the parser made no progress"
            );
        }
    }
    let error = p.finish().err().map(|e| e.to_string());
    assert_eq!(error.is_none(), ended, "finish disagrees with End");
    (parts, ended, error)
}

/// A `multipart/form-data` body parsed whole, byte by byte and in pieces, with the smallest
/// window and a large one, gives the same parts and the same error (the same part headers
/// when it fails); no part exceeds its limit and the buffer never exceeds its window.
pub fn multipart(data: &[u8]) {
    let mut limits = limits();
    limits.max_body = 4096;
    // Kept under max_body: the body limit counts bytes as they are fed, so with it exceeded
    // the error may come before or after a parse error depending on the split.
    let data = &data[..data.len().min(4096)];
    let whole = multipart_run(data, data.len(), 0, &limits);
    let seed = data
        .iter()
        .fold(7usize, |a, &b| a.wrapping_mul(31).wrapping_add(b as usize));
    for (step, window) in [
        (1, 0),
        (3, 1 << 14),
        (seed % 64 + 1, 0),
        (data.len(), 1 << 14),
    ] {
        assert_eq!(
            multipart_run(data, step, window, &limits),
            whole,
            "pieces of {step} bytes, window {window}"
        );
    }
    let _ = crate::multipart::boundary(&String::from_utf8_lossy(data));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A trailer line that is both too long and past the head limit gave "header field line
    /// exceeds 128 bytes" whole and "message head exceeds 512 bytes" byte by byte (a fuzz find).
    #[test]
    fn a_line_past_both_limits_fails_the_same_way_in_any_split() {
        chunked(include_bytes!(
            "../../../fuzz/seeds/http_chunked/trailer-line-and-head-limits"
        ));
    }

    const REQUESTS: &[&[u8]] = &[
        b"GET /chat?x=1 HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
          Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Extensions: permessage-deflate; \
          client_max_window_bits, permessage-deflate\r\n\r\n",
        b"POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
          4;a=b\r\nWiki\r\n0\r\nX: 1\r\n\r\n",
        b"POST / HTTP/1.0\r\nContent-Length: 3\r\n\r\nabcGET",
    ];
    const RESPONSES: &[&[u8]] = &[
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Accept: m8mM5h5RqFbHqSTFhN0x2pmbSG8=\r\nSec-WebSocket-Protocol: chat\r\n\
          Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10\r\n\r\n\x81",
        b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 5\r\n\r\nnope!",
        b"HTTP/1.1 302 Found\r\nLocation: /x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n",
        b"HTTP/1.0 500 Oops\r\n\r\nuntil close",
    ];
    const CHUNKED: &[&[u8]] = &[
        b"4\r\nWiki\r\n5;x=\"y\"\r\npedia\r\n0\r\nT: v\r\n\r\nrest",
        b"0\r\n\r\n",
    ];

    /// Deterministic mutations: replace, insert, delete, duplicate, truncate.
    fn mutations(seed: &[u8], rounds: usize, mut state: u64, run: impl Fn(&[u8])) {
        const BYTES: &[u8] = b"\r\n :;,=\"\t0aF-\xff\x00";
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        run(seed);
        for _ in 0..rounds {
            let mut data = seed.to_vec();
            for _ in 0..1 + next() % 4 {
                let len = data.len().max(1);
                let at = (next() as usize) % len;
                let byte = BYTES[(next() as usize) % BYTES.len()];
                match next() % 5 {
                    0 if at < data.len() => data[at] = byte,
                    1 => data.insert(at.min(data.len()), byte),
                    2 if at < data.len() => {
                        data.remove(at);
                    }
                    3 => {
                        let end = (at + 1 + (next() as usize) % 8).min(data.len());
                        let piece = data[at.min(end)..end].to_vec();
                        data.splice(at.min(end)..at.min(end), piece);
                    }
                    _ => data.truncate(at),
                }
            }
            run(&data);
        }
    }

    #[test]
    fn hooks_survive_mutated_inputs() {
        for (i, seed) in REQUESTS.iter().enumerate() {
            mutations(seed, 400, 0x9e37_79b9 + i as u64, request);
        }
        for (i, seed) in RESPONSES.iter().enumerate() {
            mutations(seed, 300, 0x1234_5678 + i as u64, response);
        }
        for (i, seed) in CHUNKED.iter().enumerate() {
            mutations(seed, 400, 0xdead_beef + i as u64, chunked);
        }
        // Byte soup.
        for n in 0..64u8 {
            let data: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37) ^ n).collect();
            request(&data);
            response(&data);
            chunked(&data);
        }
    }

    /// A `multipart/form-data` body with boundary `B1` (the boundary [`multipart`] parses
    /// with), preamble and epilogue included; parts are (name, file name, content).
    fn form(parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
        let mut out = b"preamble to ignore\r\n".to_vec();
        for (name, filename, content) in parts {
            out.extend_from_slice(b"--B1\r\n");
            let head = match filename {
                Some(f) => format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n\
                     Content-Type: application/octet-stream\r\n\r\n"
                ),
                None => format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n"),
            };
            out.extend_from_slice(head.as_bytes());
            out.extend_from_slice(content);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"--B1--\r\nepilogue");
        out
    }

    /// Content full of near-delimiters for `B1`: cut short, followed by neither `--` nor
    /// CRLF, with one dash missing, and every byte value.
    fn near_delimiters() -> Vec<u8> {
        let mut c = b"\r\n\r\n--\r\n\r\n--BX\r\n--B\rz--B1\0\r".to_vec();
        c.extend_from_slice(b"\r\n--B1FAKE\r\n--B1 \tx\r\n--B1-x");
        c.extend(0..=255u8);
        c.extend_from_slice(b"\r\n-B1\r\n--");
        c
    }

    /// The multipart hook (whole, byte by byte, in pieces, with small windows) agrees with
    /// itself on real bodies and on every prefix of them.
    #[test]
    fn the_multipart_hook_holds_on_real_bodies() {
        let cases = [
            form(&[("a", None, b"hi"), ("f", Some("x.bin"), &near_delimiters())]),
            form(&[("a", None, &[b'x'; 41])]),
            form(&[
                ("a", None, b"1"),
                ("b", None, b"2"),
                ("c", None, b"3"),
                ("d", None, b"4"),
                ("e", None, b"5"),
            ]),
            form(&[("f", Some("big"), &[b'-'; 300])]),
            format!("--B1\r\n{}\r\n\r\n--B1--", "X: y\r\n".repeat(30)).into_bytes(),
        ];
        for case in &cases {
            multipart(case);
            for cut in 0..case.len() {
                multipart(&case[..cut]);
            }
        }
    }
}
