//! `multipart::save` behind a real server: files streamed to disk from bodies written in small
//! pieces, fields, collisions, hostile names, limits, the hook, and cleanup after failures.

mod common;

use std::{path::Path, time::Duration};

use bytes::BytesMut;
use common::{local_config, read_response};
use tokio::{io::AsyncWriteExt, net::TcpStream};
use ws_server::{
    Body, Handler, Request, Response, Server, ServerHandle,
    multipart::{self, FileDecision, UploadConfig},
};

struct App {
    config: UploadConfig,
}

impl Handler for App {
    async fn on_http(&self, request: &Request, body: &mut Body<'_>) -> Response {
        let mut hints = Vec::new();
        let hook = |f: &multipart::FileInfo| {
            if f.field.starts_with("hint") {
                hints.push(format!("hint {} {:?}\n", f.field, f.size_hint));
            }
            match (f.field.as_str(), f.original_name.as_str()) {
                ("refuse", _) => FileDecision::Reject(403),
                (_, "skip.txt") => FileDecision::Skip,
                ("rename", _) => FileDecision::SaveAs(format!("../renamed-{}", f.file_name)),
                ("mem", _) => FileDecision::Memory,
                ("disk", _) => FileDecision::Disk,
                // By the size hint and the type: an upper bound above 50 kB is refused.
                ("hint-limited", _)
                    if f.size_hint.is_some_and(|n| n > 50_000)
                        && f.content_type.as_deref() == Some("application/octet-stream") =>
                {
                    FileDecision::Reject(413)
                }
                _ => FileDecision::Save,
            }
        };
        let result = multipart::save(request, body, &self.config, hook).await;
        match result {
            Ok(upload) => {
                let mut out = hints.concat();
                for f in &upload.in_memory {
                    let mut crc = flate2::Crc::new();
                    crc.update(&f.data);
                    out.push_str(&format!(
                        "memory {} {} {} {:08x}\n",
                        f.field,
                        f.file_name,
                        f.data.len(),
                        crc.sum()
                    ));
                }
                for f in &upload.files {
                    assert_eq!(f.path.parent(), Some(self.config.dir.as_path()));
                    out.push_str(&format!(
                        "file {} {} {} {:?}\n",
                        f.field,
                        f.name(),
                        f.size,
                        f.original_name
                    ));
                }
                for (k, v) in &upload.fields {
                    out.push_str(&format!("field {k}={v}\n"));
                }
                Response::text(200, out)
            }
            Err(e) => e.response(),
        }
    }
}

const B: &str = "----WebKitFormBoundaryT3st";

enum Part<'a> {
    Field(&'a str, &'a [u8]),
    File(&'a str, &'a str, &'a [u8]),
}

fn multipart_body(parts: &[Part<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        out.extend_from_slice(format!("--{B}\r\n").as_bytes());
        match part {
            Part::Field(name, value) => {
                out.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
                );
                out.extend_from_slice(value);
            }
            Part::File(name, filename, content) => {
                out.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n\
                         Content-Type: application/octet-stream\r\n\r\n"
                    )
                    .as_bytes(),
                );
                out.extend_from_slice(content);
            }
        }
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{B}--\r\n").as_bytes());
    out
}

async fn start(dir: &Path, tweak: impl FnOnce(&mut UploadConfig)) -> ServerHandle {
    let mut config = UploadConfig::new(dir.join("up"));
    tweak(&mut config);
    let mut server = local_config();
    server.http.max_body = 1 << 20;
    Server::start(server, App { config }).await.unwrap()
}

