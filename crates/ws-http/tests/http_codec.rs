//! HTTP/1.1 parsing, framing, limits, smuggling defences, chunked bodies and keep-alive.

use bytes::BytesMut;
use ws_http::{
    BodyDecoder, BodyEvent, BodyKind, ChunkedEncoder, ChunkedError, Error, FramingError, Headers,
    Limits, Parsed, Request, parse_request, parse_response, write_response,
};

fn parse(raw: &[u8]) -> Result<Request, Error> {
    match parse_request(raw, &Limits::default())? {
        Parsed::Complete(r, n) => {
            assert_eq!(n, raw.len(), "head length");
            Ok(r)
        }
        Parsed::Partial => panic!("partial: {}", String::from_utf8_lossy(raw)),
    }
}

fn status_of(raw: &[u8], limits: &Limits) -> u16 {
    match parse_request(raw, limits) {
        Err(e) => e.status(),
        Ok(Parsed::Complete(r, _)) => match r.body_kind() {
            Err(e) => e.status(),
            Ok(kind) => match BodyDecoder::new(kind, limits) {
                Err(e) => e.status(),
                Ok(_) => 200,
            },
        },
        Ok(Parsed::Partial) => 0,
    }
}

fn status(raw: &str) -> u16 {
    status_of(raw.as_bytes(), &Limits::default())
}

/// Decodes `input` fed in pieces cut at `cuts`; returns body, trailers and the unread rest.
fn decode_in_pieces(
    kind: BodyKind,
    input: &[u8],
    cuts: &[usize],
) -> Result<(Vec<u8>, Headers, Vec<u8>), Error> {
    let mut d = BodyDecoder::new(kind, &Limits::default())?;
    let mut rx = BytesMut::new();
    let mut body = Vec::new();
    let mut bounds: Vec<usize> = cuts.to_vec();
    bounds.push(input.len());
    let mut fed = 0;
    let mut next = bounds.into_iter();
    loop {
        match d.decode(&mut rx)? {
            Some(BodyEvent::Data(b)) => body.extend_from_slice(&b),
            Some(BodyEvent::End { trailers }) => {
                let mut rest = rx.to_vec();
                rest.extend_from_slice(&input[fed..]);
                return Ok((body, trailers, rest));
            }
            None => match next.next() {
                Some(end) => {
                    rx.extend_from_slice(&input[fed..end]);
                    fed = end;
                }
                None => {
                    let Some(BodyEvent::End { trailers }) = d.finish()? else {
                        panic!("finish after end")
                    };
                    return Ok((body, trailers, rx.to_vec()));
                }
            },
        }
    }
}

const CHUNKED: &[u8] = b"4;name=value;q=\"a b\"\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nExpires: never\r\nX-Sum: 9\r\n\r\nGET /next";

#[test]
fn chunked_body_split_at_every_byte_boundary() {
    let expect = b"Wikipedia in\r\n\r\nchunks.".to_vec();
    let whole = decode_in_pieces(BodyKind::Chunked, CHUNKED, &[]).unwrap();
    assert_eq!(whole.0, expect);
    assert_eq!(whole.1.get("x-sum"), Some("9"));
    assert_eq!(whole.1.get("expires"), Some("never"));
    assert_eq!(whole.2, b"GET /next");
    for i in 0..=CHUNKED.len() {
        assert_eq!(
            decode_in_pieces(BodyKind::Chunked, CHUNKED, &[i]).unwrap(),
            whole,
            "cut at {i}"
        );
    }
    let every: Vec<usize> = (1..CHUNKED.len()).collect();
    assert_eq!(
        decode_in_pieces(BodyKind::Chunked, CHUNKED, &every).unwrap(),
        whole
    );
}

#[test]
fn chunked_encoder_output_decodes() {
    let mut out = BytesMut::new();
    let mut enc = ChunkedEncoder::new();
    let data: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    for piece in data.chunks(777) {
        enc.write_chunk(piece, &mut out).unwrap();
    }
    enc.finish(&[("X-Done", "yes")], &mut out).unwrap();
    assert!(matches!(
        enc.write_chunk(b"x", &mut out),
        Err(Error::BodyFinished)
    ));
    assert!(matches!(
        enc.finish(&[], &mut out),
        Err(Error::BodyFinished)
    ));
    let every: Vec<usize> = (1..out.len()).step_by(13).collect();
    let (body, trailers, rest) = decode_in_pieces(BodyKind::Chunked, &out, &every).unwrap();
    assert_eq!(
        (body, trailers.get("x-done"), rest.len()),
        (data, Some("yes"), 0)
    );
    let mut enc = ChunkedEncoder::new();
    assert!(matches!(
        enc.finish(&[("X", "a\r\nb")], &mut BytesMut::new()),
        Err(Error::InvalidField(_))
    ));
    assert!(!enc.is_finished());
}

