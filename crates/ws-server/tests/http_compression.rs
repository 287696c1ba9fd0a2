//! Compressed HTTP responses (`ServerConfig::compression`, parity row H-19): gzip and deflate
//! for static files (small ones whole, large ones streamed chunked), handler bodies and
//! streams, chosen from `Accept-Encoding` with q-values; `Vary`, variant `ETag`s and 304;
//! never for ranges, small or binary bodies, or bodies already encoded. Then a peer nobody
//! here wrote: Python's urllib with gzip and zlib decoding.

mod common;

use std::{io::Read as _, path::Path, process::Command};

use bytes::Bytes;
use common::{HttpResponse, local_config, request};
use ws_server::{Body, Handler, HttpCompression, Request, Response, Server, ServerHandle};

/// Text that compresses well but not trivially (varying numbers).
fn text(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 64);
    let mut i = 0u64;
    while out.len() < n {
        out.extend_from_slice(
            format!("line {i} of the document, value {}\n", i * 7919 % 1000).as_bytes(),
        );
        i += 1;
    }
    out.truncate(n);
    out
}

fn json() -> String {
    let items: Vec<String> = (0..200)
        .map(|i| format!("{{\"id\":{i},\"name\":\"item {i}\"}}"))
        .collect();
    format!("[{}]", items.join(","))
}

struct App;

impl Handler for App {
    async fn on_http(&self, request: &Request, _body: &mut Body<'_>) -> Response {
        match request.path() {
            "/api" => Response::new(200)
                .with_header("Content-Type", "application/json")
                .with_header("ETag", "\"v1\"")
                .with_header("Vary", "Origin")
                .with_body(json()),
            "/pre" => Response::new(200)
                .with_header("Content-Type", "text/plain")
                .with_header("Content-Encoding", "br")
                .with_body(vec![b'x'; 4000]),
            "/stream" => {
                let (resp, tx) = Response::channel(4);
                tokio::spawn(async move {
                    for i in 0..50 {
                        let piece = format!("event {i}: {}\n", "data ".repeat(40));
                        if tx.send(Bytes::from(piece)).await.is_err() {
                            return;
                        }
                    }
                });
                resp.with_header("Content-Type", "text/plain")
            }
            _ => Response::new(404),
        }
    }
}

struct Site {
    dir: tempfile::TempDir,
    server: ServerHandle,
}

fn write(dir: &Path, rel: &str, data: &[u8]) {
    std::fs::write(dir.join(rel), data).unwrap();
}

async fn site(compression: HttpCompression) -> Site {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "small.html", &text(10_000));
    write(dir.path(), "big.txt", &text(300_000));
    write(dir.path(), "tiny.txt", &text(100));
    write(dir.path(), "photo.png", &text(10_000));
    write(dir.path(), "app.wasm", &text(5_000));
    let mut config = local_config();
    config.document_root = Some(dir.path().to_owned());
    config.compression = compression;
    let server = Server::start(config, App).await.unwrap();
    Site { dir, server }
}

fn get(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n")
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn inflate(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::ZlibDecoder::new(data)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn plain_body(r: &HttpResponse) -> Vec<u8> {
    match r.header("content-encoding") {
        None => r.body.clone(),
        Some("gzip") => gunzip(&r.body),
        Some("deflate") => inflate(&r.body),
        Some(other) => panic!("unexpected coding {other}"),
    }
}

#[tokio::test]
async fn static_files_are_gzipped_when_the_client_accepts_it() {
    let s = site(HttpCompression::on()).await;
    let addr = s.server.local_addrs()[0];
    let gz = "Accept-Encoding: gzip, deflate\r\n";

    // A small file, compressed whole: Content-Length, a variant ETag, Vary.
    let plain = request(addr, &get("/small.html", "")).await;
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.header("vary"), Some("Accept-Encoding"));
    let r = request(addr, &get("/small.html", gz)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );
    assert!(r.body.len() < 10_000 / 2, "{} bytes", r.body.len());
    assert_eq!(gunzip(&r.body), text(10_000));
    let tag = r.header("etag").unwrap().to_owned();
    let plain_tag = plain.header("etag").unwrap();
    assert_eq!(tag, format!("{}-gzip\"", plain_tag.trim_end_matches('"')));

    // The variant's tag revalidates (304 naming the variant), and so does the plain one.
    let r = request(
        addr,
        &get("/small.html", &format!("{gz}If-None-Match: {tag}\r\n")),
    )
    .await;
    assert_eq!((r.status, r.header("etag")), (304, Some(tag.as_str())));
    assert_eq!(r.header("content-encoding"), None);
    let r = request(
        addr,
        &get("/small.html", &format!("If-None-Match: {plain_tag}\r\n")),
    )
    .await;
    assert_eq!((r.status, r.header("etag")), (304, Some(plain_tag)));

    // A large file is streamed through the compressor, chunked.
    let r = request(addr, &get("/big.txt", gz)).await;
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.header("content-length"), None);
    assert!(r.body.len() < 300_000 / 3, "{} bytes", r.body.len());
    assert_eq!(gunzip(&r.body), text(300_000));
    // HEAD: the same head, no body.
    let head = format!("HEAD /big.txt HTTP/1.1\r\nHost: x\r\n{gz}\r\n");
    let r = request(addr, &head).await;
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert!(r.body.is_empty());

    // Ranges are served from the plain file.
    let r = request(
        addr,
        &get("/big.txt", &format!("{gz}Range: bytes=10-19\r\n")),
    )
    .await;
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.body, text(300_000)[10..20]);
    let r = request(
        addr,
        &get("/small.html", &format!("{gz}Range: bytes=0-1,5-6\r\n")),
    )
    .await;
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-encoding"), None);

    // Below the threshold, and binary types, stay as they are (and do not vary).
    let r = request(addr, &get("/tiny.txt", gz)).await;
    assert_eq!(
        (r.header("content-encoding"), r.header("vary")),
        (None, None)
    );
    assert_eq!(r.body, text(100));
    let r = request(addr, &get("/photo.png", gz)).await;
    assert_eq!(
        (r.header("content-encoding"), r.header("vary")),
        (None, None)
    );
    // WebAssembly is compressible.
    let r = request(addr, &get("/app.wasm", gz)).await;
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(gunzip(&r.body), text(5_000));
    drop(s.dir);
}

