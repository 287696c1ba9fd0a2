//! `wskit serve --compress`: the test page and the JavaScript client come gzipped or deflated
//! to a client whose Accept-Encoding allows it, and plain to one that does not; the `[serve]`
//! table's `compress_min_size` reaches the server.

mod harness;

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use harness::*;

/// One GET on its own connection (`Connection: close`): the head (lower case) and the body,
/// de-chunked when it came chunked.
fn get(addr: SocketAddr, path: &str, accept_encoding: Option<&str>) -> (String, Vec<u8>) {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let ae = accept_encoding
        .map(|v| format!("Accept-Encoding: {v}\r\n"))
        .unwrap_or_default();
    write!(
        tcp,
        "GET {path} HTTP/1.1\r\nHost: x\r\n{ae}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut all = Vec::new();
    tcp.read_to_end(&mut all).unwrap();
    let end = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&all[..end]).to_ascii_lowercase();
    let mut body = all[end..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    (head, body)
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = raw.windows(2).position(|w| w == b"\r\n").unwrap();
        let line = std::str::from_utf8(&raw[..eol]).unwrap();
        let size = usize::from_str_radix(line.split(';').next().unwrap().trim(), 16).unwrap();
        raw = &raw[eol + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

fn gunzip(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body)
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[test]
fn serve_compress_gzips_the_page_and_the_client_for_clients_that_ask() {
    let s = serve(&["--compress"]);
    for path in ["/", "/wskit.js"] {
        let (plain_head, plain) = get(s.addr, path, None);
        assert!(plain_head.starts_with("http/1.1 200"), "{plain_head}");
        assert_eq!(header(&plain_head, "content-encoding"), None, "{path}");
        assert!(plain.len() > 1024, "{path}: {} bytes", plain.len());

        let (head, gz) = get(s.addr, path, Some("gzip, deflate"));
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert_eq!(header(&head, "content-encoding"), Some("gzip"), "{path}");
        assert!(header(&head, "vary").is_some_and(|v| v.contains("accept-encoding")));
        assert!(
            gz.len() < plain.len(),
            "{path}: {} >= {}",
            gz.len(),
            plain.len()
        );
        assert_eq!(gunzip(&gz), plain, "{path}");

        // deflate when that is all the client takes.
        let (head, z) = get(s.addr, path, Some("deflate"));
        assert_eq!(header(&head, "content-encoding"), Some("deflate"), "{path}");
        let mut out = Vec::new();
        flate2::read::ZlibDecoder::new(&z[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, plain, "{path}");
    }
}

#[test]
fn the_serve_table_sets_compression_and_its_threshold() {
    let dir = TempDir::new("compress");
    let config = dir.path().join("wskit.toml");
    std::fs::write(
        &config,
        "[serve]\ncompress = true\ncompress_min_size = 100000000\ncompress_level = 9\n",
    )
    .unwrap();
    let s = serve(&["--config", config.to_str().unwrap()]);
    let (head, body) = get(s.addr, "/wskit.js", Some("gzip"));
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(
        header(&head, "content-encoding"),
        None,
        "below the file's threshold"
    );
    assert!(String::from_utf8_lossy(&body).contains("function"));
    // The flag lowers the file's threshold: now it is compressed.
    let s = serve(&[
        "--config",
        config.to_str().unwrap(),
        "--compress-min-size",
        "1",
    ]);
    let (head, gz) = get(s.addr, "/wskit.js", Some("gzip"));
    assert_eq!(header(&head, "content-encoding"), Some("gzip"));
    assert_eq!(gunzip(&gz), body);
}

#[test]
fn without_compress_answers_stay_plain() {
    let s = serve(&[]);
    let (head, _) = get(s.addr, "/wskit.js", Some("gzip"));
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(header(&head, "content-encoding"), None);
}
