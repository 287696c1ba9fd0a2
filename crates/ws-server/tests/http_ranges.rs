//! Several ranges in one request: a `multipart/byteranges` answer (RFC 9110 section 14.6) for
//! small files (read whole) and large ones (read at each offset), merged and bounded.

mod common;

use common::{local_config, request};
use ws_server::{EchoHandler, Server, ServerHandle};

fn content(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

async fn start(root: &std::path::Path) -> ServerHandle {
    let mut config = local_config();
    config.document_root = Some(root.to_owned());
    Server::start(config, EchoHandler).await.unwrap()
}

/// Splits a `multipart/byteranges` body into `(content-range, bytes)` parts.
fn parts(body: &[u8], boundary: &str) -> Vec<(String, Vec<u8>)> {
    let delim = format!("--{boundary}");
    let text_end = format!("\r\n--{boundary}--\r\n");
    assert!(
        body.ends_with(text_end.as_bytes()),
        "closing delimiter missing"
    );
    let mut out = Vec::new();
    let mut rest = &body[..body.len() - text_end.len()];
    loop {
        let start = rest.strip_prefix(b"\r\n".as_slice()).unwrap_or(rest);
        let start = start
            .strip_prefix(delim.as_bytes())
            .expect("a part starts with the delimiter");
        let head_end = start
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("part head");
        let head = String::from_utf8(start[..head_end].to_vec()).unwrap();
        let range = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Range: "))
            .expect("Content-Range in every part")
            .to_owned();
        let data = &start[head_end + 4..];
        let next = data
            .windows(delim.len() + 2)
            .position(|w| w == format!("\r\n{delim}").as_bytes());
        match next {
            Some(i) => {
                out.push((range, data[..i].to_vec()));
                rest = &data[i..];
            }
            None => {
                out.push((range, data.to_vec()));
                return out;
            }
        }
    }
}

async fn check_multi(len: usize) {
    let dir = tempfile::tempdir().unwrap();
    let bytes = content(len);
    std::fs::write(dir.path().join("f.bin"), &bytes).unwrap();
    let server = start(dir.path()).await;
    let addr = server.local_addrs()[0];

    let r = request(
        addr,
        "GET /f.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=100-199, 0-9, 5-20, -7\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 206, "{len}-byte file");
    let ct = r.header("content-type").unwrap().to_owned();
    let boundary = ct
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("content-type {ct}"));
    assert_eq!(
        r.header("content-length").unwrap(),
        r.body.len().to_string()
    );
    let got = parts(&r.body, boundary);
    let want = [(0, 20), (100, 199), (len - 7, len - 1)];
    assert_eq!(got.len(), want.len(), "ranges merged: 0-9 and 5-20 are one");
    for ((range, data), (a, b)) in got.iter().zip(want) {
        assert_eq!(range, &format!("bytes {a}-{b}/{len}"));
        assert_eq!(data.as_slice(), &bytes[a..=b]);
    }

    // All unsatisfiable: 416; one left after merging: a plain 206.
    let r = request(
        addr,
        "GET /f.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=9999999-, 99999999-\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 416);
    let r = request(
        addr,
        "GET /f.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9, 10-19\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("content-range").unwrap(),
        format!("bytes 0-19/{len}")
    );
    assert_eq!(r.body, &bytes[..20]);
    server.stop().await;
}

#[tokio::test]
async fn several_ranges_of_a_small_file() {
    check_multi(4096).await;
}

#[tokio::test]
async fn several_ranges_of_a_large_file() {
    check_multi(3 << 20).await;
}

#[tokio::test]
async fn too_many_or_too_large_ranges_get_the_whole_file() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = content(3 << 20);
    std::fs::write(dir.path().join("f.bin"), &bytes).unwrap();
    let server = start(dir.path()).await;
    let addr = server.local_addrs()[0];
    // Seventeen ranges: more than the server honours.
    let many: Vec<String> = (0..17)
        .map(|i| format!("{}-{}", i * 10, i * 10 + 1))
        .collect();
    let r = request(
        addr,
        &format!(
            "GET /f.bin HTTP/1.1\r\nHost: x\r\nRange: bytes={}\r\n\r\n",
            many.join(",")
        ),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), bytes.len());
    // Two ranges of 1 MiB each: past the in-memory bound.
    let r = request(
        addr,
        "GET /f.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1048575, 2000000-3048575\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, bytes);
    server.stop().await;
}