#[tokio::test]
async fn accept_encoding_weights_pick_the_coding() {
    let s = site(HttpCompression::on()).await;
    let addr = s.server.local_addrs()[0];
    let ae = |v: &str| format!("Accept-Encoding: {v}\r\n");
    let cases = [
        ("deflate", Some("deflate")),
        ("gzip;q=0.4, deflate;q=0.8", Some("deflate")),
        ("gzip;q=0, deflate;q=0", None),
        ("br", None),
        ("*", Some("gzip")),
        ("*;q=0.5, gzip;q=0", Some("deflate")),
        ("identity", None),
    ];
    for (header, want) in cases {
        let r = request(addr, &get("/small.html", &ae(header))).await;
        assert_eq!(
            r.header("content-encoding"),
            want,
            "Accept-Encoding: {header}"
        );
        assert_eq!(plain_body(&r), text(10_000), "Accept-Encoding: {header}");
    }
    // Refusing identity compresses even a body below the threshold, and any type.
    let r = request(addr, &get("/tiny.txt", &ae("gzip, identity;q=0"))).await;
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(gunzip(&r.body), text(100));
    let r = request(addr, &get("/photo.png", &ae("deflate, *;q=0"))).await;
    assert_eq!(r.header("content-encoding"), Some("deflate"));
    assert_eq!(inflate(&r.body), text(10_000));
}

#[tokio::test]
async fn handler_bodies_and_streams_are_compressed() {
    let s = site(HttpCompression::on()).await;
    let addr = s.server.local_addrs()[0];
    let gz = "Accept-Encoding: gzip\r\n";
    let r = request(addr, &get("/api", gz)).await;
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("vary"), Some("Origin, Accept-Encoding"));
    assert_eq!(r.header("etag"), Some("\"v1-gzip\""));
    assert_eq!(gunzip(&r.body), json().into_bytes());

    let r = request(addr, &get("/stream", gz)).await;
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    let expected: String = (0..50)
        .map(|i| format!("event {i}: {}\n", "data ".repeat(40)))
        .collect();
    assert_eq!(gunzip(&r.body), expected.into_bytes());

    // A body the handler encoded itself is left alone.
    let r = request(addr, &get("/pre", gz)).await;
    assert_eq!(r.header("content-encoding"), Some("br"));
    assert_eq!(r.body.len(), 4000);
}

#[tokio::test]
async fn compression_is_off_by_default() {
    let s = site(HttpCompression::default()).await;
    let addr = s.server.local_addrs()[0];
    for path in ["/small.html", "/big.txt", "/api", "/stream"] {
        let r = request(addr, &get(path, "Accept-Encoding: gzip, deflate\r\n")).await;
        assert_eq!(r.header("content-encoding"), None, "{path}");
        assert_eq!(
            r.header("vary"),
            if path == "/api" { Some("Origin") } else { None }
        );
    }
}

const PY_CLIENT: &str = r#"
import gzip, sys, urllib.request, zlib
base = sys.argv[1]
for path, coding in [("/big.txt", "gzip"), ("/api", "deflate"), ("/stream", "gzip")]:
    req = urllib.request.Request(base + path, headers={"Accept-Encoding": coding})
    with urllib.request.urlopen(req) as resp:
        got = resp.headers.get("Content-Encoding")
        raw = resp.read()
    assert got == coding, (path, got)
    body = gzip.decompress(raw) if coding == "gzip" else zlib.decompress(raw)
    print(path, len(raw), len(body), zlib.crc32(body))
"#;

fn python3() -> bool {
    let found = ws_testkit::peers::runs("python3", &["-c", "import gzip, zlib, urllib.request"]);
    if !found {
        ws_testkit::peers::missing("python3 is not installed", "apt-get install -y python3");
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_urllib_decodes_gzip_and_deflate_bodies() {
    if !python3() {
        return;
    }
    let s = site(HttpCompression::on()).await;
    let base = format!("http://{}", s.server.local_addrs()[0]);
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args(["-c", PY_CLIENT, &base])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stream: String = (0..50)
        .map(|i| format!("event {i}: {}\n", "data ".repeat(40)))
        .collect();
    for (path, plain) in [
        ("/big.txt", text(300_000)),
        ("/api", json().into_bytes()),
        ("/stream", stream.into_bytes()),
    ] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("{path} ")))
            .unwrap_or_else(|| panic!("no line for {path}: {stdout}"));
        let f: Vec<u64> = line
            .split(' ')
            .skip(1)
            .map(|x| x.parse().unwrap())
            .collect();
        assert!(f[0] < f[1], "{path} was not smaller on the wire: {line}");
        let crc = {
            let mut h = flate2::Crc::new();
            h.update(&plain);
            u64::from(h.sum())
        };
        assert_eq!((f[1], f[2]), (plain.len() as u64, crc), "{path}");
    }
}
