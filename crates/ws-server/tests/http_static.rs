//! Static files from the document root over real TCP: content types, index.html, validators
//! and 304, ranges (206, 416), HEAD, large files, and no way out of the root.

mod common;

use std::path::Path;

use bytes::BytesMut;
use common::{local_config, read_response, request};
use tokio::{io::AsyncWriteExt, net::TcpStream};
use ws_server::{NoopHandler, Server, ServerHandle};

struct Site {
    _dir: tempfile::TempDir,
    server: ServerHandle,
}

fn write(dir: &Path, rel: &str, data: &[u8]) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, data).unwrap();
}

/// A tree with the root at `<tmp>/www` and a secret next to it at `<tmp>/secret.txt`.
async fn site() -> Site {
    let dir = tempfile::tempdir().unwrap();
    let www = dir.path().join("www");
    write(&www, "index.html", b"<h1>home</h1>");
    write(&www, "app.js", b"console.log(1)");
    write(&www, "docs/index.html", b"docs");
    write(&www, "data.bin", &(0..=255u8).collect::<Vec<_>>());
    write(&www, "sub/file.txt", b"0123456789");
    write(dir.path(), "secret.txt", b"TOP SECRET");
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(dir.path().join("secret.txt"), www.join("escape.txt")).unwrap();
        std::os::unix::fs::symlink(dir.path(), www.join("up")).unwrap();
        std::os::unix::fs::symlink(www.join("sub/file.txt"), www.join("inside.txt")).unwrap();
    }
    let mut config = local_config();
    config.document_root = Some(www);
    let server = Server::start(config, NoopHandler).await.unwrap();
    Site { _dir: dir, server }
}

fn get(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n")
}