#[test]
fn bad_chunk_sizes_are_400() {
    for bad in [
        &b"x\r\n"[..],
        b";ext\r\n",
        b"0x10\r\n",
        b"-5\r\n",
        b"5 \r\nhello\r\n0\r\n\r\n",
        b"1\r\nab\r\n",
        b"1\nab",
        b"123456789abcdef01\r\n",
        b"5;=x\r\n",
        b"5;a=\"unterminated\r\n",
    ] {
        let e = decode_in_pieces(BodyKind::Chunked, bad, &[]).unwrap_err();
        assert_eq!(e.status(), 400, "{:?}: {e}", String::from_utf8_lossy(bad));
    }
    let e = decode_in_pieces(BodyKind::Chunked, b"3\r\nabc", &[]).unwrap_err();
    assert!(matches!(e, Error::IncompleteBody));
}

#[test]
fn body_limits_are_413_before_data_arrives() {
    let mut limits = Limits::default();
    limits.max_body = 10;
    let mut d = BodyDecoder::new(BodyKind::Chunked, &limits).unwrap();
    let mut rx = BytesMut::from(&b"6\r\nabcdef\r\n5\r\n"[..]);
    assert!(matches!(d.decode(&mut rx), Ok(Some(BodyEvent::Data(_)))));
    let e = d.decode(&mut rx).unwrap_err();
    assert!(matches!(e, Error::BodyTooLarge { max: 10 }));
    assert_eq!(e.status(), 413);
    assert!(matches!(
        BodyDecoder::new(BodyKind::Length(11), &limits),
        Err(Error::BodyTooLarge { .. })
    ));
    let mut d = BodyDecoder::new(BodyKind::CloseDelimited, &limits).unwrap();
    let mut rx = BytesMut::from(&b"0123456789A"[..]);
    assert!(matches!(d.decode(&mut rx), Err(Error::BodyTooLarge { .. })));
    let raw = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n";
    assert_eq!(status_of(raw.as_bytes(), &limits), 413);
}

#[test]
fn chunk_extension_budget() {
    let mut limits = Limits::default();
    limits.max_chunk_extensions = 8;
    let mut d = BodyDecoder::new(BodyKind::Chunked, &limits).unwrap();
    let mut rx = BytesMut::from(&b"1;a=b\r\nx\r\n1;c=dd\r\ny\r\n"[..]);
    assert!(matches!(d.decode(&mut rx), Ok(Some(BodyEvent::Data(_)))));
    assert!(matches!(
        d.decode(&mut rx),
        Err(Error::Chunked(ChunkedError::ExtensionsTooLong { max: 8 }))
    ));
    // Incomplete input already over budget is refused too.
    let mut d = BodyDecoder::new(BodyKind::Chunked, &limits).unwrap();
    let mut rx = BytesMut::from(&b"1;aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"[..]);
    assert_eq!(d.decode(&mut rx).unwrap_err().status(), 400);
}

#[test]
fn content_length_body_leaves_the_next_request() {
    let raw = b"POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n";
    let Parsed::Complete(req, len) = parse_request(raw, &Limits::default()).unwrap() else {
        panic!()
    };
    assert_eq!(req.body_kind().unwrap(), BodyKind::Length(5));
    let (body, _, rest) = decode_in_pieces(BodyKind::Length(5), &raw[len..], &[2]).unwrap();
    assert_eq!(
        (&body[..], &rest[..]),
        (&b"hello"[..], &b"GET / HTTP/1.1\r\n"[..])
    );
}