/// Posts `body`, written in pieces of `piece` bytes; returns (status, text).
async fn post(server: &ServerHandle, body: &[u8], piece: usize) -> (u16, String) {
    let mut tcp = TcpStream::connect(server.local_addrs()[0]).await.unwrap();
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary={B}\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    for p in body.chunks(piece.max(1)) {
        if tcp.write_all(p).await.is_err() {
            break; // the server answered early and closed
        }
        if piece < 64 {
            tokio::task::yield_now().await;
        }
    }
    let mut buf = BytesMut::new();
    let r = read_response(&mut tcp, &mut buf, "POST").await.unwrap();
    (r.status, r.text())
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Content that trips naive parsers: CRLFs, dashes, a fake boundary, the boundary prefix, NUL.
fn tricky(len: usize) -> Vec<u8> {
    let mut c = format!("\r\n\r\n--\r\n--{B}FAKE\r\n\r\n--{}\0", &B[..B.len() - 1]).into_bytes();
    let mut x = 0x1234_5678u32;
    while c.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        c.push(x as u8);
    }
    c.extend_from_slice(b"\r\n--");
    c
}

#[tokio::test]
async fn files_and_fields_are_saved_from_small_pieces() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path(), |_| {}).await;
    let a = tricky(100_000);
    let b = tricky(3000);
    let body = multipart_body(&[
        Part::Field("note", "héllo\r\nworld".as_bytes()),
        Part::File("file", "a.bin", &a),
        Part::File("file", "b.bin", &b),
        Part::File("empty", "", b""),
        Part::File("other", "skip.txt", b"dropped"),
        Part::Field("last", b""),
    ]);
    for piece in [body.len(), 4096, 7] {
        let (status, text) = post(&server, &body, piece).await;
        assert_eq!(status, 200, "{text}");
        let n = if piece == body.len() {
            String::new()
        } else if piece == 4096 {
            "-1".into()
        } else {
            "-2".into()
        };
        assert_eq!(
            text,
            format!(
                "file file a{n}.bin 100004 \"a.bin\"\nfile file b{n}.bin 3004 \"b.bin\"\n\
                 field note=héllo\r\nworld\nfield last=\n"
            )
        );
        let up = tmp.path().join("up");
        assert_eq!(std::fs::read(up.join(format!("a{n}.bin"))).unwrap(), a);
        assert_eq!(std::fs::read(up.join(format!("b{n}.bin"))).unwrap(), b);
    }
    // Collisions got suffixes; nothing else (no temporary files) is left.
    assert_eq!(
        listing(&tmp.path().join("up")),
        ["a-1.bin", "a-2.bin", "a.bin", "b-1.bin", "b-2.bin", "b.bin"]
    );
    server.stop().await;
}

#[tokio::test]
async fn chunked_upload_bodies_work() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path(), |_| {}).await;
    let body = multipart_body(&[Part::File("f", "c.txt", b"chunked content")]);
    let mut raw = format!(
        "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=\"{B}\"\r\n\
         Transfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    for piece in body.chunks(10) {
        raw.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        raw.extend_from_slice(piece);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let mut tcp = TcpStream::connect(server.local_addrs()[0]).await.unwrap();
    tcp.write_all(&raw).await.unwrap();
    let mut buf = BytesMut::new();
    let r = read_response(&mut tcp, &mut buf, "POST").await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        std::fs::read(tmp.path().join("up/c.txt")).unwrap(),
        b"chunked content"
    );
    server.stop().await;
}

#[tokio::test]
async fn hostile_file_names_stay_inside_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path(), |_| {}).await;
    let body = multipart_body(&[
        Part::File("f", "../../etc/passwd", b"1"),
        Part::File("f", "C:\\x", b"2"),
        Part::File("f", ".htaccess", b"3"),
        Part::File("f", "nul\0byte.txt", b"4"),
        Part::File("f", "..", b"5"),
        Part::File("f", "/", b"6"),
        Part::File("rename", "r.txt", b"7"),
    ]);
    let (status, text) = post(&server, &body, 1000).await;
    assert_eq!(status, 200, "{text}");
    let up = tmp.path().join("up");
    assert_eq!(
        listing(&up),
        [
            "htaccess",
            "nulbyte.txt",
            "passwd",
            "renamed-r.txt",
            "upload",
            "upload-1",
            "x"
        ]
    );
    assert_eq!(std::fs::read(up.join("passwd")).unwrap(), b"1");
    assert_eq!(std::fs::read(up.join("x")).unwrap(), b"2");
    assert_eq!(std::fs::read(up.join("upload-1")).unwrap(), b"6");
    // Nothing escaped next to the upload directory.
    assert_eq!(listing(tmp.path()), ["up"]);
    assert!(text.contains("\"../../etc/passwd\""), "{text}");
    server.stop().await;
}