#[tokio::test]
async fn files_are_served_with_types_and_index_html() {
    let s = site().await;
    let addr = s.server.local_addrs()[0];
    let r = request(addr, &get("/", "")).await;
    assert_eq!((r.status, r.text().as_str()), (200, "<h1>home</h1>"));
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let r = request(addr, &get("/app.js", "")).await;
    assert_eq!(
        r.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    let r = request(addr, &get("/data.bin", "")).await;
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(r.body.len(), 256);
    let r = request(addr, &get("/docs", "")).await;
    assert_eq!((r.status, r.header("location")), (301, Some("/docs/")));
    let r = request(addr, &get("/docs/", "")).await;
    assert_eq!(r.text(), "docs");
    let r = request(addr, &get("/sub/", "")).await;
    assert_eq!(
        r.status, 404,
        "a directory without index.html is not listed"
    );
    let r = request(addr, &get("/missing.txt", "")).await;
    assert_eq!(r.status, 404);
    let r = request(addr, &get("/s%75b/file.txt", "")).await;
    assert_eq!(r.text(), "0123456789", "percent-encoded names are decoded");
    let r = request(
        addr,
        "POST /app.js HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 404, "only GET and HEAD reach the files");
}

#[tokio::test]
async fn traversal_attempts_are_refused() {
    let s = site().await;
    let addr = s.server.local_addrs()[0];
    for path in [
        "/../secret.txt",
        "/sub/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/sub/%2e%2e/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/sub%2f..%2f..%2fsecret.txt",
        "/..%5csecret.txt",
        "/sub\\..\\..\\secret.txt",
        "/secret.txt%00.html",
        "/escape.txt",
        "/up/secret.txt",
        "//etc/passwd",
        "/%zz",
    ] {
        let r = request(addr, &get(path, "")).await;
        assert!(
            matches!(r.status, 400 | 403 | 404),
            "{path}: {} {}",
            r.status,
            r.text()
        );
        assert!(!r.text().contains("SECRET"), "{path}");
    }
    #[cfg(unix)]
    {
        let r = request(addr, &get("/escape.txt", "")).await;
        assert_eq!(r.status, 403, "symlink out of the root");
        let r = request(addr, &get("/inside.txt", "")).await;
        assert_eq!(
            r.text(),
            "0123456789",
            "a symlink that stays inside is fine"
        );
    }
}

#[tokio::test]
async fn etag_and_last_modified_give_304() {
    let s = site().await;
    let addr = s.server.local_addrs()[0];
    let r = request(addr, &get("/app.js", "")).await;
    let etag = r.header("etag").unwrap().to_owned();
    let modified = r.header("last-modified").unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'));
    let r = request(
        addr,
        &get("/app.js", &format!("If-None-Match: \"x\", {etag}\r\n")),
    )
    .await;
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    let r = request(
        addr,
        &get("/app.js", &format!("If-None-Match: W/{etag}\r\n")),
    )
    .await;
    assert_eq!(r.status, 304, "weak comparison");
    let r = request(addr, &get("/app.js", "If-None-Match: \"other\"\r\n")).await;
    assert_eq!(r.status, 200);
    let r = request(
        addr,
        &get("/app.js", &format!("If-Modified-Since: {modified}\r\n")),
    )
    .await;
    assert_eq!(r.status, 304);
    let r = request(
        addr,
        &get(
            "/app.js",
            "If-Modified-Since: Thu, 01 Jan 1998 00:00:00 GMT\r\n",
        ),
    )
    .await;
    assert_eq!(r.status, 200);
    // If-None-Match wins over If-Modified-Since.
    let r = request(
        addr,
        &get(
            "/app.js",
            &format!("If-None-Match: \"other\"\r\nIf-Modified-Since: {modified}\r\n"),
        ),
    )
    .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn ranges_give_206_and_unsatisfiable_ones_416() {
    let s = site().await;
    let addr = s.server.local_addrs()[0];
    let r = request(addr, &get("/sub/file.txt", "Range: bytes=2-5\r\n")).await;
    assert_eq!((r.status, r.text().as_str()), (206, "2345"));
    assert_eq!(r.header("content-range"), Some("bytes 2-5/10"));
    assert_eq!(r.header("content-length"), Some("4"));
    let r = request(addr, &get("/sub/file.txt", "Range: bytes=7-\r\n")).await;
    assert_eq!(r.text(), "789");
    let r = request(addr, &get("/sub/file.txt", "Range: bytes=-3\r\n")).await;
    assert_eq!(r.text(), "789");
    let r = request(addr, &get("/sub/file.txt", "Range: bytes=10-20\r\n")).await;
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */10"));
    // Several ranges: multipart/byteranges (tests/http_ranges.rs checks the parts).
    let r = request(addr, &get("/sub/file.txt", "Range: bytes=0-1,4-5\r\n")).await;
    assert_eq!(r.status, 206);
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("multipart/byteranges; boundary=")),
        "{:?}",
        r.header("content-type")
    );
    let r = request(
        addr,
        &get(
            "/sub/file.txt",
            "Range: bytes=1-2\r\nIf-Range: \"stale\"\r\n",
        ),
    )
    .await;
    assert_eq!(r.status, 200, "If-Range with another ETag: the whole file");
    let etag = request(addr, &get("/sub/file.txt", ""))
        .await
        .header("etag")
        .unwrap()
        .to_owned();
    let r = request(
        addr,
        &get(
            "/sub/file.txt",
            &format!("Range: bytes=1-2\r\nIf-Range: {etag}\r\n"),
        ),
    )
    .await;
    assert_eq!((r.status, r.text().as_str()), (206, "12"));
}

#[tokio::test]
async fn head_has_headers_but_no_body() {
    let s = site().await;
    let mut tcp = TcpStream::connect(s.server.local_addrs()[0]).await.unwrap();
    tcp.write_all(
        b"HEAD /sub/file.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /app.js HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = BytesMut::new();
    let r = read_response(&mut tcp, &mut buf, "HEAD").await.unwrap();
    assert_eq!((r.status, r.header("content-length")), (200, Some("10")));
    assert!(r.body.is_empty());
    let r = read_response(&mut tcp, &mut buf, "GET").await.unwrap();
    assert_eq!(
        r.text(),
        "console.log(1)",
        "nothing of the HEAD body leaked"
    );
}

#[tokio::test]
async fn large_files_are_streamed_intact() {
    let s = site().await;
    let root = s.server.config().document_root.clone().unwrap();
    // 24 MiB: larger than any buffer the server keeps (64 KiB chunks).
    let data: Vec<u8> = (0..24u32 << 20).map(|i| (i % 251) as u8).collect();
    std::fs::write(root.join("big.bin"), &data).unwrap();
    let mut tcp = TcpStream::connect(s.server.local_addrs()[0]).await.unwrap();
    tcp.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\nGET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=20000000-\r\n\r\n")
        .await
        .unwrap();
    let mut buf = BytesMut::new();
    let r = read_response(&mut tcp, &mut buf, "GET").await.unwrap();
    assert_eq!(r.header("content-length"), Some("25165824"));
    assert!(r.body == data, "body differs");
    let r = read_response(&mut tcp, &mut buf, "GET").await.unwrap();
    assert_eq!(r.status, 206);
    assert!(r.body[..] == data[20_000_000..]);
}

/// A file cut short while it is being sent: the promised length cannot be met, so the server
/// closes the connection after what it could send (no hang, no bytes of another file, no
/// second response on the connection).
#[tokio::test]
async fn a_file_that_shrinks_while_sent_ends_the_connection_short() {
    use tokio::io::AsyncReadExt as _;
    let s = site().await;
    let root = s.server.config().document_root.clone().unwrap();
    let len = 64usize << 20;
    let data: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
    std::fs::write(root.join("shrinking.bin"), &data).unwrap();
    let mut tcp = TcpStream::connect(s.server.local_addrs()[0]).await.unwrap();
    tcp.write_all(b"GET /shrinking.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // The head and the first MiB, then the file loses all but 2 MiB.
    let mut got = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    while got.len() < (1 << 20) {
        let n = tcp.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed after {} bytes", got.len());
        got.extend_from_slice(&buf[..n]);
    }
    std::fs::OpenOptions::new()
        .write(true)
        .open(root.join("shrinking.bin"))
        .unwrap()
        .set_len(2 << 20)
        .unwrap();
    let rest = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(rest.is_ok(), "the server neither finished nor closed");
    let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&got[..head_end]).to_string();
    assert!(head.contains(&format!("Content-Length: {len}")), "{head}");
    let body = &got[head_end..];
    assert!(
        body.len() < len,
        "the whole file arrived: {} bytes",
        body.len()
    );
    assert!(
        body == &data[..body.len()],
        "the bytes sent differ from the file's"
    );
}

async fn site_with_cache(ttl: std::time::Duration) -> (tempfile::TempDir, ServerHandle) {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "page.txt", b"first");
    let mut config = local_config();
    config.document_root = Some(dir.path().to_owned());
    config.file_cache = ttl;
    let server = Server::start(config, NoopHandler).await.unwrap();
    (dir, server)
}

#[tokio::test]
async fn cached_small_files_are_looked_at_again_after_the_cache_time() {
    let ttl = std::time::Duration::from_millis(300);
    let (dir, server) = site_with_cache(ttl).await;
    let addr = server.local_addrs()[0];
    let r = request(addr, &get("/page.txt", "")).await;
    assert_eq!((r.status, r.text().as_str()), (200, "first"));
    let etag = r.header("etag").unwrap().to_owned();
    let modified = r.header("last-modified").unwrap().to_owned();
    // From memory: ranges, HEAD and validators as for a file read from disk.
    let r = request(addr, &get("/page.txt", "Range: bytes=1-3\r\n")).await;
    assert_eq!((r.status, r.text().as_str()), (206, "irs"));
    assert_eq!(r.header("content-range"), Some("bytes 1-3/5"));
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    assert_eq!(r.header("last-modified"), Some(modified.as_str()));
    let r = request(addr, "HEAD /page.txt HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!((r.status, r.header("content-length")), (200, Some("5")));
    assert!(r.body.is_empty());
    let r = request(
        addr,
        &get("/page.txt", &format!("If-None-Match: {etag}\r\n")),
    )
    .await;
    assert_eq!(r.status, 304);
    // A change on disk shows once the cache time has passed; a removal too.
    write(dir.path(), "page.txt", b"second, longer");
    tokio::time::sleep(ttl + std::time::Duration::from_millis(100)).await;
    let r = request(addr, &get("/page.txt", "")).await;
    assert_eq!((r.status, r.text().as_str()), (200, "second, longer"));
    assert_ne!(r.header("etag"), Some(etag.as_str()));
    // The old entity tag no longer matches: the new content, not a 304.
    let r = request(
        addr,
        &get("/page.txt", &format!("If-None-Match: {etag}\r\n")),
    )
    .await;
    assert_eq!((r.status, r.text().as_str()), (200, "second, longer"));
    std::fs::remove_file(dir.path().join("page.txt")).unwrap();
    tokio::time::sleep(ttl + std::time::Duration::from_millis(100)).await;
    let r = request(addr, &get("/page.txt", "")).await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn without_the_cache_every_request_sees_the_file_on_disk() {
    let (dir, server) = site_with_cache(std::time::Duration::ZERO).await;
    let addr = server.local_addrs()[0];
    for text in ["one", "two, longer", "three"] {
        write(dir.path(), "page.txt", text.as_bytes());
        let r = request(addr, &get("/page.txt", "")).await;
        assert_eq!((r.status, r.text().as_str()), (200, text));
    }
    // A file over the in-memory size is streamed, and changes show at once too.
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    write(dir.path(), "page.txt", &big);
    let r = request(addr, &get("/page.txt", "")).await;
    assert_eq!((r.status, r.body.len()), (200, big.len()));
    assert!(r.body[..] == big[..]);
}

#[tokio::test]
async fn files_of_every_size_arrive_intact_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    // Copied next to the head (1 KiB), written with it in one vectored write (16 KiB, 64 KiB,
    // both from memory) and streamed from disk (300 KiB).
    let sizes = [1024usize, 16 * 1024, 64 * 1024, 300 * 1024];
    for size in sizes {
        let data: Vec<u8> = (0..size).map(|i| (i * 7 % 253) as u8).collect();
        write(dir.path(), &format!("f{size}.bin"), &data);
    }
    let pki = ws_tls::test_certs::TestPki::generate();
    let tls = ws_tls::server_config(&pki.server_config()).unwrap();
    let mut config = ws_server::ServerConfig::new(vec![ws_server::Binding::tls(
        "127.0.0.1:0".parse().unwrap(),
        tls,
    )]);
    config.document_root = Some(dir.path().to_owned());
    let server = Server::start(config, NoopHandler).await.unwrap();
    let tcp = TcpStream::connect(server.local_addrs()[0]).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = common::tls_connector(&pki)
        .connect(name, tcp)
        .await
        .unwrap();
    let mut buf = BytesMut::new();
    for size in sizes {
        // Twice: from disk, then (small ones) from memory.
        for _ in 0..2 {
            tls.write_all(get(&format!("/f{size}.bin"), "").as_bytes())
                .await
                .unwrap();
            let r = read_response(&mut tls, &mut buf, "GET").await.unwrap();
            assert_eq!(r.status, 200);
            let want: Vec<u8> = (0..size).map(|i| (i * 7 % 253) as u8).collect();
            assert!(r.body[..] == want[..], "{size} bytes differ");
        }
    }
}
