//! The tus 1.0 door: Python tuspy (a real client nobody here wrote) uploads, is interrupted
//! (the first process stops after some chunks), and a second process resumes from the URL with
//! sha1 checksums; the stored file's SHA-256 must match. Then the protocol details by hand:
//! OPTIONS and CORS, a cut PATCH body keeping what arrived, offset conflicts, a checksum
//! mismatch, termination, creation-with-upload, limits and names.
//!
//! Without python3 + tuspy the peer test prints `SKIPPED: ...` and passes, unless
//! `WSKIT_REQUIRE_PEERS=1` makes it fail.

mod common;

use std::{net::SocketAddr, process::Command, time::Duration};

use base64::Engine as _;
use common::*;
use proto_files::{ChannelHooks, Config, EventKind, NoHooks};
use sha1::{Digest as _, Sha1};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

fn have_tuspy() -> bool {
    Command::new("python3")
        .args(["-c", "import tusclient"])
        .output()
        .is_ok_and(|o| o.status.success())
}

const PHASE1: &str = r#"
import sys
from tusclient import client
c = client.TusClient(sys.argv[1])
u = c.uploader(sys.argv[2], chunk_size=int(sys.argv[3]), metadata={"filename": "from-tuspy.bin"})
for _ in range(int(sys.argv[4])):
    u.upload_chunk()
print(u.url)
print(u.offset)
"#;

const PHASE2: &str = r#"
import sys
from tusclient import client
c = client.TusClient(sys.argv[1])
u = c.uploader(sys.argv[2], url=sys.argv[3], chunk_size=int(sys.argv[4]), upload_checksum=True)
print(u.offset)
u.upload()
print(u.offset)
"#;

