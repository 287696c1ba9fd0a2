//! `wskit serve` as a user meets it: with `--user`, every route asks for credentials (the test
//! page, the JavaScript client, static files, `/upload`, `/sse`, WebSocket upgrades) unless a
//! path is made public with `--public`; the error answers a user hits say what to do.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// `bob:pw` in Basic form.
const CREDS: &str = "Authorization: Basic Ym9iOnB3\r\n";

struct Serve {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    ws_testkit::peers::free_port()
}

fn serve(args: &[&str]) -> Serve {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_wskit"))
        .args(["serve", "--listen", &addr.to_string()])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start wskit serve");
    let mut s = Serve { child, addr };
    let start = Instant::now();
    while TcpStream::connect(addr).is_err() {
        if let Ok(Some(status)) = s.child.try_wait() {
            panic!("wskit serve exited early: {status}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "serve did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    s
}

/// Sends `head` (and `body`) and reads the answer's status and body; an SSE stream (which
/// stays open) is cut after its head.
fn http(addr: SocketAddr, head: &str, body: &[u8]) -> (u16, String) {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    tcp.write_all(head.as_bytes()).unwrap();
    tcp.write_all(body).unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let text = loop {
        let text = String::from_utf8_lossy(&raw).into_owned();
        if let Some((h, b)) = text.split_once("\r\n\r\n") {
            let lower = h.to_ascii_lowercase();
            if lower.contains("text/event-stream") || lower.contains("101 switching") {
                break text;
            }
            if let Some(len) = lower
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
            {
                if b.len() >= len {
                    break text;
                }
            }
        }
        match tcp.read(&mut buf) {
            Ok(0) | Err(_) => break text,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    };
    let status = text
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

fn get(addr: SocketAddr, path: &str, extra: &str) -> (u16, String) {
    http(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n"),
        b"",
    )
}

fn upgrade(addr: SocketAddr, path: &str, extra: &str) -> (u16, String) {
    get(
        addr,
        path,
        &format!(
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}"
        ),
    )
}

fn upload(addr: SocketAddr, extra: &str) -> (u16, String) {
    let body = "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"note.txt\"\r\n\
                Content-Type: text/plain\r\n\r\nhello\r\n--XyZ--\r\n";
    http(
        addr,
        &format!(
            "POST /upload HTTP/1.1\r\nHost: t\r\n{extra}Content-Type: multipart/form-data; \
             boundary=XyZ\r\nContent-Length: {}\r\n\r\n",
            body.len()
        ),
        body.as_bytes(),
    )
}

fn dir_is_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).unwrap().next().is_none()
}

#[test]
fn user_puts_every_route_behind_credentials() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("file.txt"), "static").unwrap();
    let uploads = tempfile::tempdir().unwrap();
    let s = serve(&[
        "--user",
        "bob:pw",
        "--root",
        root.path().to_str().unwrap(),
        "--upload-dir",
        uploads.path().to_str().unwrap(),
    ]);
    let a = s.addr;
    for path in ["/", "/index.html", "/wskit.js", "/file.txt", "/nothing"] {
        assert_eq!(get(a, path, "").0, 401, "GET {path} without credentials");
    }
    assert_eq!(
        get(a, "/sse", "Accept: text/event-stream\r\n").0,
        401,
        "/sse"
    );
    assert_eq!(upload(a, "").0, 401, "/upload");
    assert!(
        dir_is_empty(uploads.path()),
        "a refused upload saved nothing"
    );
    assert_eq!(upgrade(a, "/echo", "").0, 401, "WebSocket upgrade");

    assert_eq!(get(a, "/", CREDS).0, 200);
    assert_eq!(get(a, "/wskit.js", CREDS).0, 200);
    assert_eq!(get(a, "/file.txt", CREDS), (200, "static".to_owned()));
    assert_eq!(
        get(a, "/sse", &format!("Accept: text/event-stream\r\n{CREDS}")).0,
        200
    );
    let (status, body) = upload(a, CREDS);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        std::fs::read_to_string(uploads.path().join("note.txt")).unwrap(),
        "hello"
    );
    assert_eq!(upgrade(a, "/echo", CREDS).0, 101);
    assert_eq!(
        get(a, "/", "Authorization: Basic Ym9iOnd4\r\n").0,
        401,
        "wrong password"
    );
}

#[test]
fn public_paths_are_explicit() {
    let s = serve(&["--user", "bob:pw", "--public", "/", "--public", "/wskit.js"]);
    let a = s.addr;
    assert_eq!(get(a, "/", "").0, 200, "the test page is public");
    assert_eq!(get(a, "/wskit.js", "").0, 200);
    assert_eq!(get(a, "/index.html", "").0, 401, "only the paths named");
    assert_eq!(get(a, "/sse", "Accept: text/event-stream\r\n").0, 401);
    assert_eq!(upgrade(a, "/chat", "").0, 401);
    assert_eq!(upgrade(a, "/chat", CREDS).0, 101);
}

#[test]
fn public_without_user_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_wskit"))
        .args(["serve", "--listen", "127.0.0.1:0", "--public", "/"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--public") && stderr.contains("--user"),
        "{stderr}"
    );
}

#[test]
fn error_answers_say_what_to_do() {
    let s = serve(&[]);
    let a = s.addr;
    // No upload directory: the page hides its form and says how to turn uploads on.
    let (status, page) = get(a, "/", "");
    assert_eq!(status, 200);
    assert!(page.contains(r#"<p id="upload-off">"#), "hint shown");
    assert!(
        page.contains(r#"<form id="upload-form" hidden"#),
        "form hidden"
    );
    let (status, body) = upload(a, "");
    assert_eq!(status, 404);
    assert!(body.contains("--upload-dir"), "{body}");
    // /sse to a client that refuses the stream; any client that takes it gets it.
    let (status, body) = get(a, "/sse", "Accept: application/json\r\n");
    assert_eq!(status, 406);
    assert!(body.contains("Accept: text/event-stream"), "{body}");
    assert_eq!(get(a, "/sse", "").0, 200, "no Accept field: the stream");
    // A WebSocket path that does not exist lists the ones that do.
    let (status, body) = upgrade(a, "/ws", "");
    assert_eq!(status, 404);
    assert!(body.contains("/echo") && body.contains("/chat"), "{body}");

    // With an upload directory, the form is there.
    let uploads = tempfile::tempdir().unwrap();
    let s = serve(&["--upload-dir", uploads.path().to_str().unwrap()]);
    let (_, page) = get(s.addr, "/", "");
    assert!(page.contains(r#"<p id="upload-off" hidden>"#));
    assert!(!page.contains(r#"<form id="upload-form" hidden"#));
}