#[tokio::test]
async fn limits_answer_413_and_leave_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path(), |c| {
        c.max_file_size = 1000;
        c.max_total_size = 20_000;
        c.max_parts = 3;
        c.max_field_bytes = 10;
    })
    .await;
    let up = tmp.path().join("up");
    let ok = vec![b'x'; 1000];
    let big = vec![b'x'; 1001];
    // The first file is complete when the second one is too large: both go.
    let body = multipart_body(&[
        Part::File("f", "ok.bin", &ok),
        Part::File("f", "big.bin", &big),
    ]);
    let (status, text) = post(&server, &body, 100).await;
    assert_eq!(status, 413, "{text}");
    assert!(listing(&up).is_empty(), "{:?}", listing(&up));

    let body = multipart_body(&[Part::Field("a", b"12345678901")]);
    assert_eq!(post(&server, &body, 100).await.0, 413);
    let body = multipart_body(&[
        Part::Field("a", b"1"),
        Part::Field("b", b"2"),
        Part::Field("c", b"3"),
        Part::Field("d", b"4"),
    ]);
    assert_eq!(post(&server, &body, 100).await.0, 413);
    // Over the total size by Content-Length: refused before reading.
    let huge = vec![b'y'; 30_000];
    let body = multipart_body(&[Part::File("f", "huge.bin", &huge)]);
    assert_eq!(post(&server, &body, 30_000).await.0, 413);
    assert!(listing(&up).is_empty(), "{:?}", listing(&up));

    // At the limits, it works.
    let body = multipart_body(&[
        Part::File("f", "ok.bin", &ok),
        Part::Field("a", b"1234567890"),
    ]);
    let (status, text) = post(&server, &body, 100).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(listing(&up), ["ok.bin"]);
    server.stop().await;
}

#[tokio::test]
async fn the_hook_can_refuse_and_nothing_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path(), |_| {}).await;
    let body = multipart_body(&[
        Part::File("f", "first.bin", b"kept until the refusal"),
        Part::File("refuse", "second.bin", b"never written"),
    ]);
    let (status, text) = post(&server, &body, 1 << 20).await;
    assert_eq!(status, 403, "{text}");
    assert!(listing(&tmp.path().join("up")).is_empty());
    server.stop().await;
}