fn python(script: &str, args: &[&str]) -> Vec<String> {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tuspy_uploads_is_interrupted_resumes_and_the_sha256_matches() {
    if !have_tuspy() {
        ws_testkit::peers::missing(
            "python3 with tuspy is missing",
            "python3 -m pip install tuspy==1.1.0",
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("srv");
    let (hooks, mut events) = ChannelHooks::new(10_000);
    let (server, _files, addr) = start(Config::default(), &dir, hooks).await;
    let path = make_file(tmp.path(), "source.bin", 3_000_000 + 123, 11);
    let want = sha256_file(&path);
    let url = format!("http://{addr}/files/");
    let p = path.to_str().unwrap().to_string();
    let chunk = (256 * 1024).to_string();
    // Process 1: five chunks, then it stops.
    let (u, p1, c1) = (url.clone(), p.clone(), chunk.clone());
    let out = tokio::task::spawn_blocking(move || python(PHASE1, &[&u, &p1, &c1, "5"]))
        .await
        .unwrap();
    let upload_url = out[0].clone();
    assert_eq!(out[1], (5 * 256 * 1024).to_string());
    assert!(upload_url.contains("/files/"), "{upload_url}");
    assert!(!dir.join("from-tuspy.bin").exists());
    // Process 2: resumes from the URL (HEAD), with sha1 Upload-Checksum on every PATCH.
    let (u, p2, uu, c2) = (url.clone(), p.clone(), upload_url.clone(), chunk.clone());
    let out = tokio::task::spawn_blocking(move || python(PHASE2, &[&u, &p2, &uu, &c2]))
        .await
        .unwrap();
    assert_eq!(
        out[0],
        (5 * 256 * 1024).to_string(),
        "resumed at the server's offset"
    );
    assert_eq!(out[1], "3000123");
    let stored = dir.join("from-tuspy.bin");
    let got = sha256_file(&stored);
    eprintln!("tuspy: resumed at {}, stored sha256 {}", out[0], hex(&got));
    assert_eq!(got, want);
    let mut received = None;
    while let Ok(e) = events.try_recv() {
        if e.kind == EventKind::Received {
            received = e.sha256;
        }
    }
    assert_eq!(
        received,
        Some(want),
        "the Received event carries the SHA-256"
    );
    server.stop().await;
}

/// One HTTP/1.1 request on a new connection; the response head and body.
async fn http(addr: SocketAddr, head: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut buf = Vec::new();
    let read = async {
        let mut chunk = [0u8; 4096];
        loop {
            let n = s.read(&mut chunk).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = find(&buf, b"\r\n\r\n") {
                let h = String::from_utf8_lossy(&buf[..end]).to_string();
                let len = header_of(&h, "content-length")
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    break;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .unwrap();
    let end = find(&buf, b"\r\n\r\n").expect("a response head");
    let h = String::from_utf8_lossy(&buf[..end]).to_string();
    let status = h[9..12].parse().unwrap();
    (status, h, buf[end + 4..].to_vec())
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

fn header_of(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

fn b64(s: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test]
async fn tus_protocol_details_by_hand() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("srv");
    let mut cfg = Config::default();
    cfg.max_file_size = 10_000_000;
    let (server, _files, addr) = start(cfg, &dir, NoHooks).await;
    let h = |extra: &str, method: &str, path: &str| {
        format!("{method} {path} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\n{extra}\r\n")
    };
    // OPTIONS with CORS preflight.
    let (st, head, _) = http(
        addr,
        "OPTIONS /files/ HTTP/1.1\r\nHost: x\r\nOrigin: http://app.example\r\n\
         Access-Control-Request-Method: POST\r\n\r\n",
        b"",
    )
    .await;
    assert_eq!(st, 204);
    assert_eq!(header_of(&head, "tus-version").as_deref(), Some("1.0.0"));
    let ext = header_of(&head, "tus-extension").unwrap();
    for e in [
        "creation",
        "creation-with-upload",
        "termination",
        "checksum",
        "expiration",
    ] {
        assert!(ext.split(',').any(|x| x == e), "{ext}");
    }
    assert_eq!(
        header_of(&head, "tus-max-size").as_deref(),
        Some("10000000")
    );
    assert!(
        header_of(&head, "tus-checksum-algorithm")
            .unwrap()
            .contains("sha1")
    );
    assert_eq!(
        header_of(&head, "access-control-allow-origin").as_deref(),
        Some("http://app.example")
    );
    assert!(
        header_of(&head, "access-control-allow-methods")
            .unwrap()
            .contains("PATCH")
    );
    assert!(
        header_of(&head, "access-control-allow-headers")
            .unwrap()
            .contains("Upload-Offset")
    );
    // No Tus-Resumable: 412.
    let (st, _, _) = http(addr, "HEAD /files/00 HTTP/1.1\r\nHost: x\r\n\r\n", b"").await;
    assert_eq!(st, 412);
    // Creation: too large, bad name, then a good one.
    let (st, _, _) = http(
        addr,
        &h("Upload-Length: 10000001\r\n", "POST", "/files/"),
        b"",
    )
    .await;
    assert_eq!(st, 413);
    let meta = format!("filename {}", b64(b"../../evil.sh"));
    let (st, _, _) = http(
        addr,
        &h(
            &format!("Upload-Length: 10\r\nUpload-Metadata: {meta}\r\n"),
            "POST",
            "/files/",
        ),
        b"",
    )
    .await;
    assert_eq!(st, 400);
    let meta = format!("filename {},note", b64(b"notes.txt"));
    let (st, head, _) = http(
        addr,
        &h(
            &format!("Upload-Length: 100000\r\nUpload-Metadata: {meta}\r\nOrigin: http://a\r\n"),
            "POST",
            "/files/",
        ),
        b"",
    )
    .await;
    assert_eq!(st, 201);
    let loc = header_of(&head, "location").unwrap();
    assert!(
        header_of(&head, "upload-expires")
            .unwrap()
            .ends_with(" GMT")
    );
    assert!(
        header_of(&head, "access-control-expose-headers")
            .unwrap()
            .contains("Location")
    );
    // A PATCH whose body is cut after 40,000 of 60,000 bytes: what arrived is kept.
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let head = h(
            "Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\nContent-Length: 60000\r\n",
            "PATCH",
            &loc,
        );
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(&data[..40_000]).await.unwrap();
        s.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(s);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (st, head, _) = http(addr, &h("", "HEAD", &loc), b"").await;
    assert_eq!(st, 200);
    assert_eq!(header_of(&head, "upload-offset").as_deref(), Some("40000"));
    assert_eq!(header_of(&head, "upload-length").as_deref(), Some("100000"));
    assert_eq!(
        header_of(&head, "cache-control").as_deref(),
        Some("no-store")
    );
    assert_eq!(
        header_of(&head, "upload-metadata").as_deref(),
        Some(meta.as_str())
    );
    // A wrong offset: 409.
    let patch = |offset: usize, len: usize, extra: &str| {
        h(
            &format!(
                "Content-Type: application/offset+octet-stream\r\nUpload-Offset: {offset}\r\nContent-Length: {len}\r\n{extra}"
            ),
            "PATCH",
            &loc,
        )
    };
    let (st, _, _) = http(addr, &patch(0, 10, ""), &data[..10]).await;
    assert_eq!(st, 409);
    // Wrong content type: 415.
    let (st, _, _) = http(
        addr,
        &h(
            "Content-Type: text/plain\r\nUpload-Offset: 40000\r\nContent-Length: 1\r\n",
            "PATCH",
            &loc,
        ),
        b"x",
    )
    .await;
    assert_eq!(st, 415);
    // A sha1 mismatch: 460 and the bytes are dropped.
    let bad = format!("Upload-Checksum: sha1 {}\r\n", b64(&Sha1::digest(b"other")));
    let (st, _, _) = http(addr, &patch(40_000, 30_000, &bad), &data[40_000..70_000]).await;
    assert_eq!(st, 460);
    let (_, head, _) = http(addr, &h("", "HEAD", &loc), b"").await;
    assert_eq!(header_of(&head, "upload-offset").as_deref(), Some("40000"));
    // The right sha1: 204 and the new offset.
    let good = format!(
        "Upload-Checksum: sha1 {}\r\n",
        b64(&Sha1::digest(&data[40_000..70_000]))
    );
    let (st, head, _) = http(addr, &patch(40_000, 30_000, &good), &data[40_000..70_000]).await;
    assert_eq!(st, 204);
    assert_eq!(header_of(&head, "upload-offset").as_deref(), Some("70000"));
    // Past the length: 413 and nothing kept; an unknown algorithm: 400.
    let (st, _, _) = http(addr, &patch(70_000, 30_001, ""), &[0; 30_001]).await;
    assert_eq!(st, 413);
    let (_, head, _) = http(addr, &h("", "HEAD", &loc), b"").await;
    let at: usize = header_of(&head, "upload-offset").unwrap().parse().unwrap();
    assert_eq!(at, 70_000);
    let (st, _, _) = http(
        addr,
        &patch(at, 1, "Upload-Checksum: md5 AAAA\r\n"),
        &data[at..=at],
    )
    .await;
    assert_eq!(st, 400);
    // The rest: done, stored under its name, HEAD still answers.
    let (st, head, _) = http(addr, &patch(at, 100_000 - at, ""), &data[at..]).await;
    assert_eq!(st, 204);
    assert_eq!(header_of(&head, "upload-offset").as_deref(), Some("100000"));
    assert!(
        std::fs::read(dir.join("notes.txt")).unwrap() == data,
        "notes.txt differs"
    );
    let (st, head, _) = http(addr, &h("", "HEAD", &loc), b"").await;
    assert_eq!(
        (st, header_of(&head, "upload-offset").as_deref()),
        (200, Some("100000"))
    );
    // Creation with upload, then termination of another upload.
    let (st, head, _) = http(
        addr,
        &h(
            &format!(
                "Upload-Length: 5\r\nUpload-Metadata: filename {}\r\nContent-Type: application/offset+octet-stream\r\nContent-Length: 5\r\n",
                b64(b"hello.txt")
            ),
            "POST",
            "/files/",
        ),
        b"hello",
    )
    .await;
    assert_eq!(st, 201);
    assert_eq!(header_of(&head, "upload-offset").as_deref(), Some("5"));
    assert_eq!(std::fs::read(dir.join("hello.txt")).unwrap(), b"hello");
    let (_, head, _) = http(addr, &h("Upload-Length: 50\r\n", "POST", "/files/"), b"").await;
    let gone = header_of(&head, "location").unwrap();
    let (st, _, _) = http(addr, &h("", "DELETE", &gone), b"").await;
    assert_eq!(st, 204);
    let (st, _, _) = http(addr, &h("", "HEAD", &gone), b"").await;
    assert_eq!(st, 404);
    let (st, _, _) = http(addr, &h("", "DELETE", &gone), b"").await;
    assert_eq!(st, 404);
    // Anything outside the tus path is not ours.
    let (st, _, _) = http(addr, &h("", "GET", "/other"), b"").await;
    assert_eq!(st, 404);
    server.stop().await;
}

/// PATCHes large enough for direct writes (whole aligned blocks by the writer's second thread,
/// heads and tails through the page cache): a body cut at an odd byte, a resume from that
/// unaligned offset with a checksum that fails (nothing of it kept) and then passes, and the
/// rest; the stored file is byte-identical. Without direct I/O (`direct_io` off) the same.
#[tokio::test]
async fn large_patches_with_direct_writes_resume_at_odd_offsets_intact() {
    for direct_io in [true, false] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("srv");
        let mut cfg = Config::default();
        cfg.direct_io = direct_io;
        let (server, _files, addr) = start(cfg, &dir, NoHooks).await;
        let h = |extra: &str, method: &str, path: &str| {
            format!("{method} {path} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\n{extra}\r\n")
        };
        let len = (13 << 20) + 4_097;
        let data: Vec<u8> = (0..len as u32).map(|i| (i * 31 % 253) as u8).collect();
        let meta = format!("filename {}", b64(b"big.bin"));
        let (st, head, _) = http(
            addr,
            &h(
                &format!("Upload-Length: {len}\r\nUpload-Metadata: {meta}\r\n"),
                "POST",
                "/files/",
            ),
            b"",
        )
        .await;
        assert_eq!(st, 201);
        let loc = header_of(&head, "location").unwrap();
        let patch = |offset: usize, n: usize, extra: &str| {
            h(
                &format!(
                    "Content-Type: application/offset+octet-stream\r\nUpload-Offset: {offset}\r\nContent-Length: {n}\r\n{extra}"
                ),
                "PATCH",
                &loc,
            )
        };
        // A PATCH promising 9 MiB, cut after 6 MiB and 12,345 bytes.
        let cut = (6 << 20) + 12_345;
        {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(patch(0, 9 << 20, "").as_bytes()).await.unwrap();
            s.write_all(&data[..cut]).await.unwrap();
            s.flush().await.unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
            drop(s);
        }
        let mut at = 0;
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let (_, head, _) = http(addr, &h("", "HEAD", &loc), b"").await;
            at = header_of(&head, "upload-offset").unwrap().parse().unwrap();
            if at == cut {
                break;
            }
        }
        assert_eq!(at, cut, "direct_io {direct_io}: the offset after the cut");
        // From the unaligned offset: a wrong sha1 (dropped), then the right one.
        let next = cut + (5 << 20) + 1;
        let bad = format!("Upload-Checksum: sha1 {}\r\n", b64(&Sha1::digest(b"other")));
        let (st, _, _) = http(addr, &patch(cut, next - cut, &bad), &data[cut..next]).await;
        assert_eq!(st, 460);
        let good = format!(
            "Upload-Checksum: sha1 {}\r\n",
            b64(&Sha1::digest(&data[cut..next]))
        );
        let (st, head, _) = http(addr, &patch(cut, next - cut, &good), &data[cut..next]).await;
        assert_eq!(st, 204, "direct_io {direct_io}");
        assert_eq!(header_of(&head, "upload-offset"), Some(next.to_string()));
        let (st, _, _) = http(addr, &patch(next, len - next, ""), &data[next..]).await;
        assert_eq!(st, 204);
        assert!(
            std::fs::read(dir.join("big.bin")).unwrap() == data,
            "direct_io {direct_io}: big.bin differs"
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn expired_uploads_are_gone() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("srv");
    let mut cfg = Config::default();
    cfg.tus_expiry = Duration::from_secs(1);
    let (server, _files, addr) = start(cfg, &dir, NoHooks).await;
    let h = |extra: &str, method: &str, path: &str| {
        format!("{method} {path} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\n{extra}\r\n")
    };
    let (_, head, _) = http(addr, &h("Upload-Length: 50\r\n", "POST", "/files/"), b"").await;
    let loc = header_of(&head, "location").unwrap();
    let (st, _, _) = http(addr, &h("", "HEAD", &loc), b"").await;
    assert_eq!(st, 200);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (st, _, _) = http(addr, &h("", "HEAD", &loc), b"").await;
    assert_eq!(st, 404);
    assert_eq!(std::fs::read_dir(dir.join(".tus")).unwrap().count(), 0);
    server.stop().await;
}