#[test]
fn request_smuggling_is_refused() {
    let cases: &[(&str, u16)] = &[
        ("Content-Length: 5\r\nTransfer-Encoding: chunked", 400),
        ("Transfer-Encoding: chunked\r\nContent-Length: 5", 400),
        ("Content-Length: 5\r\nContent-Length: 6", 400),
        ("Content-Length: 5, 6", 400),
        ("Content-Length: +5", 400),
        ("Content-Length: 5a", 400),
        ("Content-Length: -1", 400),
        ("Content-Length: ", 400),
        ("Content-Length: 99999999999999999999999", 400),
        ("Transfer-Encoding: gzip", 400),
        ("Transfer-Encoding: chunked, gzip", 400),
        (
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
            400,
        ),
        ("Transfer-Encoding: chunked, chunked", 400),
        ("Transfer-Encoding: xchunked", 400),
        ("Transfer-Encoding: ", 400),
        ("Transfer-Encoding: gzip, chunked", 501),
        ("Content-Length: 5\r\nContent-Length: 5", 200),
        ("Content-Length: 5, 5", 200),
        ("Transfer-Encoding: Chunked", 200),
    ];
    for (fields, want) in cases {
        let raw = format!("POST / HTTP/1.1\r\nHost: a\r\n{fields}\r\n\r\n");
        assert_eq!(status(&raw), *want, "{fields:?}");
    }
    let e = parse(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    .unwrap()
    .body_kind()
    .unwrap_err();
    assert!(matches!(
        e,
        Error::Framing(FramingError::ContentLengthWithTransferEncoding)
    ));
    // Transfer-Encoding in HTTP/1.0 is faulty framing.
    assert_eq!(
        status("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
        400
    );
    // Space before the colon (a classic smuggling trick) is a syntax error.
    assert_eq!(
        status("POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\n"),
        400
    );
    // Obsolete line folding is refused.
    assert_eq!(
        status("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n"),
        400
    );
}

#[test]
fn each_head_limit_has_its_status() {
    let mut limits = Limits::default();
    limits.max_head_bytes = 200;
    limits.max_headers = 3;
    limits.max_request_line = 40;
    limits.max_header_line = 50;
    limits.validate().unwrap();
    let ok = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_eq!(status_of(ok.as_bytes(), &limits), 200);
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(40));
    assert_eq!(status_of(long_uri.as_bytes(), &limits), 414);
    // ... also before the line is complete.
    assert_eq!(status_of(&long_uri.as_bytes()[..45], &limits), 414);
    let long_field = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n", "b".repeat(50));
    assert_eq!(status_of(long_field.as_bytes(), &limits), 431);
    let many = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    assert_eq!(status_of(many.as_bytes(), &limits), 431);
    let mut limits = limits.clone();
    limits.max_headers = 10;
    let mut big = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
    big.push_str(&format!(
        "A: {}\r\nB: {}\r\n",
        "x".repeat(45),
        "y".repeat(45)
    ));
    big.push_str(&format!(
        "C: {}\r\nD: {}\r\n\r\n",
        "z".repeat(45),
        "w".repeat(45)
    ));
    assert!(big.len() > 200);
    assert_eq!(status_of(big.as_bytes(), &limits), 431);
    assert_eq!(status_of(&big.as_bytes()[..201], &limits), 431);
    // Incomplete and within limits: need more.
    assert_eq!(status_of(&big.as_bytes()[..150], &limits), 0);
    // Limits that can never work are refused.
    let mut bad = limits.clone();
    bad.max_header_line = 500;
    assert!(matches!(bad.validate(), Err(Error::Config(_))));
}

#[test]
fn error_responses_are_complete_http() {
    let limits = Limits::default();
    let raw = format!(
        "GET /{} HTTP/1.1\r\n",
        "a".repeat(Limits::DEFAULT_MAX_REQUEST_LINE)
    );
    let e = parse_request(raw.as_bytes(), &limits).unwrap_err();
    let mut out = BytesMut::new();
    let n = e.write_response(&mut out);
    assert_eq!(n, out.len());
    let Parsed::Complete(resp, len) = parse_response(&out, &limits).unwrap() else {
        panic!()
    };
    assert_eq!((resp.status(), resp.reason()), (414, "URI Too Long"));
    assert!(!resp.keep_alive("GET"));
    let BodyKind::Length(body) = resp.body_kind("GET").unwrap() else {
        panic!()
    };
    assert_eq!(body as usize, out.len() - len);
}

#[test]
fn keep_alive_rules() {
    let cases = [
        ("GET / HTTP/1.1\r\nHost: a\r\n\r\n", true),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            false,
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive, CLOSE\r\n\r\n",
            false,
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n",
            true,
        ),
        ("GET / HTTP/1.0\r\n\r\n", false),
        ("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true),
        (
            "GET / HTTP/1.0\r\nConnection: x\r\nConnection: Keep-Alive\r\n\r\n",
            true,
        ),
        (
            "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
            false,
        ),
    ];
    for (raw, want) in cases {
        assert_eq!(parse(raw.as_bytes()).unwrap().keep_alive(), want, "{raw:?}");
    }
    let resp = |raw: &str| match parse_response(raw.as_bytes(), &Limits::default()).unwrap() {
        Parsed::Complete(r, _) => r,
        Parsed::Partial => panic!(),
    };
    assert!(resp("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").keep_alive("GET"));
    assert!(resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").keep_alive("GET"));
    // Close-delimited: the connection cannot be reused.
    let close = resp("HTTP/1.1 200 OK\r\n\r\n");
    assert_eq!(close.body_kind("GET").unwrap(), BodyKind::CloseDelimited);
    assert!(!close.keep_alive("GET"));
    assert_eq!(close.body_kind("HEAD").unwrap(), BodyKind::Length(0));
    assert!(resp("HTTP/1.1 304 Not Modified\r\n\r\n").keep_alive("GET"));
    assert!(!resp("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").keep_alive("GET"));
    assert!(
        resp("HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n")
            .keep_alive("GET")
    );
}

#[test]
fn request_accessors() {
    let r = parse(
        b"\r\nGET /a%20b/c?x=1&y=%41 HTTP/1.1\r\nHost: h\r\nAccept: a\r\naccept: b, c\r\nX-Empty:\r\n\r\n",
    )
    .unwrap();
    assert_eq!(
        (r.method(), r.target(), r.path()),
        ("GET", "/a%20b/c?x=1&y=%41", "/a%20b/c")
    );
    assert_eq!(r.query_param("y").as_deref(), Some("A"));
    assert_eq!(
        r.headers().get_all("ACCEPT").collect::<Vec<_>>(),
        ["a", "b, c"]
    );
    assert_eq!(
        r.headers().tokens("accept").collect::<Vec<_>>(),
        ["a", "b", "c"]
    );
    assert_eq!(r.header("x-empty"), Some(""));
    assert_eq!(r.headers().count("accept"), 2);
    assert!(!r.is_websocket_upgrade());
    assert_eq!(r.body_kind().unwrap(), BodyKind::Length(0));
}

#[test]
fn incremental_head_parsing() {
    let raw = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    for i in 0..raw.len() {
        assert_eq!(
            parse_request(&raw[..i], &Limits::default()).unwrap(),
            Parsed::Partial,
            "{i}"
        );
    }
    assert!(matches!(
        parse_request(raw, &Limits::default()).unwrap(),
        Parsed::Complete(_, 27)
    ));
}

#[test]
fn malformed_requests_are_400_and_never_panic() {
    for raw in [
        &b"GET\r\n\r\n"[..],
        b"GET / HTTP/1.1 extra\r\nHost: a\r\n\r\n",
        b"GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n",
        b"G\0T / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nNo-Colon\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX: \xff\xfe\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n: empty-name\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX\r\n: b\r\n\r\n",
    ] {
        assert_eq!(
            status_of(raw, &Limits::default()),
            400,
            "{:?}",
            String::from_utf8_lossy(raw)
        );
    }
    assert_eq!(status("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 505);
    assert_eq!(status("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), 505);
}

#[test]
fn ordinary_responses_round_trip() {
    let mut out = BytesMut::new();
    write_response(
        &mut out,
        200,
        &[("Content-Type", "text/html")],
        b"<p>hi</p>",
        true,
    )
    .unwrap();
    let Parsed::Complete(r, len) = parse_response(&out, &Limits::default()).unwrap() else {
        panic!()
    };
    assert_eq!(
        (r.status(), r.reason(), r.header("content-type")),
        (200, "OK", Some("text/html"))
    );
    assert!(r.keep_alive("GET"));
    assert_eq!(&out[len..], b"<p>hi</p>");
    assert_eq!(r.body_kind("GET").unwrap(), BodyKind::Length(9));
}