#[tokio::test]
async fn malformed_truncated_and_non_multipart_bodies() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path(), |_| {}).await;
    let addr = server.local_addrs()[0];
    let up = tmp.path().join("up");

    // No closing delimiter.
    let mut body = multipart_body(&[Part::File("f", "a.bin", b"data")]);
    body.truncate(body.len() - 10);
    assert_eq!(post(&server, &body, 1 << 20).await.0, 400);

    // Not multipart.
    let r = common::request(
        addr,
        "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi",
    )
    .await;
    assert_eq!(r.status, 415);
    // No Content-Disposition.
    let raw = format!("--{B}\r\nContent-Type: text/plain\r\n\r\nx\r\n--{B}--\r\n");
    assert_eq!(post(&server, raw.as_bytes(), 1 << 20).await.0, 400);

    // The client goes away in the middle of a file: the partial file is removed.
    let big = tricky(200_000);
    let body = multipart_body(&[Part::File("f", "cut.bin", &big)]);
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary={B}\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(&body[..150_000]).await.unwrap();
    // Wait until the temporary file is there, then drop the connection.
    let mut seen = false;
    for _ in 0..200 {
        if listing(&up).iter().any(|n| n.ends_with(".part")) {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        seen,
        "no temporary file while uploading: {:?}",
        listing(&up)
    );
    drop(tcp);
    let mut empty = false;
    for _ in 0..200 {
        if listing(&up).is_empty() {
            empty = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(empty, "left behind: {:?}", listing(&up));
    server.stop().await;
}

fn crc(data: &[u8]) -> String {
    let mut crc = flate2::Crc::new();
    crc.update(data);
    format!("{:08x}", crc.sum())
}

#[tokio::test]
async fn small_files_stay_in_memory_and_larger_ones_go_to_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path(), |c| c.memory_threshold = 1000).await;
    let small = tricky(500);
    let edge = vec![b'e'; 1000];
    let big = tricky(5000);
    let body = multipart_body(&[
        Part::File("f", "small.bin", &small),
        Part::File("f", "edge.bin", &edge),
        Part::File("f", "big.bin", &big),
        Part::Field("note", b"n"),
    ]);
    for (piece, n) in [(body.len(), ""), (7, "-1")] {
        let (status, text) = post(&server, &body, piece).await;
        assert_eq!(status, 200, "{text}");
        assert_eq!(
            text,
            format!(
                "memory f small.bin {} {}\nmemory f edge.bin 1000 {}\n\
                 file f big{n}.bin {} \"big.bin\"\nfield note=n\n",
                small.len(),
                crc(&small),
                crc(&edge),
                big.len()
            )
        );
        let up = tmp.path().join("up");
        assert_eq!(std::fs::read(up.join(format!("big{n}.bin"))).unwrap(), big);
    }
    // Only the large file reached the disk; no temporary file is left.
    assert_eq!(listing(&tmp.path().join("up")), ["big-1.bin", "big.bin"]);

    // With nothing large, the directory is not even created.
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path(), |c| c.memory_threshold = 1000).await;
    let body = multipart_body(&[Part::File("f", "small.bin", &small)]);
    let (status, text) = post(&server, &body, 100).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.starts_with("memory f small.bin 504 "), "{text}");
    assert!(listing(tmp.path()).is_empty());
    server.stop().await;
}

#[tokio::test]
async fn the_hook_picks_memory_disk_or_refusal_per_part() {
    let tmp = tempfile::tempdir().unwrap();
    // Threshold 0: everything to disk, unless the hook says memory.
    let server = start(tmp.path(), |_| {}).await;
    let data = tricky(5000);
    let body = multipart_body(&[
        Part::File("mem", "m.bin", &data),
        Part::File("other", "o.bin", b"to disk"),
        Part::File("hint-a", "h.bin", b"hinted"),
    ]);
    let (status, text) = post(&server, &body, 1000).await;
    assert_eq!(status, 200, "{text}");
    let mut lines = text.lines();
    // The size hint is what is left of the body once the part's headers are read: at least
    // the content, at most the body.
    let hint: u64 = lines
        .next()
        .unwrap()
        .strip_prefix("hint hint-a Some(")
        .and_then(|r| r.strip_suffix(')'))
        .unwrap()
        .parse()
        .unwrap();
    assert!((6..=body.len() as u64).contains(&hint), "{hint}");
    assert_eq!(
        lines.next(),
        Some(format!("memory mem m.bin 5004 {}", crc(&data)).as_str())
    );
    assert_eq!(listing(&tmp.path().join("up")), ["h.bin", "o.bin"]);

    // A threshold that would keep them in memory, and the hook sends one to disk.
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path(), |c| c.memory_threshold = 1 << 20).await;
    let body = multipart_body(&[
        Part::File("disk", "d.bin", b"on disk"),
        Part::File("x", "x.bin", b"in memory"),
    ]);
    let (status, text) = post(&server, &body, 1000).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("memory x x.bin 9 "), "{text}");
    assert!(text.contains("file disk d.bin 7 "), "{text}");
    assert_eq!(listing(&tmp.path().join("up")), ["d.bin"]);

    // Refused by its size hint (and type): nothing is kept.
    let big = vec![b'z'; 60_000];
    let body = multipart_body(&[
        Part::File("x", "first.bin", b"kept until the refusal"),
        Part::File("hint-limited", "big.bin", &big),
    ]);
    let (status, text) = post(&server, &body, 1 << 20).await;
    assert_eq!(status, 413, "{text}");
    assert_eq!(listing(&tmp.path().join("up")), ["d.bin"]);
    server.stop().await;
}
